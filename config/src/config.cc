// The daemon's configuration (docs/configuration.md): the embedded default, the MODELZOO_*
// environment overlay, ${...} expansion, enc:v1: secrets, and every setting read and checked.
#include "modelzoo/config/config.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "modelzoo/bus/curve.h"
#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/codec/secret.h"
#include "internal.h"

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using nlohmann::json;
using namespace detail;

namespace {

const std::string kDefaultConfig = R"(# modelzood embedded default configuration.
# Print it with `modelzood --print-default-config`, edit, and start with `--config FILE`.
heartbeat_interval_ms: 1000
sources:
  # Model files in a directory tree: <data_dir>/models/<model>/<version>/<files>
  - name: local
    plugin: local-file
    priority: 10
    config:
      root: ${data_dir}/models
  # Models held in memory; serves the demo model `demo/tiny`.
  - name: memory
    plugin: memory
    priority: 0
    config:
      models:
        - name: demo/tiny
          version: 1.0.0
          description: A tiny demo model of pseudo-random weights, served from memory
          author: modelzoo
          license: CC0-1.0
          format: raw
          tags: [demo]
          files:
            - name: README.md
              content: "# demo/tiny\n\nPseudo-random weights for trying modelzoo out.\n"
            - name: weights.bin
              size: 16777216
              seed: 1
  # Extensions (docs/extensions.md). Decompresses files published as .zst after download...
  - name: decompress
    plugin: decompress
  # ...then checks the structure of every safetensors, GGUF and ONNX file before it enters
  # the cache.
  - name: validate
    plugin: format-validator
)";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

fs::path home() {
  std::string h = env("HOME");
  return h.empty() ? fs::path("/tmp") : fs::path(h);
}

// Expands ${data_dir}, ${cache_dir}, ${runtime_dir} and ${ENVIRONMENT_VARIABLE} in strings.
void expand(json& v, const DaemonConfig& c) {
  if (v.is_string()) {
    std::string s = v.get<std::string>(), out;
    for (std::size_t i = 0; i < s.size();) {
      if (s.compare(i, 2, "${") == 0) {
        auto end = s.find('}', i);
        if (end != std::string::npos) {
          std::string key = s.substr(i + 2, end - i - 2);
          if (key == "data_dir") out += c.data_dir.string();
          else if (key == "cache_dir") out += c.cache_dir.string();
          else if (key == "runtime_dir") out += c.runtime_dir.string();
          else out += env(key.c_str());
          i = end + 1;
          continue;
        }
      }
      out += s[i++];
    }
    v = out;
  } else if (v.is_array() || v.is_object()) {
    for (auto& e : v) expand(e, c);
  }
}

// The name of a setting in an environment variable: upper case, '-' and '.' as '_'.
std::string env_word(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '-' || c == '.') ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

const std::vector<std::string> kTopLevelKeys = {
    "runtime_dir", "cache_dir", "data_dir", "plugin_dirs", "heartbeat_interval_ms", "heartbeat_liveness",
    "request_timeout_ms", "download_stall_timeout_ms", "stop_timeout_ms", "log_level", "offline",
    "partial_retention_hours", "secret_key_file", "listen"};
// Isolation settings (docs/security.md): at top level, per source, and the keys of `limits`.
const std::vector<std::string> kIsolationKeys = {"limits", "sandbox"};
const std::vector<std::string> kSourceIsolationKeys = {"limits", "sandbox", "sandbox_read", "sandbox_write"};
const std::vector<std::string> kLimitKeys = {"address_space", "cpu_seconds", "open_files", "file_size", "core_dumps"};
const std::vector<std::string> kRestartKeys = {"policy", "backoff_initial_ms", "backoff_max_ms", "stable_after_ms",
                                               "max_failures", "hello_timeout_ms"};
const std::vector<std::string> kSourceKeys = {"plugin", "command", "kind", "priority", "handles", "enabled",
                                              "local_read", "order", "points", "formats", "hook_timeout_ms",
                                              "remote_key"};

