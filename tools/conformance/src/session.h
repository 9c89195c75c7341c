// One spawn of the plugin under test and the kit's end of its bus connection: a ROUTER bound
// in the kit's runtime directory, the daemon's heartbeats, and a mailbox of what the plugin
// sent, sorted by request id. Single-threaded: every wait pumps the socket, the process's
// output and its exit, and sends heartbeats when they are due.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "child.h"
#include "modelzoo/bus/message.h"

namespace modelzoo::conformance {

using Clock = std::chrono::steady_clock;

struct Inbound {
  bus::Message message;
  Clock::time_point at;
};

class Session {
 public:
  // Binds ipc://<dir>/<socket_name> and starts `command` as source `source`, spawn 1. Throws
  // std::runtime_error when the process cannot be started.
  Session(const std::filesystem::path& dir, const std::string& socket_name, const std::string& source,
          const std::vector<std::string>& command);
  ~Session();

  const std::string& plugin_id() const { return plugin_id_; }
  const std::string& token() const { return token_; }
  Child& child() { return *child_; }

  // Waits for a `hello` from any connection. Returns it, or nullopt with `why` set (exited, no
  // hello in time, something else first).
  std::optional<bus::Message> wait_hello(Clock::time_point deadline, std::string& why);
  // Accepts the connection the hello came from: sends `welcome` and starts heartbeating.
  void welcome(int protocol, std::chrono::milliseconds heartbeat, int liveness, const nlohmann::json& config);
  void reject(bus::ErrorCode code, const std::string& message);

  bool accepted() const { return !peer_.empty(); }
  std::chrono::milliseconds heartbeat_interval() const { return heartbeat_; }
  int liveness() const { return liveness_; }
  Clock::time_point welcomed_at() const { return welcomed_at_; }

  // Sends a request; returns its id.
  std::uint64_t request(const std::string& method, nlohmann::json body, std::uint32_t timeout_ms);
  void send(bus::Message& m);                             // to the accepted peer
  void send_frames(const std::vector<std::string>& frames);  // raw frames, to the accepted peer
  // Forget request `id`: later messages for it are dropped (and counted in `late`).
  void forget(std::uint64_t id);

  // The next message with `id` (reply, error or chunk), waiting until `deadline`. nullopt when
  // the deadline passed or the process exited (see alive()).
  std::optional<Inbound> next_for(std::uint64_t id, Clock::time_point deadline);
  // Pumps until `deadline`, or until `stop` returns true (checked after each round).
  void pump_until(Clock::time_point deadline, const std::function<bool()>& stop = {});
  // Pumps until the process exits or `deadline`; true when it exited.
  bool wait_exit(Clock::time_point deadline);
  bool alive();

  // Describes why the plugin can no longer answer: "the plugin exited (exit 1) after it said
  // goodbye ('...')"; empty while it runs.
  std::string gone() ;
  // "... (it also sent answers to requests 3, 4)": what arrived while waiting for something else.
  std::string others(std::uint64_t except) const;

  bool send_heartbeats = true;  // the kit's own heartbeats (off: "the daemon went silent")

  // What the plugin did, for the checks.
  std::vector<Clock::time_point> heartbeats;  // each heartbeat received after the welcome
  std::vector<std::string> invalid;           // why each invalid or unexpected message was
  std::optional<std::string> goodbye;         // the reason in the plugin's goodbye
  std::optional<Clock::time_point> goodbye_at;
  std::size_t received = 0;                   // messages after the hello
  std::size_t late = 0;                       // messages for forgotten requests
  std::size_t unattributed = 0;               // errors with id 0 (answers to something unattributable)

  std::vector<std::string> output_tail(std::size_t lines = 12) const { return child_->tail(lines); }

 private:
  void pump_once(Clock::time_point deadline);
  void on_frames_error(const std::string& peer, const std::string& why);
  void on_message(const std::string& peer, bus::Message&& m);

  zmq::context_t ctx_{1};
  zmq::socket_t sock_{ctx_, zmq::socket_type::router};
  std::unique_ptr<Child> child_;
  std::string plugin_id_, token_;
  std::string peer_;                  // routing id of the accepted connection
  std::string candidate_;             // routing id of the last hello handed out
  Clock::time_point started_ = Clock::now();
  std::deque<std::pair<std::string, bus::Message>> hellos_;  // not yet handled
  std::map<std::uint64_t, std::deque<Inbound>> mailbox_;
  std::map<std::uint64_t, bool> forgotten_;
  std::uint64_t next_id_ = 1;
  std::chrono::milliseconds heartbeat_{1000};
  int liveness_ = 3;
  Clock::time_point welcomed_at_{}, next_beat_{};
};

// Set by interrupt(); every wait checks it and throws Interrupted.
bool interrupted();

}  // namespace modelzoo::conformance
