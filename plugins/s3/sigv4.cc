#include "s3/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <stdexcept>

#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::s3 {
namespace {

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), out, &len))
    throw std::runtime_error("sigv4: HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string sha256_hex(std::string_view s) {
  bus::Sha256 h;
  h.update(s.data(), s.size());
  return h.hex_digest();
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Trimall: blanks around removed, inner runs of blanks made one space.
std::string trim_all(std::string_view v) {
  std::string out;
  bool blank = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      blank = !out.empty();
      continue;
    }
    if (blank) out.push_back(' ');
    blank = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string uri_encode(std::string_view s, bool keep_slash) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

std::string amz_date_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

Signed sign(const Request& r, const Credentials& c) {
  Signed out;
  const std::string date = r.amz_date.empty() ? amz_date_now() : r.amz_date;
  const std::string payload = r.payload_sha256.empty() ? sha256_hex("") : r.payload_sha256;

  Pairs q;
  for (const auto& [k, v] : r.query) q.emplace_back(uri_encode(k, false), uri_encode(v, false));
  std::sort(q.begin(), q.end());
  std::string query;
  for (const auto& [k, v] : q) query += (query.empty() ? "" : "&") + k + "=" + v;
  const std::string path = uri_encode(r.path.empty() ? "/" : r.path, true);
  out.target = path + (query.empty() ? "" : "?" + query);

  out.headers.emplace_back("x-amz-date", date);
  out.headers.emplace_back("x-amz-content-sha256", payload);
  if (!c.session_token.empty()) out.headers.emplace_back("x-amz-security-token", c.session_token);
  // name -> values (a repeated header's values joined by ',', in order)
  std::vector<std::pair<std::string, std::string>> hs = {{"host", trim_all(r.host)}};
  for (const auto& [k, v] : out.headers) hs.emplace_back(k, trim_all(v));
  for (const auto& [k, v] : r.headers) hs.emplace_back(lower(k), trim_all(v));
  std::stable_sort(hs.begin(), hs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string canonical_headers, signed_headers;
  for (std::size_t i = 0; i < hs.size(); ++i) {
    if (i > 0 && hs[i].first == hs[i - 1].first) {
      canonical_headers.pop_back();  // the '\n'
      canonical_headers += "," + hs[i].second + "\n";
      continue;
    }
    canonical_headers += hs[i].first + ":" + hs[i].second + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + hs[i].first;
  }

  out.canonical_request = r.method + "\n" + path + "\n" + query + "\n" + canonical_headers + "\n" + signed_headers + "\n" + payload;
  const std::string day = date.substr(0, 8);
  const std::string scope = day + "/" + r.region + "/" + r.service + "/aws4_request";
  out.string_to_sign = "AWS4-HMAC-SHA256\n" + date + "\n" + scope + "\n" + sha256_hex(out.canonical_request);
  std::string key = hmac("AWS4" + c.secret_key, day);
  key = hmac(key, r.region);
  key = hmac(key, r.service);
  key = hmac(key, "aws4_request");
  out.signature = hex(hmac(key, out.string_to_sign));
  out.headers.emplace_back("authorization", "AWS4-HMAC-SHA256 Credential=" + c.access_key + "/" + scope +
                                                ", SignedHeaders=" + signed_headers + ", Signature=" + out.signature);
  return out;
}

}  // namespace modelzoo::plugins::s3
