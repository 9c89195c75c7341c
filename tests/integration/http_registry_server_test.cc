// The example HTTP registry server (plugins/example-http-registry, docs/http-registry.md) as a
// real process on loopback, spoken to by a raw HTTP/1.1 client over a TCP socket (so hostile
// paths go out byte for byte and a dropped connection is seen as such): every endpoint,
// ranges, hostile names, each kind of credentials, and the test knobs the remote plugin's
// tests rely on (503 first, a dropped connection, the server dying mid-file).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <fstream>
#include <map>

#include "daemon_harness.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

struct HttpResponse {
  bool received = false;  // a status line came back
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has(const std::string& name) const { return headers.count(name) != 0; }
  // The body is as long as Content-Length says (false: the connection was cut short).
  bool complete() const { return has("content-length") && std::stoull(header("content-length")) == body.size(); }
  nlohmann::json json() const { return nlohmann::json::parse(body); }
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// One request on a fresh connection ("Connection: close"), read to the end of the stream.
HttpResponse http(int port, const std::string& method, const std::string& target,
                  const std::vector<std::string>& headers = {}) {
  HttpResponse r;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return r;
  timeval tv{20, 0};  // a hung server fails the test instead of hanging it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return r;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  req += "\r\n";
  for (std::size_t sent = 0; sent < req.size();) {
    ssize_t n = ::send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string raw;
  char buf[65536];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  auto end = raw.find("\r\n\r\n");
  if (end == std::string::npos || raw.compare(0, 9, "HTTP/1.1 ") != 0) return r;
  r.received = true;
  r.status = std::atoi(raw.c_str() + 9);
  std::size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    auto eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      while (!v.empty() && v.front() == ' ') v.erase(0, 1);
      r.headers[lower(line.substr(0, colon))] = v;
    }
    pos = eol + 2;
  }
  r.body = raw.substr(end + 4);
  return r;
}

HttpResponse get(int port, const std::string& target, const std::vector<std::string>& headers = {}) {
  return http(port, "GET", target, headers);
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
}

// Deterministic bytes that do not repeat within a chunk.
std::string pattern(std::size_t size, unsigned seed) {
  std::string s(size, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x & 0xff);
  }
  return s;
}

fs::path server_binary() { return bin_dir() / "modelzoo-http-registry"; }

