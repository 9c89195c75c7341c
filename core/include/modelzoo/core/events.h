// Event topics and the publishing interface (docs/protocol.md, "Events").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace modelzoo::core {

namespace topic {
inline constexpr const char* kPluginStarted = "plugin.started";
inline constexpr const char* kPluginExited = "plugin.exited";
inline constexpr const char* kPluginRestarted = "plugin.restarted";
inline constexpr const char* kPluginFailed = "plugin.failed";
inline constexpr const char* kPluginRejected = "plugin.rejected";
inline constexpr const char* kDownloadStarted = "model.download.started";
inline constexpr const char* kDownloadProgress = "model.download.progress";
inline constexpr const char* kDownloadCompleted = "model.download.completed";
inline constexpr const char* kDownloadFailed = "model.download.failed";
inline constexpr const char* kLoadStarted = "model.load.started";
inline constexpr const char* kLoadCompleted = "model.load.completed";
inline constexpr const char* kLoadFailed = "model.load.failed";
inline constexpr const char* kExtensionHook = "extension.hook";
inline constexpr const char* kCacheReclaimed = "cache.reclaimed";
inline constexpr const char* kDaemonStarted = "daemon.started";
inline constexpr const char* kConfigReloaded = "daemon.config.reloaded";
inline constexpr const char* kConfigRejected = "daemon.config.rejected";
inline constexpr const char* kDaemonStopping = "daemon.stopping";
}  // namespace topic

class EventSink {
 public:
  virtual ~EventSink() = default;
  // Publishes `body` under `topic`; the sink adds "topic", "time" and "source"
  // (source defaults to "modelzood" unless the body has one). Never blocks.
  virtual void publish(const std::string& topic, nlohmann::json body) = 0;
};

// RFC 3339 UTC time with milliseconds, e.g. "2026-11-21T22:33:57.123Z".
std::string now_rfc3339();

}  // namespace modelzoo::core
