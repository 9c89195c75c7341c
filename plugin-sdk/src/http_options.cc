// The settings every HTTP registry shares (modelzoo/http/options.h), read from a plugin's
// configuration with errors that name the setting and never its value.
#include "modelzoo/http/options.h"

#include <map>
#include <optional>
#include <set>

#include "modelzoo/plugin.h"

#include "http_text.h"

namespace modelzoo::sdk::http {

using nlohmann::json;
using detail::has_control_chars;
using detail::is_token;
using detail::printable;

namespace {

[[noreturn]] void bad_setting(const std::string& key, const std::string& why) {
  throw Error(ErrorCode::bad_request, "setting '" + key + "' " + why);
}

std::string type_name(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a map";
  return "null";
}

// Values are never quoted in messages: some are secrets.
std::optional<std::string> opt_str(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad_setting(where + key, "must be a string, not " + type_name(*it));
  std::string v = it->get<std::string>();
  if (has_control_chars(v)) bad_setting(where + key, "holds control characters");
  return v;
}

std::optional<std::uint64_t> opt_uint(const json& j, const char* key, const std::string& where, std::uint64_t lo,
                                      std::uint64_t hi) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_unsigned()) bad_setting(where + key, "must be a non-negative integer, not " + type_name(*it));
  auto v = it->get<std::uint64_t>();
  if (v < lo || v > hi) bad_setting(where + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

void only_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) bad_setting(where + it.key(), "is not a known setting");
}

Auth auth_from_config(const json& j) {
  const std::string w = "auth.";
  if (!j.is_object()) bad_setting("auth", "must be a map, not " + type_name(j));
  only_keys(j, {"kind", "header", "query", "key", "token", "token_file", "user", "password", "command", "command_ttl_ms",
                "command_timeout_ms"},
            w);
  Auth a;
  auto kind = opt_str(j, "kind", w);
  if (!kind) bad_setting("auth.kind", "is required (api_key, bearer, basic, custom or none)");
  auto k = auth_kind_from_string(*kind);
  if (!k) bad_setting("auth.kind", "'" + printable(*kind, 40) + "' is not one of api_key, bearer, basic, custom, none");
  a.kind = *k;
  // Each setting belongs to one kind; a setting of another kind is a mistake worth naming.
  const std::map<std::string, Auth::Kind> owner = {
      {"header", Auth::Kind::api_key}, {"query", Auth::Kind::api_key},    {"key", Auth::Kind::api_key},
      {"token", Auth::Kind::bearer},   {"token_file", Auth::Kind::bearer}, {"user", Auth::Kind::basic},
      {"password", Auth::Kind::basic}, {"command", Auth::Kind::custom},   {"command_ttl_ms", Auth::Kind::custom},
      {"command_timeout_ms", Auth::Kind::custom}};
  for (const auto& [key, kind_of] : owner)
    if (j.contains(key) && kind_of != a.kind)
      bad_setting(w + key, "is a setting of auth kind " + std::string(to_string(kind_of)) + ", not " +
                               std::string(to_string(a.kind)));
  switch (a.kind) {
    case Auth::Kind::none: break;
    case Auth::Kind::api_key:
      a.key = opt_str(j, "key", w).value_or("");
      if (a.key.empty()) bad_setting("auth.key", "is required for auth kind api_key");
      a.header = opt_str(j, "header", w).value_or("");
      a.query = opt_str(j, "query", w).value_or("");
      if (!a.header.empty() && !a.query.empty()) bad_setting("auth", "give either 'header' or 'query', not both");
      if (!a.header.empty() && !is_token(a.header)) bad_setting("auth.header", "is not a valid header name");
      if (a.query.empty() && a.header.empty()) a.header = "X-API-Key";
      break;
    case Auth::Kind::bearer:
      a.token = opt_str(j, "token", w).value_or("");
      a.token_file = opt_str(j, "token_file", w).value_or("");
      if (a.token.empty() == a.token_file.empty())
        bad_setting("auth", "kind bearer needs exactly one of 'token' and 'token_file'");
      break;
    case Auth::Kind::basic: {
      auto user = opt_str(j, "user", w);
      auto password = opt_str(j, "password", w);
      if (!user || user->empty()) bad_setting("auth.user", "is required for auth kind basic");
      if (user->find(':') != std::string::npos) bad_setting("auth.user", "must not contain ':'");
      if (!password) bad_setting("auth.password", "is required for auth kind basic");
      a.user = *user;
      a.password = *password;
      break;
    }
    case Auth::Kind::custom: {
      auto it = j.find("command");
      if (it == j.end() || it->is_null()) bad_setting("auth.command", "is required for auth kind custom");
      if (it->is_string()) {
        a.command = {"/bin/sh", "-c", it->get<std::string>()};
      } else if (it->is_array() && !it->empty()) {
        for (const auto& e : *it) {
          if (!e.is_string()) bad_setting("auth.command", "must be a list of strings (a program and its arguments)");
          a.command.push_back(e.get<std::string>());
        }
      } else {
        bad_setting("auth.command", "must be a program and its arguments (a list), or a shell command (a string)");
      }
      if (a.command[0].empty()) bad_setting("auth.command", "names no program");
      if (auto v = opt_uint(j, "command_ttl_ms", w, 0, 86400000)) a.command_ttl = milliseconds(*v);
      if (auto v = opt_uint(j, "command_timeout_ms", w, 100, 600000)) a.command_timeout = milliseconds(*v);
      break;
    }
    case Auth::Kind::provider:
    case Auth::Kind::signer: bad_setting("auth.kind", "is given by a plugin's code, not by configuration");
  }
  return a;
}

}  // namespace

