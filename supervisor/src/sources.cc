#include "sources.h"

#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/bus/random.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/bus/socket.h"
#include "modelzoo/core/plugin_manager.h"
#include "modelzoo/core/resolver.h"
#include "modelzoo/process/child_process.h"
#include "remote_access.h"
#include "resource_limits.h"
#include "restart_policy.h"
#include "sandbox.h"

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bus::Error;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

constexpr int kMaxInvalidMessages = 100;              // from one plugin before it is killed

std::int64_t ms_between(Clock::time_point a, Clock::time_point b) { return duration_cast<milliseconds>(b - a).count(); }

// The level word an SDK puts first on a stderr line ("warn something") picks the log level.
spdlog::level::level_enum level_of(std::string& line) {
  static const std::pair<const char*, spdlog::level::level_enum> levels[] = {
      {"debug ", spdlog::level::debug}, {"info ", spdlog::level::info}, {"warn ", spdlog::level::warn},
      {"error ", spdlog::level::err}};
  for (const auto& [word, lvl] : levels)
    if (line.rfind(word, 0) == 0) {
      line.erase(0, std::strlen(word));
      return lvl;
    }
  return spdlog::level::warn;
}

// "49,999": counts in log lines are read by people.
std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// Warnings anyone who can connect can cause at will (messages from a connection that never
// said hello): one line per message let a flood of 50,000 heartbeats write 50,000 lines. Per
// kind, the first is logged, then at most one line per window counts the rest ("… and
// 49,999 more in 10 s"). A kind quiet for a whole window is forgotten: its next one is
// logged at once again. The kinds are a small fixed set, never a peer's bytes, so the map
// stays small whatever the peers send.
class LimitedWarnings {
 public:
  static constexpr std::chrono::seconds kWindow{10};

  void warn(const std::string& kind, const std::string& line, Clock::time_point now = Clock::now()) {
    auto it = kinds_.find(kind);
    if (it != kinds_.end() && !flush(it->second, now)) {
      kinds_.erase(it);
      it = kinds_.end();
    }
    if (it != kinds_.end()) {
      ++it->second.suppressed;
      return;
    }
    spdlog::warn("{}", line);
    kinds_[kind] = {line, now + kWindow, 0};
  }
  // Writes the count of every window that has ended; called by the loop's timer round, so a
  // burst's count is written even when nothing follows it.
  void flush_due(Clock::time_point now = Clock::now()) {
    for (auto it = kinds_.begin(); it != kinds_.end();)
      it = flush(it->second, now) ? std::next(it) : kinds_.erase(it);
  }

 private:
  struct Kind {
    std::string first;  // the line logged first, which the counts refer to
    Clock::time_point window_end;
    std::uint64_t suppressed = 0;
  };
  // False when the kind's window ended with nothing suppressed: forget it.
  static bool flush(Kind& k, Clock::time_point now) {
    if (now < k.window_end) return true;
    if (k.suppressed == 0) return false;
    spdlog::warn("{} … and {} more in {} s", k.first, with_commas(k.suppressed), kWindow.count());
    k.suppressed = 0;
    k.window_end = now + kWindow;
    return true;
  }
  std::map<std::string, Kind> kinds_;
};

// `waiting`: a remote source (docs/security.md) whose peer is not connected.
enum class State { starting, ready, backoff, stopping, stopped, failed, waiting };
const char* to_string(State s) {
  switch (s) {
    case State::starting: return "starting";
    case State::ready: return "ready";
    case State::backoff: return "backoff";
    case State::stopping: return "stopping";
    case State::stopped: return "stopped";
    case State::failed: return "failed";
    case State::waiting: return "waiting";
  }
  return "?";
}

// One configured source and the process currently running it.
struct Instance {
  Source source;
  State state = State::stopped;
  RestartTracker tracker;
  std::unique_ptr<ChildProcess> process;
  std::string plugin_id;  // "<name>.<spawn count>", changes with every spawn
  std::string token;      // per spawn secret, proven in the hello
  std::string routing_id; // the plugin's DEALER, known after hello
  int spawns = 0;
  int restarts = 0;
  int invalid_messages = 0;
  bool stop_requested = false;
  bool retiring = false;  // removed or changed by a configuration reload: stopping for good
  Clock::time_point spawned_at, ready_at, last_heard, next_start;
  std::string last_exit, last_error;
  std::string last_limit;   // the resource limit that ended the last run, if known (resource_limits.h)
  std::string run_error;    // the last error line of the current run
  std::string sandbox_status = "off";  // of the current or last run: "landlock (ABI 7)", "off", "unsupported: ..."
  json hello;  // what the plugin said about itself

  explicit Instance(Source s) : source(std::move(s)), tracker(source.restart) {}
};

}  // namespace

struct Sources::Impl {
  DaemonConfig& cfg;
  zmq::socket_t& plugin_sock;
  PluginCalls& calls;
  Timers& timers;
  core::EventSink& events;
  RemoteAccess* remote = nullptr;
  bool stop = false;  // the daemon is stopping: no exit is restarted
  Clock::time_point next_heartbeat = Clock::now();

  std::vector<std::unique_ptr<Instance>> instances;  // in start order
  std::map<std::string, Instance*> by_routing;
  core::PluginManager manager;
  int inotify_fd = -1;            // watches the configuration file's directory
  std::string config_digest;      // sha256 of the configuration last applied
  bool reload_scheduled = false;
  int reloads = 0;
  LimitedWarnings unidentified_warnings;  // from connections that never said hello

  Impl(DaemonConfig& c, zmq::socket_t& s, PluginCalls& p, Timers& t, core::EventSink& e)
      : cfg(c), plugin_sock(s), calls(p), timers(t), events(e) {}
  ~Impl() {
    if (inotify_fd >= 0) ::close(inotify_fd);
  }

  void publish(const std::string& topic, json body) { events.publish(topic, std::move(body)); }

  // The keys remote plugins are admitted with: each remote source's `remote_key`.
  void update_remote_keys() {
    if (!remote) return;
    std::map<std::string, std::string> keys;
    for (const auto& s : cfg.sources)
      if (!s.remote_key.empty()) keys[s.remote_key] = s.name;
    remote->set_plugin_keys(std::move(keys));
  }

