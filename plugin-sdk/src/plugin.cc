// Implementation of the C++ plugin SDK (docs/protocol.md: "Plugin session", "Requests",
// "Downloads"). Threads: the main loop owns the DEALER socket and is the only thread that
// talks to the daemon; it sends heartbeats, so a wedged main loop is noticed. Requests run
// on a small worker pool, downloads on a thread each; they hand finished frames to the
// main loop through an inproc PUSH/PULL pipe.
#include "modelzoo/plugin.h"

#include "modelzoo/extension.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "modelzoo/bus/curve.h"
#include "modelzoo/bus/socket.h"

#if defined(__SANITIZE_THREAD__)
#define MODELZOO_SDK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MODELZOO_SDK_TSAN 1
#endif
#endif
#ifdef MODELZOO_SDK_TSAN
extern "C" {
void __tsan_read_range(void* addr, unsigned long size);
void __tsan_ignore_thread_begin();
void __tsan_ignore_thread_end();
}
#endif

namespace modelzoo::sdk {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kOutEndpoint = "inproc://modelzoo-sdk-out";
constexpr std::size_t kPoolThreads = 4;
constexpr std::size_t kMaxDownloads = 16;
constexpr std::uint32_t kDefaultCredit = 8;
constexpr std::size_t kDefaultChunk = 1u << 20;

volatile std::sig_atomic_t g_stop_signal = 0;
void on_signal(int sig) { g_stop_signal = sig; }

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// A frame for the daemon, copied from `data`. Its buffer is written here and read next by
// libzmq's I/O thread when it writes the frame to the daemon's socket. libzmq hands frames
// between threads with atomics ThreadSanitizer cannot see (it is not instrumented), so under
// TSan that read raced with these writes on every 8 bytes of the frame: one (suppressed,
// race:libzmq.so) report per word, each compared with every address reported before. A
// 1 MiB chunk kept the I/O thread inside send() for tens of seconds, and with it the
// whole DEALER connection stalled: chunks, replies and heartbeats both ways ("daemon
// silent", "missed 3 heartbeats"). So under TSan the copy into the fresh buffer is not
// recorded (its allocation then starts with clean shadow memory); reading the caller's
// buffer still is. The buffer belongs to libzmq from here on: no SDK code touches it again.
// (The plain build is unaffected: this is the cost of reporting, not a race.)
zmq::message_t outgoing_frame(const void* data, std::size_t size) {
#ifdef MODELZOO_SDK_TSAN
  __tsan_read_range(const_cast<void*>(data), size);
  struct Unrecorded {
    Unrecorded() { __tsan_ignore_thread_begin(); }
    ~Unrecorded() { __tsan_ignore_thread_end(); }
    Unrecorded(const Unrecorded&) = delete;
    Unrecorded& operator=(const Unrecorded&) = delete;
  };
  Unrecorded unrecorded;  // ended even when the allocation throws
#endif
  return zmq::message_t(data, size);
}

// Frames a worker wants sent, pushed as one multipart message over inproc.
void push_message(zmq::socket_t& push, bus::Message& m) {
  std::string env = bus::encode_envelope(m);
  zmq::message_t head = outgoing_frame(env.data(), env.size());
  if (m.type == bus::MessageType::chunk) {
    push.send(head, zmq::send_flags::sndmore);
    push.send(m.data, zmq::send_flags::none);
  } else {
    push.send(head, zmq::send_flags::none);
  }
}

bus::Message error_from_exception(std::uint64_t id) {
  try {
    throw;
  } catch (const bus::Error& e) {
    return bus::Message::make_error(id, e.code(), e.what());
  } catch (const std::exception& e) {
    return bus::Message::make_error(id, ErrorCode::internal, e.what());
  } catch (...) {
    return bus::Message::make_error(id, ErrorCode::internal, "unknown exception in handler");
  }
}

std::string require_string(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string())
    throw Error(ErrorCode::bad_request, std::string("request lacks string parameter '") + key + "'");
  return it->get<std::string>();
}

std::string optional_version(const json& body) {
  auto it = body.find("version");
  if (it == body.end() || it->is_null()) return {};
  if (!it->is_string()) throw Error(ErrorCode::bad_request, "parameter 'version' is not a string");
  std::string v = it->get<std::string>();
  if (!v.empty())
    if (auto why = bus::check_version(v)) throw Error(ErrorCode::bad_request, *why);
  return v;
}

