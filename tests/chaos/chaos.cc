// modelzoo-chaos: runs the real modelzood under load while killing its plugins, freezing
// them past the heartbeat deadline and, once, killing the daemon itself; then checks that
// nothing was lost or corrupted and prints figures (docs/reliability.md).
//
//   modelzoo-chaos [--seconds N] [--seed S] [--clients N] [--json] [--keep] [--bin-dir DIR]
//
// Exit status: 0 when every check passed, 1 when one failed (each failure is printed), 2 on
// a usage error.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "memory/models.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/client.h"
#include "modelzoo/core/cache_admin.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using modelzoo::Client;
using modelzoo::DaemonUnavailable;
namespace bus = modelzoo::bus;
namespace core = modelzoo::core;

// ------------------------------------------------------------------ settings
struct Options {
  int seconds = 45;
  std::uint64_t seed = 0;
  int clients = 4;
  bool json = false;
  bool keep = false;
  fs::path bin_dir = MODELZOO_BIN_DIR;
};

// Timers of the daemon under test: hung detection after 3 x 200 ms.
constexpr int kHeartbeatMs = 200;
constexpr int kLiveness = 3;
constexpr int kModels = 6;                            // chaos/m0 .. m5, served by every source
constexpr std::uint64_t kBigFile = 3u << 20;          // per model: 3 MiB + 1 MiB
constexpr std::uint64_t kSmallFile = 1u << 20;
constexpr std::uint64_t kThrottle = 24u << 20;        // bytes/s per download stream
// Deadlines the load generator gives the client library per call.
constexpr auto kMetaDeadline = 10s;
constexpr auto kPullDeadline = 60s;
// A call that returns this much later than its deadline counts as hung.
constexpr auto kOverrunGrace = 5s;

struct Source {
  std::string name;
  int priority;
};
const std::vector<Source> kMemorySources = {{"mem-a", 30}, {"mem-b", 20}, {"mem-c", 10}};
const Source kDiskSource = {"disk", 5};

std::string model_name(int i) { return "chaos/m" + std::to_string(i); }
const std::string kLocalOnly = "chaos/local-only";

// ------------------------------------------------------------------ small helpers
std::int64_t ms_since(Clock::time_point a, Clock::time_point b = Clock::now()) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The state letter of /proc/<pid>/stat ('R', 'S', 'T', 'Z'...), 0 when there is no such process.
char proc_state(pid_t pid) {
  std::string line = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() ? line[close + 2] : 0;
}

pid_t proc_ppid(pid_t pid) {
  std::string line = read_all("/proc/" + std::to_string(pid) + "/stat");
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  char state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::string proc_env(pid_t pid, const std::string& name) {
  std::string env = read_all("/proc/" + std::to_string(pid) + "/environ");
  std::string key = name + "=";
  for (std::size_t p = 0; p < env.size();) {
    auto end = env.find('\0', p);
    if (end == std::string::npos) end = env.size();
    if (env.compare(p, key.size(), key) == 0) return env.substr(p + key.size(), end - p - key.size());
    p = end + 1;
  }
  return {};
}

std::string proc_exe(pid_t pid) {
  std::error_code ec;
  auto t = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  return ec ? std::string() : t.string();
}

struct Percentiles {
  std::size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};
Percentiles percentiles(std::vector<double> v) {
  Percentiles p;
  p.n = v.size();
  if (v.empty()) return p;
  std::sort(v.begin(), v.end());
  auto at = [&](double q) { return v[std::min(v.size() - 1, static_cast<std::size_t>(q * (v.size() - 1) + 0.5))]; };
  p.p50 = at(0.5);
  p.p99 = at(0.99);
  p.max = v.back();
  return p;
}
json to_json(const Percentiles& p) { return {{"n", p.n}, {"p50", p.p50}, {"p99", p.p99}, {"max", p.max}}; }

// ------------------------------------------------------------------ the daemon process
class DaemonProcess {
 public:
  DaemonProcess(fs::path bin, fs::path dir) : bin_(std::move(bin)), dir_(std::move(dir)) {}
  ~DaemonProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  fs::path runtime_dir() const { return dir_ / "run"; }
  fs::path cache_dir() const { return dir_ / "cache"; }
  fs::path log_path() const { return dir_ / "daemon.log"; }
  pid_t pid() const { return pid_; }

  // Starts modelzood and waits (at most 30 s) until it answers a ping.
  bool start() {
    std::string log = log_path().string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    std::string exe = (bin_ / "modelzood").string();
    std::string cfg = (dir_ / "modelzood.yaml").string();
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e)
      if (std::string(*e).rfind("MODELZOO_", 0) != 0) env.emplace_back(*e);
    env.push_back("MODELZOO_RUNTIME_DIR=" + runtime_dir().string());
    env.push_back("MODELZOO_CACHE_DIR=" + cache_dir().string());
    env.push_back("MODELZOO_DATA_DIR=" + (dir_ / "data").string());
    std::vector<char*> envp;
    for (auto& v : env) envp.push_back(v.data());
    envp.push_back(nullptr);
    std::vector<char*> argv = {exe.data(), const_cast<char*>("--config"), cfg.data(), nullptr};
    int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    pids_.insert(pid_);
    return wait_until([&] {
      if (exited()) return true;
      try {
        Client c(runtime_dir().string());
        c.call("ping", {}, 1s);
        return true;
      } catch (const std::exception&) {
        return false;
      }
    }, 30s) && pid_ > 0;
  }

  // Reaps the daemon if it exited; returns true then (and remembers the status).
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      pid_ = -1;
      return true;
    }
    return false;
  }
  int last_status() const { return status_; }

  void kill9() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
  }

  // SIGTERM and wait at most `limit`; the exit status, or nullopt when it did not stop.
  std::optional<int> stop(std::chrono::milliseconds limit) {
    ::kill(pid_, SIGTERM);
    if (!wait_until([&] { return exited(); }, limit)) return std::nullopt;
    return status_;
  }

  // Every daemon pid this object started.
  const std::set<pid_t>& pids() const { return pids_; }

 private:
  fs::path bin_, dir_;
  pid_t pid_ = -1;
  int status_ = 0;
  std::set<pid_t> pids_;
};

