// PluginCalls (supervisor/src/plugin_calls.h): the daemon's table of outstanding calls to
// plugins, driven here through a fake send function. Timers (timers.h) at the end.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "fake_wire.h"
#include "plugin_calls.h"
#include "timers.h"

namespace {
using modelzoo::bus::Error;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::Message;
using modelzoo::bus::MessageType;
using modelzoo::core::CallResult;
using modelzoo::supervisor::PluginCalls;
using modelzoo::supervisor::Timers;
using modelzoo::supervisor::fakes::Sent;
using modelzoo::supervisor::fakes::Wire;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string message_of(const CallResult& r) { return r.error ? std::string(r.error->what()) : "ok"; }

Message answer(MessageType type, std::uint64_t id, json body = json::object()) {
  Message m = Message::make(type, std::move(body));
  m.id = id;
  return m;
}

TEST(PluginCalls, AReplyEndsTheCallWithItsBody) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::vector<CallResult> results;
  calls.call("mem", "metadata", {{"name", "org/m"}}, 1000, [&](CallResult r) { results.push_back(std::move(r)); });
  ASSERT_EQ(wire.sent.size(), 1u);
  EXPECT_EQ(wire.sent[0].type, MessageType::request);
  EXPECT_EQ(wire.sent[0].method, "metadata");
  EXPECT_EQ(wire.sent[0].body["name"], "org/m");
  EXPECT_EQ(calls.outstanding(), 1u);
  Message reply = answer(MessageType::reply, wire.sent[0].id, {{"version", "1.0.0"}});
  calls.on_answer("mem", reply);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].ok());
  EXPECT_EQ(results[0].body["version"], "1.0.0");
  EXPECT_EQ(calls.outstanding(), 0u);
}

TEST(PluginCalls, AnErrorKeepsItsCodeAndMessage) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::optional<CallResult> result;
  calls.call("mem", "metadata", json::object(), 1000, [&](CallResult r) { result = std::move(r); });
  Message err = Message::make_error(wire.sent[0].id, ErrorCode::not_found, "no such model");
  calls.on_answer("mem", err);
  ASSERT_TRUE(result);
  ASSERT_FALSE(result->ok());
  EXPECT_EQ(result->error->code(), ErrorCode::not_found);
  EXPECT_STREQ(result->error->what(), "no such model");
}

TEST(PluginCalls, AnswersFromAnotherSourceOrForAnUnknownIdAreDropped) {
  Wire wire;
  PluginCalls calls(wire.send());
  int done = 0;
  calls.call("a", "metadata", json::object(), 1000, [&](CallResult) { ++done; });
  std::uint64_t id = wire.sent[0].id;
  Message forged = answer(MessageType::reply, id);
  calls.on_answer("b", forged);  // another plugin answering a's call
  Message unknown = answer(MessageType::reply, id + 100);
  calls.on_answer("a", unknown);
  EXPECT_EQ(done, 0);
  EXPECT_EQ(calls.outstanding(), 1u);
  Message late = answer(MessageType::reply, id);
  calls.on_answer("a", late);
  calls.on_answer("a", late);  // a second answer to an ended call
  EXPECT_EQ(done, 1);
}

TEST(PluginCalls, ACallThatCannotBeSentFailsLaterNeverInsideTheCall) {
  Wire wire;
  wire.down = {"mem"};
  PluginCalls calls(wire.send());
  std::optional<CallResult> result;
  std::uint64_t id = calls.call_stream("mem", "download", json::object(), 1000, nullptr,
                                       [&](CallResult r) { result = std::move(r); });
  EXPECT_EQ(id, 0u);
  EXPECT_FALSE(result) << "done ran inside call_stream";
  EXPECT_TRUE(calls.has_deferred());
  EXPECT_EQ(calls.outstanding(), 0u);
  calls.run_deferred();
  ASSERT_TRUE(result);
  EXPECT_EQ(result->error->code(), ErrorCode::unavailable);
  EXPECT_STREQ(result->error->what(), "plugin 'mem' is not running");
  EXPECT_FALSE(calls.has_deferred());
}

