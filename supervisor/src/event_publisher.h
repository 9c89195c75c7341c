// The daemon's event socket (XPUB) on a thread of its own.
//
// libzmq applies the subscriptions that reach an XPUB in whichever thread next calls into
// that socket, and it reads them until the pipe is empty: while a subscriber floods
// subscriptions faster than they are applied, that call does not return. With the socket
// in the daemon's loop, such a flood stopped the loop for seconds and every plugin was
// killed as hung (docs/reliability.md, "Floods"). Here only this thread waits; the loop
// hands each event over through a bounded inproc queue and never blocks on it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace modelzoo::supervisor {

// An event as published: `body` (an object; anything else counts as {}) with `topic`, `time`
// (RFC 3339) and, unless it names one, `source` "modelzood", in msgpack (docs/protocol.md,
// "Events").
std::string pack_event(const std::string& topic, nlohmann::json body);

class EventPublisher {
 public:
  // `queue` bounds the events waiting for the publishing thread; beyond it they are dropped
  // and counted, as libzmq drops them for a subscriber beyond its high-water mark.
  EventPublisher(zmq::context_t& ctx, int queue);
  // Publishes what was queued before, then stops the thread (stop()).
  ~EventPublisher();
  EventPublisher(const EventPublisher&) = delete;
  EventPublisher& operator=(const EventPublisher&) = delete;

  // The XPUB (its options set: high-water mark, verbose subscriptions for `_sync.`, message
  // size), to bind before start(); afterwards only the thread uses it.
  zmq::socket_t& socket() { return xpub_; }
  void start();
  // Publishes every event queued so far, then ends the thread. Idempotent.
  void stop();

  // Queues one event (pack_event(topic, body)). Never blocks. One thread only.
  void publish(const std::string& topic, nlohmann::json body);

  // Events dropped because the queue was full (the thread was behind).
  std::uint64_t dropped() const { return dropped_; }
  // Subscriptions and unsubscriptions the thread has read from subscribers.
  std::uint64_t subscriptions() const { return subscriptions_.load(std::memory_order_relaxed); }

 private:
  void run();
  bool round();  // one poll and its bounded batches; false: stop

  zmq::socket_t xpub_;
  zmq::socket_t in_;   // the publishing side of the queue (the loop's)
  zmq::socket_t out_;  // the thread's side
  std::thread thread_;
  std::uint64_t dropped_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> subscriptions_{0};
};

}  // namespace modelzoo::supervisor
