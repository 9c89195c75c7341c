// The example HTTP registry server (docs/http-registry.md): serves a directory laid out like
// the local-file plugin's, <root>/<model name>/<version>/<files...>, over HTTP/1.1 with
// cpp-httplib. The directory logic (name checks, path-escape checks, the hash cache,
// modelzoo.yaml) is the local-file plugin's Store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "example-http-registry/protocol.h"

namespace modelzoo::plugins::http_registry {

struct ServerOptions {
  std::filesystem::path root;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = any free port
  AuthConfig auth;
  int threads = 8;

  // Test knobs (documented as such in docs/http-registry.md).
  std::uint64_t fail_first = 0;     // answer the first N requests with fail_status
  int fail_status = 503;            // 503 or 429
  std::uint64_t retry_after = 1;    // seconds, the Retry-After of every 503/429
  std::int64_t drop_after_bytes = -1;  // >= 0: close the connection after N body bytes, once per file
  std::int64_t die_after_bytes = -1;   // >= 0: _exit(1) once N file body bytes were sent in all
  std::uint64_t throttle = 0;          // bytes per second per response, 0 = unlimited

  // One line per call; stderr when empty.
  std::function<void(const std::string&)> log;
};

class Server {
 public:
  // Throws std::runtime_error on unusable options (an unreadable bearer file).
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on host:port; returns the port (the chosen one for port 0). Throws
  // std::runtime_error when the address cannot be bound.
  int bind();
  // Serves until stop(); returns false when accepting failed.
  bool serve();
  // Thread-safe; may be called from a signal-handling thread.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelzoo::plugins::http_registry
