// The clock of the SDK's HTTP base (modelzoo/http.h): a steady clock, replaceable in tests.
#pragma once

#include <chrono>
#include <functional>

namespace modelzoo::sdk::http {

using Clock = std::chrono::steady_clock;
using ClockFn = std::function<Clock::time_point()>;
using std::chrono::milliseconds;

}  // namespace modelzoo::sdk::http
