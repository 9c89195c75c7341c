// The sources: the table of configured sources and the plugin process running each, and the
// plugins' socket (plugins.sock). Spawn and isolation, exits and restarts, heartbeats, the
// hello, plugin messages, configuration reload and its file watch, and resolution counting
// the sources that are down. Calls to plugins go through PluginCalls, which it hands every
// answer. Runs on the daemon's event loop; nothing here is thread-safe.
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
#include <zmq.hpp>

#include "modelzoo/config/config.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/core/events.h"
#include "modelzoo/core/plugin_manager.h"
#include "plugin_calls.h"
#include "pull_engine.h"
#include "timers.h"

namespace modelzoo::supervisor {

class RemoteAccess;

class Sources : public SourceDirectory {
 public:
  using Clock = std::chrono::steady_clock;
  // `cfg` is the daemon's configuration: a reload replaces it. `plugin_sock` is the bound
  // ROUTER of plugins.sock (and of the TCP plugin endpoints).
  Sources(DaemonConfig& cfg, zmq::socket_t& plugin_sock, PluginCalls& calls, Timers& timers, core::EventSink& events);
  ~Sources() override;
  Sources(const Sources&) = delete;
  Sources& operator=(const Sources&) = delete;

  // The TCP endpoints (null without `listen`): told the keys of the remote sources.
  void set_remote(RemoteAccess* remote);
  // Starts a plugin for every configured source, and watches the configuration file.
  void start();
  // PluginCalls' send function: sends `m` to the plugin running `source`. A request needs
  // the plugin ready; other messages only a connected one.
  std::optional<bus::Error> send(const std::string& source, bus::Message& m);

  // plugins.sock is readable.
  void read_socket();
  // The descriptors of the plugin processes (exit, stdout, stderr) to poll, appended to
  // `items`; then on_process_events with the same items after the poll.
  void add_process_items(std::vector<zmq::pollitem_t>& items);
  void on_process_events(const std::vector<zmq::pollitem_t>& items);
  // Heartbeats, hello timeouts, restarts after back-off, rate-limited warnings.
  void on_tick(Clock::time_point now);
  // When on_tick next has something to do.
  Clock::time_point next_tick() const;
  // Forgets retired sources whose process has ended. Call between loop rounds only.
  void collect_retired();

  // The configuration file's directory watch (-1 when none) and its events.
  int config_watch_fd() const;
  void on_config_dir_event();
  // Re-reads the configuration file; `force` even when it did not change (SIGHUP).
  void reload(const std::string& why, bool force);
  int reloads() const;

  // The daemon is stopping: no exit from now on is restarted.
  void begin_stop();
  // Stops every plugin, last started first: goodbye, then SIGTERM, then SIGKILL.
  void stop_all();

  // Views for clients (docs/protocol.md, "Client protocol").
  struct Counts {
    std::size_t total = 0;
    int ready = 0, failed = 0;
  };
  Counts counts() const;
  nlohmann::json plugins_view();
  // The plugins ready now, with what they declared in their hello.
  std::vector<core::PluginRecord> ready_plugins() const;
  // `plugin.reset`: clears the failures of source `name` and starts it if it is not running.
  // Throws Error(not_found) for an unknown name. Returns its state after.
  std::string reset(const std::string& name);

  // SourceDirectory.
  void resolve(const bus::ModelRef& ref, std::uint32_t timeout_ms, std::function<void(core::Resolution)> done) override;
  std::vector<std::filesystem::path> local_read(const std::string& source) override;
  std::vector<ExtensionView> extensions() override;
  void restart_plugin(const std::string& name, const std::string& why) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace modelzoo::supervisor
