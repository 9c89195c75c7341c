#include "views.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "format.h"

namespace modelzoo::cli {

namespace {

using nlohmann::json;

const json& null_json() {
  static const json kNull;
  return kNull;
}

const json& empty_array() {
  static const json kEmpty = json::array();
  return kEmpty;
}

// obj[key], or null when `obj` is not an object or has no such key.
const json& field(const json& obj, const char* key) {
  if (!obj.is_object()) return null_json();
  const auto it = obj.find(key);
  return it == obj.end() ? null_json() : *it;
}

// A field as display text: strings as they are, other scalars as JSON, null as `fallback`.
std::string text(const json& obj, const char* key, const std::string& fallback = "-") {
  const json& value = field(obj, key);
  if (value.is_null()) return fallback;
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    return s.empty() ? fallback : s;
  }
  return dump_json(value);
}

// A numeric field as a non-negative integer, 0 when absent or not a number.
std::uint64_t count(const json& obj, const char* key) {
  const json& value = field(obj, key);
  if (!value.is_number() || value.get<double>() < 0) return 0;
  return value.get<std::uint64_t>();
}

const json& array_field(const json& obj, const char* key) {
  const json& value = field(obj, key);
  return value.is_array() ? value : empty_array();
}

// Array elements (strings as they are, others as JSON) joined with `separator`.
std::string join(const json& array, const std::string& separator, const std::string& fallback = "-") {
  std::string out;
  for (const json& item : array) {
    if (!out.empty()) out += separator;
    out += item.is_string() ? item.get<std::string>() : dump_json(item);
  }
  return out.empty() ? fallback : out;
}

// "code: message" of an {code, message} error object.
std::string error_text(const json& error) {
  const std::string code = text(error, "code", "error");
  const std::string message = text(error, "message", "");
  return message.empty() ? code : code + ": " + message;
}

std::string plugin_uptime(const json& plugin) {
  if (count(plugin, "pid") == 0 || field(plugin, "uptime_ms").is_null()) return "-";
  return human_duration(static_cast<std::int64_t>(count(plugin, "uptime_ms")));
}

// "name: starting for 4 s, no hello yet (hello timeout 10 s)" for a spawn that has not
// said hello: a plugin stopped or stuck before its hello shows here long before its hello
// timeout ends it. Empty for any other plugin.
std::string starting_line(const json& plugin) {
  if (text(plugin, "state") != "starting" || count(plugin, "starting_for_ms") == 0) return "";
  std::string line = text(plugin, "name") + ": starting for " + std::to_string(count(plugin, "starting_for_ms") / 1000) +
                     " s, no hello yet";
  if (const std::uint64_t timeout = count(plugin, "hello_timeout_ms"); timeout > 0)
    line += " (hello timeout " + std::to_string(timeout / 1000) + (timeout % 1000 ? "." + std::to_string(timeout % 1000 / 100) : "") + " s)";
  return line;
}

// "name: last_error (last_exit; last_limit)" for a failed plugin.
std::string failure_line(const json& plugin) {
  std::string line = text(plugin, "name") + ": " + text(plugin, "last_error", "failed");
  const std::string last_exit = text(plugin, "last_exit", "");
  const std::string last_limit = text(plugin, "last_limit", "");
  if (!last_exit.empty()) line += " (" + last_exit + (last_limit.empty() ? "" : "; " + last_limit) + ")";
  return line;
}

// A limit's size as the daemon configures it: "256 MiB", "1000 B", "unlimited".
std::string limit_size(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_number_integer() || v.get<std::int64_t>() < 0) return dump_json(v);
  std::uint64_t bytes = v.get<std::uint64_t>();
  static const std::pair<int, const char*> units[] = {{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  for (const auto& [shift, unit] : units)
    if (bytes >= (std::uint64_t{1} << shift) && bytes % (std::uint64_t{1} << shift) == 0)
      return std::to_string(bytes >> shift) + " " + unit;
  return std::to_string(bytes) + " B";
}

// "cpu 30 s, open files 64, core dumps off; sandbox landlock (ABI 7)" for a plugin with limits
// or a sandbox beyond the defaults (docs/security.md); empty otherwise.
std::string isolation_line(const json& plugin) {
  const json& limits = field(plugin, "limits");
  std::vector<std::string> parts;
  auto set = [&](const char* key) { return !field(limits, key).is_null(); };
  if (set("cpu_seconds"))
    parts.push_back("cpu " + (field(limits, "cpu_seconds").is_string() ? text(limits, "cpu_seconds")
                                                                        : text(limits, "cpu_seconds") + " s"));
  if (set("address_space")) parts.push_back("address space " + limit_size(field(limits, "address_space")));
  if (set("open_files")) parts.push_back("open files " + text(limits, "open_files"));
  if (set("file_size")) parts.push_back("file size " + limit_size(field(limits, "file_size")));
  const json& core = field(limits, "core_dumps");
  const bool core_on = core.is_boolean() && core.get<bool>();
  const std::string sandbox = text(plugin, "sandbox", "off");
  if (parts.empty() && !core_on && sandbox == "off") return "";
  if (core.is_boolean()) parts.push_back(std::string("core dumps ") + (core_on ? "on" : "off"));
  std::string line = text(plugin, "name") + ": ";
  for (std::size_t i = 0; i < parts.size(); ++i) line += (i ? ", " : "") + parts[i];
  if (sandbox != "off") line += (parts.empty() ? "" : "; ") + std::string("sandbox ") + sandbox;
  return line;
}

std::string render_files(const json& files) {
  std::vector<Row> rows;
  for (const json& file : files) {
    rows.push_back({text(file, "name"), human_size(count(file, "size")), text(file, "sha256")});
  }
  return indent_lines(render_table({}, rows), "  ");
}

std::string render_sources(const json& sources) {
  std::vector<Row> rows;
  for (const json& source : sources) {
    const bool ok = field(source, "ok").is_boolean() && field(source, "ok").get<bool>();
    const json& error = field(source, "error");
    const std::string status = ok ? "ok" : error.is_object() ? error_text(error) : "no";
    rows.push_back({text(source, "plugin"), "priority " + text(source, "priority", "0"),
                    ok ? text(source, "version") : "-", status});
  }
  return indent_lines(render_table({}, rows), "  ");
}

}  // namespace

std::string render_status(const json& reply) {
  const json& plugins = field(reply, "plugins");
  std::vector<Row> rows = {
      {"version:", text(reply, "version")},
      {"pid:", text(reply, "pid")},
      {"uptime:", field(reply, "uptime_ms").is_number()
                      ? human_duration(static_cast<std::int64_t>(count(reply, "uptime_ms")))
                      : "-"},
      {"runtime dir:", text(reply, "runtime_dir")},
      {"cache dir:", text(reply, "cache_dir")},
  };
  if (const json& offline = field(reply, "offline"); offline.is_boolean()) {
    rows.push_back({"offline:", offline.get<bool>() ? "yes" : "no"});
  }
  rows.push_back({"plugins:", std::to_string(count(plugins, "total")) + " total, " +
                                  std::to_string(count(plugins, "ready")) + " ready, " +
                                  std::to_string(count(plugins, "failed")) + " failed"});
  return render_table({}, rows);
}

std::string render_plugins(const json& reply) {
  const json& plugins = array_field(reply, "plugins");
  std::vector<Row> rows;
  std::string failures, extensions, isolation, starting;
  for (const json& plugin : plugins) {
    if (text(plugin, "kind", "registry") == "extension") {
      std::string line = text(plugin, "name") + ": " +
                         join(array_field(plugin, "points"), ", ", "every point (not started yet)");
      line += ", order " + text(plugin, "order", "0");
      if (!array_field(plugin, "formats").empty()) line += ", formats " + join(array_field(plugin, "formats"), ",");
      extensions += line + "\n";
    }
    const std::uint64_t pid = count(plugin, "pid");
    rows.push_back({text(plugin, "name"), text(plugin, "state"), pid == 0 ? "-" : std::to_string(pid),
                    std::to_string(count(plugin, "restarts")), plugin_uptime(plugin),
                    text(plugin, "priority", "0")});
    if (text(plugin, "state") == "failed") failures += failure_line(plugin) + "\n";
    if (const std::string line = starting_line(plugin); !line.empty()) starting += line + "\n";
    if (const std::string line = isolation_line(plugin); !line.empty()) isolation += line + "\n";
  }
  if (rows.empty()) return "no plugins\n";
  std::string out = render_table({"NAME", "STATE", "PID", "RESTARTS", "UPTIME", "PRIORITY"}, rows);
  if (!extensions.empty()) out += "\nextensions:\n" + extensions;
  if (!isolation.empty()) out += "\nisolation:\n" + isolation;
  if (!starting.empty()) out += "\n" + starting;
  if (!failures.empty()) out += "\n" + failures;
  return out;
}

std::string render_plugin_reset(const json& reply) {
  return text(reply, "name") + ": " + text(reply, "state") + "\n";
}

std::string render_models(const json& reply) {
  std::vector<Row> rows;
  for (const json& model : array_field(reply, "models")) {
    rows.push_back({text(model, "name"), join(array_field(model, "versions"), ","),
                    join(array_field(model, "sources"), ","), text(model, "description", "")});
  }
  if (rows.empty()) return "no models\n";
  return render_table({"NAME", "VERSIONS", "SOURCES", "DESCRIPTION"}, rows);
}

std::vector<std::string> model_warnings(const json& reply) {
  std::vector<std::string> warnings;
  for (const json& error : array_field(reply, "errors")) {
    warnings.push_back(text(error, "plugin") + ": " + error_text(error));
  }
  return warnings;
}

std::string render_show(const json& reply) {
  const json& metadata = field(reply, "metadata");
  std::string out;
  if (metadata.is_object()) {
    out += render_table({}, {
                                {"name:", text(metadata, "name")},
                                {"version:", text(metadata, "version")},
                                {"description:", text(metadata, "description")},
                                {"author:", text(metadata, "author")},
                                {"license:", text(metadata, "license")},
                                {"format:", text(metadata, "format")},
                                {"tags:", join(array_field(metadata, "tags"), ", ")},
                            });
    const json& files = array_field(metadata, "files");
    std::uint64_t total = 0;
    for (const json& file : files) total += count(file, "size");
    out += "files: " + std::to_string(files.size()) + " (" + human_size(total) + ")\n";
    out += render_files(files);
  } else {
    out += text(reply, "model") + ": no source has this model\n";
  }
  out += "best source: " + text(reply, "best") + "\n";
  out += "sources:\n" + render_sources(array_field(reply, "sources"));
  return out;
}

namespace {

std::string transfer_summary(const json& reply, const std::string& verb) {
  std::string line = verb;
  line.append(" ").append(text(reply, "name")).append(":").append(text(reply, "version")).append(" from ");
  line.append(text(reply, "source"));
  const std::size_t files = array_field(reply, "files").size();
  line += ": " + std::to_string(files) + (files == 1 ? " file" : " files");
  const json& cached = field(reply, "cached");
  if (cached.is_boolean() && cached.get<bool>()) {
    line += ", already cached";
  } else {
    line += ", " + human_size(count(reply, "bytes_downloaded")) + " in " +
            human_duration(static_cast<std::int64_t>(count(reply, "duration_ms")));
  }
  return line + "\n";
}

// "N thing" / "N things".
std::string counted(std::uint64_t n, const std::string& singular, const std::string& plural) {
  std::string out = std::to_string(n);
  out.append(" ").append(n == 1 ? singular : plural);
  return out;
}

bool flag(const json& obj, const char* key) {
  const json& value = field(obj, key);
  return value.is_boolean() && value.get<bool>();
}

std::string ago(const json& obj, const char* key) {
  if (!field(obj, key).is_number()) return "-";
  return human_duration(static_cast<std::int64_t>(count(obj, key))) + " ago";
}

// "demo/a:1.0.0 (weights.bin), demo/b:2.0.0 (w.bin)", or "no model".
std::string owners_text(const json& owners) {
  std::string out;
  for (const json& owner : owners) {
    if (!out.empty()) out += ", ";
    out.append(text(owner, "name")).append(":").append(text(owner, "version"));
    out.append(" (").append(text(owner, "file")).append(")");
  }
  return out.empty() ? "no model" : out;
}

std::string problem_lines(const json& report) {
  std::string out;
  for (const json& problem : array_field(report, "problems")) {
    out.append("problem: ").append(text(problem, "path")).append(": ").append(text(problem, "reason")).append("\n");
  }
  return out;
}

}  // namespace

std::string render_pull_summary(const json& reply) { return transfer_summary(reply, "pulled"); }

std::string render_load_summary(const json& reply) { return transfer_summary(reply, "loaded"); }

std::string render_cache_list(const json& listing) {
  const std::string dir = text(listing, "cache_dir");
  const json& exists = field(listing, "exists");
  if (exists.is_boolean() && !exists.get<bool>()) return "no cache at " + dir + "\n";
  std::string out = "cache: " + dir + "\n";
  const json& models = array_field(listing, "models");
  std::uint64_t model_bytes = 0;
  std::vector<Row> rows;
  for (const json& model : models) {
    rows.push_back({text(model, "name"), text(model, "version"), human_size(count(model, "size")),
                    ago(model, "last_used_ms_ago"), text(model, "source"),
                    flag(model, "complete") ? "complete" : "incomplete"});
    model_bytes += count(model, "size");
  }
  if (rows.empty()) {
    out += "no cached models\n";
  } else {
    out += render_table({"MODEL", "VERSION", "SIZE", "LAST USED", "SOURCE", "STATUS"}, rows);
    out += counted(models.size(), "model version", "model versions") + ", " + human_size(model_bytes);
    // Versions sharing files share blobs: say what the blobs take when that differs.
    const json& totals = field(listing, "totals");
    if (field(totals, "blobs").is_number() && count(totals, "blobs") != model_bytes) {
      out += " (" + human_size(count(totals, "blobs")) + " of blobs on disk)";
    }
    out += "\n";
  }
  const json& orphans = array_field(listing, "orphans");
  if (!orphans.empty()) {
    std::uint64_t bytes = 0;
    std::vector<Row> orphan_rows;
    for (const json& orphan : orphans) {
      bytes += count(orphan, "size");
      orphan_rows.push_back({text(orphan, "sha256"), human_size(count(orphan, "size"))});
    }
    out += "\n" + counted(orphans.size(), "unreferenced blob", "unreferenced blobs") + ", " + human_size(bytes) +
           " (`modelzoo cache prune` deletes them)\n";
    out += render_table({"SHA256", "SIZE"}, orphan_rows);
  }
  const json& partials = array_field(listing, "partials");
  if (!partials.empty()) {
    std::vector<Row> partial_rows;
    for (const json& partial : partials) {
      partial_rows.push_back({text(partial, "sha256"), human_size(count(partial, "size")),
                              human_duration(static_cast<std::int64_t>(count(partial, "age_ms"))),
                              flag(partial, "receiving") ? "receiving" : "idle"});
    }
    out += "\n" + counted(partials.size(), "partial download", "partial downloads") + "\n";
    out += render_table({"SHA256", "SIZE", "AGE", "STATE"}, partial_rows);
  }
  const std::string problems = problem_lines(listing);
  if (!problems.empty()) out += "\n" + problems;
  return out;
}

std::string render_cache_verify(const json& report) {
  std::string out;
  const json& corrupt = array_field(report, "corrupt");
  for (const json& blob : corrupt) {
    out.append("corrupt: ").append(text(blob, "sha256")).append(": ");
    const json& error = field(blob, "error");
    if (field(blob, "actual").is_string()) out.append("content hashes to ").append(text(blob, "actual"));
    if (error.is_string()) {
      if (field(blob, "actual").is_string()) out.append("; ");
      out.append(error.get<std::string>());
    }
    out.append("; owned by ").append(owners_text(array_field(blob, "owners")));
    if (flag(blob, "removed")) out.append("; removed, the next pull fetches it again");
    out.append("\n");
  }
  const json& missing = array_field(report, "missing");
  for (const json& blob : missing) {
    out.append("missing: ").append(text(blob, "sha256")).append(": owned by ");
    out.append(owners_text(array_field(blob, "owners"))).append("\n");
  }
  const json& uncached = array_field(report, "uncached");
  if (!uncached.empty())
    out += "uncached " + join(uncached, ", ") + " (each lacked a file; the next pull fetches only what is missing)\n";
  else if (!corrupt.empty() || !missing.empty())
    out += "the models named above are incomplete: `modelzoo cache verify --remove-corrupt` uncaches them so the "
           "next pull heals them\n";
  out += problem_lines(report);
  out += "verified " + counted(count(report, "blobs"), "blob", "blobs") + ", " + human_size(count(report, "bytes")) +
         ": ";
  if (corrupt.empty() && missing.empty()) {
    out += "all intact";
  } else {
    std::vector<std::string> bad;
    if (!corrupt.empty()) bad.push_back(counted(corrupt.size(), "corrupt blob", "corrupt blobs"));
    if (!missing.empty()) bad.push_back(counted(missing.size(), "missing blob", "missing blobs"));
    for (std::size_t i = 0; i < bad.size(); ++i) out.append(i == 0 ? "" : ", ").append(bad[i]);
  }
  return out + "\n";
}

std::string render_cache_remove(const json& report) {
  std::string out = "removed " + text(report, "name") + " " + join(array_field(report, "versions"), ", ");
  out += ": freed " + human_size(count(report, "bytes_freed")) + " (" +
         counted(count(report, "blobs_removed"), "blob", "blobs") + " deleted";
  if (const std::uint64_t kept = count(report, "blobs_kept"); kept > 0) {
    out += ", " + counted(kept, "blob", "blobs") + " kept: other models use " + (kept == 1 ? "it" : "them");
  }
  if (const std::uint64_t kept = count(report, "blobs_kept_in_use"); kept > 0) {
    out += ", " + counted(kept, "blob", "blobs") + " kept: a pull or load in progress holds " +
           (kept == 1 ? "it" : "them");
  }
  return out + ")\n";
}

std::string render_cache_prune(const json& report) {
  // What was removed, only the kinds of which something was.
  std::vector<std::string> parts;
  if (const std::uint64_t n = count(report, "blobs_removed"); n > 0) {
    parts.push_back(counted(n, "unreferenced blob", "unreferenced blobs") + " (" +
                    human_size(count(report, "blob_bytes_freed")) + ")");
  }
  if (const std::uint64_t n = count(report, "partials_removed"); n > 0) {
    parts.push_back(counted(n, "partial download", "partial downloads") + " (" +
                    human_size(count(report, "partial_bytes_freed")) + ")");
  }
  if (const std::uint64_t n = count(report, "locks_removed"); n > 0) {
    parts.push_back(counted(n, "stray lock file", "stray lock files"));
  }
  if (const std::uint64_t n = count(report, "pins_removed"); n > 0) {
    parts.push_back(counted(n, "lapsed pin", "lapsed pins") + " (their pull's process died)");
  }
  if (const std::uint64_t n = count(report, "dirs_removed"); n > 0) {
    parts.push_back(counted(n, "empty directory", "empty directories"));
  }
  std::string out;
  if (parts.empty()) {
    out = "nothing to delete\n";
  } else {
    out = "removed ";
    for (std::size_t i = 0; i < parts.size(); ++i) out.append(i == 0 ? "" : ", ").append(parts[i]);
    out += "; freed " + human_size(count(report, "bytes_freed")) + "\n";
  }
  if (const std::uint64_t n = count(report, "blobs_kept_recent"); n > 0) {
    out += "kept " + counted(n, "unreferenced blob", "unreferenced blobs") +
           " written in the last 10 minutes (a pull may still be finishing)\n";
  }
  if (const std::uint64_t n = count(report, "blobs_kept_in_use"); n > 0) {
    out += "kept " + counted(n, "unreferenced blob", "unreferenced blobs") +
           ": a pull or load in progress holds them\n";
  }
  if (const std::uint64_t n = count(report, "blobs_restored"); n > 0) {
    out += "put back " + counted(n, "blob", "blobs") + " a killed remover had moved aside (still needed)\n";
  }

  if (const std::uint64_t n = count(report, "partials_kept"); n > 0) {
    out += "kept " + counted(n, "partial download", "partial downloads") +
           " (being received, or recent enough to resume; --all removes idle ones of any age)\n";
  }
  return out;
}

}  // namespace modelzoo::cli
