#include "disk_writer.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <stdexcept>

namespace modelzoo::supervisor {

DiskWriter::DiskWriter() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error("eventfd failed");
  thread_ = std::thread([this] { run(); });
}

DiskWriter::~DiskWriter() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  ::close(event_fd_);
}

void DiskWriter::submit(std::uint64_t transfer, std::uint64_t call, const core::ContentStore::Writer* writer,
                        std::uint64_t offset, zmq::message_t data) {
  {
    std::lock_guard lk(mu_);
    jobs_.push_back({transfer, call, writer, offset, std::move(data)});
  }
  cv_.notify_one();
}

std::vector<DiskWriter::Done> DiskWriter::take() {
  std::uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);  // clears the counter
  std::lock_guard lk(mu_);
  return std::exchange(done_, {});
}

void DiskWriter::run() {
  // Signals are the event loop's business (signalfd): never let one land on this thread,
  // whose default action for SIGTERM would end the whole daemon.
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything queued is written
    Job job = std::move(jobs_.front());
    jobs_.pop_front();
    lk.unlock();
    Done d{job.transfer, job.call, job.data.size(), std::nullopt};
    try {
      job.writer->store(job.offset, job.data.data(), job.data.size());
    } catch (const bus::Error& e) {
      d.error = e;
    }
    lk.lock();
    done_.push_back(std::move(d));
    std::uint64_t one = 1;
    (void)!::write(event_fd_, &one, sizeof one);
  }
}

}  // namespace modelzoo::supervisor
