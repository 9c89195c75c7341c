// What the object stores that speak HTTP share (s3, azure-blob): reading objects, their user
// metadata from a HEAD, errors naming the object, and the small text helpers of their URLs
// and XML listings. A store adds listing, writing and its own paths.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "modelzoo/http.h"
#include "objstore/bucket.h"

namespace modelzoo::plugins::objstore {

std::string lower(std::string s);
// Percent-decodes %XX (invalid escapes are kept as they are).
std::string percent_decode(std::string_view s);
// A listing's size field; throws std::invalid_argument naming `what` when it is not a number.
std::uint64_t parse_size(const std::string& text, const std::string& what);

// getenv by default; tests give their own.
using EnvFn = std::function<const char*(const char*)>;

// A plugin's configuration being read: a copy of the map from which the plugin's own keys are
// erased as they are taken (what is left goes to the SDK's options_from_config, which refuses
// unknown keys), its environment, and errors "<plugin>: setting 'KEY' WHY" (bad_request).
class Settings {
 public:
  // `url_instead` / `auth_instead`: what to use instead of the SDK's `url` and `auth`, which
  // an object store derives itself (both refused, naming them).
  Settings(const nlohmann::json& config, std::string plugin, const EnvFn& env, const std::string& url_instead,
           const std::string& auth_instead);
  std::string str(const char* key);            // "" when absent or null
  std::optional<bool> boolean(const char* key);
  std::string var(const char* name) const;     // "" when unset
  [[noreturn]] void bad(const std::string& key, const std::string& why) const;
  nlohmann::json& rest() { return rest_; }
  const EnvFn& env() const { return env_; }

 private:
  nlohmann::json rest_;
  std::string plugin_;
  EnvFn env_;
};

// An HTTP client for a credential endpoint (STS, an OAuth token endpoint) at `url`, on the
// source's TLS, proxy and user-agent settings (`base`) but without its auth, never cached;
// with `instance_metadata`, for a cloud's instance metadata service: 1 s timeouts, one attempt,
// never through a proxy.
std::shared_ptr<sdk::http::HttpClient> credential_client(const sdk::http::ClientOptions& base, const std::string& url,
                                                         bool instance_metadata);

class HttpStore : public Store {
 public:
  // `plugin` starts error messages; `meta_prefix` is the header of user metadata
  // ("x-amz-meta-", "x-ms-meta-").
  HttpStore(sdk::http::HttpClient& client, std::string plugin, std::string meta_prefix)
      : client_(client), plugin_(std::move(plugin)), meta_prefix_(std::move(meta_prefix)) {}

  std::string get(const std::string& key, std::size_t max) override;
  void read(const std::string& key, const std::function<void(const char*, std::size_t)>& on_data) override;
  std::string user_metadata(const std::string& key, const std::string& name) override;

 protected:
  // HEAD of the object: its headers (user metadata, ETag, content headers).
  sdk::http::HttpClient::Response head(const std::string& key);
  // Sends `r`; an Error names `what` (the object, "<plugin>: s3://bucket/key: ...").
  sdk::http::HttpClient::Response send(const std::string& what, const sdk::http::HttpClient::Request& r);
  // Runs `f`, whose Error names `what` first.
  template <typename F>
  auto named(const std::string& what, F&& f) {
    try {
      return f();
    } catch (const sdk::Error& e) {
      throw sdk::Error(e.code(), plugin_ + ": " + what + ": " + e.what());
    }
  }
  const std::string& meta_prefix() const { return meta_prefix_; }

  sdk::http::HttpClient& client_;

 private:
  std::string plugin_;
  std::string meta_prefix_;
};

}  // namespace modelzoo::plugins::objstore