std::string model_name(const json& body) {
  std::string name = require_string(body, "name");
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, *why);
  return name;
}

std::uint64_t optional_uint(const json& body, const char* key, std::uint64_t def, std::uint64_t lo,
                            std::uint64_t hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_number_unsigned())
    throw Error(ErrorCode::bad_request, std::string("parameter '") + key + "' is not a non-negative integer");
  auto v = it->get<std::uint64_t>();
  if (v < lo || v > hi)
    throw Error(ErrorCode::bad_request, std::string("parameter '") + key + "' is out of range [" +
                                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

// Flow-control state of one download, shared by its thread and the main loop.
struct DownloadState {
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t credit = 0;
  bool cancelled = false;
};

class Session;

class SinkImpl final : public ChunkSink {
 public:
  SinkImpl(Session& s, zmq::socket_t& push, std::uint64_t id, std::shared_ptr<DownloadState> st,
           std::size_t chunk, std::chrono::milliseconds idle, std::uint64_t offset)
      : session_(s), push_(push), id_(id), state_(std::move(st)), chunk_(chunk), idle_(idle), offset_(offset) {}

  void write(const void* data, std::size_t size) override;
  std::size_t chunk_size() const override { return chunk_; }
  std::uint64_t sent() const { return sent_; }

 private:
  Session& session_;
  zmq::socket_t& push_;
  std::uint64_t id_;
  std::shared_ptr<DownloadState> state_;
  std::size_t chunk_;
  std::chrono::milliseconds idle_;
  std::uint64_t offset_;
  std::uint64_t sent_ = 0;
};

class Session {
 public:
  // Exactly one of `registry` and `extension` is set. `hello` holds what the plugin says
  // about itself; handshake() adds the protocol, plugin id, token and pid.
  Session(Registry* registry, Extension* extension, bus::Hello hello, bool inline_requests)
      : registry_(registry),
        extension_(extension),
        hello_(std::move(hello)),
        inline_requests_(inline_requests),
        ctx_(1) {}

  int run();
  bool stopping() const { return stopping_.load(); }

 private:
  struct Task {
    bus::Message request;
    Clock::time_point deadline;
  };

  bool handshake();
  zmq::socket_t out_socket();
  void main_loop();
  void on_message(bus::Message& m);
  void start_download(bus::Message& m);
  void worker();
  bus::Message handle(const bus::Message& req, Clock::time_point deadline);
  void shutdown_threads();
  void configure();
  bool wait_configured();

  Registry* registry_;
  Extension* extension_;
  bus::Hello hello_;
  bool inline_requests_;
  zmq::context_t ctx_;
  std::unique_ptr<zmq::socket_t> dealer_;
  std::unique_ptr<zmq::socket_t> pull_;
  std::chrono::milliseconds heartbeat_{1000};
  int liveness_ = 3;
  std::atomic<bool> stopping_{false};
  int exit_code_ = 0;
  json config_;
  bool configured_ = false;        // guarded by mu_: configure() returned; requests may run
  std::string config_error_;       // guarded by mu_: configure() threw this

  std::mutex mu_;  // guards tasks_, downloads_, running_
  std::condition_variable cv_;
  std::deque<Task> tasks_;
  std::map<std::uint64_t, std::shared_ptr<DownloadState>> downloads_;
  std::size_t running_ = 0;  // threads still inside a handler or download
  std::vector<std::thread> threads_;

  friend class SinkImpl;
};

void SinkImpl::write(const void* data, std::size_t size) {
  auto p = static_cast<const char*>(data);
  while (size > 0) {
    {
      std::unique_lock lk(state_->mu);
      bool ok = state_->cv.wait_for(lk, idle_, [&] {
        return state_->credit > 0 || state_->cancelled || session_.stopping();
      });
      if (state_->cancelled) throw Error(ErrorCode::unavailable, "download cancelled by the daemon");
      if (session_.stopping()) throw Error(ErrorCode::unavailable, "plugin is stopping");
      if (!ok) throw Error(ErrorCode::timeout, "no credit from the daemon within the stall timeout");
      --state_->credit;
    }
    std::size_t n = std::min(size, chunk_);
    bus::Message m = bus::Message::make(bus::MessageType::chunk, {{"offset", offset_ + sent_}});
    m.id = id_;
    m.data = outgoing_frame(p, n);
    push_message(push_, m);
    p += n;
    size -= n;
    sent_ += n;
  }
}

bool Session::handshake() {
  hello_.protocol = {bus::kProtocolVersion};
  hello_.plugin_id = env_or_empty("MODELZOO_PLUGIN_ID");
  hello_.token = env_or_empty("MODELZOO_TOKEN");
  hello_.pid = static_cast<std::int64_t>(::getpid());
  auto m = bus::Message::make(bus::MessageType::hello, hello_.to_json());
  bus::send(*dealer_, m);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline && !g_stop_signal) {
    std::optional<bus::Received> r;
    try {
      r = bus::receive_for(*dealer_, false, std::chrono::milliseconds(100));
    } catch (const bus::ProtocolError& e) {
      log("error", std::string("invalid message from the daemon during handshake: ") + e.what());
      continue;
    }
    if (!r) continue;
    auto& msg = r->message;
    if (msg.type == bus::MessageType::reject) {
      log("error", "daemon rejected the hello: " + std::string(bus::to_string(*msg.error_code)) + ": " +
                       msg.error_message);
      exit_code_ = 3;
      return false;
    }
    if (msg.type != bus::MessageType::welcome) continue;
    const auto& b = msg.body;
    if (bus::get_int(b, "protocol") != bus::kProtocolVersion) {
      log("error", "daemon chose a protocol version this SDK does not speak");
      exit_code_ = 3;
      return false;
    }
    heartbeat_ = std::chrono::milliseconds(std::clamp<std::uint64_t>(bus::get_uint(b, "heartbeat_ms").value_or(1000), 10, 600000));
    liveness_ = static_cast<int>(std::clamp<std::uint64_t>(bus::get_uint(b, "heartbeat_liveness").value_or(3), 2, 100));
    config_ = b.contains("config") && b["config"].is_object() ? b["config"] : json::object();
    return true;
  }
  log("error", g_stop_signal ? "stopped by signal during handshake" : "no welcome from the daemon within 10 s");
  exit_code_ = g_stop_signal ? 0 : 3;
  return false;
}

