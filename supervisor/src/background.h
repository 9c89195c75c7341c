// Work the event loop must not wait for (hashing files that extensions produced): runs each
// job on a thread of its own, in submission order, then hands its continuation back to the
// loop, which polls fd() and calls run_finished().
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace modelzoo::supervisor {

class Background {
 public:
  Background();
  // Waits for the job in progress (queued jobs are dropped, their continuations never run).
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  // Readable (POLLIN) while finished jobs wait for run_finished().
  int fd() const { return event_fd_; }
  // Runs `work` on the background thread, then `then` on the loop (in run_finished()).
  void submit(std::function<void()> work, std::function<void()> then);
  // Runs the continuations of the jobs finished so far. Loop thread only.
  void run_finished();

 private:
  struct Job {
    std::function<void()> work, then;
  };
  void run();
  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  std::vector<std::function<void()>> finished_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace modelzoo::supervisor
