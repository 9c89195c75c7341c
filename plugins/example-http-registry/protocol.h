// The pure logic of the HTTP registry protocol (docs/http-registry.md) as the example server
// speaks it: request paths, byte ranges, credentials, log redaction, the error body. No
// sockets here, so all of it is unit-tested (tests/unit/http_registry_server_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/model.h"

namespace modelzoo::plugins::http_registry {

// A failed request: answered with `status` and {"error": {"code": code, "message": what()}}.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, std::string code, const std::string& message)
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  int status() const { return status_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string code_;
};

// {"error": {"code": code, "message": message}}, serialized.
std::string error_body(const std::string& code, const std::string& message);
// The protocol's error code for an HTTP status: 401/403 unauthorized, 404 not_found,
// 429/503 unavailable, other 4xx bad_request, else internal.
std::string error_code_for_status(int status);

// Decodes %XX escapes ('+' stays '+'). nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s);
// Escapes every byte outside [A-Za-z0-9._~-]; '/' too unless keep_slash.
std::string percent_encode(std::string_view s, bool keep_slash = false);

struct Route {
  enum class Kind { list, versions, metadata, file };
  Kind kind = Kind::list;
  std::string name;     // versions, metadata, file
  std::string version;  // metadata, file
  std::string file;     // file; may contain '/'
};

// Parses a request target ("/v1/models/acme/llm/-/versions/1.0.0?x=y"; the query is
// ignored). Every segment is percent-decoded on its own, then names are joined with '/' and
// checked with the bus name rules. Throws HttpError: 400 bad_request for a malformed escape
// or a name, version or file name that fails the checks, 404 not_found for a path that is
// no endpoint.
Route parse_route(std::string_view target);

// A byte range of a representation, both ends inclusive.
struct ByteRange {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  std::uint64_t length() const { return last - first + 1; }
};
struct RangeRequest {
  enum class Kind { none, satisfiable, unsatisfiable };
  Kind kind = Kind::none;
  ByteRange range;  // when satisfiable
};
// The value of a Range header against a representation of `size` bytes: one "bytes=N-",
// "bytes=N-M" or "bytes=-S" range is satisfiable (M clamped to the end) or unsatisfiable
// (N at or past the end, or -0). An empty value, another unit, several ranges or a syntax
// error give `none`: the header is ignored and the whole file is sent (RFC 9110 14.2).
RangeRequest parse_range(std::string_view header, std::uint64_t size);
// "bytes first-last/size"
std::string content_range(const ByteRange& r, std::uint64_t size);

// Which credentials the server demands (at most one kind).
struct AuthConfig {
  enum class Kind { none, api_key, bearer, basic, header };
  Kind kind = Kind::none;
  std::string api_key;                       // api_key
  std::string api_key_header = "X-API-Key";  // api_key: the header that carries it
  std::string api_key_query;                 // api_key: a query parameter that may carry it instead
  std::string bearer;                        // bearer (when not read from a file)
  std::string bearer_file;                   // bearer: the file holding the token
  std::string basic_user, basic_password;    // basic
  std::string header_name, header_value;     // header: an arbitrary required header
};

// "KIND" for the startup log line; never a secret.
std::string describe(const AuthConfig& auth);
// Splits "USER:PASSWORD" (at the first ':') or "NAME:VALUE" (value trimmed). nullopt when
// there is no ':' or the left side is empty.
std::optional<std::pair<std::string, std::string>> split_pair(std::string_view s, bool trim_value);

enum class AuthResult { ok, missing, wrong };
// Looks up a request header or query parameter by name.
using Lookup = std::function<std::optional<std::string>(const std::string& name)>;
// Checks a request's credentials. `bearer_token` is the token in force (bearer kind; it may
// come from a file). missing = no credentials of the demanded kind (401), wrong = present
// but not the right ones (403). Secrets are compared in constant time.
AuthResult check_auth(const AuthConfig& auth, const std::string& bearer_token, const Lookup& header,
                      const Lookup& query);
// The WWW-Authenticate challenge sent with a 401.
std::string www_authenticate(const AuthConfig& auth);

bool constant_time_equal(std::string_view a, std::string_view b);
// Standard base64 with padding (RFC 4648 section 4); nullopt when malformed.
std::optional<std::string> base64_decode(std::string_view s);
std::string base64_encode(std::string_view s);

// Whether an If-None-Match value names `etag` (a quoted entity tag, possibly weak): a list
// of tags compared weakly (RFC 9110 8.8.3.2), or "*".
bool etag_matches(std::string_view if_none_match, std::string_view etag);

// The request target as logged: the path as it came, every query parameter's value replaced
// by "REDACTED" (an API key may travel in the query).
std::string redact_target(std::string_view target);

// "HOST:PORT", "[V6]:PORT" or ":PORT" (host 127.0.0.1). Port 0..65535, 0 = any free port.
// Throws std::invalid_argument.
struct ListenAddress {
  std::string host;
  int port = 0;
};
ListenAddress parse_listen(std::string_view s);

// Metadata as the protocol sends it: the bus map without `local_path` (paths on the
// server's host mean nothing to a client) and without empty optional fields.
nlohmann::json metadata_json(const bus::ModelMetadata& m);

}  // namespace modelzoo::plugins::http_registry
