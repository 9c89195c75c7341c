#include "modelzoo/process/child_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <stdexcept>

#include <boost/process.hpp>
#include <boost/process/extend.hpp>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace modelzoo::supervisor {
namespace bp = boost::process;

namespace {

// Runs in the child between fork and exec: only async-signal-safe calls here.
// on_setup runs in the parent before fork and hands execve a prepared environment
// (Boost 1.74's bp::environment::find reads past the end of short entries: ASan).
struct ChildSetup : bp::extend::handler {
  pid_t parent;
  char** envp;
  const std::vector<RLimitSetting>* rlimits;  // prepared by the parent
  int landlock_ruleset;
  template <class Executor>
  void on_setup(Executor& e) const {
    e.env = envp;
  }
  template <class Executor>
  void on_exec_setup(Executor& e) const {
    // Own process group, so the supervisor can end the plugin and everything it started.
    if (::setpgid(0, 0) != 0) {
      e.set_error(std::error_code(errno, std::system_category()), "setpgid");
      return;
    }
    // Die with the daemon. The signal fires when the forking *thread* ends: the daemon
    // spawns only from its main loop thread. Re-check: the parent may already be gone.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // The daemon blocks signals it reads through a signalfd and ignores SIGPIPE; exec
    // keeps both, so give the plugin a clean slate.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGXFSZ, SIG_DFL);
    // No descriptor of the daemon's (sockets, other plugins' pipes) leaks into a plugin.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
      for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    // Resource limits (docs/security.md). Soft and hard both: a plugin may not raise them.
    for (const auto& l : *rlimits) {
      struct rlimit r{static_cast<rlim_t>(l.soft), static_cast<rlim_t>(l.hard)};
      if (::setrlimit(static_cast<__rlimit_resource>(l.resource), &r) != 0) {
        e.set_error(std::error_code(errno, std::system_category()), "setrlimit");
        return;
      }
    }
    // Root keeps CAP_SYS_RESOURCE across exec and could lift its hard limits: take it out of
    // the bounding set. Without CAP_SETPCAP (not root) this fails, and is not needed.
    if (!rlimits->empty()) ::prctl(PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0);
    // The Landlock sandbox, last: from here on the child reaches only what the ruleset allows
    // (the executable and its libraries included). no_new_privs is required to enforce it
    // without CAP_SYS_ADMIN, and keeps a set-uid program from escaping it.
    if (landlock_ruleset >= 0) {
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        e.set_error(std::error_code(errno, std::system_category()), "no_new_privs");
        return;
      }
      if (::syscall(SYS_landlock_restrict_self, landlock_ruleset, 0U) != 0) {
        e.set_error(std::error_code(errno, std::system_category()), "landlock_restrict_self");
        return;
      }
    }
  }
};

