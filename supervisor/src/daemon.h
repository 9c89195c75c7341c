// modelzood: the supervisor daemon (docs/architecture.md). One event loop thread owns the
// sockets, the plugin processes and all state; nothing here is thread-safe by design.
#pragma once

#include <memory>
#include <string>

#include "modelzoo/config/config.h"

namespace modelzoo::supervisor {

class Daemon {
 public:
  explicit Daemon(DaemonConfig config);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Binds the sockets, starts the plugins and serves until SIGTERM/SIGINT.
  // Returns the process exit code. Throws std::runtime_error if it cannot start
  // (runtime directory unusable, another daemon running there).
  int run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelzoo::supervisor
