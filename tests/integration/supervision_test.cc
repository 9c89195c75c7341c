// Supervision with the real daemon and real plugin processes: restarts after kill -9,
// hang detection, crash loops, misbehaving peers, daemon death, graceful stop.
#include <fstream>

#include "daemon_harness.h"
#include "modelzoo/bus/socket.h"

namespace modelzoo::testing {
namespace {

std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

// Collects events whose topic starts with one of the prefixes until `pred` holds.
bool wait_event(EventSubscriber& sub, const std::function<bool(const Event&)>& pred, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = sub.next(100ms);
    if (e && pred(*e)) return true;
  }
  return false;
}

TEST(Supervision, KilledPluginIsRestartedAndServesAgain) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a", "", 1024, "{stable_after_ms: 0}")));
  auto before = d.wait_plugin("mem");
  EventSubscriber sub(d.runtime_dir().string(), {"plugin."});
  pid_t pid = before["pid"].get<pid_t>();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  EXPECT_TRUE(wait_event(sub, [&](const Event& e) {
    return e.topic == "plugin.exited" && e.body["pid"] == pid && e.body["status"] == "signal 9 (SIGKILL)";
  }));
  EXPECT_TRUE(wait_event(sub, [](const Event& e) { return e.topic == "plugin.restarted" && e.body["plugin"] == "mem"; }));
  EXPECT_TRUE(wait_event(sub, [](const Event& e) { return e.topic == "plugin.started" && e.body["restarts"] == 1; }));
  auto after = d.wait_plugin("mem");
  EXPECT_NE(after["pid"], before["pid"]);
  EXPECT_EQ(after["restarts"], 1);
  EXPECT_FALSE(process_alive(pid));
  EXPECT_EQ(d.client().show("demo/a")["best"], "mem");
  EXPECT_TRUE(process_alive(d.pid()));
}

TEST(Supervision, PluginThatStopsAnsweringHeartbeatsIsKilledAndRestarted) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a")));
  pid_t pid = d.wait_plugin("mem")["pid"].get<pid_t>();
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);  // alive but silent: only heartbeats can tell
  ASSERT_TRUE(wait_until([&] {
    auto p = d.plugin("mem");
    return p["pid"] != pid && p["state"] == "ready";
  })) << d.plugin("mem").dump();
  EXPECT_FALSE(process_alive(pid));
  EXPECT_NE(d.log().find("missed 3 heartbeats (hung)"), std::string::npos);
  EXPECT_EQ(d.client().show("demo/a")["best"], "mem");
}

TEST(Supervision, PluginCrashingOnStartBacksOffThenFailsOthersUnaffected) {
  std::string crasher =
      "  - name: crasher\n    command: [/bin/sh, -c, 'echo \"error boom at start\" >&2; exit 3']\n"
      "    restart: {backoff_initial_ms: 20, backoff_max_ms: 200, max_failures: 4}\n";
  Daemon d(config_with(crasher + memory_source("mem", 0, "demo/a")));
  EventSubscriber sub(d.runtime_dir().string(), {"plugin.failed"});
  auto failed = d.wait_plugin("crasher", "failed");
  EXPECT_EQ(failed["failures"], 4);
  EXPECT_EQ(failed["restarts"], 3);
  EXPECT_EQ(failed["last_exit"], "exit 3");
  EXPECT_EQ(failed["last_error"], "boom at start");
  EXPECT_EQ(failed["pid"], 0);
  // Back-off was applied between the attempts.
  EXPECT_NE(d.log().find("restarting in 20 ms"), std::string::npos);
  EXPECT_NE(d.log().find("restarting in 40 ms"), std::string::npos);
  EXPECT_NE(d.log().find("restarting in 80 ms"), std::string::npos);
  // The breaker stays open: still failed, the healthy plugin still serves.
  EXPECT_EQ(d.plugin("crasher")["state"], "failed");
  d.wait_plugin("mem");  // the crasher may run out of restarts before mem has said hello
  EXPECT_EQ(d.client().show("demo/a")["best"], "mem");
  EXPECT_EQ(d.client().status()["plugins"]["failed"], 1);
  // A reset starts it again (and it fails again, from a clean count).
  auto r = d.client().reset_plugin("crasher");
  EXPECT_NE(r["state"], "failed");
  d.wait_plugin("crasher", "failed");
  EXPECT_TRUE(wait_event(sub, [](const Event& e) { return e.body["plugin"] == "crasher"; }, 1s) ||
              d.plugin("crasher")["state"] == "failed");
}