// ------------------------------------------------------------------ shared records
struct Outcome {
  std::string kind;    // meta, list, pull
  std::string model;   // pull
  std::string result;  // "ok", an ErrorCode name, "daemon_unavailable", "untyped: ..."
  std::string message; // the error's text
  Clock::time_point start, end;
  std::chrono::milliseconds deadline;
  std::uint64_t bytes = 0;
  std::string source;  // pull: the source it came from
};

struct PluginAction {
  std::string kind;  // "kill", "stop-leave", "stop-cont"
  std::string plugin;
  pid_t pid;
  Clock::time_point at;
};

struct SeenEvent {
  std::string topic;
  std::string plugin;
  pid_t pid = 0;
  Clock::time_point at;
  json body;
};

struct Shared {
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::vector<SeenEvent> events;
  std::vector<std::string> failures;
  std::atomic<bool> stop{false};
  std::atomic<int> cache_removals{0};
  // The planned daemon kill: DaemonUnavailable answers are expected between these.
  std::optional<Clock::time_point> daemon_killed_at, daemon_back_at;

  void fail(const std::string& what) {
    std::lock_guard lock(mu);
    failures.push_back(what);
  }
};

// ------------------------------------------------------------------ setup
std::string write_config(const fs::path& dir, std::mt19937_64& rng) {
  (void)rng;
  json memory_models = json::array();
  for (int i = 0; i < kModels; ++i) {
    memory_models.push_back({{"name", model_name(i)},
                             {"version", "1.0.0"},
                             {"description", "chaos test model"},
                             {"files", json::array({{{"name", "weights.bin"}, {"size", kBigFile}, {"seed", 1000 + 2 * i}},
                                                    {{"name", "extra.bin"}, {"size", kSmallFile}, {"seed", 1001 + 2 * i}}})}});
  }
  // The local-file source holds the same bytes (so it can take over a transfer) and a
  // model of its own.
  auto write_generated = [](const fs::path& p, std::uint64_t seed, std::uint64_t size) {
    fs::create_directories(p.parent_path());
    std::string buf(size, '\0');
    modelzoo::plugins::memory::generate(seed, 0, buf.data(), buf.size());
    std::ofstream(p, std::ios::binary).write(buf.data(), static_cast<std::streamsize>(buf.size()));
  };
  fs::path root = dir / "local-models";
  for (int i = 0; i < kModels; ++i) {
    write_generated(root / model_name(i) / "1.0.0" / "weights.bin", 1000 + 2 * i, kBigFile);
    write_generated(root / model_name(i) / "1.0.0" / "extra.bin", 1001 + 2 * i, kSmallFile);
  }
  write_generated(root / kLocalOnly / "1.0.0" / "weights.bin", 4242, 2u << 20);

  json sources = json::array();
  for (const auto& s : kMemorySources)
    sources.push_back({{"name", s.name},
                       {"plugin", "memory"},
                       {"priority", s.priority},
                       {"handles", json::array({"chaos/*"})},
                       {"config", {{"throttle_bytes_per_second", kThrottle}, {"models", memory_models}}}});
  sources.push_back({{"name", kDiskSource.name},
                     {"plugin", "local-file"},
                     {"priority", kDiskSource.priority},
                     {"handles", json::array({"chaos/*"})},
                     {"config", {{"root", root.string()}}}});
  json cfg = {{"heartbeat_interval_ms", kHeartbeatMs},
              {"heartbeat_liveness", kLiveness},
              {"request_timeout_ms", 5000},
              {"download_stall_timeout_ms", 5000},
              {"stop_timeout_ms", 2000},
              {"log_level", "info"},
              // Never give up on a source: the breaker is tested elsewhere, and here every
              // source must stay available to be killed again.
              {"restart", {{"backoff_initial_ms", 50}, {"backoff_max_ms", 500}, {"stable_after_ms", 500}, {"max_failures", 1000}}},
              {"sources", sources}};
  std::string text = cfg.dump(2);  // JSON is YAML
  std::ofstream(dir / "modelzood.yaml") << text;
  return text;
}

