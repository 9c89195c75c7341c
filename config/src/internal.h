// Internals of modelzoo_config shared by its files (not installed, not a public header):
// the typed reader of settings whose errors name the file and the setting, and the pieces
// of manifest reading that the daemon configuration uses too.
#pragma once

#include <filesystem>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/config/config.h"

namespace modelzoo::supervisor::detail {

using nlohmann::json;

// Reading typed settings with errors that name the file and the setting.
struct Reader {
  std::string origin;

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw ConfigError(origin + ": " + where + ": " + what);
  }
  void only_keys(const json& m, const std::string& where, std::initializer_list<const char*> keys) const {
    if (!m.is_object()) fail(where, "must be a map");
    std::set<std::string> allowed(keys.begin(), keys.end());
    for (const auto& [k, _] : m.items())
      if (!allowed.count(k)) fail(where, "unknown setting '" + k + "'");
  }
  std::optional<std::string> str(const json& m, const char* key, const std::string& where) const {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number() || it->is_boolean()) return it->dump();
    fail(where + "." + key, "must be a string");
  }
  std::optional<long long> integer(const json& m, const char* key, const std::string& where, long long lo,
                                   long long hi) const {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return std::nullopt;
    if (!it->is_number_integer()) fail(where + "." + key, "must be an integer");
    long long v = it->get<long long>();
    if (v < lo || v > hi) fail(where + "." + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
  }
  std::optional<std::vector<std::string>> strings(const json& m, const char* key, const std::string& where) const {
    auto it = m.find(key);
    if (it == m.end() || it->is_null()) return std::nullopt;
    std::vector<std::string> out;
    if (it->is_string()) return std::vector<std::string>{it->get<std::string>()};
    if (!it->is_array()) fail(where + "." + key, "must be a list of strings");
    for (const auto& e : *it) {
      if (!e.is_string()) fail(where + "." + key, "must be a list of strings");
      out.push_back(e.get<std::string>());
    }
    return out;
  }
  void restart(const json& m, const std::string& where, RestartPolicy& p) const {
    auto it = m.find("restart");
    if (it == m.end() || it->is_null()) return;
    std::string w = where + ".restart";
    only_keys(*it, w, {"policy", "backoff_initial_ms", "backoff_max_ms", "stable_after_ms", "max_failures",
                       "hello_timeout_ms"});
    if (auto s = str(*it, "policy", w)) {
      if (*s == "always") p.mode = RestartPolicy::Mode::always;
      else if (*s == "on-failure") p.mode = RestartPolicy::Mode::on_failure;
      else if (*s == "never") p.mode = RestartPolicy::Mode::never;
      else fail(w + ".policy", "must be always, on-failure or never");
    }
    if (auto v = integer(*it, "backoff_initial_ms", w, 0, 3600000)) p.backoff_initial = milliseconds(*v);
    if (auto v = integer(*it, "backoff_max_ms", w, 0, 86400000)) p.backoff_max = milliseconds(*v);
    if (auto v = integer(*it, "stable_after_ms", w, 0, 86400000)) p.stable_after = milliseconds(*v);
    if (auto v = integer(*it, "max_failures", w, 1, 1000)) p.max_failures = static_cast<int>(*v);
    if (auto v = integer(*it, "hello_timeout_ms", w, 100, 600000)) p.hello_timeout = milliseconds(*v);
  }
  void handles(const std::optional<std::vector<std::string>>& h, const std::string& where) const {
    if (!h) return;
    for (const auto& p : *h)
      if (p.empty() || p.size() > 200) fail(where + ".handles", "pattern '" + p + "' must have 1 to 200 characters");
  }
  // A size in bytes: an integer, or a number with a unit (B, KiB, MiB, GiB, TiB), or unlimited.
  std::uint64_t size(const json& v, const std::string& where) const {
    const std::string usage = " (bytes, a size such as 512MiB or 4 GiB, or unlimited)";
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (!v.is_string()) fail(where, "'" + v.dump() + "' is not a size" + usage);
    std::string s = v.get<std::string>();
    if (s == "unlimited") return ResourceLimits::kUnlimited;
    std::size_t i = 0;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    std::string number = s.substr(0, i), unit;
    for (; i < s.size(); ++i)
      if (s[i] != ' ') unit += static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    static const std::map<std::string, std::uint64_t> units = {
        {"", 1}, {"b", 1}, {"kib", 1ULL << 10}, {"mib", 1ULL << 20}, {"gib", 1ULL << 30}, {"tib", 1ULL << 40}};
    auto u = units.find(unit);
    if (number.empty() || std::count(number.begin(), number.end(), '.') > 1 || number == ".")
      fail(where, "'" + s + "' is not a size" + usage);
    if (u == units.end())
      fail(where, "'" + s + "' has an unknown unit '" + unit + "' (B, KiB, MiB, GiB or TiB)");
    long double bytes = std::strtold(number.c_str(), nullptr) * static_cast<long double>(u->second);
    if (bytes >= 18446744073709551615.0L) fail(where, "'" + s + "' is too large" + usage);
    return static_cast<std::uint64_t>(bytes);
  }
  // A count: a non-negative integer or unlimited.
  std::uint64_t count(const json& v, const std::string& where, const char* what) const {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    if (v.is_string() && v.get<std::string>() == "unlimited") return ResourceLimits::kUnlimited;
    fail(where, "'" + (v.is_string() ? v.get<std::string>() : v.dump()) + "' is not " + what + " (or unlimited)");
  }
  // The `limits` map of the top level, a manifest or a source (docs/security.md).
  void limits(const json& m, const std::string& where, ResourceLimits& l) const {
    auto it = m.find("limits");
    if (it == m.end() || it->is_null()) return;
    std::string w = where + ".limits";
    only_keys(*it, w, {"address_space", "cpu_seconds", "open_files", "file_size", "core_dumps"});
    auto at_least = [&](const char* key, std::uint64_t v, std::uint64_t lo, const std::string& lo_text) {
      if (v < lo) fail(w + "." + key, "must be at least " + lo_text + " (or unlimited); the plugin could not start");
      return v;
    };
    const json& j = *it;
    if (auto v = j.find("address_space"); v != j.end() && !v->is_null())
      l.address_space = at_least("address_space", size(*v, w + ".address_space"), 16ULL << 20, "16 MiB");
    if (auto v = j.find("file_size"); v != j.end() && !v->is_null()) l.file_size = size(*v, w + ".file_size");
    if (auto v = j.find("cpu_seconds"); v != j.end() && !v->is_null())
      l.cpu_seconds = at_least("cpu_seconds", count(*v, w + ".cpu_seconds", "a number of seconds"), 1, "1");
    if (auto v = j.find("open_files"); v != j.end() && !v->is_null()) {
      l.open_files = at_least("open_files", count(*v, w + ".open_files", "a number of files"), 16, "16");
      if (*l.open_files != ResourceLimits::kUnlimited && *l.open_files > (1ULL << 20))
        fail(w + ".open_files", "must be at most 1048576 (the kernel's usual fs.nr_open)");
      if (*l.open_files == ResourceLimits::kUnlimited)
        fail(w + ".open_files", "cannot be unlimited (the kernel caps descriptors at fs.nr_open); give a number");
    }
    if (auto v = j.find("core_dumps"); v != j.end() && !v->is_null()) {
      if (!v->is_boolean()) fail(w + ".core_dumps", "must be true or false");
      l.core_dumps = v->get<bool>();
    }
  }
  // `sandbox`: off, landlock or require.
  std::optional<SandboxMode> sandbox(const json& m, const std::string& where) const {
    auto it = m.find("sandbox");
    if (it == m.end() || it->is_null()) return std::nullopt;
    if (it->is_boolean() && !it->get<bool>()) return SandboxMode::off;  // YAML reads `off` as false
    if (it->is_string()) {
      if (*it == "off") return SandboxMode::off;
      if (*it == "landlock") return SandboxMode::landlock;
      if (*it == "require") return SandboxMode::require;
    }
    fail(where + ".sandbox", "'" + (it->is_string() ? it->get<std::string>() : it->dump()) +
                                 "' is not a sandbox mode (off, landlock or require)");
  }
};

// The contents of `file`; ConfigError naming it when it cannot be read.
std::string read_file(const std::filesystem::path& file);

// The plugins built with the daemon (found next to its executable) and their manifests.
bool is_builtin(const std::string& name);
Manifest builtin(const std::string& name, const std::filesystem::path& exe_dir);

// Extension settings of a manifest or a source (`where` names it in errors), and whether
// `j` holds any.
void read_extension_settings(const Reader& r, const json& j, const std::string& where, ExtensionSettings& e);
bool has_extension_settings(const json& j);

Manifest parse_manifest(const json& j, const std::string& origin, const std::filesystem::path& dir,
                        const RestartPolicy& defaults);

}  // namespace modelzoo::supervisor::detail
