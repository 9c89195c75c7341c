#include "disk_writer.h"

#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace modelzoo::supervisor {

DiskWriter::DiskWriter() {
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (event_fd_ < 0) throw std::runtime_error("eventfd failed");
  hasher_ = std::thread([this] { run(true); });
  writer_ = std::thread([this] { run(false); });
}

DiskWriter::~DiskWriter() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  hasher_.join();
  writer_.join();
  ::close(event_fd_);
}

void DiskWriter::submit(std::uint64_t transfer, std::uint64_t call, core::ContentStore::Writer* writer,
                        std::uint64_t offset, zmq::message_t data) {
  auto job = std::make_shared<Job>();
  job->transfer = transfer;
  job->call = call;
  job->writer = writer;
  job->offset = offset;
  job->data = std::move(data);
  {
    std::lock_guard lk(mu_);
    to_hash_.push_back(job);
    to_write_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void DiskWriter::submit_copy(std::uint64_t transfer, core::ContentStore::Writer* writer, int src_fd,
                             std::uint64_t offset, std::size_t size) {
  auto job = std::make_shared<Job>();
  job->transfer = transfer;
  job->call = 0;
  job->writer = writer;
  job->offset = offset;
  job->src_fd = src_fd;
  job->length = size;
  {
    std::lock_guard lk(mu_);
    to_hash_.push_back(job);
    to_write_.push_back(std::move(job));
  }
  cv_.notify_all();
}

// Hashes a local copy piece by reading it from the source file.
static bus::Status hash_piece(core::ContentStore::Writer* writer, int fd, std::uint64_t offset, std::size_t size) {
  std::vector<char> buf(1 << 20);
  std::size_t done = 0;
  while (done < size) {
    ssize_t r = ::pread(fd, buf.data(), std::min(buf.size(), size - done), static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return bus::Error(bus::ErrorCode::internal, "cannot read the local file to hash it: " +
                                                               std::string(r == 0 ? "it shrank" : std::strerror(errno)));
    writer->absorb(buf.data(), static_cast<std::size_t>(r));
    done += static_cast<std::size_t>(r);
  }
  return {};
}

std::vector<DiskWriter::Done> DiskWriter::take() {
  // The counter is cleared under the lock that finished() writes it under, so a chunk that
  // finishes between the two is either taken now or leaves the fd readable for the next round,
  // never the fd readable with nothing to take.
  std::lock_guard lk(mu_);
  std::uint64_t n;
  (void)!::read(event_fd_, &n, sizeof n);
  return std::exchange(done_, {});
}

void DiskWriter::finished(const std::shared_ptr<Job>& job, std::optional<bus::Error> error) {
  std::lock_guard lk(mu_);
  if (error && !job->error) job->error = std::move(error);
  if (--job->remaining > 0) return;
  // The loop gets an error of its own: a copy of an exception shares its message with the
  // original through a reference count inside libstdc++, and the original dies on this thread
  // with the job (a race as ThreadSanitizer sees it, since it cannot see that count).
  std::optional<bus::Error> own;
  if (job->error) own.emplace(job->error->code(), std::string(job->error->what()));
  done_.push_back({job->transfer, job->call, job->src_fd >= 0 ? job->length : job->data.size(), std::move(own)});
  std::uint64_t one = 1;
  (void)!::write(event_fd_, &one, sizeof one);
}

void DiskWriter::run(bool hashing) {
  // Signals are the event loop's business (signalfd): never let one land on this thread,
  // whose default action for SIGTERM would end the whole daemon.
  sigset_t all;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, nullptr);
  auto& queue = hashing ? to_hash_ : to_write_;
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return stop_ || !queue.empty(); });
    if (queue.empty()) return;  // stopping, and everything queued is done
    auto job = std::move(queue.front());
    queue.pop_front();
    lk.unlock();
    bus::Status status;
    if (job->src_fd >= 0) {
      status = hashing ? hash_piece(job->writer, job->src_fd, job->offset, job->length)
                       : job->writer->copy_from(job->src_fd, job->offset, job->length);
    } else if (hashing) {
      job->writer->absorb(job->data.data(), job->data.size());
    } else {
      status = job->writer->store(job->offset, job->data.data(), job->data.size());
    }
    finished(job, status.failure());
    lk.lock();
  }
}

}  // namespace modelzoo::supervisor
