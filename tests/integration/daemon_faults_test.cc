// The smaller faults of issue 19, each with the real daemon and real plugins: warnings from
// connections that never said hello are counted, not written one by one; every request
// parameter and hello field is typed strictly; plugins waiting their turn in a clean stop keep
// their heartbeat; a spawn stopped before its hello shows as "starting for" and is ended by
// its source's own hello timeout.
#include <fstream>
#include <regex>
#include <set>

#include "daemon_harness.h"
#include "modelzoo/bus/socket.h"

namespace modelzoo::testing {
namespace {
using nlohmann::json;

std::string config_with(const std::string& sources, const std::string& top = "") {
  return std::string(kFastTimers) + top + "sources:\n" + sources;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t p = 0; (p = text.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

// A raw DEALER on one of the daemon's sockets.
zmq::socket_t raw_socket(zmq::context_t& ctx, const fs::path& endpoint) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  bus::configure_socket(s);
  s.set(zmq::sockopt::linger, 0);
  s.connect("ipc://" + endpoint.string());
  return s;
}

// The lines of the log holding `what`, and the sum of their "... and N more in 10 s" counts.
struct Counted {
  std::size_t lines = 0;
  std::uint64_t more = 0;
};
Counted counted(const std::string& log, const std::string& what) {
  Counted c;
  static const std::regex more(" and ([0-9,]+) more in 10 s");
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.find(what) == std::string::npos) continue;
    ++c.lines;
    std::smatch m;
    if (std::regex_search(line, m, more)) {
      std::string digits = m[1];
      digits.erase(std::remove(digits.begin(), digits.end(), ','), digits.end());
      c.more += std::stoull(digits);
    }
  }
  return c;
}

// ---------------------------------------------------------------- 1. rate-limited warnings
TEST(DaemonFaults, MessagesFromAConnectionThatNeverSaidHelloAreCountedNotEachLogged) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a")));
  d.wait_plugin("mem");
  zmq::context_t ctx(1);
  auto s = raw_socket(ctx, d.runtime_dir() / "plugins.sock");
  constexpr int kHeartbeats = 20000, kGarbage = 2000;
  // Blocking sends (bus::send never waits): the daemon reads at its pace, and every
  // message must arrive for the counts below to add up.
  const std::string hb = bus::encode_envelope(bus::Message::make(bus::MessageType::heartbeat));
  for (int i = 0; i < kHeartbeats; ++i) ASSERT_TRUE(s.send(zmq::buffer(hb), zmq::send_flags::none));
  for (int i = 0; i < kGarbage; ++i) s.send(zmq::str_buffer("\xc1"), zmq::send_flags::none);  // never-used msgpack byte
  // Every message is accounted for: the first logged, the rest in counts (the last count
  // comes when its 10 s window ends).
  const std::string heartbeat = "heartbeat message from a peer that has not said hello";
  const std::string invalid = "invalid message from an unidentified peer";
  ASSERT_TRUE(wait_until([&] {
    std::string log = d.log();
    return counted(log, heartbeat).more == kHeartbeats - 1 && counted(log, invalid).more == kGarbage - 1;
  }, 40s)) << "heartbeat lines/counted: " << counted(d.log(), heartbeat).lines << "/" << counted(d.log(), heartbeat).more
           << ", invalid: " << counted(d.log(), invalid).lines << "/" << counted(d.log(), invalid).more;
  std::string log = d.log();
  // The first of each, then one count per window: a handful of lines, not 22,000.
  EXPECT_LE(counted(log, heartbeat).lines, 5u);
  EXPECT_LE(counted(log, invalid).lines, 5u);
  EXPECT_EQ(count_of(log, heartbeat + "; dropped\n"), 1u) << "the first is logged as it comes";
  EXPECT_TRUE(process_alive(d.pid()));
  EXPECT_EQ(d.client().show("demo/a")["best"], "mem");
}

// ---------------------------------------------------------------- 2. strict types
// A raw request with `body`; returns the answer (progress skipped).
bus::Message ask(zmq::socket_t& s, const std::string& method, const json& body, std::uint64_t id) {
  auto m = bus::Message::make_request(id, method, body, 30000);
  EXPECT_TRUE(bus::send(s, m));
  for (;;) {
    auto r = bus::receive_for(s, false, 30s);
    if (!r) {
      ADD_FAILURE() << method << " " << body.dump() << ": no answer";
      return bus::Message::make(bus::MessageType::heartbeat);
    }
    if (r->message.type != bus::MessageType::progress) return std::move(r->message);
  }
}

