// Starts a real modelzood with a test configuration in a private temporary directory and
// gives the tests a client, its log, and helpers to wait on conditions with deadlines.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "modelzoo/client.h"

extern char** environ;

namespace modelzoo::testing {

namespace fs = std::filesystem;
constexpr std::uint64_t kMiB = 1 << 20;
using namespace std::chrono_literals;

inline fs::path bin_dir() { return MODELZOO_BIN_DIR; }

// Polls `cond` every few milliseconds until it holds or `limit` passes.
inline bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

// True while `pid` is a live process (a zombie counts as dead).
inline bool process_alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// Starts a test server `argv` with stdout and stderr appended to `log_file`, and waits (up to
// `limit`) for it to write `port_file` or die. Returns its pid; the caller kills and reaps it.
// Fails the test (and returns -1) when it cannot start or exits first.
inline pid_t spawn_server(std::vector<std::string> argv_s, const std::filesystem::path& log_file,
                          const std::filesystem::path& port_file, std::chrono::milliseconds limit) {
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  std::string log = log_file.string();
  posix_spawn_file_actions_addopen(&fa, 2, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 2, 1);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv_s[0];
    return -1;
  }
  if (!wait_until([&] { return std::filesystem::exists(port_file) || !process_alive(pid); }, limit) || !process_alive(pid)) {
    std::ifstream in(log_file);
    std::stringstream ss;
    ss << in.rdbuf();
    ADD_FAILURE() << argv_s[0] << " did not start:\n" << ss.str();
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return -1;
  }
  return pid;
}

// A shell command's exit status and output; stderr joins stdout unless the command
// redirects it itself.
struct Run {
  int status;
  std::string out;
};
inline Run run(const std::string& cmd) {
  Run r{0, {}};
  FILE* p = ::popen((cmd.find("2>") == std::string::npos ? cmd + " 2>&1" : cmd).c_str(), "r");
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  r.status = ::pclose(p);
  return r;
}

