// Unit tests of the restart decision after a plugin run (supervisor/src/restart_policy.h).
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "restart_policy.h"

namespace {

using modelzoo::supervisor::RestartDecision;
using modelzoo::supervisor::RestartPolicy;
using modelzoo::supervisor::RestartTracker;
using modelzoo::supervisor::RunOutcome;
using std::chrono::milliseconds;
using A = RestartDecision::Action;

RestartPolicy policy(RestartPolicy::Mode mode = RestartPolicy::Mode::always, int initial = 100, int max = 30000,
                     int stable = 5000, int max_failures = 5) {
  RestartPolicy p;
  p.mode = mode;
  p.backoff_initial = milliseconds(initial);
  p.backoff_max = milliseconds(max);
  p.stable_after = milliseconds(stable);
  p.max_failures = max_failures;
  return p;
}

RunOutcome stable_run(int ms = 60000) { return {true, milliseconds(ms), false, false}; }
RunOutcome crash_at_start() { return {false, milliseconds(20), false, false}; }
RunOutcome short_ready_run(int ms = 1000) { return {true, milliseconds(ms), false, false}; }
RunOutcome clean_exit(bool ready = true, int ms = 10) { return {ready, milliseconds(ms), true, false}; }
RunOutcome requested_stop() { return {true, milliseconds(10), false, true}; }

TEST(RestartPolicy, Defaults) {
  RestartPolicy p;
  EXPECT_EQ(p.mode, RestartPolicy::Mode::always);
  EXPECT_EQ(p.backoff_initial, milliseconds(100));
  EXPECT_EQ(p.backoff_max, milliseconds(30000));
  EXPECT_EQ(p.stable_after, milliseconds(5000));
  EXPECT_EQ(p.max_failures, 5);
}

TEST(RestartTracker, StableRunRestartsAtOnce) {
  RestartTracker t(policy());
  auto d = t.on_exit(stable_run());
  EXPECT_EQ(d.action, A::restart_now);
  EXPECT_EQ(d.delay, milliseconds(0));
  EXPECT_EQ(t.consecutive_failures(), 0);
}

TEST(RestartTracker, StableThresholdIsInclusive) {
  RestartTracker t(policy());
  EXPECT_EQ(t.on_exit(stable_run(5000)).action, A::restart_now);
  EXPECT_EQ(t.on_exit(short_ready_run(4999)).action, A::restart_later);
  EXPECT_EQ(t.consecutive_failures(), 1);
}

TEST(RestartTracker, StableRunResetsFailures) {
  RestartTracker t(policy());
  t.on_exit(crash_at_start());
  t.on_exit(crash_at_start());
  t.on_exit(crash_at_start());
  EXPECT_EQ(t.consecutive_failures(), 3);
  EXPECT_EQ(t.on_exit(stable_run()).action, A::restart_now);
  EXPECT_EQ(t.consecutive_failures(), 0);
  // The next failure starts the back-off from the beginning again.
  auto d = t.on_exit(crash_at_start());
  EXPECT_EQ(d.action, A::restart_later);
  EXPECT_EQ(d.delay, milliseconds(100));
}

TEST(RestartTracker, UnstableRunsBackOffDoubling) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 100, 30000, 5000, 100));
  std::vector<int> expected = {100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    auto d = t.on_exit(i % 2 ? crash_at_start() : short_ready_run());
    EXPECT_EQ(d.action, A::restart_later) << "failure " << i + 1;
    EXPECT_EQ(d.delay, milliseconds(expected[i])) << "failure " << i + 1;
    EXPECT_EQ(t.consecutive_failures(), static_cast<int>(i + 1));
  }
}

TEST(RestartTracker, CapThatIsNotAPowerOfTwoMultiple) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 1000, 3000, 5000, 10));
  std::vector<int> expected = {1000, 2000, 3000, 3000, 3000};
  for (int e : expected) {
    auto d = t.on_exit(crash_at_start());
    EXPECT_EQ(d.action, A::restart_later);
    EXPECT_EQ(d.delay, milliseconds(e));
  }
}

TEST(RestartTracker, InitialAboveMaxIsCapped) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 5000, 1000));
  auto d = t.on_exit(crash_at_start());
  EXPECT_EQ(d.action, A::restart_later);
  EXPECT_EQ(d.delay, milliseconds(1000));
}