// The client methods docs/protocol.md documents (the "###" headings of "Client protocol").
std::set<std::string> documented_methods() {
  std::ifstream in(fs::path(MODELZOO_SOURCE_DIR) / "docs" / "protocol.md");
  std::set<std::string> out;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) inside = line == "## Client protocol";
    else if (inside && line.rfind("### ", 0) == 0 && line != "### Connection and envelope") out.insert(line.substr(4));
  }
  return out;
}

TEST(DaemonFaults, EveryRequestParameterOfEveryMethodIsStrictlyTyped) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a", "", 1024)));
  d.wait_plugin("mem");
  // Per method: its parameters, each with its type, a value that is not of it and the
  // bodies with the right types that must be accepted. A method without parameters has
  // none to mistype; it is listed so that the table covers the protocol.
  struct Field {
    std::string name, expected;   // "model", "a string"
    std::vector<json> wrong;      // each must be refused naming the field
  };
  struct Method {
    std::string name;
    std::vector<Field> fields;
    std::vector<json> right;  // bodies accepted, in order
  };
  const std::vector<json> not_a_string = {7, 1.5, true, nullptr, json::array({"demo/a"}), json::object({{"x", 1}}),
                                          json::binary(std::vector<std::uint8_t>{0x64, 0x65})};
  const std::vector<json> not_a_boolean = {"yes", 1, "false", json::array({true}), nullptr, 0.0, json::object()};
  const std::vector<Method> table = {
      {"status", {}, {json::object()}},
      {"plugins", {}, {json::object()}},
      {"plugin.reset", {{"name", "a string", not_a_string}}, {{{"name", "mem"}}}},
      {"models", {}, {json::object()}},
      {"show", {{"model", "a string", not_a_string}}, {{{"model", "demo/a"}}}},
      {"pull",
       {{"model", "a string", not_a_string}, {"offline", "a boolean", not_a_boolean}},
       {{{"model", "demo/a"}}, {{"model", "demo/a"}, {"offline", false}}, {{"model", "demo/a"}, {"offline", true}}}},
      {"load",
       {{"model", "a string", not_a_string}, {"offline", "a boolean", not_a_boolean}},
       {{{"model", "demo/a"}}, {{"model", "demo/a"}, {"offline", false}}, {{"model", "demo/a"}, {"offline", true}}}},
      {"ping", {}, {json::object()}},
  };
  std::set<std::string> covered;
  for (const auto& m : table) covered.insert(m.name);
  EXPECT_EQ(covered, documented_methods()) << "a method of docs/protocol.md is missing from this table, or gone";

  zmq::context_t ctx(1);
  auto s = raw_socket(ctx, d.runtime_dir() / "client.sock");
  std::uint64_t id = 1;
  for (const auto& m : table) {
    for (const auto& f : m.fields) {
      for (const auto& wrong : f.wrong) {
        json body = m.right.front();  // every other parameter right
        body[f.name] = wrong;
        auto a = ask(s, m.name, body, ++id);
        std::string what = m.name + " " + f.name + "=" + wrong.dump();
        ASSERT_EQ(a.type, bus::MessageType::error) << what << " was accepted: " << a.body.dump();
        EXPECT_EQ(a.error_code, bus::ErrorCode::bad_request) << what << ": " << a.error_message;
        EXPECT_NE(a.error_message.find("parameter '" + f.name + "' must be " + f.expected + ", not "), std::string::npos)
            << what << ": " << a.error_message;
      }
    }
    for (const auto& body : m.right) {
      auto a = ask(s, m.name, body, ++id);
      EXPECT_EQ(a.type, bus::MessageType::reply) << m.name << " " << body.dump() << ": " << a.error_message;
    }
  }
  // A mistyped offline never reached the sources: only the accepted pulls and loads did.
  EXPECT_TRUE(process_alive(d.pid()));
}

