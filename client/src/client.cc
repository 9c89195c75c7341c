#include "modelzoo/client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include <zmq_addon.hpp>

#include "modelzoo/bus/curve.h"
#include "modelzoo/bus/socket.h"

namespace modelzoo {
using Clock = std::chrono::steady_clock;

std::string default_runtime_dir() {
  if (const char* d = std::getenv("MODELZOO_RUNTIME_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/modelzoo";
  return "/tmp/modelzoo-" + std::to_string(::getuid());
}

namespace {

// Fails fast, without ZeroMQ's silent reconnect loop, when nothing listens on the socket.
void check_listening(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    throw DaemonUnavailable("runtime directory path too long for a unix socket: " + path);
  }
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    if (err == ENOENT) throw DaemonUnavailable("daemon not running (no socket at " + path + ")");
    if (err == ECONNREFUSED) throw DaemonUnavailable("daemon not running (stale socket at " + path + ")");
    throw DaemonUnavailable("cannot reach the daemon at " + path + ": " + std::strerror(err));
  }
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

void make_curve_client(zmq::socket_t& sock, const RemoteDaemon& remote) {
  if (remote.endpoint.rfind("tcp://", 0) != 0)
    throw DaemonUnavailable("'" + remote.endpoint + "' is not a tcp://host:port endpoint");
  if (remote.key_file.empty())
    throw bus::KeyError("a remote daemon needs this client's key pair (--key, MODELZOO_KEY_FILE)");
  bus::make_curve_client(sock, remote.server_key, bus::read_key_file(remote.key_file));
}

}  // namespace

std::optional<RemoteDaemon> remote_daemon_from_environment() {
  RemoteDaemon r{env_or_empty("MODELZOO_CONNECT"), env_or_empty("MODELZOO_SERVER_KEY"), env_or_empty("MODELZOO_KEY_FILE"),
                 env_or_empty("MODELZOO_EVENTS_CONNECT")};
  if (r.endpoint.empty()) return std::nullopt;
  return r;
}

struct Client::Impl {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::dealer};
  // ZeroMQ reconnects a DEALER silently: a daemon that is killed and restarted within the
  // liveness check's second would leave a call waiting for an answer nobody will send until
  // its deadline (24 h for a pull). The socket monitor reports every lost connection.
  zmq::socket_t monitor{ctx, zmq::socket_type::pair};

  // True when the connection to the daemon dropped since the last call (events are consumed).
  bool connection_lost() {
    bool lost = false;
    while (auto e = bus::read_monitor_event(monitor))
      if (e->event == ZMQ_EVENT_DISCONNECTED) lost = true;
    return lost;
  }
};

void Client::setup_monitor(int events) {
  bus::configure_socket(impl_->sock);
  const char* monitor_endpoint = "inproc://modelzoo-client-monitor";  // the context is this client's own
  if (zmq_socket_monitor(impl_->sock.handle(), monitor_endpoint, events) != 0)
    throw DaemonUnavailable(std::string("cannot monitor the client socket: ") + zmq_strerror(zmq_errno()));
  impl_->monitor.set(zmq::sockopt::linger, 0);
  impl_->monitor.connect(monitor_endpoint);
}

Client::Client(std::string runtime_dir)
    : runtime_dir_(runtime_dir.empty() ? default_runtime_dir() : std::move(runtime_dir)), impl_(std::make_unique<Impl>()) {
  std::string path = runtime_dir_ + "/client.sock";
  check_listening(path);
  setup_monitor(ZMQ_EVENT_DISCONNECTED);
  impl_->sock.connect("ipc://" + path);
}

Client::Client(const RemoteDaemon& remote) : runtime_dir_(remote.endpoint), tcp_(true), impl_(std::make_unique<Impl>()) {
  make_curve_client(impl_->sock, remote);
  setup_monitor(ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL);
  impl_->sock.connect(remote.endpoint);
  // Nothing can be probed over TCP before the handshake: wait for its outcome, so that a
  // refused key is told as such rather than as a timeout of the first call.
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{impl_->monitor.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
    auto e = bus::read_monitor_event(impl_->monitor);
    if (!e) continue;
    auto [event, value] = *e;
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) return;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
      throw DaemonUnavailable("the daemon at " + remote.endpoint + " refused this client's key (status " +
                              std::to_string(value) + "; is it in the daemon's client_keys_file?)");
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
      throw DaemonUnavailable("CURVE handshake with " + remote.endpoint + " failed (a wrong server key?)");
  }
  throw DaemonUnavailable("no CURVE handshake with " + remote.endpoint +
                          " within 5 s (no daemon listening there, a wrong server key, or this client's key refused)");
}

Client::~Client() {
  if (impl_) zmq_socket_monitor(impl_->sock.handle(), nullptr, 0);  // stop the monitor before the sockets close
}