ClientOptions options_from_config(const json& config, const std::vector<std::string>& extra_keys) {
  if (!config.is_object()) throw Error(ErrorCode::bad_request, "the configuration must be a map, not " + type_name(config));
  std::set<std::string> allowed = {"url", "auth", "timeout_ms", "connect_timeout_ms", "retry", "cache_ttl_ms",
                                   "user_agent", "proxy", "ca_file", "streams", "piece_bytes"};
  allowed.insert(extra_keys.begin(), extra_keys.end());
  only_keys(config, allowed, "");
  ClientOptions o;
  auto url = opt_str(config, "url", "");
  if (!url || url->empty()) bad_setting("url", "is required (the registry's base URL, http:// or https://)");
  if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0)
    bad_setting("url", "must start with http:// or https://");
  if (url->find('@') != std::string::npos && url->find('@') < url->find('/', url->find("://") + 3))
    bad_setting("url", "must not hold credentials; use auth (kind basic)");
  o.base_url = *url;
  if (auto it = config.find("auth"); it != config.end() && !it->is_null()) o.auth = auth_from_config(*it);
  if (auto v = opt_uint(config, "timeout_ms", "", 100, 3600000)) o.timeout = milliseconds(*v);
  if (auto v = opt_uint(config, "connect_timeout_ms", "", 100, 600000)) o.connect_timeout = milliseconds(*v);
  if (auto v = opt_uint(config, "cache_ttl_ms", "", 0, 86400000)) o.cache_ttl = milliseconds(*v);
  if (auto v = opt_uint(config, "streams", "", 1, 16)) o.streams = static_cast<unsigned>(*v);
  if (auto v = opt_uint(config, "piece_bytes", "", 1u << 20, 1u << 30)) o.piece_bytes = *v;
  if (auto v = opt_str(config, "user_agent", "")) o.user_agent = *v;
  if (auto v = opt_str(config, "proxy", "")) o.proxy = *v;
  if (auto v = opt_str(config, "ca_file", "")) o.ca_file = *v;
  if (auto it = config.find("retry"); it != config.end() && !it->is_null()) {
    if (!it->is_object()) bad_setting("retry", "must be a map, not " + type_name(*it));
    only_keys(*it, {"attempts", "initial_ms", "max_ms"}, "retry.");
    if (auto v = opt_uint(*it, "attempts", "retry.", 1, 100)) o.retry.max_attempts = static_cast<int>(*v);
    if (auto v = opt_uint(*it, "initial_ms", "retry.", 0, 600000)) o.retry.initial_delay = milliseconds(*v);
    if (auto v = opt_uint(*it, "max_ms", "retry.", 0, 3600000)) o.retry.max_delay = milliseconds(*v);
    if (o.retry.max_delay < o.retry.initial_delay) bad_setting("retry.max_ms", "must not be below retry.initial_ms");
  }
  return o;
}

}  // namespace modelzoo::sdk::http
