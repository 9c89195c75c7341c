// The SDK's HTTP base (modelzoo/http.h), on libcurl's easy interface. Every request runs on
// an easy handle from a small pool; the handles share one CURLSH holding the connection
// cache, the DNS cache and TLS sessions, so keep-alive connections are reused across
// requests and threads. Proxies: CURLOPT_PROXY is set only when the configuration names
// one, so libcurl's own handling of http_proxy / https_proxy / ALL_PROXY / no_proxy stays
// in force. Redirects are followed here, not by libcurl, so that credentials go only to the
// registry's own origin.
#include "modelzoo/http.h"

#include "http_response.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <limits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

extern char** environ;

namespace modelzoo::sdk::http {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::size_t kMaxPooledHandles = 16;
constexpr int kMaxRedirects = 5;
constexpr const char* kRedacted = "<redacted>";

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// RFC 9110 token characters (header names).
bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c))) return false;
  return true;
}

// Keeps a server's text printable and short before it goes into a message.
std::string printable(std::string_view s, std::size_t limit = 300) {
  std::string out;
  for (char c : s) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  return std::string(trim(out));
}

std::string reason_phrase(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return {};
  }
}

std::string status_text(long status) {
  std::string r = reason_phrase(status);
  return "HTTP " + std::to_string(status) + (r.empty() ? "" : " " + r);
}

std::string ms_string(milliseconds d) { return std::to_string(d.count()) + " ms"; }

double uniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Authentication

std::string_view to_string(Auth::Kind kind) {
  switch (kind) {
    case Auth::Kind::none: return "none";
    case Auth::Kind::api_key: return "api_key";
    case Auth::Kind::bearer: return "bearer";
    case Auth::Kind::basic: return "basic";
    case Auth::Kind::custom: return "custom";
  }
  return "none";
}

std::optional<Auth::Kind> auth_kind_from_string(std::string_view s) {
  for (auto k : {Auth::Kind::none, Auth::Kind::api_key, Auth::Kind::bearer, Auth::Kind::basic, Auth::Kind::custom})
    if (to_string(k) == s) return k;
  return std::nullopt;
}

std::string Auth::describe() const {
  switch (kind) {
    case Kind::none: return "no credentials";
    case Kind::api_key:
      return query.empty() ? "api key in header '" + (header.empty() ? std::string("X-API-Key") : header) + "'"
                           : "api key in query parameter '" + query + "'";
    case Kind::bearer: return token_file.empty() ? "bearer token" : "bearer token from file '" + token_file + "'";
    case Kind::basic: return "basic auth as user '" + user + "'";
    case Kind::custom:
      return "custom auth header from command '" + (command.empty() ? std::string() : command[0]) + "'";
  }
  return {};
}

