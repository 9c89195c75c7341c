// A plugin that misbehaves on the bus, for integration tests. Started by the daemon like
// any plugin. It writes what the daemon answered to the file named by argv[1], one line
// per probe, then either exits or idles.
//
//   rogue_plugin REPORT garbage     bad frames, then wrong/duplicate hellos, then a good
//                                   hello followed by more garbage; then idles
//   rogue_plugin REPORT bad-version hello offering only protocol version 99
//   rogue_plugin REPORT flood       a good hello, then as fast as it can: heartbeats, and
//                                   replies, errors and 64 KiB chunks for requests never
//                                   made, and stderr lines; "sent N" lines in REPORT
//                                   every 10000 messages; exits on goodbye
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "modelzoo/bus/socket.h"

using namespace modelzoo;
using nlohmann::json;

namespace {

std::string env(const char* n) {
  const char* v = std::getenv(n);
  return v ? v : "";
}

json hello(const std::string& id, const std::string& token, json protocols = json::array({1})) {
  return {{"protocol", protocols}, {"plugin_id", id}, {"token", token}, {"name", "rogue"}, {"version", "0.0.1"},
          {"pid", ::getpid()}, {"kind", "registry"}, {"capabilities", json::array({"metadata"})},
          {"priority", 0}, {"handles", json::array({"rogue/*"})}};
}

// Sends `m` on a fresh connection and reports the daemon's answer (or "none").
std::string probe(zmq::context_t& ctx, const std::string& endpoint, bus::Message m) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  bus::configure_socket(s);
  s.connect(endpoint);
  bus::send(s, m);
  auto r = bus::receive_for(s, false, std::chrono::seconds(3));
  if (!r) return "none";
  std::string out(bus::to_string(r->message.type));
  if (r->message.error_code)  // appends: GCC 12 -O3 misreports `"lit" + std::string` (-Wrestrict, PR105651)
    out.append(" ").append(bus::to_string(*r->message.error_code)).append(" ").append(r->message.error_message);
  return out;
}

