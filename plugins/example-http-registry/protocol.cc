#include "example-http-registry/protocol.h"

#include <charconv>
#include <limits>

#include "modelzoo/bus/names.h"

namespace modelzoo::plugins::http_registry {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    std::size_t end = s.find(sep, start);
    out.push_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Digits only, no sign, fits in 64 bits.
std::optional<std::uint64_t> parse_u64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  for (char c : s)
    if (c < '0' || c > '9') return std::nullopt;
  std::uint64_t v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// The credentials of an "Authorization: <scheme> <credentials>" header, when its scheme is
// `scheme` (case-insensitive).
std::optional<std::string> authorization(const Lookup& header, std::string_view scheme) {
  auto value = header("Authorization");
  if (!value) return std::nullopt;
  std::string_view v = trim(*value);
  if (v.size() <= scheme.size() || !iequals(v.substr(0, scheme.size()), scheme) ||
      (v[scheme.size()] != ' ' && v[scheme.size()] != '\t'))
    return std::nullopt;
  return std::string(trim(v.substr(scheme.size())));
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

const char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string error_body(const std::string& code, const std::string& message) {
  nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string error_code_for_status(int status) {
  if (status == 401 || status == 403) return "unauthorized";
  if (status == 404) return "not_found";
  if (status == 429 || status == 503) return "unavailable";
  if (status >= 400 && status < 500) return "bad_request";
  return "internal";
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '~' || c == '-' || (keep_slash && c == '/');
    if (plain) {
      out += c;
    } else {
      auto u = static_cast<unsigned char>(c);
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

Route parse_route(std::string_view target) {
  std::string_view path = target.substr(0, target.find('?'));
  HttpError no_endpoint(404, "not_found", "no such endpoint: see docs/http-registry.md");
  if (path.empty() || path[0] != '/') throw no_endpoint;
  std::vector<std::string> segs;
  for (auto raw : split(path.substr(1), '/')) {
    auto d = percent_decode(raw);
    if (!d) throw HttpError(400, "bad_request", "malformed percent-escape in the request path");
    segs.push_back(std::move(*d));
  }
  if (segs.size() < 2 || segs[0] != "v1" || segs[1] != "models") throw no_endpoint;
  Route r;
  if (segs.size() == 2 || (segs.size() == 3 && segs[2].empty())) return r;  // /v1/models[/]
  std::size_t dash = 2;
  while (dash < segs.size() && segs[dash] != "-") ++dash;
  if (dash == segs.size() || dash + 1 == segs.size() || segs[dash + 1] != "versions") throw no_endpoint;
  for (std::size_t i = 2; i < dash; ++i) r.name += (i > 2 ? "/" : "") + segs[i];
  if (auto why = bus::check_model_name(r.name)) throw HttpError(400, "bad_request", *why);
  std::size_t rest = segs.size() - dash - 1;  // "versions" and what follows
  if (rest == 1) {
    r.kind = Route::Kind::versions;
    return r;
  }
  r.version = segs[dash + 2];
  if (auto why = bus::check_version(r.version)) throw HttpError(400, "bad_request", *why);
  if (rest == 2) {
    r.kind = Route::Kind::metadata;
    return r;
  }
  if (rest < 4 || segs[dash + 3] != "files") throw no_endpoint;
  for (std::size_t i = dash + 4; i < segs.size(); ++i) r.file += (i > dash + 4 ? "/" : "") + segs[i];
  if (auto why = bus::check_file_name(r.file)) throw HttpError(400, "bad_request", *why);
  r.kind = Route::Kind::file;
  return r;
}

RangeRequest parse_range(std::string_view header, std::uint64_t size) {
  RangeRequest none;
  std::string_view h = trim(header);
  if (h.size() < 6 || !iequals(h.substr(0, 6), "bytes=")) return none;
  std::string_view spec = trim(h.substr(6));
  if (spec.find(',') != std::string_view::npos) return none;  // several ranges: not supported
  auto dash = spec.find('-');
  if (dash == std::string_view::npos) return none;
  std::string_view a = trim(spec.substr(0, dash)), b = trim(spec.substr(dash + 1));
  RangeRequest out;
  if (a.empty()) {  // suffix: the last b bytes
    auto n = parse_u64(b);
    if (!n) return none;
    if (*n == 0 || size == 0) {
      out.kind = RangeRequest::Kind::unsatisfiable;
      return out;
    }
    std::uint64_t len = std::min(*n, size);
    out.kind = RangeRequest::Kind::satisfiable;
    out.range = {size - len, size - 1};
    return out;
  }
  auto first = parse_u64(a);
  if (!first) return none;
  std::uint64_t last = std::numeric_limits<std::uint64_t>::max();
  if (!b.empty()) {
    auto l = parse_u64(b);
    if (!l || *l < *first) return none;  // invalid: ignored
    last = *l;
  }
  if (*first >= size) {
    out.kind = RangeRequest::Kind::unsatisfiable;
    return out;
  }
  out.kind = RangeRequest::Kind::satisfiable;
  out.range = {*first, std::min(last, size - 1)};
  return out;
}

std::string content_range(const ByteRange& r, std::uint64_t size) {
  return "bytes " + std::to_string(r.first) + "-" + std::to_string(r.last) + "/" + std::to_string(size);
}

std::string describe(const AuthConfig& auth) {
  switch (auth.kind) {
    case AuthConfig::Kind::none: return "none";
    case AuthConfig::Kind::api_key:
      return "API key in header " + auth.api_key_header +
             (auth.api_key_query.empty() ? "" : " or query parameter " + auth.api_key_query);
    case AuthConfig::Kind::bearer: return auth.bearer_file.empty() ? "bearer token" : "bearer token from " + auth.bearer_file;
    case AuthConfig::Kind::basic: return "HTTP basic";
    case AuthConfig::Kind::header: return "header " + auth.header_name;
  }
  return "?";
}

std::optional<std::pair<std::string, std::string>> split_pair(std::string_view s, bool trim_value) {
  auto colon = s.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  std::string_view v = s.substr(colon + 1);
  if (trim_value) v = trim(v);
  return std::make_pair(std::string(s.substr(0, colon)), std::string(v));
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // The length is not secret enough to hide; the contents are compared without early exit.
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  std::size_t n = std::max(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

std::optional<std::string> base64_decode(std::string_view s) {
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (std::size_t i = 0; i < s.size(); i += 4) {
    std::uint32_t v = 0;
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s[i + k];
      int d;
      if (c == '=') {
        if (i + 4 != s.size() || k < 2) return std::nullopt;
        ++pad;
        d = 0;
      } else {
        if (pad) return std::nullopt;  // data after padding
        const char* p = std::char_traits<char>::find(kBase64, 64, c);
        if (!p) return std::nullopt;
        d = static_cast<int>(p - kBase64);
      }
      v = (v << 6) | static_cast<std::uint32_t>(d);
    }
    out += static_cast<char>((v >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(v & 0xff);
  }
  return out;
}

std::string base64_encode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 3) {
    std::uint32_t v = static_cast<unsigned char>(s[i]) << 16;
    if (i + 1 < s.size()) v |= static_cast<unsigned char>(s[i + 1]) << 8;
    if (i + 2 < s.size()) v |= static_cast<unsigned char>(s[i + 2]);
    out += kBase64[(v >> 18) & 63];
    out += kBase64[(v >> 12) & 63];
    out += i + 1 < s.size() ? kBase64[(v >> 6) & 63] : '=';
    out += i + 2 < s.size() ? kBase64[v & 63] : '=';
  }
  return out;
}

AuthResult check_auth(const AuthConfig& auth, const std::string& bearer_token, const Lookup& header,
                      const Lookup& query) {
  auto verdict = [](bool ok) { return ok ? AuthResult::ok : AuthResult::wrong; };
  switch (auth.kind) {
    case AuthConfig::Kind::none: return AuthResult::ok;
    case AuthConfig::Kind::api_key: {
      auto h = header(auth.api_key_header);
      std::optional<std::string> q;
      if (!auth.api_key_query.empty()) q = query(auth.api_key_query);
      if (!h && !q) return AuthResult::missing;
      // Every key offered must be right: a wrong one is never excused by a right one.
      bool ok = true;
      if (h) ok = constant_time_equal(std::string(trim(*h)), auth.api_key) && ok;
      if (q) ok = constant_time_equal(*q, auth.api_key) && ok;
      return verdict(ok);
    }
    case AuthConfig::Kind::bearer: {
      auto token = authorization(header, "Bearer");
      if (!token) return AuthResult::missing;
      return verdict(!bearer_token.empty() && constant_time_equal(*token, bearer_token));
    }
    case AuthConfig::Kind::basic: {
      auto cred = authorization(header, "Basic");
      if (!cred) return AuthResult::missing;
      auto decoded = base64_decode(*cred);
      return verdict(decoded && constant_time_equal(*decoded, auth.basic_user + ":" + auth.basic_password));
    }
    case AuthConfig::Kind::header: {
      auto h = header(auth.header_name);
      if (!h) return AuthResult::missing;
      return verdict(constant_time_equal(std::string(trim(*h)), auth.header_value));
    }
  }
  return AuthResult::wrong;
}

std::string www_authenticate(const AuthConfig& auth) {
  const std::string realm = "realm=\"modelzoo\"";
  switch (auth.kind) {
    case AuthConfig::Kind::none: return {};
    case AuthConfig::Kind::api_key:
      return "ApiKey " + realm + ", header=" + quoted(auth.api_key_header) +
             (auth.api_key_query.empty() ? "" : ", query=" + quoted(auth.api_key_query));
    case AuthConfig::Kind::bearer: return "Bearer " + realm;
    case AuthConfig::Kind::basic: return "Basic " + realm + ", charset=\"UTF-8\"";
    case AuthConfig::Kind::header: return "Header " + realm + ", name=" + quoted(auth.header_name);
  }
  return {};
}

bool etag_matches(std::string_view if_none_match, std::string_view etag) {
  if (etag.size() >= 2 && etag.substr(0, 2) == "W/") etag.remove_prefix(2);
  for (auto candidate : split(if_none_match, ',')) {
    candidate = trim(candidate);
    if (candidate == "*") return true;
    if (candidate.size() >= 2 && candidate.substr(0, 2) == "W/") candidate.remove_prefix(2);
    if (!candidate.empty() && candidate == etag) return true;
  }
  return false;
}

std::string redact_target(std::string_view target) {
  auto q = target.find('?');
  std::string out(target.substr(0, q));
  if (q == std::string_view::npos) return out;
  out += '?';
  bool first = true;
  for (auto param : split(target.substr(q + 1), '&')) {
    if (!first) out += '&';
    first = false;
    auto eq = param.find('=');
    if (eq == std::string_view::npos) {
      out += param;  // a name alone carries no value
    } else {
      out += param.substr(0, eq);
      out += "=REDACTED";
    }
  }
  return out;
}

ListenAddress parse_listen(std::string_view s) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("invalid listen address '" + std::string(s) + "': " + why);
  };
  ListenAddress a;
  std::string_view port;
  if (!s.empty() && s[0] == '[') {
    auto close = s.find(']');
    if (close == std::string_view::npos || close + 1 >= s.size() || s[close + 1] != ':')
      throw bad("expected [ADDRESS]:PORT");
    a.host = std::string(s.substr(1, close - 1));
    port = s.substr(close + 2);
  } else {
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos) throw bad("expected HOST:PORT");
    a.host = std::string(s.substr(0, colon));
    if (a.host.find(':') != std::string::npos) throw bad("write an IPv6 address in brackets: [::1]:8080");
    port = s.substr(colon + 1);
  }
  if (a.host.empty()) a.host = "127.0.0.1";
  auto p = parse_u64(port);
  if (!p || *p > 65535) throw bad("the port must be a number from 0 to 65535");
  a.port = static_cast<int>(*p);
  return a;
}

nlohmann::json metadata_json(const bus::ModelMetadata& m) {
  nlohmann::json j = {{"name", m.name}, {"version", m.version}};
  if (!m.description.empty()) j["description"] = m.description;
  if (!m.author.empty()) j["author"] = m.author;
  if (!m.license.empty()) j["license"] = m.license;
  if (!m.format.empty()) j["format"] = m.format;
  if (!m.tags.empty()) j["tags"] = m.tags;
  auto files = nlohmann::json::array();
  for (const auto& f : m.files) files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
  j["files"] = std::move(files);
  return j;
}

}  // namespace modelzoo::plugins::http_registry