class Daemon {
 public:
  // `config` is YAML; "@BIN@" is replaced by the build's bin directory and "@DIR@" by
  // the test's temporary directory.
  explicit Daemon(std::string config, bool start_now = true) {
    char tmpl[] = "/tmp/modelzoo-test-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    config_ = scale_timers(replace(replace(std::move(config), "@BIN@", bin_dir().string()), "@DIR@", dir_.string()));
    std::ofstream(dir_ / "modelzood.yaml") << config_;
    if (start_now) start();
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (::testing::Test::HasFailure()) std::cerr << "---- daemon log (" << log_path() << ")\n" << log() << "----\n";
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start() {
    std::string log_file = log_path().string();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    std::string exe = (bin_dir() / "modelzood").string();
    std::string cfg = (dir_ / "modelzood.yaml").string();
    std::vector<std::string> env_store;
    for (char** e = environ; *e; ++e) {
      std::string v = *e;
      if (v.rfind("MODELZOO_", 0) != 0) env_store.push_back(v);
    }
    env_store.push_back("MODELZOO_RUNTIME_DIR=" + runtime_dir().string());
    env_store.push_back("MODELZOO_CACHE_DIR=" + cache_dir().string());
    for (const auto& e : extra_env) env_store.push_back(e);
    env_store.push_back("MODELZOO_DATA_DIR=" + (dir_ / "data").string());
    std::vector<char*> envp;
    for (auto& v : env_store) envp.push_back(v.data());
    envp.push_back(nullptr);
    std::vector<char*> argv;
    for (auto& w : launcher) argv.push_back(w.data());
    argv.insert(argv.end(), {exe.data(), const_cast<char*>("--config"), cfg.data(), nullptr});
    // A file-size limit for the daemon (disk-full tests): set here, inherited, restored.
    rlimit saved{};
    ::getrlimit(RLIMIT_FSIZE, &saved);
    if (file_size_limit) {
      rlimit lim = saved;
      lim.rlim_cur = *file_size_limit;
      ::setrlimit(RLIMIT_FSIZE, &lim);
    }
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
    ::setrlimit(RLIMIT_FSIZE, &saved);
    posix_spawn_file_actions_destroy(&fa);
    ASSERT_EQ(rc, 0) << "cannot start " << exe;
    ASSERT_TRUE(wait_until([&] {
      try {
        Client c(runtime_dir().string());
        c.call("ping", {}, 1s);
        return true;
      } catch (const std::exception&) {
        return !process_alive(pid_) ? true : false;
      }
    })) << "daemon did not come up";
    ASSERT_TRUE(process_alive(pid_)) << "daemon exited at start:\n" << log();
  }

  // Waits until the plugin `name` is in `state`; returns its status entry.
  nlohmann::json wait_plugin(const std::string& name, const std::string& state = "ready",
                             std::chrono::milliseconds limit = 10s) {
    nlohmann::json found;
    bool ok = wait_until([&] {
      auto all = client().plugins();
      for (const auto& p : all["plugins"])
        if (p["name"] == name && p["state"] == state) {
          found = p;
          return true;
        }
      return false;
    }, limit);
    EXPECT_TRUE(ok) << "plugin " << name << " never reached state " << state << "; plugins: " << client().plugins().dump();
    return found;
  }

  nlohmann::json plugin(const std::string& name) {
    auto all = client().plugins();
    for (const auto& p : all["plugins"])
      if (p["name"] == name) return p;
    return nullptr;
  }

  Client& client() {
    if (!client_) client_ = std::make_unique<Client>(runtime_dir().string());
    return *client_;
  }

  // SIGTERM and wait; returns the exit status.
  int stop(std::chrono::milliseconds limit = 20s) {
    client_.reset();
    ::kill(pid_, SIGTERM);
    int status = -1;
    wait_until([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, limit);
    pid_ = -1;
    return status;
  }
  void kill9() {
    client_.reset();
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // Set before start(): extra "NAME=value" environment entries, another cache directory
  // (two daemons sharing one), and a file-size limit.
  std::vector<std::string> extra_env;
  // A program that modelzood is started through (it must exec the rest of its arguments, so
  // that pid() is the daemon's), e.g. modelzoo-test-without-landlock.
  std::vector<std::string> launcher;
  std::optional<fs::path> shared_cache;
  std::optional<rlim_t> file_size_limit;

  pid_t pid() const { return pid_; }
  const fs::path& dir() const { return dir_; }
  fs::path runtime_dir() const { return dir_ / "run"; }
  fs::path cache_dir() const { return shared_cache ? *shared_cache : dir_ / "cache"; }
  fs::path log_path() const { return dir_ / "daemon.log"; }
  std::string log() const {
    std::ifstream in(log_path());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  // Under ThreadSanitizer everything runs 5 to 15 times slower: MODELZOO_TEST_TIMER_SCALE=N
  // multiplies the heartbeat interval a test asks for, so a slow plugin is not taken for a
  // hung one. The tests' logic (how many beats make a hang) is unchanged.
  static std::string scale_timers(std::string s) {
    const char* v = std::getenv("MODELZOO_TEST_TIMER_SCALE");
    long scale = v ? std::strtol(v, nullptr, 10) : 1;
    if (scale <= 1) return s;
    static const std::regex beat("heartbeat_interval_ms: *([0-9]+)");
    std::string out;
    auto it = std::sregex_iterator(s.begin(), s.end(), beat);
    std::size_t last = 0;
    for (; it != std::sregex_iterator(); ++it) {
      out += s.substr(last, static_cast<std::size_t>(it->position()) - last);
      out += "heartbeat_interval_ms: " + std::to_string(std::stol((*it)[1]) * scale);
      last = static_cast<std::size_t>(it->position() + it->length());
    }
    return out + s.substr(last);
  }
  static std::string replace(std::string s, const std::string& from, const std::string& to) {
    for (std::size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
    return s;
  }
  fs::path dir_;
  std::string config_;
  pid_t pid_ = -1;
  std::unique_ptr<Client> client_;
};

// A memory-plugin source serving `model` 1.0.0 with one generated file.
inline std::string memory_source(const std::string& name, int priority, const std::string& model,
                                 const std::string& extra_config = "", std::uint64_t size = 65536,
                                 const std::string& restart = "") {
  std::ostringstream s;
  s << "  - name: " << name << "\n    plugin: memory\n    priority: " << priority << "\n";
  if (!restart.empty()) s << "    restart: " << restart << "\n";
  s << "    config:\n" << extra_config << "      models:\n        - name: " << model
    << "\n          version: 1.0.0\n          files:\n            - name: weights.bin\n              size: " << size
    << "\n              seed: 7\n";
  return s.str();
}

// Fast heartbeats so hang detection happens within a test's patience.
inline const char* kFastTimers = "heartbeat_interval_ms: 100\nheartbeat_liveness: 3\nrequest_timeout_ms: 5000\n";

}  // namespace modelzoo::testing
