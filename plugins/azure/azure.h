// The `azure-blob` registry plugin: models in an Azure Blob Storage container (or Azurite),
// laid out as plugins/objstore/bucket.h describes (docs/sources.md, "Azure Blob").
//
// Authentication, one of (first given wins):
//   shared key   account_key (base64; may be an enc:v1: secret) or AZURE_STORAGE_KEY: each
//                request signed with HMAC-SHA256 over Azure's string-to-sign (Shared Key,
//                x-ms-version 2021-08-06), each piece of a parallel download with its own Range
//   SAS          sas_token or AZURE_STORAGE_SAS_TOKEN: appended to every request's query
//   bearer       token / token_file (Microsoft Entra ID access token, re-read from the file at
//                every request, as workload identity rotates it)
//   anonymous    anonymous: true (a container with public access)
// AZURE_STORAGE_CONNECTION_STRING gives AccountName, AccountKey, SharedAccessSignature and
// BlobEndpoint when the configuration does not.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "objstore/bucket.h"
#include "objstore/http_store.h"

namespace modelzoo::plugins::azure {

using Pairs = std::vector<std::pair<std::string, std::string>>;
using EnvFn = objstore::EnvFn;

enum class AuthKind { shared_key, sas, bearer, anonymous };

struct AzureConfig {
  std::string account;
  std::string container;
  std::string endpoint;  // "https://<account>.blob.core.windows.net" unless configured
  std::string base_url;  // endpoint + "/" + container
  AuthKind auth = AuthKind::anonymous;
  std::string key;         // shared key, base64 (as the portal shows it)
  std::string sas;         // without the leading '?'
  std::string token, token_file;
  std::string auth_from;   // "the source's configuration", "AZURE_STORAGE_KEY", ... (never the secret)
};

// Reads: account, container (both required unless a connection string gives the account),
// endpoint, account_key, sas_token, token, token_file, anonymous, the layout's settings and the
// SDK's HTTP settings. Throws Error(bad_request or unauthorized) naming the setting.
std::pair<AzureConfig, objstore::Layout> parse_config(const nlohmann::json& config, sdk::http::ClientOptions& http,
                                                      const EnvFn& env = {});

// Shared Key's string-to-sign of a request to `url` (as sent: path and query encoded) with
// `headers` (every header it sends; names in any case). docs.microsoft.com, "Authorize with
// Shared Key": VERB, the eleven standard headers (Content-Length empty when 0), the x-ms-
// headers sorted, then "/<account><encoded path>" and each query parameter, sorted, decoded.
std::string string_to_sign(const std::string& account, const std::string& method, const std::string& url,
                           const Pairs& headers);
// "SharedKey <account>:<base64 HMAC-SHA256 of string_to_sign with the decoded key>". Throws
// Error(bad_request) when the key is not base64.
std::string shared_key_authorization(const std::string& account, const std::string& key_base64, const std::string& to_sign);
// "Tue, 08 Dec 2026 01:40:00 GMT" of now.
std::string rfc1123_now();

// List Blobs' answer (EnumerationResults). Throws std::invalid_argument when it is not one.
objstore::Page parse_list(const std::string& xml);

class AzureRegistry final : public objstore::BucketRegistry {
 public:
  void configure(const nlohmann::json& config) override;
  const AzureConfig& config() const { return cfg_; }

 private:
  AzureConfig cfg_;
};

}  // namespace modelzoo::plugins::azure
