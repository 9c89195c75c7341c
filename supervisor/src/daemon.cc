#include "daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <spdlog/spdlog.h>

#include "modelzoo/bus/socket.h"
#include "modelzoo/core/events.h"
#include "client_front.h"
#include "event_publisher.h"
#include "plugin_calls.h"
#include "pull_engine.h"
#include "remote_access.h"
#include "sources.h"
#include "timers.h"

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using bus::Error;
using bus::ErrorCode;
using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

// True when something accepts connections on the unix socket `path`.
bool socket_alive(const fs::path& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool alive = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return alive;
}

}  // namespace

// The daemon itself: the runtime directory, the sockets, signals, timers, the poll loop and
// shutdown, and the wiring of its parts (docs/architecture.md, "The daemon's parts"):
// Sources (plugins.sock, the plugin processes), PluginCalls (the calls outstanding to
// them), ClientFront (client.sock) and the PullEngine.
struct Daemon::Impl : core::EventSink {
  DaemonConfig cfg;
  // Two I/O threads: the event socket has one of its own (ZMQ_AFFINITY in bind_sockets), and
  // a thread of its own (EventPublisher), so a subscriber flooding subscriptions keeps busy
  // that I/O thread and that thread only, never the loop or the plugin and client traffic
  // (docs/reliability.md, "Floods").
  zmq::context_t ctx{2};
  zmq::socket_t plugin_sock{ctx, zmq::socket_type::router};
  zmq::socket_t client_sock{ctx, zmq::socket_type::router};
  EventPublisher events{ctx, 20000};
  std::unique_ptr<RemoteAccess> remote;  // TCP endpoints with CURVE + ZAP; null without `listen`
  int signal_fd = -1;
  int lock_fd = -1;
  bool stop = false;
  Clock::time_point started_at = Clock::now();

  Timers timers;
  // Sources sends through the calls, and the calls through Sources: the calls get a
  // function that reaches `sources`, which is built right after them.
  PluginCalls calls{[this](const std::string& source, bus::Message& m) { return sources.send(source, m); }};
  Sources sources{cfg, plugin_sock, calls, timers, *this};
  ClientFront front{cfg, client_sock, sources, calls, [this] { return status(); }};
  // Declared after `calls` and `timers`, whose callbacks may hold its transfers: it is
  // destroyed first, so its disk threads finish before any writer they use goes.
  std::unique_ptr<PullEngine> engine;

  explicit Impl(DaemonConfig c) : cfg(std::move(c)) {}

  void publish(const std::string& topic, json body) override { events.publish(topic, std::move(body)); }

  // ---------------------------------------------------------------- setup
  void prepare_runtime_dir() {
    const fs::path& dir = cfg.runtime_dir;
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    ::mkdir(dir.c_str(), 0700);  // created private; an existing one is checked below
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw std::runtime_error("runtime directory " + dir.string() + " cannot be created or is not a directory");
    if (st.st_uid != ::getuid())
      throw std::runtime_error("runtime directory " + dir.string() + " belongs to another user");
    ::chmod(dir.c_str(), 0700);
    // One daemon per runtime directory: the lock is held for the daemon's life. The
    // directory is local (XDG_RUNTIME_DIR or /tmp), where flock is reliable.
    fs::path lock = dir / "modelzood.lock";
    lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
      throw std::runtime_error("another modelzood is running with runtime directory " + dir.string());
    std::string pid = std::to_string(::getpid()) + "\n";
    (void)!::ftruncate(lock_fd, 0);
    (void)!::write(lock_fd, pid.data(), pid.size());
    for (const char* name : {"plugins.sock", "client.sock", "events.sock"}) {
      fs::path p = dir / name;
      if (socket_alive(p)) throw std::runtime_error("a process already listens on " + p.string());
      fs::remove(p, ec);
    }
  }

  void bind_sockets() {
    for (auto* s : {&plugin_sock, &client_sock}) {
      bus::configure_socket(*s);
      s->set(zmq::sockopt::affinity, std::uint64_t{1});  // I/O thread 0
    }
    events.socket().set(zmq::sockopt::affinity, std::uint64_t{2});  // I/O thread 1
    // Sockets are created 0700 (umask 077) rather than chmod'ed after the fact: no window.
    mode_t old = ::umask(0077);
    plugin_sock.bind("ipc://" + (cfg.runtime_dir / "plugins.sock").string());
    client_sock.bind("ipc://" + (cfg.runtime_dir / "client.sock").string());
    events.socket().bind("ipc://" + (cfg.runtime_dir / "events.sock").string());
    ::umask(old);
    if (!cfg.listen.any()) return;
    // TCP endpoints come after the ipc ones: libzmq takes a socket's options at bind, so the
    // ipc endpoints keep the NULL mechanism and the TCP ones are CURVE servers.
    remote = std::make_unique<RemoteAccess>(ctx, cfg.listen, [this](const std::string& t, json b) { publish(t, std::move(b)); });
    sources.set_remote(remote.get());
    if (!cfg.listen.plugins.empty()) remote->listen(plugin_sock, cfg.listen.plugins, RemoteAccess::Domain::plugins);
    if (!cfg.listen.clients.empty()) remote->listen(client_sock, cfg.listen.clients, RemoteAccess::Domain::clients);
    if (!cfg.listen.events.empty()) remote->listen(events.socket(), cfg.listen.events, RemoteAccess::Domain::events);
  }

