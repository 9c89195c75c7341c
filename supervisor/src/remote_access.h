// Remote peers over TCP (docs/security.md, "Remote peers over TCP").
//
// The daemon's sockets listen on ipc in the private runtime directory, and on TCP only when
// the configuration's `listen` block asks for it. A TCP endpoint is always a CURVE server:
// traffic is encrypted, and every peer must present a key on an allow-list. The allow-list
// is enforced by a ZAP handler (ZeroMQ RFC 27) in the daemon's context; without one libzmq
// would admit any key. Refusals — a key not on the list, a peer that does not speak CURVE,
// a wrong server key — are logged and published (plugin.rejected, client.rejected).
#pragma once

#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "modelzoo/config/config.h"
#include "modelzoo/bus/curve.h"

namespace modelzoo::supervisor {

class RemoteAccess {
 public:
  enum class Domain { plugins, clients, events };
  using Publish = std::function<void(const std::string& topic, nlohmann::json body)>;

  // Binds the ZAP handler in `ctx` and reads (or, the first time, creates) the server key.
  // Throws std::runtime_error naming the file when the key cannot be used.
  RemoteAccess(zmq::context_t& ctx, const ListenSettings& settings, Publish publish);
  ~RemoteAccess();
  RemoteAccess(const RemoteAccess&) = delete;
  RemoteAccess& operator=(const RemoteAccess&) = delete;

  // Makes `sock` a CURVE server for `domain`, binds `endpoint` (tcp://...) and starts
  // watching its failed handshakes. Returns the bound endpoint (a `*` port resolved).
  // Endpoints bound on `sock` before this call keep their mechanism (NULL, for ipc).
  std::string listen(zmq::socket_t& sock, const std::string& endpoint, Domain domain);

  // The plugin keys: public key -> the remote source it may serve. Replaced on reload.
  void set_plugin_keys(std::map<std::string, std::string> keys) { plugin_keys_ = std::move(keys); }

  // Sockets to poll for input; `on_readable(i)` handles the i-th.
  std::vector<zmq::socket_t*> sockets();
  void on_readable(std::size_t i);

  const std::string& server_public_key() const { return server_.public_key; }
  nlohmann::json status() const;

  // The ZAP User-Id given to a plugin key: "source:<name>". The source named by a User-Id.
  static std::string plugin_user(const std::string& source) { return "source:" + source; }
  static std::string source_of_user(const std::string& user_id);

 private:
  struct Monitor {
    Domain domain;
    std::string endpoint;
    std::unique_ptr<zmq::socket_t> pair;
  };
  void answer_zap();
  void read_monitor(Monitor& m);
  void refuse(Domain d, const std::string& address, const std::string& key, const std::string& why);
  // Reloads the client allow-list when its file changed; returns key -> name.
  const std::map<std::string, std::string>& client_keys();

  zmq::context_t& ctx_;
  ListenSettings settings_;
  Publish publish_;
  bus::CurveKeyPair server_;
  zmq::socket_t zap_;
  std::vector<Monitor> monitors_;
  std::map<std::string, std::string> plugin_keys_;
  std::map<std::string, std::string> client_keys_;
  struct stat client_keys_stat_ {};
  bool client_keys_loaded_ = false;
  std::map<Domain, std::string> bound_;
  std::uint64_t admitted_ = 0, refused_ = 0;
};

const char* to_string(RemoteAccess::Domain d);

}  // namespace modelzoo::supervisor
