// Pulls and loads: from a model reference to verified files in the cache. Resolution,
// per-file transfers (streamed from plugins under credit, or copied locally from a trusted
// path), resume, failover at the received offset, progress and download/load events.
// Runs inside the daemon's event loop. It finds sources through a SourceDirectory, calls
// plugins through PluginCalls, answers through ClientReplies and waits on Timers: each a
// narrow piece a unit test can drive (tests/unit/pull_engine_test.cc).
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

#include "modelzoo/config/config.h"
#include "hooks.h"
#include "plugin_calls.h"
#include "timers.h"
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

// Where a pull's answers go: the client front (client_front.h).
class ClientReplies {
 public:
  virtual ~ClientReplies() = default;
  virtual void reply(const ClientWaiter& w, nlohmann::json body) = 0;
  virtual void error(const ClientWaiter& w, const bus::Error& e) = 0;
  virtual void progress(const ClientWaiter& w, const nlohmann::json& body) = 0;
};

// What a pull needs of the sources (sources.h): resolution, the directories a source may
// be copied from, and the extensions.
class SourceDirectory : public ExtensionDirectory {
 public:
  // Resolution across the sources (core::resolve plus the sources that are down).
  virtual void resolve(const bus::ModelRef& ref, std::uint32_t timeout_ms, std::function<void(core::Resolution)> done) = 0;
  // Directories the configuration trusts for local copies from `source` (local_read).
  virtual std::vector<std::filesystem::path> local_read(const std::string& source) = 0;
};

class PullEngine {
 public:
  // Opens the cache (throws std::runtime_error naming a directory it cannot create) and
  // removes partials older than the configured retention.
  PullEngine(const DaemonConfig& cfg, SourceDirectory& sources, PluginCalls& calls, ClientReplies& replies,
             Timers& timers, core::EventSink& events);
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
