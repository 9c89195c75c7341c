// modelzoo-chaos: runs the real modelzood under load while killing its plugins, freezing
// them past the heartbeat deadline and, once, killing the daemon itself; while `cache rm` and
// `cache prune` run on models sharing blobs with pulls in flight, extensions crash at each
// hook point, the HTTP registry server dies and refuses connections, and a remote plugin over
// TCP (CURVE) drops its connection; with a second daemon whose cache is a small tmpfs that
// fills up (root only). Then checks that nothing was lost or corrupted -- every file of every
// success re-hashed -- and prints figures, the daemons' RSS and open fds over time among them
// (docs/reliability.md).
//
//   modelzoo-chaos [--seconds N] [--seed S] [--clients N] [--json] [--keep] [--bin-dir DIR]
//
// Exit status: 0 when every check passed, 1 when one failed (each failure is printed), 2 on
// a usage error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
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
#include "modelzoo/bus/curve.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/sha256.h"
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
// chaos/s0 .. s3: each its own 512 KiB and the same 2 MiB shared.bin (one blob for all four),
// served by the memory sources and disk; `cache rm` and `cache prune` run on them while
// others of them are pulled.
constexpr int kSharedModels = 4;
constexpr std::uint64_t kSharedFile = 2u << 20, kOwnFile = 512u << 10, kSharedSeed = 5000;
// chaos/h0, h1 from the HTTP registry server (h1 also from disk); chaos/r0, r1 from the
// remote plugin over TCP (r1 also from disk). 2 MiB each.
constexpr std::uint64_t kRemoteFile = 2u << 20;
constexpr std::uint64_t kHttpThrottle = 4u << 20;     // the HTTP server's bytes/s per file body
constexpr std::uint64_t kPeerThrottle = 8u << 20;
// The second daemon's cache: a tmpfs of 10 MiB; chaos/t0 .. t3 of 3 MiB each (three fit, not
// four) and chaos/t-big of 12 MiB (never fits).
constexpr std::uint64_t kSmallFs = 10u << 20;
constexpr int kSmallModels = 4;
constexpr std::uint64_t kSmallModelFile = 3u << 20, kTooBigFile = 12u << 20;
constexpr std::uint64_t kSmallThrottle = 12u << 20;
// Deadlines the load generator gives the client library per call.
constexpr auto kMetaDeadline = 10s;
constexpr auto kPullDeadline = 60s;
// A call that returns this much later than its deadline counts as hung.
constexpr auto kOverrunGrace = 5s;
// How often the daemons' RSS and open fds are sampled, and the shortest span of samples
// a trend (slope) is given for.
constexpr auto kSampleEvery = 10s;
constexpr double kMinSlopeSpan = 30;  // seconds

struct Source {
  std::string name;
  int priority;
};
const std::vector<Source> kMemorySources = {{"mem-a", 30}, {"mem-b", 20}, {"mem-c", 10}};
const Source kDiskSource = {"disk", 5};
const Source kHttpSource = {"http", 40};
const Source kTcpSource = {"gpu-box", 40};
const std::vector<std::string> kHookPoints = {"pre-download", "post-download", "pre-load", "post-load"};

std::string model_name(int i) { return "chaos/m" + std::to_string(i); }
std::string shared_model(int i) { return "chaos/s" + std::to_string(i); }
std::string http_model(int i) { return "chaos/h" + std::to_string(i); }
std::string tcp_model(int i) { return "chaos/r" + std::to_string(i); }
std::string small_model(int i) { return "chaos/t" + std::to_string(i); }
const std::string kLocalOnly = "chaos/local-only";
const std::string kTooBig = "chaos/t-big";

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

// VmRSS of /proc/<pid>/status in KiB, nullopt when there is no such process.
std::optional<std::uint64_t> proc_rss_kib(pid_t pid) {
  std::istringstream in(read_all("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return std::nullopt;
}

// The number of entries in /proc/<pid>/fd, nullopt when it cannot be read.
std::optional<std::size_t> proc_fd_count(pid_t pid) {
  std::error_code ec;
  std::size_t n = 0;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  if (ec) return std::nullopt;
  return n;
}

// SHA-256 and size of a file's content (following symbolic links); nullopt with `error`
// (and `missing` for ENOENT) when it cannot be read.
std::optional<std::pair<std::string, std::uint64_t>> hash_file(const fs::path& p, std::string& error, bool& missing) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    missing = errno == ENOENT;
    error = std::strerror(errno);
    return std::nullopt;
  }
  bus::Sha256 h;
  std::vector<char> buf(1 << 20);
  std::uint64_t size = 0;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = std::strerror(errno);
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<std::size_t>(n));
    size += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return std::make_pair(h.hex_digest(), size);
}

// A loopback TCP port nothing listens on right now (the kernel's choice).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
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
  // The pid, for other threads (the resource sampler): -1 while none runs.
  const std::atomic<pid_t>& live_pid() const { return live_pid_; }

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
    live_pid_ = pid_;
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
      live_pid_ = -1;
      return true;
    }
    return false;
  }
  int last_status() const { return status_; }

  void kill9() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    live_pid_ = -1;
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
  std::atomic<pid_t> live_pid_{-1};
  int status_ = 0;
  std::set<pid_t> pids_;
};

// A helper process of the run that is not the daemon's: the HTTP registry server, the remote
// plugin peer. Its stdout and stderr go to `log`.
class Child {
 public:
  ~Child() { kill9(); }
  bool spawn(const std::vector<std::string>& args, const std::vector<std::string>& env, const fs::path& log) {
    kill9();
    std::vector<std::string> a = args, e = env;
    std::vector<char*> argv, envp;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : e) envp.push_back(s.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) pid_ = -1;
    return rc == 0;
  }
  // True while it runs (a stopped process runs); reaps it when it exited.
  bool running() {
    if (pid_ <= 0) return false;
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status_, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }
  int last_status() const { return status_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

// A tmpfs of `bytes` at `dir` (root only), unmounted when this goes.
class SmallFilesystem {
 public:
  SmallFilesystem(const fs::path& dir, std::uint64_t bytes) : dir_(dir) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    std::string opts = "size=" + std::to_string(bytes) + ",mode=0700";
    if (::geteuid() != 0) why_not_ = "not root: mounting a tmpfs needs CAP_SYS_ADMIN";
    else if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) != 0)
      why_not_ = std::string("cannot mount a tmpfs: ") + std::strerror(errno);
    else mounted_ = true;
  }
  ~SmallFilesystem() { unmount(); }
  void unmount() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    mounted_ = false;
  }
  bool mounted() const { return mounted_; }
  const std::string& why_not() const { return why_not_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string why_not_;
};

// ------------------------------------------------------------------ shared records
struct Outcome {
  std::string daemon = "main";  // main, small (the tmpfs cache)
  std::string kind;    // meta, list, pull, load
  std::string model;   // pull, load
  std::string result;  // "ok", an ErrorCode name, "daemon_unavailable", "untyped: ..."
  std::string message; // the error's text
  Clock::time_point start, end;
  std::chrono::milliseconds deadline;
  std::uint64_t bytes = 0;
  std::string source;  // pull: the source it came from
  std::string check;   // a successful pull or load: "good", "unverified: ...", "bad: ..."
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
  std::atomic<std::uint64_t> files_rehashed{0}, bytes_rehashed{0};
  // The planned daemon kill: DaemonUnavailable answers are expected between these.
  std::optional<Clock::time_point> daemon_killed_at, daemon_back_at;
  // Per "<daemon>:<model>": the `cache rm`s of it started so far and those running now, so
  // that a success whose file is gone can tell whether a removal of that very model overlapped
  // it (one started during the call, or one was running when it began: a cached pull can
  // start and finish inside one removal).
  struct Removals {
    std::uint64_t started = 0;
    int running = 0;
  };
  std::map<std::string, Removals> removals;

  void fail(const std::string& what) {
    std::lock_guard lock(mu);
    failures.push_back(what);
  }
  Removals removals_of(const std::string& key) {
    std::lock_guard lock(mu);
    return removals[key];
  }
  // Whether a removal of `key` overlapped the time since `before` was taken.
  bool removed_since(const std::string& key, const Removals& before) {
    std::lock_guard lock(mu);
    return before.running > 0 || removals[key].started != before.started;
  }
  void removal(const std::string& key, bool starts) {
    std::lock_guard lock(mu);
    auto& r = removals[key];
    if (starts) ++r.started, ++r.running;
    else --r.running;
  }
};

