// One-shot timers of the daemon's event loop: `at(when, fire)` runs `fire` once, from the
// loop, at or after `when`. Nothing here is thread-safe: only the loop thread uses it.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

namespace modelzoo::supervisor {

class Timers {
 public:
  using Clock = std::chrono::steady_clock;

  void at(Clock::time_point when, std::function<void()> fire) { timers_.push_back({when, std::move(fire)}); }

  // Runs every timer due at `now`, each once, in the order they were set. A timer set by one
  // of them waits for the next call, even when it is due already.
  void fire_due(Clock::time_point now) {
    if (timers_.empty()) return;
    std::vector<Timer> due;
    for (auto it = timers_.begin(); it != timers_.end();) {
      if (it->at <= now) {
        due.push_back(std::move(*it));
        it = timers_.erase(it);
      } else {
        ++it;
      }
    }
    for (auto& t : due) t.fire();
  }

  // The earliest timer, if any.
  std::optional<Clock::time_point> next() const {
    std::optional<Clock::time_point> n;
    for (const auto& t : timers_)
      if (!n || t.at < *n) n = t.at;
    return n;
  }

  std::size_t size() const { return timers_.size(); }

 private:
  struct Timer {
    Clock::time_point at;
    std::function<void()> fire;
  };
  std::vector<Timer> timers_;
};

}  // namespace modelzoo::supervisor
