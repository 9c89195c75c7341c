#include "child.h"

#include <sys/wait.h>

#include <stdexcept>

namespace modelzoo::conformance {
namespace {

constexpr std::size_t kKeepLines = 200;

}  // namespace

Child::Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env) {
  supervisor::SpawnSpec spec;
  spec.argv = argv;
  spec.env = env;
  try {
    proc_ = std::make_unique<supervisor::ChildProcess>(spec);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("cannot start: ") + e.what());
  }
}

bool Child::poll_exit() {
  if (status_) return true;
  auto st = proc_->try_reap();
  if (!st) return false;
  status_ = *st;
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

void Child::read_output() {
  if (proc_->stderr_fd() >= 0)
    for (auto& line : proc_->read_lines(proc_->stderr_fd())) add_line(std::move(line), false);
  if (proc_->stdout_fd() >= 0)
    for (auto& line : proc_->read_lines(proc_->stdout_fd())) add_line(std::move(line), true);
}

std::vector<std::string> Child::tail(std::size_t lines) const {
  std::size_t from = lines_.size() > lines ? lines_.size() - lines : 0;
  return {lines_.begin() + static_cast<std::ptrdiff_t>(from), lines_.end()};
}

}  // namespace modelzoo::conformance
