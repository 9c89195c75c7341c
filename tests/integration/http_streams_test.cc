// Parallel ranged downloads of the SDK's HTTP client (ClientOptions::streams, piece_bytes)
// against a real HTTP server on loopback: a small server written here, one thread per
// connection, whose faults the tests choose (ignore ranges, cut a piece short, change the
// file between pieces, refuse a piece). The client is the one every HTTP-backed plugin runs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "modelzoo/http.h"
#include "modelzoo/plugin.h"

namespace {

using namespace std::chrono_literals;
using modelzoo::sdk::Error;
using modelzoo::sdk::ErrorCode;
namespace http = modelzoo::sdk::http;

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// What the server saw of one request.
struct Seen {
  std::uint64_t first = 0;
  std::optional<std::uint64_t> last;
  bool ranged = false;
  std::string head;  // the request line and headers
};

class FileServer {
 public:
  std::string body;
  std::string etag = "\"v1\"";
  bool ignore_ranges = false;
  // Called per request before it is answered: may change the answer (status, ETag) or cut
  // it short (bytes to send before closing). Runs on the connection's thread, under no lock.
  std::function<void(const Seen&, int& status, std::size_t& cut, std::string& etag)> fault;
  // Requests past the first wait until this many are being answered at once (or 10 s).
  int rendezvous = 0;

  FileServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    EXPECT_EQ(::listen(fd_, 64), 0);
  }
  ~FileServer() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard lk(mu_);
    for (auto& t : conns_) t.join();
  }
  void start() {
    acceptor_ = std::thread([this] {
      while (!stopping_) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::lock_guard lk(mu_);
        conns_.emplace_back([this, c] { serve(c); });
      }
    });
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Seen> seen() {
    std::lock_guard lk(mu_);
    return seen_;
  }
  int max_concurrent() const { return max_concurrent_; }

 private:
  void serve(int c) {
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) {
        ::close(c);
        return;
      }
      req.append(buf, static_cast<std::size_t>(n));
    }
    Seen s;
    s.head = req.substr(0, req.find("\r\n\r\n"));
    if (auto r = req.find("\r\nRange: bytes="); r != std::string::npos) {
      s.ranged = true;
      unsigned long long a = 0, b = 0;
      int got = std::sscanf(req.c_str() + r + 15, "%llu-%llu", &a, &b);
      s.first = a;
      if (got == 2) s.last = b;
    }
    int now = ++active_;
    for (int m = max_concurrent_; now > m && !max_concurrent_.compare_exchange_weak(m, now);) {
    }
    {
      std::unique_lock lk(mu_);
      bool first_request = seen_.empty();
      seen_.push_back(s);
      cv_.notify_all();
      if (!first_request && rendezvous > 0)
        cv_.wait_for(lk, 10s, [&] { return active_ >= rendezvous || passed_; });
      if (active_ >= rendezvous) passed_ = true;
      cv_.notify_all();
    }
    int status = 200;
    std::size_t cut = std::string::npos;
    std::string tag = etag;
    if (fault) fault(s, status, cut, tag);
    std::string head;
    std::string_view part(body);
    if (status != 200) {
      std::string msg = "{\"error\":{\"code\":\"x\",\"message\":\"refused by the test\"}}";
      head = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\nContent-Length: " +
             std::to_string(msg.size()) + "\r\nConnection: close\r\n\r\n" + msg;
      part = {};
    } else if (s.ranged && !ignore_ranges && s.first >= body.size()) {
      head = "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */" + std::to_string(body.size()) +
             "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      part = {};
      status = 416;
    } else if (s.ranged && !ignore_ranges) {
      std::uint64_t last = std::min<std::uint64_t>(s.last.value_or(body.size() - 1), body.size() - 1);
      part = part.substr(s.first, last - s.first + 1);
      head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + std::to_string(s.first) + "-" + std::to_string(last) +
             "/" + std::to_string(body.size()) + "\r\n";
    } else {
      head = "HTTP/1.1 200 OK\r\n";
    }
    if (status == 200)
      head += "ETag: " + tag + "\r\nContent-Length: " + std::to_string(part.size()) + "\r\nConnection: close\r\n\r\n";
    bool ok = write_all(c, head.data(), head.size());
    if (ok) write_all(c, part.data(), std::min(cut, part.size()));
    ::close(c);
    --active_;
  }
  static bool write_all(int c, const char* p, std::size_t n) {
    while (n > 0) {
      ssize_t w = ::send(c, p, n, MSG_NOSIGNAL);
      if (w <= 0) return false;
      p += w;
      n -= static_cast<std::size_t>(w);
    }
    return true;
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> conns_;
  std::vector<Seen> seen_;
  std::atomic<int> active_{0}, max_concurrent_{0};
  bool passed_ = false;
};

