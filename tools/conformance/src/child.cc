#include "child.h"

#include "process.h"  // supervisor: the line reader and wait-status words

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <cstdlib>
#include <stdexcept>

extern char** environ;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace modelzoo::conformance {
namespace {

constexpr std::size_t kKeepLines = 200;

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// argv[0] as the daemon resolves it: a path when it contains '/', else searched in PATH.
std::string resolve(const std::string& exe) {
  if (exe.find('/') != std::string::npos) {
    if (::access(exe.c_str(), F_OK) != 0) throw std::runtime_error("cannot start '" + exe + "': " + std::strerror(errno));
    if (!executable(exe)) throw std::runtime_error("cannot start '" + exe + "': not an executable file");
    return exe;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  std::size_t start = 0;
  while (start <= dirs.size()) {
    std::size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + exe;
    if (executable(candidate)) return candidate;
    start = end + 1;
  }
  throw std::runtime_error("cannot start '" + exe + "': not found in PATH");
}

}  // namespace

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  if (argv.empty() || argv[0].empty()) throw std::runtime_error("empty command");
  const std::string exe = resolve(argv[0]);

  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos && env.count(kv.substr(0, eq))) continue;
    env_store.push_back(std::move(kv));
  }
  for (const auto& [k, v] : env) env_store.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& kv : env_store) envp.push_back(kv.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_store(argv.begin(), argv.end());
  std::vector<char*> args;
  for (auto& a : arg_store) args.push_back(a.data());
  args.push_back(nullptr);

  int out[2], err[2], status_pipe[2];
  if (::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]);
    ::close(out[1]);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) ::close(fd);
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    for (int fd : {out[0], out[1], err[0], err[1], status_pipe[0], status_pipe[1], devnull}) ::close(fd);
    throw std::runtime_error(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    // The child: its own process group, death with the kit, a clean signal state, fds 0-2 only.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    ::signal(SIGXFSZ, SIG_DFL);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    // Every other descriptor closes at exec, but the status pipe must stay open until then.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
      for (int fd = 3; fd < 4096; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    ::execve(exe.c_str(), args.data(), envp.data());
    int e = errno;
    (void)!::write(status_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  for (int fd : {out[1], err[1], status_pipe[1], devnull})
    if (fd >= 0) ::close(fd);
  pid_ = pid;
  // Also set the group from here: whichever runs first, the group exists before we signal it.
  ::setpgid(pid, pid);
  int exec_errno = 0;
  ssize_t n;
  while ((n = ::read(status_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
  }
  ::close(status_pipe[0]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  for (int fd : {out_fd_, err_fd_}) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  if (n > 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    status_ = status;
    throw std::runtime_error("cannot start '" + exe + "': " + std::strerror(exec_errno));
  }
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // -1 on old kernels: we poll instead
}

Child::~Child() {
  if (!status_) {
    signal_group(SIGKILL);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  for (int fd : {pidfd_, out_fd_, err_fd_})
    if (fd >= 0) ::close(fd);
}

void Child::signal_group(int sig) {
  if (status_ || pid_ <= 0) return;
  if (::kill(-pid_, sig) != 0) ::kill(pid_, sig);
}

bool Child::poll_exit() {
  if (status_) return true;
  siginfo_t info{};
  // Peek without reaping: the unreaped leader keeps the group id from being reused while we
  // kill what is left of the group.
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
    return false;
  ::kill(-pid_, SIGKILL);
  int status = 0;
  if (::waitpid(pid_, &status, 0) != pid_) return false;
  status_ = status;
  read_output();
  return true;
}

std::string Child::describe() const { return status_ ? supervisor::describe_wait_status(*status_) : "running"; }

bool Child::exited_cleanly() const { return status_ && WIFEXITED(*status_) && WEXITSTATUS(*status_) == 0; }

void Child::add_line(std::string line, bool is_stdout) {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return;
  lines_.push_back(is_stdout ? "(stdout) " + line : line);
  while (lines_.size() > kKeepLines) lines_.pop_front();
}

void Child::read_fd(int& fd, std::string& partial, bool is_stdout) {
  std::vector<std::string> lines;
  supervisor::read_output_lines(fd, partial, lines);
  for (auto& line : lines) add_line(std::move(line), is_stdout);
}

void Child::read_output() {
  read_fd(err_fd_, err_partial_, false);
  read_fd(out_fd_, out_partial_, true);
}

std::vector<std::string> Child::tail(std::size_t lines) const {
  std::size_t from = lines_.size() > lines ? lines_.size() - lines : 0;
  return {lines_.begin() + static_cast<std::ptrdiff_t>(from), lines_.end()};
}

}  // namespace modelzoo::conformance