TEST(Supervision, GarbageFromAPluginNeverHurtsTheDaemon) {
  std::string report = "@DIR@/rogue.txt";
  std::string rogue = "  - name: rogue\n    command: ['@BIN@/modelzoo-test-rogue-plugin', '" + report +
                      "', garbage]\n    restart: {policy: never}\n";
  Daemon d(config_with(rogue + memory_source("mem", 0, "demo/a")));
  d.wait_plugin("mem");
  fs::path report_file = d.dir() / "rogue.txt";
  auto read_report = [&] {
    std::ifstream in(report_file);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  ASSERT_TRUE(wait_until([&] { return read_report().find("identified-garbage: sent") != std::string::npos; }, 20s))
      << read_report();
  std::string r = read_report();
  EXPECT_NE(r.find("wrong-token: reject unauthorized wrong token for plugin id 'rogue.1'"), std::string::npos) << r;
  EXPECT_NE(r.find("unknown-id: reject unauthorized unknown plugin id 'nobody.1'"), std::string::npos) << r;
  // Types are checked first, and the first mistyped field named (tests/integration/daemon_faults_test.cc
  // has every field).
  EXPECT_NE(r.find("mistyped-hello: reject bad_request hello: 'protocol' must be a list of integers, not a string"),
            std::string::npos) << r;
  EXPECT_NE(r.find("bad-name: reject bad_request hello: plugin name '../Evil Name' may contain only"), std::string::npos) << r;
  EXPECT_NE(r.find("hello: welcome"), std::string::npos) << r;
  EXPECT_NE(r.find("replayed-hello: reject unauthorized"), std::string::npos) << r;
  // The daemon logged the invalid frames and kept serving everyone.
  // The rogue sends them in this order; the goodbye is its last, so wait for it (the log is
  // written as the daemon reads them, a few ms apart under TSan).
  EXPECT_TRUE(wait_until([&] {
    return d.log().find("[rogue] sent an invalid goodbye: 'reason' must be a string, not an array") != std::string::npos;
  })) << d.log();
  EXPECT_NE(d.log().find("[rogue] sent an invalid message"), std::string::npos);
  EXPECT_NE(d.log().find("invalid message from an unidentified peer"), std::string::npos);
  EXPECT_TRUE(process_alive(d.pid()));
  EXPECT_EQ(d.client().show("demo/a")["best"], "mem");
  EXPECT_EQ(d.plugin("rogue")["state"], "ready");
}

TEST(Supervision, PluginOfferingNoCommonProtocolVersionIsRejected) {
  std::string rogue = "  - name: oldie\n    command: ['@BIN@/modelzoo-test-rogue-plugin', '@DIR@/oldie.txt', bad-version]\n"
                      "    restart: {policy: never}\n";
  Daemon d(config_with(rogue));
  std::string r;
  ASSERT_TRUE(wait_until([&] {
    std::ifstream in(d.dir() / "oldie.txt");
    std::getline(in, r);
    return !r.empty();
  }));
  EXPECT_EQ(r, "bad-version: reject bad_request no common protocol version (daemon speaks 1)");
}

TEST(Supervision, GarbageFromAClientGetsAnErrorAndTheDaemonCarriesOn) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a")));
  d.wait_plugin("mem");
  zmq::context_t ctx(1);
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.connect("ipc://" + (d.runtime_dir() / "client.sock").string());
  s.send(zmq::str_buffer("\xde\xad\xbe\xef"), zmq::send_flags::none);
  auto r = bus::receive_for(s, false, 5s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message.type, bus::MessageType::error);
  EXPECT_EQ(r->message.error_code, bus::ErrorCode::bad_request);
  // Unknown methods and hostile names are typed errors too.
  try {
    d.client().call("no.such.method");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::bad_request);
  }
  for (const std::string& hostile : std::vector<std::string>{"../etc/passwd", "/abs", "a/../../b", "a\nb", "", std::string("a\0b", 3)}) {
    try {
      d.client().show(hostile);
      FAIL() << hostile;
    } catch (const bus::Error& e) {
      EXPECT_EQ(e.code(), bus::ErrorCode::bad_request) << hostile << ": " << e.what();
    }
  }
  EXPECT_EQ(d.client().show("demo/a")["best"], "mem");
}

