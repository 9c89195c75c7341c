// The S3 plugin's temporary credentials, obtained over HTTP and refreshed before they expire
// (steps 4 and 5 of the chain in s3/credentials.h):
//   web identity  STS AssumeRoleWithWebIdentity: the token file (re-read at every exchange, as
//                 Kubernetes rotates it) and the role ARN, POSTed as a form to the STS endpoint
//                 (sts_endpoint, else AWS_ENDPOINT_URL_STS, else https://sts.<region>.amazonaws.com),
//                 unsigned, as the AWS SDKs do
//   IMDSv2        PUT /latest/api/token, then GET /latest/meta-data/iam/security-credentials/[ROLE]
//                 with the token; AWS_EC2_METADATA_SERVICE_ENDPOINT (else http://169.254.169.254),
//                 AWS_EC2_METADATA_DISABLED=true turns it off; 1 s timeouts, one attempt
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "modelzoo/http.h"
#include "s3/credentials.h"

namespace modelzoo::plugins::s3 {

using SystemTime = std::chrono::system_clock::time_point;

struct Temporary {
  Credentials credentials;
  SystemTime expires{};
};

// "2026-12-08T01:00:00Z" (fractions of a second allowed), nullopt when not of that form.
std::optional<SystemTime> parse_iso8601(const std::string& s);
// STS's AssumeRoleWithWebIdentityResponse; IMDS's credentials document. Throw std::invalid_argument.
Temporary parse_sts(const std::string& xml);
Temporary parse_imds(const std::string& json);

// The credentials requests are signed with; thread-safe.
class CredentialSource {
 public:
  using Fetch = std::function<Temporary()>;
  // Fixed credentials (configuration, environment, profile).
  CredentialSource(Credentials fixed, std::string from);
  // Fetched at once (errors propagate) and again when less than 5 minutes remain.
  CredentialSource(Fetch fetch, std::string from, std::function<SystemTime()> now = std::chrono::system_clock::now);

  // The current credentials; refreshes them first when they are about to expire. A failed
  // refresh keeps the old ones while they are valid, else throws Error(unauthorized).
  Credentials get();
  const std::string& from() const { return from_; }

 private:
  Fetch fetch_;
  std::string from_;
  std::function<SystemTime()> now_;
  std::mutex mu_;
  Temporary current_;
  bool expires_ = false;
};

// The exchanges, on their own HTTP clients (`base`: the source's TLS, proxy and user agent).
CredentialSource::Fetch web_identity_fetch(const WebIdentity& w, const std::string& sts_endpoint,
                                           const sdk::http::ClientOptions& base);
CredentialSource::Fetch imds_fetch(const std::string& endpoint, const sdk::http::ClientOptions& base);

}  // namespace modelzoo::plugins::s3
