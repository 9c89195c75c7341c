#include "plugin_scaffold_cmd.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <system_error>

#include "modelzoo/bus/hello.h"
#include "modelzoo/config/config.h"  // supervisor::load_manifest, yaml_to_json
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "scaffold_templates.h"

#ifndef MODELZOO_VERSION
#define MODELZOO_VERSION "0.0.0"
#endif

namespace modelzoo::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// ---- plugin new --------------------------------------------------------------------------

fs::path self_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

bool has_python_sdk(const fs::path& dir) {
  std::error_code ec;
  return !dir.empty() && fs::is_regular_file(dir / "modelzoo_plugin" / "__init__.py", ec);
}

// Where the Python SDK is: installed next to this program (<prefix>/share/modelzoo/python),
// else (running from a build tree) the source tree's; the installed place if neither exists.
fs::path find_python_sdk(const fs::path& prefix) {
  fs::path installed = prefix.empty() ? fs::path() : prefix / MODELZOO_INSTALL_PYTHONDIR;
  if (has_python_sdk(installed)) return installed;
#ifdef MODELZOO_SOURCE_PYTHON_SDK
  if (has_python_sdk(MODELZOO_SOURCE_PYTHON_SDK)) return MODELZOO_SOURCE_PYTHON_SDK;
#endif
  return installed;
}

// The prefix modelzoo is installed in, when this program runs from there (it has the SDK's
// headers); empty otherwise (a build tree).
fs::path install_prefix(const fs::path& exe_dir) {
  if (exe_dir.empty()) return {};
  fs::path prefix = exe_dir.parent_path();
  std::error_code ec;
  if (fs::is_regular_file(prefix / "include" / "modelzoo" / "plugin.h", ec)) return prefix;
  return {};
}

// ---- plugin validate ---------------------------------------------------------------------

const std::vector<std::string> kManifestKeys = {"name",    "version", "kind",    "protocol", "command",
                                                "priority", "handles", "restart", "config",   "order",
                                                "points",  "formats", "hook_timeout_ms", "limits"};