bus::Message Session::handle(const bus::Message& req, Clock::time_point deadline) {
  const json& b = req.body;
  if (extension_) {
    if (req.method != "hook") throw Error(ErrorCode::bad_request, "unknown method '" + req.method + "'");
    return bus::Message::make_reply(req.id, extension_->hook(parse_hook_request(b, deadline)).to_json());
  }
  if (req.method == "metadata") {
    // Packed straight from the struct: no JSON tree on the hot path (docs/architecture.md).
    return bus::Message::make_raw_reply(req.id, registry_->metadata(model_name(b), optional_version(b)).to_msgpack());
  }
  if (req.method == "exists") {
    return bus::Message::make_reply(req.id, {{"exists", registry_->exists(model_name(b), optional_version(b))}});
  }
  if (req.method == "list") {
    auto models = json::array();
    for (const auto& s : registry_->list()) models.push_back(s.to_json());
    return bus::Message::make_reply(req.id, {{"models", models}});
  }
  throw Error(ErrorCode::bad_request, "unknown method '" + req.method + "'");
}

// Runs the author's configure() off the main loop, so heartbeats keep flowing however
// long it takes (hashing large files, say). Requests wait for it in wait_configured().
void Session::configure() {
  std::string error;
  try {
    if (registry_) registry_->configure(config_);
    else extension_->configure(config_);
  } catch (const std::exception& e) {
    error = e.what()[0] ? e.what() : "configure() failed";
  } catch (...) {
    error = "configure() threw a non-standard exception";
  }
  std::lock_guard lk(mu_);
  if (error.empty()) configured_ = true;
  else config_error_ = error;
  cv_.notify_all();
}

bool Session::wait_configured() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return configured_ || stopping_; });
  return configured_ && !stopping_;
}

// A thread's PUSH socket to the main loop. Linger plays no part in inproc delivery: what a
// thread pushed before closing its socket stays queued for the PULL end, which reads it
// before it sees the pipe end; 0 keeps shutdown from waiting on anything.
zmq::socket_t Session::out_socket() {
  zmq::socket_t push(ctx_, zmq::socket_type::push);
  push.set(zmq::sockopt::linger, 0);
  push.connect(kOutEndpoint);
  return push;
}

