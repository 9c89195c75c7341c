// The HTTP client of registries (part of the SDK's HTTP base, modelzoo/http.h): GET JSON and
// stream bytes, with connection reuse, timeouts, retries, auth, redaction and a cache. Errors
// are sdk::Error with the protocol's codes, as modelzoo/http.h describes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <utility>
#include <vector>
#include <string_view>

#include <nlohmann/json.hpp>

#include "modelzoo/http/auth.h"
#include "modelzoo/http/clock.h"
#include "modelzoo/http/response_cache.h"
#include "modelzoo/http/retry.h"

namespace modelzoo::sdk::http {

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
  // Parallel ranged downloads of one file: up to `streams` connections at once, each
  // fetching pieces of `piece_bytes`, when the server answers ranges (one 200 and the file
  // comes over one connection). on_data still sees the bytes in order, once each; memory
  // holds at most `streams` pieces beyond the one being delivered. 1: one connection.
  // Default: docs/sources.md, "Parallel downloads", says how it was chosen.
  unsigned streams = 4;
  std::uint64_t piece_bytes = 8u << 20;
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

  // One page of a listing: the JSON answer of GET base_url + path (never cached) and the path
  // of the next page from its `Link: <...>; rel="next"` header, "" when it is the last. A
  // next page outside base_url (another host, another prefix) is not followed: "" and a warn
  // line, so credentials never go elsewhere.
  struct JsonPage {
    nlohmann::json body;
    std::string next;
  };
  JsonPage get_json_page(const std::string& path);

  // Any request to base_url + path (already percent-encoded), for APIs that are not JSON
  // (S3's XML listings, HEAD for an object's headers, a small PUT): the same retries,
  // Retry-After, auth (a signer sees `method`), redirects and redaction as get_json, never
  // cached. Returns a 2xx answer; anything else throws Error as described at the top. A body
  // longer than max_body ends the request with Error(internal). HEAD answers have no body.
  struct Request {
    std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
    std::string path;
    std::vector<std::pair<std::string, std::string>> headers;  // sent as given
    std::string body;
    std::size_t max_body = 64u << 20;
  };
  struct Response {
    long status = 0;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
  };
  Response send(const Request& request);

  // GETs the bytes of base_url + path from `offset` to the end and hands them, in order,
  // to `on_data` (with Range: bytes=offset- when offset > 0, or bytes=offset-LAST in
  // pieces when options().streams > 1; a 206 must start at offset, a 200 is accepted and
  // its first `offset` bytes skipped). on_data is called on the calling thread only. A transient failure is retried
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

}  // namespace modelzoo::sdk::http
