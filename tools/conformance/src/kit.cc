// The conformance checks (docs/writing-plugins.md, "Testing your plugin: the conformance kit").
// The kit plays modelzood: it applies the daemon's own validation (bus::decode, the hello
// rules of bus/hello.h, ModelMetadata::from_json, the chunk checks of the pull
// engine, the hook answer rules) and adds what the daemon cannot see in a single run: rejects,
// an unsupported version, silence, cancel, garbage, deadlines and shutdown.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <random>
#include <set>
#include <fstream>
#include <stdexcept>

#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/bus/random.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/conformance/kit.h"
#include "session.h"

namespace modelzoo::conformance {
namespace fs = std::filesystem;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

// The daemon's defaults and limits (docs/protocol.md) that the checks apply.
constexpr milliseconds kHelloTimeout{10000};         // restart.hello_timeout_ms
constexpr milliseconds kMainHeartbeat{100};          // fast, so that a session is short
constexpr int kMainLiveness = 5;
constexpr milliseconds kSilentHeartbeat{100};        // the liveness check: 100 ms x 3
constexpr int kSilentLiveness = 3;
constexpr milliseconds kExitAfterRefusal{3000};      // a refused plugin must be gone by then
constexpr milliseconds kStopTimeout{3000};           // stop_timeout_ms
constexpr milliseconds kSilenceMargin{2000};         // the SDK waits up to 2 s for its handlers
constexpr milliseconds kHeartbeatWindow{600};
constexpr milliseconds kCreditHold{300};
constexpr milliseconds kConcurrentWait{2000};
constexpr milliseconds kCancelGrace{500};
constexpr std::uint32_t kDaemonCredit = 16;
constexpr std::uint32_t kDaemonChunk = 1u << 20;
constexpr std::uint32_t kProbeCredit = 2;
constexpr std::uint32_t kProbeChunk = 4096;           // the smallest chunk_size the SDK accepts
constexpr std::size_t kTailLines = 12;
constexpr std::uint64_t kInvalidRequestId = 987654320;  // of an invalid request: never to be answered

std::string ms_str(milliseconds d) { return std::to_string(d.count()) + " ms"; }
std::int64_t ms_since(Clock::time_point t) { return duration_cast<milliseconds>(Clock::now() - t).count(); }

std::string clip(const std::string& s, std::size_t n = 200) { return s.size() > n ? s.substr(0, n) + "..." : s; }

// Built with append: GCC 12 -O3 misreports `"lit" + std::string` under -Wrestrict (PR105651),
// which broke the Release build of scripts/run.sh.
std::string quote(const std::string& s) {
  std::string q = "'";
  q.append(clip(s, 120)).append("'");
  return q;
}

// JSON text of what a plugin sent: its strings need not be valid UTF-8.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

// "reply {...}" or "error not_found: no model 'x'": an answer as the checks quote it.
std::string describe(const Message& m) {
  switch (m.type) {
    case MessageType::reply: return "a reply " + clip(dump(m.body), 160);
    case MessageType::error:
      return "error " + std::string(bus::to_string(m.error_code.value_or(ErrorCode::internal))) + ": " +
             clip(m.error_message, 200);
    case MessageType::chunk: return "a chunk of " + std::to_string(m.data.size()) + " bytes";
    default: return "a " + std::string(bus::to_string(m.type)) + " message";
  }
}

bool is_error(const Message& m, ErrorCode code) { return m.type == MessageType::error && m.error_code == code; }

std::string hash_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  bus::Sha256 h;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) h.update(buf, static_cast<std::size_t>(in.gcount()));
  return h.hex_digest();
}

// A model name `pattern` matches (for probes the plugin should consider its own), if one is easy.
std::string name_for_handles(const std::vector<std::string>& handles, const std::string& fallback) {
  for (const auto& p : handles) {
    std::string name;
    for (char c : p) name += c == '*' ? std::string("kit-model") : c == '?' ? std::string("k") : std::string(1, c);
    if (!bus::check_model_name(name) && bus::glob_match(p, name)) return name;
  }
  return fallback;
}

std::optional<std::vector<std::string>> string_list(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end()) return std::vector<std::string>{};
  if (!it->is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& e : *it) {
    if (!e.is_string()) return std::nullopt;
    out.push_back(e.get<std::string>());
  }
  return out;
}

