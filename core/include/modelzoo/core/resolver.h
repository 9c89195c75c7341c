// Resolution of a model across sources: ask every candidate plugin for the model's
// metadata in parallel, then pick the best source, and fail over to the next one when
// the best fails during a request. Callback-based so it runs inside the daemon's
// single-threaded event loop; unit-tested with a fake PluginCaller.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/core/plugin_manager.h"

namespace modelzoo::core {

// A finished call: the reply body, or the typed error (timeouts and plugin exits included).
struct CallResult {
  nlohmann::json body;
  std::optional<bus::Error> error;
  // Set instead of `body` (left empty) by call_raw(): the reply body's checked msgpack
  // bytes (bus::Message::raw_body), for a caller that reads them with a typed decoder.
  std::string raw_body = {};
  bool ok() const { return !error.has_value(); }
};

// How the core reaches plugins. The implementation MUST invoke `done` exactly once, and
// never from inside call() itself (always later, from the event loop).
class PluginCaller {
 public:
  virtual ~PluginCaller() = default;
  virtual void call(const std::string& plugin, const std::string& method, nlohmann::json body,
                    std::uint32_t timeout_ms, std::function<void(CallResult)> done) = 0;
  // call(), where the reply body MAY come as CallResult::raw_body instead of a JSON tree
  // (the hot path: resolve() reads metadata straight from msgpack). `done` must accept
  // either form. The default is call().
  virtual void call_raw(const std::string& plugin, const std::string& method, nlohmann::json body,
                        std::uint32_t timeout_ms, std::function<void(CallResult)> done) {
    call(plugin, method, std::move(body), timeout_ms, std::move(done));
  }
};

struct SourceAnswer {
  PluginRecord plugin;
  std::optional<bus::ModelMetadata> metadata;  // set when the source has the model
  std::optional<bus::Error> error;             // set otherwise (not_found included)
};

struct Resolution {
  bus::ModelRef ref;
  std::vector<SourceAnswer> sources;  // every candidate, in source order
  // The best source: the first in source order that has the model; nullptr if none.
  const SourceAnswer* best() const;
  // The sources that have the model, best first.
  std::vector<const SourceAnswer*> available() const;
  // The error to report when no source has the model: not_found when every candidate
  // said so (or there were none), else the first other error (unavailable, timeout, ...).
  bus::Error failure() const;
};

// Asks every candidate for `ref` at once; `done` receives all answers after the last one
// arrives (each call is bounded by `timeout_ms`). With no candidate at all, `done` runs
// before resolve() returns.
void resolve(const PluginManager& plugins, PluginCaller& caller, const bus::ModelRef& ref,
             std::uint32_t timeout_ms, std::function<void(Resolution)> done);

// The body of the reply to a client's `show` (docs/protocol.md, "show") for a resolution
// that has a best source: {best, metadata, model, sources: [{error, ok, plugin, priority,
// version}]}, written as msgpack without a JSON tree, byte for byte what encoding the same
// reply built as a JSON tree gives. Precondition: res.best() is not null.
std::string show_reply_msgpack(const Resolution& res);

// Runs `attempt` on each source that has the model, best first, until one succeeds.
// `attempt(source, finish)` must call finish(nullopt) on success or finish(error) on
// failure, once. `done` receives the winning source (or nullptr) and every failure met.
struct FailoverOutcome {
  const SourceAnswer* source = nullptr;  // the source that succeeded, or nullptr
  std::vector<std::pair<std::string, bus::Error>> failures;  // (plugin, error) in order tried
};
using Attempt = std::function<void(const SourceAnswer&, std::function<void(std::optional<bus::Error>)>)>;
void with_failover(std::shared_ptr<const Resolution> resolution, Attempt attempt,
                   std::function<void(FailoverOutcome)> done);

}  // namespace modelzoo::core