// Overlays MODELZOO_* environment variables on the parsed file (docs/configuration.md,
// "Environment"). A value is read as YAML, so "5" is a number, "[a, b]" a list and
// "{kind: bearer}" a map. Returns the names of the variables applied.
std::vector<std::string> apply_environment(json& j, const std::string& origin) {
  std::vector<std::string> applied;
  auto value_of = [&](const std::string& var) -> std::optional<json> {
    const char* v = std::getenv(var.c_str());
    if (!v) return std::nullopt;
    try {
      json parsed = yaml_to_json(v);
      applied.push_back(var);
      return parsed.is_null() ? json(std::string(v)) : parsed;
    } catch (const YAML::Exception& e) {
      throw ConfigError(var + ": not a valid YAML value (" + std::string(e.what()) + ")");
    }
  };
  (void)origin;
  for (const auto& k : kTopLevelKeys)
    if (auto v = value_of("MODELZOO_" + env_word(k))) j[k] = *v;
  for (const auto& k : kRestartKeys)
    if (auto v = value_of("MODELZOO_RESTART_" + env_word(k))) {
      if (!j.contains("restart") || !j["restart"].is_object()) j["restart"] = json::object();
      j["restart"][k] = *v;
    }
  // MODELZOO_LIMITS, MODELZOO_SANDBOX and MODELZOO_LIMITS_<KEY> (one limit); the same under
  // MODELZOO_SOURCE_<NAME>_ below.
  auto isolation = [&](json& m, const std::string& prefix, const std::vector<std::string>& keys) {
    for (const auto& k : keys)
      if (auto v = value_of(prefix + env_word(k))) m[k] = *v;
    for (const auto& k : kLimitKeys)
      if (auto v = value_of(prefix + "LIMITS_" + env_word(k))) {
        if (!m.contains("limits") || !m["limits"].is_object()) m["limits"] = json::object();
        m["limits"][k] = *v;
      }
  };
  isolation(j, "MODELZOO_", kIsolationKeys);
  if (auto it = j.find("sources"); it != j.end() && it->is_array()) {
    for (auto& s : *it) {
      if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
      std::string prefix = "MODELZOO_SOURCE_" + env_word(s["name"].get<std::string>()) + "_";
      for (const auto& k : kSourceKeys)
        if (auto v = value_of(prefix + env_word(k))) s[k] = *v;
      isolation(s, prefix, kSourceIsolationKeys);
      // MODELZOO_SOURCE_<NAME>_CONFIG_<KEY>: a key of the source's config map (existing keys
      // keep their spelling; new ones are lower-cased).
      std::string cprefix = prefix + "CONFIG_";
      for (char** e = environ; *e; ++e) {
        std::string entry = *e;
        if (entry.rfind(cprefix, 0) != 0) continue;
        std::string word = entry.substr(cprefix.size(), entry.find('=') - cprefix.size());
        if (word.empty()) continue;
        if (!s.contains("config") || !s["config"].is_object()) s["config"] = json::object();
        std::string key;
        for (const auto& [k, _] : s["config"].items())
          if (env_word(k) == word) key = k;
        if (key.empty())
          for (char c : word) key += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (auto v = value_of(cprefix + word)) s["config"][key] = *v;
      }
    }
  }
  return applied;
}

void merge(json& base, const json& over) {
  for (const auto& [k, v] : over.items()) {
    if (v.is_object() && base.contains(k) && base[k].is_object()) merge(base[k], v);
    else base[k] = v;
  }
}

}  // namespace

void ResourceLimits::overlay(const ResourceLimits& over) {
  if (over.address_space) address_space = over.address_space;
  if (over.cpu_seconds) cpu_seconds = over.cpu_seconds;
  if (over.open_files) open_files = over.open_files;
  if (over.file_size) file_size = over.file_size;
  if (over.core_dumps) core_dumps = over.core_dumps;
}

const std::string& default_config_yaml() { return kDefaultConfig; }