TEST(PluginCalls, FailuresQueuedWhileRunningTheDeferredWaitForTheNextRound) {
  Wire wire;
  wire.down = {"mem"};
  PluginCalls calls(wire.send());
  int first = 0, second = 0;
  calls.call("mem", "m", json::object(), 1000, [&](CallResult) {
    ++first;
    calls.call("mem", "m", json::object(), 1000, [&](CallResult) { ++second; });
  });
  calls.run_deferred();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 0);
  calls.run_deferred();
  EXPECT_EQ(second, 1);
}

TEST(PluginCalls, ChunksGoToTheirHandlerAndAnErrorFromItCancelsTheCall) {
  Wire wire;
  PluginCalls calls(wire.send());
  int chunks = 0;
  std::optional<CallResult> result;
  std::uint64_t id = calls.call_stream(
      "mem", "download", json::object(), 1000,
      [&](Message&) -> std::optional<Error> {
        if (++chunks == 2) return Error(ErrorCode::internal, "sent a chunk out of order");
        return std::nullopt;
      },
      [&](CallResult r) { result = std::move(r); });
  ASSERT_NE(id, 0u);
  Message c1 = answer(MessageType::chunk, id, {{"offset", 0}});
  calls.on_answer("mem", c1);
  EXPECT_FALSE(result);
  Message c2 = answer(MessageType::chunk, id, {{"offset", 7}});
  calls.on_answer("mem", c2);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->error->code(), ErrorCode::internal);
  ASSERT_EQ(wire.sent.size(), 2u);
  EXPECT_EQ(wire.sent[1].type, MessageType::cancel);
  EXPECT_EQ(wire.sent[1].id, id);
}

TEST(PluginCalls, ChunksForACallWithoutAHandlerAreIgnored) {
  Wire wire;
  PluginCalls calls(wire.send());
  int done = 0;
  calls.call("mem", "metadata", json::object(), 1000, [&](CallResult) { ++done; });
  Message chunk = answer(MessageType::chunk, wire.sent[0].id, {{"offset", 0}});
  calls.on_answer("mem", chunk);
  EXPECT_EQ(done, 0);
  EXPECT_EQ(calls.outstanding(), 1u);
}

TEST(PluginCalls, ADeadlinePassedEndsTheCallWithTimeoutAndCancelsIt) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::optional<CallResult> result;
  auto before = Clock::now();
  calls.call("mem", "metadata", json::object(), 250, [&](CallResult r) { result = std::move(r); });
  auto deadline = calls.next_deadline();
  ASSERT_TRUE(deadline);
  EXPECT_GE(*deadline, before + 250ms);
  calls.expire(*deadline);  // at the deadline: not past it
  EXPECT_FALSE(result);
  calls.expire(*deadline + 1ms);
  ASSERT_TRUE(result);
  EXPECT_EQ(result->error->code(), ErrorCode::timeout);
  EXPECT_STREQ(result->error->what(), "plugin 'mem' did not answer within 250 ms");
  ASSERT_EQ(wire.sent.size(), 2u);
  EXPECT_EQ(wire.sent[1].type, MessageType::cancel);
  EXPECT_FALSE(calls.next_deadline());
}

TEST(PluginCalls, EachChunkMovesAStreamedCallsDeadline) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::uint64_t id = calls.call_stream("mem", "download", json::object(), 250,
                                       [](Message&) -> std::optional<Error> { return std::nullopt; }, [](CallResult) {});
  auto first = *calls.next_deadline();
  // Wait until the clock has moved (a condition, not a sleep of a guessed length).
  auto t0 = Clock::now();
  while (Clock::now() == t0) {
  }
  Message chunk = answer(MessageType::chunk, id, {{"offset", 0}});
  calls.on_answer("mem", chunk);
  EXPECT_GT(*calls.next_deadline(), first);
}

