// Hashes and stores received chunks into cache partials on two threads of its own -- one
// hashing, one writing, each in submission order -- so that receiving (the event loop),
// hashing and disk writes all proceed at once. The loop learns of finished chunks through
// fd(), which it polls.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
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

  // Queues `data` to be hashed into `writer` and stored at `offset` through it; `writer`
  // must stay alive until take() has returned this chunk. Chunks are hashed and written in
  // submission order.
  void submit(std::uint64_t transfer, std::uint64_t call, core::ContentStore::Writer* writer, std::uint64_t offset,
              zmq::message_t data);
  // Queues a piece of a local copy: `size` bytes at `offset` of `src_fd` are hashed into
  // `writer` and copied into its partial at the same offset (in order with other pieces).
  // `src_fd` must stay open until take() has returned this piece.
  void submit_copy(std::uint64_t transfer, core::ContentStore::Writer* writer, int src_fd, std::uint64_t offset,
                   std::size_t size);
  // The chunks finished (hashed and written, or failed) since the last call.
  std::vector<Done> take();

 private:
  // One chunk, shared by the two threads; done when both have finished with it.
  struct Job {
    std::uint64_t transfer, call;
    core::ContentStore::Writer* writer;
    std::uint64_t offset;
    zmq::message_t data;
    int src_fd = -1;      // a local copy piece: bytes come from here
    std::size_t length = 0;
    int remaining = 2;  // guarded by mu_
    std::optional<bus::Error> error;  // guarded by mu_
  };
  void run(bool hashing);
  void finished(const std::shared_ptr<Job>& job, std::optional<bus::Error> error);

  int event_fd_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> to_hash_, to_write_;
  std::vector<Done> done_;
  bool stop_ = false;
  std::thread hasher_, writer_;
};

}  // namespace modelzoo::supervisor