void send_raw(zmq::socket_t& s, const std::vector<std::string>& frames) {
  for (std::size_t i = 0; i < frames.size(); ++i)
    s.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  std::ofstream report(argv[1], std::ios::app);
  std::string mode = argv[2];
  std::string endpoint = env("MODELZOO_ENDPOINT"), id = env("MODELZOO_PLUGIN_ID"), token = env("MODELZOO_TOKEN");
  zmq::context_t ctx(1);

  if (mode == "bad-version") {
    report << "bad-version: " << probe(ctx, endpoint, bus::Message::make(bus::MessageType::hello, hello(id, token, json::array({99})))) << std::endl;
    return 0;
  }

  if (mode == "flood") {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    bus::configure_socket(s);
    s.connect(endpoint);
    auto h = bus::Message::make(bus::MessageType::hello, hello(id, token));
    bus::send(s, h);
    auto r = bus::receive_for(s, false, std::chrono::seconds(5));
    report << "hello: " << (r ? std::string(bus::to_string(r->message.type)) : "none") << std::endl;
    std::mt19937_64 rng(7);
    const std::string payload(64 * 1024, 'f');
    std::uint64_t sent = 0, dropped = 0;
    for (std::uint64_t round = 0;; ++round) {
      while (auto in = bus::receive_for(s, false, std::chrono::milliseconds(0))) {
        if (in->message.type == bus::MessageType::goodbye) {
          report << "sent " << sent << " dropped " << dropped << std::endl;
          return 0;
        }
      }
      for (int i = 0; i < 100; ++i) {
        bus::Message m;
        switch (i % 4) {
          case 0: m = bus::Message::make(bus::MessageType::heartbeat); break;
          case 1: m = bus::Message::make_reply(rng() | 1u << 31, {{"unsolicited", true}}); break;
          case 2: m = bus::Message::make_error(rng() | 1u << 31, bus::ErrorCode::internal, "unsolicited"); break;
          default:
            m = bus::Message::make(bus::MessageType::chunk, {{"offset", 0}});
            m.id = rng() | 1u << 31;
            m.data = zmq::message_t(payload.data(), payload.size());
        }
        if (bus::send(s, m)) {
          if (++sent % 10000 == 0) report << "sent " << sent << std::endl;
        } else {
          ++dropped;  // our queue is full: the daemon reads at its own pace
        }
      }
      if (round % 10 == 0) std::fprintf(stderr, "info flood line %llu\n", static_cast<unsigned long long>(round));
      if (dropped > 0 && round % 10 == 0) std::this_thread::yield();
    }
  }

  // 1. Garbage before any hello, on its own connection.
  {
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, 1000);
    s.connect(endpoint);
    std::mt19937 rng(42);
    for (int i = 0; i < 200; ++i) {
      std::string junk(rng() % 300, '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      send_raw(s, {junk});
    }
    send_raw(s, {"\x93\x01\x02\x03"});                      // msgpack, not a map
    send_raw(s, {"\x81\xa4type\xa5" "bogus"});                 // unknown type
    send_raw(s, {"\x81\xa4type\xa9heartbeat", "x", "y"});   // too many frames
    send_raw(s, {std::string(2 << 20, 'A')});                // over the envelope limit
    report << "garbage: sent" << std::endl;
  }
  // 2. Hellos that must be refused.
  report << "wrong-token: " << probe(ctx, endpoint, bus::Message::make(bus::MessageType::hello, hello(id, "not-the-token"))) << std::endl;
  report << "unknown-id: " << probe(ctx, endpoint, bus::Message::make(bus::MessageType::hello, hello("nobody.1", token))) << std::endl;
  // Every field with the wrong type: must be refused, never crash the daemon.
  json mistyped = {{"protocol", "one"}, {"plugin_id", 12}, {"token", json::object()}, {"name", json::array()},
                   {"version", 1.5}, {"pid", "me"}, {"kind", 7}, {"capabilities", 3}, {"priority", "high"}, {"handles", 9}};
  report << "mistyped-hello: " << probe(ctx, endpoint, bus::Message::make(bus::MessageType::hello, mistyped)) << std::endl;
  // The right id and token but a name and version that break the grammar.
  json bad_name = hello(id, token);
  bad_name["name"] = "../Evil Name";
  report << "bad-name: " << probe(ctx, endpoint, bus::Message::make(bus::MessageType::hello, bad_name)) << std::endl;

  // 3. The real hello, then garbage from an identified plugin.
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  bus::configure_socket(s);
  s.connect(endpoint);
  auto h = bus::Message::make(bus::MessageType::hello, hello(id, token));
  bus::send(s, h);
  auto r = bus::receive_for(s, false, std::chrono::seconds(3));
  report << "hello: " << (r ? std::string(bus::to_string(r->message.type)) : "none") << std::endl;
  report << "replayed-hello: " << probe(ctx, endpoint, bus::Message::make(bus::MessageType::hello, hello(id, token))) << std::endl;
  send_raw(s, {"\xc1"});                                            // never-used msgpack byte
  auto stray = bus::Message::make_reply(999999, {{"x", 1}});         // reply to nothing
  bus::send(s, stray);
  auto chunk = bus::Message::make(bus::MessageType::chunk, {{"offset", 0}});
  chunk.id = 424242;
  chunk.data = zmq::message_t(std::string("zzz"));
  bus::send(s, chunk);
  auto bye = bus::Message::make(bus::MessageType::goodbye, {{"reason", json::array({1, 2})}});  // mistyped reason
  bus::send(s, bye);
  auto bad_chunk = bus::Message::make(bus::MessageType::chunk, {{"offset", "zero"}});
  bad_chunk.id = 1;
  bad_chunk.data = zmq::message_t(std::string("z"));
  bus::send(s, bad_chunk);
  report << "identified-garbage: sent" << std::endl;
  // Stay alive answering heartbeats, so the daemon keeps us registered.
  while (true) {
    auto m = bus::receive_for(s, false, std::chrono::milliseconds(100));
    auto hb = bus::Message::make(bus::MessageType::heartbeat);
    bus::send(s, hb);
    if (m && m->message.type == bus::MessageType::goodbye) return 0;
  }
}
