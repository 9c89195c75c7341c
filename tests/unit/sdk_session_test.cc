// The C++ SDK's session (plugin-sdk/src/plugin.cc: hello, welcome, heartbeats, requests,
// downloads, goodbye) driven by sdk::run over a real DEALER/ROUTER pair, against a fake
// daemon written here: what it sends, what it answers, and how it ends when the daemon
// rejects it, goes silent, sends garbage, or its configuration is refused.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>

#include <condition_variable>
#include <mutex>
#include <chrono>
#include <filesystem>
#include <functional>
#include <thread>

#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/bus/socket.h"
#include "modelzoo/extension.h"
#include "modelzoo/plugin.h"

namespace modelzoo {
namespace {
namespace fs = std::filesystem;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kFileSize = 10000;

class TestRegistry : public sdk::Registry {
 public:
  json config;
  void configure(const json& c) override {
    config = c;
    if (c.contains("refuse")) throw std::runtime_error("refused setting");
  }
  bus::ModelMetadata metadata(const std::string& name, const std::string& version) override {
    if (name != "t/model" || (!version.empty() && version != "1.0.0"))
      throw sdk::Error(ErrorCode::not_found, "no model '" + name + "'");
    bus::ModelMetadata m;
    m.name = name;
    m.version = "1.0.0";
    m.files.emplace_back("w.bin", kFileSize, bus::Sha256::of(std::string(kFileSize, 'w')));
    return m;
  }
  std::vector<bus::ModelSummary> list() override { return {{"t/model", {"1.0.0"}, ""}}; }
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override {
    std::string data(kFileSize - req.offset, 'w');
    sink.write(data.data(), data.size());
  }
};

class TestExtension : public sdk::Extension {
 public:
  sdk::HookResult hook(const sdk::HookRequest& r) override {
    for (const auto& f : r.files)
      if (f.format == "gguf") return sdk::HookResult::reject(f.name + " is not allowed");
    return sdk::HookResult::proceed("saw " + std::to_string(r.files.size()));
  }
};

// The daemon's end: a ROUTER on an ipc endpoint in a temporary directory.
class FakeDaemon {
 public:
  FakeDaemon() {
    std::string t = "/tmp/sdk-test-XXXXXX";
    dir_ = ::mkdtemp(t.data());
    endpoint_ = "ipc://" + (dir_ / "plugins.sock").string();
    bus::configure_socket(sock_);
    sock_.bind(endpoint_);
    ::setenv("MODELZOO_ENDPOINT", endpoint_.c_str(), 1);
    ::setenv("MODELZOO_PLUGIN_ID", "t.1", 1);
    ::setenv("MODELZOO_TOKEN", "secret", 1);
  }
  ~FakeDaemon() { fs::remove_all(dir_); }

  // The next message that `want` accepts within `timeout` (others are dropped).
  std::optional<Message> next(std::function<bool(const Message&)> want, milliseconds timeout = milliseconds(10000)) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      auto r = bus::receive_for(sock_, true, milliseconds(50));
      if (!r) continue;
      peer_ = r->routing_id;
      if (!want || want(r->message)) return std::move(r->message);
    }
    return std::nullopt;
  }
  std::optional<Message> next_not_heartbeat(milliseconds timeout = milliseconds(10000)) {
    return next([](const Message& m) { return m.type != MessageType::heartbeat; }, timeout);
  }
  std::optional<Message> answer_to(std::uint64_t id) {
    return next([id](const Message& m) {
      return m.id == id && (m.type == MessageType::reply || m.type == MessageType::error);
    });
  }

  void send(Message m) { bus::send_to(sock_, peer_, m); }
  void send_raw(const std::string& frame) {
    sock_.send(zmq::buffer(peer_), zmq::send_flags::sndmore);
    sock_.send(zmq::buffer(frame), zmq::send_flags::none);
  }
  void welcome(int protocol = bus::kProtocolVersion, int heartbeat_ms = 50, int liveness = 20, json config = json::object()) {
    send(Message::make(MessageType::welcome, {{"protocol", protocol}, {"plugin_id", "t.1"}, {"heartbeat_ms", heartbeat_ms},
                                              {"heartbeat_liveness", liveness}, {"config", config}}));
  }
  json call(std::uint64_t id, const std::string& method, json body, bool* is_error = nullptr) {
    auto req = Message::make_request(id, method, std::move(body), 5000);
    send(std::move(req));
    auto a = answer_to(id);
    EXPECT_TRUE(a) << "no answer to " << method;
    if (!a) return nullptr;
    if (is_error) *is_error = a->type == MessageType::error;
    if (a->type == MessageType::error)
      return {{"code", bus::to_string(*a->error_code)}, {"message", a->error_message}};
    return a->body;
  }
  void close() { sock_.close(); }

