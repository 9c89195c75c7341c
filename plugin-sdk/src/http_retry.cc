// Retries (modelzoo/http/retry.h): back-off with full jitter and Retry-After.
#include "modelzoo/http/retry.h"

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "http_text.h"

namespace modelzoo::sdk::http {

using detail::trim;

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

}  // namespace modelzoo::sdk::http
