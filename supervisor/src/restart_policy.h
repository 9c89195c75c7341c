// The restart decision after a plugin run ends (docs/architecture.md, "Supervision").
// Pure logic so it is unit-tested without processes.
#pragma once

#include <chrono>

#include "modelzoo/config/config.h"

namespace modelzoo::supervisor {

struct RunOutcome {
  bool reached_ready = false;         // the hello was accepted
  std::chrono::milliseconds ran_for{0};  // from spawn to exit
  bool clean_exit = false;            // exit status 0
  bool requested = false;             // the daemon asked it to stop (shutdown, reset)
};

struct RestartDecision {
  enum class Action { restart_now, restart_later, stay_stopped, fail } action;
  std::chrono::milliseconds delay{0};  // for restart_later
};

// Tracks consecutive failed runs of one plugin and decides what to do after each run.
class RestartTracker {
 public:
  explicit RestartTracker(RestartPolicy p) : policy_(p) {}
  RestartDecision on_exit(const RunOutcome& o);
  // Forgets past failures (manual reset).
  void reset() { failures_ = 0; }
  int consecutive_failures() const { return failures_; }

 private:
  RestartPolicy policy_;
  int failures_ = 0;
};

}  // namespace modelzoo::supervisor