 private:
  fs::path dir_;
  std::string endpoint_;
  zmq::context_t ctx_{1};
  zmq::socket_t sock_{ctx_, zmq::socket_type::router};
  std::string peer_;
};

// sdk::run on a thread of its own.
class PluginThread {
 public:
  template <typename F>
  explicit PluginThread(F run) : thread_([this, run] {
      int code = run();
      std::lock_guard lk(mu_);
      code_ = code;
      cv_.notify_all();
    }) {}
  ~PluginThread() {
    if (thread_.joinable()) thread_.join();
  }
  // The exit code, once run() returned within `timeout`; nullopt if it did not.
  std::optional<int> wait(milliseconds timeout = milliseconds(10000)) {
    std::unique_lock lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return code_.has_value(); })) return std::nullopt;
    lk.unlock();
    thread_.join();
    return code_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<int> code_;
  std::thread thread_;
};

class SdkSession : public testing::Test {
 protected:
  FakeDaemon daemon;
  TestRegistry registry;
  std::unique_ptr<PluginThread> plugin;

  // Starts the registry plugin and returns its hello.
  Message start(sdk::PluginInfo info = {"test-registry", "1.2.3", 7, {"t/*"}, false}) {
    plugin = std::make_unique<PluginThread>([this, info] { return sdk::run(registry, info, 0, nullptr); });
    auto hello = daemon.next(nullptr);
    EXPECT_TRUE(hello);
    if (!hello) return Message{};
    return std::move(*hello);
  }
  void TearDown() override {
    if (plugin) {  // before the welcome a reject ends it, after it a goodbye
      auto r = Message::make(MessageType::reject);
      r.error_code = ErrorCode::bad_request;
      r.error_message = "test over";
      daemon.send(std::move(r));
      daemon.send(Message::make(MessageType::goodbye, {{"reason", "test over"}}));
      (void)plugin->wait();
    }
  }
};

TEST_F(SdkSession, TheHelloFollowsTheRulesAndSaysWhoThePluginIs) {
  Message hello = start();
  ASSERT_EQ(hello.type, MessageType::hello);
  bus::Hello h;
  ASSERT_EQ(bus::parse_hello(hello.body, h, {"registry", true}), std::nullopt) << hello.body.dump();
  EXPECT_EQ(h.plugin_id, "t.1");
  EXPECT_EQ(h.token, "secret");
  EXPECT_EQ(h.name, "test-registry");
  EXPECT_EQ(h.version, "1.2.3");
  EXPECT_EQ(h.priority, 7);
  EXPECT_EQ(h.handles, std::vector<std::string>{"t/*"});
  EXPECT_EQ(h.pid, static_cast<std::int64_t>(::getpid()));
  EXPECT_EQ(h.capabilities, (std::vector<std::string>{"metadata", "exists", "list", "download"}));
  EXPECT_FALSE(hello.body.contains("points"));
}

TEST_F(SdkSession, AfterTheWelcomeItBeatsAndAnswersRequests) {
  start();
  daemon.welcome(bus::kProtocolVersion, 50, 20, {{"root", "/x"}});
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(daemon.next([](const Message& m) { return m.type == MessageType::heartbeat; })) << "heartbeat " << i;
  json md = daemon.call(1, "metadata", {{"name", "t/model"}});
  EXPECT_EQ(md["version"], "1.0.0");
  EXPECT_EQ(registry.config, json({{"root", "/x"}}));
  EXPECT_EQ(daemon.call(2, "exists", {{"name", "t/other"}}), json({{"exists", false}}));
  EXPECT_EQ(daemon.call(3, "list", json::object())["models"][0]["name"], "t/model");
  bool err = false;
  json e = daemon.call(4, "metadata", {{"name", "t/other"}}, &err);
  EXPECT_TRUE(err);
  EXPECT_EQ(e["code"], "not_found");
  e = daemon.call(5, "frobnicate", json::object(), &err);
  EXPECT_TRUE(err);
  EXPECT_EQ(e["code"], "bad_request");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("unknown method 'frobnicate'"));
  // Malformed parameters name the problem.
  e = daemon.call(6, "metadata", json::object(), &err);
  EXPECT_EQ(e["code"], "bad_request");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("'name'"));
  e = daemon.call(7, "metadata", {{"name", "../../etc/passwd"}}, &err);
  EXPECT_EQ(e["code"], "bad_request");
  e = daemon.call(8, "metadata", {{"name", "t/model"}, {"version", 3}}, &err);
  EXPECT_EQ(e["code"], "bad_request");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("'version' is not a string"));
}

