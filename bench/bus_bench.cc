// modelzoo-bench: what the bus, the daemon and the plugin SDK cost, each figure next to a
// raw ZeroMQ baseline measured in the same run (the machine is small and noisy, so only
// ratios mean much). Not a test: it prints a table and a final JSON line and exits 0
// unless something broke (1) or the command line is wrong (2). See bench/README.md.
//
//   1. Round trip: `show` through modelzood vs two raw ZeroMQ baselines: a DEALER->ROUTER
//      echo over ipc:// (one hop, two processes) and a raw broker with the topology of a
//      `show` (client -> broker -> worker -> broker -> client: two hops, three processes).
//      Plus, to place the overhead, a daemon-only `ping`, a `metadata` call straight to the
//      memory plugin with the bench acting as its daemon, and an in-process replay of the
//      daemon's message work for one `show`.
//   2. Throughput with 64 requests in flight on one socket: both baselines vs pipelined
//      `show` (and `ping`, and the direct plugin), with the CPU time each process spent per
//      request.
//   3. Recovery: SIGKILL the plugin, time until a `show` succeeds again.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/socket.h"
#include "modelzoo/client.h"
#include "modelzoo/core/resolver.h"

#include "bench_support.h"

namespace {

using namespace modelzoo::bench;
namespace fs = std::filesystem;
namespace bus = modelzoo::bus;
namespace core = modelzoo::core;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kModel = "bench/model";
constexpr const char* kSource = "mem";
constexpr int kStableAfterMs = 50;        // restart.stable_after_ms of the source
constexpr int kHeartbeatMs = 1000;        // heartbeat_interval_ms of the daemon
constexpr std::size_t kRawBodyBytes = 100;
constexpr milliseconds kReplyTimeout{5000};  // any single reply slower than this: broken
constexpr milliseconds kRecoveryAttemptTimeout{200};
constexpr milliseconds kRecoveryPoll{1};     // pause between failed attempts while recovering

// --quick, --json, --bin-dir (bench_support.h), and what --quick sets.
struct Options : CommonOptions {
  int n = 20000;           // timed round trips per variant
  int warmup = 1000;       // untimed round trips per variant first
  int block = 500;         // round trips per variant before switching to the next
  double throughput_s = 2.0;  // per variant
  double slice_s = 0.5;       // throughput variants alternate in slices this long
  int inflight = 64;
  int kills = 20;
};

// ------------------------------------------------------------------ statistics
struct Stats {
  std::size_t n = 0;
  double p50 = 0, p99 = 0, mean = 0, min = 0, max = 0;
};

// Nearest-rank percentiles.
Stats summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::clamp<std::size_t>(i, 1, v.size()) - 1];
  };
  s.n = v.size();
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.min = v.front();
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

json stats_json(const Stats& s, const char* unit) {
  std::string u = unit;
  return {{"n", s.n},
          {"p50_" + u, round_to(s.p50, 1)},
          {"p99_" + u, round_to(s.p99, 1)},
          {"mean_" + u, round_to(s.mean, 1)},
          {"max_" + u, round_to(s.max, 1)}};
}

double us_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

// ------------------------------------------------------------------ raw baselines
// The raw baselines run in children forked (no exec) before this process has any ZeroMQ
// context or thread; each child makes its own, fresh context.

// First thing in such a child: die with the bench, forget the bench's children, and take
// the default action on the signals whose handler (inherited through fork) is the bench's.
void forked_child_setup(pid_t parent) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(1);
  forget_children();
  reset_signal_handlers();
}

void set_raw_options(zmq::socket_t& s) {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, 100000);
  s.set(zmq::sockopt::rcvhwm, 100000);
}

// Receives the rest of a multipart message and drops it.
void drop_more(zmq::socket_t& s, const zmq::message_t& last) {
  bool more = last.more();
  while (more) {
    zmq::message_t extra;
    (void)s.recv(extra);
    more = extra.more();
  }
}

// Forks a child that runs `body(ready_fd)` and must write one byte to ready_fd once it is
// ready (sockets bound). Returns its pid once it is.
pid_t start_forked(const std::string& what, const std::function<void(int)>& body) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw Failure(std::string("pipe: ") + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw Failure(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    forked_child_setup(parent);
    ::close(p[0]);
    int code = 0;
    try {
      body(p[1]);
    } catch (...) {
      code = 1;
    }
    ::_exit(code);
  }
  track(pid);
  ::close(p[1]);
  char ok = 0;
  ssize_t n;
  while ((n = ::read(p[0], &ok, 1)) < 0 && errno == EINTR) {
  }
  ::close(p[0]);
  if (n != 1) {
    wait_exit(pid, milliseconds(1000));
    throw Failure("the " + what + " did not start (bind failed?)");
  }
  return pid;
}

void signal_ready(int ready_fd) {
  char ok = 1;
  (void)!::write(ready_fd, &ok, 1);
  ::close(ready_fd);
}

// The echo server (1 hop): sends every message back to whoever sent it, untouched and
// undecoded.
pid_t start_echo_server(const std::string& endpoint) {
  return start_forked("echo server", [&](int ready_fd) {
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::router);
    set_raw_options(s);
    s.bind(endpoint);
    signal_ready(ready_fd);
    while (true) {
      zmq::message_t id, body;
      if (!s.recv(id)) continue;
      if (!id.more()) continue;
      (void)s.recv(body);
      drop_more(s, body);  // one body frame expected
      s.send(id, zmq::send_flags::sndmore);
      s.send(body, zmq::send_flags::none);
    }
  });
}