// A private runtime directory, removed with everything in it.
struct TempDir {
  fs::path path;
  TempDir() {
    auto make = [](const fs::path& base) -> fs::path {
      std::string tmpl = (base / "modelzoo-kit-XXXXXX").string();
      if (!::mkdtemp(tmpl.data())) return {};
      return tmpl;
    };
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    // The ipc:// endpoints must fit the 107-byte socket path limit.
    if (!ec && base.string().size() < 60) path = make(base);
    if (path.empty()) path = make("/tmp");
    if (path.empty()) throw std::runtime_error("cannot create a temporary directory");
    ::chmod(path.c_str(), 0700);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// What a call came back with.
struct Answer {
  std::optional<Message> message;  // reply, error or (for downloads) the first chunk
  std::string why;                 // when there is no message
  bool is_reply() const { return message && message->type == MessageType::reply; }
  bool is(ErrorCode c) const { return message && is_error(*message, c); }
  std::string what() const { return message ? describe(*message) : why; }
};

// One refused or silenced extra spawn (the checks reject.token, reject.protocol,
// welcome.version, liveness), run on a thread of its own.
enum class AuxKind { wrong_token, no_common_version, unoffered_version, silence };

Check run_aux(AuxKind kind, const fs::path& dir, const Options& opt, json config) {
  static const std::map<AuxKind, std::pair<const char*, const char*>> names = {
      {AuxKind::wrong_token, {"reject.token", "token"}},
      {AuxKind::no_common_version, {"reject.protocol", "protocol"}},
      {AuxKind::unoffered_version, {"welcome.version", "version"}},
      {AuxKind::silence, {"liveness", "silent"}}};
  const auto [check_name, tag] = names.at(kind);
  Check c{check_name, Result::fail, {}, {}};
  std::unique_ptr<Session> s;
  try {
    s = std::make_unique<Session>(dir, std::string("plugins-") + tag + ".sock", std::string("kit-") + tag, opt.command);
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    c.reason = e.what();
    return c;
  }
  std::string why;
  auto hello = s->wait_hello(Clock::now() + kHelloTimeout, why);
  if (!hello) {
    c.reason = "a second spawn: " + why;
    c.output = s->output_tail(kTailLines);
    return c;
  }
  std::string action;
  Clock::time_point t0;
  milliseconds limit = kExitAfterRefusal;
  switch (kind) {
    case AuxKind::wrong_token:
      action = "a reject (unauthorized: wrong token)";
      s->reject(ErrorCode::unauthorized, "wrong token for plugin id '" + s->plugin_id() + "'");
      break;
    case AuxKind::no_common_version:
      action = "a reject (bad_request: no common protocol version)";
      s->reject(ErrorCode::bad_request, "no common protocol version (daemon speaks " +
                                            std::to_string(bus::kProtocolVersion) + ")");
      break;
    case AuxKind::unoffered_version: {
      // The smallest version the plugin did not offer (2 unless it offers 2).
      int version = 2;
      if (auto p = hello->body.find("protocol"); p != hello->body.end() && p->is_array())
        while (std::any_of(p->begin(), p->end(), [&](const json& v) { return v.is_number_integer() && v.get<std::int64_t>() == version; }))
          ++version;
      action = "a welcome choosing protocol " + std::to_string(version) + ", which it did not offer";
      s->welcome(version, milliseconds(1000), 3, config);  // the kit keeps heartbeating
      break;
    }
    case AuxKind::silence:
      s->send_heartbeats = false;
      s->welcome(bus::kProtocolVersion, kSilentHeartbeat, kSilentLiveness, config);
      limit = kSilentHeartbeat * kSilentLiveness + kSilenceMargin;
      break;
  }
  t0 = Clock::now();
  const auto deadline = t0 + limit;
  // A rejected plugin may say hello again; the daemon would refuse it again.
  while (Clock::now() < deadline && !s->wait_exit(std::min(deadline, Clock::now() + milliseconds(50)))) {
    std::string ignored;
    if (kind == AuxKind::wrong_token || kind == AuxKind::no_common_version)
      while (s->wait_hello(Clock::now(), ignored)) s->reject(ErrorCode::unauthorized, "plugin id '" + s->plugin_id() + "' was refused");
  }
  const auto took = ms_since(t0);
  Child& child = s->child();
  c.output = s->output_tail(kTailLines);
  if (kind == AuxKind::silence) {
    const auto silence = kSilentHeartbeat * kSilentLiveness;
    if (!child.exited()) {
      c.reason = "still running " + ms_str(limit) + " after the kit went silent; a plugin must exit when it has heard "
                 "nothing for heartbeat_ms x heartbeat_liveness (" + std::to_string(kSilentHeartbeat.count()) + " x " +
                 std::to_string(kSilentLiveness) + " = " + ms_str(silence) + ")";
    } else if (WIFSIGNALED(child.status())) {
      c.reason = "killed by " + child.describe() + " " + std::to_string(took) + " ms after the kit went silent";
    } else if (took < silence.count() / 2) {
      c.reason = "exited (" + child.describe() + ") only " + std::to_string(took) + " ms after the welcome, long before the " +
                 ms_str(silence) + " of silence that ends a session" +
                 (s->goodbye ? "; it said goodbye: " + quote(*s->goodbye) : "");
    } else {
      // The rule is "exit once silence has lasted heartbeat_ms x heartbeat_liveness", so a
      // pass is an exit after that much silence (the SDKs notice at their next poll).
      c.result = Result::pass;
      c.reason = "left when the kit fell silent, as required: exited (" + child.describe() + ") " + std::to_string(took) +
                 " ms after the welcome, having heard nothing for heartbeat_ms x heartbeat_liveness (" +
                 std::to_string(kSilentHeartbeat.count()) + " x " + std::to_string(kSilentLiveness) + " = " +
                 ms_str(silence) + ")";
      c.output.clear();
    }
    return c;
  }
  if (!child.exited()) {
    c.reason = "still running " + ms_str(limit) + " after " + action + "; it must exit with a non-zero status";
  } else if (WIFSIGNALED(child.status())) {
    c.reason = "killed by " + child.describe() + " after " + action + " (a crash); it must exit with a non-zero status";
  } else if (child.exited_cleanly()) {
    c.reason = "exited with status 0 after " + action + "; it must exit with a non-zero status";
  } else {
    c.result = Result::pass;
    c.reason = "exited (" + child.describe() + ") " + std::to_string(took) + " ms after " + action;
    c.output.clear();
  }
  return c;
}

struct Transfer {
  bool ok = false;
  std::string why;
  std::uint64_t bytes = 0;
  std::string sha256;       // of the bytes received
  std::string tail_sha256;  // of the bytes from `tail_from` on
  std::size_t chunks = 0;
};

class Runner {
 public:
  Runner(const Options& o, const std::function<void(const Check&)>& cb) : opt_(o), on_check_(cb) {}

  Report run();

 private:
  // ---- reporting
  void add(Check c) {
    planned_.erase(std::remove(planned_.begin(), planned_.end(), c.name), planned_.end());
    if (on_check_) on_check_(c);
    report_.checks.push_back(std::move(c));
  }
  void pass(const std::string& name, std::string detail = {}) { add({name, Result::pass, std::move(detail), {}}); }
  void skip(const std::string& name, std::string why) { add({name, Result::skip, std::move(why), {}}); }
  void fail(const std::string& name, std::string reason) {
    add({name, Result::fail, std::move(reason), main_ ? main_->output_tail(kTailLines) : std::vector<std::string>{}});
  }
  void skip_rest(const std::string& why) {
    auto rest = planned_;
    for (const auto& n : rest) skip(n, why);
  }
  void plan();
  // False (after a skip) when the main spawn is gone.
  bool running(const std::string& name) {
    if (main_->alive()) return true;
    skip(name, "the plugin is no longer running (" + main_->child().describe() + ")");
    return false;
  }

  // ---- talking to the plugin
  Answer call(const std::string& method, json body, std::uint32_t timeout_ms = 0);
  Answer await(std::uint64_t id, milliseconds wait);
  Transfer transfer(const bus::FileInfo& f, std::uint64_t offset, std::uint32_t credit, std::uint32_t chunk,
                    std::optional<std::uint64_t> tail_from = std::nullopt);
  std::optional<std::string> check_chunk(const Message& m, const bus::FileInfo& f, std::uint32_t chunk_size,
                                         std::uint64_t expected, std::uint64_t credit_left);
  void cancel(std::uint64_t id);

  // ---- the checks
  void check_hello(const Message& hello);
  void check_welcome();
  void check_heartbeat_window();
  void check_registry();
  void check_list();
  void check_metadata();
  void check_metadata_not_found();
  void check_exists();
  void check_download();
  void check_download_resume();
  void check_download_flow();
  void check_download_not_found();
  void check_extension();
  json hook_body(const std::string& point);
  std::optional<std::string> check_hook_reply(const std::string& point, const json& request, const json& reply);
  void check_unknown_method();
  void check_malformed();
  void check_invalid_messages();
  void check_oversized();
  void check_deadline();
  void check_sustained_heartbeats();
  void check_messages();
  void check_shutdown();
  Answer probe();  // an ordinary request that must be answered

  const Options& opt_;
  std::function<void(const Check&)> on_check_;
  Report report_;
  std::vector<std::string> planned_;
  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<Session> main_;

  // What the hello said.
  std::string kind_ = "registry";
  std::vector<std::string> capabilities_, points_, formats_, handles_{"*"};
  bool has(const std::string& cap) const {
    return std::find(capabilities_.begin(), capabilities_.end(), cap) != capabilities_.end();
  }

  // Registry state.
  std::map<std::string, std::vector<std::string>> listed_;  // name -> versions
  std::optional<bus::ModelRef> target_;
  std::optional<bus::ModelMetadata> meta_;
  std::string absent_name_;
  struct Resumable {
    bus::FileInfo file;
    std::uint64_t from = 0;
    std::string tail_sha256;
  };
  std::optional<Resumable> resumable_;
  bool download_failed_ = false;
  bool welcome_failed_ = false;

  // Extension state.
  bus::ModelRef hook_model_;
  std::vector<bus::FileInfo> hook_files_;  // with local_path = where the kit wrote them
  int output_dirs_ = 0;
};

// ------------------------------------------------------------------ plumbing

Answer Runner::await(std::uint64_t id, milliseconds wait) {
  Answer a;
  auto in = main_->next_for(id, Clock::now() + wait);
  if (in) {
    a.message = std::move(in->message);
    return a;
  }
  main_->forget(id);
  a.why = main_->alive() ? "no answer within " + ms_str(wait) + main_->others(id) : main_->gone();
  return a;
}

Answer Runner::call(const std::string& method, json body, std::uint32_t timeout_ms) {
  if (timeout_ms == 0) timeout_ms = opt_.timeout_ms;
  auto id = main_->request(method, std::move(body), timeout_ms);
  Answer a = await(id, milliseconds(opt_.timeout_ms));
  if (a.message && a.message->type == MessageType::chunk) cancel(id);  // not a download we wanted
  return a;
}

void Runner::cancel(std::uint64_t id) {
  auto c = Message::make(MessageType::cancel);
  c.id = id;
  main_->send(c);
  main_->forget(id);
}

std::optional<std::string> Runner::check_chunk(const Message& m, const bus::FileInfo& f, std::uint32_t chunk_size,
                                               std::uint64_t expected, std::uint64_t credit_left) {
  const std::string file = quote(f.name);
  if (credit_left == 0) return "sent a chunk of " + file + " without credit";
  const auto n = m.data.size();
  if (n == 0 || n > chunk_size)
    return "sent a chunk of " + std::to_string(n) + " bytes of " + file + " (1 to " + std::to_string(chunk_size) + " allowed)";
  auto offset = bus::get_uint(m.body, "offset");
  if (!offset) return "sent a chunk of " + file + " without an unsigned integer 'offset'";
  if (*offset != expected)
    return "sent " + file + " out of order (offset " + std::to_string(*offset) + ", expected " + std::to_string(expected) + ")";
  if (expected + n > f.size)
    return "sent more bytes of " + file + " than its metadata declares (" + std::to_string(f.size) + ")";
  return std::nullopt;
}

// A download as the daemon runs it: credit granted one chunk per chunk received, every chunk
// checked, the size checked at the final reply. The caller compares hashes. A chunk is within
// its credit when the chunks so far are no more than the initial credit plus the grants the kit
// had sent before it read that chunk (the plugin cannot have seen a later grant).
Transfer Runner::transfer(const bus::FileInfo& f, std::uint64_t offset, std::uint32_t credit, std::uint32_t chunk,
                          std::optional<std::uint64_t> tail_from) {
  Transfer t;
  const auto stall = milliseconds(opt_.timeout_ms);
  auto id = main_->request("download",
                           {{"name", meta_->name}, {"version", meta_->version}, {"file", f.name}, {"offset", offset},
                            {"credit", credit}, {"chunk_size", chunk}},
                           opt_.timeout_ms);
  std::uint64_t expected = offset;
  std::vector<Clock::time_point> grants;  // when each grant of one chunk was sent
  std::size_t granted_before = 0;         // grants sent before the current chunk was read
  bus::Sha256 all, tail;
  while (true) {
    auto in = main_->next_for(id, Clock::now() + stall);
    if (!in) {
      main_->forget(id);
      t.why = main_->alive() ? "no chunk or final answer for " + ms_str(stall) + " after " + std::to_string(t.bytes) +
                                   " bytes of " + quote(f.name) + main_->others(id)
                             : main_->gone() + " during the download of " + quote(f.name);
      return t;
    }
    Message& m = in->message;
    if (m.type == MessageType::chunk) {
      while (granted_before < grants.size() && grants[granted_before] <= in->at) ++granted_before;
      const std::uint64_t credit_left = credit + granted_before - t.chunks;
      if (auto why = check_chunk(m, f, chunk, expected, credit_left)) {
        cancel(id);
        t.why = *why;
        return t;
      }
      const auto n = m.data.size();
      all.update(m.data.data(), n);
      if (tail_from && expected + n > *tail_from) {
        const auto skip = expected < *tail_from ? *tail_from - expected : 0;
        tail.update(static_cast<const char*>(m.data.data()) + skip, n - skip);
      }
      expected += n;
      t.bytes += n;
      ++t.chunks;
      auto grant = Message::make(MessageType::credit, {{"chunks", 1}});
      grant.id = id;
      grants.push_back(Clock::now());  // before sending: never later than the plugin can see it
      main_->send(grant);
      continue;
    }
    if (m.type == MessageType::error) {
      t.why = "the download of " + quote(f.name) + " from offset " + std::to_string(offset) + " failed after " +
              std::to_string(t.bytes) + " bytes: " + describe(m);
      return t;
    }
    // The final reply.
    if (expected != f.size) {
      t.why = "ended " + quote(f.name) + " at byte " + std::to_string(expected) + "; its metadata declares " +
              std::to_string(f.size) + " bytes";
      return t;
    }
    auto r_offset = bus::get_uint(m.body, "offset");
    auto r_size = bus::get_uint(m.body, "size");
    if (r_offset != offset || r_size != t.bytes) {
      t.why = "the final reply for " + quote(f.name) + " is " + clip(dump(m.body), 120) + "; it must be {\"offset\": " +
              std::to_string(offset) + ", \"size\": " + std::to_string(t.bytes) + "}";
      return t;
    }
    t.ok = true;
    t.sha256 = all.hex_digest();
    if (tail_from) t.tail_sha256 = tail.hex_digest();
    return t;
  }
}

Answer Runner::probe() {
  if (kind_ == "extension" && !points_.empty()) return call("hook", hook_body(points_.front()));
  if (kind_ == "extension") return call("modelzoo-kit.probe", json::object());
  if (meta_) return call("metadata", {{"name", meta_->name}});
  return call("list", json::object());
}

// ------------------------------------------------------------------ the session

void Runner::plan() {
  planned_ = {"hello", "welcome", "reject.token", "reject.protocol", "welcome.version", "heartbeat"};
  if (kind_ == "extension") {
    for (const auto& p : points_) planned_.push_back("hook." + p);
    planned_.push_back("hook.bad-point");
  } else {
    for (const char* n : {"list", "metadata", "metadata.not-found", "exists", "download", "download.resume",
                          "download.credit", "download.concurrent", "download.cancel", "download.not-found"})
      planned_.push_back(n);
  }
  for (const char* n : {"unknown-method", "malformed", "invalid-message", "oversized-message", "deadline", "liveness",
                        "heartbeat.sustained", "messages", "shutdown"})
    planned_.push_back(n);
}

Report Runner::run() {
  const auto started = Clock::now();
  if (opt_.command.empty()) throw std::runtime_error("no plugin command given");
  if (!opt_.kind.empty() && !bus::is_plugin_kind(opt_.kind))
    throw std::runtime_error("--kind must be registry or extension, not '" + opt_.kind + "'");
  if (!opt_.model.empty()) target_ = bus::parse_model_ref(opt_.model);  // throws bus::Error(bad_request)
  if (!opt_.config.is_object()) throw std::runtime_error("the plugin configuration must be a map");
  if (!opt_.kind.empty()) kind_ = opt_.kind;
  dir_ = std::make_unique<TempDir>();
  plan();

  try {
    main_ = std::make_unique<Session>(dir_->path, "plugins.sock", "kit", opt_.command);
  } catch (const Interrupted&) {
    throw;
  } catch (const std::exception& e) {
    fail("hello", e.what());
    skip_rest("the plugin could not be started");
    report_.duration = duration_cast<milliseconds>(Clock::now() - started);
    return std::move(report_);
  }
  std::string why;
  auto hello = main_->wait_hello(Clock::now() + kHelloTimeout, why);
  if (!hello) {
    std::string reason = why;
    if (!main_->invalid.empty()) reason += "; it sent " + main_->invalid.front();
    fail("hello", reason);
    skip_rest("no hello");
    report_.output = main_->output_tail(200);
    main_.reset();
    report_.duration = duration_cast<milliseconds>(Clock::now() - started);
    return std::move(report_);
  }
  // The extra spawns run alongside the main session, each on a thread of its own.
  std::map<AuxKind, std::future<Check>> aux;
  for (auto k : {AuxKind::wrong_token, AuxKind::no_common_version, AuxKind::unoffered_version, AuxKind::silence})
    aux[k] = std::async(std::launch::async, run_aux, k, dir_->path, std::cref(opt_), opt_.config);
  auto join = [&](AuxKind k) {
    auto& f = aux[k];
    main_->pump_until(Clock::now() + kHelloTimeout + kExitAfterRefusal + kSilenceMargin + milliseconds(2000),
                      [&] { return f.wait_for(std::chrono::seconds(0)) == std::future_status::ready; });
    Check c = f.get();  // run_aux returns well within the bound above
    // A plugin that cannot get past its welcome (its configuration, say) exits for that reason.
    if (welcome_failed_ && c.result == Result::fail && (k == AuxKind::silence || k == AuxKind::unoffered_version)) {
      c.result = Result::skip;
      c.reason = "the plugin does not get past its welcome (see welcome)";
      c.output.clear();
    }
    if (welcome_failed_ && k == AuxKind::unoffered_version && c.result == Result::pass) {
      c.result = Result::skip;
      c.reason = "the plugin does not get past its welcome (see welcome)";
    }
    add(std::move(c));
  };

  check_hello(*hello);
  plan();  // the hello named the kind and the points
  planned_.erase(planned_.begin());  // hello: reported
  main_->welcome(bus::kProtocolVersion, kMainHeartbeat, kMainLiveness, opt_.config);
  main_->pump_until(Clock::now() + kHeartbeatWindow, [&] { return !main_->alive(); });
  check_welcome();
  join(AuxKind::wrong_token);
  join(AuxKind::no_common_version);
  join(AuxKind::unoffered_version);
  check_heartbeat_window();

  if (kind_ == "extension") check_extension();
  else check_registry();
  check_unknown_method();
  check_malformed();
  check_invalid_messages();
  check_oversized();
  check_deadline();
  join(AuxKind::silence);
  check_sustained_heartbeats();
  check_messages();
  check_shutdown();
  skip_rest("not reached");
  report_.output = main_->output_tail(200);
  main_.reset();
  report_.duration = duration_cast<milliseconds>(Clock::now() - started);
  return std::move(report_);
}

void Runner::check_hello(const Message& hello) {
  const json& h = hello.body;
  json shown = h;
  shown.erase("token");
  report_.plugin = shown;
  std::vector<std::string> problems;
  for (const auto& i : main_->invalid) problems.push_back("it sent " + i);

  // The daemon's rules (bus/hello.h) in the daemon's order: the types, then who the plugin
  // is (the kit knows the id and token it spawned with), then the rest.
  bus::Hello parsed;
  auto refusal = bus::parse_hello(h, parsed, {opt_.kind, true});
  const bool mistyped = bus::hello_type_error(h).has_value();
  if (mistyped) problems.push_back(*refusal);
  auto id = h.find("plugin_id");
  if (id == h.end() || !id->is_string()) problems.push_back("the hello lacks 'plugin_id' (a string: MODELZOO_PLUGIN_ID)");
  else if (parsed.plugin_id != main_->plugin_id())
    problems.push_back("plugin_id " + quote(parsed.plugin_id) + " is not MODELZOO_PLUGIN_ID ('" + main_->plugin_id() + "')");
  auto token = h.find("token");
  if (token == h.end() || !token->is_string()) problems.push_back("the hello lacks 'token' (a string: MODELZOO_TOKEN)");
  else if (parsed.token != main_->token()) problems.push_back("token is not the value of MODELZOO_TOKEN");
  if (refusal && !mistyped) problems.push_back(*refusal);

  kind_ = !opt_.kind.empty() ? opt_.kind : bus::is_plugin_kind(parsed.kind) ? parsed.kind : bus::kRegistryKind;
  // Mistyped capabilities name none: the checks of the methods are skipped.
  const bool caps = !bus::field_type_error(h, "capabilities", bus::FieldType::string_list);
  if (caps) capabilities_ = h.contains("capabilities") ? parsed.capabilities : bus::default_capabilities(kind_);
  handles_ = parsed.handles.empty() ? std::vector<std::string>{"*"} : parsed.handles;
  if (kind_ == bus::kRegistryKind) {
    for (const char* m : {"metadata", "list", "download"})
      if (caps && !has(m))
        problems.push_back(std::string("a registry must serve metadata, list and download; capabilities lack '") + m + "'");
  } else {
    if (caps && !has("hook")) problems.push_back("an extension serves 'hook'; its capabilities lack it");
    for (auto point : bus::kExtensionPoints)
      if (std::find(parsed.points.begin(), parsed.points.end(), point) != parsed.points.end())
        points_.emplace_back(point);
    formats_ = parsed.formats;
  }

  if (!problems.empty()) {
    std::string reason = problems.front();
    if (problems.size() > 1) reason += " (and " + std::to_string(problems.size() - 1) + " more: " + clip(problems[1], 120) + ")";
    fail("hello", reason);
    return;
  }
  std::string detail = kind_ + " '" + parsed.name + "' " + parsed.version;
  if (kind_ == "extension") {
    detail += ", points";
    for (const auto& p : points_) detail += " " + p;
  }
  detail += ", handles";
  for (const auto& p : handles_) detail += " " + p;
  pass("hello", detail);
}

// The plugin takes the welcome (and its configuration) and stays.
void Runner::check_welcome() {
  const auto after = ms_since(main_->welcomed_at());
  if (!main_->alive() || main_->goodbye) {
    welcome_failed_ = true;
    std::string reason = main_->alive() ? "the plugin said goodbye ('" + clip(*main_->goodbye, 300) + "')"
                                        : main_->gone();
    reason += " " + std::to_string(after) + " ms after the welcome";
    if (main_->goodbye && main_->goodbye->find("config") != std::string::npos)
      reason += "; pass the configuration it needs with --config FILE";
    return fail("welcome", reason);
  }
  pass("welcome", "still running " + std::to_string(after) + " ms after the welcome (config: " +
                      clip(dump(opt_.config), 80) + ")");
}

void Runner::check_heartbeat_window() {
  if (!running("heartbeat")) return;
  const auto& beats = main_->heartbeats;
  const auto hb = main_->heartbeat_interval();
  const auto window = Clock::now() - main_->welcomed_at();
  const auto window_ms = duration_cast<milliseconds>(window).count();
  if (beats.empty()) {
    fail("heartbeat", "no heartbeat in the " + std::to_string(window_ms) + " ms after the welcome (heartbeat_ms " +
                          std::to_string(hb.count()) + ")");
    return;
  }
  std::int64_t gap = 0;
  auto prev = main_->welcomed_at();
  for (auto t : beats) {
    gap = std::max<std::int64_t>(gap, duration_cast<milliseconds>(t - prev).count());
    prev = t;
  }
  const auto limit = hb.count() * main_->liveness();
  if (gap > limit) {
    fail("heartbeat", "a gap of " + std::to_string(gap) + " ms between heartbeats: over the " + std::to_string(limit) +
                          " ms (heartbeat_ms " + std::to_string(hb.count()) + " x heartbeat_liveness " +
                          std::to_string(main_->liveness()) + ") after which the daemon kills a plugin as hung");
    return;
  }
  if (static_cast<std::int64_t>(beats.size()) < window_ms / (2 * hb.count())) {
    fail("heartbeat", "only " + std::to_string(beats.size()) + " heartbeat(s) in " + std::to_string(window_ms) +
                          " ms; a plugin must send one at least every heartbeat_ms (" + std::to_string(hb.count()) +
                          " ms, from the welcome)");
    return;
  }
  pass("heartbeat", std::to_string(beats.size()) + " heartbeats in " + std::to_string(window_ms) +
                        " ms (heartbeat_ms " + std::to_string(hb.count()) + "), longest gap " + std::to_string(gap) + " ms");
}

// ------------------------------------------------------------------ registry

void Runner::check_registry() {
  check_list();
  check_metadata();
  check_metadata_not_found();
  check_exists();
  check_download();
  check_download_resume();
  check_download_flow();
  check_download_not_found();
}

void Runner::check_list() {
  if (!running("list")) return;
  if (!has("list")) return skip("list", "the hello's capabilities do not include list");
  auto a = call("list", json::object());
  if (!a.is_reply()) return fail("list", "list answered " + a.what());
  auto models = a.message->body.find("models");
  if (models == a.message->body.end() || !models->is_array())
    return fail("list", "the reply has no 'models' array: " + clip(dump(a.message->body), 120));
  for (std::size_t i = 0; i < models->size(); ++i) {
    const json& e = (*models)[i];
    bus::ModelSummary s;
    try {
      s = bus::ModelSummary::from_json(e);
    } catch (const bus::Error& err) {
      return fail("list", "entry #" + std::to_string(i + 1) + " is invalid: " + err.what());
    }
    auto versions = e.find("versions");
    if (versions != e.end() && !versions->is_null() && !string_list(e, "versions"))
      return fail("list", "entry " + quote(s.name) + ": 'versions' must be a list of strings");
    for (std::size_t k = 0; k < s.versions.size(); ++k) {
      if (auto why = bus::check_version(s.versions[k]))
        return fail("list", "entry " + quote(s.name) + " lists version " + quote(s.versions[k]) + ": " + *why);
      if (k > 0 && bus::SemVer::parse(s.versions[k - 1])->compare(*bus::SemVer::parse(s.versions[k])) < 0)
        return fail("list", "entry " + quote(s.name) + " lists '" + s.versions[k - 1] + "' before '" + s.versions[k] +
                                "'; versions go newest first");
    }
    auto& known = listed_[s.name];
    known.insert(known.end(), s.versions.begin(), s.versions.end());
  }
  if (!target_) {
    for (const auto& e : *models) {
      target_ = bus::ModelRef{e["name"].get<std::string>(), ""};
      break;
    }
  }
  pass("list", std::to_string(models->size()) + " model(s)");
}

void Runner::check_metadata() {
  if (!running("metadata")) return;
  if (!target_) return skip("metadata", "list() named no model; name one with --model NAME[:VERSION]");
  json body = {{"name", target_->name}};
  if (!target_->version.empty()) body["version"] = target_->version;
  auto a = call("metadata", body);
  if (!a.is_reply()) {
    std::string reason = "metadata of " + quote(target_->str()) + " answered " + a.what();
    if (a.is(ErrorCode::not_found) && listed_.count(target_->name)) reason += ", although list() names it";
    return fail("metadata", reason);
  }
  bus::ModelMetadata m;
  try {
    m = bus::ModelMetadata::from_json(a.message->body);
  } catch (const bus::Error& e) {
    return fail("metadata", "sent invalid metadata for " + quote(target_->str()) + ": " + e.what());
  }
  if (m.name != target_->name || (!target_->version.empty() && m.version != target_->version))
    return fail("metadata", "answered for '" + m.name + ":" + m.version + "' when asked for '" + target_->str() + "'");
  if (auto it = listed_.find(m.name); it != listed_.end() && target_->version.empty() &&
                                      std::find(it->second.begin(), it->second.end(), m.version) == it->second.end())
    return fail("metadata", "the latest version of " + quote(m.name) + " is '" + m.version +
                                "', which is not among the versions list() gives");
  meta_ = m;
  if (target_->version.empty()) {
    // The same version asked for by name: the same answer.
    auto again = call("metadata", {{"name", m.name}, {"version", m.version}});
    if (!again.is_reply()) return fail("metadata", "metadata of '" + m.name + ":" + m.version + "' answered " + again.what());
    try {
      auto m2 = bus::ModelMetadata::from_json(again.message->body);
      if (m2.name != m.name || m2.version != m.version)
        return fail("metadata", "answered for '" + m2.name + ":" + m2.version + "' when asked for '" + m.name + ":" + m.version + "'");
      if (m2.to_json()["files"] != m.to_json()["files"])
        return fail("metadata", "'" + m.name + ":" + m.version + "' lists other files when asked by version than as the latest");
    } catch (const bus::Error& e) {
      return fail("metadata", "sent invalid metadata for '" + m.name + ":" + m.version + "': " + e.what());
    }
  }
  pass("metadata", "'" + m.name + ":" + m.version + "', " + std::to_string(m.files.size()) + " file(s), " +
                       human_bytes(m.total_size()));
}

void Runner::check_metadata_not_found() {
  if (!running("metadata.not-found")) return;
  std::string base = target_ ? target_->name : name_for_handles(handles_, "modelzoo-kit/model");
  absent_name_ = base + "-kit-absent-" + bus::random_hex(6);
  if (bus::check_model_name(absent_name_)) absent_name_ = "modelzoo-kit/absent-" + bus::random_hex(6);
  auto a = call("metadata", {{"name", absent_name_}});
  if (!a.is(ErrorCode::not_found))
    return fail("metadata.not-found", "metadata of an absent model " + quote(absent_name_) + " answered " + a.what() +
                                          "; expected error not_found");
  if (meta_) {
    const std::string v = "999999.0.0-kit-absent";
    auto b = call("metadata", {{"name", meta_->name}, {"version", v}});
    if (!b.is(ErrorCode::not_found))
      return fail("metadata.not-found", "metadata of an absent version '" + meta_->name + ":" + v + "' answered " + b.what() +
                                            "; expected error not_found");
  }
  pass("metadata.not-found", meta_ ? "an absent model and an absent version" : "an absent model");
}

void Runner::check_exists() {
  if (!running("exists")) return;
  if (!has("exists")) return skip("exists", "the hello's capabilities do not include exists");
  if (meta_) {
    auto a = call("exists", {{"name", meta_->name}, {"version", meta_->version}});
    if (!a.is_reply()) return fail("exists", "exists of '" + meta_->name + ":" + meta_->version + "' answered " + a.what());
    auto e = a.message->body.find("exists");
    if (e == a.message->body.end() || !e->is_boolean() || !e->get<bool>())
      return fail("exists", "exists of '" + meta_->name + ":" + meta_->version + "' answered " + a.what() +
                                "; expected {\"exists\": true}");
  }
  auto b = call("exists", {{"name", absent_name_.empty() ? "modelzoo-kit/absent" : absent_name_}});
  if (b.is(ErrorCode::not_found))
    return fail("exists", "exists of an absent model answered " + b.what() +
                              "; exists answers {\"exists\": false}, not not_found");
  if (!b.is_reply()) return fail("exists", "exists of an absent model answered " + b.what());
  auto e = b.message->body.find("exists");
  if (e == b.message->body.end() || !e->is_boolean() || e->get<bool>())
    return fail("exists", "exists of an absent model answered " + b.what() + "; expected {\"exists\": false}");
  pass("exists", meta_ ? "true for '" + meta_->name + ":" + meta_->version + "', false for an absent model"
                       : "false for an absent model");
}

void Runner::check_download() {
  if (!running("download")) return;
  if (!meta_) return skip("download", "no model metadata to download from (see metadata)");
  if (!has("download")) return skip("download", "the hello's capabilities do not include download");
  if (meta_->files.empty()) return skip("download", "'" + meta_->name + ":" + meta_->version + "' has no files");
  std::uint64_t budget = opt_.max_bytes, verified = 0;
  std::size_t done = 0, skipped = 0;
  for (const auto& f : meta_->files) {
    if (f.size > budget) {
      ++skipped;
      continue;
    }
    std::optional<std::uint64_t> tail_from;
    if (f.size >= 2) tail_from = f.size / 2;
    auto t = transfer(f, 0, kDaemonCredit, kDaemonChunk, tail_from);
    download_failed_ = !t.ok || t.sha256 != f.sha256;
    if (!t.ok) return fail("download", t.why);
    if (t.sha256 != f.sha256)
      return fail("download", quote(f.name) + ": the " + std::to_string(t.bytes) + " bytes received have SHA-256 " +
                                  t.sha256 + "; the metadata says " + f.sha256);
    budget -= f.size;
    verified += f.size;
    ++done;
    if (tail_from && (!resumable_ || f.size > resumable_->file.size)) resumable_ = Resumable{f, *tail_from, t.tail_sha256};
  }
  if (done == 0)
    return skip("download", "every file is over --max-bytes (" + human_bytes(opt_.max_bytes) + ")");
  pass("download", std::to_string(done) + " file(s), " + human_bytes(verified) + ", size and SHA-256 verified" +
                       (skipped ? ", " + std::to_string(skipped) + " skipped (over --max-bytes)" : ""));
}

void Runner::check_download_resume() {
  if (!running("download.resume")) return;
  if (!resumable_)
    return skip("download.resume", download_failed_ ? "see download" : "no file of 2 bytes or more was downloaded");
  const auto& r = *resumable_;
  auto t = transfer(r.file, r.from, kDaemonCredit, kDaemonChunk);
  if (!t.ok) return fail("download.resume", t.why);
  if (t.sha256 != r.tail_sha256)
    return fail("download.resume", quote(r.file.name) + " from offset " + std::to_string(r.from) +
                                       ": the bytes received are not the file's tail (SHA-256 " + t.sha256 + ", expected " +
                                       r.tail_sha256 + ")");
  // From the very end (docs/protocol.md, "download"): no chunk, then {"offset": size, "size": 0}.
  auto end = transfer(r.file, r.file.size, kDaemonCredit, kDaemonChunk);
  if (!end.ok) return fail("download.resume", "from its end (offset " + std::to_string(r.file.size) + "): " + end.why);
  if (end.bytes != 0)
    return fail("download.resume", quote(r.file.name) + " from its end (offset " + std::to_string(r.file.size) + ") sent " +
                                       std::to_string(end.bytes) + " bytes; expected none");
  pass("download.resume", quote(r.file.name) + " from offset " + std::to_string(r.from) + ": " + std::to_string(t.bytes) +
                              " bytes, the file's tail; from its end: no chunk and size 0");
}

// One download with little credit and small chunks: the kit holds credit back (download.credit),
// asks something else meanwhile (download.concurrent), then cancels (download.cancel).
void Runner::check_download_flow() {
  const char* names[] = {"download.credit", "download.concurrent", "download.cancel"};
  if (!main_->alive()) {
    for (const char* n : names) skip(n, main_->gone());
    return;
  }
  if (!meta_ || !has("download")) {
    for (const char* n : names) skip(n, "no model metadata to download from (see metadata)");
    return;
  }
  const bus::FileInfo* file = nullptr;
  for (const auto& f : meta_->files)
    if (f.size > std::uint64_t{kProbeCredit} * kProbeChunk && (!file || f.size > file->size)) file = &f;
  if (!file) {
    for (const char* n : names)
      skip(n, "no file of '" + meta_->name + ":" + meta_->version + "' is over " +
                  std::to_string(kProbeCredit * kProbeChunk) + " bytes; credit cannot run out");
    return;
  }
  const auto& f = *file;
  auto id = main_->request("download",
                           {{"name", meta_->name}, {"version", meta_->version}, {"file", f.name}, {"offset", 0},
                            {"credit", kProbeCredit}, {"chunk_size", kProbeChunk}},
                           opt_.timeout_ms);
  std::uint64_t credit_left = kProbeCredit, expected = 0;
  auto bad = [&](const std::string& why) {
    cancel(id);
    fail(names[0], why);
    skip(names[1], "see download.credit");
    skip(names[2], "see download.credit");
  };
  // 1. The chunks the initial credit allows.
  while (credit_left > 0) {
    auto in = main_->next_for(id, Clock::now() + milliseconds(opt_.timeout_ms));
    if (!in) {
      main_->forget(id);
      return bad(main_->alive() ? "no chunk of " + quote(f.name) + " within " + ms_str(milliseconds(opt_.timeout_ms)) +
                                      " (credit " + std::to_string(kProbeCredit) + ", chunk_size " +
                                      std::to_string(kProbeChunk) + ")" + main_->others(id)
                                : main_->gone());
    }
    if (in->message.type != MessageType::chunk)
      return bad("a download of " + quote(f.name) + " (credit " + std::to_string(kProbeCredit) + ", chunk_size " +
                 std::to_string(kProbeChunk) + ") answered " + describe(in->message) + " after " +
                 std::to_string(expected) + " bytes");
    if (auto why = check_chunk(in->message, f, kProbeChunk, expected, credit_left)) return bad(*why);
    expected += in->message.data.size();
    --credit_left;
  }
  // 2. No credit for a while: nothing may come for this download; a request must be answered.
  const auto hold_start = Clock::now();
  auto probe_id = main_->request("metadata", {{"name", meta_->name}, {"version", meta_->version}}, opt_.timeout_ms);
  std::optional<Message> probe_answer;
  std::int64_t probe_ms = 0;
  std::size_t extra = 0;
  std::string extra_what;
  const auto probe_deadline = hold_start + std::min(kConcurrentWait, milliseconds(opt_.timeout_ms));
  while (Clock::now() < probe_deadline && (Clock::now() < hold_start + kCreditHold || !probe_answer)) {
    main_->pump_until(std::min(probe_deadline, Clock::now() + milliseconds(10)));
    while (auto in = main_->next_for(id, Clock::now() - milliseconds(1))) {
      ++extra;
      if (extra_what.empty()) extra_what = describe(in->message);
    }
    if (!probe_answer)
      if (auto in = main_->next_for(probe_id, Clock::now() - milliseconds(1))) {
        probe_answer = std::move(in->message);
        probe_ms = ms_since(hold_start);
      }
    if (!main_->alive()) break;
  }
  const auto held = ms_since(hold_start);
  if (!main_->alive()) {
    main_->forget(id);
    fail(names[0], main_->gone() + " while its download waited for credit");
    skip(names[1], main_->gone());
    skip(names[2], main_->gone());
    return;
  }
  bool credit_ok = extra == 0;
  if (credit_ok) {
    pass(names[0], "nothing beyond the " + std::to_string(kProbeCredit) + " chunks of credit while the kit held credit back for " +
                       std::to_string(held) + " ms");
  } else {
    fail(names[0], "sent a chunk of " + quote(f.name) + " without credit: " + std::to_string(extra) +
                       " message(s) beyond the " + std::to_string(kProbeCredit) + " chunks granted (first: " + extra_what +
                       "); a plugin must wait for credit");
  }
  if (probe_answer) {
    pass(names[1], "a metadata request was answered (" + describe(*probe_answer).substr(0, 7) + ") in " +
                       std::to_string(probe_ms) + " ms while a download waited for credit");
  } else {
    main_->forget(probe_id);
    fail(names[1], "a metadata request sent while a download waited for credit got no answer within " +
                       ms_str(duration_cast<milliseconds>(probe_deadline - hold_start)) +
                       "; a plugin must serve requests (and heartbeats) while downloads wait for credit");
  }
  // 3. Cancel, then credit: a plugin that honours the cancel sends nothing more.
  if (!credit_ok) {
    cancel(id);
    return skip(names[2], "cannot be told apart from ignoring credit (see download.credit)");
  }
  auto c = Message::make(MessageType::cancel);
  c.id = id;
  main_->send(c);
  auto grant = Message::make(MessageType::credit, {{"chunks", 64}});
  grant.id = id;
  main_->send(grant);
  const auto cancel_at = Clock::now();
  std::size_t after = 0;
  std::optional<Message> final_answer;
  while (Clock::now() < cancel_at + kCancelGrace && main_->alive()) {
    auto in = main_->next_for(id, cancel_at + kCancelGrace);
    if (!in) break;
    if (in->message.type == MessageType::chunk) ++after;
    else if (!final_answer) final_answer = std::move(in->message);
  }
  main_->forget(id);
  if (!main_->alive()) return fail(names[2], main_->gone() + " after a cancel");
  if (after > 0)
    return fail(names[2], "sent " + std::to_string(after) + " chunk(s) of " + quote(f.name) +
                              " after the cancel (using credit granted after it); on cancel a plugin stops the download");
  std::string detail = "no chunk in the " + ms_str(kCancelGrace) + " after the cancel";
  if (final_answer) detail += " (it still sent " + describe(*final_answer).substr(0, 60) + "; a final answer is not needed)";
  pass(names[2], detail);
}

void Runner::check_download_not_found() {
  if (!running("download.not-found")) return;
  if (!meta_ || !has("download")) return skip("download.not-found", "no model metadata to download from (see metadata)");
  struct Case {
    std::string what;
    json body;
  } cases[] = {
      {"a file the model does not have",
       {{"name", meta_->name}, {"version", meta_->version}, {"file", "modelzoo-kit-absent.bin"}}},
      {"a model it does not have",
       {{"name", absent_name_.empty() ? "modelzoo-kit/absent" : absent_name_}, {"version", "1.0.0"}, {"file", "weights.bin"}}},
  };
  for (auto& c : cases) {
    c.body["offset"] = 0;
    c.body["credit"] = kDaemonCredit;
    c.body["chunk_size"] = kDaemonChunk;
    auto a = call("download", c.body);
    if (!a.is(ErrorCode::not_found))
      return fail("download.not-found", "a download of " + c.what + " answered " + a.what() + "; expected error not_found");
  }
  pass("download.not-found", "an absent file and an absent model");
}

// ------------------------------------------------------------------ extension

json Runner::hook_body(const std::string& point) {
  json files = json::array(), meta_files = json::array();
  for (const auto& f : hook_files_) {
    meta_files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
    if (point != bus::kPreDownload)
      files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}, {"path", f.local_path}});
  }
  json b = {{"point", point},
            {"name", hook_model_.name},
            {"version", point == bus::kPreDownload ? hook_model_.version : (hook_model_.version.empty() ? "1.0.0" : hook_model_.version)},
            {"files", files}};
  if (point != bus::kPreDownload)
    b["metadata"] = {{"name", hook_model_.name},
                     {"version", b["version"]},
                     {"description", "a model made up by modelzoo plugin test"},
                     {"author", "modelzoo"},
                     {"license", "MIT"},
                     {"format", "raw"},
                     {"tags", json::array({"conformance"})},
                     {"files", meta_files}};
  if (point == bus::kPostDownload) {
    fs::path out = dir_->path / "hook" / ("output-" + std::to_string(++output_dirs_));
    fs::create_directories(out);
    b["output_dir"] = out.string();
  }
  return b;
}

