// Floods and abuse (docs/reliability.md, "Floods"): a client sending requests as fast as it
// can, a plugin flooding the bus, an event subscriber that never reads, a client that never
// reads its replies. For each, the daemon's memory stays bounded (a generous bound on its
// RSS growth, not a timing) and a well-behaved client keeps being served within its deadlines.
#include <atomic>
#include <thread>

#include "daemon_harness.h"
#include "modelzoo/bus/socket.h"

namespace modelzoo::testing {
namespace {
using nlohmann::json;

#if defined(__SANITIZE_ADDRESS__)
// Under ASan every free goes through a 256 MiB quarantine first, every block carries redzones
// and freed memory is not returned to the system: RSS says little about the daemon's own
// growth. The bound is still a bound (an unbounded queue grows past it in seconds), only a
// looser one; the plain build holds the tight one.
constexpr long kBoundKiB = 1536 * 1024;
#else
constexpr long kBoundKiB = 200 * 1024;  // the daemon's RSS may grow by less than 200 MiB
#endif

struct Memory {
  long rss_kib = 0, hwm_kib = 0;
};
Memory memory_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  Memory m;
  std::string key;
  long value;
  while (in >> key) {
    if (key == "VmRSS:" && in >> value) m.rss_kib = value;
    else if (key == "VmHWM:" && in >> value) m.hwm_kib = value;
  }
  return m;
}

// Sources: "good" serves good/model (small, fast) and slow/model (8 MiB at 1 MiB/s: a pull
// that stays in flight), plus whatever a test adds.
// Default heartbeats (1 s, 3 missed). Under ASan everything runs several times slower, and
// on 2 cores the flooding threads take CPU the plugin needs to answer: 10 missed beats make a
// hang there. (A CI run once failed this file's subscription flood with the plugin killed as
// hung: the cause was not the CPU but libzmq applying the flood of subscriptions inside the
// daemon's loop, for seconds; the event socket now has a thread of its own,
// supervisor/src/event_publisher.h.)
#if defined(__SANITIZE_ADDRESS__)
constexpr const char* kLiveness = "heartbeat_liveness: 10\n";
#else
constexpr const char* kLiveness = "";
#endif
std::string config(const std::string& extra = "") {
  return std::string("request_timeout_ms: 5000\n") + kLiveness +
         "sources:\n"
         "  - name: good\n    plugin: memory\n    config:\n"
         "      throttle_bytes_per_second: 1048576\n"
         "      models:\n"
         "        - {name: good/model, version: 1.0.0, files: [{name: w.bin, size: 4096, seed: 1}]}\n"
         "        - {name: slow/model, version: 1.0.0, files: [{name: w.bin, size: 8388608, seed: 2}]}\n" +
         extra;
}

// A well-behaved client during a flood: `n` rounds of show and ping, each call with a 10 s
// deadline. Returns the failures (empty: every call succeeded in time).
std::vector<std::string> well_behaved(const fs::path& runtime_dir, int n) {
  std::vector<std::string> failures;
  try {
    Client c(runtime_dir.string());
    for (int i = 0; i < n; ++i) {
      try {
        auto r = c.call("show", {{"model", "good/model"}}, 10s);
        if (r.value("best", "") != "good") failures.push_back("show answered " + r.dump());
        c.call("ping", {}, 10s);
      } catch (const std::exception& e) {
        failures.push_back(e.what());
      }
    }
  } catch (const std::exception& e) {
    failures.push_back(std::string("cannot connect: ") + e.what());
  }
  return failures;
}

void expect_bounded(const char* what, const Memory& before, const Memory& after) {
  std::cout << "[flood] " << what << ": daemon VmRSS " << before.rss_kib / 1024 << " MiB before, " << after.rss_kib / 1024
            << " MiB after, VmHWM " << after.hwm_kib / 1024 << " MiB\n";
  EXPECT_LT(after.hwm_kib - before.rss_kib, kBoundKiB) << what << ": peak RSS grew by " << (after.hwm_kib - before.rss_kib) / 1024 << " MiB";
  EXPECT_LT(after.rss_kib - before.rss_kib, kBoundKiB) << what;
}

// A raw DEALER on client.sock (docs/protocol.md, "Client protocol").
zmq::socket_t raw_client(zmq::context_t& ctx, const fs::path& runtime_dir) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  bus::configure_socket(s);
  s.connect("ipc://" + (runtime_dir / "client.sock").string());
  return s;
}

// (a) A client sending requests as fast as it can (and reading what comes back): pulls of a
// model that takes 8 s, shows, pings, statuses. Beyond 1000 requests in flight it is refused
// with `unavailable`, and the daemon's memory stays bounded.
TEST(Flood, AClientSendingAsFastAsItCanIsCappedAndOthersAreServed) {
  Daemon d(config());
  d.wait_plugin("good");
  Memory before = memory_of(d.pid());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> sent{0}, replies{0}, capped{0}, errors{0};
  std::thread flood([&] {
    zmq::context_t ctx(1);
    auto s = raw_client(ctx, d.runtime_dir());
    const char* methods[] = {"pull", "show", "ping", "status"};
    for (std::uint64_t id = 1; !stop; ++id) {
      std::string method = methods[id % 4];
      json body = method == "pull" ? json{{"model", "slow/model"}} : method == "show" ? json{{"model", "good/model"}} : json::object();
      auto m = bus::Message::make_request(id, method, body, 60000);
      if (bus::send(s, m)) ++sent;
      while (auto r = bus::receive_for(s, false, 0ms)) {
        if (r->message.type == bus::MessageType::reply) ++replies;
        if (r->message.type != bus::MessageType::error) continue;
        ++errors;
        if (r->message.error_message.find("too many requests in flight from this client (limit 1000)") != std::string::npos)
          ++capped;
      }
    }
  });
  ASSERT_TRUE(wait_until([&] { return capped > 0; }, 30s)) << "sent " << sent << ", no request was refused";
  auto failures = well_behaved(d.runtime_dir(), 20);
  stop = true;
  flood.join();
  Memory after = memory_of(d.pid());
  std::cout << "[flood] requests: sent " << sent << ", replies " << replies << ", errors " << errors << " (" << capped
            << " over the per-client limit)\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  expect_bounded("client request flood", before, after);
  EXPECT_TRUE(process_alive(d.pid()));
}

