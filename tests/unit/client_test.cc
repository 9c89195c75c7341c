// modelzoo::Client (client/) against a fake daemon's client socket (a ROUTER on ipc in a
// temporary directory, served on a thread of its own): replies, typed errors, progress,
// late answers, timeouts, invalid messages, and a daemon that is absent, stale or dies.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "modelzoo/bus/socket.h"
#include "modelzoo/client.h"

namespace modelzoo {
namespace {
namespace fs = std::filesystem;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using testing::HasSubstr;
using std::chrono::milliseconds;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = "/tmp/client-test-XXXXXX";
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

// The daemon's end. `handle` runs on the server's thread for every request; it answers
// through the Server it is given. Invalid messages from the client are counted.
class Server {
 public:
  using Handler = std::function<void(Server&, const std::string& peer, const Message& request)>;
  Server(const fs::path& dir, Handler handle) : handle_(std::move(handle)) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.bind("ipc://" + (dir / "client.sock").string());
    thread_ = std::thread([this] { loop(); });
  }
  ~Server() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  // From the handler only (the server's thread).
  void send(const std::string& peer, Message m) { bus::send_to(sock_, peer, m); }
  void send_raw(const std::string& peer, const std::string& frame) {
    sock_.send(zmq::buffer(peer), zmq::send_flags::sndmore);
    sock_.send(zmq::buffer(frame), zmq::send_flags::none);
  }
  // Closes the socket (its file goes with it) and ends the thread: a daemon that died.
  void die() { dying_ = true; }

 private:
  void loop() {
    while (!stop_ && !dying_) {
      auto r = bus::receive_for(sock_, true, milliseconds(20));
      if (r && r->message.type == MessageType::request) handle_(*this, r->routing_id, r->message);
    }
    if (dying_) sock_.close();
  }
  Handler handle_;
  zmq::context_t ctx_{1};
  zmq::socket_t sock_{ctx_, zmq::socket_type::router};
  std::atomic<bool> stop_{false}, dying_{false};
  std::thread thread_;
};

Message error(std::uint64_t id, ErrorCode code, const std::string& text) { return Message::make_error(id, code, text); }

TEST(ClientConnect, NoDaemonIsToldAtOnce) {
  TempDir dir;
  try {
    Client c(dir.path.string());
    FAIL() << "connected to nothing";
  } catch (const DaemonUnavailable& e) {
    EXPECT_THAT(e.what(), HasSubstr("daemon not running (no socket at " + (dir.path / "client.sock").string()));
  }
}

TEST(ClientConnect, AStaleSocketIsToldAsSuch) {
  TempDir dir;
  // A socket file nobody listens on any more (a daemon killed with -9).
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = (dir.path / "client.sock").string();
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  EXPECT_THROW(
      {
        try {
          Client c(dir.path.string());
        } catch (const DaemonUnavailable& e) {
          EXPECT_THAT(e.what(), HasSubstr("stale socket"));
          throw;
        }
      },
      DaemonUnavailable);
}

TEST(ClientConnect, ARuntimeDirTooLongForASocketIsRefused) {
  std::string dir = "/tmp/" + std::string(120, 'd');
  try {
    Client c(dir);
    FAIL();
  } catch (const DaemonUnavailable& e) {
    EXPECT_THAT(e.what(), HasSubstr("too long for a unix socket"));
  }
}

TEST(ClientCall, ReturnsTheReplyAndPassesProgressOn) {
  TempDir dir;
  Server server(dir.path, [](Server& s, const std::string& peer, const Message& m) {
    EXPECT_EQ(m.method, "pull");
    EXPECT_EQ(m.body["model"], "a/b:1.0.0");
    EXPECT_GT(m.timeout_ms, 0u);
    for (int i = 1; i <= 3; ++i) {
      auto p = Message::make(MessageType::progress, {{"done", i}});
      p.id = m.id;
      s.send(peer, std::move(p));
    }
    s.send(peer, Message::make_reply(m.id, {{"ok", true}}));
  });
  Client c(dir.path.string());
  std::vector<int> seen;
  json r = c.pull("a/b:1.0.0", [&](const json& p) { seen.push_back(p["done"].get<int>()); });
  EXPECT_EQ(r, json({{"ok", true}}));
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
}

TEST(ClientCall, LateAnswersToEarlierCallsAreIgnored) {
  TempDir dir;
  Server server(dir.path, [](Server& s, const std::string& peer, const Message& m) {
    if (m.method == "slow") return;  // never answered in time
    s.send(peer, Message::make_reply(m.id - 1, {{"late", true}}));  // the earlier call's answer, now
    auto p = Message::make(MessageType::progress, {{"for", "old"}});
    p.id = m.id - 1;
    s.send(peer, std::move(p));
    s.send(peer, Message::make_reply(m.id, {{"method", m.method}}));
  });
  Client c(dir.path.string());
  EXPECT_THROW(c.call("slow", json::object(), milliseconds(100)), bus::Error);
  bool progress = false;
  EXPECT_EQ(c.call("status", json::object(), milliseconds(5000), [&](const json&) { progress = true; }),
            json({{"method", "status"}}));
  EXPECT_FALSE(progress) << "progress of another call was passed on";
}

TEST(ClientCall, TypedErrorsAndProtocolErrorsAreThrownWithTheirCode) {
  TempDir dir;
  Server server(dir.path, [](Server& s, const std::string& peer, const Message& m) {
    if (m.method == "show") s.send(peer, error(m.id, ErrorCode::not_found, "no model 'x'"));
    else s.send(peer, error(0, ErrorCode::bad_request, "invalid message: frames"));  // id 0: about no call
  });
  Client c(dir.path.string());
  try {
    c.show("x");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_STREQ(e.what(), "no model 'x'");
  }
  try {
    c.status();
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request);
    EXPECT_THAT(e.what(), HasSubstr("invalid message"));
  }
}

