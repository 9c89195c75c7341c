// Authentication of HTTP registry requests (part of the SDK's HTTP base, modelzoo/http.h):
// api key, bearer token (static or from a file), basic, a custom command's header, or a
// function of the plugin's own (credentials it negotiates itself, as OCI's token flow).
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "modelzoo/http/clock.h"

namespace modelzoo::sdk::http {

// How requests authenticate. Secrets live here and nowhere else: describe() and every
// message of this library name the kind and where the secret comes from, never its value.
struct Auth {
  enum class Kind { none, api_key, bearer, basic, custom, provider, signer };
  Kind kind = Kind::none;
  // api_key: the key, sent in the header `header` or else in the query parameter `query`
  // (one of the two; with neither, the header X-API-Key).
  std::string key{};
  std::string header{};
  std::string query{};
  // bearer: "Authorization: Bearer <token>", the token given here or read from
  // `token_file` (surrounding blanks and line breaks trimmed), re-read whenever the
  // file's size or modification time changes and after every 401/403.
  std::string token{};
  std::string token_file{};
  // basic: "Authorization: Basic base64(user:password)".
  std::string user{};
  std::string password{};
  // custom: a program and its arguments; the first non-empty line of its standard output
  // is the header to send, "Header-Name: value" (any scheme). Its output is reused for
  // `command_ttl` and the command runs again after a 401/403. Its standard error is
  // discarded (it could hold the secret); it is killed after `command_timeout`.
  std::vector<std::string> command{};
  milliseconds command_ttl{300000};
  milliseconds command_timeout{30000};
  // provider (code only, not a configuration kind): `provider(refresh)` returns the value of
  // the Authorization header ("" sends none). Its answer is reused until a 401/403, after
  // which it is called once with refresh = true. It may throw Error (unauthorized, ...).
  // `provider_name` is what describe() says ("registry token flow").
  std::function<std::string(bool refresh)> provider{};
  std::string provider_name{};  // describe() of provider and signer
  // signer (code only): called for every request to the registry's own origin, each piece of
  // a parallel download and each retry included, with what that request sends; returns the
  // headers to add. For schemes that sign each request (S3's SigV4, Azure's Shared Key).
  struct SignInput {
    std::string method;  // "GET"
    std::string url;     // the full URL, path and query encoded as sent
    std::string range;   // the Range header's value ("bytes=0-1048575"), "" when none
    // HttpClient::send: the request's own headers (x-amz-copy-source, ...) and its body.
    std::vector<std::pair<std::string, std::string>> headers{};
    std::string_view body{};
  };
  std::function<std::vector<std::pair<std::string, std::string>>(const SignInput&)> signer{};

  // "api key in header 'X-API-Key'", "bearer token from file '/run/tok'", ... Never a secret.
  std::string describe() const;
};

std::string_view to_string(Auth::Kind kind);
// "none", "api_key", "bearer", "basic", "custom"; nullopt for anything else.
std::optional<Auth::Kind> auth_kind_from_string(std::string_view s);

// What one request carries: headers and query parameters (names and values, unencoded).
struct Credentials {
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> query;
};

// Produces the credentials of each request from an Auth. Thread-safe. `clock` is for tests.
class Authenticator {
 public:
  explicit Authenticator(Auth auth, ClockFn clock = Clock::now);

  // The credentials for the next request: reads the token file when it changed, runs the
  // command when its output expired. Throws Error(unauthorized) naming the file or command
  // (not its contents) when it cannot be read, fails, or yields an unusable header.
  Credentials credentials();

  // A request came back 401/403: drops the cached token file contents and command output.
  // Returns true when the next credentials() may differ (token_file, custom), i.e. when one
  // immediate retry is worth it.
  bool invalidate();

  // Every secret value seen so far (keys, tokens, passwords, header values, their base64
  // forms), for a Redactor.
  std::vector<std::string> secrets() const;

  const Auth& auth() const { return auth_; }

 private:
  std::string read_token_file();  // caller holds mu_
  std::pair<std::string, std::string> run_command();

  Auth auth_;
  ClockFn clock_;
  mutable std::mutex mu_;
  // token_file cache: contents and the (size, mtime) they were read at
  std::optional<std::pair<std::uintmax_t, std::int64_t>> file_stamp_;
  std::string file_token_;
  // custom command cache
  std::optional<std::pair<std::string, std::string>> command_header_;
  Clock::time_point command_expiry_{};
  std::vector<std::string> seen_secrets_;
  // provider cache
  std::optional<std::string> provided_;
  bool refresh_ = false;
};

// Standard base64 (with padding) of `data`.
std::string base64(std::string_view data);
// "Basic " + base64(user ":" password).
std::string basic_auth_value(std::string_view user, std::string_view password);
// Parses "Header-Name: value" (blanks around the value trimmed). Throws Error(unauthorized)
// without quoting the line when it is not a header (bad name, no colon, empty value, control
// characters).
std::pair<std::string, std::string> parse_header_line(std::string_view line);

}  // namespace modelzoo::sdk::http
