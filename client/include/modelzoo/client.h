// modelzoo::Client -- talks to a running modelzood over its client socket
// (docs/protocol.md, "Client protocol"). Used by the `modelzoo` CLI, the tests and
// applications. A Client is not thread-safe; use one per thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"

namespace modelzoo {

// The daemon's runtime directory: $MODELZOO_RUNTIME_DIR, else $XDG_RUNTIME_DIR/modelzoo,
// else /tmp/modelzoo-$UID.
std::string default_runtime_dir();

// Thrown when the daemon cannot be reached (not running, stale socket, no answer in time).
class DaemonUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A daemon on another host, reached over TCP with CURVE (docs/security.md, "Remote peers
// over TCP"). The daemon must list this client's public key in its client allow-list.
struct RemoteDaemon {
  std::string endpoint;         // the daemon's `listen.clients`, tcp://host:port
  std::string server_key;       // the daemon's public key, 40 Z85 characters
  std::string key_file;         // this client's key pair (`modelzoo keys generate`)
  std::string events_endpoint;  // the daemon's `listen.events`, for EventSubscriber
};

// The remote daemon named by MODELZOO_CONNECT, MODELZOO_SERVER_KEY, MODELZOO_KEY_FILE and
// MODELZOO_EVENTS_CONNECT; nullopt when MODELZOO_CONNECT is not set.
std::optional<RemoteDaemon> remote_daemon_from_environment();

class Client {
 public:
  // Connects to the daemon whose runtime directory is `runtime_dir` (empty: default).
  // Throws DaemonUnavailable at once when no daemon listens there.
  explicit Client(std::string runtime_dir = {});
  // Connects to a daemon over TCP. Throws DaemonUnavailable naming the reason when the CURVE
  // handshake does not succeed within 5 s (no daemon there, a wrong server key, or this
  // client's key refused), and bus::KeyError for an unusable key file.
  explicit Client(const RemoteDaemon& remote);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The runtime directory, or the TCP endpoint of a remote daemon.
  const std::string& runtime_dir() const { return runtime_dir_; }

  // Calls `method` with `body` and returns the reply body. Progress messages, if any, go to
  // `on_progress`. Throws bus::Error carrying the daemon's typed error,
  // bus::Error(timeout) when no reply comes within `timeout` (or no progress for 60 s), and
  // DaemonUnavailable when the daemon dies meanwhile: at once when the connection drops
  // (also when a new daemon took its place: the request is lost with the old one), and
  // within about a second when the socket file stops accepting connections.
  nlohmann::json call(const std::string& method, nlohmann::json body = nlohmann::json::object(),
                      std::chrono::milliseconds timeout = std::chrono::seconds(30),
                      const std::function<void(const nlohmann::json&)>& on_progress = {});

  // Convenience wrappers; reply shapes are those of docs/protocol.md.
  nlohmann::json status() { return call("status"); }
  nlohmann::json plugins() { return call("plugins"); }
  nlohmann::json models() { return call("models"); }
  nlohmann::json show(const std::string& ref) { return call("show", {{"model", ref}}); }
  nlohmann::json pull(const std::string& ref, const std::function<void(const nlohmann::json&)>& on_progress = {},
                      std::chrono::milliseconds timeout = std::chrono::hours(24));
  // As pull, and the reply also carries the model's "metadata".
  nlohmann::json load(const std::string& ref, const std::function<void(const nlohmann::json&)>& on_progress = {},
                      std::chrono::milliseconds timeout = std::chrono::hours(24));
  nlohmann::json reset_plugin(const std::string& name) { return call("plugin.reset", {{"name", name}}); }

 private:
  void setup_monitor(int events);
  std::string runtime_dir_;
  bool tcp_ = false;
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::uint64_t next_id_ = 1;
};

// One event: its topic and its body (which always has "topic", "time" and "source").
struct Event {
  std::string topic;
  nlohmann::json body;
};

// Follows the daemon's event socket. Subscriptions are topic prefixes ("" = everything).
class EventSubscriber {
 public:
  EventSubscriber(std::string runtime_dir, const std::vector<std::string>& prefixes);
  // Over TCP, from `remote.events_endpoint`.
  EventSubscriber(const RemoteDaemon& remote, const std::vector<std::string>& prefixes);
  ~EventSubscriber();
  EventSubscriber(const EventSubscriber&) = delete;
  EventSubscriber& operator=(const EventSubscriber&) = delete;
  // Waits at most `timeout` for the next event.
  std::optional<Event> next(std::chrono::milliseconds timeout);

 private:
  void subscribe(const std::string& endpoint, const std::vector<std::string>& prefixes);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelzoo
