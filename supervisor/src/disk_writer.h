// Stores received chunks into cache partials on a thread of its own, so the event loop
// (which hashes each chunk, in order, as it arrives) and the disk work at the same time.
// The loop learns of finished writes through fd(), which it polls.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/core/cache.h"

namespace modelzoo::supervisor {

class DiskWriter {
 public:
  struct Done {
    std::uint64_t transfer;  // the tag given to submit()
    std::uint64_t call;
    std::size_t bytes;
    std::optional<bus::Error> error;
  };

  DiskWriter();
  // Finishes the queued writes, then stops the thread.
  ~DiskWriter();
  DiskWriter(const DiskWriter&) = delete;
  DiskWriter& operator=(const DiskWriter&) = delete;

  // Readable (POLLIN) while finished writes wait in take().
  int fd() const { return event_fd_; }

  // Queues `data` to be stored at `offset` through `writer`, which must stay alive until
  // take() has returned this write. Writes run in submission order.
  void submit(std::uint64_t transfer, std::uint64_t call, const core::ContentStore::Writer* writer,
              std::uint64_t offset, zmq::message_t data);
  // The writes finished since the last call.
  std::vector<Done> take();

 private:
  struct Job {
    std::uint64_t transfer, call;
    const core::ContentStore::Writer* writer;
    std::uint64_t offset;
    zmq::message_t data;
  };
  void run();

  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  std::vector<Done> done_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace modelzoo::supervisor