// A modelzoo-http-registry process on 127.0.0.1, port chosen by the kernel and learnt from
// --port-file; its stderr goes to a log file the tests read.
class RegistryProcess {
 public:
  RegistryProcess(const fs::path& dir, const fs::path& root, std::vector<std::string> args, bool expect_port = true)
      : log_path_(dir / ("server-" + std::to_string(++count_) + ".log")),
        port_file_(dir / ("port-" + std::to_string(count_))) {
    std::vector<std::string> argv_store = {server_binary().string(), "--root", root.string(),
                                           "--listen", "127.0.0.1:0", "--port-file", port_file_.string()};
    for (auto& a : args) argv_store.push_back(std::move(a));
    std::vector<char*> argv;
    for (auto& a : argv_store) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      ADD_FAILURE() << "cannot start " << argv[0];
      pid_ = -1;
      return;
    }
    if (!expect_port) return;
    bool up = wait_until([&] { return !read_text(port_file_).empty() || !process_alive(pid_); });
    port_ = std::atoi(read_text(port_file_).c_str());
    if (!up || port_ <= 0) ADD_FAILURE() << "the server did not come up; its log:\n" << log();
  }
  ~RegistryProcess() {
    if (pid_ > 0 && !exited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (::testing::Test::HasFailure()) std::cerr << "---- server log (" << log_path_ << ")\n" << log() << "----\n";
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string log() const { return read_text(log_path_); }

  // Waits for the process to exit; its wait status, or -1 when it did not within `limit`.
  int wait_exit(std::chrono::milliseconds limit = 10s) {
    if (exited_) return status_;
    bool done = wait_until([&] { return ::waitpid(pid_, &status_, WNOHANG) == pid_; }, limit);
    if (!done) return -1;
    exited_ = true;
    return status_;
  }
  int terminate() {
    ::kill(pid_, SIGTERM);
    return wait_exit();
  }

 private:
  static inline int count_ = 0;
  fs::path log_path_, port_file_;
  pid_t pid_ = -1;
  int port_ = 0;
  int status_ = -1;
  bool exited_ = false;
};

const std::string kFile = "/v1/models/acme/llm/-/versions/1.0.0/files/weights.bin";

class HttpRegistryServer : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(server_binary())) GTEST_SKIP() << "modelzoo-http-registry not built (libcpp-httplib-dev missing)";
    char tmpl[] = "/tmp/modelzoo-http-registry-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    root_ = dir_ / "root";
    weights_ = pattern(300 * 1024 + 17, 1);  // more than one 256 KiB step of the server
    put(root_ / "acme/llm/1.0.0/weights.bin", weights_);
    put(root_ / "acme/llm/1.0.0/config/tokenizer.json", "{\"vocab\": 3}\n");
    put(root_ / "acme/llm/1.0.0/modelzoo.yaml", "description: A tiny test model\nlicense: MIT\ntags: [test]\n");
    put(root_ / "acme/llm/0.9.0/weights.bin", "old");
    put(root_ / "acme/llm/1.1.0-rc.1+build.7/weights.bin", "pre");
    put(root_ / "acme/llm/1.0.0/empty.bin", "");
    put(root_ / "tiny/2.0.0/a.txt", "abc");
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }

  RegistryProcess start(std::vector<std::string> args = {}) { return RegistryProcess(dir_, root_, std::move(args)); }

  // Against a server demanding credentials: 401 with `challenge` when none are given, 403
  // for each of `wrong` (header sets) and `wrong_targets`, 200 for each of `good` and
  // `good_targets`; none of `secrets` in its log.
  void check_auth(RegistryProcess& s, const std::string& challenge, const std::vector<std::vector<std::string>>& wrong,
                  const std::vector<std::vector<std::string>>& good, const std::vector<std::string>& wrong_targets,
                  const std::vector<std::string>& good_targets, const std::vector<std::string>& secrets);

  fs::path dir_, root_;
  std::string weights_;
};

void expect_error(const HttpResponse& r, int status, const std::string& code, const std::string& what) {
  EXPECT_EQ(r.status, status) << what << ": " << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json") << what;
  try {
    auto j = r.json();
    EXPECT_EQ(j["error"]["code"], code) << what;
    EXPECT_TRUE(j["error"]["message"].is_string()) << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": the error body is not JSON: " << r.body;
  }
}