const std::vector<std::string> kExtensionKeys = {"order", "points", "formats", "hook_timeout_ms"};

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// A JSON value as the manifest's author wrote it, for messages.
std::string shown(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

class Checker {
 public:
  Checker(const json& manifest, fs::path dir) : m_(manifest), dir_(std::move(dir)) {}

  std::vector<std::string> run() {
    for (const auto& [k, _] : m_.items())
      if (std::find(kManifestKeys.begin(), kManifestKeys.end(), k) == kManifestKeys.end())
        add(k, "is not a manifest setting (" + join(kManifestKeys, ", ") + ")");
    name();
    version();
    std::string kind = this->kind();
    protocol();
    command();
    integer("priority", -1000000, 1000000);
    handles();
    restart();
    if (auto it = m_.find("config"); it != m_.end() && !it->is_null() && !it->is_object())
      add("config", "must be a map");
    if (kind == "extension") {
      points();
      formats();
      integer("order", -1000000, 1000000);
      integer("hook_timeout_ms", 10, 86400000);
    } else if (kind == "registry") {
      for (const auto& k : kExtensionKeys)
        if (m_.contains(k)) add(k, "is a setting of extensions; this plugin is a registry (kind: registry)");
    }
    return problems_;
  }

 private:
  void add(const std::string& where, const std::string& what) { problems_.push_back(where + ": " + what); }

  const json* find(const char* key) const {
    auto it = m_.find(key);
    return it == m_.end() || it->is_null() ? nullptr : &*it;
  }

  // A string setting; numbers and booleans count, as the daemon reads them.
  std::optional<std::string> str(const char* key) {
    const json* v = find(key);
    if (!v) return std::nullopt;
    if (v->is_string()) return v->get<std::string>();
    if (v->is_number() || v->is_boolean()) return v->dump();
    add(key, "must be a string");
    return std::nullopt;
  }

  // A string or a list of strings; nullopt (and a problem) when it is anything else.
  std::optional<std::vector<std::string>> strings(const char* key, const json* v) {
    if (!v) return std::nullopt;
    if (v->is_string()) return std::vector<std::string>{v->get<std::string>()};
    std::vector<std::string> out;
    if (v->is_array()) {
      bool ok = true;
      for (const auto& e : *v) {
        if (e.is_string()) out.push_back(e.get<std::string>());
        else ok = false;
      }
      if (ok) return out;
    }
    add(key, "must be a list of strings");
    return std::nullopt;
  }

  void integer(const char* key, long long lo, long long hi, const json* v = nullptr, const std::string& where = {}) {
    if (!v) v = find(key);
    if (!v || v->is_null()) return;
    std::string w = where.empty() ? key : where;
    if (!v->is_number_integer()) {
      add(w, "'" + shown(*v) + "' must be an integer between " + std::to_string(lo) + " and " + std::to_string(hi));
      return;
    }
    long long n = v->is_number_unsigned() && v->get<unsigned long long>() > static_cast<unsigned long long>(LLONG_MAX)
                      ? LLONG_MAX
                      : v->get<long long>();
    if (n < lo || n > hi)
      add(w, std::to_string(n) + " is out of range (" + std::to_string(lo) + " to " + std::to_string(hi) + ")");
  }

  void name() {
    auto n = str("name");
    if (!n) {
      if (!m_.contains("name") || m_["name"].is_null()) add("name", "is required (a plugin name: a-z, 0-9, '-', '_')");
      return;
    }
    if (auto why = bus::check_plugin_name(*n)) add("name", *why);
  }

  void version() {
    auto v = str("version");
    if (!v) {
      if (!m_.contains("version") || m_["version"].is_null())
        add("version", "is required (a semantic version, e.g. 0.1.0)");
      return;
    }
    if (v->size() > 64) add("version", "is longer than 64 characters");
    else if (!bus::SemVer::parse(*v))
      add("version", "'" + *v + "' is not a semantic version (MAJOR.MINOR.PATCH, e.g. 1.0.0)");
  }

  std::string kind() {
    auto k = str("kind");
    if (!k) return m_.contains("kind") && !m_["kind"].is_null() ? "" : "registry";
    if (!bus::is_plugin_kind(*k)) {
      add("kind", "'" + *k + "' is not a plugin kind (registry or extension)");
      return "";
    }
    return *k;
  }

  void protocol() {
    const json* v = find("protocol");
    if (!v) return;
    if (auto why = supervisor::protocol_range_problem(*v, bus::kProtocolVersion)) add("protocol", *why);
  }

  void command() {
    const json* v = find("command");
    if (!v) {
      add("command", "is required (a program and its arguments, e.g. [./build/my-plugin])");
      return;
    }
    auto cmd = strings("command", v);
    if (!cmd) return;
    if (cmd->empty() || (*cmd)[0].empty()) {
      add("command", "is empty (a program and its arguments, e.g. [./build/my-plugin])");
      return;
    }
    const std::string& exe = (*cmd)[0];
    std::error_code ec;
    if (exe.find('/') == std::string::npos) {
      // The daemon looks a bare name up in PATH.
      bool found = false;
      std::stringstream path(std::getenv("PATH") ? std::getenv("PATH") : "");
      for (std::string d; std::getline(path, d, ':') && !found;) {
        fs::path candidate = fs::path(d) / exe;
        found = !d.empty() && ::access(candidate.c_str(), X_OK) == 0 && !fs::is_directory(candidate, ec);
      }
      if (!found) add("command", "'" + exe + "' is not found in PATH");
    } else {
      fs::path p = fs::path(exe).is_relative() ? (dir_ / exe).lexically_normal() : fs::path(exe);
      if (!fs::exists(p, ec)) {
        std::string hint;
        if (fs::exists(dir_ / "CMakeLists.txt", ec))
          hint = " (build the plugin first: cmake -S . -B build && cmake --build build)";
        std::string where = fs::path(exe).is_relative() ? " in " + dir_.string() : "";
        add("command", "'" + exe + "' does not exist" + where + hint);
      } else if (fs::is_directory(p, ec)) {
        add("command", "'" + exe + "' is a directory, not a program");
      } else if (::access(p.c_str(), X_OK) != 0) {
        add("command", "'" + exe + "' is not executable (chmod +x)");
      }
    }
    // An interpreter's script: the plugin runs in its directory, so a relative script is
    // found there.
    std::string base = fs::path(exe).filename().string();
    bool interpreter = base.rfind("python", 0) == 0 || base == "node" || base == "ruby" || base == "perl" ||
                       base == "sh" || base == "bash";
    if (interpreter && cmd->size() > 1) {
      const std::string& script = (*cmd)[1];
      if (!script.empty() && script[0] != '-') {
        fs::path s = fs::path(script).is_relative() ? dir_ / script : fs::path(script);
        if (!fs::is_regular_file(s, ec))
          add("command", "the script '" + script + "' does not exist in " + dir_.string());
      }
    }
  }

  void handles() {
    auto h = strings("handles", find("handles"));
    if (!h) return;
    for (const auto& p : *h) {
      if (p.empty() || p.size() > 200) {
        add("handles", "pattern '" + p + "' must have 1 to 200 characters");
        continue;
      }
      // '*' and '?' are the only wildcards; every other character matches itself, so one that
      // never occurs in a model name ([A-Za-z0-9._-/]) makes a pattern that matches nothing.
      for (char c : p)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '/' ||
              c == '*' || c == '?')) {
          add("handles", "pattern '" + p + "' contains '" + std::string(1, c) +
                             "', which is not a wildcard ('*', '?') and never occurs in a model name");
          break;
        }
    }
  }

  void restart() {
    const json* r = find("restart");
    if (!r) return;
    if (!r->is_object()) {
      add("restart", "must be a map");
      return;
    }
    const std::vector<std::string> keys = {"policy",       "backoff_initial_ms", "backoff_max_ms", "stable_after_ms",
                                           "max_failures", "hello_timeout_ms"};
    for (const auto& [k, _] : r->items())
      if (std::find(keys.begin(), keys.end(), k) == keys.end())
        add("restart." + k, "is not a restart setting (" + join(keys, ", ") + ")");
    if (auto it = r->find("policy"); it != r->end() && !it->is_null()) {
      std::string p = shown(*it);
      if (p != "always" && p != "on-failure" && p != "never")
        add("restart.policy", "'" + p + "' must be always, on-failure or never");
    }
    auto num = [&](const char* key, long long lo, long long hi) {
      if (auto it = r->find(key); it != r->end()) integer(key, lo, hi, &*it, std::string("restart.") + key);
    };
    num("backoff_initial_ms", 0, 3600000);
    num("backoff_max_ms", 0, 86400000);
    num("stable_after_ms", 0, 86400000);
    num("max_failures", 1, 1000);
    num("hello_timeout_ms", 100, 600000);
  }

  void points() {
    auto p = strings("points", find("points"));
    if (!p) return;
    if (p->empty()) add("points", "must name at least one extension point");
    for (const auto& x : *p)
      if (!bus::is_extension_point(x))
        add("points", "'" + x + "' is not an extension point (" + bus::extension_point_list() + ")");
  }

  void formats() {
    auto f = strings("formats", find("formats"));
    if (!f) return;
    for (const auto& x : *f)
      if (x.empty() || x.size() > 32 || x.find_first_of("./ ") != std::string::npos)
        add("formats", "'" + x + "' is not a file format (a file-name suffix without the dot, e.g. gguf)");
  }

  const json& m_;
  fs::path dir_;
  std::vector<std::string> problems_;
};

