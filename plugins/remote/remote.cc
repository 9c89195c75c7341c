#include "remote/remote.h"

#include <filesystem>

namespace modelzoo::plugins::remote {

sdk::http::ClientOptions parse_config(const nlohmann::json& config) {
  auto o = sdk::http::options_from_config(config);
  if (o.user_agent.empty()) o.user_agent = std::string("modelzoo-plugin-remote/") + MODELZOO_VERSION;
  return o;
}

void RemoteRegistry::configure(const nlohmann::json& config) {
  auto o = parse_config(config);
  if (!o.auth.token_file.empty() && !std::filesystem::exists(o.auth.token_file))
    sdk::log("warn", "remote: the token file '" + o.auth.token_file + "' does not exist (yet); requests fail until it does");
  std::string summary = "remote: registry " + sdk::http::redact_url(o.base_url) + ", auth: " + o.auth.describe() +
                        ", " + std::to_string(o.retry.max_attempts) + " attempt(s) per request, cache " +
                        std::to_string(o.cache_ttl.count()) + " ms" + (o.proxy.empty() ? "" : ", proxy from the configuration");
  set_options(std::move(o));
  sdk::log("info", summary);
}

}  // namespace modelzoo::plugins::remote