  // ---------------------------------------------------------------- plugin lifecycle
  // The current instance of source `name` (not one retiring after a reload).
  Instance* find_instance(const std::string& name) {
    for (auto& i : instances)
      if (i->source.name == name && !i->retiring) return i.get();
    return nullptr;
  }

  void spawn(Instance& in) {
    if (!in.source.remote_key.empty()) {  // runs on another host: wait for it to connect
      in.plugin_id = in.source.name;
      in.state = State::waiting;
      return;
    }
    in.spawns++;
    in.plugin_id = in.source.name + "." + std::to_string(in.spawns);
    in.token = bus::random_hex(32);
    in.routing_id.clear();
    in.invalid_messages = 0;
    in.stop_requested = false;
    SpawnSpec spec;
    spec.argv = in.source.manifest.command;
    spec.cwd = in.source.manifest.dir.string();
    spec.env = {{"MODELZOO_ENDPOINT", "ipc://" + (cfg.runtime_dir / "plugins.sock").string()},
                {"MODELZOO_PLUGIN_ID", in.plugin_id},
                {"MODELZOO_TOKEN", in.token},
                {"MODELZOO_PROTOCOL_VERSIONS", std::to_string(bus::kProtocolVersion)},
                {"MODELZOO_INSTANCE", in.source.name}};
    in.spawned_at = in.last_heard = Clock::now();
    try {
      auto sandbox = isolate(in, spec);  // lives until the child has forked
      in.process = std::make_unique<ChildProcess>(spec);
      in.state = State::starting;
      spdlog::info("[{}] started pid {} ({})", in.source.name, in.process->pid(), spec.argv[0]);
    } catch (const std::exception& e) {
      spdlog::error("[{}] cannot start: {}", in.source.name, e.what());
      in.last_error = e.what();
      in.last_exit = "not started";
      after_run(in, false, false);
    }
  }

  // The resource limits, data directory and Landlock sandbox of the next run (docs/security.md).
  // Returns the ruleset the child enforces (null: no sandbox). Throws when the plugin must
  // not start: a limit the daemon cannot grant, or `sandbox: require` without Landlock.
  std::unique_ptr<LandlockRuleset> isolate(Instance& in, SpawnSpec& spec) {
    in.run_error.clear();
    in.sandbox_status = "off";
    spec.rlimits = rlimits_for(in.source.limits);
    // Its own directory for state, the only one it may write under the sandbox.
    fs::path data = cfg.data_dir / "plugin-data" / in.source.name;
    std::error_code ec;
    fs::create_directories(data / "tmp", ec);
    if (!ec) fs::permissions(data, fs::perms::owner_all, fs::perm_options::replace, ec);
    if (ec) {
      spdlog::warn("[{}] cannot create its data directory {}: {}", in.source.name, data.string(), ec.message());
      data.clear();
    } else {
      spec.env["MODELZOO_PLUGIN_DATA_DIR"] = data.string();
    }
    if (in.source.sandbox == SandboxMode::off) return nullptr;
    LandlockSupport support = landlock_support();
    if (support.abi < 1) {
      in.sandbox_status = "unsupported: " + support.reason;
      if (in.source.sandbox == SandboxMode::require)
        throw std::runtime_error("the sandbox is required (sandbox: require) but unavailable: " + support.reason);
      spdlog::warn("[{}] runs without its sandbox: {}", in.source.name, support.reason);
      return nullptr;
    }
    auto ruleset = std::make_unique<LandlockRuleset>(sandbox_paths(in.source, cfg, data), support.abi);
    for (const auto& p : ruleset->skipped()) spdlog::debug("[{}] sandbox: {} does not exist; not granted", in.source.name, p);
    spec.landlock_ruleset = ruleset->fd();
    if (!data.empty()) spec.env["TMPDIR"] = (data / "tmp").string();  // /tmp is out of reach
    in.sandbox_status = "landlock (ABI " + std::to_string(support.abi) + ")";
    return ruleset;
  }

  json restarted_event(const Instance& in, const char* reason) {
    return {{"plugin", in.source.name},
            {"restarts", in.restarts},
            {"failures", in.tracker.consecutive_failures()},
            {"reason", reason}};
  }

  // Decides what follows a run that ended (or a spawn that failed).
  void after_run(Instance& in, bool reached_ready, bool clean_exit) {
    if (in.retiring) {  // removed by a reload: never restarted; collected by the loop
      in.state = State::stopped;
      return;
    }
    RunOutcome o;
    o.reached_ready = reached_ready;
    o.ran_for = duration_cast<milliseconds>(Clock::now() - in.spawned_at);
    o.clean_exit = clean_exit;
    o.requested = in.stop_requested || stop;
    auto d = in.tracker.on_exit(o);
    switch (d.action) {
      case RestartDecision::Action::restart_now:
        in.restarts++;
        publish(core::topic::kPluginRestarted, restarted_event(in, "stable run ended"));
        spawn(in);
        break;
      case RestartDecision::Action::restart_later:
        in.state = State::backoff;
        in.next_start = Clock::now() + d.delay;
        spdlog::warn("[{}] failed {} time(s) in a row; restarting in {} ms", in.source.name,
                     in.tracker.consecutive_failures(), d.delay.count());
        break;
      case RestartDecision::Action::stay_stopped:
        in.state = State::stopped;
        break;
      case RestartDecision::Action::fail:
        in.state = State::failed;
        spdlog::error("[{}] failed {} times in a row; giving up until `modelzoo plugins reset {}` (last: {} {})",
                      in.source.name, in.tracker.consecutive_failures(), in.source.name, in.last_exit, in.last_error);
        publish(core::topic::kPluginFailed, {{"plugin", in.source.name},
                                             {"failures", in.tracker.consecutive_failures()},
                                             {"last_exit", in.last_exit},
                                             {"last_error", in.last_error}});
        break;
    }
  }