// "DIR/plugin.yaml: manifest.version: why" -> "version: why".
std::string strip_origin(std::string message, const std::string& origin) {
  if (message.rfind(origin + ": ", 0) == 0) message = message.substr(origin.size() + 2);
  if (message.rfind("manifest.", 0) == 0) message = message.substr(9);
  else if (message.rfind("manifest: ", 0) == 0) message = message.substr(10);
  return message;
}

}  // namespace

std::vector<std::string> validate_plugin_dir(const fs::path& dir) {
  const std::string shown_file = "plugin.yaml";
  fs::path file = dir / "plugin.yaml";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {dir.string() + ": is not a directory"};
  if (!fs::is_regular_file(file, ec)) return {shown_file + ": not found in " + dir.string()};
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return {shown_file + ": cannot be read"};
  json m;
  try {
    m = supervisor::yaml_to_json(text.str());
  } catch (const std::exception& e) {
    return {shown_file + ": not valid YAML: " + e.what()};
  }
  if (!m.is_object()) return {shown_file + ": must be a map of settings (name, version, command, ...)"};
  std::vector<std::string> problems = Checker(m, dir).run();
  // What the daemon itself says, in case it checks something the lines above do not.
  try {
    supervisor::load_manifest(file);
  } catch (const std::exception& e) {
    if (problems.empty()) problems.push_back(strip_origin(e.what(), file.string()));
  }
  for (auto& p : problems) p = shown_file + ": " + p;
  return problems;
}

