// The daemon's outstanding calls to plugins: ids, deadlines, streamed chunks, credit and
// cancel. It knows nothing of plugin processes: it is handed a function that sends a message
// to the plugin currently running a source, and is told of the answers that come back.
// Runs on the daemon's event loop; nothing here is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/core/resolver.h"

namespace modelzoo::supervisor {

class PluginCalls : public core::PluginCaller {
 public:
  using Clock = std::chrono::steady_clock;
  // Sends `m` to the plugin running source `source`: nothing when it went out, else why it
  // could not (the error a request fails with).
  using Send = std::function<std::optional<bus::Error>(const std::string& source, bus::Message& m)>;
  // Handles one chunk of a streamed call; an error ends the call with it (and cancels it).
  using OnChunk = std::function<std::optional<bus::Error>(bus::Message&)>;
  using Done = std::function<void(core::CallResult)>;

  explicit PluginCalls(Send send) : send_(std::move(send)) {}
  PluginCalls(const PluginCalls&) = delete;
  PluginCalls& operator=(const PluginCalls&) = delete;

  // core::PluginCaller: a call answered by one reply or error.
  void call(const std::string& source, const std::string& method, nlohmann::json body, std::uint32_t timeout_ms,
            Done done) override;
  // core::PluginCaller: the same, with the reply body handed over as its checked msgpack
  // bytes (CallResult::raw_body) instead of a JSON tree: the hot path (resolve()).
  void call_raw(const std::string& source, const std::string& method, nlohmann::json body, std::uint32_t timeout_ms,
                Done done) override;
  // A call answered by chunks, then a reply or error. `timeout_ms` bounds the wait for the
  // first answer and then for each next one. Returns the call's id, or 0 when it could not be
  // sent: `done` then runs with the error from run_deferred(), never from inside this call.
  std::uint64_t call_stream(const std::string& source, const std::string& method, nlohmann::json body,
                            std::uint32_t timeout_ms, OnChunk on_chunk, Done done);
  // Tells the plugin to abandon call `id` (the call stays until completed).
  void cancel(std::uint64_t id);
  // Ends call `id` with `r` (no-op when it has ended already).
  void complete(std::uint64_t id, core::CallResult r);
  // Grants `chunks` more chunks of call `id` to the plugin of `source`.
  void credit(std::uint64_t id, const std::string& source, std::uint32_t chunks);

  // A reply, error or chunk from the plugin running `source`. An answer to a call that has
  // ended (late) or that belongs to another source is dropped.
  void on_answer(const std::string& source, bus::Message& m);
  // True when a reply with this id is to be handed over raw (a call_raw() outstanding):
  // the reader then leaves its body as bytes instead of materializing it.
  bool wants_raw(std::uint64_t id) const;
  // Ends every call to `source` with `why` (its plugin exited, was killed or retired).
  void fail_all(const std::string& source, const bus::Error& why);
  // Ends every call past its deadline with `timeout` (and cancels it at the plugin).
  void expire(Clock::time_point now);
  std::optional<Clock::time_point> next_deadline() const;

  // Failures of calls that could not be sent, waiting for the loop.
  bool has_deferred() const { return !deferred_.empty(); }
  // Runs the ones queued so far (those they queue wait for the next call).
  void run_deferred();

  std::size_t outstanding() const { return calls_.size(); }

 private:
  struct Pending {
    std::string source;
    Done done;
    OnChunk on_chunk;  // streamed calls only
    Clock::time_point deadline;
    std::chrono::milliseconds idle{0};  // the deadline moves by this on every chunk
    bool raw_reply = false;  // call_raw(): the reply body is handed over as msgpack bytes
  };
  Send send_;
  std::map<std::uint64_t, Pending> calls_;
  std::uint64_t next_id_ = 1;
  std::deque<std::function<void()>> deferred_;
};

}  // namespace modelzoo::supervisor
