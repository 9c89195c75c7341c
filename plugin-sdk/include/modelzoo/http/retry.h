// When HTTP requests are retried and how long to wait (part of the SDK's HTTP base,
// modelzoo/http.h).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "modelzoo/http/clock.h"

namespace modelzoo::sdk::http {

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

}  // namespace modelzoo::sdk::http
