#include "session.h"

#include <sys/stat.h>

#include <cerrno>

#include <algorithm>
#include <atomic>
#include <stdexcept>

#include "modelzoo/bus/random.h"
#include "modelzoo/bus/socket.h"
#include "modelzoo/conformance/kit.h"

namespace modelzoo::conformance {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kMaxPoll{50};
constexpr milliseconds kDrainAfterExit{100};  // messages sent just before the exit are still in flight

std::atomic<bool> g_interrupted{false};
static_assert(std::atomic<bool>::is_always_lock_free);  // set from a signal handler

}  // namespace

void interrupt() { g_interrupted.store(true); }
bool interrupted() { return g_interrupted.load(); }

Session::Session(const std::filesystem::path& dir, const std::string& socket_name, const std::string& source,
                 const std::vector<std::string>& command)
    : plugin_id_(source + ".1"), token_(bus::random_hex(32)) {
  bus::configure_socket(sock_);
  const std::string endpoint = "ipc://" + (dir / socket_name).string();
  mode_t old = ::umask(0077);  // the socket file is created 0600, as the daemon's
  try {
    sock_.bind(endpoint);
  } catch (...) {
    ::umask(old);
    throw;
  }
  ::umask(old);
  child_ = std::make_unique<Child>(command, std::map<std::string, std::string>{
                                                {"MODELZOO_ENDPOINT", endpoint},
                                                {"MODELZOO_PLUGIN_ID", plugin_id_},
                                                {"MODELZOO_TOKEN", token_},
                                                {"MODELZOO_PROTOCOL_VERSIONS", std::to_string(bus::kProtocolVersion)},
                                                {"MODELZOO_INSTANCE", source}});
}

Session::~Session() {
  child_.reset();  // kills the group first: no reconnection attempts against a closed socket
}

void Session::on_frames_error(const std::string& peer, const std::string& why) {
  if (!peer_.empty() && peer == peer_) {
    ++received;
    invalid.push_back("an invalid message: " + why);
  } else if (peer_.empty()) {
    invalid.push_back("an invalid message before its hello was answered: " + why);
  } else {
    invalid.push_back("an invalid message on a second connection: " + why);
  }
}

void Session::on_message(const std::string& peer, bus::Message&& m) {
  const std::string type(bus::to_string(m.type));
  if (peer_.empty()) {
    if (m.type == bus::MessageType::hello) hellos_.emplace_back(peer, std::move(m));
    else invalid.push_back("a " + type + " message before its hello was answered (only hello may come first)");
    return;
  }
  if (peer != peer_) {
    invalid.push_back("a " + type + " message on a second connection (one connection per plugin process)");
    return;
  }
  ++received;
  switch (m.type) {
    case bus::MessageType::heartbeat:
      heartbeats.push_back(Clock::now());
      return;
    case bus::MessageType::reply:
    case bus::MessageType::error:
    case bus::MessageType::chunk: {
      if (m.id == 0) {  // an error answering something that could not be attributed
        ++unattributed;
        return;
      }
      if (forgotten_.count(m.id)) {
        ++late;
        return;
      }
      mailbox_[m.id].push_back({std::move(m), Clock::now()});
      return;
    }
    case bus::MessageType::goodbye: {
      auto it = m.body.find("reason");
      if (it != m.body.end() && !it->is_string()) invalid.push_back("a goodbye whose reason is not a string");
      goodbye = bus::get_string(m.body, "reason");
      goodbye_at = Clock::now();
      return;
    }
    case bus::MessageType::hello:
      invalid.push_back("a second hello after the welcome");
      return;
    default:
      invalid.push_back("a " + type + " message, which plugins never send");
      return;
  }
}

void Session::pump_once(Clock::time_point deadline) {
  if (interrupted()) throw Interrupted();
  auto now = Clock::now();
  if (!peer_.empty() && send_heartbeats && now >= next_beat_) {
    auto hb = bus::Message::make(bus::MessageType::heartbeat);
    bus::send_to(sock_, peer_, hb);
    next_beat_ += heartbeat_;
    if (next_beat_ <= now) next_beat_ = now + heartbeat_;
  }
  auto until = deadline;
  if (!peer_.empty() && send_heartbeats) until = std::min(until, next_beat_);
  auto wait = std::clamp(std::chrono::duration_cast<milliseconds>(until - now), milliseconds(0), kMaxPoll);
  if (child_->exit_fd() < 0) wait = std::min(wait, milliseconds(10));

  std::vector<zmq::pollitem_t> items;
  items.push_back({sock_.handle(), 0, ZMQ_POLLIN, 0});
  for (int fd : {child_->out_fd(), child_->err_fd(), child_->exit_fd()})
    if (fd >= 0 && !(fd == child_->exit_fd() && child_->exited())) items.push_back({nullptr, fd, ZMQ_POLLIN, 0});
  try {
    zmq::poll(items.data(), items.size(), wait);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    if (interrupted()) throw Interrupted();
    return;  // a signal: the next round looks again
  }

  if (items[0].revents & ZMQ_POLLIN) {
    for (int i = 0; i < 1024; ++i) {
      std::string peer;
      std::optional<bus::Received> r;
      try {
        r = bus::receive(sock_, true, &peer);
      } catch (const bus::ProtocolError& e) {
        on_frames_error(peer, e.what());
        continue;
      }
      if (!r) break;
      on_message(r->routing_id, std::move(r->message));
    }
  }
  child_->read_output();
  child_->poll_exit();
}