std::string base64(std::string_view data) {
  static const char* tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < data.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(std::uint8_t(data[i])) << 16) | (std::uint32_t(std::uint8_t(data[i + 1])) << 8) |
                      std::uint8_t(data[i + 2]);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += tbl[v & 63];
  }
  if (i + 1 == data.size()) {
    std::uint32_t v = std::uint32_t(std::uint8_t(data[i])) << 16;
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == data.size()) {
    std::uint32_t v = (std::uint32_t(std::uint8_t(data[i])) << 16) | (std::uint32_t(std::uint8_t(data[i + 1])) << 8);
    out += tbl[(v >> 18) & 63];
    out += tbl[(v >> 12) & 63];
    out += tbl[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string basic_auth_value(std::string_view user, std::string_view password) {
  std::string pair(user);
  pair += ':';
  pair += password;
  return "Basic " + base64(pair);
}

std::pair<std::string, std::string> parse_header_line(std::string_view line) {
  line = trim(line);
  auto colon = line.find(':');
  if (colon == std::string_view::npos)
    throw Error(ErrorCode::unauthorized, "the auth header is not of the form 'Header-Name: value'");
  std::string_view name = trim(line.substr(0, colon));
  std::string_view value = trim(line.substr(colon + 1));
  if (!is_token(name)) throw Error(ErrorCode::unauthorized, "the auth header's name is not a valid header name");
  if (value.empty()) throw Error(ErrorCode::unauthorized, "the auth header '" + std::string(name) + "' has an empty value");
  if (has_control_chars(value))
    throw Error(ErrorCode::unauthorized, "the auth header '" + std::string(name) + "' holds control characters");
  return {std::string(name), std::string(value)};
}

Authenticator::Authenticator(Auth auth, ClockFn clock) : auth_(std::move(auth)), clock_(std::move(clock)) {
  for (const auto* s : {&auth_.key, &auth_.token, &auth_.password})
    if (!s->empty()) seen_secrets_.push_back(*s);
  if (auth_.kind == Auth::Kind::basic) {
    seen_secrets_.push_back(basic_auth_value(auth_.user, auth_.password).substr(6));
  }
}

std::string Authenticator::read_token_file() {
  const std::string& path = auth_.token_file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(ErrorCode::unauthorized, "cannot read the token file '" + path + "': " + std::strerror(errno));
  std::pair<std::uintmax_t, std::int64_t> stamp{static_cast<std::uintmax_t>(st.st_size),
                                                std::int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  if (file_stamp_ && *file_stamp_ == stamp) return file_token_;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::unauthorized, "cannot read the token file '" + path + "': " + std::strerror(errno));
  std::string data(64 * 1024, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<std::size_t>(in.gcount()));
  std::string token(trim(data));
  if (token.empty()) throw Error(ErrorCode::unauthorized, "the token file '" + path + "' is empty");
  if (has_control_chars(token))
    throw Error(ErrorCode::unauthorized, "the token file '" + path + "' holds more than one line or control characters");
  file_token_ = token;
  file_stamp_ = stamp;
  if (std::find(seen_secrets_.begin(), seen_secrets_.end(), token) == seen_secrets_.end()) seen_secrets_.push_back(token);
  return token;
}

std::pair<std::string, std::string> Authenticator::run_command() {
  const auto& argv_s = auth_.command;
  const std::string what = "the auth command '" + (argv_s.empty() ? std::string() : argv_s[0]) + "'";
  if (argv_s.empty() || argv_s[0].empty()) throw Error(ErrorCode::unauthorized, "no auth command configured");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(ErrorCode::unauthorized, "cannot run " + what + ": pipe: " + std::strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);  // stderr could hold the secret
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> argv;
  std::vector<std::string> copy = argv_s;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw Error(ErrorCode::unauthorized, "cannot run " + what + ": " + std::strerror(rc));
  }
  std::string out;
  bool timed_out = false;
  auto deadline = Clock::now() + auth_.command_timeout;
  while (out.size() < 64 * 1024) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    throw Error(ErrorCode::unauthorized, what + " did not finish within " + ms_string(auth_.command_timeout));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorCode::unauthorized,
                what + (WIFEXITED(status) ? " exited with status " + std::to_string(WEXITSTATUS(status))
                                          : " was killed by signal " + std::to_string(WTERMSIG(status))));
  std::string_view rest = out;
  while (!rest.empty()) {
    auto nl = rest.find('\n');
    std::string_view line = trim(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    if (line.empty()) continue;
    try {
      return parse_header_line(line);
    } catch (const Error& e) {
      throw Error(ErrorCode::unauthorized, what + " printed an unusable header: " + e.what());
    }
  }
  throw Error(ErrorCode::unauthorized, what + " printed nothing (expected 'Header-Name: value')");
}

Credentials Authenticator::credentials() {
  Credentials c;
  switch (auth_.kind) {
    case Auth::Kind::none: break;
    case Auth::Kind::api_key:
      if (!auth_.query.empty()) c.query.emplace_back(auth_.query, auth_.key);
      else c.headers.emplace_back(auth_.header.empty() ? "X-API-Key" : auth_.header, auth_.key);
      break;
    case Auth::Kind::bearer: {
      std::string token = auth_.token;
      if (!auth_.token_file.empty()) {
        std::lock_guard lk(mu_);
        token = read_token_file();
      }
      c.headers.emplace_back("Authorization", "Bearer " + token);
      break;
    }
    case Auth::Kind::basic: c.headers.emplace_back("Authorization", basic_auth_value(auth_.user, auth_.password)); break;
    case Auth::Kind::custom: {
      std::lock_guard lk(mu_);  // held while the command runs: concurrent requests wait for one run
      if (!command_header_ || clock_() >= command_expiry_) {
        command_header_ = run_command();
        command_expiry_ = clock_() + auth_.command_ttl;
        const std::string& v = command_header_->second;
        if (std::find(seen_secrets_.begin(), seen_secrets_.end(), v) == seen_secrets_.end()) seen_secrets_.push_back(v);
        // "Bearer xyz", "Basic abc": the credential after the scheme, too
        if (auto sp = v.find(' '); sp != std::string::npos && sp + 1 < v.size()) seen_secrets_.push_back(v.substr(sp + 1));
      }
      c.headers.push_back(*command_header_);
      break;
    }
  }
  return c;
}

bool Authenticator::invalidate() {
  std::lock_guard lk(mu_);
  file_stamp_.reset();
  command_header_.reset();
  return auth_.kind == Auth::Kind::custom || (auth_.kind == Auth::Kind::bearer && !auth_.token_file.empty());
}

std::vector<std::string> Authenticator::secrets() const {
  std::lock_guard lk(mu_);
  return seen_secrets_;
}

// ---------------------------------------------------------------------------------------
// Redaction

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

// ---------------------------------------------------------------------------------------
// Retries

milliseconds RetryPolicy::backoff_cap(int retry) const {
  auto cap = std::max(initial_delay, milliseconds(0));
  for (int i = 1; i < retry && cap < max_delay; ++i) cap *= 2;
  return std::min(cap, max_delay);
}

milliseconds RetryPolicy::delay(int retry, std::optional<milliseconds> retry_after, double u) const {
  if (retry_after) return std::clamp(*retry_after, milliseconds(0), max_delay);
  u = std::clamp(u, 0.0, 1.0);
  auto cap = backoff_cap(retry);
  return std::min(cap, milliseconds(static_cast<milliseconds::rep>(u * static_cast<double>(cap.count()))));
}

bool RetryPolicy::retryable_status(long status) { return status == 408 || status == 429 || (status >= 500 && status <= 599); }

std::optional<milliseconds> parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    if (value.size() > 9) return milliseconds(std::int64_t(999999999) * 1000);
    return milliseconds(std::stoll(std::string(value)) * 1000);
  }
  std::string s(value);
  for (const char* fmt : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = ::strptime(s.c_str(), fmt, &tm);
    if (!end || *end != '\0') continue;
    // A date far away (year 9999, or a year of ten digits) would overflow the clock's
    // nanoseconds: past the cap of delay-seconds it is that cap, before now it is 0.
    std::time_t t = ::timegm(&tm), now_t = std::chrono::system_clock::to_time_t(now);
    if (t <= now_t) return milliseconds(0);
    if (t - now_t > 999999999) return milliseconds(std::int64_t(999999999) * 1000);
    auto when = std::chrono::system_clock::from_time_t(t);
    auto d = std::chrono::duration_cast<milliseconds>(when - now);
    return std::max(d, milliseconds(0));
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------
// Cache

ResponseCache::ResponseCache(milliseconds ttl, std::size_t max_entries, ClockFn clock)
    : ttl_(ttl), max_entries_(std::max<std::size_t>(max_entries, 1)), clock_(std::move(clock)) {}

std::optional<json> ResponseCache::get(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  if (clock_() >= it->second->expires) {
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void ResponseCache::put(const std::string& key, json value) {
  if (ttl_.count() <= 0) return;
  std::lock_guard lk(mu_);
  auto now = clock_();
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.push_front({key, std::move(value), now + ttl_});
  index_[key] = lru_.begin();
  // Expired entries go first, then the least recently used.
  for (auto it = lru_.begin(); it != lru_.end() && lru_.size() > max_entries_;) {
    if (now >= it->expires) {
      index_.erase(it->key);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  while (lru_.size() > max_entries_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void ResponseCache::erase(const std::string& key) {
  std::lock_guard lk(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

void ResponseCache::clear() {
  std::lock_guard lk(mu_);
  lru_.clear();
  index_.clear();
}

std::size_t ResponseCache::size() const {
  std::lock_guard lk(mu_);
  return lru_.size();
}

// ---------------------------------------------------------------------------------------
// Paths

std::string encode_segment(std::string_view segment) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : segment) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string encode_path(std::string_view name) {
  std::string out;
  while (true) {
    auto slash = name.find('/');
    out += encode_segment(name.substr(0, slash));
    if (slash == std::string_view::npos) break;
    out += '/';
    name.remove_prefix(slash + 1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// The client

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

// What one answer is made of (http_response.h).
namespace detail {

void Attempt::reset_response() {
  status = 0;
  headers.clear();
  body.clear();
  started = deliver = false;
  skip = 0;
  end.reset();
}

std::string Attempt::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void Attempt::check() {
  started = true;
  if (!streaming || status < 200 || status > 299) return;
  std::string etag = header("etag");
  if (!expected_etag.empty() && !etag.empty() && etag != expected_etag) {
    protocol_error = "the file changed during the download (ETag " + printable(expected_etag, 80) + ", now " +
                     printable(etag, 80) + ")";
    return;
  }
  if (status == 206) {
    // Content-Range: bytes FIRST-LAST/TOTAL
    std::string cr = header("content-range");
    unsigned long long first = 0, last = 0;
    char unit[16] = {};
    if (std::sscanf(cr.c_str(), "%15s %llu-%llu", unit, &first, &last) != 3 || std::string(unit) != "bytes" ||
        last < first || last == std::numeric_limits<std::uint64_t>::max()) {
      protocol_error = "answered 206 without a usable Content-Range ('" + printable(cr, 80) + "')";
      return;
    }
    if (first != offset) {
      protocol_error = "answered 206 from byte " + std::to_string(first) + " when asked from byte " + std::to_string(offset);
      return;
    }
    end = last + 1;
  } else {
    if (!header("content-range").empty()) {
      protocol_error = "answered " + std::to_string(status) + " with a Content-Range";
      return;
    }
    skip = offset;  // a 200 to a Range request: the whole file; drop what we have
    std::string cl = header("content-length");
    if (!cl.empty() && std::all_of(cl.begin(), cl.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      // Not std::stoull: its out_of_range (21 digits) would escape through libcurl's callback.
      std::uint64_t length = 0;
      auto [ptr, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), length);
      if (ec != std::errc() || ptr != cl.data() + cl.size()) {
        protocol_error = "answered with a Content-Length too large to use ('" + printable(cl, 80) + "')";
        return;
      }
      end = length;
      if (*end < offset) {
        protocol_error = "the file has " + cl + " bytes, fewer than the offset " + std::to_string(offset);
        return;
      }
    }
  }
  deliver = true;
}

size_t on_header(char* buf, size_t size, size_t n, void* ud) {
  auto* a = static_cast<Attempt*>(ud);
  std::string_view line(buf, size * n);
  line = trim(line);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after 100 Continue, a proxy's CONNECT, a redirect): start over.
    a->reset_response();
    auto sp = line.find(' ');
    if (sp != std::string_view::npos) a->status = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    a->headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
  }
  return size * n;
}

size_t on_body(char* buf, size_t size, size_t n, void* ud) {
  auto* a = static_cast<Attempt*>(ud);
  std::size_t len = size * n;
  if (!a->started) a->check();
  if (!a->protocol_error.empty()) return CURL_WRITEFUNC_ERROR;
  if (a->deliver) {
    const char* p = buf;
    std::size_t m = len;
    if (a->skip) {
      auto s = static_cast<std::size_t>(std::min<std::uint64_t>(a->skip, m));
      p += s;
      m -= s;
      a->skip -= s;
    }
    if (m) {
      try {
        (*a->on_data)(p, m);
      } catch (...) {
        a->sink_error = std::current_exception();
        return CURL_WRITEFUNC_ERROR;
      }
      a->delivered += m;
    }
    return len;
  }
  bool success = a->status >= 200 && a->status <= 299;
  if (a->body.size() + len > a->body_limit) {
    if (success) {
      a->protocol_error = "answered with more than " + std::to_string(a->body_limit) + " bytes";
      return CURL_WRITEFUNC_ERROR;
    }
    a->body.append(buf, a->body_limit - std::min(a->body_limit, a->body.size()));  // an error body: keep its start
    return len;
  }
  a->body.append(buf, len);
  return len;
}

std::string server_message(const std::string& body) {
  std::string server;
  try {
    auto j = json::parse(body);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
      const auto& e = j["error"];
      if (e.contains("message") && e["message"].is_string()) server = e["message"].get<std::string>();
      else if (e.contains("code") && e["code"].is_string()) server = e["code"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return server;
}

json parse_json_answer(const std::string& body) {
  bool too_deep = false;
  json j;
  try {
    j = json::parse(body, [&](int depth, json::parse_event_t, json&) {
      too_deep = too_deep || depth > kMaxJsonDepth;
      return !too_deep;  // keep nothing more once too deep
    });
  } catch (const json::exception&) {  // parse_error, and out_of_range for a number like 1e999
    throw std::invalid_argument("the answer is not JSON");
  }
  if (too_deep) throw std::invalid_argument("the answer nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  return j;
}

std::optional<unsigned long long> unsatisfied_range_total(const std::string& content_range) {
  unsigned long long total = 0;
  if (std::sscanf(content_range.c_str(), "bytes */%llu", &total) == 1) return total;
  return std::nullopt;
}

}  // namespace detail

namespace {

using detail::Attempt;
using detail::on_body;
using detail::on_header;

bool transient_curl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PROXY:
      return true;
    default:
      return false;
  }
}

// scheme://host:port of an absolute URL (lower case), empty when it cannot be parsed.
std::string origin_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (scheme && host) out = lower(std::string(scheme) + "://" + host + ":" + (port ? port : ""));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

struct CurlList {
  curl_slist* list = nullptr;
  ~CurlList() { curl_slist_free_all(list); }
  void add(const std::string& s) { list = curl_slist_append(list, s.c_str()); }
};

// What one attempt (redirects included) came to.
struct Outcome {
  bool ok = false;
  ErrorCode code = ErrorCode::internal;
  bool transient = false;
  bool auth_failed = false;
  std::string reason;  // redacted
  std::optional<milliseconds> retry_after;
  Credentials used;
};

}  // namespace

struct HttpClient::Impl {
  ClientOptions opt;
  std::string base;  // base_url without a trailing '/'
  std::string origin;
  Authenticator auth;
  Redactor redactor;
  ResponseCache cache;
  CURLSH* share = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_locks;
  std::mutex pool_mu;
  std::vector<CURL*> pool;

  explicit Impl(ClientOptions o)
      : opt(std::move(o)), auth(opt.auth), cache(opt.cache_ttl, opt.cache_entries) {
    base = opt.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
      throw Error(ErrorCode::bad_request, "the registry URL must start with http:// or https://");
    origin = origin_of(base);
    if (origin.empty()) throw Error(ErrorCode::bad_request, "the registry URL '" + redact_url(base) + "' is not a valid URL");
    if (opt.source.empty()) {
      const char* inst = std::getenv("MODELZOO_INSTANCE");
      opt.source = inst && *inst ? inst : "http";
    }
    if (opt.user_agent.empty())
      opt.user_agent = std::string("modelzoo-plugin/") + MODELZOO_SDK_VERSION + " libcurl/" + curl_version_info(CURLVERSION_NOW)->version;
    for (auto& s : auth.secrets()) redactor.add(s);
    global_init();
    share = curl_share_init();
    if (!share) throw Error(ErrorCode::internal, "curl_share_init failed");
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  ~Impl() {
    for (CURL* h : pool) curl_easy_cleanup(h);
    curl_share_cleanup(share);
  }

  static void lock(CURL*, curl_lock_data d, curl_lock_access, void* p) {
    static_cast<Impl*>(p)->share_locks[static_cast<std::size_t>(d) % CURL_LOCK_DATA_LAST].lock();
  }
  static void unlock(CURL*, curl_lock_data d, void* p) {
    static_cast<Impl*>(p)->share_locks[static_cast<std::size_t>(d) % CURL_LOCK_DATA_LAST].unlock();
  }

  CURL* acquire() {
    {
      std::lock_guard lk(pool_mu);
      if (!pool.empty()) {
        CURL* h = pool.back();
        pool.pop_back();
        return h;
      }
    }
    CURL* h = curl_easy_init();
    if (!h) throw Error(ErrorCode::internal, "curl_easy_init failed");
    return h;
  }
  void release(CURL* h) {
    curl_easy_reset(h);  // drops every pointer into this attempt; connections stay in the share
    std::lock_guard lk(pool_mu);
    if (pool.size() < kMaxPooledHandles) pool.push_back(h);
    else curl_easy_cleanup(h);
  }

  std::string redact(std::string_view s) {
    for (auto& secret : auth.secrets()) redactor.add(secret);
    std::vector<std::string> extra;
    if (!opt.auth.query.empty()) extra.push_back(opt.auth.query);
    return redactor(redact_url(s, extra));
  }

  std::string where(const std::string& path) { return "GET " + redact(base + path); }

  // One HTTP exchange on `url`; fills `a`. Returns libcurl's result and, for a 3xx, where it points.
  CURLcode perform(const std::string& url, const Credentials* creds, Attempt& a, std::string& redirect, std::string& curl_error) {
    std::string full = url;
    CurlList headers;
    headers.add(a.streaming ? "Accept: */*" : "Accept: application/json");
    if (creds) {
      for (const auto& [name, value] : creds->query) {
        full += full.find('?') == std::string::npos ? '?' : '&';
        full += encode_segment(name) + "=" + encode_segment(value);
      }
      for (const auto& [name, value] : creds->headers) headers.add(name + ": " + value);
    }
    char errbuf[CURL_ERROR_SIZE] = {};
    std::string range = std::to_string(a.offset) + "-";
    CURL* h = acquire();
    curl_easy_setopt(h, CURLOPT_SHARE, share);
    curl_easy_setopt(h, CURLOPT_URL, full.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, opt.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!opt.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, opt.ca_file.c_str());
    if (!opt.proxy.empty()) curl_easy_setopt(h, CURLOPT_PROXY, opt.proxy.c_str());  // else the environment's
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (a.streaming) {
      // No limit on the whole transfer, only on silence.
      long secs = std::max<long>(1, static_cast<long>((opt.timeout.count() + 999) / 1000));
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, secs);
      curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
      if (a.offset > 0) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
    } else {
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(opt.timeout.count()));
      curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK && !a.started) a.check();  // an empty body
    char* location = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location) redirect = location;
    curl_error = errbuf;
    release(h);
    return rc;
  }

  // One attempt: the request and the redirects it leads to.
  Outcome exchange(const std::string& path, Attempt& a, int number) {
    Outcome o;
    try {
      o.used = auth.credentials();
    } catch (const Error& e) {
      throw Error(e.code(), "source '" + opt.source + "' (" + redact(base) + "): " + e.what());
    }
    for (auto& s : auth.secrets()) redactor.add(s);
    std::string url = base + path;
    bool own_origin = true;
    for (int hop = 0;; ++hop) {
      a.reset_response();
      std::string redirect, curl_error;
      auto t0 = Clock::now();
      CURLcode rc = perform(url, own_origin ? &o.used : nullptr, a, redirect, curl_error);
      auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
      std::string shown = own_origin ? redact(url.substr(base.size())) : redact(url);
      if (a.sink_error) std::rethrow_exception(a.sink_error);  // the sink's own failure: not ours to retry
      if (rc != CURLE_OK) {
        if (!a.protocol_error.empty()) {
          log("debug", opt.source + ": GET " + shown + " -> " + std::to_string(a.status) + " in " + std::to_string(ms) +
                           " ms (attempt " + std::to_string(number) + "): " + a.protocol_error);
          o.code = ErrorCode::internal;
          o.reason = redact(a.protocol_error);
          return o;
        }
        std::string detail = curl_error.empty() ? curl_easy_strerror(rc) : curl_error;
        o.transient = transient_curl(rc);
        o.code = ErrorCode::unavailable;
        o.reason = redact(detail) + (a.delivered ? " after " + std::to_string(a.delivered) + " bytes" : "");
        log("debug", opt.source + ": GET " + shown + " -> failed in " + std::to_string(ms) + " ms (attempt " +
                         std::to_string(number) + "): " + o.reason);
        return o;
      }
      log("debug", opt.source + ": GET " + shown + " -> " + std::to_string(a.status) + " in " + std::to_string(ms) +
                       " ms (attempt " + std::to_string(number) + ")");
      if (a.status >= 300 && a.status <= 399 && a.status != 304 && !redirect.empty()) {
        if (hop >= kMaxRedirects) {
          o.reason = "more than " + std::to_string(kMaxRedirects) + " redirects";
          return o;
        }
        if (redirect.rfind("http://", 0) != 0 && redirect.rfind("https://", 0) != 0) {
          o.reason = "redirected to a URL that is not http(s)";
          return o;
        }
        url = redirect;
        own_origin = origin_of(url) == origin && url.rfind(base, 0) == 0;  // credentials stay home
        continue;
      }
      return classify(a);
    }
  }

  Outcome classify(Attempt& a) {
    Outcome o;
    long s = a.status;
    if (s >= 200 && s <= 299) {
      if (a.streaming) {
        if (a.skip > 0) {
          o.reason = "the file is shorter than the offset " + std::to_string(a.offset);
          return o;
        }
        if (a.end && a.offset + a.delivered < *a.end) {
          o.transient = true;
          o.code = ErrorCode::unavailable;
          o.reason = "the connection ended after " + std::to_string(a.offset + a.delivered) + " of " +
                     std::to_string(*a.end) + " bytes";
          return o;
        }
      }
      o.ok = true;
      return o;
    }
    std::string server = redact(printable(detail::server_message(a.body)));
    std::string said = server.empty() ? "" : ": " + server;
    if (s == 416 && a.streaming) {
      // Asked from the very end of the file: nothing left to send.
      if (detail::unsatisfied_range_total(a.header("content-range")) == a.offset) {
        o.ok = true;
        return o;
      }
      o.reason = status_text(s) + " from byte " + std::to_string(a.offset) + said;
      return o;
    }
    if (s == 404 || s == 410) {
      o.code = ErrorCode::not_found;
      o.reason = status_text(s) + said;
    } else if (s == 401 || s == 403) {
      o.code = ErrorCode::unauthorized;
      o.auth_failed = true;
      o.reason = status_text(s) + ": the registry refused source '" + opt.source + "' (" +
                 (opt.auth.kind == Auth::Kind::none ? std::string("no credentials configured") : opt.auth.describe()) +
                 ")" + said;
    } else if (s == 407) {
      o.code = ErrorCode::unauthorized;
      o.reason = status_text(s) + ": the proxy wants credentials (give them in the proxy URL)";
    } else if (s == 400 || s == 422) {
      o.code = ErrorCode::bad_request;
      o.reason = status_text(s) + said;
    } else if (RetryPolicy::retryable_status(s)) {
      o.code = ErrorCode::unavailable;
      o.transient = true;
      o.reason = status_text(s) + said;
      if (auto ra = a.header("retry-after"); !ra.empty()) o.retry_after = parse_retry_after(ra);
    } else {
      o.code = ErrorCode::internal;
      o.reason = "unexpected " + status_text(s) + said;
    }
    return o;
  }

  // Runs attempts of `path` until one succeeds or the failure is final. `prepare` sets up
  // each attempt; `after` sees each finished attempt (streams count their bytes there).
  void run(const std::string& path, const std::function<void(Attempt&)>& prepare,
           const std::function<void(const Attempt&)>& after) {
    int attempt = 0;    // attempts without progress
    int number = 0;     // all attempts
    bool reauthed = false;
    while (true) {
      ++attempt;
      ++number;
      Attempt a;
      prepare(a);
      Outcome o = exchange(path, a, number);
      after(a);
      if (o.ok) return;
      if (o.auth_failed && !reauthed && auth.invalidate()) {
        reauthed = true;
        Credentials fresh;
        try {
          fresh = auth.credentials();
        } catch (const Error&) {
        }
        if (fresh.headers != o.used.headers || fresh.query != o.used.query) {
          log("info", opt.source + ": " + where(path) + ": " + status_text(a.status) + "; trying again with fresh credentials");
          --attempt;
          continue;
        }
      }
      if (!o.transient) throw Error(o.code, where(path) + ": " + o.reason);
      if (a.delivered > 0) attempt = 1;  // progress: the budget starts again
      if (attempt >= opt.retry.max_attempts)
        throw Error(ErrorCode::unavailable, where(path) + ": " + o.reason + " (gave up after " + std::to_string(number) +
                                                (number == 1 ? " attempt)" : " attempts)"));
      auto wait = opt.retry.delay(attempt, o.retry_after, uniform01());
      log("warn", opt.source + ": " + where(path) + ": " + o.reason + "; retrying in " + ms_string(wait) +
                      (o.retry_after ? " (Retry-After)" : "") + " (attempt " + std::to_string(number + 1) + ")");
      std::this_thread::sleep_for(wait);
    }
  }
};

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;

const ClientOptions& HttpClient::options() const { return impl_->opt; }
ResponseCache& HttpClient::cache() { return impl_->cache; }
std::string HttpClient::redact(std::string_view text) const { return impl_->redact(text); }

json HttpClient::get_json(const std::string& path, bool use_cache) {
  if (use_cache)
    if (auto hit = impl_->cache.get(path)) return *hit;
  std::string body;
  impl_->run(
      path, [&](Attempt& a) { a.body_limit = impl_->opt.max_json_bytes; }, [&](const Attempt& a) { body = a.body; });
  json j;
  try {
    j = detail::parse_json_answer(body);
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorCode::internal, impl_->where(path) + ": " + e.what());
  }
  if (use_cache) impl_->cache.put(path, j);
  return j;
}

std::uint64_t HttpClient::stream(const std::string& path, std::uint64_t offset,
                                 const std::function<void(const char*, std::size_t)>& on_data) {
  std::uint64_t delivered = 0;
  std::string etag;
  impl_->run(
      path,
      [&](Attempt& a) {
        a.streaming = true;
        a.offset = offset + delivered;
        a.on_data = &on_data;
        a.expected_etag = etag;
      },
      [&](const Attempt& a) {
        delivered += a.delivered;
        if (etag.empty() && a.status >= 200 && a.status <= 299) etag = a.header("etag");
      });
  return delivered;
}

// ---------------------------------------------------------------------------------------
// Configuration

namespace {

[[noreturn]] void bad_setting(const std::string& key, const std::string& why) {
  throw Error(ErrorCode::bad_request, "setting '" + key + "' " + why);
}

std::string type_name(const json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "a map";
  return "null";
}

// Values are never quoted in messages: some are secrets.
std::optional<std::string> opt_str(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad_setting(where + key, "must be a string, not " + type_name(*it));
  std::string v = it->get<std::string>();
  if (has_control_chars(v)) bad_setting(where + key, "holds control characters");
  return v;
}

std::optional<std::uint64_t> opt_uint(const json& j, const char* key, const std::string& where, std::uint64_t lo,
                                      std::uint64_t hi) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_unsigned()) bad_setting(where + key, "must be a non-negative integer, not " + type_name(*it));
  auto v = it->get<std::uint64_t>();
  if (v < lo || v > hi) bad_setting(where + key, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  return v;
}

void only_keys(const json& j, const std::set<std::string>& allowed, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!allowed.count(it.key())) bad_setting(where + it.key(), "is not a known setting");
}

Auth auth_from_config(const json& j) {
  const std::string w = "auth.";
  if (!j.is_object()) bad_setting("auth", "must be a map, not " + type_name(j));
  only_keys(j, {"kind", "header", "query", "key", "token", "token_file", "user", "password", "command", "command_ttl_ms",
                "command_timeout_ms"},
            w);
  Auth a;
  auto kind = opt_str(j, "kind", w);
  if (!kind) bad_setting("auth.kind", "is required (api_key, bearer, basic, custom or none)");
  auto k = auth_kind_from_string(*kind);
  if (!k) bad_setting("auth.kind", "'" + printable(*kind, 40) + "' is not one of api_key, bearer, basic, custom, none");
  a.kind = *k;
  // Each setting belongs to one kind; a setting of another kind is a mistake worth naming.
  const std::map<std::string, Auth::Kind> owner = {
      {"header", Auth::Kind::api_key}, {"query", Auth::Kind::api_key},    {"key", Auth::Kind::api_key},
      {"token", Auth::Kind::bearer},   {"token_file", Auth::Kind::bearer}, {"user", Auth::Kind::basic},
      {"password", Auth::Kind::basic}, {"command", Auth::Kind::custom},   {"command_ttl_ms", Auth::Kind::custom},
      {"command_timeout_ms", Auth::Kind::custom}};
  for (const auto& [key, kind_of] : owner)
    if (j.contains(key) && kind_of != a.kind)
      bad_setting(w + key, "is a setting of auth kind " + std::string(to_string(kind_of)) + ", not " +
                               std::string(to_string(a.kind)));
  switch (a.kind) {
    case Auth::Kind::none: break;
    case Auth::Kind::api_key:
      a.key = opt_str(j, "key", w).value_or("");
      if (a.key.empty()) bad_setting("auth.key", "is required for auth kind api_key");
      a.header = opt_str(j, "header", w).value_or("");
      a.query = opt_str(j, "query", w).value_or("");
      if (!a.header.empty() && !a.query.empty()) bad_setting("auth", "give either 'header' or 'query', not both");
      if (!a.header.empty() && !is_token(a.header)) bad_setting("auth.header", "is not a valid header name");
      if (a.query.empty() && a.header.empty()) a.header = "X-API-Key";
      break;
    case Auth::Kind::bearer:
      a.token = opt_str(j, "token", w).value_or("");
      a.token_file = opt_str(j, "token_file", w).value_or("");
      if (a.token.empty() == a.token_file.empty())
        bad_setting("auth", "kind bearer needs exactly one of 'token' and 'token_file'");
      break;
    case Auth::Kind::basic: {
      auto user = opt_str(j, "user", w);
      auto password = opt_str(j, "password", w);
      if (!user || user->empty()) bad_setting("auth.user", "is required for auth kind basic");
      if (user->find(':') != std::string::npos) bad_setting("auth.user", "must not contain ':'");
      if (!password) bad_setting("auth.password", "is required for auth kind basic");
      a.user = *user;
      a.password = *password;
      break;
    }
    case Auth::Kind::custom: {
      auto it = j.find("command");
      if (it == j.end() || it->is_null()) bad_setting("auth.command", "is required for auth kind custom");
      if (it->is_string()) {
        a.command = {"/bin/sh", "-c", it->get<std::string>()};
      } else if (it->is_array() && !it->empty()) {
        for (const auto& e : *it) {
          if (!e.is_string()) bad_setting("auth.command", "must be a list of strings (a program and its arguments)");
          a.command.push_back(e.get<std::string>());
        }
      } else {
        bad_setting("auth.command", "must be a program and its arguments (a list), or a shell command (a string)");
      }
      if (a.command[0].empty()) bad_setting("auth.command", "names no program");
      if (auto v = opt_uint(j, "command_ttl_ms", w, 0, 86400000)) a.command_ttl = milliseconds(*v);
      if (auto v = opt_uint(j, "command_timeout_ms", w, 100, 600000)) a.command_timeout = milliseconds(*v);
      break;
    }
  }
  return a;
}

}  // namespace

ClientOptions options_from_config(const json& config, const std::vector<std::string>& extra_keys) {
  if (!config.is_object()) throw Error(ErrorCode::bad_request, "the configuration must be a map, not " + type_name(config));
  std::set<std::string> allowed = {"url", "auth", "timeout_ms", "connect_timeout_ms", "retry", "cache_ttl_ms",
                                   "user_agent", "proxy", "ca_file"};
  allowed.insert(extra_keys.begin(), extra_keys.end());
  only_keys(config, allowed, "");
  ClientOptions o;
  auto url = opt_str(config, "url", "");
  if (!url || url->empty()) bad_setting("url", "is required (the registry's base URL, http:// or https://)");
  if (url->rfind("http://", 0) != 0 && url->rfind("https://", 0) != 0)
    bad_setting("url", "must start with http:// or https://");
  if (url->find('@') != std::string::npos && url->find('@') < url->find('/', url->find("://") + 3))
    bad_setting("url", "must not hold credentials; use auth (kind basic)");
  o.base_url = *url;
  if (auto it = config.find("auth"); it != config.end() && !it->is_null()) o.auth = auth_from_config(*it);
  if (auto v = opt_uint(config, "timeout_ms", "", 100, 3600000)) o.timeout = milliseconds(*v);
  if (auto v = opt_uint(config, "connect_timeout_ms", "", 100, 600000)) o.connect_timeout = milliseconds(*v);
  if (auto v = opt_uint(config, "cache_ttl_ms", "", 0, 86400000)) o.cache_ttl = milliseconds(*v);
  if (auto v = opt_str(config, "user_agent", "")) o.user_agent = *v;
  if (auto v = opt_str(config, "proxy", "")) o.proxy = *v;
  if (auto v = opt_str(config, "ca_file", "")) o.ca_file = *v;
  if (auto it = config.find("retry"); it != config.end() && !it->is_null()) {
    if (!it->is_object()) bad_setting("retry", "must be a map, not " + type_name(*it));
    only_keys(*it, {"attempts", "initial_ms", "max_ms"}, "retry.");
    if (auto v = opt_uint(*it, "attempts", "retry.", 1, 100)) o.retry.max_attempts = static_cast<int>(*v);
    if (auto v = opt_uint(*it, "initial_ms", "retry.", 0, 600000)) o.retry.initial_delay = milliseconds(*v);
    if (auto v = opt_uint(*it, "max_ms", "retry.", 0, 3600000)) o.retry.max_delay = milliseconds(*v);
    if (o.retry.max_delay < o.retry.initial_delay) bad_setting("retry.max_ms", "must not be below retry.initial_ms");
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// HttpRegistry

void HttpRegistry::configure(const json& config) { set_options(options_from_config(config)); }

void HttpRegistry::set_options(ClientOptions options) { client_ = std::make_unique<HttpClient>(std::move(options)); }

HttpClient& HttpRegistry::client() {
  if (!client_) throw Error(ErrorCode::internal, "the HTTP registry has no client: configure() did not set one");
  return *client_;
}

std::string HttpRegistry::list_path() { return "/v1/models"; }
std::string HttpRegistry::versions_path(const std::string& name) { return "/v1/models/" + encode_path(name) + "/-/versions"; }
std::string HttpRegistry::metadata_path(const std::string& name, const std::string& version) {
  return versions_path(name) + "/" + encode_segment(version);
}
std::string HttpRegistry::file_path(const std::string& name, const std::string& version, const std::string& file) {
  return metadata_path(name, version) + "/files/" + encode_path(file);
}

std::vector<ModelSummary> HttpRegistry::parse_list(const json& body) {
  if (!body.is_object() || !body.contains("models") || !body["models"].is_array())
    throw Error(ErrorCode::internal, "the model list is not a map with a list 'models'");
  std::vector<ModelSummary> out;
  for (const auto& m : body["models"]) {
    try {
      out.push_back(ModelSummary::from_json(m));
    } catch (const std::exception& e) {
      log("warn", client().options().source + ": skipped an entry of the model list: " + e.what());
    }
  }
  return out;
}

std::vector<std::string> HttpRegistry::parse_versions(const json& body) {
  if (!body.is_object() || !body.contains("versions") || !body["versions"].is_array())
    throw Error(ErrorCode::internal, "the version list is not a map with a list 'versions'");
  std::vector<std::string> out;
  for (const auto& v : body["versions"])
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

ModelMetadata HttpRegistry::parse_metadata(const json& body) { return ModelMetadata::from_json(body); }

std::string HttpRegistry::latest_version(const std::vector<std::string>& versions) {
  std::optional<bus::SemVer> best;
  std::string best_s;
  for (const auto& v : versions) {
    auto sv = bus::SemVer::parse(v);
    if (!sv) continue;
    bool better = !best;
    if (best) {
      bool rel = sv->prerelease.empty(), best_rel = best->prerelease.empty();
      better = rel != best_rel ? rel : sv->compare(*best) > 0;
    }
    if (better) {
      best = std::move(*sv);
      best_s = v;
    }
  }
  return best_s;
}

namespace {
// Runs a parser; whatever it throws becomes `internal` naming the request.
template <typename F>
auto parsed(HttpClient& c, const std::string& path, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw Error(ErrorCode::internal, "GET " + c.redact(c.options().base_url + path) + ": unusable answer: " + e.what());
  }
}
}  // namespace

ModelMetadata HttpRegistry::metadata(const std::string& name, const std::string& version) {
  std::string v = version;
  if (v.empty()) {
    auto path = versions_path(name);
    auto body = client().get_json(path);
    auto versions = parsed(client(), path, [&] { return parse_versions(body); });
    v = latest_version(versions);
    if (v.empty()) throw Error(ErrorCode::not_found, "model '" + name + "' has no versions at " + client().options().source);
  }
  auto path = metadata_path(name, v);
  auto body = client().get_json(path);
  auto md = parsed(client(), path, [&] { return parse_metadata(body); });
  if (md.name != name || md.version != v)
    throw Error(ErrorCode::internal, "GET " + client().redact(client().options().base_url + path) + ": answered for '" +
                                         md.name + ":" + md.version + "' when asked for '" + name + ":" + v + "'");
  return md;
}

bool HttpRegistry::exists(const std::string& name, const std::string& version) {
  try {
    if (version.empty()) {
      auto path = versions_path(name);
      auto body = client().get_json(path);
      return !latest_version(parsed(client(), path, [&] { return parse_versions(body); })).empty();
    }
    metadata(name, version);
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) return false;
    throw;
  }
}

std::vector<ModelSummary> HttpRegistry::list() {
  auto path = list_path();
  auto body = client().get_json(path);
  auto models = parsed(client(), path, [&] { return parse_list(body); });
  for (auto& m : models) {
    // newest first, as the protocol wants; strings that are not versions last
    std::stable_sort(m.versions.begin(), m.versions.end(), [](const std::string& a, const std::string& b) {
      auto sa = bus::SemVer::parse(a), sb = bus::SemVer::parse(b);
      if (sa && sb) return sa->compare(*sb) > 0;
      return sa.has_value() && !sb.has_value();
    });
  }
  return models;
}

void HttpRegistry::download(const DownloadRequest& req, ChunkSink& sink) {
  const std::size_t chunk = std::max<std::size_t>(sink.chunk_size(), 1);
  constexpr auto kFlushEvery = milliseconds(250);
  std::string buf;
  buf.reserve(chunk);
  auto last_flush = Clock::now();
  bool sink_failed = false;  // the sink threw: it must not be written to again
  auto flush = [&] {
    if (!buf.empty()) {
      sink_failed = true;
      sink.write(buf.data(), buf.size());
      sink_failed = false;
    }
    buf.clear();
    last_flush = Clock::now();
  };
  try {
    client().stream(file_path(req.name, req.version, req.file), req.offset, [&](const char* p, std::size_t n) {
      while (n > 0) {
        std::size_t take = std::min(n, chunk - buf.size());
        buf.append(p, take);
        p += take;
        n -= take;
        if (buf.size() >= chunk || Clock::now() - last_flush >= kFlushEvery) flush();
      }
    });
    flush();
  } catch (...) {
    // Hand over what arrived before the failure, so the daemon resumes after it.
    if (!sink_failed) {
      try {
        flush();
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace modelzoo::sdk::http
