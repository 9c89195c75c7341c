#include "example-http-registry/server.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <httplib.h>

#include "local-file/store.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::http_registry {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kChunk = 256 * 1024;  // bytes read and sent per step of a file body

// Whether `p` is `root` or below it. Both canonical.
bool inside(const fs::path& p, const fs::path& root) {
  const std::string& r = root.native();
  const std::string& s = p.native();
  if (r == "/") return !s.empty() && s[0] == '/';
  return s == r || (s.size() > r.size() && s.compare(0, r.size(), r) == 0 && s[r.size()] == '/');
}

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Printable ASCII only, for the log.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  return out;
}

// A bearer token read from a file, re-read whenever the file changes (inode, size or
// modification time). When the file becomes unreadable or empty the last token stays.
class TokenFile {
 public:
  TokenFile(std::string path, std::function<void(const std::string&)> log) : path_(std::move(path)), log_(std::move(log)) {
    std::lock_guard lk(mu_);
    if (!reload_locked()) throw std::runtime_error("cannot read a non-empty bearer token from '" + path_ + "'");
  }
  std::string get() {
    std::lock_guard lk(mu_);
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && !same(st)) reload_locked();
    return token_;
  }

 private:
  bool same(const struct stat& st) const {
    return st.st_ino == ino_ && st.st_size == size_ && st.st_mtim.tv_sec == mtime_.tv_sec &&
           st.st_mtim.tv_nsec == mtime_.tv_nsec;
  }
  bool reload_locked() {
    struct stat st {};
    if (::stat(path_.c_str(), &st) != 0) return false;
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) {
      if (!token_.empty()) log_("warn: cannot read the bearer token file; keeping the previous token");
      return false;
    }
    std::string t = trimmed(ss.str());
    ino_ = st.st_ino;
    size_ = st.st_size;
    mtime_ = st.st_mtim;
    if (t.empty()) {
      if (!token_.empty()) log_("warn: the bearer token file is empty; keeping the previous token");
      return false;
    }
    if (!token_.empty() && t != token_) log_("info: bearer token file changed; new token in force");
    token_ = std::move(t);
    return true;
  }

  std::string path_;
  std::function<void(const std::string&)> log_;
  std::mutex mu_;
  std::string token_;
  ino_t ino_ = 0;
  off_t size_ = -1;
  struct timespec mtime_ {};
};

// What the log line of the request being handled on this thread reports.
struct RequestLog {
  const httplib::Request* req = nullptr;
  Clock::time_point start;
  std::uint64_t bytes = 0;  // file body bytes sent
  std::string note;
};
thread_local RequestLog tl_log;

// The state of one file body being sent.
struct Body {
  int fd = -1;
  std::uint64_t start = 0;  // file offset of the first byte of the body
  std::string key;          // the file, for --drop-after-bytes' "once per file"
  bool drop_armed = false;
  std::uint64_t sent = 0;
  bool started = false;
  Clock::time_point t0;
  std::unique_ptr<char[]> buf{new char[kChunk]};
  ~Body() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

struct Server::Impl {
  explicit Impl(ServerOptions o) : opt(with_defaults(std::move(o))), store(store_options(opt, this)) {
    if (opt.auth.kind == AuthConfig::Kind::bearer && !opt.auth.bearer_file.empty())
      token_file = std::make_unique<TokenFile>(opt.auth.bearer_file, [this](const std::string& l) { log(l); });
    setup();
  }

  static ServerOptions with_defaults(ServerOptions o) {
    if (!o.log) o.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    return o;
  }

  static local_file::Options store_options(const ServerOptions& o, Impl* self) {
    local_file::Options s;
    std::error_code ec;
    s.root = fs::absolute(o.root, ec);
    if (ec) s.root = o.root;
    // The store's own notes (an escaping symlink skipped, an unreadable modelzoo.yaml).
    s.log = [self](const char* level, const std::string& msg) { self->log(std::string(level) + ": " + msg); };
    return s;
  }

  void log(const std::string& line) {
    std::lock_guard lk(log_mu);
    opt.log(line);
  }

