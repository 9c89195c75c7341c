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

// The typed path (docs/architecture.md, "The hot path"): decoding with BodyForm::raw accepts
// and refuses exactly what the JSON form does, with the same error, and its body is the same
// value; metadata read straight from msgpack matches from_json, error text included.
void raw_form_agrees(std::string_view frame) {
  std::string json_error, raw_error;
  bus::Message j, r;
  try {
    j = bus::decode(frame.data(), frame.size(), bus::BodyForm::json);
  } catch (const bus::ProtocolError& e) {
    json_error = e.what();
  }
  try {
    r = bus::decode(frame.data(), frame.size(), bus::BodyForm::raw);
  } catch (const bus::ProtocolError& e) {
    raw_error = e.what();
  }
  FUZZ_ASSERT(json_error == raw_error);
  if (!json_error.empty()) return;
  FUZZ_ASSERT(!r.raw_body.empty() && r.type == j.type && r.id == j.id && r.method == j.method);
  std::string from_json_outcome, from_msgpack_outcome;
  try {
    from_json_outcome = bus::ModelMetadata::from_json(j.body).to_msgpack();
  } catch (const bus::Error& e) {
    from_json_outcome = std::string("error: ") + e.what();
  }
  try {
    from_msgpack_outcome = bus::ModelMetadata::from_msgpack(r.raw_body.data(), r.raw_body.size()).to_msgpack();
  } catch (const bus::Error& e) {
    from_msgpack_outcome = std::string("error: ") + e.what();
  }
  FUZZ_ASSERT(from_json_outcome == from_msgpack_outcome);
  const std::string reencoded = bus::encode_envelope(r);  // the raw body, verbatim
  FUZZ_ASSERT(bus::decode(reencoded.data(), reencoded.size(), bus::BodyForm::raw).raw_body == r.raw_body);
  bus::materialize_body(r);
  FUZZ_ASSERT(bus::to_msgpack(r.body) == bus::to_msgpack(j.body) || r.body != r.body);
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
  raw_form_agrees(parts[0]);
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