// The raw broker: the topology of a `show` with none of modelzoo's work. Three processes:
// the bench's DEALER -> broker (a ROUTER facing clients, a ROUTER facing the worker) ->
// worker (a DEALER) -> broker -> the bench. Like the daemon, the broker keeps a table of
// pending requests: it numbers each client request, remembers the client's routing id
// under that number, and sends [number][body] to the worker; the worker's reply carries the
// number back, and the broker sends the reply to the client it looks up. Nothing is
// decoded. The worker answers every request with the bytes of a real `show` reply envelope
// (given by the bench once it has one), as the plugin answers `metadata`.
struct RawBroker {
  std::string front, back;  // endpoints: the clients', the worker's
  pid_t broker_pid = 0, worker_pid = 0;
  int reply_fd = -1;  // the worker reads the bytes of its reply from here, then starts

  void start(const fs::path& dir) {
    front = "ipc://" + (dir / "broker-front.sock").string();
    back = "ipc://" + (dir / "broker-back.sock").string();
    broker_pid = start_forked("raw broker", [this](int ready_fd) { broker_main(ready_fd); });
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw Failure(std::string("pipe: ") + std::strerror(errno));
    reply_fd = p[1];
    worker_pid = start_forked("raw worker", [this, p](int ready_fd) {
      ::close(p[1]);
      signal_ready(ready_fd);  // started; it connects once it knows its reply
      worker_main(p[0]);
    });
    ::close(p[0]);
  }

  // Hands the worker its reply; the broker can be used from then on.
  void set_reply(const std::string& bytes) {
    auto len = static_cast<std::uint32_t>(bytes.size());
    std::string msg(reinterpret_cast<const char*>(&len), sizeof len);
    msg += bytes;
    for (std::size_t off = 0; off < msg.size();) {
      ssize_t n = ::write(reply_fd, msg.data() + off, msg.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Failure(std::string("cannot hand the raw worker its reply: ") + std::strerror(errno));
      off += static_cast<std::size_t>(n);
    }
    ::close(reply_fd);
    reply_fd = -1;
  }

  ~RawBroker() {
    if (reply_fd >= 0) ::close(reply_fd);
    if (worker_pid > 0) stop_process(worker_pid, SIGTERM, milliseconds(2000));
    if (broker_pid > 0) stop_process(broker_pid, SIGTERM, milliseconds(2000));
  }

 private:
  [[noreturn]] void broker_main(int ready_fd) {
    zmq::context_t ctx(1);
    zmq::socket_t fs_(ctx, zmq::socket_type::router), bs(ctx, zmq::socket_type::router);
    set_raw_options(fs_);
    set_raw_options(bs);
    fs_.bind(front);
    bs.bind(back);
    signal_ready(ready_fd);
    // The worker says hello first: from then on, its routing id is where requests go.
    zmq::message_t worker, hello;
    (void)bs.recv(worker);
    if (worker.more()) {
      (void)bs.recv(hello);
      drop_more(bs, hello);
    }
    std::unordered_map<std::uint64_t, zmq::message_t> pending;  // number -> client routing id
    std::uint64_t next = 0;
    zmq::pollitem_t items[] = {{fs_.handle(), 0, ZMQ_POLLIN, 0}, {bs.handle(), 0, ZMQ_POLLIN, 0}};
    while (true) {
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
      if (items[0].revents & ZMQ_POLLIN) {
        // A client's [routing id][body] -> the worker: [worker id][number][body].
        for (int k = 0; k < 256; ++k) {
          zmq::message_t id, body;
          if (!fs_.recv(id, zmq::recv_flags::dontwait)) break;
          if (!id.more()) continue;
          (void)fs_.recv(body);
          drop_more(fs_, body);
          std::uint64_t n = ++next;
          zmq::message_t to(worker.data(), worker.size());
          bs.send(to, zmq::send_flags::sndmore);
          bs.send(zmq::buffer(&n, sizeof n), zmq::send_flags::sndmore);
          bs.send(body, zmq::send_flags::none);
          pending.emplace(n, std::move(id));
        }
      }
      if (items[1].revents & ZMQ_POLLIN) {
        // The worker's [worker id][number][reply] -> that client: [routing id][reply].
        for (int k = 0; k < 256; ++k) {
          zmq::message_t from, num, reply;
          if (!bs.recv(from, zmq::recv_flags::dontwait)) break;
          if (!from.more()) continue;
          (void)bs.recv(num);
          if (!num.more()) continue;
          (void)bs.recv(reply);
          drop_more(bs, reply);
          std::uint64_t n = 0;
          if (num.size() != sizeof n) continue;
          std::memcpy(&n, num.data(), sizeof n);
          auto it = pending.find(n);
          if (it == pending.end()) continue;
          fs_.send(it->second, zmq::send_flags::sndmore);
          fs_.send(reply, zmq::send_flags::none);
          pending.erase(it);
        }
      }
    }
  }

  [[noreturn]] void worker_main(int in_fd) {
    auto read_all = [&](void* buf, std::size_t size) {
      for (std::size_t off = 0; off < size;) {
        ssize_t n = ::read(in_fd, static_cast<char*>(buf) + off, size - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) ::_exit(0);  // the bench never got that far
        off += static_cast<std::size_t>(n);
      }
    };
    std::uint32_t len = 0;
    read_all(&len, sizeof len);
    std::string reply(len, '\0');
    read_all(reply.data(), len);
    ::close(in_fd);
    zmq::context_t ctx(1);
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    set_raw_options(s);
    s.connect(back);
    s.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    while (true) {
      zmq::message_t num, body;
      if (!s.recv(num)) continue;
      if (!num.more()) continue;
      (void)s.recv(body);
      drop_more(s, body);
      s.send(num, zmq::send_flags::sndmore);
      s.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  }
};

// A msgpack body of about kRawBodyBytes: a `show`-like request envelope with padding.
std::string raw_payload() {
  for (std::size_t pad = 0;; ++pad) {
    auto m = bus::Message::make_request(1, "show", {{"model", kModel}, {"pad", std::string(pad, 'x')}}, 30000);
    std::string env = bus::encode_envelope(m);
    if (env.size() >= kRawBodyBytes) return env;
  }
}

// The bench's side of both raw baselines: a DEALER that sends the same ~100-byte body and
// expects a reply of `reply_size` bytes.
struct RawClient {
  zmq::socket_t sock;
  std::string payload = raw_payload();
  std::size_t reply_size;
  std::string what;

  RawClient(zmq::context_t& ctx, const std::string& endpoint, std::size_t reply_bytes, std::string name)
      : sock(ctx, zmq::socket_type::dealer), reply_size(reply_bytes ? reply_bytes : payload.size()), what(std::move(name)) {
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::sndhwm, 100000);
    sock.set(zmq::sockopt::rcvhwm, 100000);
    sock.set(zmq::sockopt::rcvtimeo, static_cast<int>(kReplyTimeout.count()));
    sock.connect(endpoint);
  }
  void send_one() {
    if (!sock.send(zmq::buffer(payload), zmq::send_flags::dontwait)) throw Failure(what + ": send queue full");
  }
  void recv_one() {
    zmq::message_t r;
    if (!sock.recv(r)) throw Failure(what + ": no reply within 5 s (child process gone?)");
    if (r.size() != reply_size) throw Failure(what + ": reply of the wrong size");
  }
  void round_trip() {
    send_one();
    recv_one();
  }
};

// ------------------------------------------------------------------ the bench as a plugin's daemon
// Starts the memory plugin against a ROUTER of our own, does the hello/welcome handshake
// and then sends it `metadata` requests directly: one bus hop through the plugin SDK, no
// daemon. Places the overhead between the SDK and the daemon.
struct DirectPlugin {
  zmq::socket_t sock;
  std::string routing_id;
  pid_t pid = 0;
  std::uint64_t next_id = 1;