TEST_F(SdkSession, ADownloadWaitsForCreditAndEndsWithItsSize) {
  start();
  daemon.welcome();
  auto req = Message::make_request(9, "download", {{"name", "t/model"}, {"version", "1.0.0"}, {"file", "w.bin"},
                                                   {"offset", 1000}, {"credit", 1}, {"chunk_size", 4096}}, 5000);
  daemon.send(std::move(req));
  auto chunk = [&] { return daemon.next([](const Message& m) { return m.id == 9 && m.type != MessageType::heartbeat; }); };
  auto c = chunk();
  ASSERT_TRUE(c);
  ASSERT_EQ(c->type, MessageType::chunk);
  EXPECT_EQ(c->data.size(), 4096u);
  EXPECT_EQ(c->body["offset"], 1000);
  // One credit, one chunk: nothing more comes until the next grant. A request answered
  // meanwhile comes back before any further chunk.
  daemon.send(Message::make_request(50, "exists", {{"name", "t/model"}}, 5000));
  auto between = daemon.next([](const Message& m) { return m.id == 9 || m.id == 50; });
  ASSERT_TRUE(between);
  EXPECT_EQ(between->id, 50u) << "a chunk was sent without credit";
  daemon.send([] {
    auto m = Message::make(MessageType::credit, {{"chunks", 5}});
    m.id = 9;
    return m;
  }());
  std::uint64_t received = c->data.size();
  while (true) {
    c = chunk();
    ASSERT_TRUE(c);
    if (c->type != MessageType::chunk) break;
    EXPECT_EQ(c->body["offset"], 1000 + received);
    received += c->data.size();
  }
  ASSERT_EQ(c->type, MessageType::reply) << c->error_message;
  EXPECT_EQ(c->body["size"], kFileSize - 1000);
  EXPECT_EQ(received, kFileSize - 1000);
  // A bad file name and an out-of-range chunk size are refused before anything is sent.
  bool err = false;
  json e = daemon.call(10, "download", {{"name", "t/model"}, {"version", "1.0.0"}, {"file", "/etc/passwd"}}, &err);
  EXPECT_EQ(e["code"], "bad_request");
  e = daemon.call(11, "download", {{"name", "t/model"}, {"version", "1.0.0"}, {"file", "w.bin"}, {"chunk_size", 1}}, &err);
  EXPECT_EQ(e["code"], "bad_request");
  EXPECT_THAT(e["message"].get<std::string>(), HasSubstr("'chunk_size' is out of range"));
}

TEST_F(SdkSession, GarbageFromTheDaemonIsDroppedAndTheSessionGoesOn) {
  start();
  daemon.welcome();
  daemon.send_raw("\xc1 not msgpack");
  daemon.send_raw(bus::to_msgpack(json{{"type", "request"}, {"id", "x"}}));  // a map, but no envelope
  daemon.send_raw(std::string(64, '\xff'));
  daemon.send(Message::make(MessageType::chunk, json::object()));  // valid, but not for a plugin: ignored
  EXPECT_EQ(daemon.call(12, "exists", {{"name", "t/model"}}), json({{"exists", true}}));
}

TEST_F(SdkSession, AGoodbyeEndsItCleanly) {
  start();
  daemon.welcome();
  daemon.send(Message::make(MessageType::goodbye, {{"reason", "daemon stopping"}}));
  auto bye = daemon.next([](const Message& m) { return m.type == MessageType::goodbye; });
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->body["reason"], "plugin stopping");
  EXPECT_EQ(plugin->wait(), 0);
  plugin.reset();
}

