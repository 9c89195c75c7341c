#include "plugin_calls.h"

#include <vector>

namespace modelzoo::supervisor {
using bus::Error;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;

void PluginCalls::call(const std::string& source, const std::string& method, json body, std::uint32_t timeout_ms,
                       Done done) {
  call_stream(source, method, std::move(body), timeout_ms, nullptr, std::move(done));
}

void PluginCalls::call_raw(const std::string& source, const std::string& method, json body, std::uint32_t timeout_ms,
                           Done done) {
  if (std::uint64_t id = call_stream(source, method, std::move(body), timeout_ms, nullptr, std::move(done)))
    calls_.at(id).raw_reply = true;
}

bool PluginCalls::wants_raw(std::uint64_t id) const {
  auto it = calls_.find(id);
  return it != calls_.end() && it->second.raw_reply;
}

std::uint64_t PluginCalls::call_stream(const std::string& source, const std::string& method, json body,
                                       std::uint32_t timeout_ms, OnChunk on_chunk, Done done) {
  std::uint64_t id = next_id_;
  Message m = Message::make_request(id, method, std::move(body), timeout_ms);
  if (auto why = send_(source, m)) {
    deferred_.push_back([done = std::move(done), why = *why] { done({json(), why}); });
    return 0;
  }
  ++next_id_;
  auto idle = std::chrono::milliseconds(timeout_ms);
  calls_.emplace(id, Pending{source, std::move(done), std::move(on_chunk), Clock::now() + idle, idle});
  return id;
}

void PluginCalls::complete(std::uint64_t id, core::CallResult r) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  auto done = std::move(it->second.done);
  calls_.erase(it);
  done(std::move(r));
}

void PluginCalls::cancel(std::uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Message c = Message::make(MessageType::cancel);
  c.id = id;
  (void)send_(it->second.source, c);  // a plugin gone cannot be told; its call ends anyway
}

void PluginCalls::credit(std::uint64_t id, const std::string& source, std::uint32_t chunks) {
  Message c = Message::make(MessageType::credit, {{"chunks", chunks}});
  c.id = id;
  (void)send_(source, c);
}

void PluginCalls::on_answer(const std::string& source, Message& m) {
  auto it = calls_.find(m.id);
  if (it == calls_.end() || it->second.source != source) return;  // late answer to a call we gave up
  switch (m.type) {
    case MessageType::chunk:
      if (!it->second.on_chunk) return;
      it->second.deadline = Clock::now() + it->second.idle;
      if (auto err = it->second.on_chunk(m)) {
        cancel(m.id);
        complete(m.id, {json(), *err});
      }
      return;
    case MessageType::reply:
      complete(m.id, {std::move(m.body), std::nullopt, std::move(m.raw_body)});
      return;
    case MessageType::error:
      complete(m.id, {json(), Error(m.error_code.value_or(ErrorCode::internal), m.error_message)});
      return;
    default:
      return;
  }
}

void PluginCalls::fail_all(const std::string& source, const Error& why) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, c] : calls_)
    if (c.source == source) ids.push_back(id);
  for (auto id : ids) complete(id, {json(), why});
}

void PluginCalls::expire(Clock::time_point now) {
  std::vector<std::uint64_t> expired;
  for (const auto& [id, c] : calls_)
    if (now > c.deadline) expired.push_back(id);
  for (auto id : expired) {
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;  // ended by the completion of an earlier one
    std::string msg = "plugin '" + it->second.source + "' did not answer within " +
                      std::to_string(it->second.idle.count()) + " ms";
    cancel(id);
    complete(id, {json(), Error(ErrorCode::timeout, msg)});
  }
}

std::optional<PluginCalls::Clock::time_point> PluginCalls::next_deadline() const {
  std::optional<Clock::time_point> n;
  for (const auto& [_, c] : calls_)
    if (!n || c.deadline < *n) n = c.deadline;
  return n;
}

void PluginCalls::run_deferred() {
  for (std::size_t n = deferred_.size(); n > 0; --n) {
    auto f = std::move(deferred_.front());
    deferred_.pop_front();
    f();
  }
}

}  // namespace modelzoo::supervisor