  void on_process_exit(Instance& in) {
    auto status = in.process->try_reap();
    if (!status) return;
    // Drain what the plugin wrote last: it explains the exit.
    for (int fd : {in.process->stdout_fd(), in.process->stderr_fd()})
      if (fd >= 0) forward_output(in, fd);
    bool was_ready = in.state == State::ready || (in.state == State::stopping && !in.routing_id.empty());
    in.last_exit = describe_wait_status(*status);
    in.last_limit = limit_exceeded(*status, in.source.limits, in.process->cpu_seconds(), in.run_error);
    if (!in.last_limit.empty()) spdlog::warn("[{}] pid {}: {}", in.source.name, in.process->pid(), in.last_limit);
    auto uptime = ms_between(in.spawned_at, Clock::now());
    spdlog::log(in.stop_requested || stop ? spdlog::level::info : spdlog::level::warn, "[{}] pid {} ended: {} after {} ms",
                in.source.name, in.process->pid(), in.last_exit, uptime);
    publish(core::topic::kPluginExited, {{"plugin", in.source.name},
                                         {"pid", in.process->pid()},
                                         {"status", in.last_exit},
                                         {"limit", in.last_limit},
                                         {"uptime_ms", uptime},
                                         {"requested", in.stop_requested || stop}});
    unregister(in, "plugin '" + in.source.name + "' exited (" + in.last_exit + ")");
    bool clean = WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
    in.process.reset();
    after_run(in, was_ready, clean);
  }

  // Removes the plugin from routing and fails its outstanding calls.
  void unregister(Instance& in, const std::string& why) {
    if (!in.routing_id.empty()) by_routing.erase(in.routing_id);
    in.routing_id.clear();
    // A retiring instance left the manager and failed its calls when it retired; its name
    // may belong to its successor by now.
    if (in.retiring) return;
    manager.remove(in.source.name);
    calls.fail_all(in.source.name, Error(ErrorCode::unavailable, why));
  }

  // Asks the instance's connected plugin to leave (docs/protocol.md, "Shutdown"). No-op when
  // no plugin is connected for it.
  void say_goodbye(const Instance& in, const std::string& reason) {
    if (in.routing_id.empty()) return;
    Message bye = Message::make(MessageType::goodbye, {{"reason", reason}});
    bus::send_to(plugin_sock, in.routing_id, bye);
  }

  // Drops the connection of a remote source's peer (it cannot be killed): the peer is told
  // goodbye, its calls fail over, and the source waits for the peer to connect again.
  void drop_remote(Instance& in, const std::string& why) {
    if (in.routing_id.empty()) return;
    spdlog::warn("[{}] remote peer dropped: {}", in.source.name, why);
    say_goodbye(in, why);
    unregister(in, "remote plugin '" + in.source.name + "' " + why);
    in.last_exit = "disconnected: " + why;
    in.state = State::waiting;
    publish(core::topic::kPluginExited, {{"plugin", in.source.name},
                                         {"pid", bus::get_int(in.hello, "pid").value_or(0)},
                                         {"status", in.last_exit},
                                         {"uptime_ms", ms_between(in.ready_at, Clock::now())},
                                         {"requested", false},
                                         {"remote", true}});
  }

  void kill_instance(Instance& in, const std::string& why) {
    if (!in.source.remote_key.empty()) return drop_remote(in, why);
    if (!in.process) return;
    spdlog::warn("[{}] {}: killing pid {}", in.source.name, why, in.process->pid());
    in.last_error = why;
    in.process->signal_group(SIGKILL);
    // The exit arrives through the pidfd; stop routing to it now.
    unregister(in, "plugin '" + in.source.name + "' " + why);
  }

  void forward_output(Instance& in, int fd) {
    bool is_err = fd == in.process->stderr_fd();
    for (auto& line : in.process->read_lines(fd)) {
      if (line.empty()) continue;
      auto lvl = is_err ? level_of(line) : spdlog::level::info;
      spdlog::log(lvl, "[{}] {}", in.source.name, line);
      if (is_err && lvl >= spdlog::level::warn) in.last_error = in.run_error = line.substr(0, 500);
    }
  }

  // ---------------------------------------------------------------- plugin messages
  void reject(const std::string& routing, ErrorCode code, const std::string& why, const json& hello) {
    auto pid = bus::get_int(hello, "pid").value_or(0);
    std::string name = bus::get_string(hello, "name", "?").substr(0, 64);
    spdlog::warn("refused a plugin connection: {} (pid {}, name '{}')", why, pid, name);
    publish(core::topic::kPluginRejected, {{"reason", why}, {"pid", pid}, {"name", name}});
    Message m = Message::make(MessageType::reject);
    m.error_code = code;
    m.error_message = why;
    bus::send_to(plugin_sock, routing, m);
  }

