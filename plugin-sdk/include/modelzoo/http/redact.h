// Keeping credentials out of log lines and error messages (part of the SDK's HTTP base,
// modelzoo/http.h).
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace modelzoo::sdk::http {

// Replaces every occurrence of a known secret in a text with "<redacted>". Thread-safe.
// Secrets shorter than kMinLength are ignored: replacing them would garble every message
// (and a credential that short protects nothing).
class Redactor {
 public:
  static constexpr std::size_t kMinLength = 4;
  void add(std::string secret);
  std::string operator()(std::string_view text) const;

 private:
  mutable std::mutex mu_;
  std::vector<std::string> secrets_;
};

// `url` with any user:password@ removed and the values of sensitive query parameters
// (api_key, apikey, key, token, access_token, password, secret, signature, sig,
// X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token, ... and `extra` names,
// case-insensitively) replaced by "<redacted>".
std::string redact_url(std::string_view url, const std::vector<std::string>& extra = {});

}  // namespace modelzoo::sdk::http
