// A registry plugin written against the raw protocol (no SDK), single-threaded like the Python
// example of docs/protocol.md, that breaks one rule on purpose, for the conformance kit's tests
// (tests/integration/plugin_kit_test.cc). It serves one model, broken/model 1.0.0, with one
// file, weights.bin (64 KiB of deterministic bytes).
//
//   modelzoo-test-broken-plugin [MODE]      (or MODELZOO_BROKEN_MODE=MODE)
//
// MODE, the rule it breaks (the kit check that must fail):
//   good                 none: a conformant plugin (every check passes)
//   ignore-reject        keeps running after a reject (reject.token, reject.protocol)
//   exit-zero-on-reject  exits with status 0 after a reject (reject.token)
//   ignore-version       accepts a welcome choosing a version it did not offer (welcome.version)
//   no-heartbeat         never sends a heartbeat (heartbeat)
//   wrong-name           metadata answers for another model (metadata)
//   exists-not-found     exists answers not_found instead of false (exists)
//   no-credit            sends every chunk at once, credit or not (download.credit)
//   wrong-sha            metadata declares a SHA-256 its bytes do not have (download)
//   ignore-cancel        goes on sending chunks after a cancel (download.cancel)
//   unknown-reply        answers unknown methods with a reply, not bad_request (unknown-method)
//   lax-names            answers not_found for invalid names, never bad_request (malformed)
//   lax-exists           exists answers false for an invalid name, not bad_request (malformed)
//   refuse-end           refuses a download from the very end of the file (download.resume)
//   answer-garbage       answers invalid messages with an error of id 0 (invalid-message)
//   crash-on-garbage     exits on the first invalid message (invalid-message)
//   ignore-silence       never exits when the daemon goes silent (liveness)
//   ignore-goodbye       ignores goodbye (shutdown)
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <thread>

#include "modelzoo/bus/names.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/bus/socket.h"

using namespace modelzoo;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::string env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

const std::string kModel = "broken/model";
const std::string kVersion = "1.0.0";
const std::string kFile = "weights.bin";

struct Download {
  std::uint64_t offset = 0, at = 0, credit = 0, chunk = 0;
  Clock::time_point stall_deadline;
  milliseconds stall{30000};
  bool cancelled = false;
};

class Plugin {
 public:
  Plugin(std::string mode) : mode_(std::move(mode)), sock_(ctx_, zmq::socket_type::dealer) {
    data_.resize(64 * 1024);
    std::mt19937 rng(7);
    for (auto& c : data_) c = static_cast<char>(rng());
    sha_ = bus::Sha256::of(data_);
    if (mode_ == "wrong-sha") sha_ = bus::Sha256::of("not these bytes");
  }

  int run() {
    const std::string endpoint = env("MODELZOO_ENDPOINT");
    if (endpoint.empty()) {
      std::cerr << "error MODELZOO_ENDPOINT is not set: run me under modelzood or `modelzoo plugin test`\n";
      return 2;
    }
    bus::configure_socket(sock_);
    sock_.connect(endpoint);
    if (int status = handshake(); status >= 0) return status;
    return serve();
  }

 private:
  bool is(const char* m) const { return mode_ == m; }

  void send(bus::Message m) { bus::send(sock_, m); }
  void reply(std::uint64_t id, json body) { send(bus::Message::make_reply(id, std::move(body))); }
  void fail(std::uint64_t id, bus::ErrorCode code, const std::string& text) { send(bus::Message::make_error(id, code, text)); }

  // -1 when welcomed, else the exit status.
  int handshake() {
    send(bus::Message::make(bus::MessageType::hello,
                            {{"protocol", json::array({1})},
                             {"plugin_id", env("MODELZOO_PLUGIN_ID")},
                             {"token", env("MODELZOO_TOKEN")},
                             {"name", "broken"},
                             {"version", "0.0.1"},
                             {"pid", ::getpid()},
                             {"kind", "registry"},
                             {"capabilities", json::array({"metadata", "exists", "list", "download"})},
                             {"priority", 0},
                             {"handles", json::array({"broken/*"})}}));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      std::optional<bus::Received> r;
      try {
        r = bus::receive_for(sock_, false, milliseconds(100));
      } catch (const bus::ProtocolError&) {
        continue;
      }
      if (!r) continue;
      const auto& m = r->message;
      if (m.type == bus::MessageType::reject) {
        std::cerr << "error rejected: " << m.error_message << "\n";
        if (is("ignore-reject")) {
          while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        return is("exit-zero-on-reject") ? 0 : 3;
      }
      if (m.type != bus::MessageType::welcome) continue;
      if (bus::get_int(m.body, "protocol") != 1 && !is("ignore-version")) {
        std::cerr << "error the daemon chose a protocol version I did not offer\n";
        return 3;
      }
      heartbeat_ = milliseconds(bus::get_uint(m.body, "heartbeat_ms").value_or(1000));
      liveness_ = static_cast<int>(bus::get_uint(m.body, "heartbeat_liveness").value_or(3));
      return -1;
    }
    std::cerr << "error no welcome within 10 s\n";
    return 3;
  }