// The envelope's own fields are typed by the codec: a mistyped one is an invalid message,
// answered with id 0 and naming the field.
TEST(DaemonFaults, EveryEnvelopeFieldOfARequestIsStrictlyTyped) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a", "", 1024)));
  zmq::context_t ctx(1);
  auto s = raw_socket(ctx, d.runtime_dir() / "client.sock");
  const json good = {{"type", "request"}, {"id", 5}, {"method", "ping"}, {"timeout_ms", 1000}, {"body", json::object()}};
  const std::vector<std::pair<std::string, json>> wrong = {
      {"type", 1}, {"id", "5"}, {"id", -5}, {"method", 3}, {"timeout_ms", "1000"}, {"timeout_ms", -1}, {"body", json::array()}};
  for (const auto& [field, value] : wrong) {
    json env = good;
    env[field] = value;
    std::string bytes = bus::to_msgpack(env);
    s.send(zmq::buffer(bytes), zmq::send_flags::none);
    auto r = bus::receive_for(s, false, 10s);
    ASSERT_TRUE(r) << field;
    EXPECT_EQ(r->message.type, bus::MessageType::error) << field;
    EXPECT_EQ(r->message.error_code, bus::ErrorCode::bad_request) << field << ": " << r->message.error_message;
    EXPECT_NE(r->message.error_message.find(field), std::string::npos) << field << ": " << r->message.error_message;
  }
  std::string bytes = bus::to_msgpack(good);
  s.send(zmq::buffer(bytes), zmq::send_flags::none);
  auto r = bus::receive_for(s, false, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message.type, bus::MessageType::reply);
}

// Every field of a hello with the wrong type is refused, naming the field and its type
// (docs/protocol.md, "hello"). The right types are accepted: every plugin of these tests
// says hello with all of them.
TEST(DaemonFaults, EveryHelloFieldIsStrictlyTyped) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a", "", 1024)));
  d.wait_plugin("mem");
  const json hello = {{"protocol", {1}}, {"plugin_id", "nobody.1"}, {"token", "t"}, {"name", "x"},
                      {"version", "1.0.0"}, {"pid", 1},           {"kind", "registry"},
                      {"capabilities", {"metadata"}}, {"priority", 0}, {"handles", {"*"}},
                      {"points", {"pre-load"}}, {"formats", {"gguf"}}, {"order", 0}};
  const std::vector<std::tuple<std::string, json, std::string>> table = {
      {"protocol", "1", "a list of integers"},      {"protocol", json::array({"1"}), "a list of integers"},
      {"plugin_id", 12, "a string"},                {"token", json::object(), "a string"},
      {"name", json::array(), "a string"},          {"version", 1.5, "a string"},
      {"pid", "me", "an integer"},                  {"kind", 7, "a string"},
      {"capabilities", 3, "a list of strings"},     {"capabilities", json::array({1}), "a list of strings"},
      {"priority", "high", "an integer"},           {"handles", 9, "a list of strings"},
      {"points", "pre-load", "a list of strings"},  {"formats", json::array({nullptr}), "a list of strings"},
      {"order", 0.5, "an integer"}};
  zmq::context_t ctx(1);
  for (const auto& [field, value, expected] : table) {
    auto s = raw_socket(ctx, d.runtime_dir() / "plugins.sock");
    json h = hello;
    h[field] = value;
    auto m = bus::Message::make(bus::MessageType::hello, h);
    ASSERT_TRUE(bus::send(s, m));
    auto r = bus::receive_for(s, false, 10s);
    ASSERT_TRUE(r) << field;
    EXPECT_EQ(r->message.type, bus::MessageType::reject) << field;
    EXPECT_EQ(r->message.error_code, bus::ErrorCode::bad_request) << field << ": " << r->message.error_message;
    EXPECT_NE(r->message.error_message.find("hello: '" + field + "' must be " + expected + ", not "), std::string::npos)
        << field << "=" << value.dump() << ": " << r->message.error_message;
  }
  // Well typed, it gets as far as the authentication.
  auto s = raw_socket(ctx, d.runtime_dir() / "plugins.sock");
  auto m = bus::Message::make(bus::MessageType::hello, hello);
  ASSERT_TRUE(bus::send(s, m));
  auto r = bus::receive_for(s, false, 10s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->message.error_code, bus::ErrorCode::unauthorized) << r->message.error_message;
}