// An expired call whose completion ends another expired call (a pull failing its other
// files): the second is not ended twice, and nothing throws.
TEST(PluginCalls, ACompletionThatEndsAnotherExpiredCallIsSafe) {
  Wire wire;
  PluginCalls calls(wire.send());
  int a_done = 0, b_done = 0;
  std::uint64_t b = 0;
  calls.call_stream("mem", "download", json::object(), 100, nullptr, [&](CallResult) {
    ++a_done;
    calls.complete(b, {json(), Error(ErrorCode::unavailable, "another file of the pull failed")});
  });
  b = calls.call_stream("mem", "download", json::object(), 100, nullptr, [&](CallResult) { ++b_done; });
  EXPECT_NO_THROW(calls.expire(Clock::now() + 1s));
  EXPECT_EQ(a_done, 1);
  EXPECT_EQ(b_done, 1);
  EXPECT_EQ(calls.outstanding(), 0u);
}

TEST(PluginCalls, FailAllEndsOnlyTheCallsOfThatSource) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::vector<std::string> ended;
  calls.call("a", "m", json::object(), 1000, [&](CallResult r) { ended.push_back("a:" + message_of(r)); });
  calls.call("b", "m", json::object(), 1000, [&](CallResult) { ended.push_back("b"); });
  calls.call("a", "m", json::object(), 1000, [&](CallResult) { ended.push_back("a2"); });
  calls.fail_all("a", Error(ErrorCode::unavailable, "plugin 'a' exited (signal 9 (SIGKILL))"));
  ASSERT_EQ(ended.size(), 2u);
  EXPECT_EQ(ended[0], "a:plugin 'a' exited (signal 9 (SIGKILL))");
  EXPECT_EQ(ended[1], "a2");
  EXPECT_EQ(calls.outstanding(), 1u);
}

TEST(PluginCalls, CreditAndCancelNameTheCall) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::uint64_t id = calls.call_stream("mem", "download", json::object(), 1000, nullptr, [](CallResult) {});
  calls.credit(id, "mem", 3);
  calls.cancel(id);
  calls.cancel(id + 1);  // no such call: nothing sent
  ASSERT_EQ(wire.sent.size(), 3u);
  EXPECT_EQ(wire.sent[1].type, MessageType::credit);
  EXPECT_EQ(wire.sent[1].id, id);
  EXPECT_EQ(wire.sent[1].body["chunks"], 3);
  EXPECT_EQ(wire.sent[2].type, MessageType::cancel);
  EXPECT_EQ(calls.outstanding(), 1u) << "a cancel ends nothing by itself";
}

TEST(PluginCalls, IdsAreNeverReused) {
  Wire wire;
  PluginCalls calls(wire.send());
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(calls.call_stream("mem", "m", json::object(), 1000, nullptr, [](CallResult) {}));
    calls.complete(ids.back(), {json(), std::nullopt});
  }
  for (std::size_t i = 1; i < ids.size(); ++i) EXPECT_GT(ids[i], ids[i - 1]);
  EXPECT_NE(ids[0], 0u);
}

TEST(Timers, FireOnceWhenDueInTheOrderSet) {
  Timers timers;
  auto t0 = Clock::now();
  std::vector<int> fired;
  timers.at(t0 + 20ms, [&] { fired.push_back(2); });
  timers.at(t0 + 10ms, [&] { fired.push_back(1); });
  timers.at(t0 + 10ms, [&] { fired.push_back(3); });
  EXPECT_EQ(*timers.next(), t0 + 10ms);
  timers.fire_due(t0);
  EXPECT_TRUE(fired.empty());
  timers.fire_due(t0 + 10ms);
  EXPECT_EQ(fired, (std::vector<int>{1, 3}));
  timers.fire_due(t0 + 30ms);
  timers.fire_due(t0 + 30ms);
  EXPECT_EQ(fired, (std::vector<int>{1, 3, 2}));
  EXPECT_FALSE(timers.next());
  EXPECT_EQ(timers.size(), 0u);
}

TEST(Timers, ATimerSetByAnotherWaitsForTheNextRound) {
  Timers timers;
  auto t0 = Clock::now();
  int inner = 0;
  timers.at(t0, [&] { timers.at(t0, [&] { ++inner; }); });
  timers.fire_due(t0);
  EXPECT_EQ(inner, 0);
  EXPECT_EQ(timers.size(), 1u);
  timers.fire_due(t0);
  EXPECT_EQ(inner, 1);
}

}  // namespace
