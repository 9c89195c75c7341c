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
//
// Each piece has a header of its own under modelzoo/http/ (auth.h, redact.h, retry.h,
// response_cache.h, client.h, url.h, options.h, registry.h); this one includes them all.
#pragma once

#include "modelzoo/http/auth.h"
#include "modelzoo/http/client.h"
#include "modelzoo/http/clock.h"
#include "modelzoo/http/options.h"
#include "modelzoo/http/redact.h"
#include "modelzoo/http/registry.h"
#include "modelzoo/http/response_cache.h"
#include "modelzoo/http/retry.h"
#include "modelzoo/http/url.h"
