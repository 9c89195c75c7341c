// The logic of the `remote` plugin: a registry on another host, reached over modelzoo's HTTP
// registry protocol (docs/http-registry.md). Everything HTTP -- connection reuse, timeouts,
// retries, auth, caching, resumable downloads -- is the SDK's HttpRegistry; this adds the
// configuration and the plugin's identity.
#pragma once

#include <nlohmann/json.hpp>

#include "modelzoo/http.h"

namespace modelzoo::plugins::remote {

// Reads and checks the plugin's configuration (docs/configuration.md, "The remote plugin"):
// the SDK's HTTP settings (sdk::http::options_from_config), with this plugin's user agent.
// Throws sdk::Error(bad_request) naming the setting; never quotes a secret.
sdk::http::ClientOptions parse_config(const nlohmann::json& config);

class RemoteRegistry final : public sdk::http::HttpRegistry {
 public:
  void configure(const nlohmann::json& config) override;
};

}  // namespace modelzoo::plugins::remote