  // `user_id` is the ZAP User-Id of a peer admitted over TCP with a CURVE key (empty for
  // ipc peers): the key, not a token, is what a remote plugin proves.
  void on_hello(const std::string& routing, Message& m, const std::string& user_id) {
    const json& h = m.body;
    // Types first (docs/protocol.md, "hello"): a mistyped field is named, not read as absent
    // or empty, so a plugin author learns which field is wrong.
    if (auto why = bus::hello_type_error(h)) return reject(routing, ErrorCode::bad_request, *why, h);
    std::string id = bus::get_string(h, "plugin_id");
    Instance* in = nullptr;
    if (!user_id.empty()) {
      std::string source = RemoteAccess::source_of_user(user_id);
      in = find_instance(source);
      if (!in || in->source.remote_key.empty())
        return reject(routing, ErrorCode::unauthorized, "key admitted for '" + source + "', which is no longer a remote source", h);
      if (!id.empty() && id != source)
        return reject(routing, ErrorCode::unauthorized,
                      "plugin id '" + id.substr(0, 80) + "' claimed over TCP with the key of source '" + source + "'", h);
      // The same key again: the peer reconnected (restarted, or its network came back).
      if (!in->routing_id.empty()) drop_remote(*in, "replaced by a new connection with its key");
    } else {
      for (auto& i : instances)
        if (i->process && i->plugin_id == id) in = i.get();
      if (!in) return reject(routing, ErrorCode::unauthorized, "unknown plugin id '" + id.substr(0, 80) + "'", h);
      // Constant-time comparison of the per-spawn token.
      std::string token = bus::get_string(h, "token");
      unsigned diff = token.size() ^ in->token.size();
      for (std::size_t i = 0; i < std::min(token.size(), in->token.size()); ++i) diff |= token[i] ^ in->token[i];
      if (diff != 0) return reject(routing, ErrorCode::unauthorized, "wrong token for plugin id '" + id + "'", h);
      if (in->retiring)
        return reject(routing, ErrorCode::unauthorized, "plugin id '" + id + "' belongs to a source being removed", h);
      if (in->state != State::starting || !in->routing_id.empty())
        return reject(routing, ErrorCode::unauthorized, "plugin id '" + id + "' has already said hello", h);
    }
    // The rest of the rules (docs/protocol.md, "Checks, in order") live in bus/hello.h.
    bus::Hello hello;
    if (auto why = bus::parse_hello(h, hello, hello_rules(*in))) return reject(routing, ErrorCode::bad_request, *why, h);

    core::PluginRecord rec;
    rec.name = in->source.name;
    rec.plugin = hello.name;
    rec.version = hello.version;
    rec.kind = hello.kind;
    rec.priority = in->source.priority ? *in->source.priority : hello.priority;
    rec.handles = in->source.handles ? *in->source.handles : hello.handles;
    rec.capabilities = hello.capabilities;
    in->hello = h;
    in->hello.erase("token");
    in->routing_id = routing;
    by_routing[routing] = in;
    in->state = State::ready;
    in->ready_at = in->last_heard = Clock::now();
    manager.add(rec);
    Message w = Message::make(MessageType::welcome, {{"protocol", bus::kProtocolVersion},
                                                     {"plugin_id", in->plugin_id},
                                                     {"heartbeat_ms", cfg.heartbeat_interval.count()},
                                                     {"heartbeat_liveness", cfg.heartbeat_liveness},
                                                     {"config", in->source.config}});
    bus::send_to(plugin_sock, routing, w);
    std::int64_t pid = in->process ? in->process->pid() : bus::get_int(h, "pid").value_or(0);
    if (!user_id.empty()) in->spawned_at = in->ready_at;
    spdlog::info("[{}] ready: {} {} ({}pid {}, priority {}, {} ms after spawn)", in->source.name, rec.plugin, rec.version,
                 user_id.empty() ? "" : "remote over TCP, ", pid, rec.priority, ms_between(in->spawned_at, in->ready_at));
    publish(core::topic::kPluginStarted, {{"plugin", in->source.name},
                                          {"pid", pid},
                                          {"remote", !user_id.empty()},
                                          {"version", rec.version},
                                          {"priority", rec.priority},
                                          {"restarts", in->restarts},
                                          {"startup_ms", ms_between(in->spawned_at, in->ready_at)}});
  }

  void read_plugin_socket() {
    for (int i = 0; i < 512; ++i) {
      std::string peer;
      std::optional<bus::Received> r;
      try {
        r = bus::receive(plugin_sock, true, &peer, bus::BodyForm::raw);  // see on_plugin_message
      } catch (const bus::ProtocolError& e) {
        auto it = by_routing.find(peer);
        if (it == by_routing.end()) {
          unidentified_warnings.warn("invalid", std::string("invalid message from an unidentified peer on the plugin socket: ") + e.what());
          continue;
        }
        Instance& in = *it->second;
        in.last_heard = Clock::now();
        spdlog::warn("[{}] sent an invalid message: {}", in.source.name, e.what());
        if (++in.invalid_messages >= kMaxInvalidMessages) kill_instance(in, "sent too many invalid messages");
        continue;
      }
      if (!r) return;
      // A message whose fields have unexpected types must never take the daemon down:
      // whatever a handler throws is logged as an invalid message from that peer.
      try {
        auto it = by_routing.find(r->routing_id);
        if (it == by_routing.end()) {
          if (r->message.type == MessageType::hello) {
            bus::materialize_body(r->message);
            on_hello(r->routing_id, r->message, r->user_id);
          } else {
            std::string type(bus::to_string(r->message.type));
            unidentified_warnings.warn(type, type + " message from a peer that has not said hello; dropped");
          }
          continue;
        }
        Instance& in = *it->second;
        in.last_heard = Clock::now();
        on_plugin_message(in, r->message);
      } catch (const std::exception& e) {
        spdlog::warn("invalid {} message on the plugin socket: {}", bus::to_string(r->message.type), e.what());
      }
    }
  }

  void on_plugin_message(Instance& in, Message& m) {
    // Bodies arrive as checked msgpack bytes. Only the reply to a call_raw() keeps them
    // (resolve() reads the metadata straight from them); every other message gets its JSON.
    if (m.type != MessageType::reply || !calls.wants_raw(m.id)) bus::materialize_body(m);
    switch (m.type) {
      case MessageType::heartbeat: return;
      case MessageType::reply:
      case MessageType::error:
      case MessageType::chunk:
        calls.on_answer(in.source.name, m);
        return;
      case MessageType::goodbye:
        if (auto why = bus::field_type_error(m.body, "reason", bus::FieldType::string)) {
          spdlog::warn("[{}] sent an invalid goodbye: {}", in.source.name, *why);
          if (++in.invalid_messages >= kMaxInvalidMessages) kill_instance(in, "sent too many invalid messages");
        }
        spdlog::info("[{}] is leaving: {}", in.source.name, bus::get_string(m.body, "reason").substr(0, 500));
        if (!in.source.remote_key.empty()) drop_remote(in, "said goodbye");  // no process exit will follow
        return;
      case MessageType::request: {
        Message e = Message::make_error(m.id, ErrorCode::bad_request, "the daemon serves no requests to plugins");
        bus::send_to(plugin_sock, in.routing_id, e);
        return;
      }
      default:
        spdlog::warn("[{}] sent an unexpected {} message", in.source.name, bus::to_string(m.type));
        if (++in.invalid_messages >= kMaxInvalidMessages) kill_instance(in, "sent too many invalid messages");
        return;
    }
  }

