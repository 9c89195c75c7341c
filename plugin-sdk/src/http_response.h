// Internal to the SDK's HTTP base (not installed; implemented by http_response.cc, used by
// http_client.cc): how the answer of one HTTP request -- status line, header lines and body
// bytes as libcurl hands them over -- is read and checked. Pure functions of the bytes a
// server sent, declared here so that the fuzz target tests/fuzz/fuzz_http_response.cc runs the
// very code the client runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::sdk::http::detail {

inline constexpr std::size_t kMaxErrorBody = 64 * 1024;

// One attempt's request parameters and what came back.
struct Attempt {
  bool streaming = false;
  std::uint64_t offset = 0;  // first byte asked for (streams)
  // Streams: the last byte asked for (Range: bytes=offset-last); none asks to the end.
  std::optional<std::uint64_t> last;
  // A piece of a parallel download: a 200 (the server ignoring the Range) ends the transfer
  // instead of being read as the whole file.
  bool require_partial = false;
  const std::function<void(const char*, std::size_t)>* on_data = nullptr;
  std::size_t body_limit = kMaxErrorBody;
  std::string expected_etag;  // streams: the ETag of the first response, once known
  // HttpClient::send: the method ("GET" for everything else), the headers and body it sends.
  std::string method = "GET";
  const std::vector<std::pair<std::string, std::string>>* request_headers = nullptr;
  const std::string* request_body = nullptr;

  long status = 0;
  std::map<std::string, std::string> headers;  // of the last response; names in lower case
  std::string body;                            // JSON answers and error bodies
  bool started = false;                        // the response was checked (first body byte or end)
  bool deliver = false;                        // body bytes go to on_data
  std::uint64_t skip = 0;                      // bytes still to drop (a 200 answering a Range)
  std::uint64_t delivered = 0;
  std::optional<std::uint64_t> end;  // streams: one past the last byte of the file this response covers
  std::optional<std::uint64_t> total;  // streams: the file's size, from a 206's Content-Range ("/*": none)
  std::string protocol_error;        // set by check(): ends the transfer, not retried
  std::exception_ptr sink_error;

  void reset_response();
  std::string header(const std::string& name) const;
  // Called before the first body byte (or at the end when there is none): decides where
  // the body goes and checks the ranges (Content-Range, Content-Length) and ETag of a stream.
  void check();
};

// libcurl's CURLOPT_HEADERFUNCTION and CURLOPT_WRITEFUNCTION, `ud` an Attempt.
std::size_t on_header(char* buf, std::size_t size, std::size_t n, void* ud);
std::size_t on_body(char* buf, std::size_t size, std::size_t n, void* ud);

// The message of an error body {"error": {"code", "message"}} (docs/http-registry.md), the code
// when it has no message; of OAuth 2.0's {"error": "code", "error_description"} "code:
// description"; of an XML error body (S3, Azure Blob, GCS) "<Code>: <Message>"; "" otherwise.
std::string server_message(const std::string& body);

// A JSON answer (model list, versions, metadata) parsed. Throws std::invalid_argument when it is
// not JSON or nests deeper than kMaxJsonDepth: copying such a value (the response cache does)
// recurses once per level and would overflow the stack.
inline constexpr int kMaxJsonDepth = 64;
nlohmann::json parse_json_answer(const std::string& body);

// The target of the rel="next" entry of a Link header (RFC 8288: `<URL>; rel="next"`, entries
// separated by commas, rel possibly one of several space-separated values), "" when none.
std::string next_link(const std::string& link);

// The TOTAL of a 416's "Content-Range: bytes */TOTAL", nullopt when it is not of that form.
std::optional<unsigned long long> unsatisfied_range_total(const std::string& content_range);

}  // namespace modelzoo::sdk::http::detail