// `cache rm` of a model, as the CLI runs it, recorded in Shared::removals. True
// when it removed something, false when it was not cached; other errors are failures.
bool remove_model(Shared& sh, const std::string& daemon, const fs::path& cache, const std::string& model,
                  core::RemoveReport* report = nullptr) {
  const std::string key = daemon + ":" + model;
  sh.removal(key, true);
  bool removed = false;
  try {
    auto r = core::remove_cached(cache, model);
    if (report) *report = r;
    removed = true;
  } catch (const bus::Error& e) {
    if (e.code() != bus::ErrorCode::not_found) sh.fail("cache rm " + model + " (" + daemon + "): " + e.what());
  }
  sh.removal(key, false);
  return removed;
}

// ------------------------------------------------------------------ the models
// Every file of every model: generated bytes (memory::generate) of a seed, so that each
// source serves them byte for byte, and their hash is known here independently of any source.
struct FileSpec {
  std::string name;
  std::uint64_t size;
  std::uint64_t seed;
  std::string sha256;
};
using Catalog = std::map<std::string, std::vector<FileSpec>>;  // model (version 1.0.0) -> files

Catalog make_catalog() {
  Catalog c;
  for (int i = 0; i < kModels; ++i)
    c[model_name(i)] = {{"weights.bin", kBigFile, 1000u + 2u * i, ""}, {"extra.bin", kSmallFile, 1001u + 2u * i, ""}};
  c[kLocalOnly] = {{"weights.bin", 2u << 20, 4242, ""}};
  for (int i = 0; i < kSharedModels; ++i)
    c[shared_model(i)] = {{"shared.bin", kSharedFile, kSharedSeed, ""}, {"own.bin", kOwnFile, kSharedSeed + 1u + i, ""}};
  for (int i = 0; i < 2; ++i) {
    c[http_model(i)] = {{"w.bin", kRemoteFile, 6000u + i, ""}};
    c[tcp_model(i)] = {{"w.bin", kRemoteFile, 7000u + i, ""}};
  }
  for (int i = 0; i < kSmallModels; ++i) c[small_model(i)] = {{"w.bin", kSmallModelFile, 8000u + i, ""}};
  c[kTooBig] = {{"w.bin", kTooBigFile, 8100, ""}};
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> done;  // (seed, size) -> sha256
  std::vector<char> buf(1 << 20);
  for (auto& [model, files] : c)
    for (auto& f : files) {
      auto& sha = done[{f.seed, f.size}];
      if (sha.empty()) {
        bus::Sha256 h;
        for (std::uint64_t off = 0; off < f.size;) {
          auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), f.size - off));
          modelzoo::plugins::memory::generate(f.seed, off, buf.data(), n);
          h.update(buf.data(), n);
          off += n;
        }
        sha = h.hex_digest();
      }
      f.sha256 = sha;
    }
  return c;
}

// The `models` of a memory source serving `names`.
json memory_models(const Catalog& c, const std::vector<std::string>& names) {
  json out = json::array();
  for (const auto& n : names) {
    json files = json::array();
    for (const auto& f : c.at(n)) files.push_back({{"name", f.name}, {"size", f.size}, {"seed", f.seed}});
    out.push_back({{"name", n}, {"version", "1.0.0"}, {"description", "chaos test model"}, {"files", files}});
  }
  return out;
}

// Writes the files of `names` as <root>/<model>/1.0.0/<file> (local-file and the HTTP
// registry server serve such a tree).
void write_tree(const Catalog& c, const fs::path& root, const std::vector<std::string>& names) {
  std::vector<char> buf(1 << 20);
  for (const auto& n : names)
    for (const auto& f : c.at(n)) {
      fs::path p = root / n / "1.0.0" / f.name;
      fs::create_directories(p.parent_path());
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      for (std::uint64_t off = 0; off < f.size;) {
        auto n_bytes = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), f.size - off));
        modelzoo::plugins::memory::generate(f.seed, off, buf.data(), n_bytes);
        out.write(buf.data(), static_cast<std::streamsize>(n_bytes));
        off += n_bytes;
      }
    }
}

std::vector<std::string> registry_models(bool http, bool tcp) {
  std::vector<std::string> all;
  for (int i = 0; i < kModels; ++i) all.push_back(model_name(i));
  all.push_back(kLocalOnly);
  for (int i = 0; i < kSharedModels; ++i) all.push_back(shared_model(i));
  for (int i = 0; i < 2 && http; ++i) all.push_back(http_model(i));
  for (int i = 0; i < 2 && tcp; ++i) all.push_back(tcp_model(i));
  return all;
}

// What this run adds beyond the registry plugins on the local bus; each is off, with the
// reason printed, when it cannot be had here.
struct Extras {
  bool extensions = false;
  fs::path ext_dir;           // disarmed-<point>: while it exists, that point's extension works
  bool http = false;
  int http_port = 0;
  fs::path http_root;
  bool tcp = false;
  int tcp_port = 0;
  fs::path keys_dir;
  std::string server_public, peer_public;
  bool small = false;
  std::map<std::string, std::string> skipped;  // feature -> why
};

std::string extension_source(const std::string& point) { return "ext-" + point; }

// The timers both daemons run with, around their sources.
json daemon_config(const json& sources) {
  return {{"heartbeat_interval_ms", kHeartbeatMs},
          {"heartbeat_liveness", kLiveness},
          {"request_timeout_ms", 5000},
          {"download_stall_timeout_ms", 5000},
          {"stop_timeout_ms", 2000},
          {"log_level", "info"},
          // Never give up on a source: the breaker is tested elsewhere, and here every
          // source must stay available to be killed again.
          {"restart", {{"backoff_initial_ms", 50}, {"backoff_max_ms", 500}, {"stable_after_ms", 500}, {"max_failures", 1000}}},
          {"sources", sources}};
}

// ------------------------------------------------------------------ setup
std::string write_config(const fs::path& dir, const Catalog& catalog, const Extras& x, const fs::path& bin_dir) {
  std::vector<std::string> mem_names, disk_names;
  for (int i = 0; i < kModels; ++i) mem_names.push_back(model_name(i));
  for (int i = 0; i < kSharedModels; ++i) mem_names.push_back(shared_model(i));
  json mem_models = memory_models(catalog, mem_names);
  // The local-file source holds the same bytes (so it can take over a transfer), a model of
  // its own, and one model each of the HTTP and TCP sources (their failover).
  disk_names = mem_names;
  disk_names.push_back(kLocalOnly);
  disk_names.push_back(http_model(1));
  disk_names.push_back(tcp_model(1));
  fs::path root = dir / "local-models";
  write_tree(catalog, root, disk_names);

  json sources = json::array();
  for (const auto& s : kMemorySources)
    sources.push_back({{"name", s.name},
                       {"plugin", "memory"},
                       {"priority", s.priority},
                       {"handles", json::array({"chaos/*"})},
                       {"config", {{"throttle_bytes_per_second", kThrottle}, {"models", mem_models}}}});
  sources.push_back({{"name", kDiskSource.name},
                     {"plugin", "local-file"},
                     {"priority", kDiskSource.priority},
                     {"handles", json::array({"chaos/*"})},
                     {"config", {{"root", root.string()}}}});
  if (x.http)
    sources.push_back({{"name", kHttpSource.name},
                       {"plugin", "remote"},
                       {"priority", kHttpSource.priority},
                       {"handles", json::array({"chaos/h*"})},
                       {"config", {{"url", "http://127.0.0.1:" + std::to_string(x.http_port)},
                                   {"connect_timeout_ms", 1000},
                                   {"retry", {{"attempts", 3}, {"initial_ms", 50}, {"max_ms", 500}}}}}});
  if (x.tcp)
    sources.push_back({{"name", kTcpSource.name},
                       {"remote_key", x.peer_public},
                       {"priority", kTcpSource.priority},
                       {"handles", json::array({"chaos/r*"})},
                       {"config", {{"throttle_bytes_per_second", kPeerThrottle},
                                   {"models", memory_models(catalog, {tcp_model(0), tcp_model(1)})}}}});
  // One extension per hook point, the test extension in mode crash: it works while its
  // disarmed-<point> file exists; the chaos deletes the file, and the next hook at that
  // point crashes the extension (which writes the file again first).
  if (x.extensions)
    for (const auto& point : kHookPoints)
      sources.push_back({{"name", extension_source(point)},
                         {"command", json::array({(bin_dir / "modelzoo-test-extension").string()})},
                         {"kind", "extension"},
                         {"points", json::array({point})},
                         {"config", {{"mode", "crash"}, {"once", (x.ext_dir / ("disarmed-" + point)).string()}}}});
  json cfg = daemon_config(sources);
  if (x.tcp)
    cfg["listen"] = {{"plugins", "tcp://127.0.0.1:" + std::to_string(x.tcp_port)},
                     {"server_key_file", (x.keys_dir / "server.key").string()}};
  std::string text = cfg.dump(2);  // JSON is YAML
  std::ofstream(dir / "modelzood.yaml") << text;
  return text;
}

