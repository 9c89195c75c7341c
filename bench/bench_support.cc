#include "bench_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "modelzoo/bus/message.h"
#include "modelzoo/client.h"

extern char** environ;

namespace modelzoo::bench {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

// ------------------------------------------------------------------ command line
std::optional<int> parse_options(int argc, char** argv, const std::string& prog, unsigned accepted,
                                 void (*usage)(std::ostream&), CommonOptions& o,
                                 const std::function<bool(const std::string&)>& extra) {
  // "--name VALUE" (taking the next argument) or "--name=VALUE", if `name` is accepted.
  auto value = [&](int& i, const std::string& a, unsigned option, const std::string& name) -> std::optional<std::string> {
    if (!(accepted & option)) return std::nullopt;
    if (a == name && i + 1 < argc) return std::string(argv[++i]);
    if (a.rfind(name + "=", 0) == 0) return a.substr(name.size() + 1);
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--json") {
      o.json_only = true;
    } else if (auto v = value(i, a, kBinDirOption, "--bin-dir")) {
      o.bin_dir = *v;
    } else if (auto v = value(i, a, kDirOption, "--dir")) {
      o.dir = *v;
    } else if (auto v = value(i, a, kSizeMibOption, "--size-mib")) {
      char* end = nullptr;
      errno = 0;
      unsigned long long n = std::strtoull(v->c_str(), &end, 10);
      if (v->empty() || *end || errno || n == 0 || n > (1ull << 24)) {
        std::cerr << prog << ": --size-mib wants a number of MiB from 1 to 16777216\n";
        return 2;
      }
      o.size_mib = n;
    } else if (extra && extra(a)) {
    } else if (a == "-h" || a == "--help") {
      usage(std::cout);
      return 0;
    } else {
      std::cerr << prog << ": unknown argument '" << a << "'\n";
      usage(std::cerr);
      return 2;
    }
  }
  if ((accepted & kBinDirOption) && o.bin_dir.empty()) o.bin_dir = self_dir();
  if (!o.dir.empty()) {
    std::error_code ec;
    if (!fs::is_directory(o.dir, ec)) {
      std::cerr << prog << ": --dir " << o.dir.string() << " is not a directory\n";
      return 2;
    }
  }
  return std::nullopt;
}

// ------------------------------------------------------------------ output
namespace {
bool g_quiet = false;
}  // namespace

void set_quiet(bool quiet) { g_quiet = quiet; }

void note(const std::string& s) {
  if (!g_quiet) std::cerr << s << std::endl;
}