  DirectPlugin(zmq::context_t& ctx, const fs::path& dir, const fs::path& exe, const json& config)
      : sock(ctx, zmq::socket_type::router) {
    bus::configure_socket(sock);
    std::string endpoint = "ipc://" + (dir / "direct.sock").string();
    sock.bind(endpoint);
    const std::string token = "bench-token-0123456789abcdef";
    fs::path log = dir / "direct-plugin.log";
    pid = spawn({exe.string()},
                child_env({"MODELZOO_ENDPOINT=" + endpoint, "MODELZOO_PLUGIN_ID=direct.1", "MODELZOO_TOKEN=" + token,
                           "MODELZOO_PROTOCOL_VERSIONS=" + std::to_string(bus::kProtocolVersion),
                           "MODELZOO_INSTANCE=direct"}),
                log);
    auto deadline = Clock::now() + milliseconds(10000);
    while (routing_id.empty()) {
      if (Clock::now() > deadline) throw Failure("the memory plugin sent no hello within 10 s; log: " + log.string());
      auto r = bus::receive_for(sock, true, milliseconds(100));
      if (!r || r->message.type != bus::MessageType::hello) continue;
      if (r->message.body.value("token", std::string()) != token) throw Failure("the memory plugin sent a wrong token");
      routing_id = r->routing_id;
    }
    // Heartbeats every second as the daemon does; a liveness of 600 lets the plugin sit
    // idle (we do not answer its heartbeats) through the other measurements.
    auto w = bus::Message::make(bus::MessageType::welcome, {{"protocol", bus::kProtocolVersion},
                                                           {"plugin_id", "direct.1"},
                                                           {"heartbeat_ms", kHeartbeatMs},
                                                           {"heartbeat_liveness", 600},
                                                           {"config", config}});
    if (!bus::send_to(sock, routing_id, w)) throw Failure("cannot send the welcome to the memory plugin");
    // It is ready once it answers.
    round_trip();
  }
  ~DirectPlugin() {
    if (pid > 0) stop_process(pid, SIGTERM, milliseconds(3000));
  }

  void send_one() {
    auto m = bus::Message::make_request(next_id++, "metadata", {{"name", kModel}}, 10000);
    if (!bus::send_to(sock, routing_id, m)) throw Failure("direct plugin: send failed");
  }
  // True for a reply, false for an error; heartbeats are skipped.
  bool recv_one(std::map<std::string, int>* errors = nullptr) {
    while (true) {
      auto r = bus::receive_for(sock, true, kReplyTimeout);
      if (!r) throw Failure("direct plugin: no answer within 5 s");
      auto& m = r->message;
      if (m.type == bus::MessageType::reply) return true;
      if (m.type == bus::MessageType::error) {
        if (errors) (*errors)[std::string(bus::to_string(*m.error_code))]++;
        else throw Failure("direct plugin: error " + std::string(bus::to_string(*m.error_code)) + ": " + m.error_message);
        return false;
      }
    }
  }
  void round_trip() {
    send_one();
    recv_one();
  }
};

// ------------------------------------------------------------------ the daemon
struct Daemon {
  fs::path dir, runtime, cache, data, config, log;
  pid_t pid = 0;

  json plugin_config() const {
    return {{"models", json::array({{{"name", kModel},
                                     {"version", "1.0.0"},
                                     {"files", json::array({{{"name", "w.bin"}, {"content", "x"}}})}}})}};
  }