// (b) A plugin flooding the bus with heartbeats, replies, errors and 64 KiB chunks for
// requests that were never made, and log lines.
TEST(Flood, APluginFloodingTheBusDoesNotGrowTheDaemon) {
  Daemon d(config("  - name: rogue\n    command: [@BIN@/modelzoo-test-rogue-plugin, @DIR@/rogue.txt, flood]\n"
                  "    handles: ['rogue/*']\n"));
  d.wait_plugin("good");
  d.wait_plugin("rogue");
  Memory before = memory_of(d.pid());
  auto sent = [&] {
    std::ifstream in(d.dir() / "rogue.txt");
    std::string line, last;
    while (std::getline(in, line))
      if (line.rfind("sent ", 0) == 0) last = line;
    return last.empty() ? 0ull : std::stoull(last.substr(5));
  };
  ASSERT_TRUE(wait_until([&] { return sent() >= 20000; }, 60s)) << "the rogue plugin sent only " << sent();
  auto failures = well_behaved(d.runtime_dir(), 20);
  ASSERT_TRUE(wait_until([&] { return sent() >= 100000; }, 120s)) << "the rogue plugin sent only " << sent();
  Memory after = memory_of(d.pid());
  std::cout << "[flood] the rogue plugin sent " << sent() << " messages (1 in 4 with 64 KiB of data)\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  expect_bounded("plugin flood", before, after);
  EXPECT_EQ(d.plugin("rogue")["restarts"], 0) << "valid messages, even useless ones, are no reason to kill it";
}

// (c) A subscriber to every event that never reads, while a second subscriber makes the
// daemon publish as fast as it can (each "_sync." subscription is answered with an event).
TEST(Flood, ASubscriberThatNeverReadsLosesEventsNotTheDaemonsMemory) {
  Daemon d(config());
  d.wait_plugin("good");
  Memory before = memory_of(d.pid());
  zmq::context_t ctx(1);
  zmq::socket_t deaf(ctx, zmq::socket_type::sub);
  deaf.set(zmq::sockopt::subscribe, "");
  deaf.connect("ipc://" + (d.runtime_dir() / "events.sock").string());
  zmq::socket_t noisy(ctx, zmq::socket_type::xsub);
  noisy.connect("ipc://" + (d.runtime_dir() / "events.sock").string());
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> asked{0};
  std::thread publisher([&] {
    for (std::uint64_t i = 0; !stop && i < 300000; ++i) {
      std::string sub = std::string("\x01") + "_sync.flood-" + std::to_string(i) + std::string(200, 'x');
      std::string unsub = sub;
      unsub[0] = 0;
      noisy.send(zmq::buffer(sub));
      noisy.send(zmq::buffer(unsub));  // the daemon's subscription table stays small
      ++asked;
    }
  });
  ASSERT_TRUE(wait_until([&] { return asked >= 100000; }, 60s));
  auto failures = well_behaved(d.runtime_dir(), 20);
  stop = true;
  publisher.join();
  // Events still flow to a subscriber that reads.
  EventSubscriber reader(d.runtime_dir().string(), {"plugin."});
  Memory after = memory_of(d.pid());
  std::cout << "[flood] " << asked << " _sync subscriptions answered to a subscriber that never reads\n";
  // The flood reached the daemon's event thread (it reads subscriptions and their removals).
  Client c(d.runtime_dir().string());
  EXPECT_GT(c.call("status", {}, 10s)["events"].value("subscriptions_read", 0ull), 10000u);
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  expect_bounded("deaf subscriber", before, after);
}

// (d) A client that sends requests and never reads the replies: they pile up to the
// high-water mark and are dropped; the daemon neither grows nor stalls.
TEST(Flood, AClientThatNeverReadsItsRepliesDoesNotGrowTheDaemon) {
  Daemon d(config());
  d.wait_plugin("good");
  Memory before = memory_of(d.pid());
  zmq::context_t ctx(1);
  auto s = raw_client(ctx, d.runtime_dir());
  s.set(zmq::sockopt::rcvhwm, 1);  // it reads nothing: let the replies back up into the daemon
  std::uint64_t sent = 0;
  for (std::uint64_t id = 1; id <= 200000; ++id) {
    auto m = bus::Message::make_request(id, id % 2 ? "plugins" : "status", json::object(), 60000);
    if (bus::send(s, m)) ++sent;
    else std::this_thread::yield();  // our own queue is full: the daemon reads at its pace
  }
  auto failures = well_behaved(d.runtime_dir(), 20);
  Memory after = memory_of(d.pid());
  std::cout << "[flood] " << sent << " requests whose replies were never read\n";
  EXPECT_TRUE(failures.empty()) << failures.size() << " failed, first: " << failures.front();
  expect_bounded("client that never reads", before, after);
}

}  // namespace
}  // namespace modelzoo::testing