std::string fmt(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

double round_to(double v, int digits) {
  double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double loadavg() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

fs::path self_dir() {
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return fs::current_path();
  return fs::path(std::string(exe, static_cast<std::size_t>(n))).parent_path();
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ------------------------------------------------------------------ /proc
double cpu_seconds(pid_t pid) {
  if (pid == 0) {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
    return tv(ru.ru_utime) + tv(ru.ru_stime);
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> f;
  for (std::string t; rest >> t && f.size() < 13;) f.push_back(t);
  if (f.size() < 13) return 0;
  // After the command: field 3 (state) is f[0], so utime (14) is f[11], stime (15) f[12].
  return (std::stod(f[11]) + std::stod(f[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double proc_status_mib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string prefix = field;
  prefix.append(":");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size())) / 1024.0;
  throw Failure("no " + field + " in /proc/" + std::to_string(pid) + "/status (process gone?)");
}

// ------------------------------------------------------------------ child processes, signals
namespace {

std::atomic<pid_t> g_children[8] = {};
volatile std::sig_atomic_t g_interrupted = 0;

void on_fatal_signal(int sig) {
  for (auto& c : g_children)
    if (pid_t p = c.load(); p > 0) ::kill(p, SIGKILL);
  if (g_interrupted) ::_exit(128 + sig);
  g_interrupted = sig;
}

void set_fatal_signal_action(void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
}

}  // namespace

void install_signal_handlers() {
  set_fatal_signal_action(on_fatal_signal);
  ::signal(SIGPIPE, SIG_IGN);
}

void reset_signal_handlers() { set_fatal_signal_action(SIG_DFL); }

int interrupted() { return static_cast<int>(g_interrupted); }

void check_interrupted() {
  if (g_interrupted) throw Failure("interrupted by signal " + std::to_string(static_cast<int>(g_interrupted)));
}

void print_failure(const std::string& prog, const std::string& why) {
  if (g_interrupted) std::cerr << prog << ": interrupted by signal " << g_interrupted << "\n";
  else std::cerr << prog << ": " << why << "\n";
}

int exit_after_failure() {
  for (auto& c : g_children)
    if (pid_t p = c.load(); p > 0) stop_process(p, SIGKILL, milliseconds(5000));
  return g_interrupted ? 128 + g_interrupted : 1;
}

int run_bench(const std::string& prog, bool quiet, const std::function<int()>& body) {
  set_quiet(quiet);
  install_signal_handlers();
  try {
    return body();
  } catch (const Reported&) {
  } catch (const std::exception& e) {
    std::cerr << prog << ": " << e.what() << "\n";
  }
  return exit_after_failure();
}

void track(pid_t pid) {
  for (auto& c : g_children) {
    pid_t expected = 0;
    if (c.compare_exchange_strong(expected, pid)) return;
  }
}

void untrack(pid_t pid) {
  for (auto& c : g_children) {
    pid_t expected = pid;
    c.compare_exchange_strong(expected, 0);
  }
}

void forget_children() {
  for (auto& c : g_children) c.store(0);
}

std::optional<int> wait_exit(pid_t pid, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      untrack(pid);
      return status;
    }
    if (r < 0 && errno != EINTR) {
      untrack(pid);
      return std::nullopt;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

std::optional<int> stop_process(pid_t pid, int sig, milliseconds timeout) {
  if (pid <= 0) return std::nullopt;
  ::kill(pid, sig);
  if (auto st = wait_exit(pid, timeout)) return st;
  ::kill(pid, SIGKILL);
  wait_exit(pid, milliseconds(5000));
  return std::nullopt;
}

std::string describe_status(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    std::string s = "signal ";
    s.append(std::to_string(WTERMSIG(st))).append(" (").append(::strsignal(WTERMSIG(st))).append(")");
    return s;
  }
  return "status " + std::to_string(st);
}

std::vector<std::string> child_env(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e)
    if (std::strncmp(*e, "MODELZOO_", 9) != 0) env.emplace_back(*e);
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const fs::path& log) {
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  int nullfd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int errpipe[2];
  if (logfd < 0 || nullfd < 0 || ::pipe2(errpipe, O_CLOEXEC) != 0)
    throw Failure("cannot prepare to start " + argv[0] + ": " + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) throw Failure(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here to exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(nullfd, 0);
    ::dup2(logfd, 1);
    ::dup2(logfd, 2);
    ::execve(av[0], av.data(), ev.data());
    int e = errno;
    (void)!::write(errpipe[1], &e, sizeof e);
    ::_exit(127);
  }
  track(pid);
  ::close(errpipe[1]);
  ::close(logfd);
  ::close(nullfd);
  int child_errno = 0;
  ssize_t n;
  while ((n = ::read(errpipe[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
  }
  ::close(errpipe[0]);
  if (n == sizeof child_errno) {
    wait_exit(pid, milliseconds(1000));
    throw Failure("cannot execute " + argv[0] + ": " + std::strerror(child_errno));
  }
  return pid;
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) { return spawn(argv, child_env(), log); }

// ------------------------------------------------------------------ the daemon
void check_daemon_alive(pid_t& pid) {
  int status = 0;
  if (pid > 0 && ::waitpid(pid, &status, WNOHANG) == pid) {
    untrack(pid);
    pid = 0;
    throw Failure("modelzood exited unexpectedly (" + describe_status(status) + ")");
  }
}

json wait_source_ready(const fs::path& runtime, const std::string& source, bool need_pid,
                       const std::function<void()>& check_alive) {
  auto deadline = Clock::now() + milliseconds(15000);
  std::string last = "no answer";
  while (Clock::now() < deadline) {
    check_interrupted();
    check_alive();
    try {
      modelzoo::Client c(runtime.string());
      json p = c.call("plugins", json::object(), milliseconds(500));
      for (const auto& pl : p.at("plugins"))
        if (pl.value("name", "") == source) {
          last = "state " + pl.value("state", std::string("?"));
          if (pl.value("state", "") == "ready" && (!need_pid || pl.value("pid", 0) > 0)) return pl;
        }
    } catch (const modelzoo::DaemonUnavailable& e) {
      last = e.what();
    } catch (const modelzoo::bus::Error& e) {
      last = e.what();
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  throw Failure("source '" + source + "' not ready within 15 s (" + last + ")");
}

void keep_daemon_log(const std::string& prog, const fs::path& log) {
  fs::path keep = fs::temp_directory_path() /
                  std::string(prog).append("-").append(std::to_string(::getpid())).append("-modelzood.log");
  std::error_code ec;
  fs::copy_file(log, keep, fs::copy_options::overwrite_existing, ec);
  std::cerr << prog << ": modelzood log kept at " << (ec ? log : keep).string() << "; its end:\n" << tail_of(log, 20);
}

// ------------------------------------------------------------------ files
TempDir::TempDir(const fs::path& parent, const char* prefix) {
  std::string tmpl = (parent / prefix).string();
  tmpl.append(".XXXXXX");
  if (!::mkdtemp(tmpl.data())) throw Failure("mkdtemp " + tmpl + ": " + std::strerror(errno));
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

std::string fs_type(const fs::path& p) {
  struct statfs s {};
  if (::statfs(p.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs";
    case 0x794C7630: return "overlayfs";
    case 0x2FC12FC1: return "zfs";
    case 0xF2F52010: return "f2fs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
      return buf;
    }
  }
}

std::string check_temp_dir(const fs::path& dir, std::uint64_t need) {
  const std::string type = fs_type(dir);
  struct statvfs sv {};
  if (::statvfs(dir.c_str(), &sv) != 0) throw Failure("statvfs " + dir.string() + ": " + std::strerror(errno));
  const std::uint64_t avail = static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
  if (avail < need)
    throw Failure("not enough space in " + dir.string() + ": " + std::to_string(avail >> 20) + " MiB free, " +
                  std::to_string(need >> 20) + " MiB needed (use --dir or --size-mib)");
  note("temp dir " + dir.string() + " (" + type + ")" +
       (type == "tmpfs" ? ": tmpfs, fsync costs nothing there; use --dir on a disk" : ""));
  return type;
}

Fd::Fd(const fs::path& p, int flags, mode_t mode) : path_(p), fd_(::open(p.c_str(), flags | O_CLOEXEC, mode)) {
  if (fd_ < 0) throw Failure("open " + p.string() + ": " + std::strerror(errno));
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

void Fd::fsync() {
  if (::fsync(fd_) != 0) throw Failure("fsync " + path_.string() + ": " + std::strerror(errno));
}

void Fd::close() {
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw Failure("close " + path_.string() + ": " + std::strerror(errno));
}

void fsync_path(const fs::path& p, bool directory) {
  Fd fd(p, directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  fd.fsync();
}

void sync_fs(const fs::path& p) {
  Fd fd(p, O_RDONLY | O_DIRECTORY);
  if (::syncfs(fd.get()) != 0) throw Failure("syncfs " + p.string() + ": " + std::strerror(errno));
}

void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) throw Failure("cannot remove " + p.string() + ": " + ec.message());
}

void write_all(int fd, const void* data, std::size_t n, const fs::path& p) {
  const auto* bytes = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, bytes, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw Failure("write " + p.string() + ": " + std::strerror(errno));
    bytes += w;
    n -= static_cast<std::size_t>(w);
  }
}

std::size_t read_some(int fd, std::vector<char>& buf, const fs::path& p) {
  std::size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + done, buf.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Failure("read " + p.string() + ": " + std::strerror(errno));
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::uint64_t read_fully(const fs::path& p) {
  std::vector<char> buf(1u << 20);
  Fd fd(p, O_RDONLY);
  std::uint64_t total = 0;
  while (std::size_t n = read_some(fd.get(), buf, p)) total += n;
  return total;
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p);
  out << text;
  if (!out) throw Failure("cannot write " + p.string());
}

std::string tail_of(const fs::path& p, std::size_t lines) {
  std::ifstream in(p);
  std::vector<std::string> all;
  for (std::string l; std::getline(in, l);) all.push_back(l);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out.append("  | ").append(all[i]).append("\n");
  return out;
}

}  // namespace modelzoo::bench
