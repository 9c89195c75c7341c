// The settings every HTTP registry shares, read from a plugin configuration (part of the SDK's
// HTTP base, modelzoo/http.h).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/http/client.h"

namespace modelzoo::sdk::http {

// Reads the settings every HTTP registry shares from a plugin configuration (see the SDK
// section of docs/writing-plugins.md): url (required), auth {kind, header, query, key,
// token, token_file, user, password, command, command_ttl_ms}, timeout_ms,
// connect_timeout_ms, retry {attempts, initial_ms, max_ms}, cache_ttl_ms, user_agent,
// proxy, ca_file, streams (1-16), piece_bytes (1 MiB-1 GiB). Keys not listed and not in
// `extra_keys` are an error. Throws Error(bad_request) naming the setting (never its value,
// for secrets).
ClientOptions options_from_config(const nlohmann::json& config, const std::vector<std::string>& extra_keys = {});

}  // namespace modelzoo::sdk::http