TEST_F(SdkSession, ARejectEndsItWithStatus3) {
  start();
  auto r = Message::make(MessageType::reject);
  r.error_code = ErrorCode::unauthorized;
  r.error_message = "wrong token";
  daemon.send(std::move(r));
  EXPECT_EQ(plugin->wait(), 3);
  plugin.reset();
}

TEST_F(SdkSession, AWelcomeWithAnotherProtocolEndsItWithStatus3) {
  start();
  daemon.welcome(2);
  EXPECT_EQ(plugin->wait(), 3);
  plugin.reset();
}

TEST_F(SdkSession, ADaemonThatDiesIsNoticedByItsSilence) {
  start();
  daemon.welcome(bus::kProtocolVersion, 20, 3);
  ASSERT_TRUE(daemon.next([](const Message& m) { return m.type == MessageType::heartbeat; }));
  daemon.close();  // no more heartbeats from the daemon: 3 x 20 ms of silence
  EXPECT_EQ(plugin->wait(), 4);
  plugin.reset();
}

TEST_F(SdkSession, ARefusedConfigurationEndsItWithStatus1AndSaysWhy) {
  start();
  daemon.welcome(bus::kProtocolVersion, 50, 20, {{"refuse", true}});
  auto bye = daemon.next([](const Message& m) { return m.type == MessageType::goodbye; });
  ASSERT_TRUE(bye);
  EXPECT_EQ(bye->body["reason"], "configuration rejected: refused setting");
  EXPECT_EQ(plugin->wait(), 1);
  plugin.reset();
}

TEST(SdkExtensionSession, TheHelloNamesThePointsAndHooksAreAnswered) {
  FakeDaemon daemon;
  TestExtension ext;
  sdk::ExtensionInfo info{"test-ext", "0.1.0", {sdk::kPostDownload, sdk::kPreLoad}, {"GGUF"}, -4, {"*"}};
  PluginThread plugin([&] { return sdk::run(ext, info, 0, nullptr); });
  auto hello = daemon.next(nullptr);
  ASSERT_TRUE(hello);
  bus::Hello h;
  ASSERT_EQ(bus::parse_hello(hello->body, h, {"extension", true}), std::nullopt) << hello->body.dump();
  EXPECT_EQ(h.points, (std::vector<std::string>{"post-download", "pre-load"}));
  EXPECT_EQ(h.formats, std::vector<std::string>{"gguf"});
  EXPECT_EQ(h.order, -4);
  EXPECT_EQ(h.capabilities, std::vector<std::string>{"hook"});
  EXPECT_FALSE(hello->body.contains("priority"));
  daemon.welcome();
  json files = {{{"name", "a/model.GGUF"}, {"size", 1}, {"path", "/nonexistent"}}};
  json r = daemon.call(1, "hook", {{"point", "post-download"}, {"name", "m/x"}, {"version", "1.0.0"}, {"files", files}});
  EXPECT_EQ(r["action"], "reject");
  EXPECT_EQ(r["reason"], "a/model.GGUF is not allowed");
  r = daemon.call(2, "hook", {{"point", "pre-download"}, {"name", "m/x"}});
  EXPECT_EQ(r["action"], "continue");
  EXPECT_EQ(r["message"], "saw 0");
  bool err = false;
  r = daemon.call(3, "hook", {{"point", "after-load"}, {"name", "m/x"}}, &err);
  EXPECT_TRUE(err);
  EXPECT_EQ(r["code"], "bad_request");
  EXPECT_EQ(r["message"], "unknown extension point 'after-load'");
  r = daemon.call(4, "metadata", {{"name", "m/x"}}, &err);
  EXPECT_EQ(r["code"], "bad_request");
  daemon.send(Message::make(MessageType::goodbye, {{"reason", "done"}}));
  EXPECT_EQ(plugin.wait(), 0);
}

TEST(SdkSessionStart, WithoutAnEndpointItExitsWithStatus2) {
  ::unsetenv("MODELZOO_ENDPOINT");
  TestRegistry r;
  EXPECT_EQ(sdk::run(r, {"x", "1.0.0"}, 0, nullptr), 2);
}

}  // namespace
}  // namespace modelzoo