  // What the daemon knows of a source beyond its hello: the kind it is configured as, and
  // whether its configuration sets the handles (then the hello's are not used).
  static bus::HelloRules hello_rules(const Instance& in) {
    return {in.source.manifest.kind, !in.source.handles.has_value()};
  }

  // ---------------------------------------------------------------- extensions
  std::vector<ExtensionView> extensions() {
    std::vector<ExtensionView> out;
    for (const auto& in : instances) {
      if (in->source.manifest.kind != "extension" || in->retiring) continue;
      const ExtensionSettings& set = in->source.extension;
      ExtensionView x;
      x.name = in->source.name;
      x.ready = in->state == State::ready;
      x.state = to_string(in->state);
      if (!in->last_exit.empty()) x.state += ", last exit: " + in->last_exit;
      x.timeout = set.hook_timeout;
      // The configuration first, then what the extension said in its last hello. One that
      // never said hello serves every point as far as we know: its steps fail until it runs.
      bus::Hello hello;
      (void)bus::parse_hello(in->hello, hello, hello_rules(*in));  // accepted before, or null: the defaults
      x.points = set.points ? *set.points : hello.points;
      x.formats = set.formats ? *set.formats : hello.formats;  // both lowercase
      x.handles = in->source.handles ? *in->source.handles : hello.handles;
      if (x.handles.empty()) x.handles.push_back("*");
      x.order = set.order ? *set.order : hello.order;
      out.push_back(std::move(x));
    }
    return out;
  }

  void restart_plugin(const std::string& name, const std::string& why) {
    if (Instance* in = find_instance(name)) kill_instance(*in, why);
  }

  json plugin_status(const Instance& in) {
    const core::PluginRecord* rec = manager.get(in.source.name);
    bool running = in.process && !in.process->reaped();
    json extension = json::object();
    if (in.source.manifest.kind == "extension")
      for (const auto& x : extensions())
        if (x.name == in.source.name)
          extension = {{"points", x.points}, {"formats", x.formats}, {"order", x.order},
                       {"hook_timeout_ms", x.timeout.count()}};
    json status = {{"name", in.source.name},
            {"plugin", rec ? rec->plugin : in.source.manifest.name},
            {"kind", in.source.manifest.kind},
            {"version", rec ? rec->version : in.source.manifest.version},
            {"state", to_string(in.state)},
            {"pid", running ? in.process->pid() : 0},
            {"restarts", in.restarts},
            {"failures", in.tracker.consecutive_failures()},
            {"uptime_ms", in.state == State::ready ? ms_between(in.ready_at, Clock::now()) : 0},
            // A spawn that has not said hello yet (slow, or stopped before its hello): how
            // long it has been at it, against its hello timeout.
            {"starting_for_ms", in.state == State::starting && running ? ms_between(in.spawned_at, Clock::now()) : 0},
            {"hello_timeout_ms", in.source.restart.hello_timeout.count()},
            {"priority", rec ? rec->priority : in.source.priority.value_or(0)},
            {"handles", rec ? rec->handles : in.source.handles.value_or(std::vector<std::string>{"*"})},
            {"last_exit", in.last_exit},
            {"last_error", in.last_error},
            {"remote", !in.source.remote_key.empty()}};
    if (!in.source.remote_key.empty()) {
      status["remote_key"] = in.source.remote_key;
      if (in.state == State::ready) status["pid"] = bus::get_int(in.hello, "pid").value_or(0);
    }
    status["last_limit"] = in.last_limit;  // docs/security.md
    status["limits"] = limits_to_json(in.source.limits);
    status["sandbox"] = in.sandbox_status;
    status.update(extension);
    return status;
  }

  // core::resolve over the ready plugins, plus an `unavailable` answer for every source
  // that would handle the name but is not running (starting, in back-off, failed): "no such
  // model" must not be said while a source that may have it is down.
  // The sources down are taken when the resolution starts: one that comes back while the
  // others answer was never asked, and must still count (tests/chaos saw "not found" then).
  // "Down" is "not in the manager": a killed plugin leaves it before its exit is reaped.
  void resolve(const bus::ModelRef& ref, std::uint32_t timeout, std::function<void(core::Resolution)> done) {
    std::vector<core::SourceAnswer> down_sources;
    {
      const auto& res_ref = ref;
      for (const auto& in : instances) {
        if (manager.get(in->source.name) || in->source.manifest.kind != "registry" || in->retiring) continue;
        // The patterns it declared in its last hello, or the configured ones.
        std::vector<std::string> handles = in->source.handles.value_or(std::vector<std::string>{});
        if (handles.empty()) {
          if (auto h = in->hello.find("handles"); h != in->hello.end() && h->is_array())
            for (const auto& p : *h)
              if (p.is_string()) handles.push_back(p.get<std::string>());
        }
        if (handles.empty()) handles.push_back("*");  // unknown until it says hello: assume it may
        if (std::none_of(handles.begin(), handles.end(), [&](const auto& p) { return bus::glob_match(p, res_ref.name); }))
          continue;
        core::SourceAnswer down;
        down.plugin.name = in->source.name;
        down.plugin.plugin = in->source.manifest.name;
        down.plugin.priority = in->source.priority.value_or(0);
        down.error = Error(ErrorCode::unavailable, std::string("not running (") + to_string(in->state) +
                                                       (in->last_exit.empty() ? "" : ", last exit: " + in->last_exit) + ")");
        down_sources.push_back(std::move(down));
      }
    }
    core::resolve(manager, calls, ref, timeout,
                  [done = std::move(done), down_sources = std::move(down_sources)](core::Resolution res) {
                    for (const auto& d : down_sources) res.sources.push_back(d);
                    done(std::move(res));
                  });
  }

  // ---------------------------------------------------------------- configuration reload
  // The file is watched (inotify on its directory, so editors that write a new file and
  // rename it, and symlink swaps, are seen) and re-read on SIGHUP. A file that does not load
  // is rejected with its reason and the running configuration stays. Otherwise only the
  // sources that were added, removed or changed are started or stopped; the others, and
  // every transfer they serve, carry on untouched.
  static std::string digest_of(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return in ? bus::Sha256::of(ss.str()) : std::string();
  }