void Session::worker() {
  zmq::socket_t push = out_socket();
  while (true) {
    Task t;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return (configured_ && !tasks_.empty()) || stopping_; });
      if (stopping_) return;
      t = std::move(tasks_.front());
      tasks_.pop_front();
      ++running_;
    }
    bus::Message out;
    if (Clock::now() > t.deadline) {
      out = bus::Message::make_error(t.request.id, ErrorCode::timeout, "deadline passed before the request started");
    } else {
      try {
        out = handle(t.request, t.deadline);
      } catch (...) {
        out = error_from_exception(t.request.id);
      }
    }
    push_message(push, out);
    std::lock_guard lk(mu_);
    --running_;
    cv_.notify_all();
  }
}

void Session::start_download(bus::Message& m) {
  DownloadRequest req;
  std::size_t chunk;
  std::uint64_t credit;
  try {
    req.name = model_name(m.body);
    req.version = require_string(m.body, "version");
    if (auto why = bus::check_version(req.version)) throw Error(ErrorCode::bad_request, *why);
    req.file = require_string(m.body, "file");
    if (auto why = bus::check_file_name(req.file)) throw Error(ErrorCode::bad_request, *why);
    req.offset = optional_uint(m.body, "offset", 0, 0, UINT64_MAX);
    credit = optional_uint(m.body, "credit", kDefaultCredit, 1, 1024);
    chunk = optional_uint(m.body, "chunk_size", kDefaultChunk, 4096, bus::kMaxDataBytes);
  } catch (...) {
    auto err = error_from_exception(m.id);
    bus::send(*dealer_, err);
    return;
  }
  auto st = std::make_shared<DownloadState>();
  st->credit = credit;
  {
    std::lock_guard lk(mu_);
    if (downloads_.size() >= kMaxDownloads || downloads_.count(m.id)) {
      auto err = bus::Message::make_error(m.id, ErrorCode::unavailable,
                                          downloads_.count(m.id) ? "download id already in use" : "too many downloads at once");
      bus::send(*dealer_, err);
      return;
    }
    downloads_[m.id] = st;
    ++running_;
  }
  auto idle = std::chrono::milliseconds(m.timeout_ms ? m.timeout_ms : 60000);
  std::uint64_t id = m.id;
  threads_.emplace_back([this, req, st, chunk, idle, id] {
    zmq::socket_t push = out_socket();
    SinkImpl sink(*this, push, id, st, chunk, idle, req.offset);
    bus::Message out;
    try {
      if (!wait_configured()) throw Error(ErrorCode::unavailable, "plugin is stopping");
      registry_->download(req, sink);
      out = bus::Message::make_reply(id, {{"offset", req.offset}, {"size", sink.sent()}});
    } catch (...) {
      out = error_from_exception(id);
    }
    if (!st->cancelled) push_message(push, out);
    std::lock_guard lk(mu_);
    downloads_.erase(id);
    --running_;
    cv_.notify_all();
  });
}

void Session::on_message(bus::Message& m) {
  switch (m.type) {
    case bus::MessageType::request: {
      if (stopping_) {
        auto err = bus::Message::make_error(m.id, ErrorCode::unavailable, "plugin is stopping");
        bus::send(*dealer_, err);
        return;
      }
      if (m.method == "download" && registry_) {
        start_download(m);
        return;
      }
      auto deadline = m.timeout_ms ? Clock::now() + std::chrono::milliseconds(m.timeout_ms) : Clock::time_point::max();
      std::unique_lock lk(mu_);
      if (inline_requests_ && configured_) {
        lk.unlock();
        bus::Message out;
        try {
          out = handle(m, deadline);
        } catch (...) {
          out = error_from_exception(m.id);
        }
        bus::send(*dealer_, out);
        return;
      }
      tasks_.push_back({std::move(m), deadline});
      cv_.notify_one();
      return;
    }
    case bus::MessageType::credit:
    case bus::MessageType::cancel: {
      std::shared_ptr<DownloadState> st;
      {
        std::lock_guard lk(mu_);
        auto it = downloads_.find(m.id);
        if (it == downloads_.end()) return;  // finished already: nothing to do
        st = it->second;
      }
      std::lock_guard lk(st->mu);
      if (m.type == bus::MessageType::cancel) st->cancelled = true;
      else st->credit += std::min<std::uint64_t>(bus::get_uint(m.body, "chunks").value_or(0), 1024);
      st->cv.notify_all();
      return;
    }
    case bus::MessageType::goodbye:
      log("info", "daemon asked the plugin to stop");
      stopping_ = true;
      return;
    default:
      return;  // heartbeats only refresh liveness; anything else is ignored
  }
}

