// The modelzoo C++ plugin SDK. A registry plugin implements `Registry` and calls `run`.
// Everything else -- connecting to the daemon, the hello handshake, heartbeats, request
// dispatch, deadlines, error mapping, download flow control, exiting when the daemon goes
// away -- is done here, as specified in docs/protocol.md.
//
//   class MyRegistry : public modelzoo::sdk::Registry { ... };
//   int main(int argc, char** argv) {
//     MyRegistry r;
//     return modelzoo::sdk::run(r, {.name = "my-registry", .version = "1.0.0"}, argc, argv);
//   }
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/names.h"

namespace modelzoo::sdk {

using bus::Error;  // throw Error(ErrorCode::not_found, "...") from a handler
using bus::ErrorCode;
using bus::FileInfo;
using bus::ModelMetadata;
using bus::ModelSummary;

// What the plugin says about itself in its hello. The daemon's configuration may override
// priority and handles (docs/configuration.md).
struct PluginInfo {
  std::string name;                        // plugin name, [a-z0-9_-]
  std::string version = "0.0.0";           // semantic version of the plugin
  int priority = 0;                        // higher is asked first
  std::vector<std::string> handles{"*"};   // glob patterns of model names it serves
  // When true, metadata(), exists() and list() run on the plugin's main loop instead of a
  // worker thread: about half the latency of a request. Only for registries whose answers
  // never block (data in memory): while a handler runs no heartbeat is sent, and a handler
  // slower than heartbeat_ms x liveness (3 s by default) gets the plugin killed as hung.
  // Downloads always run on their own thread.
  bool inline_requests = false;
};

struct DownloadRequest {
  std::string name;
  std::string version;  // always concrete: the daemon resolves "latest" first
  std::string file;     // a name from the model's metadata `files`
  std::uint64_t offset = 0;
};

// Where a download writes its bytes. Not thread-safe: use it from the download() call only.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // Sends `size` bytes as one or more chunks. Blocks while the daemon has granted no
  // credit (flow control). Throws Error(unavailable) when the download was cancelled or the
  // plugin is stopping, and Error(timeout) when no credit came within the request's
  // timeout_ms (the stall timeout): let it propagate.
  virtual void write(const void* data, std::size_t size) = 0;
  // Largest chunk the daemon accepts; writes are split to this size.
  virtual std::size_t chunk_size() const = 0;
};

// A registry: answers for models. Methods are called from several worker threads at once
// and must be thread-safe. Throw Error with the right code on failure; any other exception
// becomes an `internal` error with its what() as the message.
class Registry {
 public:
  virtual ~Registry() = default;

  // Called once, after the daemon accepted the hello and before any request, with the
  // plugin's configuration (a map; empty when none). Throwing here ends the plugin.
  virtual void configure(const nlohmann::json& config) { (void)config; }

  // Metadata of `name` at `version`, or the latest version when `version` is empty.
  // Throws Error(not_found) when this registry has no such model or version.
  virtual ModelMetadata metadata(const std::string& name, const std::string& version) = 0;

  // Whether this registry has the model (and version, if not empty). The default asks metadata().
  virtual bool exists(const std::string& name, const std::string& version);

  // Every model this registry has.
  virtual std::vector<ModelSummary> list() = 0;

  // Writes the bytes of req.file from req.offset to its end into `sink`.
  virtual void download(const DownloadRequest& req, ChunkSink& sink) = 0;
};

// Connects to the daemon named by the environment (MODELZOO_ENDPOINT, MODELZOO_PLUGIN_ID,
// MODELZOO_TOKEN), serves requests until the daemon says goodbye, goes silent, or the
// process gets SIGTERM/SIGINT, and returns the process exit code (0 on a clean stop).
// `argc`/`argv` are accepted for future options; none are read yet.
int run(Registry& registry, const PluginInfo& info, int argc, char** argv);

// Writes one log line to stderr, which the daemon captures into its log tagged with the
// plugin. `level` is one of "debug", "info", "warn", "error".
void log(const char* level, const std::string& message);

}  // namespace modelzoo::sdk
