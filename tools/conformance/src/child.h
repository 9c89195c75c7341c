// A plugin process started as modelzood starts one (docs/protocol.md, "Environment passed to
// a plugin"): the caller's environment plus the given variables, stdin on /dev/null, stdout and
// stderr on pipes, leader of a new process group, SIGKILL when its parent thread dies, a clean
// signal mask, no inherited descriptor but 0, 1 and 2.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modelzoo::conformance {

class Child {
 public:
  // Starts argv with `env` added to (overriding) the environment. Throws std::runtime_error
  // naming the command and the reason (not found, not executable, exec failed).
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);
  // Kills the whole process group and reaps the leader.
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // Descriptors to poll: readable output and (pidfd, when the kernel has it) exit. -1 when closed.
  int out_fd() const { return out_fd_; }
  int err_fd() const { return err_fd_; }
  int exit_fd() const { return pidfd_; }

  // Reads what the process wrote; keeps the last lines.
  void read_output();
  // Reaps the process if it has exited (after killing what is left of its group). Returns
  // true once it has exited.
  bool poll_exit();
  bool exited() const { return status_.has_value(); }
  int status() const { return status_.value_or(0); }
  // "exit 3", "signal 9 (SIGKILL)"
  std::string describe() const;
  bool exited_cleanly() const;  // exit status 0

  // Sends `sig` to the process group (no-op once reaped).
  void signal_group(int sig);

  // The last lines of stderr and stdout (stdout lines are marked), oldest first.
  std::vector<std::string> tail(std::size_t lines) const;

 private:
  void read_fd(int& fd, std::string& partial, bool is_stdout);
  void add_line(std::string line, bool is_stdout);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::optional<int> status_;
  std::string out_partial_, err_partial_;
  std::deque<std::string> lines_;
};

}  // namespace modelzoo::conformance