std::optional<bus::Message> Session::wait_hello(Clock::time_point deadline, std::string& why) {
  while (true) {
    if (!hellos_.empty()) {
      auto [peer, m] = std::move(hellos_.front());
      hellos_.pop_front();
      candidate_ = peer;
      return std::move(m);
    }
    if (child_->exited()) {
      pump_until(Clock::now() + kDrainAfterExit, [&] { return !hellos_.empty(); });
      if (!hellos_.empty()) continue;
      why = "the plugin exited (" + child_->describe() + ") without saying hello";
      return std::nullopt;
    }
    if (Clock::now() >= deadline) {
      why = "no hello within " +
            std::to_string(std::chrono::duration_cast<milliseconds>(deadline - started_).count()) + " ms of the start";
      return std::nullopt;
    }
    pump_once(deadline);
  }
}

void Session::welcome(int protocol, milliseconds heartbeat, int liveness, const json& config) {
  peer_ = candidate_;
  heartbeat_ = heartbeat;
  liveness_ = liveness;
  auto w = bus::Message::make(bus::MessageType::welcome, {{"protocol", protocol},
                                                          {"plugin_id", plugin_id_},
                                                          {"heartbeat_ms", heartbeat.count()},
                                                          {"heartbeat_liveness", liveness},
                                                          {"config", config}});
  bus::send_to(sock_, peer_, w);
  welcomed_at_ = Clock::now();
  next_beat_ = welcomed_at_ + heartbeat_;
}

void Session::reject(bus::ErrorCode code, const std::string& message) {
  auto m = bus::Message::make(bus::MessageType::reject);
  m.error_code = code;
  m.error_message = message;
  bus::send_to(sock_, candidate_, m);
}

std::uint64_t Session::request(const std::string& method, json body, std::uint32_t timeout_ms) {
  std::uint64_t id = next_id_++;
  auto m = bus::Message::make_request(id, method, std::move(body), timeout_ms);
  bus::send_to(sock_, peer_, m);
  return id;
}

void Session::send(bus::Message& m) { bus::send_to(sock_, peer_, m); }

void Session::send_frames(const std::vector<std::string>& frames) {
  try {
    sock_.send(zmq::buffer(peer_), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    for (std::size_t i = 0; i < frames.size(); ++i)
      sock_.send(zmq::buffer(frames[i]),
                 (i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none) | zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The peer is gone or its queue is full: the checks notice through the missing answers.
  }
}

void Session::forget(std::uint64_t id) {
  forgotten_[id] = true;
  auto it = mailbox_.find(id);
  if (it != mailbox_.end()) {
    late += it->second.size();
    mailbox_.erase(it);
  }
}

std::optional<Inbound> Session::next_for(std::uint64_t id, Clock::time_point deadline) {
  bool drained = false;
  while (true) {
    auto it = mailbox_.find(id);
    if (it != mailbox_.end() && !it->second.empty()) {
      Inbound in = std::move(it->second.front());
      it->second.pop_front();
      return in;
    }
    if (child_->exited()) {
      if (drained) return std::nullopt;
      drained = true;
      pump_until(Clock::now() + kDrainAfterExit, [&] { return mailbox_.count(id) && !mailbox_[id].empty(); });
      continue;
    }
    if (Clock::now() >= deadline) return std::nullopt;
    pump_once(deadline);
  }
}

void Session::pump_until(Clock::time_point deadline, const std::function<bool()>& stop) {
  while (Clock::now() < deadline) {
    pump_once(deadline);
    if (stop && stop()) return;
  }
}

bool Session::wait_exit(Clock::time_point deadline) {
  pump_until(deadline, [&] { return child_->exited(); });
  if (child_->exited()) pump_until(Clock::now() + milliseconds(20));  // its last words
  return child_->exited();
}

bool Session::alive() {
  child_->poll_exit();
  return !child_->exited();
}

std::string Session::gone() {
  if (alive()) return {};
  std::string s = "the plugin exited (" + child_->describe() + ")";
  if (goodbye) s += " after saying goodbye ('" + goodbye->substr(0, 300) + "')";
  return s;
}

std::string Session::others(std::uint64_t except) const {
  std::string ids;
  for (const auto& [id, q] : mailbox_)
    if (id != except && !q.empty()) ids += (ids.empty() ? "" : ", ") + std::to_string(id);
  return ids.empty() ? "" : " (meanwhile it answered request(s) " + ids + ")";
}

}  // namespace modelzoo::conformance