  void setup_config_watch() {
    if (cfg.config_file.empty()) return;
    config_digest = digest_of(cfg.config_file);
    inotify_fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (inotify_fd < 0 || ::inotify_add_watch(inotify_fd, cfg.config_file.parent_path().c_str(),
                                              IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB) < 0) {
      spdlog::warn("cannot watch {} for changes ({}); reload with SIGHUP", cfg.config_file.string(), std::strerror(errno));
      if (inotify_fd >= 0) ::close(inotify_fd);
      inotify_fd = -1;
    }
  }

  void on_config_dir_event() {
    alignas(inotify_event) char buf[4096];
    while (::read(inotify_fd, buf, sizeof buf) > 0) {
    }
    if (reload_scheduled) return;
    reload_scheduled = true;  // let a burst of writes settle
    timers.at(Clock::now() + milliseconds(100), [this] {
      reload_scheduled = false;
      reload("the file changed", false);
    });
  }

  // A fingerprint of everything that makes a source run the way it does.
  static json fingerprint(const Source& s) {
    const auto& r = s.restart;
    return {{"command", s.manifest.command},
            {"dir", s.manifest.dir.string()},
            {"kind", s.manifest.kind},
            {"config", s.config},
            {"priority", s.priority ? json(*s.priority) : json()},
            {"handles", s.handles ? json(*s.handles) : json()},
            {"restart", {static_cast<int>(r.mode), r.backoff_initial.count(), r.backoff_max.count(),
                         r.stable_after.count(), r.max_failures, r.hello_timeout.count()}},
            {"order", s.extension.order ? json(*s.extension.order) : json()},
            {"points", s.extension.points ? json(*s.extension.points) : json()},
            {"formats", s.extension.formats ? json(*s.extension.formats) : json()},
            {"hook_timeout", s.extension.hook_timeout.count()},
            {"isolation", [&] {
               json a = {limits_to_json(s.limits), static_cast<int>(s.sandbox)};
               for (const auto& p : s.sandbox_read) a.push_back("r:" + p.string());
               for (const auto& p : s.sandbox_write) a.push_back("w:" + p.string());
               return a;
             }()},
            {"remote_key", s.remote_key},
            {"local_read", [&] {
               json a = json::array();
               for (const auto& p : s.local_read) a.push_back(p.string());
               return a;
             }()}};
  }

  // Stops `in` for good, asynchronously: goodbye, then SIGTERM and SIGKILL on timers. Its
  // outstanding calls fail now (transfers fail over to the next source).
  void retire(Instance& in, const std::string& why) {
    in.retiring = true;
    in.stop_requested = true;
    manager.remove(in.source.name);
    calls.fail_all(in.source.name, Error(ErrorCode::unavailable, "source '" + in.source.name + "' " + why));
    say_goodbye(in, "source " + why);
    if (!in.source.remote_key.empty() && !in.routing_id.empty()) {  // a remote peer: only told
      by_routing.erase(in.routing_id);
      in.routing_id.clear();
    }
    if (!in.process) {
      in.state = State::stopped;
      return;
    }
    in.state = State::stopping;
    std::string pid_of_spawn = in.plugin_id;
    auto escalate = [this, pid_of_spawn](int sig) {
      for (auto& i : instances)
        if (i->retiring && i->plugin_id == pid_of_spawn && i->process && !i->process->reaped()) {
          spdlog::warn("[{}] still running after it was retired; {}", i->source.name, sig == SIGTERM ? "SIGTERM" : "SIGKILL");
          i->process->signal_group(sig);
        }
    };
    timers.at(Clock::now() + cfg.stop_timeout, [escalate] { escalate(SIGTERM); });
    timers.at(Clock::now() + 2 * cfg.stop_timeout, [escalate] { escalate(SIGKILL); });
  }

  // Forgets retired instances whose process has ended. Called between loop rounds only.
  void collect_retired() {
    instances.erase(std::remove_if(instances.begin(), instances.end(),
                                   [](const auto& i) { return i->retiring && !i->process; }),
                    instances.end());
  }