TEST(RestartTracker, ManyFailuresNeverOverflowTheDelay) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 1, 86400000, 5000, 1000));
  for (int i = 1; i < 1000; ++i) {
    auto d = t.on_exit(crash_at_start());
    ASSERT_EQ(d.action, A::restart_later) << i;
    ASSERT_GT(d.delay, milliseconds(0)) << i;
    ASSERT_LE(d.delay, milliseconds(86400000)) << i;
  }
  EXPECT_EQ(t.on_exit(crash_at_start()).action, A::fail);
}

TEST(RestartTracker, MaxFailuresInARowFails) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 100, 30000, 5000, 3));
  EXPECT_EQ(t.on_exit(crash_at_start()).action, A::restart_later);
  EXPECT_EQ(t.on_exit(crash_at_start()).action, A::restart_later);
  auto d = t.on_exit(crash_at_start());
  EXPECT_EQ(d.action, A::fail);
  EXPECT_EQ(t.consecutive_failures(), 3);
}

TEST(RestartTracker, MaxFailuresOneFailsOnFirstFailure) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 100, 30000, 5000, 1));
  EXPECT_EQ(t.on_exit(crash_at_start()).action, A::fail);
}

TEST(RestartTracker, ReachedReadyButNeverStableIsAFailure) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 100, 30000, 5000, 2));
  EXPECT_EQ(t.on_exit(short_ready_run()).action, A::restart_later);
  EXPECT_EQ(t.on_exit(short_ready_run()).action, A::fail);
}

TEST(RestartTracker, LongRunWithoutHelloIsAFailure) {
  RestartTracker t(policy());
  auto d = t.on_exit({false, milliseconds(600000), false, false});
  EXPECT_EQ(d.action, A::restart_later);
  EXPECT_EQ(t.consecutive_failures(), 1);
}

TEST(RestartTracker, AlwaysRestartsAfterACleanExit) {
  RestartTracker t(policy());
  EXPECT_EQ(t.on_exit(clean_exit(true, 60000)).action, A::restart_now);
  auto d = t.on_exit(clean_exit(true, 10));  // short clean run: counts as a failure
  EXPECT_EQ(d.action, A::restart_later);
  EXPECT_EQ(d.delay, milliseconds(100));
}

TEST(RestartTracker, NeverModeStaysStopped) {
  RestartTracker t(policy(RestartPolicy::Mode::never));
  for (const auto& o : {crash_at_start(), stable_run(), clean_exit(), short_ready_run()}) {
    auto d = t.on_exit(o);
    EXPECT_EQ(d.action, A::stay_stopped);
    EXPECT_EQ(d.delay, milliseconds(0));
  }
}

TEST(RestartTracker, OnFailureMode) {
  RestartTracker t(policy(RestartPolicy::Mode::on_failure));
  EXPECT_EQ(t.on_exit(clean_exit(true, 10)).action, A::stay_stopped);
  EXPECT_EQ(t.on_exit(clean_exit(false, 10)).action, A::stay_stopped);
  EXPECT_EQ(t.on_exit(clean_exit(true, 60000)).action, A::stay_stopped);
  auto d = t.on_exit(crash_at_start());
  EXPECT_EQ(d.action, A::restart_later);
  EXPECT_EQ(d.delay, milliseconds(100));
  EXPECT_EQ(t.on_exit(stable_run()).action, A::restart_now);
}

TEST(RestartTracker, RequestedStopStaysStopped) {
  for (auto mode : {RestartPolicy::Mode::always, RestartPolicy::Mode::on_failure, RestartPolicy::Mode::never}) {
    RestartTracker t(policy(mode));
    t.on_exit(crash_at_start());
    int before = t.consecutive_failures();
    auto d = t.on_exit(requested_stop());
    EXPECT_EQ(d.action, A::stay_stopped);
    EXPECT_EQ(t.consecutive_failures(), before);  // not counted as a failure
    RunOutcome crashed_while_stopping{false, milliseconds(1), false, true};
    EXPECT_EQ(t.on_exit(crashed_while_stopping).action, A::stay_stopped);
  }
}

TEST(RestartTracker, ResetForgetsFailures) {
  RestartTracker t(policy(RestartPolicy::Mode::always, 100, 30000, 5000, 3));
  t.on_exit(crash_at_start());
  EXPECT_EQ(t.on_exit(crash_at_start()).delay, milliseconds(200));
  EXPECT_EQ(t.on_exit(crash_at_start()).action, A::fail);
  t.reset();
  EXPECT_EQ(t.consecutive_failures(), 0);
  auto d = t.on_exit(crash_at_start());
  EXPECT_EQ(d.action, A::restart_later);
  EXPECT_EQ(d.delay, milliseconds(100));
  EXPECT_EQ(t.consecutive_failures(), 1);
}

}  // namespace
