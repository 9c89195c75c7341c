// Redaction (modelzoo/http/redact.h): known secrets and sensitive URL parts out of every text.
#include "modelzoo/http/redact.h"

#include <cctype>
#include <set>

#include "http_text.h"

namespace modelzoo::sdk::http {

using detail::lower;

namespace {

constexpr const char* kRedacted = "<redacted>";

}  // namespace

void Redactor::add(std::string secret) {
  if (secret.size() < kMinLength) return;
  std::lock_guard lk(mu_);
  if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) return;
  secrets_.push_back(std::move(secret));
  std::sort(secrets_.begin(), secrets_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
}

std::string Redactor::operator()(std::string_view text) const {
  std::string out(text);
  std::lock_guard lk(mu_);
  for (const auto& s : secrets_)
    for (std::size_t p = 0; (p = out.find(s, p)) != std::string::npos;) {
      out.replace(p, s.size(), kRedacted);
      p += std::strlen(kRedacted);
    }
  return out;
}

namespace {
std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}
}  // namespace

std::string redact_url(std::string_view url, const std::vector<std::string>& extra) {
  static const std::set<std::string> kSensitive = {
      "api_key", "apikey", "api-key", "key", "token", "access_token", "id_token", "refresh_token", "auth",
      "authorization", "password", "passwd", "pass", "secret", "client_secret", "signature", "sig",
      "x-amz-signature", "x-amz-credential", "x-amz-security-token", "x-goog-signature", "x-goog-credential"};
  std::string out;
  std::size_t start = 0;
  if (auto scheme = url.find("://"); scheme != std::string_view::npos) {
    std::size_t auth_start = scheme + 3;
    std::size_t auth_end = url.find_first_of("/?#", auth_start);
    if (auth_end == std::string_view::npos) auth_end = url.size();
    std::string_view authority = url.substr(auth_start, auth_end - auth_start);
    out.append(url.substr(0, auth_start));
    if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
    out.append(authority);
    start = auth_end;
  }
  std::size_t q = url.find('?', start);
  if (q == std::string_view::npos) {
    out.append(url.substr(start));
    return out;
  }
  out.append(url.substr(start, q + 1 - start));
  std::size_t hash = url.find('#', q);
  std::string_view query = url.substr(q + 1, (hash == std::string_view::npos ? url.size() : hash) - q - 1);
  bool first = true;
  while (true) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    if (!first) out += '&';
    first = false;
    auto eq = param.find('=');
    std::string name = lower(percent_decode(param.substr(0, eq)));
    bool sensitive = kSensitive.count(name) > 0;
    for (const auto& e : extra) sensitive = sensitive || lower(e) == name;
    if (sensitive && eq != std::string_view::npos) {
      out.append(param.substr(0, eq + 1));
      out += kRedacted;
    } else {
      out.append(param);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  if (hash != std::string_view::npos) out.append(url.substr(hash));
  return out;
}

}  // namespace modelzoo::sdk::http
