#include "event_publisher.h"

#include <cerrno>
#include <cstdio>

#include <spdlog/spdlog.h>
#include "modelzoo/bus/message.h"
#include "modelzoo/core/events.h"

namespace modelzoo::supervisor {

EventPublisher::EventPublisher(zmq::context_t& ctx, int queue)
    : xpub_(ctx, zmq::socket_type::xpub), in_(ctx, zmq::socket_type::pair), out_(ctx, zmq::socket_type::pair) {
  char endpoint[64];
  std::snprintf(endpoint, sizeof endpoint, "inproc://modelzood-events-%p", static_cast<void*>(this));
  // An inproc pipe holds the sender's sndhwm plus the receiver's rcvhwm.
  in_.set(zmq::sockopt::sndhwm, queue / 2);
  out_.set(zmq::sockopt::rcvhwm, queue - queue / 2);
  in_.set(zmq::sockopt::linger, 0);
  out_.set(zmq::sockopt::linger, 0);
  in_.bind(endpoint);
  out_.connect(endpoint);
  xpub_.set(zmq::sockopt::linger, 0);
  xpub_.set(zmq::sockopt::sndhwm, 10000);  // per subscriber: a slow one misses events
  xpub_.set(zmq::sockopt::xpub_verbose, 1);  // see every subscription (for _sync.)
  xpub_.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(4096));
}

EventPublisher::~EventPublisher() { stop(); }

void EventPublisher::start() { thread_ = std::thread([this] { run(); }); }

void EventPublisher::stop() {
  if (!thread_.joinable()) return;
  // A frame without a topic ends the thread once the events before it are out. The thread
  // drains the queue, so there is room soon; if not within 2 s (held up by a flood), the flag
  // ends it at its next round and what is still queued is dropped.
  in_.set(zmq::sockopt::sndtimeo, 2000);
  bool sent = false;
  try {
    sent = in_.send(zmq::message_t{}, zmq::send_flags::none).has_value();
  } catch (const zmq::error_t&) {
  }
  if (!sent) stopping_ = true;
  thread_.join();
}

std::string pack_event(const std::string& topic, nlohmann::json body) {
  if (!body.is_object()) body = nlohmann::json::object();
  body["topic"] = topic;
  body["time"] = core::now_rfc3339();
  if (!body.contains("source")) body["source"] = "modelzood";
  return bus::to_msgpack(body);
}

void EventPublisher::publish(const std::string& topic, nlohmann::json body) {
  std::string packed = pack_event(topic, std::move(body));
  try {
    if (!in_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      if (++dropped_ % 10000 == 1)
        spdlog::warn("event queue full: {} event(s) dropped so far (the publishing thread is behind)", dropped_);
      return;
    }
    // The second frame of a pair always fits once the first was taken.
    in_.send(zmq::buffer(packed), zmq::send_flags::none);
  } catch (const zmq::error_t& e) {
    spdlog::debug("event {} not queued: {}", topic, e.what());
  }
}

void EventPublisher::run() {
  for (;;) {
    try {
      if (!round()) return;
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;  // the context is going away with the daemon
      spdlog::warn("event thread: {}", e.what());
    } catch (const std::exception& e) {
      // Nothing a subscriber sends may end the thread (or, uncaught, the daemon).
      spdlog::warn("event thread: {}", e.what());
    }
  }
}

bool EventPublisher::round() {
  zmq::pollitem_t items[] = {{out_.handle(), 0, ZMQ_POLLIN, 0}, {xpub_.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, 2, std::chrono::milliseconds(200));
  if (stopping_) return false;
  // Bounded batches of each, so that neither events nor subscriptions starve the other.
  for (int i = 0; i < 1024 && (items[0].revents & ZMQ_POLLIN); ++i) {
    zmq::message_t topic, body;
    if (!out_.recv(topic, zmq::recv_flags::dontwait)) break;
    if (!topic.more()) return false;  // stop()
    (void)out_.recv(body, zmq::recv_flags::none);
    // An XPUB never blocks: a subscriber beyond its high-water mark misses the event.
    xpub_.send(topic, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    xpub_.send(body, zmq::send_flags::dontwait);
  }
  // XPUB delivers subscribe (\x01 prefix) and unsubscribe (\x00 prefix) messages. A
  // subscription to "_sync.<nonce>" is answered on that topic so a subscriber knows all
  // its earlier subscriptions are in effect (docs/protocol.md, "Events").
  for (int i = 0; i < 256 && (items[1].revents & ZMQ_POLLIN); ++i) {
    zmq::message_t m;
    if (!xpub_.recv(m, zmq::recv_flags::dontwait)) break;
    subscriptions_.fetch_add(1, std::memory_order_relaxed);
    std::string_view s = m.to_string_view();
    if (s.size() > 7 && s[0] == 1 && s.compare(1, 6, "_sync.") == 0) {
      std::string topic(s.substr(1));
      std::string body = pack_event(topic, nlohmann::json::object());
      xpub_.send(zmq::buffer(topic), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      xpub_.send(zmq::buffer(body), zmq::send_flags::dontwait);
    }
  }
  return true;
}

}  // namespace modelzoo::supervisor
