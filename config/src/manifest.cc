// Plugin manifests (plugin.yaml, docs/writing-plugins.md) and the built-in plugins' manifests.
#include <set>

#include <yaml-cpp/yaml.h>

#include "internal.h"
#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using nlohmann::json;
using detail::parse_manifest;
using detail::read_file;

namespace detail {

// The plugins built with the daemon, found next to its executable.
const std::set<std::string> kBuiltinRegistries = {"memory", "local-file", "remote", "huggingface", "oci", "hf-cache", "ollama-store", "s3", "azure-blob", "gcs"};
const std::set<std::string> kBuiltinExtensions = {"format-validator", "decrypt", "decompress"};

Manifest builtin(const std::string& name, const fs::path& exe_dir) {
  Manifest m;
  m.name = name;
  m.version = MODELZOO_VERSION;
  bool ext = kBuiltinExtensions.count(name) > 0;
  m.kind = ext ? "extension" : "registry";
  m.command = {(exe_dir / ((ext ? "modelzoo-ext-" : "modelzoo-plugin-") + name)).string()};
  m.dir = exe_dir;
  return m;
}

bool is_builtin(const std::string& name) { return kBuiltinRegistries.count(name) || kBuiltinExtensions.count(name); }

void read_extension_settings(const Reader& r, const json& j, const std::string& where, ExtensionSettings& e) {
  if (auto o = r.integer(j, "order", where, -1000000, 1000000)) e.order = static_cast<int>(*o);
  if (auto p = r.strings(j, "points", where)) {
    if (p->empty()) r.fail(where + ".points", "must name at least one extension point");
    for (const auto& x : *p)
      if (!bus::is_extension_point(x))
        r.fail(where + ".points", "'" + x + "' is not an extension point (" + bus::extension_point_list() + ")");
    e.points = *p;
  }
  if (auto f = r.strings(j, "formats", where)) {
    for (auto& x : *f) {
      if (x.empty() || x.size() > 32 || x.find_first_of("./ ") != std::string::npos)
        r.fail(where + ".formats", "'" + x + "' is not a file format (a file-name suffix without the dot, e.g. gguf)");
      for (auto& ch : x) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    e.formats = *f;
  }
  if (auto t = r.integer(j, "hook_timeout_ms", where, 10, 86400000)) e.hook_timeout = milliseconds(*t);
}

bool has_extension_settings(const json& j) {
  for (const char* k : {"order", "points", "formats", "hook_timeout_ms"})
    if (j.contains(k)) return true;
  return false;
}

namespace {

// A manifest's `protocol` must include the version this daemon speaks, else the plugin could
// never say hello.
void check_protocol(const Reader& r, const json& v) {
  if (auto why = protocol_range_problem(v, bus::kProtocolVersion)) r.fail("manifest.protocol", *why);
}

}  // namespace

Manifest parse_manifest(const json& j, const std::string& origin, const fs::path& dir, const RestartPolicy& defaults) {
  Reader r{origin};
  r.only_keys(j, "manifest", {"name", "version", "kind", "protocol", "command", "priority", "handles", "restart",
                              "config", "order", "points", "formats", "hook_timeout_ms", "limits"});
  Manifest m;
  m.dir = dir;
  m.restart = defaults;
  auto name = r.str(j, "name", "manifest");
  if (!name) r.fail("manifest.name", "is required");
  if (auto why = bus::check_plugin_name(*name)) r.fail("manifest.name", *why);
  m.name = *name;
  if (auto v = r.str(j, "version", "manifest")) {
    if (auto why = bus::check_version(*v)) r.fail("manifest.version", *why);
    m.version = *v;
  }
  if (auto k = r.str(j, "kind", "manifest")) {
    if (!bus::is_plugin_kind(*k))
      r.fail("manifest.kind", "'" + *k + "' is not a plugin kind (registry or extension)");
    m.kind = *k;
  }
  if (m.kind != "extension" && has_extension_settings(j))
    r.fail("manifest", "order, points, formats and hook_timeout_ms are settings of extensions (kind: extension)");
  read_extension_settings(r, j, "manifest", m.extension);
  if (auto it = j.find("protocol"); it != j.end() && !it->is_null()) check_protocol(r, *it);
  auto cmd = r.strings(j, "command", "manifest");
  if (!cmd || cmd->empty() || (*cmd)[0].empty()) r.fail("manifest.command", "is required (a program and its arguments)");
  m.command = *cmd;
  if (fs::path(m.command[0]).is_relative() && m.command[0].find('/') != std::string::npos)
    m.command[0] = (dir / m.command[0]).lexically_normal().string();
  if (auto p = r.integer(j, "priority", "manifest", -1000000, 1000000)) m.priority = static_cast<int>(*p);
  m.handles = r.strings(j, "handles", "manifest");
  r.handles(m.handles, "manifest");
  r.restart(j, "manifest", m.restart);
  r.limits(j, "manifest", m.limits);
  if (auto it = j.find("config"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) r.fail("manifest.config", "must be a map");
    m.config = *it;
  }
  return m;
}

}  // namespace detail

Manifest load_manifest(const fs::path& file, const RestartPolicy& defaults) {
  json j;
  try {
    j = yaml_to_json(read_file(file));
  } catch (const YAML::Exception& e) {
    throw ConfigError(file.string() + ": not valid YAML: " + e.what());
  }
  return parse_manifest(j, file.string(), file.parent_path(), defaults);
}

std::optional<std::string> protocol_range_problem(const json& v, int host) {
  const std::string usage = " (a list of protocol versions such as [1], or a range such as \">=1\")";
  std::string host_s = std::to_string(host);
  auto excludes = [&](const std::string& what) {
    return "'" + what + "' does not include protocol " + host_s + ", the version this modelzoo speaks";
  };
  if (v.is_number_integer() || v.is_array()) {
    json list = v.is_array() ? v : json::array({v});
    if (list.empty()) return "names no protocol version" + usage;
    bool speaks = false;
    for (const auto& e : list) {
      if (!e.is_number_integer() || e.get<long long>() < 1)
        return "'" + (e.is_string() ? e.get<std::string>() : e.dump()) + "' is not a protocol version" + usage;
      if (e.get<long long>() == host) speaks = true;
    }
    if (!speaks) return excludes(v.dump());
    return std::nullopt;
  }
  if (!v.is_string()) return "must be a list of protocol versions or a range" + usage;
  // Constraints separated by commas or blanks, each [>=|<=|>|<|=|==]N; all must hold.
  std::string s = v.get<std::string>();
  bool any = false, holds = true;
  std::size_t i = 0;
  while (i < s.size()) {
    if (s[i] == ',' || s[i] == ' ' || s[i] == '\t') {
      ++i;
      continue;
    }
    std::string op;
    while (i < s.size() && (s[i] == '>' || s[i] == '<' || s[i] == '=')) op += s[i++];
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t start = i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
    if (start == i || i - start > 9 || !(op.empty() || op == ">=" || op == "<=" || op == ">" || op == "<" ||
                                         op == "=" || op == "=="))
      return "'" + s + "' is not a protocol version range" + usage;
    long long n = std::stoll(s.substr(start, i - start));
    bool ok = op == ">=" ? host >= n : op == "<=" ? host <= n : op == ">" ? host > n : op == "<" ? host < n : host == n;
    holds = holds && ok;
    any = true;
  }
  if (!any) return "'" + s + "' is not a protocol version range" + usage;
  if (!holds) return excludes(s);
  return std::nullopt;
}

}  // namespace modelzoo::supervisor