http::HttpClient client_for(const FileServer& s, unsigned streams, std::uint64_t piece, http::Auth auth = {}) {
  http::ClientOptions o;
  o.auth = std::move(auth);
  o.base_url = s.url();
  o.source = "streams-test";
  o.streams = streams;
  o.piece_bytes = piece;
  o.retry.initial_delay = std::chrono::milliseconds(1);
  o.retry.max_delay = std::chrono::milliseconds(5);
  return http::HttpClient(o);
}

// Everything on_data saw, and on which threads.
struct Received {
  std::string bytes;
  std::vector<std::thread::id> threads;
  std::function<void(const char*, std::size_t)> sink() {
    return [this](const char* p, std::size_t n) {
      bytes.append(p, n);
      if (threads.empty() || threads.back() != std::this_thread::get_id()) threads.push_back(std::this_thread::get_id());
    };
  }
};

constexpr std::uint64_t kMiB = 1 << 20;

TEST(ParallelStreams, PiecesOverSeveralConnectionsArriveInOrderOnTheCallingThread) {
  FileServer s;
  s.body = random_bytes(10 * kMiB + 12345, 1);
  s.rendezvous = 3;  // the pieces after the first wait until three requests run at once
  s.start();
  auto c = client_for(s, 4, kMiB);
  Received r;
  EXPECT_EQ(c.stream("/f", 0, r.sink()), s.body.size());
  EXPECT_TRUE(r.bytes == s.body) << "the bytes differ from the server's";
  ASSERT_EQ(r.threads.size(), 1u);
  EXPECT_EQ(r.threads[0], std::this_thread::get_id());
  EXPECT_GE(s.max_concurrent(), 3) << "the pieces were not fetched at once";
  auto seen = s.seen();
  EXPECT_EQ(seen.size(), 11u);  // 10 whole pieces and the rest
  std::vector<std::uint64_t> firsts;
  for (const auto& q : seen) {
    ASSERT_TRUE(q.ranged && q.last);
    EXPECT_EQ(*q.last - q.first + 1, std::min<std::uint64_t>(kMiB, s.body.size() - q.first));
    firsts.push_back(q.first);
  }
  std::sort(firsts.begin(), firsts.end());
  for (std::size_t i = 0; i < firsts.size(); ++i) EXPECT_EQ(firsts[i], i * kMiB);
}

// A signer (S3's SigV4, Azure's Shared Key) sees each request as it is sent: every piece is
// signed with its own range, and the headers it returns go with that request only.
TEST(ParallelStreams, ASignerSignsEveryPieceWithItsOwnRange) {
  FileServer s;
  s.body = random_bytes(3 * kMiB + 99, 9);
  s.start();
  http::Auth auth{.kind = http::Auth::Kind::signer};
  std::atomic<int> calls{0};
  auth.signer = [&](const http::Auth::SignInput& in) {
    ++calls;
    return std::vector<std::pair<std::string, std::string>>{{"X-Test-Signature", in.method + " " + in.url + " " + in.range}};
  };
  auto c = client_for(s, 4, kMiB, auth);
  Received r;
  EXPECT_EQ(c.stream("/dir/f%20x", 0, r.sink()), s.body.size());
  EXPECT_TRUE(r.bytes == s.body);
  auto seen = s.seen();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(calls, 4);
  for (const auto& q : seen) {
    ASSERT_TRUE(q.ranged && q.last) << q.head;
    std::string want = "X-Test-Signature: GET " + s.url() + "/dir/f%20x bytes=" + std::to_string(q.first) + "-" +
                       std::to_string(*q.last);
    EXPECT_NE(q.head.find(want), std::string::npos) << q.head;
  }
}

TEST(ParallelStreams, FromAnOffsetOnlyTheRestIsAskedFor) {
  FileServer s;
  s.body = random_bytes(5 * kMiB, 2);
  s.start();
  auto c = client_for(s, 4, kMiB);
  Received r;
  const std::uint64_t off = 3 * kMiB / 2 + 7;
  EXPECT_EQ(c.stream("/f", off, r.sink()), s.body.size() - off);
  EXPECT_TRUE(r.bytes == s.body.substr(off));
  for (const auto& q : s.seen()) EXPECT_GE(q.first, off);
}

TEST(ParallelStreams, AServerIgnoringRangesSendsTheFileOnceOverOneConnection) {
  FileServer s;
  s.body = random_bytes(4 * kMiB + 1, 3);
  s.ignore_ranges = true;
  s.start();
  auto c = client_for(s, 4, kMiB);
  Received r;
  EXPECT_EQ(c.stream("/f", 0, r.sink()), s.body.size());
  EXPECT_TRUE(r.bytes == s.body);
  EXPECT_EQ(s.seen().size(), 1u);
}