TEST_F(HttpRegistryServer, ServesEveryEndpoint) {
  auto s = start();
  int port = s.port();

  auto list = get(port, "/v1/models");
  ASSERT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(list.header("content-type"), "application/json");
  auto models = list.json()["models"];
  ASSERT_EQ(models.size(), 2u) << list.body;
  EXPECT_EQ(models[0]["name"], "acme/llm");
  EXPECT_EQ(models[0]["versions"], nlohmann::json({"1.1.0-rc.1+build.7", "1.0.0", "0.9.0"}));
  EXPECT_TRUE(models[0]["description"].is_string());
  EXPECT_EQ(models[1]["name"], "tiny");

  auto versions = get(port, "/v1/models/acme/llm/-/versions");
  ASSERT_EQ(versions.status, 200) << versions.body;
  EXPECT_EQ(versions.json()["name"], "acme/llm");
  EXPECT_EQ(versions.json()["versions"].size(), 3u);

  auto meta = get(port, "/v1/models/acme/llm/-/versions/1.0.0");
  ASSERT_EQ(meta.status, 200) << meta.body;
  auto m = meta.json();
  EXPECT_EQ(m["name"], "acme/llm");
  EXPECT_EQ(m["version"], "1.0.0");
  EXPECT_EQ(m["description"], "A tiny test model");
  EXPECT_EQ(m["license"], "MIT");
  EXPECT_EQ(m["tags"], nlohmann::json({"test"}));
  ASSERT_EQ(m["files"].size(), 3u) << meta.body;  // modelzoo.yaml is not a file of the model
  EXPECT_EQ(m["files"][0]["name"], "config/tokenizer.json");
  EXPECT_EQ(m["files"][1]["name"], "empty.bin");
  EXPECT_EQ(m["files"][2]["name"], "weights.bin");
  EXPECT_EQ(m["files"][2]["size"], weights_.size());
  EXPECT_EQ(m["files"][2]["sha256"], bus::Sha256::of(weights_));
  EXPECT_EQ(meta.body.find(root_.string()), std::string::npos) << "no local paths leave the server";
  EXPECT_NO_THROW(bus::ModelMetadata::from_json(m));
  EXPECT_FALSE(meta.header("etag").empty());
  EXPECT_EQ(meta.header("cache-control"), "no-cache");
  auto again = get(port, "/v1/models/acme/llm/-/versions/1.0.0", {"If-None-Match: " + meta.header("etag")});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());

  // A semver with build metadata, percent-encoded.
  auto pre = get(port, "/v1/models/acme/llm/-/versions/1.1.0-rc.1%2Bbuild.7/files/weights.bin");
  EXPECT_EQ(pre.status, 200);
  EXPECT_EQ(pre.body, "pre");

  auto file = get(port, kFile);
  ASSERT_EQ(file.status, 200);
  EXPECT_TRUE(file.complete());
  EXPECT_EQ(file.body, weights_);
  EXPECT_EQ(file.header("etag"), "\"" + bus::Sha256::of(weights_) + "\"");
  EXPECT_EQ(file.header("accept-ranges"), "bytes");
  EXPECT_EQ(file.header("content-type"), "application/octet-stream");
  EXPECT_EQ(get(port, kFile, {"If-None-Match: " + file.header("etag")}).status, 304);
  auto plain = get(port, kFile, {"Accept-Encoding: gzip, br"});  // file bodies are never compressed
  EXPECT_FALSE(plain.has("content-encoding"));
  EXPECT_EQ(plain.body, weights_);

  auto nested = get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/config/tokenizer.json");
  EXPECT_EQ(nested.status, 200);
  EXPECT_EQ(nested.body, "{\"vocab\": 3}\n");
  auto nested_encoded = get(port, "/v1/models/acme%2Fllm/-/versions/1.0.0/files/config%2Ftokenizer.json");
  EXPECT_EQ(nested_encoded.body, nested.body);

  auto empty = get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/empty.bin");
  EXPECT_EQ(empty.status, 200);
  EXPECT_EQ(empty.header("content-length"), "0");

  auto head = http(port, "HEAD", kFile);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), std::to_string(weights_.size()));
  EXPECT_EQ(head.header("etag"), file.header("etag"));
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(http(port, "HEAD", "/v1/models").status, 200);

  expect_error(get(port, "/v1/models/acme/nothing/-/versions"), 404, "not_found", "unknown model");
  expect_error(get(port, "/v1/models/acme/llm/-/versions/9.9.9"), 404, "not_found", "unknown version");
  expect_error(get(port, "/v1/models/acme/llm/-/versions/9.9.9/files/weights.bin"), 404, "not_found", "version");
  expect_error(get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/nope.bin"), 404, "not_found", "unknown file");
  expect_error(get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/modelzoo.yaml"), 404, "not_found", "yaml");
  expect_error(get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/config"), 404, "not_found", "a directory");
  expect_error(get(port, "/v1/models/acme/llm/1.0.0/-/versions"), 404, "not_found", "a version inside a name");
  expect_error(get(port, "/v2/models"), 404, "not_found", "unknown endpoint");
  auto post = http(port, "POST", "/v1/models", {"Content-Length: 0"});
  expect_error(post, 405, "bad_request", "POST");
  EXPECT_EQ(post.header("allow"), "GET, HEAD");

  // One log line per request: method, path, status, bytes, milliseconds.
  std::string log = s.log();
  EXPECT_NE(log.find("GET /v1/models 200 "), std::string::npos) << log;
  EXPECT_NE(log.find("GET " + kFile + " 200 " + std::to_string(weights_.size()) + " "), std::string::npos) << log;
  EXPECT_NE(log.find("HEAD " + kFile + " 200 0 "), std::string::npos) << log;
  EXPECT_EQ(WEXITSTATUS(s.terminate()), 0);
  EXPECT_NE(s.log().find("stopped"), std::string::npos);
}

TEST_F(HttpRegistryServer, AnswersRanges) {
  auto s = start();
  int port = s.port();
  const std::uint64_t size = weights_.size();
  const std::string etag = "\"" + bus::Sha256::of(weights_) + "\"";

  auto tail = get(port, kFile, {"Range: bytes=1000-"});
  ASSERT_EQ(tail.status, 206);
  EXPECT_EQ(tail.header("content-range"), "bytes 1000-" + std::to_string(size - 1) + "/" + std::to_string(size));
  EXPECT_EQ(tail.header("content-length"), std::to_string(size - 1000));
  EXPECT_EQ(tail.body, weights_.substr(1000));
  EXPECT_EQ(tail.header("etag"), etag);

  auto mid = get(port, kFile, {"Range: bytes=10-19"});
  ASSERT_EQ(mid.status, 206);
  EXPECT_EQ(mid.header("content-range"), "bytes 10-19/" + std::to_string(size));
  EXPECT_EQ(mid.body, weights_.substr(10, 10));

  auto clamped = get(port, kFile, {"Range: bytes=" + std::to_string(size - 5) + "-99999999"});
  EXPECT_EQ(clamped.status, 206);
  EXPECT_EQ(clamped.body, weights_.substr(size - 5));

  auto suffix = get(port, kFile, {"Range: bytes=-7"});
  EXPECT_EQ(suffix.status, 206);
  EXPECT_EQ(suffix.body, weights_.substr(size - 7));

  auto past = get(port, kFile, {"Range: bytes=" + std::to_string(size) + "-"});
  expect_error(past, 416, "bad_request", "range at the end");
  EXPECT_EQ(past.header("content-range"), "bytes */" + std::to_string(size));
  expect_error(get(port, kFile, {"Range: bytes=zz"}), 416, "bad_request", "malformed range");

  // If-Range: the range only holds for the same content.
  EXPECT_EQ(get(port, kFile, {"Range: bytes=5-", "If-Range: " + etag}).status, 206);
  auto changed = get(port, kFile, {"Range: bytes=5-", "If-Range: \"0000\""});
  EXPECT_EQ(changed.status, 200);
  EXPECT_EQ(changed.body, weights_);
  // Several ranges: ignored, the whole file.
  auto multi = get(port, kFile, {"Range: bytes=0-1,5-6"});
  EXPECT_EQ(multi.status, 200);
  EXPECT_EQ(multi.body.size(), size);
  // A Range on a JSON endpoint is ignored, and never slices an error body.
  auto meta = get(port, "/v1/models/acme/llm/-/versions/1.0.0", {"Range: bytes=5-"});
  EXPECT_EQ(meta.status, 200);
  EXPECT_NO_THROW(meta.json());
  expect_error(get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/none", {"Range: bytes=5000-"}), 404,
               "not_found", "missing file with a range");

  auto head = http(port, "HEAD", kFile, {"Range: bytes=100-"});
  EXPECT_EQ(head.status, 206);
  EXPECT_EQ(head.header("content-length"), std::to_string(size - 100));
  EXPECT_TRUE(head.body.empty());
}

TEST_F(HttpRegistryServer, RefusesHostileNamesAndNeverLeavesTheRoot) {
  fs::path outside = dir_ / "outside";
  put(outside / "secret.txt", "TOP-SECRET");
  put(outside / "model/1.0.0/secret.txt", "TOP-SECRET");
  fs::create_symlink(outside / "model", root_ / "escape");                               // a model dir
  fs::create_symlink(outside / "secret.txt", root_ / "acme/llm/1.0.0/leak.txt");        // a file
  fs::create_symlink(outside / "model/1.0.0", root_ / "acme/llm/3.0.0");                // a version dir
  fs::create_symlink(root_ / "acme/llm/1.0.0/weights.bin", root_ / "acme/llm/1.0.0/alias.bin");  // stays inside
  auto s = start();
  int port = s.port();

  for (const std::string t : {
           "/v1/models/../outside/model/-/versions",
           "/v1/models/%2e%2e/outside/model/-/versions",
           "/v1/models/%2E%2E%2Foutside%2Fmodel/-/versions",
           "/v1/models//tmp/-/versions",
           "/v1/models/%2Ftmp/-/versions",
           "/v1/models/acme%00/-/versions",
           "/v1/models/acme/llm/-/versions/1.0.0/files/../../../../outside/secret.txt",
           "/v1/models/acme/llm/-/versions/1.0.0/files/%2e%2e/%2e%2e/%2e%2e/%2e%2e/outside/secret.txt",
           "/v1/models/acme/llm/-/versions/1.0.0/files/%2Fetc%2Fpasswd",
           "/v1/models/acme/llm/-/versions/1.0.0/files//etc/passwd",
           "/v1/models/acme/llm/-/versions/1.0.0/files/weights.bin%00.txt",
           "/v1/models/acme/llm/-/versions/..%2F..%2Foutside/files/secret.txt",
           "/v1/models/acme/llm/-/versions/1.0.0/files/%zz",
       }) {
    auto r = get(port, t);
    expect_error(r, 400, "bad_request", t);
    EXPECT_EQ(r.body.find("TOP-SECRET"), std::string::npos) << t;
  }
  // A raw NUL in the request line: refused by the HTTP layer.
  auto nul = get(port, std::string("/v1/models/acme\0x/-/versions", 28));
  EXPECT_EQ(nul.status, 400);

  // Symlinks that resolve outside the root: 404, and never listed.
  for (const std::string t : {"/v1/models/escape/-/versions", "/v1/models/escape/-/versions/1.0.0",
                              "/v1/models/escape/-/versions/1.0.0/files/secret.txt",
                              "/v1/models/acme/llm/-/versions/1.0.0/files/leak.txt",
                              "/v1/models/acme/llm/-/versions/3.0.0",
                              "/v1/models/acme/llm/-/versions/3.0.0/files/secret.txt"}) {
    auto r = get(port, t);
    expect_error(r, 404, "not_found", t);
    EXPECT_EQ(r.body.find("TOP-SECRET"), std::string::npos) << t;
  }
  auto list = get(port, "/v1/models");
  EXPECT_EQ(list.body.find("escape"), std::string::npos) << list.body;
  EXPECT_EQ(get(port, "/v1/models/acme/llm/-/versions").body.find("3.0.0"), std::string::npos);
  auto meta = get(port, "/v1/models/acme/llm/-/versions/1.0.0");
  EXPECT_EQ(meta.body.find("leak.txt"), std::string::npos) << meta.body;
  // A symlink that stays inside the root is served.
  EXPECT_EQ(get(port, "/v1/models/acme/llm/-/versions/1.0.0/files/alias.bin").body, weights_);
}

void HttpRegistryServer::check_auth(RegistryProcess& s, const std::string& challenge,
                                    const std::vector<std::vector<std::string>>& wrong,
                                    const std::vector<std::vector<std::string>>& good,
                                    const std::vector<std::string>& wrong_targets,
                                    const std::vector<std::string>& good_targets,
                                    const std::vector<std::string>& secrets) {
  int port = s.port();
  ASSERT_GT(port, 0);
  auto none = get(port, "/v1/models");
  expect_error(none, 401, "unauthorized", "no credentials");
  EXPECT_EQ(none.header("www-authenticate").rfind(challenge, 0), 0u) << none.header("www-authenticate");
  expect_error(get(port, kFile), 401, "unauthorized", "no credentials, file");
  expect_error(get(port, "/v1/models/acme/nothing/-/versions"), 401, "unauthorized", "nothing revealed");
  for (const auto& h : wrong) {
    auto r = get(port, "/v1/models", h);
    expect_error(r, 403, "unauthorized", "wrong credentials: " + (h.empty() ? std::string() : h[0]));
  }
  for (const auto& target : wrong_targets) expect_error(get(port, target), 403, "unauthorized", target);
  for (const auto& h : good) {
    auto r = get(port, kFile, h);
    EXPECT_EQ(r.status, 200) << (h.empty() ? std::string() : h[0]) << ": " << r.body.substr(0, 200);
    EXPECT_TRUE(r.body == weights_) << "the file, with credentials " << (h.empty() ? std::string() : h[0]);
    EXPECT_EQ(get(port, "/v1/models", h).status, 200);
  }
  for (const auto& target : good_targets) EXPECT_EQ(get(port, target).status, 200) << target;
  std::string log = s.log();
  for (const auto& secret : secrets)
    EXPECT_EQ(log.find(secret), std::string::npos) << "'" << secret << "' is in the server's log:\n" << log;
}

std::string basic(const std::string& user_password) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < user_password.size(); i += 3) {
    std::uint32_t v = static_cast<unsigned char>(user_password[i]) << 16;
    if (i + 1 < user_password.size()) v |= static_cast<unsigned char>(user_password[i + 1]) << 8;
    if (i + 2 < user_password.size()) v |= static_cast<unsigned char>(user_password[i + 2]);
    out += t[(v >> 18) & 63];
    out += t[(v >> 12) & 63];
    out += i + 1 < user_password.size() ? t[(v >> 6) & 63] : '=';
    out += i + 2 < user_password.size() ? t[v & 63] : '=';
  }
  return "Authorization: Basic " + out;
}

