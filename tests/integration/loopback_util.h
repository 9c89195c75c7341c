// Helpers shared by the tests of HTTP-backed sources (remote_registry_test.cc,
// oci_registry_test.cc, huggingface_test.cc): a file's bytes, a free loopback port, a pull
// expected to fail, a pull on its own thread and the progress it makes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <thread>

#include "daemon_harness.h"

namespace modelzoo::testing {

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A loopback port on which nothing listens (bound, read, closed).
inline int dead_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// A test server process in a temporary directory of its own (root/ for the files it serves,
// server.log, the port file it writes once it listens): killed and reaped when it goes, its
// log shown when the test failed. Subclasses build the command line (see start()).
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& label) : label_(label) {
    std::string tmpl = "/tmp/modelzoo-" + label + "-XXXXXX";
    dir_ = ::mkdtemp(tmpl.data());
    fs::create_directories(root());
  }
  ~ServerProcess() {
    kill();
    if (::testing::Test::HasFailure()) std::cerr << "---- " << label_ << " server log\n" << log() << "----\n";
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  fs::path root() const { return dir_ / "root"; }
  fs::path dir() const { return dir_; }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return slurp(dir_ / "server.log"); }

  void kill() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // Waits for the server to exit on its own (a --die-after-bytes knob).
  bool wait_exit(std::chrono::milliseconds limit) {
    bool gone = wait_until([&] { return ::waitpid(pid_, nullptr, WNOHANG) == pid_; }, limit);
    if (gone) pid_ = -1;
    return gone;
  }

 protected:
  // Kills a running one, then runs `argv`, which must make the server write its port to
  // port_file(), and waits up to `limit` for it.
  void run_server(const std::vector<std::string>& argv, std::chrono::milliseconds limit) {
    kill();
    fs::remove(port_file());
    pid_ = spawn_server(argv, dir_ / "server.log", port_file(), limit);
    ASSERT_GT(pid_, 0);
    port_ = std::stoi(slurp(port_file()));
  }
  fs::path port_file() const { return dir_ / "port"; }

 private:
  std::string label_;
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The error of a pull that must fail (a failure of the test when it succeeds).
inline bus::Error pull_error(Daemon& d, const std::string& ref) {
  try {
    d.client().pull(ref);
  } catch (const bus::Error& e) {
    return e;
  }
  ADD_FAILURE() << "pull of " << ref << " succeeded";
  return bus::Error(bus::ErrorCode::internal, "pull succeeded");
}

// The entry of file `name` in a pull's reply, nullptr when it has none.
inline const nlohmann::json* file_of(const nlohmann::json& reply, const std::string& name) {
  for (const auto& f : reply["files"])
    if (f["name"] == name) return &f;
  return nullptr;
}

// A pull of `ref` on a thread of its own, with a client of its own; join() before reading
// reply (the answer) or error (what it threw, "" when nothing).
class BackgroundPull {
 public:
  // on_progress (optional) sees the client's progress messages, on the pull's thread.
  BackgroundPull(const Daemon& d, const std::string& ref, std::function<void(const nlohmann::json&)> on_progress = {})
      : thread_([this, dir = d.runtime_dir().string(), ref, on_progress = std::move(on_progress)] {
          try {
            reply = Client(dir).pull(ref, on_progress);
          } catch (const std::exception& e) {
            error = e.what();
          }
        }) {}
  ~BackgroundPull() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  nlohmann::json reply;
  std::string error;

 private:
  std::thread thread_;
};

// Waits up to `limit` for a model.download.progress event of source `plugin` at `bytes` or
// more (of `file`, when given). True when one came.
inline bool wait_for_progress(EventSubscriber& sub, const std::string& plugin, std::uint64_t bytes,
                              std::chrono::milliseconds limit, const std::string& file = "") {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = sub.next(100ms);
    if (e && e->topic == "model.download.progress" && e->body["plugin"] == plugin &&
        (file.empty() || e->body["file"] == file) && e->body["bytes"].get<std::uint64_t>() >= bytes)
      return true;
  }
  return false;
}