  void setup_signals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &set, nullptr);
    signal_fd = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGXFSZ, SIG_IGN);  // a file-size limit is an EFBIG write error, not death
  }

  // The daemon's part of the `status` reply; the client front adds the plugins and requests.
  json status() {
    return {{"version", MODELZOO_VERSION},
            {"protocol", bus::kProtocolVersion},
            {"pid", ::getpid()},
            {"uptime_ms", duration_cast<milliseconds>(Clock::now() - started_at).count()},
            {"runtime_dir", cfg.runtime_dir.string()},
            {"cache_dir", cfg.cache_dir.string()},
            {"offline", cfg.offline},
            {"config_file", cfg.config_file.string()},
            {"events", {{"dropped", events.dropped()}, {"subscriptions_read", events.subscriptions()}}},
            {"listen", remote ? remote->status() : json(nullptr)}};
  }

  // ---------------------------------------------------------------- timers
  void on_timers() {
    auto now = Clock::now();
    timers.fire_due(now);
    sources.on_tick(now);
    calls.expire(now);
  }

  milliseconds next_wakeup() const {
    auto now = Clock::now();
    auto next = sources.next_tick();
    if (auto d = calls.next_deadline()) next = std::min(next, *d);
    if (auto t = timers.next()) next = std::min(next, *t);
    auto d = duration_cast<milliseconds>(next - now) + milliseconds(1);
    return std::clamp(d, milliseconds(0), milliseconds(200));
  }

  // ---------------------------------------------------------------- main loop
  void loop() {
    while (!stop) {
      const int config_fd = sources.config_watch_fd();
      std::vector<zmq::pollitem_t> items = {{plugin_sock.handle(), 0, ZMQ_POLLIN, 0},
                                            {client_sock.handle(), 0, ZMQ_POLLIN, 0},
                                            {nullptr, signal_fd, ZMQ_POLLIN, 0},
                                            {nullptr, engine->disk_fd(), ZMQ_POLLIN, 0},
                                            {nullptr, engine->background_fd(), ZMQ_POLLIN, 0},
                                            {nullptr, config_fd, static_cast<short>(config_fd >= 0 ? ZMQ_POLLIN : 0), 0}};
      constexpr std::size_t kRemote = 6;
      std::vector<zmq::socket_t*> remote_socks = remote ? remote->sockets() : std::vector<zmq::socket_t*>{};
      for (auto* rs : remote_socks) items.push_back({rs->handle(), 0, ZMQ_POLLIN, 0});
      sources.add_process_items(items);
      auto timeout = calls.has_deferred() ? milliseconds(0) : next_wakeup();
      zmq::poll(items.data(), items.size(), timeout);
      if (items[2].revents & ZMQ_POLLIN) on_signal();
      if (items[3].revents & ZMQ_POLLIN) engine->on_disk_writes();
      if (items[4].revents & ZMQ_POLLIN) engine->on_background();
      if (items[5].revents & ZMQ_POLLIN) sources.on_config_dir_event();
      for (std::size_t i = 0; i < remote_socks.size(); ++i)
        if (items[kRemote + i].revents & ZMQ_POLLIN) remote->on_readable(i);
      sources.on_process_events(items);
      if (items[0].revents & ZMQ_POLLIN) sources.read_socket();
      if (items[1].revents & ZMQ_POLLIN) front.read_socket();
      on_timers();
      // Callbacks deferred by calls that could not be sent: those queued so far (new ones
      // wait a round).
      calls.run_deferred();
      sources.collect_retired();
    }
  }

  void on_signal() {
    signalfd_siginfo si{};
    while (::read(signal_fd, &si, sizeof si) == sizeof si) {
      if (si.ssi_signo == SIGHUP) {
        sources.reload("SIGHUP", true);
        continue;
      }
      spdlog::info("{}: stopping", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
      stop = true;
      sources.begin_stop();
    }
  }

  // Graceful stop: the plugins (sources.stop_all), then every client still waiting.
  void shutdown() {
    publish(core::topic::kDaemonStopping, {{"pid", ::getpid()}});
    sources.stop_all();
    engine->abort_all(Error(ErrorCode::unavailable, "daemon stopping"));
  }

  int run() {
    prepare_runtime_dir();
    setup_signals();
    bind_sockets();
    events.start();
    engine = std::make_unique<PullEngine>(cfg, sources, calls, front, timers, *this);
    front.set_engine(engine.get());
    if (auto n = engine->removed_partials())
      spdlog::info("removed {} partial file(s) of pulls interrupted more than {} h ago", n,
                   duration_cast<std::chrono::hours>(cfg.partial_retention).count());
    if (cfg.offline) spdlog::info("offline: models are served from the cache only; no source is asked");
    for (const auto& w : cfg.warnings) spdlog::warn("{}", w);
    spdlog::info("modelzood {} (pid {}) runtime {} cache {}", MODELZOO_VERSION, ::getpid(), cfg.runtime_dir.string(),
                 cfg.cache_dir.string());
    if (cfg.sources.empty()) spdlog::warn("no sources configured: no model can be resolved");
    sources.start();
    publish(core::topic::kDaemonStarted, {{"pid", ::getpid()}, {"version", MODELZOO_VERSION}});
    loop();
    shutdown();
    events.stop();  // daemon.stopping and the last plugin events go out first
    for (const char* name : {"plugins.sock", "client.sock", "events.sock"}) ::unlink((cfg.runtime_dir / name).c_str());
    spdlog::info("stopped");
    return 0;
  }
};

Daemon::Daemon(DaemonConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Daemon::~Daemon() = default;
int Daemon::run() { return impl_->run(); }

}  // namespace modelzoo::supervisor