TEST(ClientCall, NoAnswerIsATimeoutNamingTheMethod) {
  TempDir dir;
  Server server(dir.path, [](Server&, const std::string&, const Message&) {});
  Client c(dir.path.string());
  try {
    c.call("models", json::object(), milliseconds(150));
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::timeout);
    EXPECT_STREQ(e.what(), "no answer from the daemon to 'models' within 150 ms");
  }
}

TEST(ClientCall, AnInvalidMessageFromTheDaemonIsAnInternalError) {
  TempDir dir;
  Server server(dir.path, [](Server& s, const std::string& peer, const Message&) { s.send_raw(peer, "\xc1garbage"); });
  Client c(dir.path.string());
  try {
    c.status();
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::internal);
    EXPECT_THAT(e.what(), HasSubstr("invalid message from the daemon"));
  }
}

TEST(ClientCall, ADaemonThatDiesDuringACallIsToldAtOnce) {
  TempDir dir;
  Server server(dir.path, [](Server& s, const std::string&, const Message&) { s.die(); });
  Client c(dir.path.string());
  try {
    c.call("pull", {{"model", "a/b"}}, std::chrono::seconds(60));
    FAIL();
  } catch (const DaemonUnavailable& e) {
    // Either the dropped connection or the socket file that is gone tells it (not the
    // call's timeout, which would be a bus::Error).
    EXPECT_THAT(e.what(), testing::AnyOf(HasSubstr("lost the connection to the daemon"), HasSubstr("daemon not running")));
  }
}

TEST(ClientCall, ACallAfterTheDaemonRestartedGoesToTheNewOne) {
  TempDir dir;
  auto answer = [](const char* who) {
    return [who](Server& s, const std::string& peer, const Message& m) {
      s.send(peer, Message::make_reply(m.id, {{"daemon", who}}));
    };
  };
  auto first = std::make_unique<Server>(dir.path, answer("first"));
  Client c(dir.path.string());
  EXPECT_EQ(c.status()["daemon"], "first");
  first.reset();  // the daemon stops...
  Server second(dir.path, answer("second"));  // ...and another takes its place
  json r;
  // The client's socket reconnects by itself; a call that raced the restart may be lost
  // with the old connection (DaemonUnavailable), never answered by the wrong daemon.
  for (int i = 0; i < 50 && r.is_null(); ++i) {
    try {
      r = c.call("status", json::object(), milliseconds(2000));
    } catch (const DaemonUnavailable&) {
    } catch (const bus::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::timeout) << e.what();
    }
  }
  EXPECT_EQ(r["daemon"], "second");
}

}  // namespace
}  // namespace modelzoo