void Session::main_loop() {
  auto last_heard = Clock::now();
  auto next_beat = Clock::now() + heartbeat_;
  const auto silence_limit = heartbeat_ * liveness_;
  while (!stopping_) {
    if (g_stop_signal) {
      log("info", "stopping on signal " + std::to_string(static_cast<int>(g_stop_signal)));
      break;
    }
    {
      std::lock_guard lk(mu_);
      if (!config_error_.empty()) {
        log("error", "configuration rejected: " + config_error_);
        exit_code_ = 1;
        break;
      }
    }
    zmq::pollitem_t items[] = {{dealer_->handle(), 0, ZMQ_POLLIN, 0}, {pull_->handle(), 0, ZMQ_POLLIN, 0}};
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_beat - Clock::now());
    zmq::poll(items, 2, std::clamp(wait, std::chrono::milliseconds(0), heartbeat_));
    auto now = Clock::now();
    if (items[0].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 256; ++i) {  // drain a batch, then let the other work run
        std::optional<bus::Received> r;
        try {
          r = bus::receive(*dealer_, false);
        } catch (const bus::ProtocolError& e) {
          log("warn", std::string("dropped an invalid message from the daemon: ") + e.what());
          last_heard = now;
          continue;
        }
        if (!r) break;
        last_heard = now;
        on_message(r->message);
      }
    }
    if (items[1].revents & ZMQ_POLLIN) {
      for (int i = 0; i < 256; ++i) {
        std::vector<zmq::message_t> frames;
        zmq::message_t f;
        if (!pull_->recv(f, zmq::recv_flags::dontwait)) break;
        bool more = f.more();
        frames.push_back(std::move(f));
        while (more) {
          zmq::message_t g;
          (void)pull_->recv(g);
          more = g.more();
          frames.push_back(std::move(g));
        }
        for (std::size_t k = 0; k < frames.size(); ++k)
          dealer_->send(frames[k], k + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
    }
    if (now >= next_beat) {
      auto hb = bus::Message::make(bus::MessageType::heartbeat);
      bus::send(*dealer_, hb);
      next_beat = now + heartbeat_;
    }
    if (now - last_heard > silence_limit) {
      log("error", "daemon silent for " +
                       std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard).count()) +
                       " ms; exiting");
      exit_code_ = 4;
      break;
    }
  }
}

void Session::shutdown_threads() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& [id, st] : downloads_) {
      std::lock_guard l2(st->mu);
      st->cancelled = true;
      st->cv.notify_all();
    }
  }
  cv_.notify_all();
  std::unique_lock lk(mu_);
  bool idle = cv_.wait_for(lk, std::chrono::seconds(2), [&] { return running_ == 0; });
  lk.unlock();
  if (!idle) {
    // A handler is stuck in user code; it cannot be interrupted safely. Leave at once
    // rather than hang: the daemon treats us as exited either way.
    log("warn", "a handler did not finish within 2 s of shutdown; exiting without it");
    std::fflush(stderr);
    std::_Exit(exit_code_);
  }
  for (auto& t : threads_) t.join();
}

int Session::run() {
  std::string endpoint = env_or_empty("MODELZOO_ENDPOINT");
  if (endpoint.empty()) {
    log("error", "MODELZOO_ENDPOINT is not set: this program is a modelzoo plugin and is started by modelzood "
                 "(or by `modelzoo plugin test`)");
    return 2;
  }
  dealer_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  bus::configure_socket(*dealer_);
  // A plugin on another host (docs/security.md, "Remote peers over TCP"): CURVE, with the
  // daemon's public key and this plugin's own key pair.
  if (std::string server_key = env_or_empty("MODELZOO_SERVER_KEY"); !server_key.empty()) {
    try {
      std::string key_file = env_or_empty("MODELZOO_KEY_FILE");
      if (key_file.empty()) throw bus::KeyError("MODELZOO_KEY_FILE (this plugin's key pair) is not set");
      bus::make_curve_client(*dealer_, server_key, bus::read_key_file(key_file));
    } catch (const bus::KeyError& e) {
      log("error", std::string("MODELZOO_SERVER_KEY is set but CURVE cannot be used: ") + e.what());
      return 2;
    }
  }
  dealer_->connect(endpoint);
  pull_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pull);
  pull_->set(zmq::sockopt::linger, 0);
  pull_->bind(kOutEndpoint);

  if (handshake()) {
    {
      std::lock_guard lk(mu_);
      ++running_;  // the configure thread counts as running until it returns
    }
    threads_.emplace_back([this] {
      configure();
      std::lock_guard lk(mu_);
      --running_;
      cv_.notify_all();
    });
    for (std::size_t i = 0; i < kPoolThreads; ++i) threads_.emplace_back([this] { worker(); });
    main_loop();
    std::string reason = exit_code_ == 1 ? "configuration rejected: " + config_error_ : "plugin stopping";
    auto bye = bus::Message::make(bus::MessageType::goodbye, {{"reason", reason}});
    bus::send(*dealer_, bye);
    shutdown_threads();
  }
  pull_.reset();
  dealer_.reset();
  return exit_code_;
}

}  // namespace

