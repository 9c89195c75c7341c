// Regression tests for the bugs tests/chaos found (docs/reliability.md), each reduced to a
// deterministic case.
#include <thread>

#include "daemon_harness.h"
#include "modelzoo/core/cache_admin.h"

namespace modelzoo::testing {
namespace {

constexpr std::uint64_t kMiB = 1 << 20;

std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

std::string source_serving(const std::string& name, int priority, const std::string& model, std::uint64_t size,
                           std::uint64_t serve_size, const std::string& extra = "") {
  return "  - name: " + name + "\n    plugin: memory\n    priority: " + std::to_string(priority) +
         "\n    config:\n" + extra + "      models:\n        - name: " + model +
         "\n          version: 1.0.0\n          files:\n            - {name: w.bin, size: " + std::to_string(size) +
         ", seed: 11, serve_size: " + std::to_string(serve_size) + "}\n";
}

// The best source sends every byte of the file, then one chunk too many: the transfer fails
// over while the last good chunks are still with the disk threads. The next source must
// wait for them and commit the complete partial, not commit it early (hash mismatch), discard
// it and let the writing thread write into a closed descriptor ("Bad file descriptor").
TEST(ChaosRegression, FailoverAfterTheLastChunkWaitsForTheDiskWrites) {
  Daemon d(config_with(source_serving("over", 10, "whole/model", 8 * kMiB, 9 * kMiB) +
                       source_serving("good", 0, "whole/model", 8 * kMiB, 8 * kMiB)));
  d.wait_plugin("over");
  d.wait_plugin("good");
  for (int round = 0; round < 5; ++round) {
    auto reply = d.client().pull("whole/model");
    EXPECT_EQ(reply["bytes_downloaded"], 8 * kMiB) << "the complete partial is committed, nothing is sent twice";
    core::remove_cached(d.cache_dir(), "whole/model");
  }
  EXPECT_EQ(d.log().find("Bad file descriptor"), std::string::npos);
  EXPECT_EQ(d.log().find("complete partial refused"), std::string::npos);
}

// A source down when a resolution starts but back before it ends was neither asked nor
// reported: the pull said "not found" although that source has the model.
TEST(ChaosRegression, ASourceDownWhenResolutionStartsIsReportedUnavailable) {
  std::string flaky = "  - name: flaky\n    plugin: memory\n    priority: 0\n"
                      "    restart: {backoff_initial_ms: 300, stable_after_ms: 600000}\n"
                      "    config:\n      models:\n        - name: wanted/model\n          version: 1.0.0\n"
                      "          files:\n            - {name: w.bin, size: 4096, seed: 3}\n";
  // "slow" answers metadata after 2 s (on its main loop: default heartbeats, 3 s to hung).
  Daemon d("sources:\n" + source_serving("slow", 10, "other/model", 4096, 4096, "      metadata_delay_ms: 2000\n") + flaky);
  d.wait_plugin("slow");
  pid_t pid = d.wait_plugin("flaky")["pid"].get<pid_t>();
  ::kill(pid, SIGKILL);  // an unstable run: restarted after the 300 ms back-off
  d.wait_plugin("flaky", "backoff");
  std::atomic<bool> answered{false};
  std::string outcome;
  std::thread show([&] {
    try {
      Client c(d.runtime_dir().string());
      outcome = "ok " + c.show("wanted/model")["best"].get<std::string>();
    } catch (const bus::Error& e) {
      outcome = std::string(bus::to_string(e.code())) + " " + e.what();
    }
    answered = true;
  });
  d.wait_plugin("flaky");  // back while "slow" still thinks about its answer
  bool overlapped = !answered;
  show.join();
  ASSERT_TRUE(overlapped) << "the resolution ended before the source came back; the case was not exercised";
  EXPECT_EQ(outcome.rfind("unavailable flaky: not running", 0), 0u) << outcome;
}

// A daemon killed and restarted while a call waits: the call fails at once with
// DaemonUnavailable (the client library used to wait for the call's whole deadline, since
// the socket file answered again by its next liveness check).
TEST(ChaosRegression, ACallFailsAtOnceWhenTheDaemonIsReplaced) {
  Daemon d(config_with(source_serving("slow", 0, "slow/model", 8 * kMiB, 8 * kMiB,
                                      "      throttle_bytes_per_second: 1048576\n")));
  d.wait_plugin("slow");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download.started"});
  std::string outcome;
  std::thread call([&] {
    try {
      Client c(d.runtime_dir().string());
      c.pull("slow/model", {}, std::chrono::minutes(2));
      outcome = "answered";
    } catch (const DaemonUnavailable& e) {
      outcome = "daemon unavailable";
    } catch (const bus::Error& e) {
      outcome = std::string(bus::to_string(e.code())) + " " + e.what();
    }
  });
  ASSERT_TRUE(sub.next(10s)) << "the pull did not start";  // the daemon holds the request now
  d.kill9();
  d.start();
  call.join();
  EXPECT_EQ(outcome, "daemon unavailable");
}

// `cache rm` in another process while the daemon pulls the same model: the pull never fails
// because a directory vanished under it, and the removal never fails because a link
// appeared in the directory it empties.
TEST(ChaosRegression, CacheRemovalRacingWithPullsFailsNeither) {
  Daemon d(config_with(memory_source("mem", 0, "race/model", "", 256 * 1024)));
  d.wait_plugin("mem");
  std::atomic<bool> stop{false};
  std::vector<std::string> rm_errors;
  std::thread remover([&] {
    while (!stop) {
      try {
        core::remove_cached(d.cache_dir(), "race/model");
      } catch (const bus::Error& e) {
        if (e.code() != bus::ErrorCode::not_found) rm_errors.push_back(e.what());
      }
    }
  });
  std::vector<std::string> pull_errors;
  for (int i = 0; i < 300; ++i) {
    try {
      d.client().pull("race/model");
    } catch (const bus::Error& e) {
      pull_errors.push_back(e.what());
    }
  }
  stop = true;
  remover.join();
  EXPECT_TRUE(pull_errors.empty()) << pull_errors.size() << " failed, first: " << pull_errors.front();
  EXPECT_TRUE(rm_errors.empty()) << rm_errors.size() << " failed, first: " << rm_errors.front();
}

}  // namespace
}  // namespace modelzoo::testing
