#include "modelzoo/bus/socket.h"

#include <cstring>

#include "modelzoo/bus/curve.h"

namespace modelzoo::bus {

void configure_socket(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(kMaxSocketMessageBytes));
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, 10000);
  s.set(zmq::sockopt::rcvhwm, 10000);
  if (s.get(zmq::sockopt::type) == ZMQ_ROUTER) s.set(zmq::sockopt::router_mandatory, true);
}

namespace {
bool send_frames(zmq::socket_t& s, const std::string* routing_id, Message& m) {
  std::string env = encode_envelope(m);
  const bool with_data = m.type == MessageType::chunk;
  try {
    if (routing_id) {
      if (!s.send(zmq::buffer(*routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
        return false;
    }
    auto flags = with_data ? zmq::send_flags::sndmore : zmq::send_flags::none;
    if (!s.send(zmq::buffer(env), flags | zmq::send_flags::dontwait)) return false;
    if (with_data && !s.send(m.data, zmq::send_flags::dontwait)) return false;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH || e.num() == EAGAIN) return false;
    throw;
  }
  return true;
}
}  // namespace

bool send(zmq::socket_t& s, Message& m) { return send_frames(s, nullptr, m); }

bool send_to(zmq::socket_t& s, const std::string& routing_id, Message& m) {
  return send_frames(s, &routing_id, m);
}

std::optional<Received> receive(zmq::socket_t& s, bool router, std::string* bad_peer, BodyForm form) {
  std::vector<zmq::message_t> frames;
  // Read every part even when there are too many: a multipart message is atomic, and
  // leaving parts behind would desynchronise the socket.
  while (true) {
    zmq::message_t f;
    auto r = s.recv(f, frames.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
    if (!r) return std::nullopt;
    bool more = f.more();
    if (frames.size() <= kMaxFrames + 1) frames.push_back(std::move(f));
    if (!more) break;
  }
  Received out;
  if (frames.size() > (router ? 1u : 0u)) out.user_id = peer_user_id(frames[router ? 1 : 0]);
  if (router) {
    out.routing_id = frames.front().to_string();
    frames.erase(frames.begin());
    if (bad_peer) *bad_peer = out.routing_id;
  }
  out.message = decode(frames, form);
  return out;
}

std::optional<MonitorEvent> read_monitor_event(zmq::socket_t& monitor) {
  zmq::message_t head;
  if (!monitor.recv(head, zmq::recv_flags::dontwait)) return std::nullopt;
  MonitorEvent e;
  if (head.size() >= 6) {  // frame 1: uint16 event, uint32 value; frame 2: the endpoint
    std::memcpy(&e.event, head.data(), 2);
    std::memcpy(&e.value, static_cast<const char*>(head.data()) + 2, 4);
  }
  for (bool more = head.more(); more;) {
    zmq::message_t rest;
    if (!monitor.recv(rest, zmq::recv_flags::dontwait)) break;
    more = rest.more();
  }
  return e;
}

std::optional<Received> receive_for(zmq::socket_t& s, bool router, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  return receive(s, router);
}

}  // namespace modelzoo::bus