CLI::App* add_plugin_new_command(CLI::App& plugin_group, PluginNewOptions& options) {
  CLI::App* cmd =
      plugin_group.add_subcommand("new", "Create a new plugin project that builds and passes `plugin test`");
  cmd->add_option("NAME", options.name, "Plugin name ([a-z0-9_-])")->required();
  cmd->add_option("--lang", options.lang, "cpp or python")->required()->check(CLI::IsMember({"cpp", "python"}));
  cmd->add_option("--kind", options.kind, "registry (serves models; the default) or extension (hooks a model's life)")
      ->check(CLI::IsMember({"registry", "extension"}));
  cmd->add_option("--dir", options.dir, "Where to create it (default: ./NAME); must not exist or be empty");
  return cmd;
}

CLI::App* add_plugin_validate_command(CLI::App& plugin_group, PluginValidateOptions& options) {
  CLI::App* cmd = plugin_group.add_subcommand(
      "validate", "Check a plugin directory's manifest (plugin.yaml): fields, versions, command, patterns");
  cmd->add_option("DIR", options.dir, "The plugin directory")->required();
  return cmd;
}

int run_plugin_new(const PluginNewOptions& options, bool json_out) {
  auto fail = [&](const std::string& message) {
    std::cerr << "modelzoo: plugin new: " << message << '\n';
    if (json_out) std::cout << json{{"error", {{"code", "bad_request"}, {"message", message}}}}.dump(2) << '\n';
    return 1;
  };
  if (auto why = bus::check_plugin_name(options.name)) return fail(*why);
  fs::path dir = options.dir.empty() ? fs::path(options.name) : fs::path(options.dir);
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) return fail(dir.string() + " exists and is not a directory");
    if (!fs::is_empty(dir, ec)) return fail(dir.string() + " exists and is not empty; choose another --dir");
  }
  fs::path exe_dir = self_dir();
  fs::path prefix = install_prefix(exe_dir);
  fs::path python_sdk;
  if (options.lang == "python") python_sdk = find_python_sdk(exe_dir.empty() ? fs::path() : exe_dir.parent_path());
  scaffold::Params params{.name = options.name,
                          .lang = options.lang,
                          .kind = options.kind,
                          .prefix = prefix.string(),
                          .python_sdk = python_sdk.string(),
                          .sdk_version = MODELZOO_VERSION};
  std::vector<scaffold::File> files;
  try {
    files = scaffold::render(params);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
  fs::create_directories(dir, ec);
  if (ec) return fail("cannot create " + dir.string() + ": " + ec.message());
  json created = json::array();
  for (const auto& f : files) {
    fs::path path = dir / f.path;
    std::ofstream out(path, std::ios::binary);
    out << f.content;
    out.close();
    if (!out) return fail("cannot write " + path.string());
    if (f.executable)
      fs::permissions(path, fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                      fs::perm_options::add, ec);
    created.push_back(f.path);
  }
  if (json_out) {
    std::cout << json{{"name", options.name},
                      {"lang", options.lang},
                      {"kind", options.kind},
                      {"dir", dir.string()},
                      {"files", created}}
                     .dump(2)
              << '\n';
    return 0;
  }
  std::cout << "Created " << options.kind << " plugin '" << options.name << "' (" << options.lang << ") in "
            << dir.string() << ":\n";
  for (const auto& f : files) std::cout << "  " << f.path << '\n';
  std::string d = dir.string();
  std::cout << "\nNext:\n  cd " << d << '\n';
  if (options.lang == "cpp") {
    std::cout << "  cmake -S . -B build" << (prefix.empty() ? "" : " -DCMAKE_PREFIX_PATH=" + prefix.string())
              << " && cmake --build build\n"
              << "  modelzoo plugin validate .\n"
              << "  modelzoo plugin test -- ./" << scaffold::cpp_binary_path(options.name) << '\n';
  } else {
    std::cout << "  modelzoo plugin validate .\n"
              << "  modelzoo plugin test -- /usr/bin/python3 ./plugin.py\n";
    if (!has_python_sdk(params.python_sdk))
      std::cout << "(the Python SDK was not found at " << params.python_sdk
                << "; set MODELZOO_PYTHON_SDK to the directory holding modelzoo_plugin)\n";
  }
  std::cout << "README.md says how to run it under modelzood.\n";
  return 0;
}

int run_plugin_validate(const PluginValidateOptions& options, bool json_out) {
  std::vector<std::string> problems = validate_plugin_dir(options.dir);
  if (json_out) {
    std::cout << json{{"dir", options.dir}, {"problems", problems}}.dump(2) << '\n';
  } else if (problems.empty()) {
    std::cout << "ok\n";
  } else {
    for (const auto& p : problems) std::cout << p << '\n';
  }
  return problems.empty() ? 0 : 1;
}

}  // namespace modelzoo::cli
