#include "restart_policy.h"

#include <algorithm>

namespace modelzoo::supervisor {

RestartDecision RestartTracker::on_exit(const RunOutcome& o) {
  using A = RestartDecision::Action;
  if (o.requested) return {A::stay_stopped, {}};
  if (policy_.mode == RestartPolicy::Mode::never) return {A::stay_stopped, {}};
  if (policy_.mode == RestartPolicy::Mode::on_failure && o.clean_exit) return {A::stay_stopped, {}};
  // A run that came up and stayed up long enough was healthy: start again at once.
  if (o.reached_ready && o.ran_for >= policy_.stable_after) {
    failures_ = 0;
    return {A::restart_now, {}};
  }
  ++failures_;
  if (failures_ >= policy_.max_failures) return {A::fail, {}};
  // Exponential back-off: initial, 2x, 4x, ... capped.
  auto delay = policy_.backoff_initial;
  for (int i = 1; i < failures_ && delay < policy_.backoff_max; ++i) delay *= 2;
  return {A::restart_later, std::min(delay, policy_.backoff_max)};
}

}  // namespace modelzoo::supervisor