nlohmann::json Client::call(const std::string& method, nlohmann::json body, std::chrono::milliseconds timeout,
                            const std::function<void(const nlohmann::json&)>& on_progress) {
  std::uint64_t id = next_id_++;
  auto clamp = std::min<std::int64_t>(timeout.count(), UINT32_MAX);
  bus::Message req = bus::Message::make_request(id, method, std::move(body), static_cast<std::uint32_t>(clamp));
  (void)impl_->connection_lost();  // a drop before this call: the request goes to the new connection
  if (!bus::send(impl_->sock, req)) throw DaemonUnavailable("cannot send to the daemon (queue full)");
  // Progress resets the wait: a long pull is fine as long as it moves.
  auto idle = std::min<std::chrono::milliseconds>(timeout, std::chrono::seconds(60));
  auto deadline = Clock::now() + timeout;
  auto idle_deadline = Clock::now() + idle;
  while (true) {
    auto now = Clock::now();
    auto until = std::min(deadline, idle_deadline);
    if (now >= until) {
      throw bus::Error(bus::ErrorCode::timeout, "no answer from the daemon to '" + method + "' within " +
                                                    std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                                       (deadline < idle_deadline ? timeout : idle))
                                                                       .count()) +
                                                    " ms");
    }
    std::optional<bus::Received> r;
    try {
      // Wake at least once a second: ZeroMQ hides a dead peer, so look at the socket.
      auto wait = std::min<std::chrono::milliseconds>(std::chrono::duration_cast<std::chrono::milliseconds>(until - now),
                                                      std::chrono::seconds(1));
      zmq::pollitem_t items[] = {{impl_->sock.handle(), 0, ZMQ_POLLIN, 0}, {impl_->monitor.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, 2, wait);
      if (items[0].revents & ZMQ_POLLIN) r = bus::receive(impl_->sock, false);
      // The daemon never answers a request sent to a connection that is gone (it died,
      // or was restarted): fail now rather than at the deadline.
      if (!r && (items[1].revents & ZMQ_POLLIN) && impl_->connection_lost())
        throw DaemonUnavailable("lost the connection to the daemon (it stopped or restarted); '" + method +
                                "' got no answer");
    } catch (const bus::ProtocolError& e) {
      throw bus::Error(bus::ErrorCode::internal, std::string("invalid message from the daemon: ") + e.what());
    }
    if (!r) {
      if (!tcp_) check_listening(runtime_dir_ + "/client.sock");  // throws DaemonUnavailable when it died
      continue;
    }
    auto& m = r->message;
    if (m.id != id && !(m.type == bus::MessageType::error && m.id == 0)) continue;  // an older call's late answer
    switch (m.type) {
      case bus::MessageType::reply: return std::move(m.body);
      case bus::MessageType::error: throw bus::Error(*m.error_code, m.error_message);
      case bus::MessageType::progress:
        idle_deadline = Clock::now() + idle;
        if (on_progress) on_progress(m.body);
        break;
      default: break;
    }
  }
}

nlohmann::json Client::pull(const std::string& ref, const std::function<void(const nlohmann::json&)>& on_progress,
                            std::chrono::milliseconds timeout) {
  return call("pull", {{"model", ref}}, timeout, on_progress);
}

nlohmann::json Client::load(const std::string& ref, const std::function<void(const nlohmann::json&)>& on_progress,
                            std::chrono::milliseconds timeout) {
  return call("load", {{"model", ref}}, timeout, on_progress);
}

struct EventSubscriber::Impl {
  zmq::context_t ctx{1};
  zmq::socket_t sock{ctx, zmq::socket_type::sub};
};

EventSubscriber::EventSubscriber(std::string runtime_dir, const std::vector<std::string>& prefixes)
    : impl_(std::make_unique<Impl>()) {
  if (runtime_dir.empty()) runtime_dir = default_runtime_dir();
  std::string path = runtime_dir + "/events.sock";
  check_listening(path);
  subscribe("ipc://" + path, prefixes);
}

EventSubscriber::EventSubscriber(const RemoteDaemon& remote, const std::vector<std::string>& prefixes)
    : impl_(std::make_unique<Impl>()) {
  if (remote.events_endpoint.empty())
    throw DaemonUnavailable("no events endpoint of the remote daemon given (MODELZOO_EVENTS_CONNECT)");
  RemoteDaemon events = remote;
  events.endpoint = remote.events_endpoint;
  make_curve_client(impl_->sock, events);
  subscribe(events.endpoint, prefixes);
}

void EventSubscriber::subscribe(const std::string& endpoint, const std::vector<std::string>& prefixes) {
  impl_->sock.set(zmq::sockopt::linger, 0);
  impl_->sock.set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(bus::kMaxEnvelopeBytes));
  for (const auto& p : prefixes) impl_->sock.set(zmq::sockopt::subscribe, p);
  // Subscriptions travel to the daemon asynchronously. Subscribe last to a private sync
  // topic and wait for the daemon's answer on it: then every subscription above is active.
  std::random_device rd;
  std::string sync = "_sync." + std::to_string(rd()) + std::to_string(rd());
  impl_->sock.set(zmq::sockopt::subscribe, sync);
  impl_->sock.connect(endpoint);
  auto deadline = Clock::now() + std::chrono::seconds(5);
  while (Clock::now() < deadline) {
    zmq::pollitem_t item{impl_->sock.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(impl_->sock, std::back_inserter(frames));
    if (!frames.empty() && frames[0].to_string() == sync) {
      impl_->sock.set(zmq::sockopt::unsubscribe, sync);
      return;
    }
  }
  throw DaemonUnavailable("the daemon did not confirm the event subscription within 5 s");
}

EventSubscriber::~EventSubscriber() = default;

std::optional<Event> EventSubscriber::next(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return std::nullopt;
    zmq::pollitem_t item{impl_->sock.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, left) <= 0) return std::nullopt;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) return std::nullopt;  // a signal: let the caller decide
      throw;
    }
    std::vector<zmq::message_t> frames;
    (void)zmq::recv_multipart(impl_->sock, std::back_inserter(frames));
    if (frames.size() != 2) continue;
    Event e;
    e.topic = frames[0].to_string();
    if (e.topic.rfind("_sync.", 0) == 0) continue;
    try {
      e.body = bus::from_msgpack(frames[1].data(), frames[1].size());
    } catch (const bus::ProtocolError&) {
      continue;
    }
    return e;
  }
}

}  // namespace modelzoo