  void reload(const std::string& why, bool force) {
    if (cfg.config_file.empty()) {
      spdlog::info("{}: the daemon runs its embedded configuration; there is no file to reload", why);
      return;
    }
    std::string file = cfg.config_file.string();
    std::string digest = digest_of(cfg.config_file);
    if (!force && !digest.empty() && digest == config_digest) return;  // touched, not changed
    DaemonConfig next;
    try {
      next = load_config(cfg.config_file, cfg.exe_dir);
    } catch (const std::exception& e) {
      spdlog::error("configuration {} rejected ({}): {}; the running configuration stays", file, why, e.what());
      publish(core::topic::kConfigRejected, {{"file", file}, {"error", e.what()}});
      config_digest = digest;  // do not report the same broken file again until it changes
      return;
    }
    config_digest = digest;
    ++reloads;
    // Settings that cannot change under running plugins and sockets: kept, and said so.
    json restart_needed = json::array();
    auto keep = [&](const char* name, auto& now, auto& then) {
      if (now != then) {
        restart_needed.push_back(name);
        now = then;
      }
    };
    keep("runtime_dir", next.runtime_dir, cfg.runtime_dir);
    keep("cache_dir", next.cache_dir, cfg.cache_dir);
    keep("heartbeat_interval_ms", next.heartbeat_interval, cfg.heartbeat_interval);
    keep("heartbeat_liveness", next.heartbeat_liveness, cfg.heartbeat_liveness);
    for (const auto& w : next.warnings) spdlog::warn("{}", w);

    std::map<std::string, Instance*> current;
    for (auto& i : instances)
      if (!i->retiring) current[i->source.name] = i.get();
    json added = json::array(), changed = json::array(), removed = json::array();
    std::vector<std::unique_ptr<Instance>> order;
    std::set<std::string> wanted;
    for (const auto& s : next.sources) {
      wanted.insert(s.name);
      auto it = current.find(s.name);
      bool same = it != current.end() && fingerprint(it->second->source) == fingerprint(s);
      if (it != current.end() && !same) {
        changed.push_back(s.name);
        retire(*it->second, "changed in the configuration");
      } else if (it == current.end()) {
        added.push_back(s.name);
      }
      if (same) continue;
      order.push_back(std::make_unique<Instance>(s));
    }
    for (auto& [name, in] : current)
      if (!wanted.count(name)) {
        removed.push_back(name);
        retire(*in, "removed from the configuration");
      }
    // New instance order: the file's; unchanged instances keep their process.
    std::vector<std::unique_ptr<Instance>> rebuilt;
    std::vector<Instance*> to_spawn;
    for (const auto& s : next.sources) {
      auto it = std::find_if(instances.begin(), instances.end(),
                             [&](const auto& i) { return i && !i->retiring && i->source.name == s.name; });
      if (it != instances.end()) {
        rebuilt.push_back(std::move(*it));
        continue;
      }
      auto n = std::find_if(order.begin(), order.end(), [&](const auto& i) { return i && i->source.name == s.name; });
      to_spawn.push_back(n->get());
      rebuilt.push_back(std::move(*n));
    }
    for (auto& i : instances)
      if (i) rebuilt.push_back(std::move(i));  // the retiring ones, until they are gone
    instances = std::move(rebuilt);
    spdlog::set_level(spdlog::level::from_str(next.log_level));
    const ListenSettings &a = next.listen, &b = cfg.listen;
    if (a.plugins != b.plugins || a.clients != b.clients || a.events != b.events ||
        a.server_key_file != b.server_key_file || a.client_keys_file != b.client_keys_file) {
      restart_needed.push_back("listen");
      next.listen = cfg.listen;
    }
    cfg = std::move(next);
    update_remote_keys();
    for (auto* in : to_spawn) spawn(*in);
    spdlog::info("configuration {} reloaded ({}): {} added, {} changed, {} removed{}", file, why, added.size(),
                 changed.size(), removed.size(),
                 restart_needed.empty() ? "" : "; needs a restart to apply: " + restart_needed.dump());
    publish(core::topic::kConfigReloaded, {{"file", file},
                                           {"added", added},
                                           {"changed", changed},
                                           {"removed", removed},
                                           {"restart_needed", restart_needed}});
  }

  // Waits up to `budget_ms` for `in` to exit. Meanwhile the plugins still waiting their turn
  // to be stopped keep getting heartbeats: the stop of a slow one can last longer than their
  // liveness, and they would leave on their own with "daemon silent" (exit 4), an error in a
  // clean stop. Their output is forwarded too, so none blocks on a full pipe.
  std::optional<int> wait_heartbeating(Instance& in, int budget_ms) {
    auto deadline = Clock::now() + milliseconds(budget_ms);
    for (;;) {
      auto now = Clock::now();
      if (heartbeat_due(now))
        for (auto& other : instances)
          if (!other->stop_requested && other->state == State::ready) send_heartbeat(*other);
      for (auto& other : instances)
        if (other.get() != &in && other->process && !other->stop_requested)
          for (int fd : {other->process->stdout_fd(), other->process->stderr_fd()})
            if (fd >= 0) forward_output(*other, fd);
      auto slice = std::min(deadline, next_heartbeat) - now;
      auto st = in.process->wait_for(static_cast<int>(std::max<std::int64_t>(0, duration_cast<milliseconds>(slice).count())));
      if (st || Clock::now() >= deadline) return st;
    }
  }

  // Graceful stop, in reverse start order: ask over the bus, then SIGTERM, then SIGKILL.
  void stop_all() {
    for (auto& in : instances)
      if (!in->source.remote_key.empty()) say_goodbye(*in, "daemon stopping");
    for (auto it = instances.rbegin(); it != instances.rend(); ++it) {
      Instance& in = **it;
      if (!in.process) continue;
      in.stop_requested = true;
      in.state = State::stopping;
      int budget = static_cast<int>(cfg.stop_timeout.count());
      std::optional<int> st;
      if (!in.routing_id.empty()) {
        say_goodbye(in, "daemon stopping");
        st = wait_heartbeating(in, budget);
      }
      if (!st) {
        in.process->signal_group(SIGTERM);
        st = wait_heartbeating(in, budget);
      }
      if (!st) {
        spdlog::warn("[{}] did not stop within {} ms of SIGTERM; SIGKILL", in.source.name, budget);
        in.process->signal_group(SIGKILL);
        st = wait_heartbeating(in, 5000);
      }
      if (in.process->stderr_fd() >= 0) forward_output(in, in.process->stderr_fd());
      spdlog::info("[{}] stopped ({})", in.source.name, st ? describe_wait_status(*st) : "unknown");
      unregister(in, "daemon stopping");
      in.process.reset();
      in.state = State::stopped;
    }
  }


  // ---------------------------------------------------------------- the loop's share
  std::optional<Error> send(const std::string& source, Message& m) {
    Instance* in = find_instance(source);
    if (m.type == MessageType::request) {
      if (!in || in->state != State::ready) return Error(ErrorCode::unavailable, "plugin '" + source + "' is not running");
    } else if (!in || in->routing_id.empty()) {
      return Error(ErrorCode::unavailable, "plugin '" + source + "' is not connected");
    }
    if (!bus::send_to(plugin_sock, in->routing_id, m))
      return Error(ErrorCode::unavailable, "plugin '" + source + "' cannot be reached or its queue is full");
    return std::nullopt;
  }

  // True once per heartbeat interval (the next beat is then scheduled).
  bool heartbeat_due(Clock::time_point now) {
    if (now < next_heartbeat) return false;
    next_heartbeat = now + cfg.heartbeat_interval;
    return true;
  }
  void send_heartbeat(const Instance& in) {
    if (in.routing_id.empty()) return;
    Message hb = Message::make(MessageType::heartbeat);
    bus::send_to(plugin_sock, in.routing_id, hb);
  }

