// Pulls and loads: from a model reference to verified files in the cache. Resolution,
// per-file transfers (streamed from plugins under credit, or copied locally from a trusted
// path), resume, failover at the received offset, progress and download/load events.
// Runs inside the daemon's event loop; reaches plugins and clients through PullHost.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config.h"
#include "hooks.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/core/events.h"
#include "modelzoo/core/resolver.h"

namespace modelzoo::supervisor {

// A client's request waiting for an asynchronous answer.
struct ClientWaiter {
  std::string routing_id;
  std::uint64_t id;
};

// What the pull engine needs from the daemon (and, as a HookHost, to run extensions).
// Every callback runs on the event loop.
class PullHost : public HookHost {
 public:
  // Resolution across the sources (core::resolve plus the sources that are down).
  virtual void resolve(const bus::ModelRef& ref, std::uint32_t timeout_ms, std::function<void(core::Resolution)> done) = 0;
  // A streaming call to a plugin; returns its id (0 when it could not be sent: `done` then
  // runs later with the error).
  virtual std::uint64_t call_stream(const std::string& plugin, const std::string& method, nlohmann::json body,
                                    std::uint32_t timeout_ms, std::function<std::optional<bus::Error>(bus::Message&)> on_chunk,
                                    std::function<void(core::CallResult)> done) = 0;
  virtual void cancel_call(std::uint64_t id) = 0;
  virtual void complete_call(std::uint64_t id, core::CallResult r) = 0;
  virtual void send_credit(std::uint64_t call_id, const std::string& plugin, std::uint32_t chunks) = 0;
  virtual void reply_client(const ClientWaiter& w, nlohmann::json body) = 0;
  virtual void error_client(const ClientWaiter& w, const bus::Error& e) = 0;
  virtual void progress_client(const ClientWaiter& w, const nlohmann::json& body) = 0;
  // Directories the configuration trusts for local copies from `source` (local_read).
  virtual std::vector<std::filesystem::path> local_read(const std::string& source) = 0;
  // Runs `fire` once, from the event loop, at or after `when`.
  virtual void at(std::chrono::steady_clock::time_point when, std::function<void()> fire) = 0;
};

class PullEngine {
 public:
  // Opens the cache (throws std::runtime_error naming a directory it cannot create) and
  // removes partials older than the configured retention.
  PullEngine(const DaemonConfig& cfg, PullHost& host, core::EventSink& events);
  ~PullEngine();
  PullEngine(const PullEngine&) = delete;
  PullEngine& operator=(const PullEngine&) = delete;

  // Pulls (or loads) `ref` for `w`; concurrent requests for one reference share one job.
  void start(const ClientWaiter& w, const bus::ModelRef& ref, bool load, bool offline);
  // Readable when the disk threads finished chunks: call on_disk_writes().
  int disk_fd() const;
  void on_disk_writes();
  // Readable when background work (committing files extensions produced) finished: call
  // on_background().
  int background_fd() const;
  void on_background();
  // Answers every waiting client with `why` (the daemon is stopping).
  void abort_all(const bus::Error& why);
  // Partials removed at start (for the daemon's log).
  std::size_t removed_partials() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelzoo::supervisor