namespace {

bool has_secret(const json& v) {
  if (v.is_string()) return codec::is_encrypted_secret(v.get<std::string>());
  if (v.is_object() || v.is_array())
    for (const auto& e : v)
      if (has_secret(e)) return true;
  return false;
}

// Replaces the `enc:v1:` values of source configs by their plaintext (docs/configuration.md,
// "Encrypted credentials"). The key is read only when some value needs it. An error names
// the setting, never the value.
void decrypt_secrets(DaemonConfig& c, const std::string& origin) {
  bool any = false;
  for (const auto& s : c.sources) any = any || has_secret(s.config);
  if (!any) return;
  std::vector<codec::Key> keys;
  try {
    keys.push_back(codec::read_key_file(c.secret_key_file));
  } catch (const codec::CodecError& e) {
    throw ConfigError(origin + ": secret_key_file: " + e.what() +
                      " (encrypted values need it; make one with `modelzoo secret keygen`)");
  }
  for (auto& s : c.sources) {
    try {
      codec::decrypt_secrets_in(s.config, keys, "sources[" + s.name + "].config");
    } catch (const codec::CodecError& e) {
      throw ConfigError(origin + ": " + e.what());
    }
  }
}

DaemonConfig parse_settings(json j, const std::string& origin, const fs::path& exe_dir,
                            const std::vector<std::string>& overrides);
}  // namespace