TEST_F(HttpRegistryServer, ApiKeyInAHeaderOrTheQuery) {
  auto s = start({"--api-key", "k-123-secret", "--api-key-query", "api_key"});
  check_auth(s, "ApiKey", {{"X-API-Key: nope"}, {"X-API-Key: k-123-secre"}, {"X-API-Key: nope", "Authorization: Bearer k-123-secret"}},
             {{"X-API-Key: k-123-secret"}, {"x-api-key: k-123-secret"}},
             {"/v1/models?api_key=wrong-key-value"}, {"/v1/models?api_key=k-123-secret", kFile + "?api_key=k-123-secret"},
             {"k-123-secret", "wrong-key-value"});
  EXPECT_NE(s.log().find("/v1/models?api_key=REDACTED"), std::string::npos) << s.log();

  auto custom = start({"--api-key", "other-key", "--api-key-header", "X-Registry-Key"});
  check_auth(custom, "ApiKey", {{"X-Registry-Key: k"}, {"X-API-Key: other-key", "X-Registry-Key: x"}},
             {{"X-Registry-Key: other-key"}}, {}, {}, {"other-key"});
  // Without --api-key-query the query parameter is no credential.
  expect_error(get(custom.port(), "/v1/models?api_key=other-key"), 401, "unauthorized", "query not enabled");
}