// Processes that belong to this run's daemon: their MODELZOO_ENDPOINT is our plugin socket,
// or their parent chain reaches a daemon we started.
std::vector<pid_t> our_plugin_processes(const fs::path& runtime_dir, const std::set<pid_t>& daemons) {
  std::string endpoint = "ipc://" + (runtime_dir / "plugins.sock").string();
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    std::string n = e.path().filename().string();
    if (n.empty() || !std::all_of(n.begin(), n.end(), ::isdigit)) continue;
    pid_t pid = std::stoi(n);
    if (daemons.count(pid)) continue;
    char st = proc_state(pid);
    if (st == 0) continue;
    bool ours = proc_env(pid, "MODELZOO_ENDPOINT") == endpoint;
    for (pid_t p = proc_ppid(pid), hops = 0; !ours && p > 1 && hops < 64; p = proc_ppid(p), ++hops)
      if (daemons.count(p)) ours = true;
    if (ours) out.push_back(pid);
  }
  return out;
}

// ------------------------------------------------------------------ load generator
void client_thread(int index, std::uint64_t seed, const fs::path& runtime_dir, const fs::path& cache_dir, Shared& sh,
                   std::atomic<std::int64_t>& first_ok_after_restart_ms, std::atomic<Clock::rep>& restart_ready_at) {
  std::mt19937_64 rng(seed * 7919 + static_cast<std::uint64_t>(index));
  std::unique_ptr<Client> client;
  while (!sh.stop) {
    if (!client) {
      try {
        client = std::make_unique<Client>(runtime_dir.string());
      } catch (const DaemonUnavailable&) {
        std::this_thread::sleep_for(20ms);  // the daemon is being restarted: try again
        continue;
      }
    }
    int dice = static_cast<int>(rng() % 100);
    Outcome o;
    o.start = Clock::now();
    std::string model = rng() % 8 == 0 ? kLocalOnly : model_name(static_cast<int>(rng() % kModels));
    try {
      if (dice < 40) {
        o.kind = "meta";
        o.deadline = kMetaDeadline;
        switch (rng() % 4) {
          case 0: client->call("status", {}, o.deadline); break;
          case 1: client->call("plugins", {}, o.deadline); break;
          case 2: client->call("ping", {}, o.deadline); break;
          default: client->call("show", {{"model", model}}, o.deadline); break;
        }
      } else if (dice < 55) {
        o.kind = "list";
        o.deadline = kMetaDeadline;
        client->call("models", {}, o.deadline);
      } else {
        o.kind = "pull";
        o.model = model;
        o.deadline = kPullDeadline;
        if (rng() % 10 < 7) {  // make the next pull transfer again
          try {
            core::remove_cached(cache_dir, model);
            sh.cache_removals++;
          } catch (const bus::Error& e) {
            if (e.code() != bus::ErrorCode::not_found) sh.fail(std::string("cache rm ") + model + ": " + e.what());
          }
        }
        o.start = Clock::now();
        auto r = client->pull(model, {}, o.deadline);
        o.bytes = r.value("bytes_downloaded", std::uint64_t{0});
        o.source = r.value("source", "");
      }
      o.result = "ok";
    } catch (const bus::Error& e) {
      o.result = std::string(bus::to_string(e.code()));
      o.message = e.what();
    } catch (const DaemonUnavailable& e) {
      o.result = "daemon_unavailable";
      o.message = e.what();
      client.reset();  // reconnect
    } catch (const std::exception& e) {
      o.result = std::string("untyped: ") + e.what();
    }
    o.end = Clock::now();
    if (auto r = restart_ready_at.load(); o.result == "ok" && r != 0) {
      Clock::time_point ready{Clock::duration(r)};
      std::int64_t v = -1;
      if (o.end > ready) first_ok_after_restart_ms.compare_exchange_strong(v, ms_since(ready, o.end));
    }
    std::lock_guard lock(sh.mu);
    sh.outcomes.push_back(std::move(o));
  }
}

