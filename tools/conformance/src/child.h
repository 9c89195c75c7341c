// A plugin process started exactly as modelzood starts one: supervisor::ChildProcess (the
// caller's environment plus the given variables, stdin on /dev/null, stdout and stderr on
// pipes, leader of a new process group, SIGKILL when its parent thread dies, a clean signal
// mask, no inherited descriptor but 0, 1 and 2), plus the last lines it wrote, for reports.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "modelzoo/process/child_process.h"  // supervisor::ChildProcess

namespace modelzoo::conformance {

class Child {
 public:
  // Starts argv with `env` added to (overriding) the environment. Throws std::runtime_error
  // "cannot start: <reason>" (not found, not an executable file, exec failed).
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env);

  pid_t pid() const { return proc_->pid(); }
  // Descriptors to poll: readable output, and exit (a pidfd). -1 when closed.
  int out_fd() const { return proc_->stdout_fd(); }
  int err_fd() const { return proc_->stderr_fd(); }
  int exit_fd() const { return proc_->pidfd(); }

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
  void signal_group(int sig) { proc_->signal_group(sig); }

  // The last lines of stderr and stdout (stdout lines are marked), oldest first.
  std::vector<std::string> tail(std::size_t lines) const;

 private:
  void add_line(std::string line, bool is_stdout);

  std::unique_ptr<supervisor::ChildProcess> proc_;  // its destructor kills the group and reaps
  std::optional<int> status_;
  std::deque<std::string> lines_;
};

}  // namespace modelzoo::conformance
