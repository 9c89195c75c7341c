// Authentication (modelzoo/http/auth.h): credentials from the configuration, a token file
// re-read when it changes, or a command run without a shell's help (posix_spawn).
#include "modelzoo/http/auth.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "modelzoo/plugin.h"

#include "http_text.h"

extern char** environ;

namespace modelzoo::sdk::http {

using detail::has_control_chars;
using detail::is_token;
using detail::ms_string;
using detail::trim;

std::string_view to_string(Auth::Kind kind) {
  switch (kind) {
    case Auth::Kind::none: return "none";
    case Auth::Kind::api_key: return "api_key";
    case Auth::Kind::bearer: return "bearer";
    case Auth::Kind::basic: return "basic";
    case Auth::Kind::custom: return "custom";
    case Auth::Kind::provider: return "provider";
    case Auth::Kind::signer: return "signer";
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
    case Kind::provider: return provider_name.empty() ? std::string("credentials from the plugin") : provider_name;
    case Kind::signer: return provider_name.empty() ? std::string("requests signed by the plugin") : provider_name;
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
    case Auth::Kind::provider: {
      std::lock_guard lk(mu_);  // one call at a time: concurrent requests share its answer
      if (!provided_) {
        if (!auth_.provider) throw Error(ErrorCode::internal, "auth kind provider without a provider function");
        provided_ = auth_.provider(refresh_);
        refresh_ = false;
        const std::string& v = *provided_;
        if (!v.empty() && std::find(seen_secrets_.begin(), seen_secrets_.end(), v) == seen_secrets_.end()) {
          seen_secrets_.push_back(v);
          if (auto sp = v.find(' '); sp != std::string::npos && sp + 1 < v.size()) seen_secrets_.push_back(v.substr(sp + 1));
        }
      }
      if (!provided_->empty()) c.headers.emplace_back("Authorization", *provided_);
      break;
    }
    case Auth::Kind::signer: break;  // per request, by the client (it knows the URL and range)
  }
  return c;
}

bool Authenticator::invalidate() {
  std::lock_guard lk(mu_);
  file_stamp_.reset();
  command_header_.reset();
  if (auth_.kind == Auth::Kind::provider) {
    provided_.reset();
    refresh_ = true;
    return true;
  }
  return auth_.kind == Auth::Kind::custom || (auth_.kind == Auth::Kind::bearer && !auth_.token_file.empty());
}

std::vector<std::string> Authenticator::secrets() const {
  std::lock_guard lk(mu_);
  return seen_secrets_;
}

}  // namespace modelzoo::sdk::http