// The second daemon, whose cache is the small tmpfs: one memory source with chaos/t*.
void write_small_config(const fs::path& dir, const Catalog& catalog) {
  std::vector<std::string> names;
  for (int i = 0; i < kSmallModels; ++i) names.push_back(small_model(i));
  names.push_back(kTooBig);
  json sources = json::array({{{"name", "small-mem"},
                               {"plugin", "memory"},
                               {"priority", 10},
                               {"handles", json::array({"chaos/*"})},
                               {"config", {{"throttle_bytes_per_second", kSmallThrottle}, {"models", memory_models(catalog, names)}}}}});
  json cfg = daemon_config(sources);
  fs::create_directories(dir);
  std::ofstream(dir / "modelzood.yaml") << cfg.dump(2);
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

// ------------------------------------------------------------------ the success checker
// Every file a successful pull or load names is read back and hashed against the catalog
// (not the reply: a reply could agree with a wrong manifest). "good"; "unverified: ..." when
// a file is gone and a `cache rm` of that very model overlapped the call and the check (the
// removal may take the files of a finished pull: that is what rm is for); else "bad: ...".
std::string check_success(const json& reply, const std::vector<FileSpec>& want, Shared& sh, const std::string& removal_key,
                          const Shared::Removals& before, const fs::path& cache_dir, const std::string& model) {
  const json files = reply.value("files", json::array());
  if (files.size() != want.size())
    return "bad: " + std::to_string(files.size()) + " file(s) in the reply, the model has " + std::to_string(want.size());
  std::string gone, evidence;
  for (const auto& spec : want) {
    auto it = std::find_if(files.begin(), files.end(), [&](const json& f) { return f.value("name", "") == spec.name; });
    if (it == files.end()) return "bad: the reply lacks " + spec.name;
    if (it->value("sha256", "") != spec.sha256) return "bad: the reply gives " + spec.name + " the hash " + it->value("sha256", "");
    if (it->value("size", std::uint64_t{0}) != spec.size) return "bad: the reply gives " + spec.name + " a wrong size";
    std::string error;
    bool missing = false;
    auto h = hash_file(it->value("path", ""), error, missing);
    if (!h) {
      if (!missing) return "bad: " + spec.name + " cannot be read: " + error;
      gone += (gone.empty() ? "" : ", ") + spec.name;
      // What is left of it, for the report: the view's link, the blob, the manifest; and the
      // blob 500 ms later (moved aside for a moment, or gone for good).
      std::error_code ec;
      fs::path link = it->value("path", "");
      auto target = fs::read_symlink(link, ec);
      const bool link_there = !ec;
      const fs::path blob = cache_dir / "blobs" / "sha256" / spec.sha256;
      const bool blob_there = fs::exists(blob, ec);
      const bool manifest_there = fs::exists(cache_dir / "manifests" / model / "1.0.0.json", ec);
      std::string later;
      if (!blob_there) {
        std::this_thread::sleep_for(500ms);
        later = fs::exists(blob, ec) ? " (back 500 ms later)" : " (still missing 500 ms later, manifest " +
                std::string(fs::exists(cache_dir / "manifests" / model / "1.0.0.json", ec) ? "present" : "missing") + ")";
      }
      evidence += "; " + spec.name + ": view link " + (link_there ? "-> " + target.string() : "missing") + ", blob " +
                  (blob_there ? "present" : "missing" + later) + ", manifest " + (manifest_there ? "present" : "missing");
      continue;
    }
    sh.files_rehashed++;
    sh.bytes_rehashed += h->second;
    if (h->second != spec.size) return "bad: " + spec.name + " holds " + std::to_string(h->second) + " bytes";
    if (h->first != spec.sha256) return "bad: " + spec.name + " hashes to " + h->first + ", not " + spec.sha256;
  }
  if (gone.empty()) return "good";
  if (sh.removed_since(removal_key, before)) return "unverified: " + gone + " removed by a cache rm meanwhile";
  return "bad: " + gone + " named by the reply but missing, and no cache rm of it ran" + evidence;
}

// Damage seen while the chaos runs: a manifest listing a blob that is not there, still so
// 500 ms later. A pull writes a manifest only when every file is in, and every removal drops
// the manifest before it takes blobs (cache_admin.h), so this never exists, not even for a
// moment longer than a put-back; the next pull of the model would heal it (fetch it again),
// which is why the final verify alone cannot see it. Returns "<model>:<version> <file> (<sha256>)".
std::vector<std::string> manifests_missing_blobs(const fs::path& cache) {
  std::vector<std::pair<std::string, std::string>> suspects;  // (description, manifest path)
  std::vector<std::string> blobs;
  for (const auto& v : core::list_cache(cache).models) {
    if (v.complete) continue;
    for (const auto& f : v.files) {
      std::error_code ec;
      if (fs::exists(cache / "blobs" / "sha256" / f.sha256, ec) || ec) continue;
      suspects.push_back({v.name + ":" + v.version + " " + f.name + " (" + f.sha256 + ")",
                          (cache / "manifests" / v.name / (v.version + ".json")).string()});
      blobs.push_back(f.sha256);
    }
  }
  std::vector<std::string> out;
  if (suspects.empty()) return out;
  std::this_thread::sleep_for(500ms);
  for (std::size_t i = 0; i < suspects.size(); ++i) {
    std::error_code ec;
    if (fs::exists(cache / "blobs" / "sha256" / blobs[i], ec) || ec) continue;
    if (read_all(suspects[i].second).find(blobs[i]) == std::string::npos) continue;  // uncached meanwhile
    out.push_back(suspects[i].first);
  }
  return out;
}

// ------------------------------------------------------------------ load generator
// What one client thread asks of one daemon.
struct LoadPlan {
  std::string daemon;                 // main, small
  fs::path runtime_dir, cache_dir;
  std::vector<std::string> pool;      // models to pick from (repeated = weighted)
  int meta_percent = 40, list_percent = 15;  // of calls; the rest are pulls and loads
  int load_percent = 0;               // of those: load (runs the load hooks)
  int rm_percent = 70;                // of those: `cache rm` of the model first
};

void client_thread(int index, std::uint64_t seed, const LoadPlan& plan, const Catalog& catalog, Shared& sh,
                   std::atomic<std::int64_t>& first_ok_after_restart_ms, std::atomic<Clock::rep>& restart_ready_at) {
  std::mt19937_64 rng(seed * 7919 + static_cast<std::uint64_t>(index));
  std::unique_ptr<Client> client;
  while (!sh.stop) {
    if (!client) {
      try {
        client = std::make_unique<Client>(plan.runtime_dir.string());
      } catch (const DaemonUnavailable&) {
        std::this_thread::sleep_for(20ms);  // the daemon is being restarted: try again
        continue;
      }
    }
    int dice = static_cast<int>(rng() % 100);
    Outcome o;
    o.daemon = plan.daemon;
    o.start = Clock::now();
    std::string model = plan.pool[rng() % plan.pool.size()];
    json reply;
    Shared::Removals removals;
    try {
      if (dice < plan.meta_percent) {
        o.kind = "meta";
        o.deadline = kMetaDeadline;
        switch (rng() % 4) {
          case 0: client->call("status", {}, o.deadline); break;
          case 1: client->call("plugins", {}, o.deadline); break;
          case 2: client->call("ping", {}, o.deadline); break;
          default: client->call("show", {{"model", model}}, o.deadline); break;
        }
      } else if (dice < plan.meta_percent + plan.list_percent) {
        o.kind = "list";
        o.deadline = kMetaDeadline;
        client->call("models", {}, o.deadline);
      } else {
        o.kind = static_cast<int>(rng() % 100) < plan.load_percent ? "load" : "pull";
        o.model = model;
        o.deadline = kPullDeadline;
        if (static_cast<int>(rng() % 100) < plan.rm_percent) {  // make the next pull transfer again
          if (remove_model(sh, plan.daemon, plan.cache_dir, model)) sh.cache_removals++;
        }
        removals = sh.removals_of(plan.daemon + ":" + model);
        o.start = Clock::now();
        reply = o.kind == "load" ? client->load(model, {}, o.deadline) : client->pull(model, {}, o.deadline);
        o.bytes = reply.value("bytes_downloaded", std::uint64_t{0});
        o.source = reply.value("source", "");
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
    if (o.result == "ok" && (o.kind == "pull" || o.kind == "load"))
      o.check = check_success(reply, catalog.at(model), sh, plan.daemon + ":" + model, removals, plan.cache_dir, model);
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

// ------------------------------------------------------------------ daemon resources
// RSS and open fds of each daemon every kSampleEvery, per incarnation (a restarted daemon
// is a new one); at the end their first, last and highest values and a least-squares slope.
class ResourceSampler {
 public:
  explicit ResourceSampler(Clock::time_point t0) : t0_(t0) {}
  void watch(const std::string& daemon, const std::atomic<pid_t>* pid) {
    std::lock_guard lock(mu_);
    watched_.push_back({daemon, pid});
  }
  void sample_now() {
    std::lock_guard lock(mu_);
    for (const auto& [daemon, pid_ptr] : watched_) {
      pid_t pid = pid_ptr->load();
      if (pid <= 0) continue;
      auto rss = proc_rss_kib(pid);
      auto fds = proc_fd_count(pid);
      if (!rss || !fds) continue;  // between a death and a restart
      auto it = std::find_if(incarnations_.rbegin(), incarnations_.rend(), [&](const Incarnation& i) { return i.daemon == daemon; });
      if (it == incarnations_.rend() || it->pid != pid) {
        int number = it == incarnations_.rend() ? 1 : it->number + 1;
        incarnations_.push_back({daemon, number, pid, {}});
        it = incarnations_.rbegin();
      }
      it->samples.push_back({std::chrono::duration<double>(Clock::now() - t0_).count(), *rss, *fds});
    }
  }
  void run(const std::atomic<bool>& stop) {
    auto next = Clock::now();
    while (!stop) {
      if (Clock::now() >= next) {
        sample_now();
        next += kSampleEvery;
      }
      std::this_thread::sleep_for(100ms);
    }
  }

  json trend() const {
    std::lock_guard lock(mu_);
    json out = json::array();
    for (const auto& inc : incarnations_) {
      std::vector<double> t, rss, fds;
      for (const auto& s : inc.samples) {
        t.push_back(s.t_s / 3600.0);
        rss.push_back(static_cast<double>(s.rss_kib));
        fds.push_back(static_cast<double>(s.fds));
      }
      const bool long_enough = inc.samples.back().t_s - inc.samples.front().t_s >= kMinSlopeSpan;
      auto series = [&](const std::vector<double>& v) {
        json slope = nullptr;
        if (auto s = slope_of(t, v); s && long_enough) slope = std::round(*s * 10) / 10;
        return json{{"first", v.front()}, {"last", v.back()}, {"max", *std::max_element(v.begin(), v.end())},
                    {"slope_per_hour", slope}};
      };
      out.push_back({{"daemon", inc.daemon},
                     {"incarnation", inc.number},
                     {"pid", inc.pid},
                     {"samples", inc.samples.size()},
                     {"from_s", std::round(inc.samples.front().t_s)},
                     {"to_s", std::round(inc.samples.back().t_s)},
                     {"rss_kib", series(rss)},
                     {"fds", series(fds)}});
    }
    return out;
  }

 private:
  struct Sample {
    double t_s;
    std::uint64_t rss_kib;
    std::size_t fds;
  };
  struct Incarnation {
    std::string daemon;
    int number;
    pid_t pid;
    std::vector<Sample> samples;
  };
  // Least squares slope of v over t; nullopt with fewer than two distinct times.
  static std::optional<double> slope_of(const std::vector<double>& t, const std::vector<double>& v) {
    if (t.size() < 2) return std::nullopt;
    double mt = 0, mv = 0;
    for (std::size_t i = 0; i < t.size(); ++i) mt += t[i], mv += v[i];
    mt /= static_cast<double>(t.size());
    mv /= static_cast<double>(t.size());
    double num = 0, den = 0;
    for (std::size_t i = 0; i < t.size(); ++i) num += (t[i] - mt) * (v[i] - mv), den += (t[i] - mt) * (t[i] - mt);
    if (den <= 0) return std::nullopt;
    return num / den;
  }
  Clock::time_point t0_;
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, const std::atomic<pid_t>*>> watched_;
  std::vector<Incarnation> incarnations_;
};

// "main#1 pid 123: 31 samples, 0.0-300.0 s; RSS 12.1 -> 14.0 MiB (max 15.2), +0.4 MiB/h; fds 40 -> 41 (max 52), +1.0/h"
std::string describe_trend(const json& inc) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(1);
  auto mib = [](const json& v) { return v.get<double>() / 1024.0; };
  const json &r = inc["rss_kib"], &f = inc["fds"];
  s << inc["daemon"].get<std::string>() << "#" << inc["incarnation"] << " pid " << inc["pid"] << ": " << inc["samples"]
    << " samples, " << inc["from_s"].get<double>() << "-" << inc["to_s"].get<double>() << " s; RSS " << mib(r["first"]) << " -> "
    << mib(r["last"]) << " MiB (max " << mib(r["max"]) << "), ";
  const std::string no_slope = "no slope (under " + std::to_string(static_cast<int>(kMinSlopeSpan)) + " s of samples)";
  if (r["slope_per_hour"].is_null()) s << no_slope;
  else s << std::showpos << mib(r["slope_per_hour"]) << std::noshowpos << " MiB/h";
  auto whole = [](const json& v) { return std::to_string(std::llround(v.get<double>())); };
  s << "; fds " << whole(f["first"]) << " -> " << whole(f["last"]) << " (max " << whole(f["max"]) << "), ";
  if (f["slope_per_hour"].is_null()) s << no_slope;
  else s << std::showpos << f["slope_per_hour"].get<double>() << std::noshowpos << "/h";
  return s.str();
}

// ------------------------------------------------------------------ end checks of a cache
struct CacheChecks {
  core::VerifyReport verify;
  core::CacheListing listing;
  std::size_t partials = 0, partial_bytes = 0;
  std::vector<std::string> stray;
};

// After a clean stop: every blob re-hashed, no orphan blob (every model was pulled last, so
// every blob a pull committed is referenced), and temporary files only where allowed:
// tmp/<sha256>.partial of interrupted transfers (kept for resume) with their tmp/<sha256>.lock,
// held by nobody. Nothing else: no dot-file temporaries of manifests or view links, nothing
// in staging/.
CacheChecks check_cache(const fs::path& cache, const std::string& label, Shared& sh) {
  CacheChecks c;
  c.verify = core::verify_cache(cache);
  for (const auto& x : c.verify.corrupt) sh.fail(label + "corrupt blob " + x.expected + " (actual " + x.actual + x.error + ")");
  for (const auto& m : c.verify.missing) sh.fail(label + "blob " + m.sha256 + " listed by a manifest is missing");
  for (const auto& p : c.verify.problems) sh.fail(label + "cache problem: " + p.path.string() + ": " + p.reason);
  c.listing = core::list_cache(cache);
  for (const auto& o : c.listing.orphans)
    sh.fail(label + "orphan blob " + o.sha256 + " (" + std::to_string(o.size) + " bytes) that no manifest lists after the final pulls");
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(cache, ec); it != fs::recursive_directory_iterator(); it.increment(ec)) {
    fs::path rel = fs::relative(it->path(), cache);
    std::string top = rel.begin()->string(), fname = rel.filename().string();
    if (top == "tmp" && rel.parent_path() == "tmp") {
      bool hex = fname.size() > 64 && std::all_of(fname.begin(), fname.begin() + 64, ::isxdigit);
      if (hex && fname.substr(64) == ".partial") {
        ++c.partials;
        c.partial_bytes += it->is_regular_file() ? fs::file_size(it->path(), ec) : 0;
        continue;
      }
      if (hex && fname.substr(64) == ".lock") continue;
      c.stray.push_back(rel.string());
    } else if (top == "staging" && rel != "staging") {
      c.stray.push_back(rel.string());
    } else if (!fname.empty() && fname[0] == '.') {
      c.stray.push_back(rel.string());
    }
  }
  for (const auto& s : c.stray) sh.fail(label + "temporary file left in the cache: " + s);
  for (const auto& p : c.listing.partials)
    if (p.receiving) sh.fail(label + "partial " + p.sha256 + " is still locked after the daemon stopped");
  return c;
}

// Waits until a daemon holds no client request but the status call asking (a call given up
// by its client at the deadline is still answered by the daemon later: allow for the
// longest deadline). Returns the requests in flight less that one.
std::int64_t wait_requests_drained(const fs::path& runtime_dir, const std::string& label, Shared& sh) {
  std::int64_t in_flight = -1;
  if (!wait_until([&] {
        try {
          Client c(runtime_dir.string());
          in_flight = c.status().value("requests_in_flight", std::int64_t{-1});
          return in_flight <= 1;
        } catch (const std::exception&) {
          return false;
        }
      }, kPullDeadline + 5s))
    sh.fail(label + "the daemon still holds " + std::to_string(in_flight - 1) + " client request(s) nobody waits for");
  return in_flight - 1;
}

bool plugins_ready(const fs::path& runtime_dir, std::chrono::milliseconds limit) {
  return wait_until([&] {
    try {
      Client c(runtime_dir.string());
      auto ps = c.plugins()["plugins"];
      return std::all_of(ps.begin(), ps.end(), [](const json& p) { return p["state"] == "ready"; });
    } catch (const std::exception&) {
      return false;
    }
  }, limit);
}

std::string not_ready(const fs::path& runtime_dir) {
  std::string out;
  try {
    Client c(runtime_dir.string());
    for (const auto& p : c.plugins()["plugins"])
      if (p["state"] != "ready")  // appended: '" " + std::string' trips GCC 12's false -Wrestrict at -O3
        out.append(" ").append(p["name"].get<std::string>()).append("(").append(p["state"].get<std::string>()).append(")");
  } catch (const std::exception& e) {
    out = std::string(" (no answer: ") + e.what() + ")";
  }
  return out;
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
  Shared sh;
  auto log = [&](const std::string& s) {
    if (!opt.json) std::cerr << s << "\n";
  };
  log("modelzoo-chaos: seed " + std::to_string(opt.seed) + ", " + std::to_string(opt.seconds) + " s, " +
      std::to_string(opt.clients) + " clients, directory " + dir.string());
  const Catalog catalog = make_catalog();
  std::vector<std::string> parent_env;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("MODELZOO_", 0) != 0) parent_env.emplace_back(*e);

  // ---- the extras, each skipped with its reason when this machine or build cannot have it
  Extras x;
  auto have = [&](const char* exe) { return fs::exists(opt.bin_dir / exe); };
  if (have("modelzoo-test-extension")) {
    x.extensions = true;
    x.ext_dir = dir / "ext";
    fs::create_directories(x.ext_dir);
    for (const auto& p : kHookPoints) std::ofstream(x.ext_dir / ("disarmed-" + p)) << "disarmed\n";
  } else {
    x.skipped["extensions"] = "modelzoo-test-extension is not built (tests/helpers)";
  }
  Child http_server;
  const fs::path http_port_file = dir / "http-port";
  auto start_http = [&]() -> bool {
    std::error_code ec;
    fs::remove(http_port_file, ec);
    if (!http_server.spawn({(opt.bin_dir / "modelzoo-http-registry").string(), "--root", x.http_root.string(), "--listen",
                            "127.0.0.1:" + std::to_string(x.http_port), "--port-file", http_port_file.string(),
                            "--throttle", std::to_string(kHttpThrottle)},
                           parent_env, dir / "http-server.log"))
      return false;
    return wait_until([&] { return fs::exists(http_port_file) || !http_server.running(); }, 10s) && http_server.running();
  };
  if (!have("modelzoo-http-registry") || !have("modelzoo-plugin-remote")) {
    x.skipped["http_registry"] = "modelzoo-http-registry or modelzoo-plugin-remote is not built (needs libcpp-httplib-dev)";
  } else {
    x.http_root = dir / "http-models";
    write_tree(catalog, x.http_root, {http_model(0), http_model(1)});
    x.http_port = free_port();
    if (x.http_port > 0 && start_http()) x.http = true;
    else x.skipped["http_registry"] = "the HTTP registry server did not start: " + read_all(dir / "http-server.log");
  }
  Child peer;
  auto start_peer = [&]() -> bool {
    return peer.spawn({(opt.bin_dir / "modelzoo-plugin-memory").string()},
                      {"PATH=/usr/bin:/bin", "MODELZOO_ENDPOINT=tcp://127.0.0.1:" + std::to_string(x.tcp_port),
                       "MODELZOO_SERVER_KEY=" + x.server_public, "MODELZOO_KEY_FILE=" + (x.keys_dir / "gpu-box.key").string(),
                       "MODELZOO_PLUGIN_ID=" + kTcpSource.name},
                      dir / "peer.log");
  };
  if (!bus::curve_available()) {
    x.skipped["tcp_peer"] = "libzmq has no CURVE";
  } else {
    try {
      x.keys_dir = dir / "keys";
      auto server = bus::generate_key_pair(), gpu = bus::generate_key_pair();
      bus::write_key_pair(x.keys_dir, "server", server);
      bus::write_key_pair(x.keys_dir, kTcpSource.name, gpu);
      x.server_public = server.public_key;
      x.peer_public = gpu.public_key;
      x.tcp_port = free_port();
      x.tcp = x.tcp_port > 0;
      if (!x.tcp) x.skipped["tcp_peer"] = "no free loopback port";
    } catch (const std::exception& e) {
      x.skipped["tcp_peer"] = std::string("no CURVE keys: ") + e.what();
    }
  }

  write_config(dir, catalog, x, opt.bin_dir);
  DaemonProcess daemon(opt.bin_dir, dir);
  if (!daemon.start()) {
    std::cerr << "modelzood did not start; log:\n" << read_all(daemon.log_path());
    return 1;
  }
  if (x.tcp && !start_peer()) {
    std::cerr << "cannot start the remote plugin peer\n";
    return 1;
  }
  auto all_ready = [&](std::chrono::milliseconds limit) { return plugins_ready(daemon.runtime_dir(), limit); };
  if (!all_ready(30s)) {
    std::cerr << "the plugins did not all become ready:" << not_ready(daemon.runtime_dir()) << "; log:\n"
              << read_all(daemon.log_path());
    return 1;
  }

  // The second daemon, its cache on a small tmpfs (declared before the daemon: unmounted after it is gone).
  std::optional<SmallFilesystem> small_fs;
  std::unique_ptr<DaemonProcess> small;
  small_fs.emplace(dir / "small" / "cache", kSmallFs);
  if (!small_fs->mounted()) {
    x.skipped["small_cache"] = small_fs->why_not();
  } else {
    write_small_config(dir / "small", catalog);
    small = std::make_unique<DaemonProcess>(opt.bin_dir, dir / "small");
    if (!small->start() || !plugins_ready(small->runtime_dir(), 30s)) {
      std::cerr << "the small-cache daemon did not start; log:\n" << read_all(small->log_path());
      return 1;
    }
    x.small = true;
  }
  for (const auto& [what, why] : x.skipped) log("chaos: no " + what + ": " + why);

  // ---- load, events, resources
  std::atomic<std::int64_t> first_ok_after_restart_ms{-1};
  std::atomic<Clock::rep> restart_ready_at{0};  // when the daemon was started again (0: not yet)
  std::atomic<std::int64_t> small_first_ok{-1};
  std::atomic<Clock::rep> small_restart_at{0};   // never restarted on purpose
  const auto started = Clock::now();
  ResourceSampler sampler(started);
  sampler.watch("main", &daemon.live_pid());
  if (small) sampler.watch("small", &small->live_pid());
  std::atomic<bool> sampling_done{false};
  std::thread sampling([&] { sampler.run(sampling_done); });
  std::thread events(event_thread, daemon.runtime_dir(), std::ref(sh));
  LoadPlan main_plan;
  main_plan.daemon = "main";
  main_plan.runtime_dir = daemon.runtime_dir();
  main_plan.cache_dir = daemon.cache_dir();
  main_plan.load_percent = 25;
  for (int i = 0; i < kModels; ++i) main_plan.pool.insert(main_plan.pool.end(), 5, model_name(i));
  main_plan.pool.insert(main_plan.pool.end(), 4, kLocalOnly);
  for (int i = 0; i < kSharedModels; ++i) main_plan.pool.insert(main_plan.pool.end(), 3, shared_model(i));
  for (int i = 0; i < 2; ++i) {
    if (x.http) main_plan.pool.insert(main_plan.pool.end(), 2, http_model(i));
    if (x.tcp) main_plan.pool.insert(main_plan.pool.end(), 2, tcp_model(i));
  }
  LoadPlan small_plan;
  if (small) {
    small_plan.daemon = "small";
    small_plan.runtime_dir = small->runtime_dir();
    small_plan.cache_dir = small->cache_dir();
    small_plan.meta_percent = 10;
    small_plan.list_percent = 0;
    small_plan.rm_percent = 20;
    for (int i = 0; i < kSmallModels; ++i) small_plan.pool.insert(small_plan.pool.end(), 4, small_model(i));
    small_plan.pool.insert(small_plan.pool.end(), 2, kTooBig);
  }
  std::vector<std::thread> clients;
  for (int i = 0; i < opt.clients; ++i)
    clients.emplace_back(client_thread, i, opt.seed, std::cref(main_plan), std::cref(catalog), std::ref(sh),
                         std::ref(first_ok_after_restart_ms), std::ref(restart_ready_at));
  for (int i = 0; small && i < 2; ++i)  // two, so that pulls race for the last free bytes
    clients.emplace_back(client_thread, 1000 + i, opt.seed, std::cref(small_plan), std::cref(catalog), std::ref(sh),
                         std::ref(small_first_ok), std::ref(small_restart_at));

  // ---- chaos
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
  // Counts of the actions beyond plugin signals, for the figures.
  std::map<std::string, std::uint64_t> cache_acts, http_acts, peer_acts, small_acts;
  std::map<std::string, int> ext_armed, ext_fired, ext_unfired;
  std::set<std::string> armed;
  std::optional<Clock::time_point> http_restart_at, peer_restart_at, http_down_since;
  std::vector<double> http_down_ms;
  std::map<std::string, int> cache_damage;  // per cache: manifests seen listing a missing blob
  std::set<std::string> damage_reported;
  auto audit = [&] {
    std::vector<std::pair<std::string, fs::path>> caches = {{"main", daemon.cache_dir()}};
    if (small) caches.emplace_back("small", small->cache_dir());
    for (const auto& [label, cache] : caches) {
      try {
        for (const auto& d : manifests_missing_blobs(cache)) {
          ++cache_damage[label];
          if (damage_reported.insert(label + d).second)
            sh.fail(label + " cache: the manifest of " + d.substr(0, d.find(' ')) + " lists a blob that is gone: " + d);
        }
      } catch (const std::exception& e) {
        sh.fail(label + " cache: the audit failed: " + e.what());
      }
    }
  };

  // Restarts due, helpers that went on their own, extension crashes that happened.
  auto tend = [&] {
    auto now = Clock::now();
    if (x.http && !http_server.running()) {
      if (!http_restart_at) {
        ++http_acts["exited_on_its_own"];
        http_restart_at = now;
        http_down_since = now;
      }
      if (now >= *http_restart_at) {
        if (start_http()) {
          ++http_acts["restarts"];
          if (http_down_since) http_down_ms.push_back(static_cast<double>(ms_since(*http_down_since)));
          http_restart_at.reset();
          http_down_since.reset();
        } else {
          ++http_acts["restart_failed"];
          http_restart_at = now + 1s;
        }
      }
    }
    if (x.tcp && !peer.running()) {
      if (!peer_restart_at) {
        ++peer_acts["exited_on_its_own"];  // dropped by the daemon, or the daemon went silent
        peer_restart_at = now + 200ms;
      }
      if (now >= *peer_restart_at) {
        if (start_peer()) ++peer_acts["restarts"];
        peer_restart_at.reset();
      }
    }
    for (auto it = armed.begin(); it != armed.end();) {
      if (fs::exists(x.ext_dir / ("disarmed-" + *it))) {
        ++ext_fired[*it];
        it = armed.erase(it);
      } else {
        ++it;
      }
    }
  };

  // One action beyond the plugin signals, chosen by `dice` (45..99); false when it does not
  // apply here (the loop then signals a plugin).
  auto extra_action = [&](int dice) -> bool {
    try {
      if (dice < 55) {
        // cache rm of models sharing shared.bin with others of them being pulled; half the
        // time two of them back to back (issue 19's m-share reproduction, at random).
        int n = rng() % 2 == 0 ? 2 : 1;
        int first = static_cast<int>(rng() % kSharedModels);
        for (int k = 0; k < n; ++k) {
          core::RemoveReport r;
          if (remove_model(sh, "main", daemon.cache_dir(), shared_model((first + k) % kSharedModels), &r)) {
            ++cache_acts["rm"];
            cache_acts["rm_blobs_removed"] += r.blobs_removed;
            cache_acts["rm_blobs_kept_shared"] += r.blobs_kept;
            cache_acts["rm_blobs_kept_in_use"] += r.blobs_kept_in_use;
          } else {
            ++cache_acts["rm_not_cached"];
          }
        }
        return true;
      }
      if (dice < 61) {
        // cache prune; half the time with every blob made older than the grace period first
        // (as in a cache used for longer than that, or a pull running that long): then every
        // blob no manifest lists is a candidate, and only pins protect pulls in flight.
        core::PruneOptions po;
        if (rng() % 2 == 0) {
          ++cache_acts["prune_aged"];
          po.partial_age = std::chrono::seconds(0);
          std::error_code ec;
          auto old = fs::file_time_type::clock::now() - core::kBlobGracePeriod - 1min;
          for (const auto& b : fs::directory_iterator(daemon.cache_dir() / "blobs" / "sha256", ec)) {
            std::error_code ec2;
            fs::last_write_time(b.path(), old, ec2);
          }
        } else {
          ++cache_acts["prune"];
        }
        auto r = core::prune_cache(daemon.cache_dir(), po);
        cache_acts["prune_blobs_removed"] += r.blobs_removed;
        cache_acts["prune_blobs_kept_in_use"] += r.blobs_kept_in_use;
        cache_acts["prune_blobs_kept_recent"] += r.blobs_kept_recent;
        cache_acts["prune_partials_removed"] += r.partials_removed;
        cache_acts["prune_partials_kept"] += r.partials_kept;
        return true;
      }
      if (dice < 71) {
        if (!x.extensions) return false;
        const std::string& point = kHookPoints[rng() % kHookPoints.size()];
        if (armed.count(point)) return false;
        std::error_code ec;
        fs::remove(x.ext_dir / ("disarmed-" + point), ec);
        armed.insert(point);
        ++ext_armed[point];
        return true;
      }
      if (dice < 79) {
        if (!x.http || !http_server.running() || http_restart_at) return false;
        http_server.kill9();  // mid-transfer or not; connections are refused until it is back
        ++http_acts["kills"];
        http_down_since = Clock::now();
        http_restart_at = Clock::now() + std::chrono::milliseconds(1000 + rng() % 3000);
        return true;
      }
      if (dice < 87) {
        if (!x.tcp || !peer.running() || proc_state(peer.pid()) == 'T') return false;
        if (rng() % 10 < 6) {
          peer.kill9();  // the TCP connection drops with it
          ++peer_acts["kills"];
          peer_restart_at = Clock::now() + std::chrono::milliseconds(300 + rng() % 2000);
        } else {
          // Frozen past the heartbeat deadline (the daemon drops it), then woken.
          ::kill(peer.pid(), SIGSTOP);
          ++peer_acts["freezes"];
          std::this_thread::sleep_for(hb_deadline + 2 * std::chrono::milliseconds(kHeartbeatMs));
          ::kill(peer.pid(), SIGCONT);
        }
        return true;
      }
      if (!small) return false;
      if (remove_model(sh, "small", small->cache_dir(), small_model(static_cast<int>(rng() % kSmallModels)))) ++small_acts["rm"];
      else ++small_acts["rm_not_cached"];
      return true;
    } catch (const std::exception& e) {
      sh.fail(std::string("chaos action failed: ") + e.what());
      return true;
    }
  };

  while (Clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 900));  // pacing of the chaos, not a wait on a condition
    if (daemon.exited()) {
      ++unplanned_deaths;
      sh.fail("the daemon died unplanned (status " + std::to_string(daemon.last_status()) + ")");
      admin.reset();
      if (!daemon.start()) break;
      continue;
    }
    if (small && small->exited()) {
      ++unplanned_deaths;
      sh.fail("the small-cache daemon died unplanned (status " + std::to_string(small->last_status()) + ")");
      if (!small->start()) break;
    }
    tend();
    audit();
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
    if (int dice = static_cast<int>(rng() % 100); dice >= 45 && extra_action(dice)) continue;
    json plugins;
    try {
      if (!admin) admin = std::make_unique<Client>(daemon.runtime_dir().string());
      plugins = admin->call("plugins", {}, 5s)["plugins"];
    } catch (const std::exception& e) {
      admin.reset();
      continue;
    }
    std::vector<json> ready;
    for (const auto& p : plugins)  // not the remote peer: it is not the daemon's process (see above for it)
      if (p["state"] == "ready" && p["pid"].get<int>() > 0 && !p.value("remote", false)) ready.push_back(p);
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
  sampler.sample_now();

  // ---- the chaos is over: no extension crashes any more, the helpers are back
  tend();
  for (const auto& point : armed) {
    std::ofstream(x.ext_dir / ("disarmed-" + point)) << "disarmed\n";
    ++ext_unfired[point];
  }
  armed.clear();
  if (x.http && !http_server.running()) {
    if (wait_until([&] { return start_http(); }, 10s)) ++http_acts["restarts"];
    else sh.fail("the HTTP registry server could not be started again on port " + std::to_string(x.http_port));
    if (http_down_since) http_down_ms.push_back(static_cast<double>(ms_since(*http_down_since)));
    http_restart_at.reset();
    http_down_since.reset();
  }
  if (x.tcp) {
    if (peer.running() && proc_state(peer.pid()) == 'T') ::kill(peer.pid(), SIGCONT);
    if (!peer.running() && start_peer()) ++peer_acts["restarts"];
  }

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
  if (small && small->exited()) {
    ++unplanned_deaths;
    sh.fail("the small-cache daemon died unplanned (status " + std::to_string(small->last_status()) + ")");
    small->start();
  }

  // ---- no request is lost inside the daemon: once the clients are gone, the only one in
  // flight is the status call asking.
  admin.reset();
  const std::int64_t in_flight = wait_requests_drained(daemon.runtime_dir(), "", sh);
  const std::int64_t small_in_flight = small ? wait_requests_drained(small->runtime_dir(), "small cache: ", sh) : 0;

  // ---- settle: every source back, every model pullable with the bytes it should have
  if (!wait_until([&] { tend(); return plugins_ready(daemon.runtime_dir(), 0ms); }, 30s))
    sh.fail("the plugins were not all ready 30 s after the chaos stopped:" + not_ready(daemon.runtime_dir()));
  const std::vector<std::string> all_models = registry_models(x.http, x.tcp);
  int final_checked = 0;
  try {
    Client c(daemon.runtime_dir().string());
    for (const auto& m : all_models) {
      try {
        auto r = c.pull(m, {}, kPullDeadline);
        auto check = check_success(r, catalog.at(m), sh, "main:" + m, sh.removals_of("main:" + m), daemon.cache_dir(), m);
        ++final_checked;
        if (check != "good") sh.fail("after the chaos, the pull of " + m + " answered a " + check);
      } catch (const std::exception& e) {
        sh.fail("after the chaos, pulling " + m + " failed: " + e.what());
      }
    }
  } catch (const std::exception& e) {
    sh.fail(std::string("after the chaos, no client could connect: ") + e.what());
  }
  // The small cache: each model alone (the others removed) fits and pulls; t-big never does.
  json small_final = json::object();
  if (small) {
    if (!plugins_ready(small->runtime_dir(), 30s))
      sh.fail("small cache: the plugins were not all ready 30 s after the chaos stopped:" + not_ready(small->runtime_dir()));
    try {
      Client c(small->runtime_dir().string());
      int pulled = 0;
      for (int k = 0; k < kSmallModels; ++k) {
        for (int j = 0; j < kSmallModels; ++j)
          if (j != k) remove_model(sh, "small", small->cache_dir(), small_model(j));
        const std::string m = small_model(k);
        try {
          auto r = c.pull(m, {}, kPullDeadline);
          auto check = check_success(r, catalog.at(m), sh, "small:" + m, sh.removals_of("small:" + m), small->cache_dir(), m);
          ++final_checked;
          ++pulled;
          if (check != "good") sh.fail("small cache: after the chaos, the pull of " + m + " answered a " + check);
        } catch (const std::exception& e) {
          sh.fail("small cache: after the chaos, pulling " + m + " alone failed: " + e.what());
        }
      }
      small_final["pulled_alone"] = pulled;
      try {
        c.pull(kTooBig, {}, kPullDeadline);
        sh.fail("small cache: " + kTooBig + " (12 MiB) was pulled into a 10 MiB filesystem");
      } catch (const bus::Error& e) {
        small_final["too_big"] = std::string(bus::to_string(e.code())) + ": " + e.what();
        if (e.code() != bus::ErrorCode::unavailable || std::string(e.what()).find("not enough space") == std::string::npos)
          sh.fail("small cache: " + kTooBig + " did not fail fast with 'unavailable: not enough space': " + e.what());
      }
    } catch (const std::exception& e) {
      sh.fail(std::string("small cache: after the chaos, no client could connect: ") + e.what());
    }
  }
  sampler.sample_now();
  sampling_done = true;
  sampling.join();

  // ---- clean stop
  auto clean_stop = [&](DaemonProcess& d, const std::string& label) -> std::size_t {
    std::set<pid_t> daemon_pids = d.pids();
    auto stop_status = d.stop(60s);
    if (!stop_status) sh.fail(label + "the daemon did not stop within 60 s of SIGTERM");
    else if (!WIFEXITED(*stop_status) || WEXITSTATUS(*stop_status) != 0)
      sh.fail(label + "the daemon's clean stop ended with status " + std::to_string(*stop_status));
    auto leftover = our_plugin_processes(d.runtime_dir(), daemon_pids);
    if (!leftover.empty()) {
      std::string list;
      for (auto p : leftover) list.append(" ").append(std::to_string(p)).append("(").append(proc_exe(p)).append(")");
      sh.fail(label + "plugin processes left after the clean stop:" + list);
      for (auto p : leftover) ::kill(p, SIGKILL);
    }
    // The runtime directory keeps only the lock file after a clean stop.
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(d.runtime_dir(), ec))
      if (e.path().filename() != "modelzood.lock") sh.fail(label + "left in the runtime directory: " + e.path().filename().string());
    return leftover.size();
  };
  const std::size_t leftover = clean_stop(daemon, "");
  const std::size_t small_leftover = small ? clean_stop(*small, "small cache: ") : 0;
  peer.kill9();
  http_server.kill9();

  // ---- the caches
  auto cache = check_cache(daemon.cache_dir(), "", sh);
  std::set<std::string> complete;
  for (const auto& v : cache.listing.models) {
    if (v.complete) complete.insert(v.name);
    else sh.fail("cached " + v.name + ":" + v.version + " is incomplete after the final pull");
  }
  for (const auto& m : all_models)
    if (!complete.count(m)) sh.fail(m + " is not in the cache after the final pull");
  // The kept partials are reclaimable: prune --all removes every one (nobody holds them).
  auto pruned = core::prune_cache(daemon.cache_dir(), {.partial_age = std::chrono::seconds(0)});
  if (pruned.partials_removed != cache.partials)
    sh.fail("prune --all removed " + std::to_string(pruned.partials_removed) + " of " + std::to_string(cache.partials) +
            " kept partial(s)");
  std::optional<CacheChecks> small_cache;
  if (small) {
    small_cache = check_cache(small->cache_dir(), "small cache: ", sh);
    auto p = core::prune_cache(small->cache_dir(), {.partial_age = std::chrono::seconds(0)});
    if (p.partials_removed != small_cache->partials)
      sh.fail("small cache: prune --all removed " + std::to_string(p.partials_removed) + " of " +
              std::to_string(small_cache->partials) + " kept partial(s)");
  }
  small.reset();
  small_fs->unmount();

  // ---- figures
  std::map<std::string, std::map<std::string, int>> by_kind;
  std::map<std::string, int> errors, small_errors;
  std::map<std::string, std::vector<std::string>> error_samples;
  int hung = 0, unexpected_unavailable = 0, failover_pulls = 0, untyped = 0, requests = 0, successes = 0;
  int checked = 0, good = 0, unverified = 0, bad = 0, no_space = 0, other_space = 0;
  std::uint64_t bytes = 0;
  std::map<std::string, int> pull_sources;
  for (const auto& o : sh.outcomes) {
    const bool is_main = o.daemon == "main";
    const std::string kind = is_main ? o.kind : o.daemon + "-" + o.kind;
    ++requests;
    by_kind[kind]["total"]++;
    by_kind[kind][o.result == "ok" ? "ok" : "error"]++;
    if (o.result == "ok") ++successes;
    if (o.result != "ok") {
      if (o.result.rfind("untyped", 0) == 0) {
        ++untyped;
        sh.fail("an untyped failure: " + kind + ": " + o.result);
      } else {
        (is_main ? errors : small_errors)[o.result]++;
      }
      auto& samples = error_samples[is_main ? o.result : o.daemon + " " + o.result];
      std::string text = kind + ": " + o.message.substr(0, 300);
      if (samples.size() < 4 && std::find(samples.begin(), samples.end(), text) == samples.end()) samples.push_back(text);
      if (!is_main && o.message.find("not enough space") != std::string::npos) ++no_space;
      else if (!is_main && o.message.find("space") != std::string::npos) ++other_space;
    }
    if (!o.check.empty()) {
      ++checked;
      if (o.check == "good") ++good;
      else if (o.check.rfind("unverified", 0) == 0) ++unverified;
      else {
        ++bad;
        sh.fail("bad success: " + kind + " of " + o.model + " (from " + o.source + "): " + o.check);
      }
    }
    if (o.end - o.start > o.deadline + kOverrunGrace) {
      ++hung;
      sh.fail(kind + " took " + std::to_string(ms_since(o.start, o.end)) + " ms, past its deadline of " +
              std::to_string(o.deadline.count()) + " ms");
    }
    if (o.result == "daemon_unavailable") {
      bool planned = is_main && sh.daemon_killed_at && o.end >= *sh.daemon_killed_at && sh.daemon_back_at &&
                     o.start <= *sh.daemon_back_at + 2s;
      if (!planned) {
        ++unexpected_unavailable;
        sh.fail("'daemon unavailable' outside the planned daemon kill (" + kind + ")");
      }
    }
    if (is_main && (o.kind == "pull" || o.kind == "load") && o.result == "ok") {
      bytes += o.bytes;
      pull_sources[o.source]++;
      // Every memory source has chaos/m*, so anything but the best one is a failover.
      if (o.model.rfind("chaos/m", 0) == 0 && o.source != kMemorySources[0].name && o.source != "cache") ++failover_pulls;
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
  auto skipped_or = [&](bool on, const std::string& what, json j) { return on ? j : json{{"skipped", x.skipped[what]}}; };
  cache_acts["client_rm_before_pull"] = static_cast<std::uint64_t>(sh.cache_removals.load());

  json figures = {
      {"seed", opt.seed},
      {"seconds", opt.seconds},
      {"clients", opt.clients},
      {"duration_ms", ms_since(started, load_end)},
      {"chaos_ms", ms_since(started, chaos_end)},
      {"requests", by_kind},
      {"requests_total", requests},
      {"successes", successes},
      {"errors", errors},
      {"error_samples", error_samples},
      {"success_check", {{"successes_checked", checked}, {"good", good}, {"unverified_removed_meanwhile", unverified},
                         {"bad_successes", bad}, {"final_pulls_checked", final_checked},
                         {"files_rehashed", sh.files_rehashed.load()}, {"bytes_rehashed", sh.bytes_rehashed.load()}}},
      {"kills", {{"plugin_sigkill", kills}, {"plugin_sigstop_left", stops_leave}, {"plugin_sigstop_then_sigcont", stops_cont},
                 {"daemon_sigkill", daemon_killed ? 1 : 0}}},
      {"cache_actions", cache_acts},
      {"extension_crashes", skipped_or(x.extensions, "extensions",
                                       {{"armed", ext_armed}, {"fired", ext_fired}, {"armed_unfired", ext_unfired}})},
      {"http_registry", skipped_or(x.http, "http_registry", {{"actions", http_acts}, {"down_ms", to_json(percentiles(http_down_ms))}})},
      {"tcp_peer", skipped_or(x.tcp, "tcp_peer", peer_acts)},
      {"small_cache", skipped_or(x.small, "small_cache",
                                 {{"filesystem_bytes", kSmallFs},
                                  {"errors", small_errors},
                                  {"no_space_fail_fast", no_space},
                                  {"other_space_errors", other_space},
                                  {"actions", small_acts},
                                  {"final", small_final},
                                  {"requests_in_flight_after_load", small_in_flight},
                                  {"plugins_left_after_stop", small_leftover},
                                  {"cache_blobs_verified", small_cache ? small_cache->verify.blobs : 0},
                                  {"cache_corrupt", small_cache ? small_cache->verify.corrupt.size() : 0},
                                  {"cache_missing", small_cache ? small_cache->verify.missing.size() : 0},
                                  {"cache_orphans", small_cache ? small_cache->listing.orphans.size() : 0},
                                  {"partials_kept", small_cache ? small_cache->partials : 0}})},
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
      {"daemon_resources", sampler.trend()},
      {"checks", {{"unplanned_daemon_deaths", unplanned_deaths},
                  {"calls_past_deadline", hung},
                  {"untyped_errors", untyped},
                  {"bad_successes", bad},
                  {"requests_in_flight_after_load", in_flight},
                  {"daemon_unavailable_outside_planned_kill", unexpected_unavailable},
                  {"frozen_plugins_not_killed", stop_not_detected},
                  {"plugins_left_after_daemon_kill", orphans_after_daemon_kill},
                  {"plugins_left_after_stop", leftover},
                  {"cache_blobs_verified", cache.verify.blobs},
                  {"cache_bytes_verified", cache.verify.bytes},
                  {"cache_corrupt", cache.verify.corrupt.size()},
                  {"cache_missing", cache.verify.missing.size()},
                  {"cache_orphans", cache.listing.orphans.size()},
                  {"manifests_missing_a_blob_during_run", cache_damage},
                  {"partials_kept", cache.partials},
                  {"partial_bytes_kept", cache.partial_bytes},
                  {"partials_reclaimed_by_prune", pruned.partials_removed},
                  {"stray_temporary_files", cache.stray.size()}}},
      {"failures", sh.failures},
      {"ok", sh.failures.empty()}};
  if (opt.json) {
    std::cout << figures.dump(2) << "\n";
  } else {
    auto line = [](const std::string& k, const json& v) { std::cout << "  " << k << ": " << v.dump() << "\n"; };
    std::cout << "modelzoo-chaos: seed " << opt.seed << ", " << figures["duration_ms"] << " ms, " << opt.clients << " clients\n";
    for (const char* k : {"requests", "requests_total", "successes", "errors", "error_samples", "success_check", "kills",
                          "cache_actions", "extension_crashes", "http_registry", "tcp_peer", "small_cache", "failovers",
                          "recovery_ms", "freezes_survived", "bytes_pulled", "cache_removals", "checks"})
      line(k, figures[k]);
    std::cout << "  daemon_resources (RSS and open fds, sampled every " << kSampleEvery.count() << " s):\n";
    for (const auto& inc : figures["daemon_resources"]) std::cout << "    " << describe_trend(inc) << "\n";
    for (const auto& f : sh.failures) std::cout << "FAIL: " << f << "\n";
    std::cout << (sh.failures.empty() ? "PASS" : "FAILED") << "\n";
  }
  if (!sh.failures.empty()) std::cerr << "daemon log kept in " << daemon.log_path() << "\n";
  std::error_code ec;
  if (sh.failures.empty() && !opt.keep) fs::remove_all(dir, ec);
  return sh.failures.empty() ? 0 : 1;
}
