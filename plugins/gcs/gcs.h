// The `gcs` registry plugin: models in a Google Cloud Storage bucket through its JSON API,
// laid out as plugins/objstore/bucket.h describes (docs/sources.md, "Google Cloud Storage").
// (GCS's XML API with HMAC keys is S3's: the `s3` plugin with endpoint
// https://storage.googleapis.com serves it.)
//
// Credentials, first found wins (as Google's client libraries):
//   token / token_file                 an OAuth access token (the file re-read when it changes)
//   credentials_file, else GOOGLE_APPLICATION_CREDENTIALS, else
//   ~/.config/gcloud/application_default_credentials.json:
//     "service_account"   a JWT (RS256, OpenSSL) exchanged at its token_uri for an access token
//     "authorized_user"   its refresh token exchanged at its token_uri
//   the metadata server (GCE, GKE workload identity): GCE_METADATA_HOST, else
//     metadata.google.internal; 1 s timeouts; metadata_server: false turns it off
//   anonymous: true                    public buckets, unsigned
// Access tokens are renewed 5 minutes before they expire.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "objstore/bucket.h"
#include "objstore/http_store.h"

namespace modelzoo::plugins::gcs {

enum class AuthKind { token, service_account, authorized_user, metadata_server, anonymous };

struct GcsConfig {
  std::string bucket;
  std::string endpoint = "https://storage.googleapis.com";
  AuthKind auth = AuthKind::anonymous;
  std::string token, token_file;
  nlohmann::json credentials;  // the credentials file's JSON (service_account, authorized_user)
  std::string metadata_host;   // "metadata.google.internal" or GCE_METADATA_HOST
  std::string scope = "https://www.googleapis.com/auth/devstorage.read_write";
  std::string auth_from;       // never the secret
};

// Reads: bucket (required), endpoint, token, token_file, credentials_file, scope,
// metadata_server, metadata_host, anonymous, the layout's and the SDK's HTTP settings. Throws
// Error(bad_request or unauthorized) naming the setting or file, never a secret.
std::pair<GcsConfig, objstore::Layout> parse_config(const nlohmann::json& config, sdk::http::ClientOptions& http,
                                                    const objstore::EnvFn& env = {});

// base64url without padding (RFC 7515).
std::string base64url(std::string_view data);
// The signed JWT a service account exchanges: header {"alg":"RS256","typ":"JWT"[,"kid"]},
// claims {iss, scope, aud: token_uri, iat, exp: iat + 3600}, signed with `private_key_pem`
// (RSASSA-PKCS1-v1_5 SHA-256). Throws Error(unauthorized) when the key cannot be read.
std::string service_account_jwt(const nlohmann::json& credentials, const std::string& scope, std::int64_t now);

// objects.list's answer. Throws std::invalid_argument when it is not one.
objstore::Page parse_list(const nlohmann::json& body);

class GcsRegistry final : public objstore::BucketRegistry {
 public:
  void configure(const nlohmann::json& config) override;
  const GcsConfig& config() const { return cfg_; }

 private:
  GcsConfig cfg_;
};

}  // namespace modelzoo::plugins::gcs