  void setup() {
    int threads = std::max(1, opt.threads);
    svr.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
    svr.set_keep_alive_max_count(100);
    svr.set_write_timeout(60);  // a slow reader on a far network is not a dead one
    svr.set_payload_max_length(64 * 1024);  // no endpoint takes a body
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) { return handle(req, res); });
    // Errors cpp-httplib answers itself (a malformed request line or Range header, an
    // overlong URI): the protocol's error body.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // one of ours
      // Ranges apply to the whole file body only; never slice an error body.
      const_cast<httplib::Request&>(req).ranges.clear();
      std::string message = res.status == 416 ? "malformed Range header: use bytes=N-, bytes=N-M or bytes=-N"
                                              : "HTTP " + std::to_string(res.status);
      res.set_content(error_body(error_code_for_status(res.status), message), "application/json");
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([this](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      fail(res, 500, "internal", what);
    });
    svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log_request(req, res); });
  }

  void log_request(const httplib::Request& req, const httplib::Response& res) {
    RequestLog& t = tl_log;
    std::string ms = "-";
    if (t.req == &req) {
      auto d = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - t.start).count();
      char b[32];
      std::snprintf(b, sizeof b, "%.1fms", static_cast<double>(d) / 1000.0);
      ms = b;
    }
    std::uint64_t bytes = 0;
    if (req.method != "HEAD") bytes = !res.body.empty() ? res.body.size() : (t.req == &req ? t.bytes : 0);
    // Never a header, never a query value: credentials travel there.
    log(printable(req.remote_addr) + " " + printable(req.method) + " " + printable(redact_target(req.target)) + " " +
        std::to_string(res.status) + " " + std::to_string(bytes) + " " + ms +
        (t.req == &req && !t.note.empty() ? " (" + t.note + ")" : ""));
    t = RequestLog{};
  }

  void fail(httplib::Response& res, int status, const std::string& code, const std::string& message) {
    res.status = status;
    res.headers.erase("ETag");
    res.headers.erase("Content-Range");
    res.headers.erase("Accept-Ranges");
    res.headers.erase("Cache-Control");
    res.set_header("Cache-Control", "no-store");
    if (status == 401) res.set_header("WWW-Authenticate", www_authenticate(opt.auth));
    if (status == 503 || status == 429) res.set_header("Retry-After", std::to_string(opt.retry_after));
    res.set_content(error_body(code, message), "application/json");
  }

  httplib::Server::HandlerResponse handle(const httplib::Request& req, httplib::Response& res) {
    // cpp-httplib applies a parsed Range to whatever body is answered, error bodies
    // included. This server answers Range itself, for file bodies only.
    const_cast<httplib::Request&>(req).ranges.clear();
    tl_log = RequestLog{&req, Clock::now(), 0, {}};
    try {
      if (req.method != "GET" && req.method != "HEAD") {
        res.set_header("Allow", "GET, HEAD");
        throw HttpError(405, "bad_request", "method " + printable(req.method) + " not allowed: GET or HEAD");
      }
      if (opt.fail_first > 0) {
        std::uint64_t n = requests.fetch_add(1);
        if (n < opt.fail_first)
          throw HttpError(opt.fail_status, "unavailable",
                          "test knob --fail-first: request " + std::to_string(n + 1) + " of the first " +
                              std::to_string(opt.fail_first) + " refused");
      }
      authorize(req);
      Route r = parse_route(req.target);
      switch (r.kind) {
        case Route::Kind::list: return list(req, res);
        case Route::Kind::versions: return versions(req, res, r);
        case Route::Kind::metadata: return metadata(req, res, r);
        case Route::Kind::file: return file(req, res, r);
      }
      throw HttpError(404, "not_found", "no such endpoint");
    } catch (const HttpError& e) {
      fail(res, e.status(), e.code(), e.what());
    } catch (const bus::Error& e) {
      std::string what = e.what();
      if (what.rfind("local-file: ", 0) == 0) what.erase(0, 12);  // the store's messages name the plugin
      switch (e.code()) {
        case bus::ErrorCode::not_found: fail(res, 404, "not_found", what); break;
        // Names were checked before the store saw them: what it still refuses escapes the root.
        case bus::ErrorCode::bad_request: fail(res, 404, "not_found", "no such model, version or file"); break;
        case bus::ErrorCode::unavailable:
        case bus::ErrorCode::timeout: fail(res, 503, "unavailable", what); break;
        default: fail(res, 500, "internal", what); break;
      }
    } catch (const std::exception& e) {
      fail(res, 500, "internal", e.what());
    }
    return httplib::Server::HandlerResponse::Handled;
  }

  void authorize(const httplib::Request& req) {
    if (opt.auth.kind == AuthConfig::Kind::none) return;
    std::string token = opt.auth.kind != AuthConfig::Kind::bearer ? std::string()
                        : token_file                             ? token_file->get()
                                                                 : opt.auth.bearer;
    Lookup header = [&](const std::string& n) -> std::optional<std::string> {
      if (!req.has_header(n)) return std::nullopt;
      return req.get_header_value(n);
    };
    Lookup query = [&](const std::string& n) -> std::optional<std::string> {
      if (!req.has_param(n)) return std::nullopt;
      return req.get_param_value(n);
    };
    switch (check_auth(opt.auth, token, header, query)) {
      case AuthResult::ok: return;
      case AuthResult::missing:
        throw HttpError(401, "unauthorized", "this registry requires credentials (see WWW-Authenticate)");
      case AuthResult::wrong: throw HttpError(403, "unauthorized", "the credentials were not accepted");
    }
  }

  // A JSON answer with an ETag and If-None-Match support. The tag (the SHA-256 of the body)
  // is weak: cpp-httplib compresses JSON for clients that accept gzip or br.
  httplib::Server::HandlerResponse send_json(const httplib::Request& req, httplib::Response& res,
                                             const nlohmann::json& j) {
    std::string body = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    std::string etag = "W/\"" + bus::Sha256::of(body) + "\"";
    res.set_header("ETag", etag);
    res.set_header("Cache-Control", "no-cache");
    res.set_header("Vary", "Accept-Encoding");
    if (req.has_header("If-None-Match") && etag_matches(req.get_header_value("If-None-Match"), etag)) {
      res.status = 304;
      return httplib::Server::HandlerResponse::Handled;
    }
    res.status = 200;
    res.set_content(body, "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }

  httplib::Server::HandlerResponse list(const httplib::Request& req, httplib::Response& res) {
    auto models = nlohmann::json::array();
    for (const auto& m : store.list())
      models.push_back({{"name", m.name}, {"versions", m.versions}, {"description", m.description}});
    return send_json(req, res, {{"models", std::move(models)}});
  }

  fs::path canonical_root() const {
    std::error_code ec;
    fs::path c = fs::canonical(store.options().root, ec);
    if (ec || !fs::is_directory(c, ec)) throw HttpError(404, "not_found", "the served directory does not exist");
    return c;
  }

  // Canonical path of root/rel when it exists and lies inside the root, else nullopt.
  static std::optional<fs::path> resolve(const fs::path& root, const std::string& rel) {
    std::error_code ec;
    fs::path w = fs::weakly_canonical(root / rel, ec);
    if (ec || !inside(w, root) || !fs::exists(w, ec) || ec) return std::nullopt;
    return w;
  }

  httplib::Server::HandlerResponse versions(const httplib::Request& req, httplib::Response& res, const Route& r) {
    HttpError no_model(404, "not_found", "no model '" + r.name + "'");
    if (!store.exists(r.name, "")) throw no_model;  // also refuses names inside another model's version
    fs::path root = canonical_root();
    auto dir = resolve(root, r.name);
    if (!dir) throw no_model;
    std::vector<std::string> found;
    std::error_code ec;
    for (fs::directory_iterator it(*dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string n = it->path().filename().native();
      if (bus::check_version(n)) continue;
      auto v = resolve(root, r.name + "/" + n);
      std::error_code ec2;
      if (v && fs::is_directory(*v, ec2)) found.push_back(n);
    }
    std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
      int c = bus::SemVer::parse(a)->compare(*bus::SemVer::parse(b));
      return c != 0 ? c > 0 : a > b;
    });
    return send_json(req, res, {{"name", r.name}, {"versions", found}});
  }

  httplib::Server::HandlerResponse metadata(const httplib::Request& req, httplib::Response& res, const Route& r) {
    return send_json(req, res, metadata_json(store.metadata(r.name, r.version)));
  }

  httplib::Server::HandlerResponse file(const httplib::Request& req, httplib::Response& res, const Route& r) {
    HttpError no_file(404, "not_found",
                      "model '" + r.name + "' version '" + r.version + "' has no file '" + r.file + "'");
    if (!store.exists(r.name, r.version))
      throw HttpError(404, "not_found", "no version '" + r.version + "' of model '" + r.name + "'");
    if (r.file == store.options().metadata_file) throw no_file;
    fs::path root = canonical_root();
    std::string rel = r.name + "/" + r.version + "/" + r.file;
    auto path = resolve(root, rel);
    if (!path) throw no_file;
    auto body = std::make_shared<Body>();
    body->fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (body->fd < 0) {
      int e = errno;
      if (e == ENOENT || e == ENOTDIR || e == ELOOP) throw no_file;
      throw HttpError(503, "unavailable", "cannot open '" + rel + "': " + std::strerror(e));
    }
    struct stat st {};
    if (::fstat(body->fd, &st) != 0 || !S_ISREG(st.st_mode)) throw no_file;
    // What was opened must still lie inside the root (closes the gap after resolving).
    char link[4096];
    std::string proc = "/proc/self/fd/" + std::to_string(body->fd);
    ssize_t n = ::readlink(proc.c_str(), link, sizeof link - 1);
    if (n > 0 && link[0] == '/') {
      link[n] = '\0';
      if (!inside(fs::path(link), root)) throw no_file;
    }
    auto size = static_cast<std::uint64_t>(st.st_size);
    local_file::Hashed h = store.hash_file(*path);  // cached by inode, size and mtime
    std::string etag = "\"" + h.sha256 + "\"";
    if (h.size == size) res.set_header("ETag", etag);
    res.set_header("Accept-Ranges", "bytes");
    res.set_header("Cache-Control", "no-cache");

    RangeRequest range;
    if (req.has_header("Range")) {
      range = parse_range(req.get_header_value("Range"), size);
      // If-Range: the range only applies to the representation the client already has part of.
      if (req.has_header("If-Range") && trimmed(req.get_header_value("If-Range")) != etag) range = RangeRequest{};
    }
    if (range.kind == RangeRequest::Kind::none && req.has_header("If-None-Match") &&
        etag_matches(req.get_header_value("If-None-Match"), etag)) {
      res.status = 304;
      return httplib::Server::HandlerResponse::Handled;
    }
    if (range.kind == RangeRequest::Kind::unsatisfiable) {
      fail(res, 416, "bad_request",
           "range '" + printable(req.get_header_value("Range")) + "' is not satisfiable: '" + r.file + "' has " +
               std::to_string(size) + " bytes");
      res.set_header("Content-Range", "bytes */" + std::to_string(size));
      return httplib::Server::HandlerResponse::Handled;
    }
    std::uint64_t length = size;
    if (range.kind == RangeRequest::Kind::satisfiable) {
      res.status = 206;
      res.set_header("Content-Range", content_range(range.range, size));
      body->start = range.range.first;
      length = range.range.length();
    } else {
      res.status = 200;
    }
    if (length == 0) {
      res.set_content(std::string(), "application/octet-stream");
      return httplib::Server::HandlerResponse::Handled;
    }
    body->key = rel;
    if (opt.drop_after_bytes >= 0) {
      std::lock_guard lk(dropped_mu);
      body->drop_armed = !dropped.count(rel);
    }
    res.set_content_provider(
        static_cast<std::size_t>(length), "application/octet-stream",
        [this, body](std::size_t offset, std::size_t len, httplib::DataSink& sink) {
          return pump(*body, offset, len, sink);
        },
        [body](bool) {});
    return httplib::Server::HandlerResponse::Handled;
  }

  [[noreturn]] void die() {
    RequestLog& t = tl_log;
    log("test knob --die-after-bytes: exiting abruptly after " + std::to_string(body_bytes.load()) +
        " file body bytes" + (t.req ? " (in " + printable(redact_target(t.req->target)) + ")" : ""));
    std::fflush(stderr);
    ::_exit(1);
  }

  // Sends the next piece of a file body: at most `len` bytes from `offset` (relative to the
  // body). Returning false closes the connection.
  bool pump(Body& b, std::size_t offset, std::size_t len, httplib::DataSink& sink) {
    auto drop_at = static_cast<std::uint64_t>(std::max<std::int64_t>(opt.drop_after_bytes, 0));
    auto die_at = static_cast<std::uint64_t>(std::max<std::int64_t>(opt.die_after_bytes, 0));
    auto drop = [&] {
      {
        std::lock_guard lk(dropped_mu);
        dropped.insert(b.key);
      }
      tl_log.note = "connection dropped after " + std::to_string(b.sent) + " body bytes by --drop-after-bytes";
      return false;
    };
    if (b.drop_armed && b.sent >= drop_at) return drop();
    std::uint64_t want = std::min<std::uint64_t>(len, kChunk);
    if (opt.throttle > 0) want = std::min<std::uint64_t>(want, std::max<std::uint64_t>(opt.throttle / 10, 1));
    if (b.drop_armed) want = std::min<std::uint64_t>(want, drop_at - b.sent);
    if (opt.die_after_bytes >= 0) {
      std::uint64_t done = body_bytes.load();
      if (done >= die_at) die();
      want = std::min<std::uint64_t>(want, die_at - done);
    }
    ssize_t n;
    do {
      n = ::pread(b.fd, b.buf.get(), static_cast<std::size_t>(want), static_cast<off_t>(b.start + offset));
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      tl_log.note = n == 0 ? "file shrank while being sent" : std::string("read error: ") + std::strerror(errno);
      return false;
    }
    if (opt.throttle > 0) {
      if (!b.started) {
        b.started = true;
        b.t0 = Clock::now();
      }
      auto due = b.t0 + std::chrono::duration_cast<Clock::duration>(
                            std::chrono::duration<double>(static_cast<double>(b.sent) / static_cast<double>(opt.throttle)));
      std::this_thread::sleep_until(due);
    }
    if (!sink.write(b.buf.get(), static_cast<std::size_t>(n))) {
      tl_log.note = "client went away";
      return false;
    }
    b.sent += static_cast<std::uint64_t>(n);
    tl_log.bytes += static_cast<std::uint64_t>(n);
    std::uint64_t total = body_bytes.fetch_add(static_cast<std::uint64_t>(n)) + static_cast<std::uint64_t>(n);
    if (opt.die_after_bytes >= 0 && total >= die_at) die();
    if (b.drop_armed && b.sent >= drop_at && static_cast<std::size_t>(n) < len) return drop();  // more was due
    return true;
  }

  ServerOptions opt;
  local_file::Store store;
  std::unique_ptr<TokenFile> token_file;
  httplib::Server svr;
  std::mutex log_mu;
  std::atomic<std::uint64_t> requests{0};
  std::atomic<std::uint64_t> body_bytes{0};
  std::mutex dropped_mu;
  std::set<std::string> dropped;
};

Server::Server(ServerOptions options) {
  // A client that goes away mid-body must not kill the server: cpp-httplib sends with flags 0.
  std::signal(SIGPIPE, SIG_IGN);
  impl_ = std::make_unique<Impl>(std::move(options));
}

Server::~Server() = default;

int Server::bind() {
  auto& o = impl_->opt;
  int port = o.port == 0 ? impl_->svr.bind_to_any_port(o.host) : (impl_->svr.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port <= 0)
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (address in use, or not an address of this host?)");
  return port;
}

bool Server::serve() { return impl_->svr.listen_after_bind(); }

void Server::stop() { impl_->svr.stop(); }

}  // namespace modelzoo::plugins::http_registry
