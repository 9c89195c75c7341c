// EventPublisher (supervisor/src/event_publisher.h) against real ZeroMQ subscribers on an ipc
// endpoint in a temporary directory: delivery by topic prefix, the event's fields, the
// _sync. answer, what stop() flushes, a full queue, garbage from a peer, a subscriber that dies.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include <zmq_addon.hpp>

#include "event_publisher.h"
#include "modelzoo/bus/message.h"

namespace modelzoo::supervisor {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Received {
  std::string topic;
  json body;
};

// Next two-frame event on `sub` within `timeout`, skipping nothing.
std::optional<Received> next(zmq::socket_t& sub, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  zmq::pollitem_t item{sub.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, timeout) <= 0) return std::nullopt;
  std::vector<zmq::message_t> frames;
  (void)zmq::recv_multipart(sub, std::back_inserter(frames));
  if (frames.size() != 2) return Received{std::to_string(frames.size()).append(" frames"), nullptr};
  return Received{frames[0].to_string(), bus::from_msgpack(frames[1].data(), frames[1].size())};
}

// "d.<i>", built with append: GCC 12 -O3 misreports `"lit" + std::string` (PR105651).
std::string topic_d(int i) { return std::string("d.").append(std::to_string(i)); }

class EventPublisherTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string t = "/tmp/evpub-XXXXXX";
    dir_ = ::mkdtemp(t.data());
    endpoint_ = "ipc://" + (dir_ / "events.sock").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A SUB to `prefixes`, returned once the publisher confirmed them (the _sync. handshake the
  // client library uses): events published afterwards reach it.
  zmq::socket_t subscriber(const std::vector<std::string>& prefixes, const std::string& sync = "_sync.test") {
    zmq::socket_t sub(ctx_, zmq::socket_type::sub);
    sub.set(zmq::sockopt::linger, 0);
    for (const auto& p : prefixes) sub.set(zmq::sockopt::subscribe, p);
    sub.set(zmq::sockopt::subscribe, sync);
    sub.connect(endpoint_);
    auto r = next(sub);
    EXPECT_TRUE(r) << "no answer to " << sync;
    if (r) {
      EXPECT_EQ(r->topic, sync);
      EXPECT_EQ(r->body["topic"], sync);
    }
    sub.set(zmq::sockopt::unsubscribe, sync);
    return sub;
  }

  zmq::context_t ctx_{1};
  fs::path dir_;
  std::string endpoint_;
};

TEST_F(EventPublisherTest, DeliversByTopicPrefixWithTopicTimeAndSource) {
  EventPublisher pub(ctx_, 1000);
  pub.socket().bind(endpoint_);
  pub.start();
  auto plugins = subscriber({"plugin."});
  auto all = subscriber({""}, "_sync.all");
  pub.publish("model.pulled", {{"model", "a"}});
  pub.publish("plugin.started", {{"plugin", "p"}, {"source", "elsewhere"}});
  pub.publish("plugin.exited", json::array({1, 2}));  // not a map: published as {}
  pub.publish("plugin.marker", json::object());  // in order after the rest: model.pulled came before it

  auto e = next(plugins);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->topic, "plugin.started");
  EXPECT_EQ(e->body["plugin"], "p");
  EXPECT_EQ(e->body["source"], "elsewhere");
  EXPECT_EQ(e->body["topic"], "plugin.started");
  ASSERT_TRUE(e->body["time"].is_string());
  EXPECT_EQ(e->body["time"].get<std::string>().size() >= 20, true) << e->body["time"];
  e = next(plugins);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->topic, "plugin.exited");
  EXPECT_EQ(e->body["source"], "modelzood");
  EXPECT_EQ(e->body.size(), 3u) << e->body;
  e = next(plugins);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->topic, "plugin.marker") << "model.pulled reached a plugin. subscriber";

  e = next(all);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->topic, "model.pulled");
  EXPECT_EQ(e->body["model"], "a");
  EXPECT_EQ(e->body["source"], "modelzood");
  EXPECT_GE(pub.subscriptions(), 4u);  // two prefixes and two sync topics (and their unsubscribes)
  EXPECT_EQ(pub.dropped(), 0u);
}

TEST_F(EventPublisherTest, StopPublishesWhatWasQueuedAndIsIdempotent) {
  EventPublisher pub(ctx_, 1000);
  pub.socket().bind(endpoint_);
  pub.start();
  auto sub = subscriber({"x."});
  for (int i = 0; i < 200; ++i) pub.publish("x.n", {{"i", i}});
  pub.stop();
  pub.stop();
  for (int i = 0; i < 200; ++i) {
    auto e = next(sub);
    ASSERT_TRUE(e) << "event " << i << " lost at stop()";
    EXPECT_EQ(e->body["i"], i);
  }
}

