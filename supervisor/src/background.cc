#include "background.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>

namespace modelzoo::supervisor {

Background::Background() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error("eventfd failed");
  thread_ = std::thread([this] { run(); });
}

Background::~Background() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  thread_.join();
  ::close(event_fd_);
}

void Background::submit(std::function<void()> work, std::function<void()> then) {
  {
    std::lock_guard lk(mu_);
    queue_.push_back({std::move(work), std::move(then)});
  }
  cv_.notify_all();
}

void Background::run() {
  // Signals belong to the daemon's signalfd: this thread must never take one.
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  while (true) {
    Job job;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job.work();  // catches its own exceptions (the continuation reports them)
    {
      std::lock_guard lk(mu_);
      finished_.push_back(std::move(job.then));
    }
    std::uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

void Background::run_finished() {
  std::uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lk(mu_);
    ready.swap(finished_);
  }
  for (auto& f : ready) f();
}

}  // namespace modelzoo::supervisor
