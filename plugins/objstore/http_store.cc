#include "objstore/http_store.h"

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace modelzoo::plugins::objstore {

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::uint64_t parse_size(const std::string& text, const std::string& what) {
  char* end = nullptr;
  errno = 0;
  unsigned long long n = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end || errno || text[0] == '-') throw std::invalid_argument(what + " is not a number");
  return n;
}

std::shared_ptr<sdk::http::HttpClient> credential_client(const sdk::http::ClientOptions& base, const std::string& url,
                                                         bool instance_metadata) {
  sdk::http::ClientOptions o = base;
  o.base_url = url;
  o.auth = {};
  o.cache_ttl = sdk::http::milliseconds(0);
  o.streams = 1;
  if (instance_metadata) {
    o.proxy = "";
    o.connect_timeout = sdk::http::milliseconds(1000);
    o.timeout = sdk::http::milliseconds(1000);
    o.retry.max_attempts = 1;
  }
  return std::make_shared<sdk::http::HttpClient>(o);
}

Settings::Settings(const nlohmann::json& config, std::string plugin, const EnvFn& env, const std::string& url_instead,
                   const std::string& auth_instead)
    : rest_(config.is_object() ? config : nlohmann::json::object()),
      plugin_(std::move(plugin)),
      env_(env ? env : EnvFn([](const char* n) { return std::getenv(n); })) {
  if (!config.is_null() && !config.is_object()) throw sdk::Error(sdk::ErrorCode::bad_request, plugin_ + ": the configuration is not a map");
  if (rest_.contains("url")) bad("url", "is not a setting of this plugin (use " + url_instead + ")");
  if (rest_.contains("auth")) bad("auth", "is not a setting of this plugin (use " + auth_instead + ")");
}

void Settings::bad(const std::string& key, const std::string& why) const {
  throw sdk::Error(sdk::ErrorCode::bad_request, plugin_ + ": setting '" + key + "' " + why);
}

std::string Settings::str(const char* key) {
  auto it = rest_.find(key);
  if (it == rest_.end() || it->is_null()) return {};
  if (!it->is_string()) bad(key, "must be a string");
  return it->get<std::string>();
}

std::optional<bool> Settings::boolean(const char* key) {
  auto it = rest_.find(key);
  if (it == rest_.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) bad(key, "must be true or false");
  return it->get<bool>();
}

std::string Settings::var(const char* name) const {
  const char* v = env_(name);
  return v ? v : "";
}

sdk::http::HttpClient::Response HttpStore::send(const std::string& what, const sdk::http::HttpClient::Request& r) {
  return named(what, [&] { return client_.send(r); });
}

sdk::http::HttpClient::Response HttpStore::head(const std::string& key) {
  return send(describe(key), {"HEAD", object_path(key), {}, {}, 0});
}

std::string HttpStore::get(const std::string& key, std::size_t max) {
  return send(describe(key), {"GET", object_path(key), {}, {}, max}).body;
}

void HttpStore::read(const std::string& key, const std::function<void(const char*, std::size_t)>& on_data) {
  named(describe(key), [&] { return client_.stream(object_path(key), 0, on_data); });
}

std::string HttpStore::user_metadata(const std::string& key, const std::string& name) {
  auto r = head(key);
  auto it = r.headers.find(meta_prefix_ + lower(name));
  return it == r.headers.end() ? std::string() : it->second;
}

}  // namespace modelzoo::plugins::objstore