  std::optional<std::string> name_problem(const json& body, bool version_required) {
    auto name = body.find("name");
    if (name == body.end() || !name->is_string()) return "request lacks string parameter 'name'";
    if (auto why = bus::check_model_name(name->get<std::string>())) return *why;
    auto version = body.find("version");
    if (version_required && (version == body.end() || !version->is_string())) return "request lacks string parameter 'version'";
    if (version != body.end() && !version->is_null()) {
      if (!version->is_string()) return "parameter 'version' is not a string";
      if (version_required || !version->get<std::string>().empty())
        if (auto why = bus::check_version(version->get<std::string>())) return *why;
    }
    return std::nullopt;
  }

  bool ours(const json& body) const {
    return bus::get_string(body, "name") == kModel &&
           (bus::get_string(body, "version").empty() || bus::get_string(body, "version") == kVersion);
  }

  json metadata() const {
    return {{"name", is("wrong-name") ? "broken/other" : kModel},
            {"version", kVersion},
            {"description", "a plugin that breaks a rule on purpose"},
            {"license", "MIT"},
            {"files", json::array({{{"name", kFile}, {"size", data_.size()}, {"sha256", sha_}}})}};
  }

  void on_request(bus::Message& m) {
    const json& b = m.body;
    const bool strict = !is("lax-names");
    if (m.method == "metadata" || m.method == "exists") {
      if (auto why = name_problem(b, false); why && strict &&
          !(m.method == "exists" && is("lax-exists") && b.contains("name") && b["name"].is_string()))
        return fail(m.id, bus::ErrorCode::bad_request, *why);
      if (m.method == "exists") {
        if (!ours(b) && is("exists-not-found")) return fail(m.id, bus::ErrorCode::not_found, "no such model");
        return reply(m.id, {{"exists", ours(b)}});
      }
      if (!ours(b)) return fail(m.id, bus::ErrorCode::not_found, "no model '" + bus::get_string(b, "name") + "'");
      return reply(m.id, metadata());
    }
    if (m.method == "list")
      return reply(m.id, {{"models", json::array({{{"name", kModel}, {"versions", json::array({kVersion})},
                                                    {"description", "a plugin that breaks a rule on purpose"}}})}});
    if (m.method == "download") {
      std::optional<std::string> why = name_problem(b, true);
      auto file = b.find("file");
      if (!why && (file == b.end() || !file->is_string())) why = "request lacks string parameter 'file'";
      if (!why)
        if (auto bad = bus::check_file_name(file->get<std::string>())) why = *bad;
      auto uint_param = [&](const char* key, std::uint64_t def, std::uint64_t lo, std::uint64_t hi) -> std::uint64_t {
        auto it = b.find(key);
        if (it == b.end() || it->is_null()) return def;
        if (!it->is_number_unsigned() || it->get<std::uint64_t>() < lo || it->get<std::uint64_t>() > hi) {
          if (!why) why = std::string("parameter '") + key + "' is not an integer in range";
          return def;
        }
        return it->get<std::uint64_t>();
      };
      Download d;
      d.offset = d.at = uint_param("offset", 0, 0, UINT64_MAX);
      d.credit = uint_param("credit", 8, 1, 1024);
      d.chunk = uint_param("chunk_size", 1 << 20, 4096, 8 << 20);
      if (why && strict) return fail(m.id, bus::ErrorCode::bad_request, *why);
      if (!ours(b) || bus::get_string(b, "file") != kFile)
        return fail(m.id, bus::ErrorCode::not_found, "no file '" + bus::get_string(b, "file") + "'");
      if (d.offset > data_.size()) return fail(m.id, bus::ErrorCode::bad_request, "offset past the end");
      if (d.offset == data_.size() && is("refuse-end")) return fail(m.id, bus::ErrorCode::bad_request, "nothing to send");
      d.stall = milliseconds(m.timeout_ms ? m.timeout_ms : 60000);
      d.stall_deadline = Clock::now() + d.stall;
      downloads_[m.id] = d;
      return;
    }
    if (is("unknown-reply")) return reply(m.id, json::object());
    fail(m.id, bus::ErrorCode::bad_request, "unknown method '" + m.method + "'");
  }

