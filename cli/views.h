// Human-readable views of the daemon's replies (shapes in docs/protocol.md). Pure
// functions from a reply body to text, so tests can check them without a daemon. They
// never throw on odd replies: missing or mistyped fields show as "-" or are left out.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::cli {

// `status`: a few "key: value" lines.
std::string render_status(const nlohmann::json& reply);

// `plugins`: a table NAME STATE PID RESTARTS UPTIME PRIORITY, then one line per failed
// plugin with its last error.
std::string render_plugins(const nlohmann::json& reply);

// `plugin.reset`: "NAME: state".
std::string render_plugin_reset(const nlohmann::json& reply);

// `models`: a table NAME VERSIONS SOURCES DESCRIPTION.
std::string render_models(const nlohmann::json& reply);

// `models`: one "PLUGIN: code: message" per plugin that failed to answer.
std::vector<std::string> model_warnings(const nlohmann::json& reply);

// `show`: the metadata, its files, the best source and every source's answer.
std::string render_show(const nlohmann::json& reply);

// `pull`: one line summing up a finished pull (the path itself is printed separately).
std::string render_pull_summary(const nlohmann::json& reply);

// `load`: as render_pull_summary, "loaded ..." (the reply's metadata is not shown).
std::string render_load_summary(const nlohmann::json& reply);

// The `cache` commands, from the JSON they print with --json (core/cache_admin.h, to_json).

// `cache ls`: a table MODEL VERSION SIZE LAST USED SOURCE STATUS, then unreferenced blobs,
// partial downloads (SHA256 SIZE AGE STATE) and problems, each only when there are some.
std::string render_cache_list(const nlohmann::json& listing);

// `cache verify`: one line per corrupt blob naming the model versions that own it
// ("corrupt: <sha256>: content hashes to <actual>; owned by NAME:VERSION (FILE), ..."), one
// per missing blob and problem, then a summary line.
std::string render_cache_verify(const nlohmann::json& report);

// `cache rm`: what was removed and the space freed.
std::string render_cache_remove(const nlohmann::json& report);

// `cache prune`: what was removed ("nothing to delete" when nothing), the space freed, and
// what was kept and why.
std::string render_cache_prune(const nlohmann::json& report);

}  // namespace modelzoo::cli