TEST(Supervision, KillingTheDaemonLeavesNoPluginProcess) {
  Daemon d(config_with(memory_source("a", 0, "demo/a") + memory_source("b", 1, "demo/b")));
  pid_t a = d.wait_plugin("a")["pid"].get<pid_t>();
  pid_t b = d.wait_plugin("b")["pid"].get<pid_t>();
  ASSERT_TRUE(process_alive(a) && process_alive(b));
  d.kill9();
  EXPECT_TRUE(wait_until([&] { return !process_alive(a) && !process_alive(b); }, 5s));
}

TEST(Supervision, SigtermStopsPluginsInReverseOrderAndExitsCleanly) {
  Daemon d(config_with(memory_source("first", 0, "demo/a") + memory_source("second", 1, "demo/b")));
  pid_t a = d.wait_plugin("first")["pid"].get<pid_t>();
  pid_t b = d.wait_plugin("second")["pid"].get<pid_t>();
  int status = d.stop();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_FALSE(process_alive(a));
  EXPECT_FALSE(process_alive(b));
  std::string log = d.log();
  auto second = log.find("[second] stopped"), first = log.find("[first] stopped");
  ASSERT_NE(second, std::string::npos);
  ASSERT_NE(first, std::string::npos);
  EXPECT_LT(second, first);
  EXPECT_NE(log.find("[first] stopped (exit 0)"), std::string::npos) << "asked over the bus, exits cleanly";
  EXPECT_FALSE(fs::exists(d.runtime_dir() / "client.sock"));
}

TEST(Supervision, PluginIgnoringGoodbyeAndSigtermIsKilled) {
  std::string stubborn =
      "stop_timeout_ms: 200\n" + std::string(kFastTimers) +
      "sources:\n  - name: stubborn\n    command: [/bin/sh, -c, 'trap \"\" TERM; echo \"info trap set\" >&2; while :; do sleep 0.05; done']\n"
      "    restart: {hello_timeout_ms: 60000}\n";
  Daemon d(stubborn);
  pid_t pid = d.wait_plugin("stubborn", "starting")["pid"].get<pid_t>();
  // SIGTERM before the trap is set would end it early and prove nothing.
  ASSERT_TRUE(wait_until([&] { return d.log().find("[stubborn] trap set") != std::string::npos; }));
  int status = d.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_FALSE(process_alive(pid));
  EXPECT_NE(d.log().find("[stubborn] did not stop within 200 ms of SIGTERM; SIGKILL"), std::string::npos);
}

TEST(Supervision, BrokenManifestIsReportedAndSkippedOthersStart) {
  char tmpl[] = "/tmp/modelzoo-plugins-XXXXXX";
  fs::path pdir = ::mkdtemp(tmpl);
  fs::create_directories(pdir / "good");
  fs::create_directories(pdir / "broken");
  fs::create_directories(pdir / "nocommand");
  std::ofstream(pdir / "good" / "plugin.yaml")
      << "name: good\nversion: 1.2.3\ncommand: ['" << (bin_dir() / "modelzoo-plugin-memory").string()
      << "']\npriority: 3\nconfig:\n  models:\n    - {name: m/x, version: 2.0.0, files: [{name: f, content: hi}]}\n";
  std::ofstream(pdir / "broken" / "plugin.yaml") << "name: [unclosed\n";
  std::ofstream(pdir / "nocommand" / "plugin.yaml") << "name: nocommand\nversion: 1.0.0\n";
  Daemon d(std::string(kFastTimers) + "plugin_dirs: ['" + pdir.string() + "']\n");
  auto good = d.wait_plugin("good");
  EXPECT_EQ(good["priority"], 3);
  EXPECT_EQ(d.client().show("m/x")["metadata"]["version"], "2.0.0");
  std::string log = d.log();
  EXPECT_NE(log.find((pdir / "broken" / "plugin.yaml").string() + ": not valid YAML"), std::string::npos) << log;
  EXPECT_NE(log.find((pdir / "nocommand" / "plugin.yaml").string() + ": manifest.command: is required"), std::string::npos) << log;
  EXPECT_EQ(d.client().plugins()["plugins"].size(), 1u);
  fs::remove_all(pdir);
}

}  // namespace
}  // namespace modelzoo::testing
