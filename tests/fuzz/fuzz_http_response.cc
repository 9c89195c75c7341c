// Fuzz target: what a remote HTTP registry answers, as the SDK's HTTP base reads it
// (plugin-sdk/src/http_response.cc through http_response.h): status line and header lines (ETag,
// Content-Range, Content-Length, Retry-After), body bytes delivered to a stream or kept as a
// JSON answer / error body, the error body's message, a 416's Content-Range; plus the other
// parsers of outside text there: Retry-After values, URLs to redact (redirects, configuration)
// and the header line an auth command prints.
//
// Input: four parts (fuzz_util.h split_parts): control (byte 0: bit 0 stream, bit 1 the sink
// throws, bits 2-7 the body's chunk size; bytes 1-8 the offset asked for, little-endian; the
// rest the ETag of an earlier response), header lines separated by '\n' (the first usually
// "HTTP/1.1 206 ..."), the body, and one more line for the other parsers.
#include <chrono>
#include <cstdint>
#include <stdexcept>

#include "fuzz_util.h"
#include "http_response.h"
#include "modelzoo/http.h"

namespace http = modelzoo::sdk::http;
namespace detail = modelzoo::sdk::http::detail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parts = modelzoo::fuzz::split_parts(data, size, 4);
  while (parts.size() < 4) parts.emplace_back();
  std::string_view control = parts[0];
  unsigned char flags = control.empty() ? 0 : static_cast<unsigned char>(control[0]);
  std::uint64_t offset = 0;
  for (std::size_t i = 1; i < 9 && i < control.size(); ++i)
    offset |= static_cast<std::uint64_t>(static_cast<unsigned char>(control[i])) << (8 * (i - 1));

  detail::Attempt a;
  a.streaming = flags & 1;
  a.offset = offset;
  if (control.size() > 9) a.expected_etag = std::string(control.substr(9));
  std::uint64_t seen = 0;
  std::function<void(const char*, std::size_t)> sink = [&](const char*, std::size_t n) {
    seen += n;
    if ((flags & 2) && seen > 16) throw std::runtime_error("sink full");
  };
  a.on_data = &sink;
  a.reset_response();

  std::string headers(parts[1]);
  std::size_t start = 0;
  while (start < headers.size()) {
    auto end = headers.find('\n', start);
    std::size_t len = (end == std::string::npos ? headers.size() : end + 1) - start;
    std::string line = headers.substr(start, len);
    FUZZ_ASSERT(detail::on_header(line.data(), 1, line.size(), &a) == line.size());
    start += len;
  }
  std::string body(parts[2]);
  std::size_t chunk = (flags >> 2) + 1;
  bool failed = false;
  for (std::size_t at = 0; at < body.size() && !failed; at += chunk) {
    std::size_t n = std::min(chunk, body.size() - at);
    failed = detail::on_body(body.data() + at, 1, n, &a) != n;
  }
  if (!failed && !a.started) a.check();
  FUZZ_ASSERT(a.delivered == seen || a.sink_error);
  // A stream that goes on knows where the file ends, past where it started.
  if (a.deliver && a.end) FUZZ_ASSERT(*a.end >= a.offset);
  FUZZ_ASSERT(a.delivered <= body.size());
  FUZZ_ASSERT(a.body.size() <= std::max(a.body_limit, body.size()));
  (void)detail::server_message(a.body);
  (void)detail::unsatisfied_range_total(a.header("content-range"));
  if (auto ra = a.header("retry-after"); !ra.empty()) {
    auto d = http::parse_retry_after(ra);
    FUZZ_ASSERT(!d || d->count() >= 0);
  }

  std::string_view other = parts[3];
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
  if (auto d = http::parse_retry_after(other, now)) FUZZ_ASSERT(d->count() >= 0);
  (void)http::redact_url(other, {"sig2"});
  try {
    auto [name, value] = http::parse_header_line(other);
    FUZZ_ASSERT(!name.empty() && !value.empty());
  } catch (const modelzoo::bus::Error&) {
  }
  (void)http::encode_path(other);
  return 0;
}