// The failover every HTTP source is tested for: with sources "first" (higher priority) and
// "second" ready, pulls `ref` and SIGKILLs the first one's plugin once it has sent `after`
// bytes (of `file`, when given). Returns the pull's reply, which must come from "second"
// (a failure of the test otherwise).
inline nlohmann::json pull_killing_first(Daemon& d, const std::string& ref, std::uint64_t after,
                                         std::chrono::milliseconds limit, const std::string& file = "") {
  pid_t first = d.wait_plugin("first")["pid"].get<pid_t>();
  d.wait_plugin("second");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download."});
  BackgroundPull pull(d, ref);
  EXPECT_TRUE(wait_for_progress(sub, "first", after, limit, file)) << "no progress from the first source";
  ::kill(first, SIGKILL);
  pull.join();
  EXPECT_EQ(pull.error, "");
  EXPECT_EQ(pull.reply["source"], "second") << pull.reply.dump();
  return pull.reply;
}

// The tests' npm tools (tests/npm/install.sh installs them into the build tree) and the node
// that runs them: nullopt, with the reason in `why`, when node or the install is missing
// (under CI=true install.sh itself fails, so `why` says so).
struct NpmTools {
  std::string dir;   // BUILD/npm, holding node_modules/
  std::string node;  // node's full path
};
inline std::optional<NpmTools> npm_tools(std::string& why) {
  auto trimmed = [](std::string s) {
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  };
  auto node = run("command -v node");
  if (node.status != 0 || trimmed(node.out).empty()) {
    why = "node is not installed (Debian: nodejs)";
    return std::nullopt;
  }
  auto r = run(std::string(MODELZOO_SOURCE_DIR) + "/tests/npm/install.sh " + bin_dir().parent_path().string() + " 2>&1");
  std::string out = trimmed(r.out);
  if (r.status != 0) {
    why = out;
    return std::nullopt;
  }
  return NpmTools{out.substr(out.rfind('\n') == std::string::npos ? 0 : out.rfind('\n') + 1), trimmed(node.out)};
}

// Starts a test's server for the plugin executable `program`: `server.start(why, ARGS...)`
// returns false, saying why, when a tool it needs is missing. Skips the test when the plugin is
// not built or a tool is missing, except under CI=true, where a missing tool fails it; ends the
// test when the server failed to start.
#define START_TEST_SERVER(program, server, ...)                                              \
  do {                                                                                       \
    if (!fs::exists(bin_dir() / (program))) GTEST_SKIP() << "the plugin is not built";       \
    std::string why_;                                                                        \
    if (!(server).start(why_, ##__VA_ARGS__)) {                                              \
      if (std::getenv("CI") && std::string(std::getenv("CI")) == "true") FAIL() << why_;     \
      GTEST_SKIP() << why_;                                                                  \
    }                                                                                        \
    if (::testing::Test::HasFailure()) return;                                               \
  } while (0)

// The files a refused pull may not leave in a daemon's cache: any blob, manifest or view.
inline std::vector<std::string> cached_files(const Daemon& d) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const char* top : {"blobs", "manifests", "models"})
    for (auto it = fs::recursive_directory_iterator(d.cache_dir() / top, ec); it != fs::recursive_directory_iterator(); it.increment(ec))
      if (!it->is_directory()) out.push_back(fs::relative(it->path(), d.cache_dir()).string());
  return out;
}

// Sets environment variables for the daemons a test starts (plugins inherit them) and puts
// the old values back.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [k, v] : vars) {
      const char* old = std::getenv(k);
      saved_.emplace_back(k, old ? std::optional<std::string>(old) : std::nullopt);
      if (v) ::setenv(k, v, 1);
      else ::unsetenv(k);
    }
  }
  ~ScopedEnv() {
    for (const auto& [k, v] : saved_) {
      if (v) ::setenv(k.c_str(), v->c_str(), 1);
      else ::unsetenv(k.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace modelzoo::testing
