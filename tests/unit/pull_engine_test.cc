// PullEngine (supervisor/src/pull_engine.h) driven for real against fakes: a SourceDirectory
// answering resolve() with a Resolution built here, the real PluginCalls with a send function
// that records every message the engine sends, recording ClientReplies and EventSink, the
// real Timers, and a ContentStore in a temporary directory. Plugins' answers go in through
// PluginCalls::on_answer; the disk threads are waited on by polling the engine's fds, as the
// daemon's loop does (supervisor/src/daemon.cc).
#include <gtest/gtest.h>

#include <poll.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/sha256.h"
#include "modelzoo/core/cache.h"
#include "fake_wire.h"
#include "pull_engine.h"

namespace {
namespace fs = std::filesystem;
using namespace modelzoo;
using namespace modelzoo::supervisor;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kPiece = 16 * 1024;  // bytes per chunk the fake plugins send

// Deterministic bytes, different per seed.
std::string bytes_of(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = 2166136261u ^ seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Blob {
  std::string name;
  std::string bytes;
};

bus::ModelMetadata model(const std::string& name, const std::string& version, const std::vector<Blob>& blobs) {
  bus::ModelMetadata md;
  md.name = name;
  md.version = version;
  md.format = "raw";
  for (const auto& b : blobs) md.files.emplace_back(b.name, b.bytes.size(), bus::Sha256::of(b.bytes));
  return md;
}

core::SourceAnswer has(const std::string& source, const bus::ModelMetadata& md) {
  core::SourceAnswer a;
  a.plugin.name = source;
  a.plugin.plugin = "fake-registry";
  a.plugin.version = "1.0.0";
  a.plugin.handles = {"*"};
  a.plugin.capabilities = {"metadata", "download"};
  a.metadata = md;
  return a;
}

using supervisor::fakes::Sent;
using supervisor::fakes::Wire;

class FakeSources : public SourceDirectory {
 public:
  core::Resolution resolution;  // answered to every resolve()
  int resolves = 0;
  std::vector<ExtensionView> exts;
  std::vector<std::string> restarted;

  void resolve(const bus::ModelRef& ref, std::uint32_t, std::function<void(core::Resolution)> done) override {
    ++resolves;
    core::Resolution r = resolution;
    r.ref = ref;
    done(std::move(r));
  }
  std::vector<fs::path> local_read(const std::string&) override { return {}; }
  std::vector<ExtensionView> extensions() override { return exts; }
  void restart_plugin(const std::string& name, const std::string&) override { restarted.push_back(name); }
};

class FakeReplies : public ClientReplies {
 public:
  struct Answer {
    ClientWaiter w;
    json body;
    std::optional<bus::Error> error;
  };
  std::vector<Answer> answers;
  std::vector<json> progress_seen;

  void reply(const ClientWaiter& w, json body) override { answers.push_back({w, std::move(body), std::nullopt}); }
  void error(const ClientWaiter& w, const bus::Error& e) override { answers.push_back({w, json(), e}); }
  void progress(const ClientWaiter&, const json& body) override { progress_seen.push_back(body); }
};

class RecordingEvents : public core::EventSink {
 public:
  std::vector<std::pair<std::string, json>> seen;
  void publish(const std::string& topic, json body) override { seen.emplace_back(topic, std::move(body)); }
  std::vector<json> of(const std::string& topic) const {
    std::vector<json> out;
    for (const auto& [t, b] : seen)
      if (t == topic) out.push_back(b);
    return out;
  }
};

class PullEngineTest : public ::testing::Test {
 protected:
  fs::path dir;
  DaemonConfig cfg;
  FakeSources sources;
  Wire wire;
  std::vector<Sent>& sent = wire.sent;
  PluginCalls calls{wire.send()};
  FakeReplies replies;
  Timers timers;
  RecordingEvents events;
  std::unique_ptr<PullEngine> engine;

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "pull_engine_test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir = tmpl;
    cfg.cache_dir = dir / "cache";
    cfg.request_timeout = 5000ms;
    cfg.download_stall_timeout = 5000ms;
    engine = std::make_unique<PullEngine>(cfg, sources, calls, replies, timers, events);
  }
  void TearDown() override {
    engine.reset();  // its disk threads finish first
    std::error_code ec;
    fs::remove_all(dir, ec);
  }

  // One round of the daemon's loop per iteration, until `cond` holds or `limit` passes.
  bool pump_until(const std::function<bool()>& cond, std::chrono::milliseconds limit = 1500ms) {
    auto deadline = Clock::now() + limit;
    while (!cond()) {
      auto now = Clock::now();
      if (now >= deadline) return false;
      auto wake = deadline;
      if (auto t = timers.next()) wake = std::min(wake, *t);
      if (auto d = calls.next_deadline()) wake = std::min(wake, *d);
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(wake - now) + 1ms;
      if (calls.has_deferred()) wait = 0ms;
      pollfd fds[2] = {{engine->disk_fd(), POLLIN, 0}, {engine->background_fd(), POLLIN, 0}};
      ::poll(fds, 2, static_cast<int>(std::clamp(wait, 0ms, 200ms).count()));
      if (fds[0].revents & POLLIN) engine->on_disk_writes();
      if (fds[1].revents & POLLIN) engine->on_background();
      now = Clock::now();
      timers.fire_due(now);
      calls.expire(now);
      calls.run_deferred();
    }
    return true;
  }

  std::vector<Sent> sent_of(MessageType type, const std::string& method = {}) const {
    std::vector<Sent> out;
    for (const auto& s : sent)
      if (s.type == type && (method.empty() || s.method == method)) out.push_back(s);
    return out;
  }
  std::vector<Sent> downloads() const { return sent_of(MessageType::request, "download"); }
  // The download request for `file` sent most recently.
  std::optional<Sent> download_of(const std::string& file) const {
    std::optional<Sent> out;
    for (const auto& s : downloads())
      if (s.body.value("file", "") == file) out = s;
    return out;
  }

  void chunk(const std::string& source, std::uint64_t id, std::uint64_t offset, std::string_view data) {
    Message m = Message::make(MessageType::chunk, {{"offset", offset}});
    m.id = id;
    m.data = zmq::message_t(data.data(), data.size());
    calls.on_answer(source, m);
  }
  // Sends bytes [from, to) of `bytes` in pieces of kPiece.
  void chunks(const std::string& source, std::uint64_t id, const std::string& bytes, std::size_t from, std::size_t to) {
    for (std::size_t off = from; off < to; off += kPiece)
      chunk(source, id, off, std::string_view(bytes).substr(off, std::min(kPiece, to - off)));
  }
  void end_ok(const std::string& source, std::uint64_t id) {
    Message m = Message::make_reply(id, json::object());
    calls.on_answer(source, m);
  }
  void end_error(const std::string& source, std::uint64_t id, ErrorCode code, const std::string& why) {
    Message m = Message::make_error(id, code, why);
    calls.on_answer(source, m);
  }
  // Chunks of call `id` granted so far by credit messages.
  std::uint64_t granted(std::uint64_t id) const {
    std::uint64_t n = 0;
    for (const auto& c : sent_of(MessageType::credit))
      if (c.id == id) n += c.body.value("chunks", 0u);
    return n;
  }
  // Answers the download of `b` from `source` whole, from the offset it asks for, within
  // the credit it was given (waiting for grants as a plugin would).
  void serve(const std::string& source, const Blob& b) {
    auto d = download_of(b.name);
    ASSERT_TRUE(d) << "no download request for " << b.name;
    ASSERT_EQ(d->source, source);
    std::uint64_t credit = d->body.value("credit", 0u), seen = granted(d->id);
    for (std::size_t off = d->body.at("offset").get<std::size_t>(); off < b.bytes.size(); off += kPiece) {
      if (credit == 0) {
        ASSERT_TRUE(pump_until([&] { return granted(d->id) > seen; })) << "no credit for " << b.name;
        credit += granted(d->id) - seen;
        seen = granted(d->id);
      }
      chunk(source, d->id, off, std::string_view(b.bytes).substr(off, std::min(kPiece, b.bytes.size() - off)));
      --credit;
    }
    end_ok(source, d->id);
  }
  bool answered(std::size_t n = 1) const { return replies.answers.size() >= n; }

  // Pulls `md` (files `blobs`) from `source` whole: a cache holding it afterwards.
  void pull_whole(const bus::ModelMetadata& md, const std::vector<Blob>& blobs, const std::string& source) {
    sources.resolution.sources = {has(source, md)};
    std::size_t before = replies.answers.size();
    engine->start({"c", 99}, {md.name, md.version}, false, false);
    for (const auto& b : blobs) serve(source, b);
    ASSERT_TRUE(pump_until([&] { return replies.answers.size() > before; }));
    ASSERT_FALSE(replies.answers.back().error) << replies.answers.back().error->what();
  }
};

TEST_F(PullEngineTest, PullFromOneSourceAnswersWithTheFilesVerifiedInTheCache) {
  std::vector<Blob> blobs = {{"weights.bin", bytes_of(5 * kPiece + 123, 1)}, {"config.json", R"({"layers": 2})"}};
  auto md = model("tiny", "1.0.0", blobs);
  sources.resolution.sources = {has("reg", md)};
  engine->start({"client-a", 7}, {"tiny", "1.0.0"}, false, false);

  // Both files are asked for at once, from the start, with credit.
  ASSERT_EQ(downloads().size(), 2u);
  for (const auto& d : downloads()) {
    EXPECT_EQ(d.source, "reg");
    EXPECT_EQ(d.body.value("name", ""), "tiny");
    EXPECT_EQ(d.body.value("version", ""), "1.0.0");
    EXPECT_EQ(d.body.value("offset", 99), 0);
    EXPECT_GT(d.body.value("credit", 0), 0);
  }
  // Each chunk written returns one chunk of credit to the plugin that sent it.
  auto d = download_of("weights.bin");
  ASSERT_TRUE(d);
  chunks("reg", d->id, blobs[0].bytes, 0, blobs[0].bytes.size());
  std::size_t sent_chunks = (blobs[0].bytes.size() + kPiece - 1) / kPiece;
  ASSERT_TRUE(pump_until([&] { return sent_of(MessageType::credit).size() == sent_chunks; }));
  for (const auto& c : sent_of(MessageType::credit)) {
    EXPECT_EQ(c.source, "reg");
    EXPECT_EQ(c.id, d->id);
    EXPECT_EQ(c.body.value("chunks", 0), 1);
  }
  end_ok("reg", d->id);
  serve("reg", blobs[1]);
  ASSERT_TRUE(pump_until([&] { return answered(); }));

  ASSERT_EQ(replies.answers.size(), 1u);
  const auto& a = replies.answers[0];
  ASSERT_FALSE(a.error) << a.error->what();
  EXPECT_EQ(a.w.routing_id, "client-a");
  EXPECT_EQ(a.w.id, 7u);
  EXPECT_EQ(a.body.value("name", ""), "tiny");
  EXPECT_EQ(a.body.value("version", ""), "1.0.0");
  EXPECT_EQ(a.body.value("source", ""), "reg");
  EXPECT_FALSE(a.body.value("cached", true));
  EXPECT_EQ(a.body.value("bytes_downloaded", 0u), blobs[0].bytes.size() + blobs[1].bytes.size());
  ASSERT_EQ(a.body.at("files").size(), 2u);
  for (std::size_t i = 0; i < blobs.size(); ++i) {
    const auto& f = a.body.at("files")[i];
    EXPECT_EQ(f.value("name", ""), blobs[i].name);
    EXPECT_EQ(f.value("sha256", ""), bus::Sha256::of(blobs[i].bytes));
    EXPECT_EQ(read_all(f.value("path", "")), blobs[i].bytes) << blobs[i].name;
  }
  core::ContentStore store(cfg.cache_dir);
  for (const auto& b : blobs) {
    ASSERT_TRUE(store.has_blob(bus::Sha256::of(b.bytes)));
    EXPECT_EQ(read_all(store.blob_path(bus::Sha256::of(b.bytes))), b.bytes);
  }
  EXPECT_TRUE(store.complete(md));
  auto manifest = store.read_manifest("tiny", "1.0.0");
  ASSERT_TRUE(manifest);
  EXPECT_EQ(manifest->files.size(), 2u);
  ASSERT_EQ(events.of(core::topic::kDownloadCompleted).size(), 1u);
  EXPECT_EQ(events.of(core::topic::kDownloadCompleted)[0].value("plugin", ""), "reg");
  EXPECT_EQ(calls.outstanding(), 0u);
}

TEST_F(PullEngineTest, WrongSha256FailsThePullNamingTheFileAndCommitsNothing) {
  Blob real{"weights.bin", bytes_of(3 * kPiece, 2)};
  auto md = model("tiny", "1.0.0", {{"weights.bin", bytes_of(3 * kPiece, 3)}});  // same size, other bytes
  sources.resolution.sources = {has("reg", md)};
  engine->start({"c", 1}, {"tiny", "1.0.0"}, false, false);
  serve("reg", real);
  ASSERT_TRUE(pump_until([&] { return answered(); }));

  ASSERT_EQ(replies.answers.size(), 1u);
  ASSERT_TRUE(replies.answers[0].error);
  std::string msg = replies.answers[0].error->what();
  EXPECT_NE(msg.find("weights.bin"), std::string::npos) << msg;
  EXPECT_NE(msg.find("sha256"), std::string::npos) << msg;
  core::ContentStore store(cfg.cache_dir);
  EXPECT_FALSE(store.has_blob(md.files[0].sha256));
  EXPECT_FALSE(store.has_blob(bus::Sha256::of(real.bytes)));
  EXPECT_FALSE(store.read_manifest("tiny", "1.0.0"));
  EXPECT_FALSE(fs::exists(store.view_dir("tiny", "1.0.0")));
  EXPECT_EQ(events.of(core::topic::kDownloadFailed).size(), 1u);
  EXPECT_TRUE(events.of(core::topic::kDownloadCompleted).empty());
}

TEST_F(PullEngineTest, SourceFailingMidFileHandsOverToTheNextAtTheOffsetReceived) {
  Blob b{"weights.bin", bytes_of(6 * kPiece + 5, 4)};
  auto md = model("tiny", "1.0.0", {b});
  sources.resolution.sources = {has("first", md), has("second", md)};
  engine->start({"c", 1}, {"tiny", "1.0.0"}, false, false);

  auto d1 = download_of(b.name);
  ASSERT_TRUE(d1);
  EXPECT_EQ(d1->source, "first");
  chunks("first", d1->id, b.bytes, 0, 3 * kPiece);
  end_error("first", d1->id, ErrorCode::unavailable, "connection reset");
  ASSERT_TRUE(pump_until([&] { return downloads().size() == 2; }));

  auto d2 = download_of(b.name);
  EXPECT_EQ(d2->source, "second");
  EXPECT_EQ(d2->body.value("offset", 0u), 3 * kPiece);
  serve("second", b);
  ASSERT_TRUE(pump_until([&] { return answered(); }));
  ASSERT_FALSE(replies.answers[0].error) << replies.answers[0].error->what();
  EXPECT_EQ(replies.answers[0].body.value("source", ""), "second");
  EXPECT_EQ(read_all(replies.answers[0].body.at("files")[0].value("path", "")), b.bytes);
  auto completed = events.of(core::topic::kDownloadCompleted);
  ASSERT_EQ(completed.size(), 1u);
  EXPECT_EQ(completed[0].value("failovers", 0), 1);
  EXPECT_EQ(downloads().size(), 2u);
}

// A chunk the engine must refuse: the call is cancelled at the plugin that sent it, and the
// file goes on from the next source at the bytes accepted before it.
class RefusedChunk : public PullEngineTest {
 protected:
  void expect_refused_then_failover(const std::function<void(std::uint64_t id, const Blob& b)>& misbehave,
                                    std::uint64_t accepted, std::size_t size = 4 * kPiece) {
    Blob b{"weights.bin", bytes_of(size, 5)};
    auto md = model("tiny", "1.0.0", {b});
    sources.resolution.sources = {has("bad", md), has("good", md)};
    engine->start({"c", 1}, {"tiny", "1.0.0"}, false, false);
    auto d1 = download_of(b.name);
    ASSERT_TRUE(d1);
    ASSERT_EQ(d1->source, "bad");
    misbehave(d1->id, b);

    auto cancels = sent_of(MessageType::cancel);
    ASSERT_EQ(cancels.size(), 1u);
    EXPECT_EQ(cancels[0].source, "bad");
    EXPECT_EQ(cancels[0].id, d1->id);
    ASSERT_TRUE(pump_until([&] { return downloads().size() == 2; }));
    auto d2 = download_of(b.name);
    EXPECT_EQ(d2->source, "good");
    EXPECT_EQ(d2->body.value("offset", 99u), accepted);
    // The refused call is over: more from it is dropped.
    chunk("bad", d1->id, accepted, std::string_view(b.bytes).substr(accepted, kPiece));
    serve("good", b);
    ASSERT_TRUE(pump_until([&] { return answered(); }));
    ASSERT_FALSE(replies.answers[0].error) << replies.answers[0].error->what();
    EXPECT_EQ(read_all(replies.answers[0].body.at("files")[0].value("path", "")), b.bytes);
    auto completed = events.of(core::topic::kDownloadCompleted);
    ASSERT_EQ(completed.size(), 1u);
    EXPECT_EQ(completed[0].value("failovers", 0), 1);
  }
};

TEST_F(RefusedChunk, OutOfOrder) {
  expect_refused_then_failover(
      [&](std::uint64_t id, const Blob& b) {
        chunk("bad", id, 0, std::string_view(b.bytes).substr(0, kPiece));
        chunk("bad", id, 2 * kPiece, std::string_view(b.bytes).substr(2 * kPiece, kPiece));  // skips one
      },
      kPiece);
}

TEST_F(RefusedChunk, Oversized) {
  expect_refused_then_failover(
      [&](std::uint64_t id, const Blob& b) { chunk("bad", id, 0, std::string_view(b.bytes).substr(0, (1u << 20) + 1)); },
      0, 2u << 20);  // the file is larger than the chunk: only the chunk limit refuses it
}

TEST_F(RefusedChunk, Empty) {
  expect_refused_then_failover([&](std::uint64_t id, const Blob&) { chunk("bad", id, 0, ""); }, 0);
}

TEST_F(RefusedChunk, PastTheDeclaredSize) {
  expect_refused_then_failover(
      [&](std::uint64_t id, const Blob& b) {
        chunks("bad", id, b.bytes, 0, 3 * kPiece);
        chunk("bad", id, 3 * kPiece, std::string(kPiece + 1, 'x'));  // one byte more than the file has
      },
      3 * kPiece);
}

// Credit is enforced: 17 chunks arrive with credit 16 and none written yet; the 17th is
// refused. (The engine once gave credit back inside the chunk handler as well as after the
// disk write, so the window never closed and a plugin could send without limit.)
TEST_F(RefusedChunk, WithoutCredit) {
  std::uint64_t credit = 0;
  expect_refused_then_failover(
      [&](std::uint64_t id, const Blob& b) {
        credit = download_of(b.name)->body.value("credit", 0u);
        ASSERT_GT(credit, 0u);
        // No disk write is taken meanwhile (on_disk_writes is not called): no credit returns.
        for (std::uint64_t i = 0; i <= credit; ++i)
          chunk("bad", id, i * 1024, std::string_view(b.bytes).substr(i * 1024, 1024));
      },
      16 * 1024);
}

TEST_F(PullEngineTest, ASourceThatCannotBeReachedFailsOverWithoutBlockingTheLoop) {
  Blob b{"weights.bin", bytes_of(2 * kPiece, 9)};
  auto md = model("tiny", "1.0.0", {b});
  sources.resolution.sources = {has("gone", md), has("reg", md)};
  wire.down = {"gone"};
  engine->start({"c", 1}, {"tiny", "1.0.0"}, false, false);
  // The send failed: the failure waits for the loop (run_deferred), then the next source.
  ASSERT_TRUE(pump_until([&] { return download_of(b.name) && download_of(b.name)->source == "reg"; }));
  serve("reg", b);
  ASSERT_TRUE(pump_until([&] { return answered(); }));
  ASSERT_FALSE(replies.answers[0].error) << replies.answers[0].error->what();
  EXPECT_EQ(replies.answers[0].body.value("source", ""), "reg");
  EXPECT_EQ(downloads().size(), 1u);
  ASSERT_EQ(wire.refused.size(), 1u) << "the first source was never tried";
  EXPECT_EQ(wire.refused[0].source, "gone");
  EXPECT_EQ(wire.refused[0].method, "download");
}

TEST_F(PullEngineTest, TwoRequestsForOneModelShareOneTransferAndBothAreAnswered) {
  Blob b{"weights.bin", bytes_of(2 * kPiece, 7)};
  auto md = model("tiny", "1.0.0", {b});
  sources.resolution.sources = {has("reg", md)};
  engine->start({"a", 1}, {"tiny", "1.0.0"}, false, false);
  engine->start({"b", 2}, {"tiny", "1.0.0"}, false, false);
  EXPECT_EQ(sources.resolves, 1);
  ASSERT_EQ(downloads().size(), 1u);
  serve("reg", b);
  ASSERT_TRUE(pump_until([&] { return answered(2); }));
  ASSERT_EQ(replies.answers.size(), 2u);
  std::vector<std::string> who;
  for (const auto& a : replies.answers) {
    ASSERT_FALSE(a.error) << a.error->what();
    EXPECT_EQ(read_all(a.body.at("files")[0].value("path", "")), b.bytes);
    who.push_back(a.w.routing_id + "/" + std::to_string(a.w.id));
  }
  std::sort(who.begin(), who.end());
  EXPECT_EQ(who, (std::vector<std::string>{"a/1", "b/2"}));
  EXPECT_EQ(downloads().size(), 1u);
  EXPECT_EQ(events.of(core::topic::kDownloadStarted).size(), 1u);
}

TEST_F(PullEngineTest, OfflineWithAnEmptyCacheAnswersUnavailableWithoutCallingAnyPlugin) {
  sources.resolution.sources = {has("reg", model("tiny", "1.0.0", {{"w.bin", "abc"}}))};
  engine->start({"c", 1}, {"tiny", "1.0.0"}, false, true);
  ASSERT_TRUE(pump_until([&] { return answered(); }));
  ASSERT_TRUE(replies.answers[0].error);
  EXPECT_EQ(replies.answers[0].error->code(), ErrorCode::unavailable);
  EXPECT_NE(std::string(replies.answers[0].error->what()).find("tiny:1.0.0"), std::string::npos);
  EXPECT_EQ(sources.resolves, 0);
  EXPECT_TRUE(sent.empty());
  EXPECT_EQ(calls.outstanding(), 0u);
}

TEST_F(PullEngineTest, OfflineByConfigurationAsksNoPluginEither) {
  cfg.offline = true;  // the engine holds a reference to cfg
  sources.resolution.sources = {has("reg", model("tiny", "1.0.0", {{"w.bin", "abc"}}))};
  engine->start({"c", 1}, {"tiny", ""}, false, false);
  ASSERT_TRUE(pump_until([&] { return answered(); }));
  ASSERT_TRUE(replies.answers[0].error);
  EXPECT_EQ(replies.answers[0].error->code(), ErrorCode::unavailable);
  EXPECT_EQ(sources.resolves, 0);
  EXPECT_TRUE(sent.empty());
}

TEST_F(PullEngineTest, AnAlreadyCachedModelIsAnsweredWithoutADownload) {
  std::vector<Blob> blobs = {{"weights.bin", bytes_of(2 * kPiece + 1, 8)}};
  auto md = model("tiny", "1.0.0", blobs);
  pull_whole(md, blobs, "reg");
  std::size_t downloads_before = downloads().size();

  engine->start({"again", 2}, {"tiny", "1.0.0"}, false, false);
  ASSERT_TRUE(pump_until([&] { return answered(2); }));
  const auto& a = replies.answers[1];
  ASSERT_FALSE(a.error) << a.error->what();
  EXPECT_TRUE(a.body.value("cached", false));
  EXPECT_EQ(a.body.value("bytes_downloaded", 99u), 0u);
  EXPECT_EQ(read_all(a.body.at("files")[0].value("path", "")), blobs[0].bytes);
  EXPECT_EQ(downloads().size(), downloads_before);

  // Offline, the cache alone answers it, and no source is asked.
  int resolves = sources.resolves;
  engine->start({"offline", 3}, {"tiny", ""}, false, true);
  ASSERT_TRUE(pump_until([&] { return answered(3); }));
  ASSERT_FALSE(replies.answers[2].error) << replies.answers[2].error->what();
  EXPECT_EQ(replies.answers[2].body.value("version", ""), "1.0.0");
  EXPECT_TRUE(replies.answers[2].body.value("cached", false));
  EXPECT_EQ(sources.resolves, resolves);
  EXPECT_EQ(downloads().size(), downloads_before);
}

TEST_F(PullEngineTest, NoSourceHavingTheModelAnswersWithTheResolutionsError) {
  core::SourceAnswer missing = has("reg", model("tiny", "1.0.0", {}));
  missing.metadata.reset();
  missing.error = bus::Error(ErrorCode::not_found, "no model 'tiny'");
  sources.resolution.sources = {missing};
  engine->start({"c", 1}, {"tiny", "1.0.0"}, false, false);
  ASSERT_TRUE(pump_until([&] { return answered(); }));
  ASSERT_TRUE(replies.answers[0].error);
  EXPECT_EQ(replies.answers[0].error->code(), ErrorCode::not_found);
  EXPECT_TRUE(downloads().empty());
}

}  // namespace