  void on_tick(Clock::time_point now) {
    unidentified_warnings.flush_due(now);
    if (heartbeat_due(now)) {
      for (auto& in : instances) {
        if (in->state != State::ready) continue;
        if (now - in->last_heard > cfg.heartbeat_interval * cfg.heartbeat_liveness) {
          kill_instance(*in, "missed " + std::to_string(cfg.heartbeat_liveness) + " heartbeats (hung)");
          continue;
        }
        send_heartbeat(*in);
      }
    }
    for (auto& in : instances) {
      if (in->state == State::starting && in->process && now - in->spawned_at > in->source.restart.hello_timeout)
        kill_instance(*in, "sent no hello within " + std::to_string(in->source.restart.hello_timeout.count()) + " ms");
      if (in->state == State::backoff && now >= in->next_start) {
        in->restarts++;
        publish(core::topic::kPluginRestarted, restarted_event(*in, "back-off elapsed"));
        spawn(*in);
      }
    }
  }

  Clock::time_point next_tick() const {
    auto next = next_heartbeat;
    for (const auto& in : instances)
      if (in->state == State::backoff) next = std::min(next, in->next_start);
    return next;
  }

  // (instance, its spawn, fd) for the process items add_process_items appended, from
  // `first_item` on. The spawn count tells a process that exited and was started again
  // earlier in this round: its numbers may belong to the new process or to any file by then
  // (reading, then closing, one of them closed a cache partial and libzmq's epoll
  // descriptor: found by tests/chaos).
  std::vector<std::tuple<Instance*, int, int>> polled;
  std::size_t first_item = 0;

  void add_process_items(std::vector<zmq::pollitem_t>& items) {
    polled.clear();
    first_item = items.size();
    for (auto& in : instances) {
      if (!in->process) continue;
      for (int fd : {in->process->pidfd(), in->process->stdout_fd(), in->process->stderr_fd()}) {
        if (fd < 0) continue;
        items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
        polled.emplace_back(in.get(), in->spawns, fd);
      }
    }
  }

  void on_process_events(const std::vector<zmq::pollitem_t>& items) {
    for (std::size_t i = 0; i < polled.size() && first_item + i < items.size(); ++i) {
      if (!(items[first_item + i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))) continue;
      auto [in, spawn_count, fd] = polled[i];
      if (!in->process || in->spawns != spawn_count) continue;  // exited earlier in this round
      if (fd == in->process->pidfd()) on_process_exit(*in);
      else if (fd == in->process->stdout_fd() || fd == in->process->stderr_fd()) forward_output(*in, fd);
    }
    polled.clear();
  }

  std::string reset(const std::string& name) {
    Instance* in = find_instance(name);
    if (!in) throw Error(ErrorCode::not_found, "no plugin named '" + name + "'");
    in->tracker.reset();
    if (in->state == State::failed || in->state == State::backoff || in->state == State::stopped) {
      spdlog::info("[{}] reset by a client; starting", name);
      in->restarts++;
      publish(core::topic::kPluginRestarted, restarted_event(*in, "reset"));
      spawn(*in);
    }
    return to_string(in->state);
  }

  Counts counts() const {
    Counts c;
    for (const auto& i : instances) {
      if (i->retiring) continue;
      ++c.total;
      c.ready += i->state == State::ready;
      c.failed += i->state == State::failed;
    }
    return c;
  }

  json plugins_view() {
    json list = json::array();
    for (auto& i : instances)
      if (!i->retiring) list.push_back(plugin_status(*i));
    return list;
  }

  std::vector<fs::path> local_read(const std::string& source) {
    Instance* in = find_instance(source);
    return in ? in->source.local_read : std::vector<fs::path>{};
  }

  void start() {
    for (auto& s : cfg.sources) instances.push_back(std::make_unique<Instance>(s));
    for (auto& in : instances) spawn(*in);
    setup_config_watch();
  }
};

Sources::Sources(DaemonConfig& cfg, zmq::socket_t& plugin_sock, PluginCalls& calls, Timers& timers,
                 core::EventSink& events)
    : impl_(std::make_unique<Impl>(cfg, plugin_sock, calls, timers, events)) {}
Sources::~Sources() = default;

void Sources::set_remote(RemoteAccess* remote) {
  impl_->remote = remote;
  impl_->update_remote_keys();
}
void Sources::start() { impl_->start(); }
std::optional<Error> Sources::send(const std::string& source, Message& m) { return impl_->send(source, m); }
void Sources::read_socket() { impl_->read_plugin_socket(); }
void Sources::add_process_items(std::vector<zmq::pollitem_t>& items) { impl_->add_process_items(items); }
void Sources::on_process_events(const std::vector<zmq::pollitem_t>& items) { impl_->on_process_events(items); }
void Sources::on_tick(Clock::time_point now) { impl_->on_tick(now); }
Sources::Clock::time_point Sources::next_tick() const { return impl_->next_tick(); }
void Sources::collect_retired() { impl_->collect_retired(); }
int Sources::config_watch_fd() const { return impl_->inotify_fd; }
void Sources::on_config_dir_event() { impl_->on_config_dir_event(); }
void Sources::reload(const std::string& why, bool force) { impl_->reload(why, force); }
int Sources::reloads() const { return impl_->reloads; }
void Sources::begin_stop() { impl_->stop = true; }
void Sources::stop_all() { impl_->stop_all(); }
Sources::Counts Sources::counts() const { return impl_->counts(); }
json Sources::plugins_view() { return impl_->plugins_view(); }
std::vector<core::PluginRecord> Sources::ready_plugins() const { return impl_->manager.list(); }
std::string Sources::reset(const std::string& name) { return impl_->reset(name); }
void Sources::resolve(const bus::ModelRef& ref, std::uint32_t timeout_ms, std::function<void(core::Resolution)> done) {
  impl_->resolve(ref, timeout_ms, std::move(done));
}
std::vector<fs::path> Sources::local_read(const std::string& source) { return impl_->local_read(source); }
std::vector<ExtensionView> Sources::extensions() { return impl_->extensions(); }
void Sources::restart_plugin(const std::string& name, const std::string& why) { impl_->restart_plugin(name, why); }

}  // namespace modelzoo::supervisor