std::optional<std::string> Runner::check_hook_reply(const std::string& point, const json& request, const json& r) {
  auto action_it = r.find("action");
  if (action_it == r.end() || !action_it->is_string()) return "the reply has no 'action' string: " + clip(dump(r), 120);
  const std::string action = action_it->get<std::string>();
  if (auto m = r.find("message"); m != r.end() && !m->is_string()) return "'message' must be a string";
  if (action == "continue") return std::nullopt;
  if (action == "reject") {
    if (auto reason = r.find("reason"); reason != r.end() && !reason->is_string()) return "'reason' must be a string";
    return std::nullopt;
  }
  if (action == "rewrite") {
    if (point != bus::kPreDownload) return "answered 'rewrite' at " + point + " (only at pre-download)";
    auto name = r.find("name");
    if (name == r.end() || !name->is_string()) return "'rewrite' without a 'name' string";
    if (auto why = bus::check_model_name(name->get<std::string>())) return "rewrote to an invalid name: " + *why;
    auto version = r.find("version");
    if (version != r.end() && !version->is_string()) return "'version' must be a string";
    if (version != r.end() && !version->get<std::string>().empty())
      if (auto why = bus::check_version(version->get<std::string>())) return "rewrote to an invalid version: " + *why;
    return std::nullopt;
  }
  if (action == "replace") {
    if (point != bus::kPostDownload) return "answered 'replace' at " + point + " (only at post-download)";
    auto files = r.find("files");
    if (files == r.end() || !files->is_array() || files->size() > 10000)
      return "answered 'replace' without a list of at most 10000 files";
    std::set<std::string> inputs, names;
    for (const auto& f : request["files"]) inputs.insert(f.value("path", ""));
    std::error_code ec;
    const fs::path outdir = fs::canonical(request.value("output_dir", ""), ec);
    for (const auto& f : *files) {
      std::string name = bus::get_string(f, "name"), path = bus::get_string(f, "path");
      if (auto why = bus::check_file_name(name)) return "replaced a file with an invalid name: " + *why;
      if (!names.insert(name).second) return "named " + quote(name) + " twice";
      if (!path.empty() && inputs.count(path)) continue;  // an input, kept (perhaps renamed)
      struct stat st {};
      fs::path p = path;
      if (path.empty() || !p.is_absolute() || ::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
        return "replaced " + quote(name) + " with " + quote(path) + ", which is not a regular file (one link, not a symlink)";
      fs::path parent = fs::canonical(p.parent_path(), ec);
      auto rel = parent.lexically_relative(outdir);
      if (ec || outdir.empty() || rel.empty() || *rel.begin() == "..")
        return "replaced " + quote(name) + " with " + quote(path) + ", outside its output directory";
    }
    return std::nullopt;
  }
  return "answered an unknown action " + quote(action) + " (continue, reject, replace or rewrite)";
}

void Runner::check_extension() {
  // The model the hooks see: --model, or a name the handles match, with files the kit writes:
  // one plain file and one of each declared format (random bytes: a reject is a fine answer).
  hook_model_ = target_ ? *target_ : bus::ModelRef{name_for_handles(handles_, "modelzoo-kit/model"), ""};
  fs::path in = dir_->path / "hook" / "input";
  fs::create_directories(in);
  std::vector<std::string> names = {"weights.bin"};
  for (const auto& f : formats_) {
    std::string n = "model." + f;
    if (!bus::check_file_name(n) && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  std::mt19937_64 rng(0x6b6974);
  for (const auto& n : names) {
    std::string data(4096, '\0');
    for (auto& ch : data) ch = static_cast<char>(rng());
    fs::path p = in / n;
    std::ofstream(p, std::ios::binary) << data;
    ::chmod(p.c_str(), 0444);
    hook_files_.push_back(bus::FileInfo(n, data.size(), bus::Sha256::of(data), p.string()));
  }

  for (const auto& point : points_) {
    const std::string name = "hook." + point;
    if (!running(name)) continue;
    json body = hook_body(point);
    auto a = call("hook", body);
    if (!a.is_reply()) {
      std::string reason = "a hook at " + point + " answered " + a.what();
      if (a.message && a.message->type == MessageType::error)
        reason += " (an error means the extension itself failed; a verdict on the model is a reply with action reject)";
      fail(name, reason);
      continue;
    }
    if (auto why = check_hook_reply(point, body, a.message->body)) {
      fail(name, "at " + point + ": " + *why);
      continue;
    }
    bool changed = false;
    for (const auto& f : hook_files_)
      if (hash_file(f.local_path) != f.sha256) changed = true;
    if (changed) {
      fail(name, "the hook at " + point + " changed an input file; the files at 'path' are read-only");
      continue;
    }
    const json& r = a.message->body;
    std::string detail = "action '" + r.value("action", "") + "'";
    if (r.contains("reason") && r["reason"].is_string()) detail += ": " + clip(r["reason"].get<std::string>(), 100);
    else if (r.contains("message") && r["message"].is_string()) detail += " (" + clip(r["message"].get<std::string>(), 100) + ")";
    pass(name, detail);
  }
  if (!running("hook.bad-point")) return;
  json body = hook_body(bus::kPreDownload);
  body["point"] = "mid-download";
  auto a = call("hook", body);
  if (!a.is(ErrorCode::bad_request))
    return fail("hook.bad-point", "a hook at the unknown point 'mid-download' answered " + a.what() + "; expected error bad_request");
  pass("hook.bad-point", "bad_request for the point 'mid-download'");
}

// ------------------------------------------------------------------ both kinds

void Runner::check_unknown_method() {
  if (!running("unknown-method")) return;
  const std::string method = "modelzoo-kit.no-such-method";
  auto a = call(method, {{"x", 1}});
  if (a.is(ErrorCode::bad_request)) return pass("unknown-method", "bad_request for '" + method + "'");
  if (a.is_reply())
    return fail("unknown-method", "answered the unknown method '" + method + "' with " + a.what() +
                                      "; an unknown method is answered with error bad_request");
  fail("unknown-method", "the unknown method '" + method + "' answered " + a.what() + "; expected error bad_request");
}

void Runner::check_malformed() {
  if (!running("malformed")) return;
  struct Case {
    std::string what;
    std::string method;
    json body;
  };
  std::vector<Case> cases;
  if (kind_ == "extension") {
    const std::string point = points_.empty() ? std::string(bus::kPostDownload) : points_.front();
    json good = hook_body(point);
    cases.push_back({"a hook without 'point'", "hook", json::object()});
    json b = good;
    b["name"] = 42;
    cases.push_back({"a hook whose 'name' is an integer", "hook", b});
    b = good;
    b["name"] = "../../etc/passwd";
    cases.push_back({"a hook with the invalid model name '../../etc/passwd'", "hook", b});
    b = good;
    b["files"] = "weights.bin";
    cases.push_back({"a hook whose 'files' is not a list", "hook", b});
  } else {
    const std::string name = meta_ ? meta_->name : "modelzoo-kit/model";
    const std::string version = meta_ ? meta_->version : "1.0.0";
    const std::string file = meta_ && !meta_->files.empty() ? meta_->files.front().name : "weights.bin";
    json dl = {{"name", name}, {"version", version}, {"file", file}, {"offset", 0}, {"credit", kDaemonCredit},
               {"chunk_size", kDaemonChunk}};
    cases.push_back({"metadata without 'name'", "metadata", json::object()});
    cases.push_back({"metadata whose 'name' is an integer", "metadata", {{"name", 42}}});
    cases.push_back({"metadata of the invalid model name '../../etc/passwd'", "metadata", {{"name", "../../etc/passwd"}}});
    cases.push_back({"metadata of the invalid version '1.0'", "metadata", {{"name", name}, {"version", "1.0"}}});
    json b = dl;
    b["offset"] = "zero";
    cases.push_back({"a download whose 'offset' is a string", "download", b});
    b = dl;
    b.erase("file");
    cases.push_back({"a download without 'file'", "download", b});
    b = dl;
    b["file"] = "../../etc/passwd";
    cases.push_back({"a download of the invalid file name '../../etc/passwd'", "download", b});
    b = dl;
    b["version"] = "";
    cases.push_back({"a download with an empty 'version' (download takes a concrete version)", "download", b});
    if (meta_ && !meta_->files.empty()) {
      b = dl;
      b["offset"] = meta_->files.front().size + 1;
      cases.push_back({"a download of " + quote(file) + " from offset " + std::to_string(meta_->files.front().size + 1) +
                           ", past its end", "download", b});
    }
    if (has("exists")) {
      cases.push_back({"exists whose 'name' is an integer", "exists", {{"name", 42}}});
      cases.push_back({"exists of the invalid model name '../../etc/passwd'", "exists", {{"name", "../../etc/passwd"}}});
    }
  }
  std::vector<std::string> wrong;
  for (const auto& c : cases) {
    auto a = call(c.method, c.body);
    if (!a.is(ErrorCode::bad_request)) wrong.push_back(c.what + " answered " + a.what());
    if (!main_->alive()) break;
  }
  if (!wrong.empty()) {
    std::string reason = wrong.front() + "; expected error bad_request";
    if (wrong.size() > 1) reason += " (and " + std::to_string(wrong.size() - 1) + " more such request(s))";
    return fail("malformed", reason);
  }
  pass("malformed", "bad_request for " + std::to_string(cases.size()) + " requests with missing, mistyped or invalid parameters");
}

void Runner::check_invalid_messages() {
  if (!running("invalid-message")) return;
  auto pack = [](const json& j) { return bus::to_msgpack(j); };
  const std::vector<std::vector<std::string>> frames = {
      {std::string("\xc1", 1)},                                        // a byte msgpack never uses
      {"this is not msgpack"},                                         // trailing bytes
      {std::string()},                                                 // an empty frame
      {std::string("\x93\x01\x02\x03", 4)},                            // an array, not a map
      {pack({{"type", "bogus"}, {"body", json::object()}})},           // unknown type
      {pack({{"type", "request"}, {"method", "list"}, {"timeout_ms", 1000}, {"body", json::object()}})},  // no id
      {pack({{"type", "request"}, {"id", 0}, {"method", "list"}, {"timeout_ms", 1000}, {"body", json::object()}})},
      {pack({{"type", "request"}, {"id", kInvalidRequestId}, {"method", "list"}, {"timeout_ms", -5}, {"body", json::object()}})},
      {pack({{"type", "heartbeat"}, {"body", json::array({1})}})},     // body not a map
      {pack({{"type", "heartbeat"}, {"body", json::object()}}), "extra"},  // a data frame on a heartbeat
      {pack({{"type", "credit"}, {"id", 987654321}, {"body", {{"chunks", 3}}}})},  // for an unknown id
      {pack({{"type", "cancel"}, {"id", 987654322}, {"body", json::object()}})},   // for an unknown id
      {pack({{"type", "reply"}, {"id", 987654323}, {"body", json::object()}})},    // not for a plugin
  };
  const std::size_t unattributed_before = main_->unattributed;
  for (const auto& f : frames) main_->send_frames(f);
  auto a = probe();
  if (!main_->alive())
    return fail("invalid-message", main_->gone() + " after " + std::to_string(frames.size()) +
                                       " invalid or unexpected messages; a plugin drops invalid messages and carries on");
  if (!a.message)
    return fail("invalid-message", "after " + std::to_string(frames.size()) +
                                       " invalid or unexpected messages, a request got no answer: " + a.why);
  // An invalid message is dropped, never answered (docs/protocol.md, "Invalid and unexpected
  // messages from the daemon"). The plugin read them before the probe, so an answer to one has arrived by now.
  if (main_->unattributed > unattributed_before)
    return fail("invalid-message", "answered an invalid message with an error of id 0; a plugin drops invalid "
                                   "messages without answering them");
  if (auto in = main_->next_for(kInvalidRequestId, Clock::now() - milliseconds(1)))
    return fail("invalid-message", "answered an invalid request (timeout_ms -5) with " + describe(in->message) +
                                       "; a plugin drops invalid messages without answering them");
  pass("invalid-message", "still answering after " + std::to_string(frames.size()) +
                              " invalid or unexpected messages, none of them answered");
}

void Runner::check_oversized() {
  if (!running("oversized-message")) return;
  // A well-formed request whose envelope is just over the 1 MiB limit (and far under libzmq's
  // 16 MiB ZMQ_MAXMSGSIZE, so the connection survives it).
  json body = {{"name", meta_ ? meta_->name : "modelzoo-kit/model"}, {"padding", std::string(bus::kMaxEnvelopeBytes, 'x')}};
  auto id = main_->request(kind_ == "extension" ? "hook" : "metadata", body, opt_.timeout_ms);
  main_->forget(id);  // whatever it answers to that is fine
  auto a = probe();
  const std::string what = "an envelope of " + std::to_string(bus::kMaxEnvelopeBytes + 40) + "+ bytes (limit " +
                           std::to_string(bus::kMaxEnvelopeBytes) + ")";
  if (!main_->alive()) return fail("oversized-message", main_->gone() + " after " + what);
  if (!a.message) return fail("oversized-message", "after " + what + ", a request got no answer: " + a.why);
  pass("oversized-message", "still answering after " + what);
}

void Runner::check_deadline() {
  if (!running("deadline")) return;
  std::string method;
  json body;
  if (kind_ == "extension") {
    method = "hook";
    body = hook_body(points_.empty() ? std::string(bus::kPostDownload) : points_.front());
  } else if (meta_) {
    method = "metadata";
    body = {{"name", meta_->name}};
  } else {
    method = "list";
    body = json::object();
  }
  auto a = call(method, body, 1);
  if (a.is_reply() || a.is(ErrorCode::timeout))
    return pass("deadline", "a " + method + " request with timeout_ms 1 was answered with " +
                                (a.is_reply() ? std::string("a reply") : "error timeout"));
  if (a.message)
    return fail("deadline", "a " + method + " request with timeout_ms 1 answered " + a.what() +
                                "; expected a reply or error timeout");
  fail("deadline", "a " + method + " request with timeout_ms 1 got no answer: " + a.why +
                       "; a request whose deadline has passed is still answered (reply or error timeout)");
}

void Runner::check_sustained_heartbeats() {
  if (!running("heartbeat.sustained")) return;
  const auto& beats = main_->heartbeats;
  const auto limit = main_->heartbeat_interval().count() * main_->liveness();
  if (beats.empty()) return fail("heartbeat.sustained", "no heartbeat during the whole session");
  std::int64_t gap = 0;
  auto prev = main_->welcomed_at();
  for (auto t : beats) {
    gap = std::max<std::int64_t>(gap, duration_cast<milliseconds>(t - prev).count());
    prev = t;
  }
  gap = std::max<std::int64_t>(gap, ms_since(prev));
  const auto span = ms_since(main_->welcomed_at());
  if (gap > limit)
    return fail("heartbeat.sustained", "the longest silence between heartbeats was " + std::to_string(gap) +
                                           " ms over a session of " + std::to_string(span) + " ms; the daemon kills a plugin silent for " +
                                           std::to_string(limit) + " ms. Heartbeats must go on while requests and downloads run");
  pass("heartbeat.sustained", std::to_string(beats.size()) + " heartbeats over " + std::to_string(span) +
                                  " ms, longest gap " + std::to_string(gap) + " ms");
}

void Runner::check_messages() {
  if (main_->invalid.empty())
    return pass("messages", std::to_string(main_->received) + " messages, every one a valid envelope of a type plugins send");
  fail("messages", std::to_string(main_->invalid.size()) + " invalid or unexpected message(s); the first: " +
                       main_->invalid.front());
}

void Runner::check_shutdown() {
  if (!running("shutdown")) return;
  auto bye = Message::make(MessageType::goodbye, {{"reason", "daemon stopping"}});
  main_->send(bye);
  // The daemon stops heartbeating here; the kit goes on, so that a plugin that ignores the
  // goodbye is seen to stay, not to leave because of the silence.
  const auto t0 = Clock::now();
  const bool before = main_->goodbye.has_value();
  main_->wait_exit(t0 + kStopTimeout);
  Child& child = main_->child();
  const std::string said = !before && main_->goodbye ? ", after its own goodbye" : "";
  if (!child.exited())
    return fail("shutdown", "still running " + ms_str(kStopTimeout) +
                                " after goodbye (the daemon's stop_timeout_ms; it would now send SIGTERM, then SIGKILL)");
  const auto took = duration_cast<milliseconds>(Clock::now() - t0).count();
  if (!child.exited_cleanly())
    return fail("shutdown", "ended with " + child.describe() + " after goodbye; a plugin asked to stop exits with status 0");
  pass("shutdown", "exit 0 " + std::to_string(took) + " ms after goodbye" + said);
}

}  // namespace

const char* to_string(Result r) {
  switch (r) {
    case Result::pass: return "pass";
    case Result::fail: return "fail";
    case Result::skip: return "skip";
  }
  return "?";
}

int Report::passed() const {
  return static_cast<int>(std::count_if(checks.begin(), checks.end(), [](const Check& c) { return c.result == Result::pass; }));
}
int Report::failed() const {
  return static_cast<int>(std::count_if(checks.begin(), checks.end(), [](const Check& c) { return c.result == Result::fail; }));
}
int Report::skipped() const {
  return static_cast<int>(std::count_if(checks.begin(), checks.end(), [](const Check& c) { return c.result == Result::skip; }));
}

json Report::to_json() const {
  json list = json::array();
  for (const auto& c : checks) {
    json j = {{"name", c.name}, {"result", to_string(c.result)}, {"reason", c.reason}};
    if (!c.output.empty()) j["output"] = c.output;
    list.push_back(std::move(j));
  }
  return {{"checks", list},   {"passed", passed()}, {"failed", failed()}, {"skipped", skipped()},
          {"plugin", plugin}, {"duration_ms", duration.count()}};
}

Report run(const Options& options, const std::function<void(const Check&)>& on_check) {
  Runner r(options, on_check);
  return r.run();
}

}  // namespace modelzoo::conformance
