// Configuration reload with the real daemon: the file is watched; a change restarts only
// the sources it touches while a pull from another source carries on; a broken file is
// rejected and the running configuration kept; SIGHUP reloads.
#include <fstream>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {


std::string with_sources(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

// Replaces the daemon's configuration file the way editors do: a new file renamed over it.
void rewrite_config(Daemon& d, const std::string& yaml) {
  std::string text = yaml;
  for (auto [from, to] : {std::pair<std::string, std::string>{"@BIN@", bin_dir().string()}, {"@DIR@", d.dir().string()}})
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at)) text.replace(at, from.size(), to);
  fs::path tmp = d.dir() / "modelzood.yaml.new";
  std::ofstream(tmp) << text;
  fs::rename(tmp, d.dir() / "modelzood.yaml");
}

std::optional<Event> wait_event(EventSubscriber& sub, const std::string& topic, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline)
    if (auto e = sub.next(100ms); e && e->topic == topic) return e;
  return std::nullopt;
}

TEST(ConfigReload, AddsChangesAndRemovesSourcesWhileAPullRunsElsewhere) {
  const std::string steady = memory_source("steady", 0, "big/model", "      throttle_bytes_per_second: 16777216\n", 32 * kMiB);
  Daemon d(with_sources(steady + memory_source("gone", 0, "demo/gone") + memory_source("changing", 0, "demo/before")));
  for (auto n : {"steady", "gone", "changing"}) d.wait_plugin(n);
  auto steady_pid = d.plugin("steady")["pid"].get<int>();
  auto gone_pid = d.plugin("gone")["pid"].get<int>();
  EventSubscriber sub(d.runtime_dir().string(), {"daemon.config.", "model.download.progress"});

  nlohmann::json reply;
  std::string error;
  std::thread pull([&] {
    try {
      reply = Client(d.runtime_dir().string()).pull("big/model");
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  ASSERT_TRUE(wait_event(sub, "model.download.progress")) << "the pull did not start";

  rewrite_config(d, with_sources(steady + memory_source("changing", 0, "demo/after") + memory_source("added", 0, "demo/added")));
  auto reloaded = wait_event(sub, "daemon.config.reloaded");
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->body["added"], nlohmann::json::array({"added"}));
  EXPECT_EQ(reloaded->body["changed"], nlohmann::json::array({"changing"}));
  EXPECT_EQ(reloaded->body["removed"], nlohmann::json::array({"gone"}));

  d.wait_plugin("added");
  d.wait_plugin("changing");
  EXPECT_EQ(d.client().pull("demo/added")["source"], "added");
  EXPECT_EQ(d.client().pull("demo/after")["source"], "changing");
  EXPECT_TRUE(d.plugin("gone").is_null());
  EXPECT_TRUE(wait_until([&] { return !process_alive(gone_pid); })) << "the removed source's process is still running";

  pull.join();
  EXPECT_EQ(error, "");
  EXPECT_EQ(reply["source"], "steady");
  EXPECT_EQ(reply["bytes_downloaded"], 32 * kMiB) << "the unchanged source's transfer was disturbed";
  EXPECT_EQ(d.plugin("steady")["pid"], steady_pid) << "an unchanged source was restarted";
  EXPECT_EQ(d.client().status()["config_reloads"], 1);
}

TEST(ConfigReload, ABrokenFileIsRejectedAndTheRunningConfigurationStays) {
  Daemon d(with_sources(memory_source("mem", 0, "demo/kept")));
  d.wait_plugin("mem");
  auto pid = d.plugin("mem")["pid"];
  EventSubscriber sub(d.runtime_dir().string(), {"daemon.config."});
  std::ofstream(d.dir() / "modelzood.yaml") << "sources:\n  - name: mem\n    plugin: memory\n    priority: high\n";
  auto rejected = wait_event(sub, "daemon.config.rejected");
  ASSERT_TRUE(rejected);
  EXPECT_NE(rejected->body["error"].get<std::string>().find("sources[0].priority"), std::string::npos) << rejected->body.dump();
  EXPECT_NE(d.log().find("the running configuration stays"), std::string::npos);
  EXPECT_EQ(d.plugin("mem")["pid"], pid);
  EXPECT_EQ(d.client().pull("demo/kept")["name"], "demo/kept");

  // Fixed, the next version applies.
  rewrite_config(d, with_sources(memory_source("mem", 0, "demo/kept") + memory_source("more", 0, "demo/more")));
  ASSERT_TRUE(wait_event(sub, "daemon.config.reloaded"));
  d.wait_plugin("more");
  EXPECT_EQ(d.plugin("mem")["pid"], pid);
}

TEST(ConfigReload, SighupReloadsAndSettingsThatNeedARestartAreSaid) {
  Daemon d(with_sources(memory_source("mem", 0, "demo/x")));
  d.wait_plugin("mem");
  EventSubscriber sub(d.runtime_dir().string(), {"daemon.config."});
  // Written in place with a heartbeat change, then SIGHUP (the watcher may also see it).
  std::ofstream(d.dir() / "modelzood.yaml") << "heartbeat_interval_ms: 250\nrequest_timeout_ms: 7000\nsources:\n"
                                            << memory_source("mem", 0, "demo/x");
  ::kill(d.pid(), SIGHUP);
  auto reloaded = wait_event(sub, "daemon.config.reloaded");
  ASSERT_TRUE(reloaded);
  EXPECT_EQ(reloaded->body["restart_needed"], nlohmann::json::array({"heartbeat_interval_ms"}));
  EXPECT_TRUE(reloaded->body["changed"].empty());
}

// SIGHUP alone, the file untouched (so the watcher has nothing to see): the daemon re-reads
// and re-applies it, and keeps running with every plugin (docs/protocol.md, "Shutdown").
TEST(ConfigReload, SighupReloadsAnUnchangedFile) {
  Daemon d(with_sources(memory_source("mem", 0, "demo/x")));
  pid_t pid = d.wait_plugin("mem")["pid"].get<pid_t>();
  ASSERT_EQ(d.client().status()["config_reloads"], 0);
  EventSubscriber sub(d.runtime_dir().string(), {"daemon."});
  ::kill(d.pid(), SIGHUP);
  auto reloaded = wait_event(sub, "daemon.config.reloaded");
  ASSERT_TRUE(reloaded);
  EXPECT_TRUE(reloaded->body["added"].empty() && reloaded->body["changed"].empty() && reloaded->body["removed"].empty())
      << reloaded->body.dump();
  EXPECT_EQ(d.client().status()["config_reloads"], 1);
  EXPECT_NE(d.log().find("reloaded (SIGHUP)"), std::string::npos);
  EXPECT_TRUE(process_alive(d.pid()));
  EXPECT_EQ(d.plugin("mem")["pid"], pid) << "an unchanged source keeps its process";
  EXPECT_EQ(d.log().find("stopping"), std::string::npos);
}

}  // namespace
}  // namespace modelzoo::testing