TEST_F(EventPublisherTest, AFullQueueDropsAndCountsWithoutBlocking) {
  EventPublisher pub(ctx_, 8);
  pub.socket().bind(endpoint_);
  // Not started yet: nothing drains the queue, and publish() must still return at once.
  for (int i = 0; i < 100; ++i) pub.publish("q.n", {{"i", i}});
  EXPECT_GT(pub.dropped(), 0u);
  EXPECT_LT(pub.dropped(), 100u);
  const auto kept = 100 - pub.dropped();
  zmq::socket_t sub(ctx_, zmq::socket_type::sub);
  sub.set(zmq::sockopt::linger, 0);
  sub.set(zmq::sockopt::subscribe, "");
  sub.connect(endpoint_);
  // Wait until the subscription is in: the publisher counts it once its thread runs.
  pub.start();
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (pub.subscriptions() == 0 && Clock::now() < deadline) (void)next(sub, std::chrono::milliseconds(10));
  ASSERT_GT(pub.subscriptions(), 0u);
  // What the queue kept goes out in order, the oldest first (missed by a subscription that
  // came later, as with any PUB); later events go out too. Just after a full queue drained,
  // the loop's side of it may not know yet that there is room, and may drop one more event
  // (the pipe's credit reaches the sending socket asynchronously): publish until one passes.
  const auto before = pub.dropped();
  std::optional<Received> e;
  int sent = 0;
  while (sent < 20 && !(e && e->topic == "q.after")) {
    pub.publish("q.after", {{"i", 1000 + sent++}});
    while ((e = next(sub, std::chrono::milliseconds(500))) && e->topic != "q.after") {
      EXPECT_EQ(e->topic, "q.n");
      EXPECT_LT(e->body["i"].get<int>(), static_cast<int>(kept)) << "an event beyond the queue's room was kept";
    }
  }
  ASSERT_TRUE(e) << "no event got through after the queue drained";
  EXPECT_EQ(e->topic, "q.after");
  EXPECT_EQ(pub.dropped() - before, static_cast<std::uint64_t>(sent - 1)) << "an event was neither dropped nor delivered";
}

TEST_F(EventPublisherTest, GarbageAndOversizedFramesFromAPeerDoNotStopIt) {
  EventPublisher pub(ctx_, 1000);
  pub.socket().bind(endpoint_);
  pub.start();
  zmq::socket_t rogue(ctx_, zmq::socket_type::xsub);
  rogue.set(zmq::sockopt::linger, 0);
  rogue.connect(endpoint_);
  std::string junk = "\x07not a subscription";
  rogue.send(zmq::buffer(junk), zmq::send_flags::none);
  rogue.send(zmq::buffer(std::string("\x01_sync.")), zmq::send_flags::none);  // no nonce: not answered
  rogue.send(zmq::message_t(), zmq::send_flags::none);                         // empty
  rogue.send(zmq::buffer(std::string(10000, '\x01')), zmq::send_flags::none);  // over maxmsgsize: dropped peer
  auto good = subscriber({"ok."});
  pub.publish("ok.1", json::object());
  auto e = next(good);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->topic, "ok.1");
}

TEST_F(EventPublisherTest, ASubscriberThatDiesDoesNotHoldUpTheOthers) {
  EventPublisher pub(ctx_, 1000);
  pub.socket().bind(endpoint_);
  pub.start();
  auto stays = subscriber({"d."});
  {
    auto dies = subscriber({"d."}, "_sync.dies");
    pub.publish("d.1", json::object());
    auto e = next(dies);
    ASSERT_TRUE(e);
    EXPECT_EQ(e->topic, "d.1");
  }  // closed with events still coming
  for (int i = 2; i < 50; ++i) pub.publish(topic_d(i), json::object());
  auto e = next(stays);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->topic, "d.1");
  for (int i = 2; i < 50; ++i) {
    e = next(stays);
    ASSERT_TRUE(e) << i;
    EXPECT_EQ(e->topic, topic_d(i));
  }
}

json unpack(const std::string& s) { return bus::from_msgpack(s.data(), s.size()); }

TEST(PackEvent, AddsTopicTimeAndDefaultSource) {
  json b = unpack(pack_event("t.x", {{"a", 1}}));
  EXPECT_EQ(b["a"], 1);
  EXPECT_EQ(b["topic"], "t.x");
  EXPECT_EQ(b["source"], "modelzood");
  EXPECT_TRUE(b["time"].is_string());
  b = unpack(pack_event("t.y", "scalar"));
  EXPECT_EQ(b.size(), 3u);
  b = unpack(pack_event("t.z", {{"topic", "forged"}, {"source", "p"}}));
  EXPECT_EQ(b["topic"], "t.z");
  EXPECT_EQ(b["source"], "p");
}

}  // namespace
}  // namespace modelzoo::supervisor