// ------------------------------------------------------------------ events
void event_thread(const fs::path& runtime_dir, Shared& sh) {
  std::unique_ptr<modelzoo::EventSubscriber> sub;
  while (!sh.stop) {
    if (!sub) {
      try {
        sub = std::make_unique<modelzoo::EventSubscriber>(runtime_dir.string(),
                                                          std::vector<std::string>{"plugin.", "model.download.completed",
                                                                                   "model.download.failed", "daemon."});
      } catch (const std::exception&) {
        std::this_thread::sleep_for(20ms);
        continue;
      }
    }
    // The SUB socket reconnects by itself when the daemon is restarted, and re-sends its
    // subscriptions; events published meanwhile are lost (events are best effort).
    auto e = sub->next(200ms);
    if (!e) continue;
    SeenEvent s;
    s.topic = e->topic;
    s.at = Clock::now();
    s.plugin = e->body.value("plugin", "");
    s.pid = static_cast<pid_t>(e->body.value("pid", 0));
    s.body = e->body;
    std::lock_guard lock(sh.mu);
    sh.events.push_back(std::move(s));
  }
}

// ------------------------------------------------------------------ main
int usage() {
  std::cerr << "usage: modelzoo-chaos [--seconds N] [--seed S] [--clients N] [--json] [--keep] [--bin-dir DIR]\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  opt.seed = static_cast<std::uint64_t>(std::random_device{}());
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--seconds") opt.seconds = std::stoi(value());
      else if (a == "--seed") opt.seed = std::stoull(value());
      else if (a == "--clients") opt.clients = std::stoi(value());
      else if (a == "--bin-dir") opt.bin_dir = value();
      else if (a == "--json") opt.json = true;
      else if (a == "--keep") opt.keep = true;
      else return usage();
    } catch (const std::exception& e) {
      std::cerr << e.what() << "\n";
      return usage();
    }
  }
  if (opt.seconds < 5 || opt.clients < 1) return usage();
  ::signal(SIGPIPE, SIG_IGN);

  char tmpl[] = "/tmp/modelzoo-chaos-XXXXXX";
  fs::path dir = ::mkdtemp(tmpl);
  std::mt19937_64 rng(opt.seed);
  write_config(dir, rng);
  DaemonProcess daemon(opt.bin_dir, dir);
  Shared sh;
  auto log = [&](const std::string& s) {
    if (!opt.json) std::cerr << s << "\n";
  };
  log("modelzoo-chaos: seed " + std::to_string(opt.seed) + ", " + std::to_string(opt.seconds) + " s, " +
      std::to_string(opt.clients) + " clients, directory " + dir.string());
  if (!daemon.start()) {
    std::cerr << "modelzood did not start; log:\n" << read_all(daemon.log_path());
    return 1;
  }
  auto all_ready = [&](std::chrono::milliseconds limit) {
    return wait_until([&] {
      try {
        Client c(daemon.runtime_dir().string());
        auto ps = c.plugins()["plugins"];
        return std::all_of(ps.begin(), ps.end(), [](const json& p) { return p["state"] == "ready"; });
      } catch (const std::exception&) {
        return false;
      }
    }, limit);
  };
  if (!all_ready(30s)) {
    std::cerr << "the plugins did not all become ready; log:\n" << read_all(daemon.log_path());
    return 1;
  }

  // ---- load and events
  std::atomic<std::int64_t> first_ok_after_restart_ms{-1};
  std::atomic<Clock::rep> restart_ready_at{0};  // when the daemon was started again (0: not yet)
  std::thread events(event_thread, daemon.runtime_dir(), std::ref(sh));
  std::vector<std::thread> clients;
  for (int i = 0; i < opt.clients; ++i)
    clients.emplace_back(client_thread, i, opt.seed, daemon.runtime_dir(), daemon.cache_dir(), std::ref(sh),
                         std::ref(first_ok_after_restart_ms), std::ref(restart_ready_at));

  // ---- chaos
  const auto started = Clock::now();
  const auto end = started + std::chrono::seconds(opt.seconds);
  std::uniform_real_distribution<double> frac(0.4, 0.6);
  const auto daemon_kill_at = started + std::chrono::milliseconds(static_cast<std::int64_t>(opt.seconds * 1000 * frac(rng)));
  bool daemon_killed = false;
  int unplanned_deaths = 0;
  std::vector<PluginAction> actions;
  std::vector<double> daemon_restart_ms, daemon_orphan_gone_ms;
  std::size_t orphans_after_daemon_kill = 0;
  int stop_not_detected = 0;
  std::unique_ptr<Client> admin;
  const auto hb_deadline = std::chrono::milliseconds(kHeartbeatMs * kLiveness);

  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 900));  // pacing of the chaos, not a wait on a condition
    if (daemon.exited()) {
      ++unplanned_deaths;
      sh.fail("the daemon died unplanned (status " + std::to_string(daemon.last_status()) + ")");
      admin.reset();
      if (!daemon.start()) break;
      continue;
    }
    if (!daemon_killed && Clock::now() >= daemon_kill_at) {
      daemon_killed = true;
      admin.reset();
      std::set<pid_t> old_daemon = {daemon.pid()};
      {
        std::lock_guard lock(sh.mu);
        sh.daemon_killed_at = Clock::now();
      }
      log("chaos: SIGKILL the daemon (pid " + std::to_string(daemon.pid()) + ")");
      auto t0 = Clock::now();
      daemon.kill9();
      // Its plugins die with it (PR_SET_PDEATHSIG): wait until none is left.
      bool gone = wait_until([&] { return our_plugin_processes(daemon.runtime_dir(), old_daemon).empty(); }, 10s);
      if (!gone) {
        orphans_after_daemon_kill = our_plugin_processes(daemon.runtime_dir(), old_daemon).size();
        sh.fail(std::to_string(orphans_after_daemon_kill) + " plugin process(es) outlived the killed daemon by 10 s");
      } else {
        daemon_orphan_gone_ms.push_back(static_cast<double>(ms_since(t0)));
      }
      auto t1 = Clock::now();
      restart_ready_at = t1.time_since_epoch().count();  // client successes are timed from the new spawn
      bool up = daemon.start();
      auto back = Clock::now();
      {
        std::lock_guard lock(sh.mu);
        sh.daemon_back_at = back;
      }
      if (!up) {
        sh.fail("the daemon did not come back after the planned kill");
        break;
      }
      daemon_restart_ms.push_back(static_cast<double>(ms_since(t1, back)));
      continue;
    }
    json plugins;
    try {
      if (!admin) admin = std::make_unique<Client>(daemon.runtime_dir().string());
      plugins = admin->call("plugins", {}, 5s)["plugins"];
    } catch (const std::exception& e) {
      admin.reset();
      continue;
    }
    std::vector<json> ready;
    for (const auto& p : plugins)
      if (p["state"] == "ready" && p["pid"].get<int>() > 0) ready.push_back(p);
    if (ready.empty()) continue;
    const json& victim = ready[rng() % ready.size()];
    std::string name = victim["name"];
    pid_t pid = victim["pid"].get<pid_t>();
    // Only signal a process that is still the plugin we were told about.
    if (proc_env(pid, "MODELZOO_INSTANCE") != name) continue;
    int what = static_cast<int>(rng() % 10);
    if (what < 6) {
      actions.push_back({"kill", name, pid, Clock::now()});
      ::kill(pid, SIGKILL);
    } else {
      bool leave = what < 8;
      actions.push_back({leave ? "stop-leave" : "stop-cont", name, pid, Clock::now()});
      ::kill(pid, SIGSTOP);
      if (leave) {
        // The daemon must notice the frozen plugin (3 missed heartbeats) and kill it.
        if (!wait_until([&] { char s = proc_state(pid); return s == 0 || s == 'Z' || proc_env(pid, "MODELZOO_INSTANCE") != name; },
                        hb_deadline * 4 + 3s)) {
          ++stop_not_detected;
          sh.fail("plugin " + name + " (pid " + std::to_string(pid) + ") stayed frozen past " +
                  std::to_string((hb_deadline * 4 + 3s).count()) + " ms without being killed");
          ::kill(pid, SIGCONT);
        }
      } else {
        // Frozen past the heartbeat deadline, then woken: whichever comes first, the
        // daemon's SIGKILL or our SIGCONT, it must end up replaced or running again.
        std::this_thread::sleep_for(hb_deadline + std::chrono::milliseconds(kHeartbeatMs));
        if (proc_state(pid) == 'T' && proc_env(pid, "MODELZOO_INSTANCE") == name) ::kill(pid, SIGCONT);
      }
    }
  }
  const auto chaos_end = Clock::now();

  // ---- wind down the load; every call ends by its deadline
  sh.stop = true;
  for (auto& t : clients) t.join();
  events.join();
  const auto load_end = Clock::now();
  if (daemon.exited()) {
    ++unplanned_deaths;
    sh.fail("the daemon died unplanned (status " + std::to_string(daemon.last_status()) + ")");
    daemon.start();
  }

  // ---- no request is lost inside the daemon: once the clients are gone, the only one in
  // flight is the status call asking (a call given up by its client at the deadline is still
  // answered by the daemon later: allow for the longest deadline).
  admin.reset();
  std::int64_t in_flight = -1;
  if (!wait_until([&] {
        try {
          Client c(daemon.runtime_dir().string());
          in_flight = c.status().value("requests_in_flight", std::int64_t{-1});
          return in_flight <= 1;
        } catch (const std::exception&) {
          return false;
        }
      }, kPullDeadline + 5s))
    sh.fail("the daemon still holds " + std::to_string(in_flight - 1) + " client request(s) nobody waits for");

  // ---- settle: every source back, every model pullable, the cache whole
  if (!all_ready(30s)) sh.fail("the plugins were not all ready 30 s after the chaos stopped");
  std::vector<std::string> all_models;
  for (int i = 0; i < kModels; ++i) all_models.push_back(model_name(i));
  all_models.push_back(kLocalOnly);
  try {
    Client c(daemon.runtime_dir().string());
    for (const auto& m : all_models) {
      try {
        auto r = c.pull(m, {}, kPullDeadline);
        for (const auto& f : r["files"]) {
          std::error_code ec;
          auto size = fs::file_size(f["path"].get<std::string>(), ec);
          if (ec || size != f["size"].get<std::uint64_t>())
            sh.fail("after the chaos, " + m + " file " + f["name"].get<std::string>() + " is missing or has the wrong size");
        }
      } catch (const std::exception& e) {
        sh.fail("after the chaos, pulling " + m + " failed: " + e.what());
      }
    }
  } catch (const std::exception& e) {
    sh.fail(std::string("after the chaos, no client could connect: ") + e.what());
  }

  // ---- clean stop
  std::set<pid_t> daemon_pids = daemon.pids();
  auto stop_status = daemon.stop(60s);
  if (!stop_status) sh.fail("the daemon did not stop within 60 s of SIGTERM");
  else if (!WIFEXITED(*stop_status) || WEXITSTATUS(*stop_status) != 0)
    sh.fail("the daemon's clean stop ended with status " + std::to_string(*stop_status));
  auto leftover = our_plugin_processes(daemon.runtime_dir(), daemon_pids);
  if (!leftover.empty()) {
    std::string list;
    for (auto p : leftover) list += " " + std::to_string(p) + "(" + proc_exe(p) + ")";
    sh.fail("plugin processes left after the clean stop:" + list);
    for (auto p : leftover) ::kill(p, SIGKILL);
  }

  // ---- the cache
  auto verify = core::verify_cache(daemon.cache_dir());
  for (const auto& c : verify.corrupt) sh.fail("corrupt blob " + c.expected + " (actual " + c.actual + c.error + ")");
  for (const auto& m : verify.missing) sh.fail("blob " + m.sha256 + " listed by a manifest is missing");
  for (const auto& p : verify.problems) sh.fail("cache problem: " + p.path.string() + ": " + p.reason);
  auto listing = core::list_cache(daemon.cache_dir());
  std::set<std::string> complete;
  for (const auto& v : listing.models) {
    if (v.complete) complete.insert(v.name);
    else sh.fail("cached " + v.name + ":" + v.version + " is incomplete after the final pull");
  }
  for (const auto& m : all_models)
    if (!complete.count(m)) sh.fail(m + " is not in the cache after the final pull");
  // Temporary files. Allowed after a clean stop: tmp/<sha256>.partial of interrupted
  // transfers (kept for resume) with their tmp/<sha256>.lock, held by nobody. Nothing else:
  // no dot-file temporaries of manifests or view links, nothing in staging/.
  std::size_t partials = 0, partial_bytes = 0;
  std::vector<std::string> stray;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(daemon.cache_dir(), ec); it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    fs::path rel = fs::relative(it->path(), daemon.cache_dir());
    std::string top = rel.begin()->string(), fname = rel.filename().string();
    if (top == "tmp" && rel.parent_path() == "tmp") {
      bool hex = fname.size() > 64 && std::all_of(fname.begin(), fname.begin() + 64, ::isxdigit);
      if (hex && fname.substr(64) == ".partial") {
        ++partials;
        partial_bytes += it->is_regular_file() ? fs::file_size(it->path(), ec) : 0;
        continue;
      }
      if (hex && fname.substr(64) == ".lock") continue;
      stray.push_back(rel.string());
    } else if (top == "staging" && rel != "staging") {
      stray.push_back(rel.string());
    } else if (!fname.empty() && fname[0] == '.') {
      stray.push_back(rel.string());
    }
  }
  for (const auto& s : stray) sh.fail("temporary file left in the cache: " + s);
  for (const auto& p : listing.partials)
    if (p.receiving) sh.fail("partial " + p.sha256 + " is still locked after the daemon stopped");
  // The kept partials are reclaimable: prune --all removes every one (nobody holds them).
  auto pruned = core::prune_cache(daemon.cache_dir(), {.partial_age = std::chrono::seconds(0)});
  if (pruned.partials_removed != partials)
    sh.fail("prune --all removed " + std::to_string(pruned.partials_removed) + " of " + std::to_string(partials) +
            " kept partial(s)");
  // The runtime directory keeps only the lock file after a clean stop.
  for (const auto& e : fs::directory_iterator(daemon.runtime_dir(), ec))
    if (e.path().filename() != "modelzood.lock") sh.fail("left in the runtime directory: " + e.path().filename().string());

  // ---- figures
  std::map<std::string, std::map<std::string, int>> by_kind;
  std::map<std::string, int> errors;
  std::map<std::string, std::vector<std::string>> error_samples;
  int hung = 0, unexpected_unavailable = 0, failover_pulls = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, int> pull_sources;
  for (const auto& o : sh.outcomes) {
    by_kind[o.kind]["total"]++;
    by_kind[o.kind][o.result == "ok" ? "ok" : "error"]++;
    if (o.result != "ok") {
      errors[o.result]++;
      auto& samples = error_samples[o.result];
      std::string text = o.kind + ": " + o.message.substr(0, 300);
      if (samples.size() < 4 && std::find(samples.begin(), samples.end(), text) == samples.end()) samples.push_back(text);
    }
    if (o.result.rfind("untyped", 0) == 0) sh.fail("an untyped failure: " + o.result);
    if (o.end - o.start > o.deadline + kOverrunGrace) {
      ++hung;
      sh.fail(o.kind + " took " + std::to_string(ms_since(o.start, o.end)) + " ms, past its deadline of " +
              std::to_string(o.deadline.count()) + " ms");
    }
    if (o.result == "daemon_unavailable") {
      bool planned = sh.daemon_killed_at && o.end >= *sh.daemon_killed_at && sh.daemon_back_at &&
                     o.start <= *sh.daemon_back_at + 2s;
      if (!planned) {
        ++unexpected_unavailable;
        sh.fail("'daemon unavailable' outside the planned daemon kill (" + o.kind + ")");
      }
    }
    if (o.kind == "pull" && o.result == "ok") {
      bytes += o.bytes;
      pull_sources[o.source]++;
      // Every memory source has chaos/m*, so anything but the best one is a failover.
      if (o.model != kLocalOnly && o.source != kMemorySources[0].name && o.source != "cache") ++failover_pulls;
    }
  }
  // Recovery: a plugin action to the next plugin.started of that source with another pid.
  std::vector<double> kill_recovery, stop_detect, stop_recovery;
  int event_failovers = 0;
  std::size_t unmeasured = 0;
  int survived_freezes = 0;  // SIGSTOP then SIGCONT, and the process lived on
  for (const auto& e : sh.events)
    if (e.topic == "model.download.completed") event_failovers += e.body.value("failovers", 0);
  for (const auto& a : actions) {
    // The exit of that very process, then the first start after it. A process that never
    // exited (a short freeze it survived) has no recovery to measure.
    std::optional<double> exited, started_again;
    std::optional<Clock::time_point> exited_at;
    for (const auto& e : sh.events) {
      if (e.plugin != a.plugin || e.at < a.at) continue;
      if (!exited && e.topic == "plugin.exited" && e.pid == a.pid) {
        exited = static_cast<double>(ms_since(a.at, e.at));
        exited_at = e.at;
      }
      if (exited_at && !started_again && e.topic == "plugin.started" && e.pid != a.pid && e.at >= *exited_at)
        started_again = static_cast<double>(ms_since(a.at, e.at));
    }
    if (!exited && a.kind == "stop-cont") {
      ++survived_freezes;
      continue;
    }
    if (sh.daemon_killed_at && a.at <= *sh.daemon_killed_at && (!started_again || a.at + std::chrono::milliseconds(
                                                                    static_cast<std::int64_t>(*started_again)) > *sh.daemon_killed_at))
      continue;  // overtaken by the daemon kill
    if (!started_again) {
      ++unmeasured;  // its events were lost (events are best effort)
      continue;
    }
    if (a.kind == "kill") kill_recovery.push_back(*started_again);
    else {
      stop_recovery.push_back(*started_again);
      if (exited) stop_detect.push_back(*exited);
    }
  }
  int kills = 0, stops_leave = 0, stops_cont = 0;
  for (const auto& a : actions) {
    kills += a.kind == "kill";
    stops_leave += a.kind == "stop-leave";
    stops_cont += a.kind == "stop-cont";
  }
  std::vector<double> first_request;
  if (first_ok_after_restart_ms >= 0) first_request.push_back(static_cast<double>(first_ok_after_restart_ms));
  if (daemon_killed && first_ok_after_restart_ms < 0) sh.fail("no request succeeded after the daemon restart");

  json figures = {
      {"seed", opt.seed},
      {"seconds", opt.seconds},
      {"clients", opt.clients},
      {"duration_ms", ms_since(started, load_end)},
      {"chaos_ms", ms_since(started, chaos_end)},
      {"requests", by_kind},
      {"errors", errors},
      {"error_samples", error_samples},
      {"kills", {{"plugin_sigkill", kills}, {"plugin_sigstop_left", stops_leave}, {"plugin_sigstop_then_sigcont", stops_cont},
                 {"daemon_sigkill", daemon_killed ? 1 : 0}}},
      {"failovers", {{"pulls_from_lower_priority", failover_pulls}, {"mid_transfer", event_failovers}, {"pull_sources", pull_sources}}},
      {"recovery_ms", {{"plugin_kill_to_started", to_json(percentiles(kill_recovery))},
                       {"plugin_stop_to_killed", to_json(percentiles(stop_detect))},
                       {"plugin_stop_to_started", to_json(percentiles(stop_recovery))},
                       {"daemon_kill_to_plugins_gone", to_json(percentiles(daemon_orphan_gone_ms))},
                       {"daemon_start_to_ping", to_json(percentiles(daemon_restart_ms))},
                       {"daemon_spawn_to_first_client_success", to_json(percentiles(first_request))},
                       {"unmeasured", unmeasured}}},
      {"freezes_survived", survived_freezes},
      {"bytes_pulled", bytes},
      {"cache_removals", sh.cache_removals.load()},
      {"events_seen", sh.events.size()},
      {"checks", {{"unplanned_daemon_deaths", unplanned_deaths},
                  {"calls_past_deadline", hung},
                  {"requests_in_flight_after_load", in_flight - 1},
                  {"daemon_unavailable_outside_planned_kill", unexpected_unavailable},
                  {"frozen_plugins_not_killed", stop_not_detected},
                  {"plugins_left_after_daemon_kill", orphans_after_daemon_kill},
                  {"plugins_left_after_stop", leftover.size()},
                  {"cache_blobs_verified", verify.blobs},
                  {"cache_bytes_verified", verify.bytes},
                  {"cache_corrupt", verify.corrupt.size()},
                  {"cache_missing", verify.missing.size()},
                  {"partials_kept", partials},
                  {"partial_bytes_kept", partial_bytes},
                  {"partials_reclaimed_by_prune", pruned.partials_removed},
                  {"stray_temporary_files", stray.size()}}},
      {"failures", sh.failures},
      {"ok", sh.failures.empty()}};
  if (opt.json) {
    std::cout << figures.dump(2) << "\n";
  } else {
    auto line = [](const std::string& k, const json& v) { std::cout << "  " << k << ": " << v.dump() << "\n"; };
    std::cout << "modelzoo-chaos: seed " << opt.seed << ", " << figures["duration_ms"] << " ms, " << opt.clients << " clients\n";
    for (const char* k : {"requests", "errors", "error_samples", "kills", "failovers", "recovery_ms", "freezes_survived", "bytes_pulled", "cache_removals", "checks"})
      line(k, figures[k]);
    for (const auto& f : sh.failures) std::cout << "FAIL: " << f << "\n";
    std::cout << (sh.failures.empty() ? "PASS" : "FAILED") << "\n";
  }
  if (!sh.failures.empty()) std::cerr << "daemon log kept in " << daemon.log_path() << "\n";
  if (sh.failures.empty() && !opt.keep) fs::remove_all(dir, ec);
  return sh.failures.empty() ? 0 : 1;
}