TEST(ParallelStreams, APieceCutShortIsAskedForAgainFromWhereItStopped) {
  FileServer s;
  s.body = random_bytes(6 * kMiB, 4);
  std::atomic<bool> cut_once{false};
  s.fault = [&](const Seen& q, int&, std::size_t& cut, std::string&) {
    if (q.first == 3 * kMiB && !cut_once.exchange(true)) cut = kMiB / 3;
  };
  s.start();
  auto c = client_for(s, 4, kMiB);
  Received r;
  EXPECT_EQ(c.stream("/f", 0, r.sink()), s.body.size());
  EXPECT_TRUE(r.bytes == s.body);
  bool resumed = false;
  for (const auto& q : s.seen()) resumed = resumed || (q.first == 3 * kMiB + kMiB / 3 && q.last == 4 * kMiB - 1);
  EXPECT_TRUE(resumed) << "the cut piece was not resumed at its byte " << kMiB / 3;
}

TEST(ParallelStreams, AFileChangedBetweenPiecesIsRefusedAfterTheBytesBeforeTheChange) {
  FileServer s;
  s.body = random_bytes(4 * kMiB, 5);
  s.fault = [&](const Seen& q, int&, std::size_t&, std::string& etag) {
    if (q.first >= 2 * kMiB) etag = "\"v2\"";  // the file changed under the download
  };
  s.start();
  auto c = client_for(s, 2, kMiB);
  Received r;
  try {
    c.stream("/f", 0, r.sink());
    FAIL() << "a file whose ETag changed was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("changed"), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.bytes.size() % kMiB, 0u) << "on_data saw part of a piece";
  EXPECT_LE(r.bytes.size(), 2 * kMiB);
  EXPECT_TRUE(r.bytes == s.body.substr(0, r.bytes.size()));
}

TEST(ParallelStreams, ARefusedPieceEndsTheStreamWithItsErrorAfterThePiecesBeforeIt) {
  FileServer s;
  s.body = random_bytes(8 * kMiB, 6);
  s.fault = [&](const Seen& q, int& status, std::size_t&, std::string&) {
    if (q.first == 5 * kMiB) status = 403;
  };
  s.start();
  auto c = client_for(s, 3, kMiB);
  Received r;
  try {
    c.stream("/f", 0, r.sink());
    FAIL() << "a refused piece was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unauthorized) << e.what();
    EXPECT_NE(std::string(e.what()).find("403"), std::string::npos) << e.what();
  }
  EXPECT_EQ(r.bytes.size(), 5 * kMiB) << "the pieces before the refused one were not all delivered";
  EXPECT_TRUE(r.bytes == s.body.substr(0, r.bytes.size()));
}

TEST(ParallelStreams, ASinkThatThrowsStopsThePiecesAndItsErrorComesBackUnchanged) {
  FileServer s;
  s.body = random_bytes(16 * kMiB, 7);
  s.start();
  auto c = client_for(s, 4, kMiB);
  std::size_t got = 0;
  try {
    c.stream("/f", 0, [&](const char*, std::size_t n) {
      got += n;
      if (got > 2 * kMiB) throw Error(ErrorCode::unavailable, "cancelled by the test");
    });
    FAIL() << "the sink's exception was swallowed";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cancelled by the test");
  }
  EXPECT_LT(s.seen().size(), 16u) << "every piece was fetched although the sink had stopped";
}

TEST(ParallelStreams, OneStreamAsksForTheWholeFileWithoutARange) {
  FileServer s;
  s.body = random_bytes(3 * kMiB, 8);
  s.start();
  auto c = client_for(s, 1, kMiB);
  Received r;
  EXPECT_EQ(c.stream("/f", 0, r.sink()), s.body.size());
  EXPECT_TRUE(r.bytes == s.body);
  auto seen = s.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_FALSE(seen[0].ranged);
}

TEST(ParallelStreams, AnEmptyFileAndAFileSmallerThanAPieceTakeOneRequest) {
  for (std::size_t size : {std::size_t{0}, std::size_t{1000}}) {
    FileServer s;
    s.body = random_bytes(size, 9);
    s.start();
    auto c = client_for(s, 4, kMiB);
    Received r;
    EXPECT_EQ(c.stream("/f", 0, r.sink()), size);
    EXPECT_TRUE(r.bytes == s.body);
    EXPECT_EQ(s.seen().size(), 1u) << size;
  }
}

TEST(ParallelStreams, StreamsAndPieceSizeAreSettingsWithBounds) {
  auto o = http::options_from_config({{"url", "http://h"}, {"streams", 8u}, {"piece_bytes", 4 * kMiB}});
  EXPECT_EQ(o.streams, 8u);
  EXPECT_EQ(o.piece_bytes, 4 * kMiB);
  for (auto bad : {nlohmann::json{{"url", "http://h"}, {"streams", 0u}}, nlohmann::json{{"url", "http://h"}, {"streams", 17u}},
                   nlohmann::json{{"url", "http://h"}, {"piece_bytes", 1000u}}, nlohmann::json{{"url", "http://h"}, {"streams", "4"}}}) {
    try {
      http::options_from_config(bad);
      ADD_FAILURE() << "accepted " << bad.dump();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request);
    }
  }
}

}  // namespace