TEST_F(HttpRegistryServer, BearerToken) {
  auto s = start({"--bearer", "tok-abc"});
  check_auth(s, "Bearer", {{"Authorization: Bearer tok-abd"}, {"Authorization: Bearer tok-abcd"}},
             {{"Authorization: Bearer tok-abc"}, {"authorization: bearer tok-abc"}}, {}, {}, {"tok-abc", "tok-abd"});
  // Another scheme is no bearer token at all.
  expect_error(get(s.port(), "/v1/models", {basic("u:tok-abc")}), 401, "unauthorized", "basic for bearer");
}

TEST_F(HttpRegistryServer, BearerTokenFromAFileIsReReadWhenItChanges) {
  fs::path token = dir_ / "token";
  put(token, "first-token\n");
  auto s = start({"--bearer-file", token.string()});
  check_auth(s, "Bearer", {{"Authorization: Bearer second-token-longer"}}, {{"Authorization: Bearer first-token"}},
             {}, {}, {"first-token"});
  put(token, "second-token-longer\n");
  EXPECT_EQ(get(s.port(), "/v1/models", {"Authorization: Bearer second-token-longer"}).status, 200);
  expect_error(get(s.port(), "/v1/models", {"Authorization: Bearer first-token"}), 403, "unauthorized", "old token");
  // Replaced by rename, the usual way of writing a secret.
  put(dir_ / "token.new", "third\n");
  fs::rename(dir_ / "token.new", token);
  EXPECT_EQ(get(s.port(), "/v1/models", {"Authorization: Bearer third"}).status, 200);
  // Emptied: the last token stays in force rather than letting everyone in or nobody.
  put(token, "");
  EXPECT_EQ(get(s.port(), "/v1/models", {"Authorization: Bearer third"}).status, 200);
  std::string log = s.log();
  for (const char* secret : {"first-token", "second-token-longer", "third"})
    EXPECT_EQ(log.find(secret), std::string::npos) << secret << " logged:\n" << log;

  // A missing or empty token file is refused at start.
  RegistryProcess bad(dir_, root_, {"--bearer-file", (dir_ / "missing").string()}, false);
  EXPECT_EQ(WEXITSTATUS(bad.wait_exit()), 1);
}