bool executable_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// argv[0] as a shell would take it: a path when it contains '/', else a name searched in PATH.
// Checked here so that the reason is named ("does not exist", "not an executable file": a
// directory passes access(X_OK)), not left to a bare errno from exec.
std::string resolve_command(const std::string& exe) {
  if (exe.find('/') != std::string::npos) {
    if (::access(exe.c_str(), F_OK) != 0)
      throw std::runtime_error("command '" + exe + "': " + std::strerror(errno));
    if (!executable_file(exe)) throw std::runtime_error("command '" + exe + "' is not an executable file");
    return exe;
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  while (true) {
    std::size_t end = dirs.find(':');
    std::string_view dir = dirs.substr(0, end);
    std::string candidate = (dir.empty() ? std::string(".") : std::string(dir)) + "/" + exe;
    if (executable_file(candidate)) return candidate;
    if (end == std::string_view::npos) break;
    dirs.remove_prefix(end + 1);
  }
  throw std::runtime_error("command '" + exe + "' not found in PATH");
}

int take_read_end(bp::pipe& p) {
  int fd = ::fcntl(p.native_source(), F_DUPFD_CLOEXEC, 3);
  if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

}  // namespace

ChildProcess::ChildProcess(const SpawnSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) throw std::runtime_error("empty command");
  const std::string exe = resolve_command(spec.argv[0]);
  std::vector<std::string> args(spec.argv.begin() + 1, spec.argv.end());
  // The daemon's environment, with the spec's variables replacing any of the same name.
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos && spec.env.count(std::string(kv.substr(0, eq)))) continue;
    env_store.emplace_back(kv);
  }
  for (const auto& [k, v] : spec.env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& kv : env_store) envp.push_back(kv.data());
  envp.push_back(nullptr);
  bp::pipe out, err;
  std::error_code ec;
  bp::child c;
  if (spec.cwd.empty())
    c = bp::child(bp::exe = exe, bp::args = args, bp::std_in<bp::null, bp::std_out> out, bp::std_err > err,
                  ChildSetup{{}, ::getpid(), envp.data(), &spec.rlimits, spec.landlock_ruleset}, ec);
  else
    c = bp::child(bp::exe = exe, bp::args = args, bp::start_dir = spec.cwd, bp::std_in<bp::null, bp::std_out> out,
                  bp::std_err > err, ChildSetup{{}, ::getpid(), envp.data(), &spec.rlimits, spec.landlock_ruleset}, ec);
  if (ec) throw std::runtime_error("cannot start '" + exe + "': " + ec.message());
  pid_ = c.id();
  c.detach();  // we reap it ourselves (try_reap), through the pidfd
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  out_fd_ = take_read_end(out);
  err_fd_ = take_read_end(err);
  if (pidfd_ < 0) {
    // Kernel without pidfd_open (< 5.3): a pidfd is required for exit notification.
    int e = errno;
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
    throw std::runtime_error(std::string("pidfd_open failed: ") + std::strerror(e));
  }
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    signal_group(SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }
  for (int fd : {pidfd_, out_fd_, err_fd_})
    if (fd >= 0) ::close(fd);
}

bool ChildProcess::signal_group(int sig) {
  if (reaped_) return false;
  return ::kill(-pid_, sig) == 0 || ::kill(pid_, sig) == 0;
}

std::optional<int> ChildProcess::try_reap() {
  if (reaped_) return std::nullopt;
  siginfo_t info{};
  // Peek without reaping: only an exited leader may take its group down with it.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
    return std::nullopt;
  ::kill(-pid_, SIGKILL);  // grandchildren left in the group
  int status = 0;
  struct rusage ru{};
  if (::wait4(pid_, &status, 0, &ru) != pid_) return std::nullopt;
  reaped_ = true;
  cpu_seconds_ = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                 static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return status;
}

std::optional<int> ChildProcess::wait_for(int timeout_ms) {
  if (reaped_) return std::nullopt;
  pollfd p{pidfd_, POLLIN, 0};
  ::poll(&p, 1, timeout_ms);
  return try_reap();
}

std::vector<std::string> ChildProcess::read_lines(int fd) {
  std::vector<std::string> lines;
  if (fd == out_fd_) read_output_lines(out_fd_, out_buf_, lines);
  else if (fd == err_fd_) read_output_lines(err_fd_, err_buf_, lines);
  return lines;
}

void read_output_lines(int& fd, std::string& partial, std::vector<std::string>& lines) {
  constexpr std::size_t kMaxLine = 16384;  // a plugin printing without newlines: cut the line
  if (fd < 0) return;
  char chunk[8192];
  while (true) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      partial.append(chunk, static_cast<std::size_t>(n));
      for (;;) {
        std::size_t pos = partial.find('\n');
        if (pos != std::string::npos && pos <= kMaxLine) {
          lines.push_back(partial.substr(0, pos));
          partial.erase(0, pos + 1);
        } else if (partial.size() > kMaxLine) {  // however the bytes came in
          lines.push_back(partial.substr(0, kMaxLine));
          partial.erase(0, kMaxLine);
        } else {
          break;
        }
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // EOF or error: the stream is closed.
    if (!partial.empty()) lines.push_back(partial);
    partial.clear();
    ::close(fd);
    fd = -1;
    return;
  }
}

std::string describe_wait_status(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    const char* name = ::sigabbrev_np(sig);
    return "signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
  }
  return "status " + std::to_string(st);
}

}  // namespace modelzoo::supervisor