DaemonConfig parse_config(const std::string& yaml_text, const std::string& origin, const fs::path& exe_dir) {
  json j;
  try {
    j = yaml_to_json(yaml_text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(origin + ": not valid YAML: " + e.what());
  }
  if (j.is_null()) j = json::object();
  if (!j.is_object()) throw ConfigError(origin + ": top level: must be a map");
  std::vector<std::string> overrides = apply_environment(j, origin);
  try {
    return parse_settings(j, origin, exe_dir, overrides);
  } catch (const ConfigError& e) {
    if (overrides.empty()) throw;
    std::string vars;
    for (const auto& v : overrides) vars += (vars.empty() ? "" : ", ") + v;
    throw ConfigError(std::string(e.what()) + " (environment overrides in effect: " + vars + ")");
  }
}

namespace {

// A source's limits (the daemon's, the manifest's, then its own, field by field) and sandbox.
void isolation_settings(const Reader& r, const json& sj, const std::string& w, const DaemonConfig& c, Source& s) {
  s.limits = c.limits;
  s.limits.overlay(s.manifest.limits);
  ResourceLimits own;
  r.limits(sj, w, own);
  s.limits.overlay(own);
  if (!s.limits.core_dumps) s.limits.core_dumps = false;
  s.sandbox = r.sandbox(sj, w).value_or(c.sandbox);
  auto paths = [&](const char* key, std::vector<fs::path>& out) {
    for (const auto& d : r.strings(sj, key, w).value_or(std::vector<std::string>{})) {
      json v = d;
      expand(v, c);
      if (v.get<std::string>().empty() || v.get<std::string>()[0] != '/')
        r.fail(w + "." + key, "'" + d + "' is not an absolute path");
      out.emplace_back(fs::path(v.get<std::string>()).lexically_normal());
    }
  };
  paths("sandbox_read", s.sandbox_read);
  paths("sandbox_write", s.sandbox_write);
}

DaemonConfig parse_settings(json j, const std::string& origin, const fs::path& exe_dir,
                            const std::vector<std::string>& overrides) {
  Reader r{origin};
  r.only_keys(j, "top level", {"runtime_dir", "cache_dir", "data_dir", "plugin_dirs", "heartbeat_interval_ms",
                               "heartbeat_liveness", "request_timeout_ms", "download_stall_timeout_ms",
                               "stop_timeout_ms", "log_level", "restart", "sources", "offline",
                               "partial_retention_hours", "secret_key_file", "listen",
                               "limits", "sandbox", "cache"});
  DaemonConfig c;
  c.exe_dir = exe_dir;
  c.env_overrides = overrides;
  std::string uid = std::to_string(::getuid());
  // Each directory: the file (or its environment variable, overlaid above), else the XDG default.
  auto dir = [&](const char* key, const fs::path& def) -> fs::path {
    if (auto v = r.str(j, key, "top level"); v && !v->empty()) return *v;
    return def;
  };
  std::string xdg_run = env("XDG_RUNTIME_DIR");
  c.runtime_dir = dir("runtime_dir", xdg_run.empty() ? fs::path("/tmp/modelzoo-" + uid) : fs::path(xdg_run) / "modelzoo");
  std::string xdg_cache = env("XDG_CACHE_HOME");
  c.cache_dir = dir("cache_dir", (xdg_cache.empty() ? home() / ".cache" : fs::path(xdg_cache)) / "modelzoo");
  std::string xdg_data = env("XDG_DATA_HOME");
  c.data_dir = dir("data_dir", (xdg_data.empty() ? home() / ".local" / "share" : fs::path(xdg_data)) / "modelzoo");
  if (auto dirs = r.strings(j, "plugin_dirs", "top level")) {
    for (auto& d : *dirs) {
      json v = d;
      expand(v, c);
      c.plugin_dirs.emplace_back(v.get<std::string>());
    }
  } else {
    c.plugin_dirs.push_back(c.data_dir / "plugins");
  }
  if (auto v = r.integer(j, "heartbeat_interval_ms", "top level", 10, 600000)) c.heartbeat_interval = milliseconds(*v);
  if (auto v = r.integer(j, "heartbeat_liveness", "top level", 2, 100)) c.heartbeat_liveness = static_cast<int>(*v);
  if (auto v = r.integer(j, "request_timeout_ms", "top level", 10, 3600000)) c.request_timeout = milliseconds(*v);
  if (auto v = r.integer(j, "download_stall_timeout_ms", "top level", 100, 3600000))
    c.download_stall_timeout = milliseconds(*v);
  if (auto v = r.integer(j, "stop_timeout_ms", "top level", 10, 600000)) c.stop_timeout = milliseconds(*v);
  if (auto v = r.str(j, "log_level", "top level")) c.log_level = *v;
  if (auto it = j.find("offline"); it != j.end() && !it->is_null()) {
    // 1 and 0 too: MODELZOO_OFFLINE=1 is the habit of environment variables.
    if (it->is_number_unsigned() && it->get<std::uint64_t>() <= 1) *it = it->get<std::uint64_t>() == 1;
    if (!it->is_boolean()) r.fail("top level.offline", "must be true or false");
    c.offline = it->get<bool>();
  }
  if (auto v = r.integer(j, "partial_retention_hours", "top level", 0, 100000))
    c.partial_retention = std::chrono::hours(*v);
  if (auto ca = j.find("cache"); ca != j.end() && !ca->is_null()) {
    // Space policy (docs/configuration.md, "Cache space"): 0 or unlimited is no limit.
    if (!ca->is_object()) r.fail("cache", "must be a map");
    r.only_keys(*ca, "cache", {"max_size", "min_free"});
    auto limit = [&](const char* key) -> std::uint64_t {
      auto it = ca->find(key);
      if (it == ca->end() || it->is_null()) return 0;
      std::uint64_t v = r.size(*it, std::string("cache.") + key);
      return v == ResourceLimits::kUnlimited ? 0 : v;
    };
    c.cache_max_size = limit("max_size");
    c.cache_min_free = limit("min_free");
  }
  static const std::set<std::string> levels = {"trace", "debug", "info", "warn", "err", "error", "critical", "off"};
  if (!levels.count(c.log_level)) r.fail("top level.log_level", "'" + c.log_level + "' is not one of trace, debug, info, warn, error, critical, off");
  if (c.log_level == "error") c.log_level = "err";
  if (auto f = r.str(j, "secret_key_file", "top level"); f && !f->empty()) c.secret_key_file = *f;
  else c.secret_key_file = c.data_dir / "secret.key";
  if (auto l = j.find("listen"); l != j.end() && !l->is_null()) {
    if (!l->is_object()) r.fail("listen", "must be a map");
    r.only_keys(*l, "listen", {"plugins", "clients", "events", "server_key_file", "client_keys_file"});
    auto endpoint = [&](const char* key) {
      std::string e = r.str(*l, key, "listen").value_or("");
      if (!e.empty() && e.rfind("tcp://", 0) != 0)
        r.fail(std::string("listen.") + key, "'" + e + "' is not a tcp://host:port endpoint (ipc is always on)");
      return e;
    };
    c.listen.plugins = endpoint("plugins");
    c.listen.clients = endpoint("clients");
    c.listen.events = endpoint("events");
    auto file = [&](const char* key, const fs::path& def) -> fs::path {
      json v = r.str(*l, key, "listen").value_or("");
      expand(v, c);
      return v.get<std::string>().empty() ? def : fs::path(v.get<std::string>());
    };
    c.listen.server_key_file = file("server_key_file", c.data_dir / "keys" / "server.key");
    c.listen.client_keys_file = file("client_keys_file", c.data_dir / "keys" / "authorized_clients");
  }
  RestartPolicy defaults;
  r.restart(j, "top level", defaults);
  r.limits(j, "top level", c.limits);
  if (auto mode = r.sandbox(j, "top level")) c.sandbox = *mode;

  // Manifests from plugin directories: <dir>/<plugin>/plugin.yaml. A broken one is skipped.
  std::map<std::string, Manifest> manifests;
  for (const auto& d : c.plugin_dirs) {
    std::error_code ec;
    if (!fs::is_directory(d, ec)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(d, ec))
      if (fs::is_regular_file(e.path() / "plugin.yaml", ec)) files.push_back(e.path() / "plugin.yaml");
    std::sort(files.begin(), files.end());
    for (const auto& f : files) {
      try {
        Manifest m = load_manifest(f, defaults);
        if (manifests.count(m.name)) {
          c.warnings.push_back(f.string() + ": plugin '" + m.name + "' is already defined; skipped");
          continue;
        }
        manifests[m.name] = std::move(m);
      } catch (const std::exception& e) {
        c.warnings.push_back(std::string(e.what()) + "; plugin skipped");
      }
    }
  }

  std::set<std::string> names, used_manifests;
  auto add_source = [&](Source s) {
    if (!names.insert(s.name).second) r.fail("sources", "two sources are named '" + s.name + "'");
    expand(s.config, c);
    c.sources.push_back(std::move(s));
  };
  if (auto it = j.find("sources"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) r.fail("sources", "must be a list");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& sj = (*it)[i];
      std::string w = "sources[" + std::to_string(i) + "]";
      r.only_keys(sj, w, {"name", "plugin", "command", "kind", "priority", "handles", "config", "restart", "enabled",
                          "local_read", "order", "points", "formats", "hook_timeout_ms", "remote_key",
                          "limits", "sandbox", "sandbox_read", "sandbox_write"});
      if (auto en = sj.find("enabled"); en != sj.end() && en->is_boolean() && !en->get<bool>()) continue;
      Source s;
      auto name = r.str(sj, "name", w);
      if (!name) r.fail(w + ".name", "is required");
      if (auto why = bus::check_plugin_name(*name)) r.fail(w + ".name", *why);
      s.name = *name;
      auto plugin = r.str(sj, "plugin", w);
      auto command = r.strings(sj, "command", w);
      auto remote_key = r.str(sj, "remote_key", w);
      if (plugin && command) r.fail(w, "give either 'plugin' or 'command', not both");
      if (remote_key && (plugin || command))
        r.fail(w + ".remote_key", "a remote source runs on another host: give no 'plugin' or 'command'");
      if (remote_key) {
        if (auto why = bus::check_z85_key(*remote_key)) r.fail(w + ".remote_key", *why);
        s.remote_key = *remote_key;
        if (r.str(sj, "kind", w).value_or("registry") == "extension")
          r.fail(w + ".remote_key", "extensions get files by path and must run on the daemon's host");
        s.manifest.name = s.name;
        s.manifest.restart = defaults;
        s.manifest.dir = fs::path(origin).parent_path();
        if (auto k = r.str(sj, "kind", w)) {
          if (!bus::is_plugin_kind(*k)) r.fail(w + ".kind", "'" + *k + "' is not a plugin kind (registry or extension)");
          s.manifest.kind = *k;
        }
      } else if (plugin) {
        if (auto m = manifests.find(*plugin); m != manifests.end()) {
          s.manifest = m->second;
          used_manifests.insert(*plugin);
        } else if (is_builtin(*plugin)) {
          s.manifest = builtin(*plugin, exe_dir);
          s.manifest.restart = defaults;
        } else {
          r.fail(w + ".plugin", "no plugin named '" + *plugin +
                                    "' (built in: memory, local-file, remote, format-validator, decrypt, decompress; or a "
                                    "manifest in plugin_dirs)");
        }
      } else if (command) {
        if (command->empty()) r.fail(w + ".command", "is empty");
        s.manifest.name = s.name;
        s.manifest.command = *command;
        s.from_command = true;
        s.manifest.restart = defaults;
        s.manifest.dir = fs::path(origin).parent_path();
        if (auto k = r.str(sj, "kind", w)) {
          if (!bus::is_plugin_kind(*k)) r.fail(w + ".kind", "'" + *k + "' is not a plugin kind (registry or extension)");
          s.manifest.kind = *k;
        }
      } else {
        r.fail(w, "needs 'plugin' (a plugin name), 'command' (a program and its arguments) or 'remote_key' (a plugin on another host)");
      }
      if (plugin && sj.contains("kind")) r.fail(w + ".kind", "is set by the plugin's manifest; give it only with 'command'");
      s.restart = s.manifest.restart;
      r.restart(sj, w, s.restart);
      if (s.manifest.kind != "extension" && has_extension_settings(sj))
        r.fail(w, "order, points, formats and hook_timeout_ms are settings of extensions");
      s.extension = s.manifest.extension;
      read_extension_settings(r, sj, w, s.extension);
      if (auto p = r.integer(sj, "priority", w, -1000000, 1000000)) s.priority = static_cast<int>(*p);
      else s.priority = s.manifest.priority;
      s.handles = r.strings(sj, "handles", w);
      r.handles(s.handles, w);
      if (!s.handles) s.handles = s.manifest.handles;
      s.config = s.manifest.config;
      if (auto cfg = sj.find("config"); cfg != sj.end() && !cfg->is_null()) {
        if (!cfg->is_object()) r.fail(w + ".config", "must be a map");
        merge(s.config, *cfg);
      }
      if (auto dirs = r.strings(sj, "local_read", w)) {
        for (const auto& d : *dirs) {
          json v = d;
          expand(v, c);
          if (v.get<std::string>().empty() || v.get<std::string>()[0] != '/')
            r.fail(w + ".local_read", "'" + d + "' is not an absolute directory");
          s.local_read.emplace_back(v.get<std::string>());
        }
      } else if (plugin && *plugin == "local-file" && s.manifest.dir == exe_dir) {
        // The built-in local-file plugin serves its root: the daemon may read there itself.
        json root = s.config.value("root", json());
        expand(root, c);
        if (root.is_string() && !root.get<std::string>().empty()) s.local_read.emplace_back(root.get<std::string>());
      }
      isolation_settings(r, sj, w, c, s);
      add_source(std::move(s));
    }
  }
  // A manifest no source refers to runs as one source of its own name.
  for (auto& [name, m] : manifests) {
    if (used_manifests.count(name)) continue;
    if (names.count(name)) {
      c.warnings.push_back("plugin '" + name + "' from " + m.dir.string() + " has the name of a source; skipped");
      continue;
    }
    Source s;
    s.name = name;
    s.manifest = m;
    s.priority = m.priority;
    s.handles = m.handles;
    s.config = m.config;
    s.restart = m.restart;
    s.extension = m.extension;
    isolation_settings(r, json::object(), "plugin " + name, c, s);
    add_source(std::move(s));
  }
  decrypt_secrets(c, origin);
  return c;
}

}  // namespace

DaemonConfig load_config(const fs::path& path, const fs::path& exe_dir) {
  if (path.empty()) return parse_config(kDefaultConfig, "embedded default configuration", exe_dir);
  DaemonConfig c = parse_config(read_file(path), path.string(), exe_dir);
  c.config_file = fs::absolute(path);
  return c;
}

}  // namespace modelzoo::supervisor