  void stream() {
    for (auto it = downloads_.begin(); it != downloads_.end();) {
      auto& [id, d] = *it;
      while ((d.credit > 0 || is("no-credit")) && d.at < data_.size()) {
        std::size_t n = std::min<std::uint64_t>(d.chunk, data_.size() - d.at);
        auto c = bus::Message::make(bus::MessageType::chunk, {{"offset", d.at}});
        c.id = id;
        c.data = zmq::message_t(data_.data() + d.at, n);
        send(std::move(c));
        d.at += n;
        if (d.credit > 0) --d.credit;
        d.stall_deadline = Clock::now() + d.stall;
      }
      if (d.at >= data_.size()) {
        if (!d.cancelled) reply(id, {{"offset", d.offset}, {"size", d.at - d.offset}});
        it = downloads_.erase(it);
      } else if (Clock::now() > d.stall_deadline) {
        if (!d.cancelled) fail(id, bus::ErrorCode::timeout, "no credit from the daemon within the stall timeout");
        it = downloads_.erase(it);
      } else {
        ++it;
      }
    }
  }

  int serve() {
    auto last_heard = Clock::now();
    auto next_beat = Clock::now() + heartbeat_;
    while (true) {
      auto now = Clock::now();
      if (now >= next_beat) {
        if (!is("no-heartbeat")) send(bus::Message::make(bus::MessageType::heartbeat));
        next_beat = now + heartbeat_;
      }
      if (now - last_heard > heartbeat_ * liveness_ && !is("ignore-silence")) {
        std::cerr << "error the daemon went silent; exiting\n";
        return 4;
      }
      stream();
      auto wait = std::chrono::duration_cast<milliseconds>(next_beat - now);
      if (!downloads_.empty()) wait = std::min(wait, milliseconds(20));
      std::optional<bus::Received> r;
      try {
        r = bus::receive_for(sock_, false, std::max(wait, milliseconds(0)));
      } catch (const bus::ProtocolError& e) {
        if (is("crash-on-garbage")) {
          std::cerr << "error cannot decode a message: " << e.what() << "\n";
          return 1;
        }
        if (is("answer-garbage")) fail(0, bus::ErrorCode::bad_request, std::string("invalid message: ") + e.what());
        std::cerr << "warn dropped an invalid message: " << e.what() << "\n";
        last_heard = Clock::now();
        continue;
      }
      if (!r) continue;
      last_heard = Clock::now();
      auto& m = r->message;
      switch (m.type) {
        case bus::MessageType::goodbye:
          if (is("ignore-goodbye")) break;
          send(bus::Message::make(bus::MessageType::goodbye, {{"reason", "asked to stop"}}));
          return 0;
        case bus::MessageType::credit:
          if (auto it = downloads_.find(m.id); it != downloads_.end())
            it->second.credit += std::min<std::uint64_t>(bus::get_uint(m.body, "chunks").value_or(0), 1024);
          break;
        case bus::MessageType::cancel:
          if (auto it = downloads_.find(m.id); it != downloads_.end()) {
            if (is("ignore-cancel")) it->second.cancelled = true;  // no final answer, but the chunks go on
            else downloads_.erase(it);
          }
          break;
        case bus::MessageType::request:
          on_request(m);
          break;
        default:
          break;
      }
    }
  }

  std::string mode_;
  zmq::context_t ctx_{1};
  zmq::socket_t sock_;
  std::string data_, sha_;
  milliseconds heartbeat_{1000};
  int liveness_ = 3;
  std::map<std::uint64_t, Download> downloads_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : env("MODELZOO_BROKEN_MODE");
  if (mode.empty()) mode = "good";
  static const char* modes[] = {"good", "ignore-reject", "exit-zero-on-reject", "ignore-version", "no-heartbeat",
                                "wrong-name", "exists-not-found", "no-credit", "wrong-sha", "ignore-cancel",
                                "unknown-reply", "lax-names", "lax-exists", "refuse-end", "answer-garbage",
                                "crash-on-garbage", "ignore-silence", "ignore-goodbye"};
  if (std::find(std::begin(modes), std::end(modes), mode) == std::end(modes)) {
    std::cerr << "error unknown mode '" << mode << "'\n";
    return 2;
  }
  Plugin p(mode);
  return p.run();
}