  void start(const fs::path& exe, const fs::path& tmp) {
    dir = tmp;
    runtime = tmp / "run";
    cache = tmp / "cache";
    data = tmp / "data";
    config = tmp / "modelzood.yaml";
    log = tmp / "modelzood.log";
    fs::create_directories(runtime);
    fs::create_directories(cache);
    fs::create_directories(data);
    // restart.stable_after_ms: 50 -- every run we kill has been up longer than that, so it
    // counts as a stable run and the daemon restarts the plugin at once, with no back-off.
    write_file(config, "# written by modelzoo-bench\n"
                       "runtime_dir: " + runtime.string() + "\n"
                       "cache_dir: " + cache.string() + "\n"
                       "data_dir: " + data.string() + "\n"
                       "plugin_dirs: []\n"
                       "heartbeat_interval_ms: " + std::to_string(kHeartbeatMs) + "\n"
                       "log_level: info\n"
                       "sources:\n"
                       "  - name: " + kSource + "\n"
                       "    plugin: memory\n"
                       "    priority: 0\n"
                       "    restart: {stable_after_ms: " + std::to_string(kStableAfterMs) + "}\n"
                       "    config:\n"
                       "      models:\n"
                       "        - name: " + kModel + "\n"
                       "          version: 1.0.0\n"
                       "          files: [{name: w.bin, content: \"x\"}]\n");
    pid = spawn({exe.string(), "--config", config.string()}, log);
    wait_ready();
  }

  void check_alive() { check_daemon_alive(pid); }

  // Polls `plugins` until the source is ready, with a deadline.
  void wait_ready() {
    wait_source_ready(runtime, kSource, false, [this] { check_alive(); });
  }

