// Fuzz target: the bus wire format (bus/src/message.cc), as the daemon, the SDK and the client
// receive it. The input is up to three frames (fuzz_util.h split_parts: u16 length + bytes),
// decoded as one ZeroMQ message (envelope + optional data frame) and the first alone as an
// envelope. A decoded message is then read the way handlers read bodies (get_string, get_uint,
// get_int, model references, metadata, summaries), encoded again, and must decode to the same
// message: the encoder and the decoder agree on everything the decoder accepts.
#include <cstdint>

#include "fuzz_util.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/names.h"

namespace bus = modelzoo::bus;

namespace {

// What handlers do with a body: typed accessors on the fields they know, never trusting types.
void read_like_handlers(const bus::Message& m) {
  const auto& b = m.body;
  for (const char* k : {"name", "version", "model", "file", "token", "plugin_id", "kind", "reason", "action",
                        "message", "path"})
    (void)bus::get_string(b, k, "fallback");
  for (const char* k : {"offset", "chunks", "size", "credits", "heartbeat_ms", "heartbeat_liveness"})
    (void)bus::get_uint(b, k);
  for (const char* k : {"pid", "priority", "protocol"}) (void)bus::get_int(b, k);
  try {
    (void)bus::parse_model_ref(bus::get_string(b, "model"));
  } catch (const bus::Error&) {
  }
  try {
    (void)bus::ModelMetadata::from_json(b);
  } catch (const bus::Error&) {
  }
  if (auto it = b.find("metadata"); it != b.end()) {
    try {
      auto md = bus::ModelMetadata::from_json(*it);
      // What was accepted can be sent again and is accepted again.
      auto again = bus::ModelMetadata::from_json(md.to_json());
      FUZZ_ASSERT(again.files.size() == md.files.size() && again.total_size() == md.total_size());
    } catch (const bus::Error&) {
    }
  }
  if (auto it = b.find("models"); it != b.end() && it->is_array()) {
    for (const auto& e : *it) {
      try {
        (void)bus::ModelSummary::from_json(e);
      } catch (const bus::Error&) {
      }
    }
  }
  (void)b.dump();  // logs and events dump bodies: must not throw on anything decoded
}

void round_trip(const bus::Message& m) {
  std::string env = bus::encode_envelope(m);
  bus::Message again = bus::decode(env.data(), env.size());  // must not throw
  FUZZ_ASSERT(again.type == m.type);
  FUZZ_ASSERT(again.id == m.id);
  FUZZ_ASSERT(again.method == m.method);
  FUZZ_ASSERT(again.timeout_ms == m.timeout_ms);
  FUZZ_ASSERT(again.error_code == m.error_code);
  FUZZ_ASSERT(again.error_message == m.error_message);
  FUZZ_ASSERT(bus::to_msgpack(again.body) == bus::to_msgpack(m.body));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parts = modelzoo::fuzz::split_parts(data, size, 3);
  try {
    bus::Message m = bus::decode(parts[0].data(), parts[0].size());
    read_like_handlers(m);
    round_trip(m);
  } catch (const bus::ProtocolError&) {
  }
  std::vector<zmq::message_t> frames;
  for (auto p : parts) frames.emplace_back(p.data(), p.size());
  try {
    bus::Message m = bus::decode(frames);
    if (m.type == bus::MessageType::chunk) FUZZ_ASSERT(m.data.size() == parts[1].size());
  } catch (const bus::ProtocolError&) {
  }
  // Bodies alone (from_msgpack is also what reads a body nested in other encodings).
  try {
    auto j = bus::from_msgpack(parts[0].data(), parts[0].size());
    FUZZ_ASSERT(bus::from_msgpack(bus::to_msgpack(j).data(), bus::to_msgpack(j).size()) == j || j != j);
  } catch (const bus::ProtocolError&) {
  }
  return 0;
}