// ---------------------------------------------------------------- 4. heartbeats in a clean stop
TEST(DaemonFaults, PluginsWaitingTheirTurnInACleanStopKeepTheirHeartbeat) {
  // Two plugins that ignore SIGTERM and never say hello (each takes the whole stop timeout,
  // then SIGKILL), stopped first, in reverse order; the SDK plugins before them wait well
  // over their liveness (3 x 100 ms) for their turn.
  auto stubborn = [](const std::string& name) {
    return "  - name: " + name + "\n    command: [/bin/sh, -c, 'trap \"\" TERM; echo \"info trap set\" >&2; while :; do sleep 0.05; done']\n"
           "    restart: {hello_timeout_ms: 60000}\n";
  };
  Daemon d(config_with(memory_source("mem-a", 0, "demo/a") + memory_source("mem-b", 0, "demo/b") + stubborn("slow-1") +
                           stubborn("slow-2"),
                       "stop_timeout_ms: 600\n"));
  d.wait_plugin("mem-a");
  d.wait_plugin("mem-b");
  ASSERT_TRUE(wait_until([&] {
    std::string log = d.log();
    return log.find("[slow-1] trap set") != std::string::npos && log.find("[slow-2] trap set") != std::string::npos;
  }));
  int status = d.stop(30s);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string log = d.log();
  EXPECT_NE(log.find("[slow-1] did not stop within 600 ms of SIGTERM; SIGKILL"), std::string::npos);
  EXPECT_EQ(log.find("daemon silent"), std::string::npos) << "a plugin left on its own";
  EXPECT_NE(log.find("[mem-b] stopped (exit 0)"), std::string::npos) << "asked over the bus in its turn";
  EXPECT_NE(log.find("[mem-a] stopped (exit 0)"), std::string::npos) << "asked over the bus in its turn";
  EXPECT_EQ(log.find("exit 4"), std::string::npos);
}

// ---------------------------------------------------------------- 5. stopped before its hello
TEST(DaemonFaults, ASpawnStoppedBeforeItsHelloShowsAsStartingAndIsEndedByItsOwnHelloTimeout) {
  // The first spawn stops itself before it execs the plugin (so before any hello); the next
  // runs normally. Its source has a hello timeout of its own; the other keeps the default.
  std::string frozen =
      "  - name: frozen\n"
      "    command: [/bin/sh, -c, 'if [ ! -e @DIR@/stopped-once ]; then : > @DIR@/stopped-once; kill -STOP $$; fi; "
      "exec @BIN@/modelzoo-plugin-memory']\n"
      "    restart: {hello_timeout_ms: 4000, backoff_initial_ms: 20}\n"
      "    config:\n      models:\n        - {name: demo/f, version: 1.0.0, files: [{name: w.bin, size: 64, seed: 3}]}\n";
  Daemon d(config_with(frozen + memory_source("mem", 0, "demo/a")));
  auto first = d.wait_plugin("frozen", "starting");
  pid_t pid = first["pid"].get<pid_t>();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(first["hello_timeout_ms"], 4000);
  EXPECT_EQ(d.wait_plugin("mem")["hello_timeout_ms"], 10000) << "per source: the other keeps the default";
  ASSERT_TRUE(wait_until([&] { return fs::exists(d.dir() / "stopped-once"); }));
  // Shown as starting for a while, in the reply, the CLI's --json and its table.
  std::string cli = (bin_dir() / "modelzoo").string() + " --runtime-dir " + d.runtime_dir().string();
  std::string human;
  bool shown = wait_until([&] {
    auto p = d.plugin("frozen");
    if (p["pid"] != pid || p["state"] != "starting" || p["starting_for_ms"].get<std::int64_t>() <= 0) return false;
    auto j = json::parse(run(cli + " plugins --json 2>/dev/null").out, nullptr, false);
    bool in_json = false;
    if (j.is_object())
      for (const auto& e : j["plugins"])
        if (e["name"] == "frozen" && e["pid"] == pid && e.value("starting_for_ms", 0) > 0) in_json = true;
    human = run(cli + " plugins 2>/dev/null").out;
    return in_json && human.find("frozen: starting for ") != std::string::npos;
  }, 3s);
  EXPECT_TRUE(shown) << human;
  EXPECT_NE(human.find("no hello yet (hello timeout 4 s)"), std::string::npos) << human;
  // Ended by its own timeout, then restarted and served.
  auto ready = d.wait_plugin("frozen", "ready", 20s);
  EXPECT_NE(ready["pid"], pid);
  EXPECT_EQ(ready["starting_for_ms"], 0);
  EXPECT_GE(ready["restarts"].get<int>(), 1);
  EXPECT_NE(d.log().find("[frozen] sent no hello within 4000 ms: killing pid " + std::to_string(pid)), std::string::npos);
  EXPECT_FALSE(process_alive(pid));
  EXPECT_EQ(d.client().show("demo/f")["best"], "frozen");
}

}  // namespace
}  // namespace modelzoo::testing
