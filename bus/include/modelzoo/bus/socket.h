// Sending and receiving bus messages over ZeroMQ sockets (docs/protocol.md, "Sockets").
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "modelzoo/bus/message.h"

namespace modelzoo::bus {

// Applies the socket options every bus socket uses: ZMQ_MAXMSGSIZE (a peer that sends an
// oversized frame is disconnected by libzmq before it is buffered), linger, high-water marks.
void configure_socket(zmq::socket_t& s);

// Sends `m` on a DEALER (or any socket without routing frames). Returns false when the
// message could not be queued without blocking (high-water mark reached).
bool send(zmq::socket_t& s, Message& m);

// Sends `m` to the peer `routing_id` on a ROUTER socket. Returns false when the peer is
// unknown or its queue is full (ZMQ_ROUTER_MANDATORY is set by configure_socket).
bool send_to(zmq::socket_t& s, const std::string& routing_id, Message& m);

// A received message. `routing_id` is set only for ROUTER sockets.
struct Received {
  std::string routing_id;
  Message message;
  // The ZAP User-Id of an authenticated peer (a CURVE key admitted over TCP): the name the
  // daemon gave that key. Empty for local peers (ipc).
  std::string user_id;
};

// Receives one whole multipart message without blocking. Returns nullopt when nothing is
// waiting. Throws ProtocolError when the frames do not form a valid message (the frames
// are consumed either way, so the socket stays usable); `routing_id` is then filled in
// `bad_peer` if non-null. `form` says how the body is handed over (see BodyForm).
std::optional<Received> receive(zmq::socket_t& s, bool router, std::string* bad_peer = nullptr,
                                BodyForm form = BodyForm::json);

// One event of a zmq_socket_monitor() PAIR socket: its ZMQ_EVENT_* and value.
struct MonitorEvent {
  std::uint16_t event = 0;
  std::uint32_t value = 0;
};
// Reads one event without blocking (all its frames); nullopt when none is waiting. A
// malformed event has `event` 0.
std::optional<MonitorEvent> read_monitor_event(zmq::socket_t& monitor);

// Waits at most `timeout` for a message on a single socket.
std::optional<Received> receive_for(zmq::socket_t& s, bool router, std::chrono::milliseconds timeout);

}  // namespace modelzoo::bus
