// The client front: the clients' socket (client.sock, and the TCP client endpoints),
// admission (the bounds on requests in flight), every client request, the status views, and
// replies and progress. Pulls and loads go to the PullEngine, which answers through this.
// Runs on the daemon's event loop; nothing here is thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "modelzoo/config/config.h"
#include "modelzoo/bus/message.h"
#include "plugin_calls.h"
#include "pull_engine.h"
#include "sources.h"

namespace modelzoo::supervisor {

// Client requests read but not answered yet (docs/reliability.md, "Bounds"): over these, a
// request is refused at once with `unavailable`, so a flooding client cannot grow the
// daemon's memory without bound nor starve the others.
inline constexpr std::size_t kMaxRequestsPerClient = 1000;  // per client connection
inline constexpr std::size_t kMaxRequestsInFlight = 10000;  // all clients together

class ClientFront : public ClientReplies {
 public:
  // `daemon_status` gives the daemon's own part of the `status` reply (version, pid,
  // directories, event socket, TCP endpoints); the front adds the plugins and the requests.
  ClientFront(const DaemonConfig& cfg, zmq::socket_t& client_sock, Sources& sources, PluginCalls& calls,
              std::function<nlohmann::json()> daemon_status);
  ClientFront(const ClientFront&) = delete;
  ClientFront& operator=(const ClientFront&) = delete;

  // The engine pulls and loads go to (it answers through this front, so it comes second).
  void set_engine(PullEngine* engine) { engine_ = engine; }
  // client.sock is readable.
  void read_socket();
  std::size_t in_flight() const { return inflight_total_; }

  // ClientReplies.
  void reply(const ClientWaiter& w, nlohmann::json body) override;
  void error(const ClientWaiter& w, const bus::Error& e) override;
  void progress(const ClientWaiter& w, const nlohmann::json& body) override;
  // A reply whose body is msgpack already (MsgpackWriter output).
  void reply_raw(const ClientWaiter& w, std::string raw_body);

 private:
  bool admit(const ClientWaiter& w);
  void answered(const ClientWaiter& w);
  void on_request(const ClientWaiter& w, bus::Message& m);
  void list_models(const ClientWaiter& w, std::uint32_t timeout);
  std::uint32_t plugin_timeout(const bus::Message& m) const;

  const DaemonConfig& cfg_;
  zmq::socket_t& sock_;
  Sources& sources_;
  PluginCalls& calls_;
  std::function<nlohmann::json()> daemon_status_;
  PullEngine* engine_ = nullptr;
  // Client requests in flight: by (connection, id), by connection, in all.
  std::map<std::pair<std::string, std::uint64_t>, int> inflight_;
  std::map<std::string, std::size_t> inflight_by_client_;
  std::size_t inflight_total_ = 0;
};

}  // namespace modelzoo::supervisor
