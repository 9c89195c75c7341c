// The SDK's HTTP base: what every HTTP-backed registry needs, so that a plugin author writes
// only the mapping from the registry's API to modelzoo's (library modelzoo_plugin_sdk_http,
// built on libcurl; link it only when you need it).
//
//   class MyRegistry : public modelzoo::sdk::http::HttpRegistry {
//     std::string metadata_path(const std::string& name, const std::string& version) override {
//       return "/api/" + encode_path(name) + "/" + encode_segment(version);
//     }
//   };
//   int main(int argc, char** argv) {
//     MyRegistry r;  // configure() reads url, auth, timeouts, retry, cache from the config
//     return modelzoo::sdk::run(r, {.name = "my-registry"}, argc, argv);
//   }
//
// The pieces, usable on their own:
//   HttpClient     GET JSON / stream bytes, connection reuse, timeouts, retries, auth, cache
//   Auth           api key (header or query), bearer (static or token file), basic, custom
//   RetryPolicy    exponential back-off with full jitter, Retry-After, transient failures only
//   ResponseCache  TTL + LRU cache of JSON answers
//   Redactor       keeps credentials out of every log line and error message
//
// Errors are sdk::Error with the protocol's codes: 404/410 -> not_found, 401/403 ->
// unauthorized (naming the source and how it authenticates, never the secret), 400/422 ->
// bad_request, transient failures (connection errors, timeouts, 408, 429, 5xx) retried and
// then unavailable (so the daemon fails over), anything else internal.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/plugin.h"

namespace modelzoo::sdk::http {

using Clock = std::chrono::steady_clock;
using ClockFn = std::function<Clock::time_point()>;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------------
// Authentication

// How requests authenticate. Secrets live here and nowhere else: describe() and every
// message of this library name the kind and where the secret comes from, never its value.
struct Auth {
  enum class Kind { none, api_key, bearer, basic, custom };
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
};

// Standard base64 (with padding) of `data`.
std::string base64(std::string_view data);
// "Basic " + base64(user ":" password).
std::string basic_auth_value(std::string_view user, std::string_view password);
// Parses "Header-Name: value" (blanks around the value trimmed). Throws Error(unauthorized)
// without quoting the line when it is not a header (bad name, no colon, empty value, control
// characters).
std::pair<std::string, std::string> parse_header_line(std::string_view line);

// ---------------------------------------------------------------------------------------
// Redaction

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

// ---------------------------------------------------------------------------------------
// Retries

// When and how long to wait before trying again. Only transient failures are retried:
// connection failures, timeouts, HTTP 408, 429 and 5xx; never another 4xx.
struct RetryPolicy {
  int max_attempts = 4;             // attempts in all, the first included (1 = no retry)
  milliseconds initial_delay{250};  // back-off cap before the first retry
  milliseconds max_delay{10000};    // no wait is longer, Retry-After included

  // min(max_delay, initial_delay * 2^(retry - 1)) for retry >= 1.
  milliseconds backoff_cap(int retry) const;
  // The wait before retry number `retry` (1 = the first retry). With `retry_after` (the
  // server's Retry-After) exactly that, capped by max_delay; else full jitter: `u` (uniform
  // in [0, 1)) times backoff_cap(retry).
  milliseconds delay(int retry, std::optional<milliseconds> retry_after, double u) const;
  // Whether a response with this HTTP status is worth retrying.
  static bool retryable_status(long status);
};

// A Retry-After value: delay-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015 07:28:00
// GMT", a date in the past meaning 0). nullopt when it is neither.
std::optional<milliseconds> parse_retry_after(std::string_view value,
                                              std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// ---------------------------------------------------------------------------------------
// Cache

// JSON answers by key (the request path) for `ttl`, at most `max_entries` (least recently
// used dropped first). A ttl of 0 disables it. Thread-safe. `clock` is for tests.
class ResponseCache {
 public:
  explicit ResponseCache(milliseconds ttl, std::size_t max_entries = 1024, ClockFn clock = Clock::now);

  std::optional<nlohmann::json> get(const std::string& key);
  void put(const std::string& key, nlohmann::json value);
  void erase(const std::string& key);
  void clear();
  std::size_t size() const;
  milliseconds ttl() const { return ttl_; }

 private:
  struct Entry {
    std::string key;
    nlohmann::json value;
    Clock::time_point expires;
  };
  milliseconds ttl_;
  std::size_t max_entries_;
  ClockFn clock_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

// ---------------------------------------------------------------------------------------
// The client

struct ClientOptions {
  // Where the registry is: "https://host[:port][/prefix]". Request paths are appended.
  std::string base_url;
  // Named in errors and log lines; default: $MODELZOO_INSTANCE (the source name the daemon
  // gives the plugin), else "http".
  std::string source;
  milliseconds connect_timeout{10000};
  // JSON requests: the whole request. Streams: the longest time without a byte.
  milliseconds timeout{30000};
  std::string user_agent;  // default "modelzoo-plugin/<version> libcurl/<version>"
  // TLS peers are always verified; `ca_file` adds a CA bundle (PEM) for private registries.
  std::string ca_file;
  // A proxy URL for every request. Empty: libcurl's own environment handling applies
  // (http_proxy, https_proxy, HTTPS_PROXY, ALL_PROXY, no_proxy/NO_PROXY).
  std::string proxy;
  Auth auth;
  RetryPolicy retry;
  milliseconds cache_ttl{30000};  // of JSON answers; 0 = no cache
  std::size_t cache_entries = 1024;
  std::size_t max_json_bytes = 64u << 20;
};

// Talks to one HTTP registry. Thread-safe: requests from several threads run at once, each
// on an easy handle of a pool whose handles share one connection cache, DNS cache and TLS
// session cache, so connections are reused across requests and threads.
//
// Logging (sdk::log): one debug line per HTTP request (method, path, status, ms, attempt),
// a warn line per retry (reason and wait). Neither ever holds a credential.
class HttpClient {
 public:
  // Throws Error(bad_request) when the options are unusable (no base URL, bad auth).
  explicit HttpClient(ClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // GETs base_url + path (path starts with '/', already percent-encoded) and parses the
  // JSON answer of a 200. Answers come from and go to the cache unless `use_cache` is
  // false. Throws Error as described at the top of this file.
  nlohmann::json get_json(const std::string& path, bool use_cache = true);

  // GETs the bytes of base_url + path from `offset` to the end and hands them, in order,
  // to `on_data` (with Range: bytes=offset- when offset > 0; a 206 must start at offset,
  // a 200 is accepted and its first `offset` bytes skipped). A transient failure is retried
  // from the first byte not yet delivered: on_data never sees a byte twice, and a retry
  // that made progress does not use up an attempt. An exception thrown by on_data ends the
  // stream and propagates unchanged. Returns the number of bytes delivered.
  std::uint64_t stream(const std::string& path, std::uint64_t offset,
                       const std::function<void(const char* data, std::size_t size)>& on_data);

  const ClientOptions& options() const;
  ResponseCache& cache();
  // `text` with every known credential replaced (for messages built by the caller).
  std::string redact(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Percent-encodes one path segment (everything but A-Z a-z 0-9 - . _ ~).
std::string encode_segment(std::string_view segment);
// Percent-encodes each '/'-separated segment of a model or file name, keeping the '/'.
std::string encode_path(std::string_view name);

// Reads the settings every HTTP registry shares from a plugin configuration (see the SDK
// section of docs/writing-plugins.md): url (required), auth {kind, header, query, key,
// token, token_file, user, password, command, command_ttl_ms}, timeout_ms,
// connect_timeout_ms, retry {attempts, initial_ms, max_ms}, cache_ttl_ms, user_agent,
// proxy, ca_file. Keys not listed and not in `extra_keys` are an error. Throws
// Error(bad_request) naming the setting (never its value, for secrets).
ClientOptions options_from_config(const nlohmann::json& config, const std::vector<std::string>& extra_keys = {});

// ---------------------------------------------------------------------------------------
// The registry base (the spec's CustomModelRegistry)

// A Registry over an HTTP API. The defaults speak modelzoo's HTTP registry protocol
// (docs/http-registry.md):
//   GET /v1/models                                          -> {"models": [summary...]}
//   GET /v1/models/<name>/-/versions                        -> {"name", "versions": [...]}
//   GET /v1/models/<name>/-/versions/<version>              -> metadata
//   GET /v1/models/<name>/-/versions/<version>/files/<file> -> bytes (Range supported)
// A registry with another API overrides the paths and parsers it needs; requests, retries,
// auth, caching, errors and the download loop stay here.
class HttpRegistry : public Registry {
 public:
  // Reads options_from_config(config) and calls set_options.
  void configure(const nlohmann::json& config) override;

  // Empty `version`: latest_version(versions) from versions_path. Checks that the answer is
  // for the model and version asked.
  ModelMetadata metadata(const std::string& name, const std::string& version) override;
  bool exists(const std::string& name, const std::string& version) override;
  std::vector<ModelSummary> list() override;
  // Streams file_path(...) into the sink in chunks of sink.chunk_size() (flushed at least
  // every 250 ms when the upstream is slow).
  void download(const DownloadRequest& req, ChunkSink& sink) override;

 protected:
  // Creates the client; call from configure() (before any request).
  void set_options(ClientOptions options);
  // Throws Error(internal) when configure() has not set it up.
  HttpClient& client();

  // The mapping. Paths start with '/' and are percent-encoded (encode_path, encode_segment).
  virtual std::string list_path();
  virtual std::string versions_path(const std::string& name);
  virtual std::string metadata_path(const std::string& name, const std::string& version);
  virtual std::string file_path(const std::string& name, const std::string& version, const std::string& file);
  // Parsers of the JSON answers; throw on anything unusable (reported as `internal`).
  virtual std::vector<ModelSummary> parse_list(const nlohmann::json& body);
  virtual std::vector<std::string> parse_versions(const nlohmann::json& body);
  virtual ModelMetadata parse_metadata(const nlohmann::json& body);
  // The version "latest" means: the highest release by semver precedence, else the highest
  // pre-release; strings that are not versions are ignored. Empty when there is none.
  virtual std::string latest_version(const std::vector<std::string>& versions);

 private:
  std::unique_ptr<HttpClient> client_;
};

}  // namespace modelzoo::sdk::http
