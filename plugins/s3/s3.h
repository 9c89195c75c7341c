// The `s3` registry plugin: models in an S3 bucket or an S3-compatible store (MinIO, Ceph RGW,
// R2, Wasabi, s3rver), laid out as plugins/objstore/bucket.h describes. Requests are signed
// with SigV4 (s3/sigv4.h) by the SDK client's `signer`, each piece of a parallel download and
// each retry with its own signature; credentials and region come from the chain of
// s3/credentials.h. docs/sources.md, "S3".
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "objstore/bucket.h"
#include "s3/credentials.h"
#include "s3/exchange.h"
#include "s3/sigv4.h"

namespace modelzoo::plugins::s3 {

enum class Addressing { path, virtual_hosted };

struct S3Config {
  std::string bucket;
  std::string endpoint;  // "https://s3.<region>.amazonaws.com" unless configured
  Addressing addressing = Addressing::path;
  std::string region;
  bool anonymous = false;          // unsigned requests (public buckets)
  // Where the credentials come from (none of them when anonymous): the chain's steps 1-3,
  // else its web identity (exchanged with STS at sts_endpoint), else the instance metadata
  // service at imds_endpoint ("" when disabled).
  std::optional<Found> credentials;
  std::optional<WebIdentity> web_identity;
  std::string sts_endpoint;
  std::string imds_endpoint;
  std::string profile;             // the profile the chain looked at (for messages)
  std::string base_url;            // what the HTTP client is given
};

// Reads the plugin's configuration: bucket (required), endpoint, addressing (auto | path |
// virtual; auto: virtual-hosted for AWS endpoints and DNS-compatible bucket names, else
// path), anonymous, the credential chain's settings (s3/credentials.h), the layout's
// (objstore::take_layout), sts_endpoint, imds_endpoint, imds (false: never ask it) and the
// SDK's HTTP settings (timeout_ms, retry, streams, piece_bytes, proxy, ca_file, ...). Throws
// Error(bad_request or unauthorized) naming the setting, never a secret.
std::pair<S3Config, objstore::Layout> parse_config(const nlohmann::json& config, sdk::http::ClientOptions& http,
                                                   const EnvFn& env = {});

// A URL as the SDK sends it, split for signing: the Host header, the path and the query
// pairs, percent-decoded (sign() encodes them again, as S3 does).
struct SplitUrl {
  std::string host;
  std::string path;
  Pairs query;
};
SplitUrl split_url(const std::string& url);

// ListObjectsV2's answer (ListBucketResult). Throws std::invalid_argument when it is not one.
objstore::Page parse_list(const std::string& xml);

class S3Registry final : public objstore::BucketRegistry {
 public:
  void configure(const nlohmann::json& config) override;
  const S3Config& config() const { return cfg_; }

 private:
  S3Config cfg_;
  std::shared_ptr<CredentialSource> credentials_;
};

}  // namespace modelzoo::plugins::s3