TEST_F(HttpRegistryServer, HttpBasic) {
  auto s = start({"--basic", "alice:pa:ss-w0rd"});
  check_auth(s, "Basic", {{basic("alice:wrong")}, {basic("bob:pa:ss-w0rd")}, {"Authorization: Basic !!!!"}},
             {{basic("alice:pa:ss-w0rd")}}, {}, {},
             {"pa:ss-w0rd", basic("alice:pa:ss-w0rd").substr(21), basic("alice:wrong").substr(21)});
}

TEST_F(HttpRegistryServer, ACustomRequiredHeader) {
  auto s = start({"--require-header", "X-Team-Token: blue-7"});
  check_auth(s, "Header", {{"X-Team-Token: red"}, {"X-Team-Token: blue-77"}}, {{"X-Team-Token: blue-7"}}, {}, {},
             {"blue-7", "red"});
}

TEST_F(HttpRegistryServer, RefusesConflictingOrBadOptions) {
  auto exit_code = [&](std::vector<std::string> args) {
    RegistryProcess p(dir_, root_, std::move(args), false);
    int st = p.wait_exit();
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  EXPECT_EQ(exit_code({"--bearer", "a", "--basic", "u:p"}), 2);
  EXPECT_EQ(exit_code({"--api-key", "a", "--require-header", "X:y"}), 2);
  EXPECT_EQ(exit_code({"--basic", "nocolon"}), 2);
  EXPECT_EQ(exit_code({"--require-header", "X-No-Value"}), 2);
  EXPECT_EQ(exit_code({"--api-key-header", "X-K"}), 2) << "--api-key-header needs --api-key";
  EXPECT_EQ(exit_code({"--listen", "127.0.0.1:99999"}), 2);
  EXPECT_EQ(exit_code({"--fail-status", "500"}), 2);
  EXPECT_NE(exit_code({"--root", (dir_ / "no-such-dir").string()}), 0);
}

TEST_F(HttpRegistryServer, FailFirstAnswers503ThenServes) {
  auto s = start({"--fail-first", "2", "--retry-after", "0"});
  for (int i = 0; i < 2; ++i) {
    auto r = get(s.port(), kFile, {"Range: bytes=1000-"});
    expect_error(r, 503, "unavailable", "refused request");
    EXPECT_EQ(r.header("retry-after"), "0");
  }
  auto ok = get(s.port(), kFile, {"Range: bytes=1000-"});
  EXPECT_EQ(ok.status, 206);
  EXPECT_EQ(ok.body, weights_.substr(1000));

  auto limited = start({"--fail-first", "1", "--fail-status", "429", "--retry-after", "3"});
  auto r = get(limited.port(), "/v1/models");
  expect_error(r, 429, "unavailable", "429");
  EXPECT_EQ(r.header("retry-after"), "3");
  EXPECT_EQ(get(limited.port(), "/v1/models").status, 200);
}

TEST_F(HttpRegistryServer, DropsTheConnectionMidFileOncePerFile) {
  put(root_ / "acme/llm/1.0.0/second.bin", pattern(5000, 2));
  auto s = start({"--drop-after-bytes", "4096"});
  auto cut = get(s.port(), kFile);
  EXPECT_EQ(cut.status, 200);
  EXPECT_EQ(cut.header("content-length"), std::to_string(weights_.size()));
  EXPECT_FALSE(cut.complete());
  ASSERT_EQ(cut.body.size(), 4096u);
  EXPECT_EQ(cut.body, weights_.substr(0, 4096));
  // Resume where it broke: served in full this time.
  auto rest = get(s.port(), kFile, {"Range: bytes=4096-", "If-Range: " + cut.header("etag")});
  EXPECT_EQ(rest.status, 206);
  EXPECT_TRUE(rest.complete());
  EXPECT_EQ(bus::Sha256::of(cut.body + rest.body), bus::Sha256::of(weights_));
  EXPECT_EQ(get(s.port(), kFile).body, weights_);
  // Another file drops once too; a file shorter than the limit is never cut.
  EXPECT_EQ(get(s.port(), "/v1/models/acme/llm/-/versions/1.0.0/files/second.bin").body.size(), 4096u);
  EXPECT_EQ(get(s.port(), "/v1/models/acme/llm/-/versions/1.0.0/files/second.bin").body.size(), 5000u);
  EXPECT_EQ(get(s.port(), "/v1/models/tiny/-/versions/2.0.0/files/a.txt").body, "abc");
  EXPECT_NE(s.log().find("dropped"), std::string::npos) << s.log();
  EXPECT_TRUE(process_alive(s.pid()));
}

TEST_F(HttpRegistryServer, DiesMidFileAndAFreshServerResumes) {
  const std::string etag = "\"" + bus::Sha256::of(weights_) + "\"";
  std::string got;
  {
    auto s = start({"--die-after-bytes", "100000"});
    auto cut = get(s.port(), kFile);
    EXPECT_EQ(cut.status, 200);
    EXPECT_FALSE(cut.complete());
    EXPECT_EQ(cut.body.size(), 100000u);
    got = cut.body;
    int st = s.wait_exit();
    ASSERT_TRUE(WIFEXITED(st)) << st;
    EXPECT_EQ(WEXITSTATUS(st), 1);
    EXPECT_NE(s.log().find("die-after-bytes"), std::string::npos) << s.log();
  }
  auto s = start();
  auto rest = get(s.port(), kFile, {"Range: bytes=" + std::to_string(got.size()) + "-", "If-Range: " + etag});
  ASSERT_EQ(rest.status, 206);
  EXPECT_EQ(bus::Sha256::of(got + rest.body), bus::Sha256::of(weights_));
}

TEST_F(HttpRegistryServer, ThrottlesFileBodies) {
  auto s = start({"--throttle", "1000000"});
  auto t0 = std::chrono::steady_clock::now();
  auto r = get(s.port(), kFile);
  auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.body, weights_);
  // 307 KiB at 1 MB/s: the last 100 kB step is due 0.3 s after the first.
  EXPECT_GE(elapsed, 250ms);
  // JSON is never throttled; HEAD sends no body.
  t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(http(s.port(), "HEAD", kFile).status, 200);
  EXPECT_EQ(get(s.port(), "/v1/models").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

}  // namespace
}  // namespace modelzoo::testing