bool Registry::exists(const std::string& name, const std::string& version) {
  try {
    metadata(name, version);
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) return false;
    throw;
  }
}

void log(const char* level, const std::string& message) {
  // One write per line so lines from several threads never interleave.
  std::string line = std::string(level) + " " + message + "\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
}

namespace {
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// What every plugin of `kind` says about itself (bus/hello.h); the session adds who it is.
bus::Hello hello_of(const char* kind, const std::string& name, const std::string& version,
                    const std::vector<std::string>& handles) {
  bus::Hello h;
  h.name = name;
  h.version = version;
  h.kind = kind;
  h.capabilities = bus::default_capabilities(kind);
  h.handles = handles;
  return h;
}
}  // namespace

int run(Registry& registry, const PluginInfo& info, int argc, char** argv) {
  (void)argc;
  (void)argv;
  install_signal_handlers();
  bus::Hello hello = hello_of(bus::kRegistryKind, info.name, info.version, info.handles);
  hello.priority = info.priority;
  Session s(&registry, nullptr, std::move(hello), info.inline_requests);
  return s.run();
}

int run(Extension& extension, const ExtensionInfo& info, int argc, char** argv) {
  (void)argc;
  (void)argv;
  install_signal_handlers();
  bus::Hello hello = hello_of(bus::kExtensionKind, info.name, info.version, info.handles);
  hello.points = info.points;
  hello.formats = info.formats;
  hello.order = info.order;
  Session s(nullptr, &extension, std::move(hello), false);
  return s.run();
}

std::string file_format(const std::string& file_name) { return bus::file_format(file_name); }

HookRequest parse_hook_request(const json& body, Clock::time_point deadline) {
  HookRequest r;
  r.body = body;
  r.deadline = deadline;
  r.point = require_string(body, "point");
  if (!bus::is_extension_point(r.point))
    throw Error(ErrorCode::bad_request, "unknown extension point '" + r.point.substr(0, 64) + "'");
  r.name = model_name(body);
  r.version = optional_version(body);
  if (auto it = body.find("metadata"); it != body.end() && it->is_object()) r.metadata = *it;
  if (auto it = body.find("files"); it != body.end()) {
    if (!it->is_array()) throw Error(ErrorCode::bad_request, "parameter 'files' is not an array");
    for (const auto& f : *it) {
      if (!f.is_object()) throw Error(ErrorCode::bad_request, "an entry of 'files' is not a map");
      HookFile hf;
      hf.name = require_string(f, "name");
      if (auto why = bus::check_file_name(hf.name)) throw Error(ErrorCode::bad_request, *why);
      if (f.contains("path")) hf.path = require_string(f, "path");
      hf.size = optional_uint(f, "size", 0, 0, UINT64_MAX);
      if (auto s = f.find("sha256"); s != f.end() && s->is_string()) hf.sha256 = s->get<std::string>();
      hf.format = file_format(hf.name);
      r.files.push_back(std::move(hf));
    }
  }
  if (auto it = body.find("output_dir"); it != body.end() && it->is_string()) r.output_dir = it->get<std::string>();
  return r;
}

json HookResult::to_json() const {
  json j = {{"action", action}};
  if (!message.empty()) j["message"] = message;
  if (action == "reject") j["reason"] = reason;
  if (action == "replace") {
    j["files"] = json::array();
    for (const auto& f : files) j["files"].push_back({{"name", f.name}, {"path", f.path.string()}});
  }
  if (action == "rewrite") {
    j["name"] = name;
    j["version"] = version;
  }
  return j;
}

}  // namespace modelzoo::sdk
