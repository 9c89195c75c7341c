// A plugin child process: spawned with Boost.Process (v1) into its own process group with
// a parent-death signal, its stdout and stderr captured through pipes, its exit watched
// through a pidfd. Signals go to the group only while the leader is unreaped, so a
// recycled PID can never be hit. Library modelzoo_process (process/), shared by modelzood and the
// conformance kit; the namespace is the supervisor's, which spawns plugins with it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelzoo::supervisor {

// One setrlimit(2) call made in the child before exec.
struct RLimitSetting {
  int resource;  // RLIMIT_*
  std::uint64_t soft, hard;  // RLIM_INFINITY for unlimited
};

struct SpawnSpec {
  std::vector<std::string> argv;  // argv[0] is a path or a name looked up in PATH
  std::string cwd;                // empty: inherit
  std::map<std::string, std::string> env;  // added to (overriding) the daemon's environment
  // Resource limits, set in this order between fork and exec. When a spec sets any, the
  // child also drops CAP_SYS_RESOURCE from its bounding set (a plugin running as root could
  // raise its hard limits again otherwise; without privilege that drop fails harmlessly).
  std::vector<RLimitSetting> rlimits;
  // A Landlock ruleset (landlock_create_ruleset(2)), owned by the caller: the child sets
  // no_new_privs and enforces it before exec. -1: no sandbox.
  int landlock_ruleset = -1;
};

// Reads what is available on a non-blocking `fd` into `partial` and appends each complete
// line (without its '\n') to `lines`; a line longer than 16 KiB is cut every 16 KiB. At
// EOF (or on an error) closes fd, sets it to -1 and appends the unterminated rest, if any.
// Shared with the conformance kit's child process.
void read_output_lines(int& fd, std::string& partial, std::vector<std::string>& lines);

// A wait(2) status in words: "exit 3", "signal 9 (SIGKILL)".
std::string describe_wait_status(int wait_status);

class ChildProcess {
 public:
  // Starts the child. Throws std::runtime_error naming the command and the reason.
  explicit ChildProcess(const SpawnSpec& spec);
  // Kills the whole group and reaps the leader if that has not happened yet.
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }    // readable when the child has exited
  int stdout_fd() const { return out_fd_; }  // non-blocking read ends, -1 once closed
  int stderr_fd() const { return err_fd_; }
  bool reaped() const { return reaped_; }

  // Sends `sig` to the child's process group. No-op once reaped. Returns false if nothing was signalled.
  bool signal_group(int sig);
  // Reaps the child if it has exited: kills what is left of its group first (the unreaped
  // leader keeps the group id from being reused), then waitpid. Returns the wait status.
  std::optional<int> try_reap();
  // Blocks until the child exits or `timeout_ms` passes; returns the wait status if reaped.
  std::optional<int> wait_for(int timeout_ms);

  // Reads what is available on fd (stdout or stderr) and returns complete lines. At EOF the
  // fd is closed and the unterminated rest is returned as a last line.
  std::vector<std::string> read_lines(int fd);

  // The CPU time (user + system, seconds) the reaped child used, from wait4(2).
  double cpu_seconds() const { return cpu_seconds_; }

 private:
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool reaped_ = false;
  double cpu_seconds_ = 0;
  std::string out_buf_, err_buf_;
};

}  // namespace modelzoo::supervisor