  // SIGTERM and wait; returns the exit status, or nullopt if it had to be killed.
  std::optional<int> stop(milliseconds timeout) {
    auto st = stop_process(pid, SIGTERM, timeout);
    pid = 0;
    return st;
  }
  ~Daemon() {
    if (pid > 0) stop_process(pid, SIGKILL, milliseconds(5000));
  }
};

// A DEALER speaking the client protocol, so that many requests share one socket.
struct PipelinedClient {
  zmq::socket_t sock;
  std::string method;
  json body;
  std::uint64_t next_id = 1;
  PipelinedClient(zmq::context_t& ctx, const fs::path& runtime, std::string m, json b)
      : sock(ctx, zmq::socket_type::dealer), method(std::move(m)), body(std::move(b)) {
    bus::configure_socket(sock);
    sock.connect("ipc://" + (runtime / "client.sock").string());
  }
  void send_one() {
    auto m = bus::Message::make_request(next_id++, method, body, 10000);
    if (!bus::send(sock, m)) throw Failure("pipelined client: send queue full");
  }
  bool recv_one(std::map<std::string, int>& errors) {
    while (true) {
      auto r = bus::receive_for(sock, false, kReplyTimeout);
      if (!r) throw Failure("pipelined client: no answer from modelzood within 5 s");
      auto& m = r->message;
      if (m.type == bus::MessageType::reply) return true;
      if (m.type == bus::MessageType::error) {
        errors[std::string(bus::to_string(*m.error_code))]++;
        return false;
      }
    }
  }
};

// ------------------------------------------------------------------ 1. round trip
// Replays in this process the message work the daemon does for one `show`, without any
// I/O, the way the daemon does it (docs/architecture.md, "The hot path"): decode the
// client's request, encode the plugin request, decode the plugin's reply keeping its body
// as msgpack, validate the metadata straight from it (ModelMetadata::from_msgpack), write
// the reply (core::show_reply_msgpack) and encode it. Returns microseconds per show (median
// of 20 batches).
double codec_us_per_show(const json& show_reply, int iterations) {
  const std::string client_req =
      bus::encode_envelope(bus::Message::make_request(7, "show", {{"model", kModel}}, 30000));
  const std::string plugin_reply = bus::encode_envelope(bus::Message::make_reply(7, show_reply.at("metadata")));
  core::Resolution res;
  res.ref = bus::parse_model_ref(kModel);
  for (const auto& s : show_reply.at("sources")) {
    core::SourceAnswer a;
    a.plugin.name = s.at("plugin").get<std::string>();
    a.plugin.priority = s.at("priority").get<int>();
    res.sources.push_back(std::move(a));
  }
  if (res.sources.empty()) throw Failure("the show reply names no source");
  std::vector<double> batches;
  const int batch = std::max(1, iterations / 20);
  std::size_t sink = 0;
  for (int b = 0; b < 20; ++b) {
    auto t0 = Clock::now();
    for (int i = 0; i < batch; ++i) {
      bus::Message req = bus::decode(client_req.data(), client_req.size());
      auto ref = bus::parse_model_ref(bus::require_string_param(req.body, "model"));
      auto preq = bus::Message::make_request(7, "metadata", {{"name", ref.name}}, 30000);
      std::string preq_bytes = bus::encode_envelope(preq);
      bus::Message rep = bus::decode(plugin_reply.data(), plugin_reply.size(), bus::BodyForm::raw);
      res.sources[0].metadata = bus::ModelMetadata::from_msgpack(rep.raw_body.data(), rep.raw_body.size());
      auto out = bus::Message::make_raw_reply(7, core::show_reply_msgpack(res));
      sink += preq_bytes.size() + bus::encode_envelope(out).size();
    }
    batches.push_back(us_since(t0) / batch);
  }
  if (sink == 0) throw Failure("codec replay produced nothing");
  return summarize(batches).p50;
}

struct Variant {
  std::string key, label;
  std::function<void()> round_trip;
  std::vector<double> us;
};

// Warm-up, then blocks of `block` round trips per variant in rotating order, so that every
// variant sees the same background noise.
void run_round_trips(std::vector<Variant>& vs, const Options& o) {
  for (auto& v : vs) {
    for (int i = 0; i < o.warmup; ++i) v.round_trip();
    v.us.reserve(static_cast<std::size_t>(o.n));
  }
  int rounds = (o.n + o.block - 1) / o.block;
  for (int r = 0; r < rounds; ++r) {
    check_interrupted();
    for (std::size_t k = 0; k < vs.size(); ++k) {
      auto& v = vs[(k + static_cast<std::size_t>(r)) % vs.size()];
      int todo = std::min(o.block, o.n - static_cast<int>(v.us.size()));
      for (int i = 0; i < todo; ++i) {
        auto t0 = Clock::now();
        v.round_trip();
        v.us.push_back(us_since(t0));
      }
    }
  }
}

// ------------------------------------------------------------------ 2. throughput
struct Pipe {
  std::string key, label;
  std::function<void()> send_one;
  std::function<bool()> recv_one;  // true: success reply
  std::vector<std::pair<std::string, pid_t>> procs;  // whose CPU time to account (0: the bench)
  std::uint64_t ok = 0, failed = 0;
  double seconds = 0;
  std::map<std::string, double> cpu;  // process -> CPU seconds used during the timed slices
};

// Keeps `inflight` requests outstanding for `slice`, then drains.
void run_slice(Pipe& p, int inflight, std::chrono::duration<double> slice) {
  check_interrupted();
  std::vector<double> cpu0;
  for (const auto& pr : p.procs) cpu0.push_back(cpu_seconds(pr.second));
  auto t0 = Clock::now();
  auto end = t0 + std::chrono::duration_cast<Clock::duration>(slice);
  std::uint64_t sent = 0, done = 0;
  for (int i = 0; i < inflight; ++i, ++sent) p.send_one();
  while (done < sent) {
    bool ok = p.recv_one();
    ++done;
    ok ? ++p.ok : ++p.failed;
    if (Clock::now() < end) {
      p.send_one();
      ++sent;
    }
  }
  p.seconds += std::chrono::duration<double>(Clock::now() - t0).count();
  for (std::size_t i = 0; i < p.procs.size(); ++i) p.cpu[p.procs[i].first] += cpu_seconds(p.procs[i].second) - cpu0[i];
}

void run_throughput(std::vector<Pipe>& ps, const Options& o) {
  // A short untimed slice each first: connections up, caches warm.
  for (auto& p : ps) {
    run_slice(p, o.inflight, std::chrono::duration<double>(0.1));
    p.ok = p.failed = 0;
    p.seconds = 0;
    p.cpu.clear();
  }
  int slices = std::max(1, static_cast<int>(std::lround(o.throughput_s / o.slice_s)));
  for (int s = 0; s < slices; ++s)
    for (std::size_t k = 0; k < ps.size(); ++k)
      run_slice(ps[(k + static_cast<std::size_t>(s)) % ps.size()], o.inflight, std::chrono::duration<double>(o.slice_s));
}

// ------------------------------------------------------------------ 3. recovery
json find_plugin(modelzoo::Client& c) {
  json p = c.call("plugins", json::object(), milliseconds(2000));
  for (const auto& pl : p.at("plugins"))
    if (pl.value("name", "") == kSource) return pl;
  throw Failure("`plugins` does not list the source '" + std::string(kSource) + "'");
}

struct Recovery {
  std::vector<double> ms;          // kill -> first successful show
  std::vector<double> startup_ms;  // spawn -> hello accepted, from the plugin.started event
  std::vector<double> attempts;
  std::map<std::string, int> errors;  // code -> count, of the failed attempts
  std::map<std::string, std::string> error_samples;  // code -> the first message with it
  int attempt_timeouts = 0;           // attempts that waited the full 200 ms
};

Recovery run_recovery(Daemon& d, const Options& o) {
  Recovery rec;
  modelzoo::Client c(d.runtime.string());
  modelzoo::EventSubscriber events(d.runtime.string(), {"plugin."});
  const json body = {{"model", kModel}};
  int last_pid = 0;
  for (int k = 0; k < o.kills; ++k) {
    // Wait (poll, with a deadline) until a new process is ready and up longer than the
    // stable period, so that killing it counts as the end of a stable run.
    int pid = 0;
    auto deadline = Clock::now() + milliseconds(10000);
    while (true) {
      check_interrupted();
      d.check_alive();
      json pl = find_plugin(c);
      int p = pl.value("pid", 0);
      if (pl.value("state", "") == "ready" && p > 0 && p != last_pid && pl.value("uptime_ms", 0) > kStableAfterMs) {
        pid = p;
        break;
      }
      if (pl.value("state", "") == "failed") throw Failure("the plugin is in state `failed`: " + pl.dump());
      if (Clock::now() > deadline) throw Failure("the plugin did not become ready and stable within 10 s: " + pl.dump());
      std::this_thread::sleep_for(milliseconds(5));
    }
    while (events.next(milliseconds(0))) {
    }
    auto t0 = Clock::now();
    if (::kill(pid, SIGKILL) != 0) throw Failure("kill(" + std::to_string(pid) + "): " + std::strerror(errno));
    int attempts = 0;
    while (true) {
      ++attempts;
      auto ta = Clock::now();
      try {
        c.call("show", body, kRecoveryAttemptTimeout);
        break;
      } catch (const bus::Error& e) {
        std::string code(bus::to_string(e.code()));
        rec.errors[code]++;
        rec.error_samples.emplace(code, e.what());
        if (Clock::now() - ta >= kRecoveryAttemptTimeout) rec.attempt_timeouts++;
      } catch (const modelzoo::DaemonUnavailable& e) {
        rec.errors["daemon_unavailable"]++;
        rec.error_samples.emplace("daemon_unavailable", e.what());
      }
      check_interrupted();
      if (Clock::now() - t0 > milliseconds(10000)) {
        d.check_alive();
        throw Failure("no successful show within 10 s of killing the plugin");
      }
      std::this_thread::sleep_for(kRecoveryPoll);
    }
    rec.ms.push_back(us_since(t0) / 1000.0);
    rec.attempts.push_back(attempts);
    // The daemon's own figure for the restart: spawn -> hello accepted.
    auto ev_deadline = Clock::now() + milliseconds(2000);
    while (Clock::now() < ev_deadline) {
      auto e = events.next(milliseconds(200));
      if (e && e->topic == "plugin.started" && e->body.value("plugin", "") == kSource) {
        rec.startup_ms.push_back(e->body.value("startup_ms", 0.0));
        break;
      }
    }
    last_pid = pid;
  }
  return rec;
}

// ------------------------------------------------------------------ main
void usage(std::ostream& os) {
  os << "usage: modelzoo-bench [--quick] [--json] [--bin-dir DIR]\n"
        "  --quick        N=2000 round trips, 1 s throughput, 5 kills (for CI)\n"
        "  --json         print only the final JSON line\n"
        "  --bin-dir DIR  where modelzood and modelzoo-plugin-memory are (default: next to this program)\n";
}

std::string errors_text(const std::map<std::string, int>& m) {
  if (m.empty()) return "none";
  std::string s;
  for (const auto& [k, v] : m) s += (s.empty() ? "" : ", ") + k + " x" + std::to_string(v);
  return s;
}

int run(const Options& o) {
  fs::path daemon_exe = o.bin_dir / "modelzood";
  fs::path plugin_exe = o.bin_dir / "modelzoo-plugin-memory";
  for (const auto& p : {daemon_exe, plugin_exe})
    if (::access(p.c_str(), X_OK) != 0) throw Failure(p.string() + " is not an executable (use --bin-dir)");

  const double load_before = loadavg();
  TempDir tmp(fs::temp_directory_path(), "mzbench");
  Daemon daemon;
  bool daemon_log_wanted = true;
  try {
    // The echo server, the raw broker and its worker are forked before this process has any
    // ZeroMQ context (or thread).
    const std::string raw_endpoint = "ipc://" + (tmp.path / "raw.sock").string();
    pid_t echo_pid = start_echo_server(raw_endpoint);
    struct EchoGuard {
      pid_t pid;
      ~EchoGuard() { stop_process(pid, SIGTERM, milliseconds(2000)); }
    } echo_guard{echo_pid};
    RawBroker broker;
    broker.start(tmp.path);

    note("starting modelzood (" + daemon_exe.string() + "), log " + (tmp.path / "modelzood.log").string());
    daemon.start(daemon_exe, tmp.path);

    zmq::context_t ctx(1);
    RawClient raw(ctx, raw_endpoint, 0, "raw echo");
    raw.round_trip();  // connected
    DirectPlugin direct(ctx, tmp.path, plugin_exe, daemon.plugin_config());
    modelzoo::Client client(daemon.runtime.string());
    const json show_body = {{"model", kModel}};
    json show_reply = client.call("show", show_body, milliseconds(5000));
    if (show_reply.value("best", "") != kSource) throw Failure("show answered from an unexpected source: " + show_reply.dump());
    std::string show_reply_bytes = bus::encode_envelope(bus::Message::make_reply(1, show_reply));
    const double codec_us = codec_us_per_show(show_reply, o.n);
    // The raw worker answers with the bytes of a real show reply.
    broker.set_reply(show_reply_bytes);
    RawClient rawb(ctx, broker.front, show_reply_bytes.size(), "raw broker");
    rawb.round_trip();  // connected, the worker too

    // 1. Round trip.
    note("1/3 round trip: " + std::to_string(o.n) + " per variant after " + std::to_string(o.warmup) + " warm-up");
    std::vector<Variant> vs;
    vs.push_back({"raw", "raw zmq DEALER->ROUTER echo (1 hop)", [&] { raw.round_trip(); }, {}});
    vs.push_back({"raw_broker", "raw zmq broker -> worker (2 hops)", [&] { rawb.round_trip(); }, {}});
    vs.push_back({"plugin_direct", "plugin `metadata`, no daemon (1 hop)", [&] { direct.round_trip(); }, {}});
    vs.push_back({"daemon_ping", "modelzood `ping`, no plugin (1 hop)",
                  [&] { client.call("ping", json::object(), kReplyTimeout); }, {}});
    vs.push_back({"show", "modelzoo `show` (2 hops)", [&] { client.call("show", show_body, kReplyTimeout); }, {}});
    run_round_trips(vs, o);
    std::map<std::string, Stats> rt;
    for (auto& v : vs) rt[v.key] = summarize(v.us);
    const Stats& r = rt["raw"];
    const Stats& b = rt["raw_broker"];
    const Stats& s = rt["show"];

    // 2. Throughput.
    note("2/3 throughput: " + std::to_string(o.inflight) + " in flight, " + fmt(o.throughput_s, 1) + " s per variant");
    PipelinedClient piped(ctx, daemon.runtime, "show", show_body);
    PipelinedClient piped_ping(ctx, daemon.runtime, "ping", json::object());
    std::map<std::string, int> show_errors, ping_errors, direct_errors;
    const pid_t daemon_plugin_pid = find_plugin(client).value("pid", 0);
    std::vector<Pipe> ps;
    ps.push_back({"raw", "raw zmq echo (1 hop)", [&] { raw.send_one(); }, [&] { raw.recv_one(); return true; },
                  {{"bench", 0}, {"echo_server", echo_pid}}, 0, 0, 0, {}});
    ps.push_back({"raw_broker", "raw zmq broker -> worker (2 hops)", [&] { rawb.send_one(); },
                  [&] { rawb.recv_one(); return true; },
                  {{"bench", 0}, {"broker", broker.broker_pid}, {"worker", broker.worker_pid}}, 0, 0, 0, {}});
    ps.push_back({"plugin_direct", "plugin `metadata`, no daemon", [&] { direct.send_one(); },
                  [&] { return direct.recv_one(&direct_errors); }, {{"bench", 0}, {"plugin", direct.pid}}, 0, 0, 0, {}});
    ps.push_back({"daemon_ping", "modelzood `ping`, no plugin", [&] { piped_ping.send_one(); },
                  [&] { return piped_ping.recv_one(ping_errors); }, {{"bench", 0}, {"modelzood", daemon.pid}}, 0, 0, 0,
                  {}});
    ps.push_back({"show", "modelzoo `show`, pipelined on one socket", [&] { piped.send_one(); },
                  [&] { return piped.recv_one(show_errors); },
                  {{"bench", 0}, {"modelzood", daemon.pid}, {"plugin", daemon_plugin_pid}}, 0, 0, 0, {}});
    run_throughput(ps, o);
    // CPU microseconds per completed request, per process.
    auto cpu_per_req = [](const Pipe& p) {
      json c = json::object();
      for (const auto& [name, sec] : p.cpu) c[name] = p.ok ? round_to(sec * 1e6 / static_cast<double>(p.ok), 2) : 0.0;
      return c;
    };
    std::map<std::string, double> rps;
    for (auto& p : ps) rps[p.key] = p.seconds > 0 ? static_cast<double>(p.ok) / p.seconds : 0;
    auto pipe = [&](const std::string& key) -> const Pipe& {
      for (const auto& p : ps)
        if (p.key == key) return p;
      throw std::logic_error("no throughput variant " + key);
    };
    std::uint64_t show_failed = pipe("show").failed;

    // 3. Recovery.
    note("3/3 recovery: " + std::to_string(o.kills) + " x SIGKILL of the plugin");
    Recovery rec = run_recovery(daemon, o);
    Stats rs = summarize(rec.ms), su = summarize(rec.startup_ms), ra = summarize(rec.attempts);

    // Stop everything we started; the daemon must stop cleanly on SIGTERM.
    int plugin_restarts = find_plugin(client).value("restarts", -1);
    auto st = daemon.stop(milliseconds(10000));
    if (!st) throw Failure("modelzood did not stop within 10 s of SIGTERM (killed)");
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw Failure("modelzood stopped with " + describe_status(*st) + " after SIGTERM");
    daemon_log_wanted = false;

    // ---------------------------------------------------------------- report
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    json j = {
        {"bench", "modelzoo-bench"},
        {"time", utc_now()},
        {"quick", o.quick},
        {"cpus", std::thread::hardware_concurrency()},
        {"loadavg_1m", {load_before, loadavg()}},
        {"round_trip",
         {{"n", o.n},
          {"warmup", o.warmup},
          {"raw_body_bytes", raw.payload.size()},
          {"show_reply_bytes", show_reply_bytes.size()},
          {"daemon_codec_us_per_show", round_to(codec_us, 2)},
          {"raw", stats_json(r, "us")},
          {"raw_broker", stats_json(b, "us")},
          {"plugin_direct", stats_json(rt["plugin_direct"], "us")},
          {"daemon_ping", stats_json(rt["daemon_ping"], "us")},
          {"modelzoo_show", stats_json(s, "us")},
          {"ratio_p50", round_to(ratio(s.p50, r.p50), 2)},
          {"ratio_p99", round_to(ratio(s.p99, r.p99), 2)},
          {"ratio_p50_vs_2x_raw", round_to(ratio(s.p50, 2 * r.p50), 2)},
          {"ratio_p99_vs_2x_raw", round_to(ratio(s.p99, 2 * r.p99), 2)},
          {"ratio_p50_vs_raw_broker", round_to(ratio(s.p50, b.p50), 2)},
          {"ratio_p99_vs_raw_broker", round_to(ratio(s.p99, b.p99), 2)},
          {"raw_broker_vs_raw_p50", round_to(ratio(b.p50, r.p50), 2)},
          {"target_ratio_p50", 2.0},
          {"target_met", ratio(s.p50, r.p50) <= 2.0}}},
        {"throughput",
         {{"inflight", o.inflight},
          {"seconds_per_variant", o.throughput_s},
          {"raw_rps", std::lround(rps["raw"])},
          {"raw_broker_rps", std::lround(rps["raw_broker"])},
          {"plugin_direct_rps", std::lround(rps["plugin_direct"])},
          {"daemon_ping_rps", std::lround(rps["daemon_ping"])},
          {"modelzoo_show_rps", std::lround(rps["show"])},
          {"modelzoo_show_errors", show_failed},
          {"cpu_us_per_request",
           {{"raw", cpu_per_req(pipe("raw"))},
            {"raw_broker", cpu_per_req(pipe("raw_broker"))},
            {"plugin_direct", cpu_per_req(pipe("plugin_direct"))},
            {"daemon_ping", cpu_per_req(pipe("daemon_ping"))},
            {"modelzoo_show", cpu_per_req(pipe("show"))}}},
          {"ratio", round_to(ratio(rps["show"], rps["raw"]), 3)},
          {"ratio_vs_raw_broker", round_to(ratio(rps["show"], rps["raw_broker"]), 3)}}},
        {"recovery",
         {{"kills", o.kills},
          {"stable_after_ms", kStableAfterMs},
          {"attempt_timeout_ms", kRecoveryAttemptTimeout.count()},
          {"kill_to_first_success", stats_json(rs, "ms")},
          {"plugin_startup", stats_json(su, "ms")},
          {"attempts_p50", ra.p50},
          {"attempts_max", ra.max},
          {"attempt_timeouts", rec.attempt_timeouts},
          {"errors_seen", rec.errors},
          {"error_samples", rec.error_samples},
          {"restarts_reported", plugin_restarts},
          {"target_p50_ms", 50},
          {"target_met", rs.p50 < 50}}},
    };

    if (!o.json_only) {
      std::ostringstream t;
      auto row = [&](const std::string& label, const Stats& x, const std::string& extra) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "  %-42s %9s %9s %9s  %s\n", label.c_str(), fmt(x.p50).c_str(),
                      fmt(x.p99).c_str(), fmt(x.mean).c_str(), extra.c_str());
        t << buf;
      };
      t << "modelzoo-bench  " << utc_now() << "  " << (o.quick ? "--quick" : "full") << "  cpus "
        << std::thread::hardware_concurrency() << "  load average (1 min) " << fmt(load_before, 2) << " before, "
        << fmt(loadavg(), 2) << " after\n\n";
      t << "1. Round trip over ipc://, " << o.n << " each after " << o.warmup << " warm-up, interleaved in blocks of "
        << o.block << " (us)\n";
      char hdr[256];
      std::snprintf(hdr, sizeof hdr, "  %-42s %9s %9s %9s  %-14s %s\n", "", "p50", "p99", "mean", "vs raw p50/p99",
                    "vs broker p50/p99");
      t << hdr;
      for (auto& v : vs) {
        const Stats& x = rt[v.key];
        std::string vs_raw = fmt(ratio(x.p50, r.p50), 2) + " / " + fmt(ratio(x.p99, r.p99), 2);
        std::string vs_broker = fmt(ratio(x.p50, b.p50), 2) + " / " + fmt(ratio(x.p99, b.p99), 2);
        char extra[128];
        std::snprintf(extra, sizeof extra, "%-14s %s", vs_raw.c_str(), vs_broker.c_str());
        row(v.label, x, extra);
      }
      t << "  raw body " << raw.payload.size() << " B (echoed; the raw worker answers " << show_reply_bytes.size()
        << " B); show request " << bus::encode_envelope(bus::Message::make_request(1, "show", show_body, 30000)).size()
        << " B, reply " << show_reply_bytes.size() << " B\n";
      t << "  the daemon's message work for one show, replayed in-process without I/O: " << fmt(codec_us, 1)
        << " us\n";
      t << "  show / raw broker: p50 " << fmt(ratio(s.p50, b.p50), 2) << "  p99 " << fmt(ratio(s.p99, b.p99), 2)
        << "   (same topology: 3 processes, 2 hops; 1.00 = no overhead)\n";
      t << "  show / raw:        p50 " << fmt(ratio(s.p50, r.p50), 2) << "  p99 " << fmt(ratio(s.p99, r.p99), 2)
        << "   (issue target p50 <= 2.00: " << (ratio(s.p50, r.p50) <= 2.0 ? "met" : "MISSED")
        << "; the raw broker alone is " << fmt(ratio(b.p50, r.p50), 2) << " x raw)\n";
      t << "  show / (2 x raw):  p50 " << fmt(ratio(s.p50, 2 * r.p50), 2) << "  p99 " << fmt(ratio(s.p99, 2 * r.p99), 2)
        << "   (a show is two bus hops: client->daemon, daemon->plugin)\n\n";

      t << "2. Throughput, " << o.inflight << " requests in flight on one socket, " << fmt(o.throughput_s, 1)
        << " s each in " << fmt(o.slice_s, 1) << " s slices (req/s)\n";
      std::snprintf(hdr, sizeof hdr, "  %-42s %9s  %-6s %-9s %s\n", "", "req/s", "vs raw", "vs broker",
                    "CPU us per request");
      t << hdr;
      for (auto& p : ps) {
        std::string cpu;
        const json per_req = cpu_per_req(p);
        for (const auto& [name, us] : per_req.items()) cpu += (cpu.empty() ? "" : ", ") + name + " " + fmt(us.get<double>(), 1);
        char buf[512];
        std::snprintf(buf, sizeof buf, "  %-42s %9ld  %-6s %-9s %s\n", p.label.c_str(), std::lround(rps[p.key]),
                      fmt(ratio(rps[p.key], rps["raw"]), 3).c_str(), fmt(ratio(rps[p.key], rps["raw_broker"]), 3).c_str(),
                      cpu.c_str());
        t << buf;
      }
      t << "  show errors: " << errors_text(show_errors) << "; ping errors: " << errors_text(ping_errors) << "\n\n";

      t << "3. Recovery after SIGKILL of the plugin, " << o.kills << " kills, restart.stable_after_ms "
        << kStableAfterMs << " (ms)\n";
      std::snprintf(hdr, sizeof hdr, "  %-42s %9s %9s %9s  %s\n", "", "p50", "p99", "mean", "max");
      t << hdr;
      row("kill -> first successful show", rs, fmt(rs.max));
      row("  of which spawn -> ready (plugin.started)", su, fmt(su.max));
      t << "  target p50 < 50 ms: " << (rs.p50 < 50 ? "met" : "MISSED") << "; attempts per recovery p50 "
        << fmt(ra.p50, 0) << " max " << fmt(ra.max, 0) << " (one per " << kRecoveryPoll.count()
        << " ms, each with a " << kRecoveryAttemptTimeout.count() << " ms timeout; " << rec.attempt_timeouts
        << " timed out)\n";
      t << "  errors while restarting: " << errors_text(rec.errors) << "; restarts reported by the daemon: "
        << plugin_restarts << "\n";
      for (const auto& [code, msg] : rec.error_samples) t << "    e.g. " << code << ": " << msg << "\n";
      t << "\n";
      std::cout << t.str();
    }
    std::cout << j.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    print_failure("modelzoo-bench", e.what());
    // Keep the daemon's log: the temp dir goes away with us.
    if (daemon_log_wanted && !interrupted() && fs::exists(daemon.log)) keep_daemon_log("modelzoo-bench", daemon.log);
    throw Reported{};
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (auto rc = parse_options(argc, argv, "modelzoo-bench", kBinDirOption, usage, o)) return *rc;
  if (o.quick) {
    o.n = 2000;
    o.throughput_s = 1.0;
    o.kills = 5;
  }
  return run_bench("modelzoo-bench", o.json_only, [&] { return run(o); });
}
