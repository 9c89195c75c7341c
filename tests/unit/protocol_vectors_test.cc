// Checks the reference codec (bus/include/modelzoo/bus/message.h) against the protocol's test
// vectors, docs/protocol-vectors.json (docs/protocol.md, "Test vectors"). The Python SDK's tests
// check the same file, so neither implementation can drift from the spec or from the other.
//
// For every valid vector: decoding its frames gives its message, and encoding its message gives
// its frames byte for byte. Non-canonical vectors decode to their message. Invalid vectors are
// rejected with a ProtocolError naming the reason. Events encode and decode as given. And the
// file covers every message type, error code, method, hook point and hook action.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"

#ifndef MODELZOO_SOURCE_DIR
#error "MODELZOO_SOURCE_DIR must name the source tree (set in tests/unit/CMakeLists.txt)"
#endif

namespace {

namespace bus = modelzoo::bus;
using bus::ErrorCode;
using bus::MessageType;
using nlohmann::json;

const std::vector<MessageType> kAllTypes = {
    MessageType::hello,    MessageType::welcome, MessageType::reject,   MessageType::request,
    MessageType::reply,    MessageType::error,   MessageType::progress, MessageType::chunk,
    MessageType::credit,   MessageType::cancel,  MessageType::heartbeat, MessageType::goodbye};
const std::vector<ErrorCode> kAllCodes = {ErrorCode::not_found,   ErrorCode::unavailable,
                                          ErrorCode::timeout,     ErrorCode::bad_request,
                                          ErrorCode::unauthorized, ErrorCode::internal,
                                          ErrorCode::rejected};
// Every method of docs/protocol.md: registry methods, the extension hook, client methods.
const std::vector<std::string> kAllMethods = {"metadata", "exists", "list",   "download", "hook",
                                              "status",   "plugins", "plugin.reset", "models",
                                              "show",     "pull",   "load",   "ping"};
const std::vector<std::string> kHookPoints = {"pre-download", "post-download", "pre-load", "post-load"};
const std::vector<std::string> kHookActions = {"continue", "reject", "replace", "rewrite"};

const json& vectors() {
  static const json doc = [] {
    const std::string path = MODELZOO_SOURCE_DIR "/docs/protocol-vectors.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return json::parse(in);
  }();
  return doc;
}

const json& section(const char* name) { return vectors().at(name); }

// ---------------------------------------------------------------- hex

std::optional<std::string> unhex(std::string_view h) {
  auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // uppercase is not allowed: the file's hex is lowercase
  };
  if (h.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(h.size() / 2);
  for (std::size_t i = 0; i < h.size(); i += 2) {
    int hi = digit(h[i]), lo = digit(h[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::string hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string bytes_of(const json& hex_string) {
  auto b = unhex(hex_string.get<std::string>());
  if (!b) throw std::runtime_error("not lowercase hex: " + hex_string.get<std::string>().substr(0, 40));
  return *b;
}

std::vector<std::string> frame_bytes(const json& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.push_back(bytes_of(f));
  return out;
}

std::vector<zmq::message_t> zmq_frames(const std::vector<std::string>& frames) {
  std::vector<zmq::message_t> out;
  for (const auto& f : frames) out.emplace_back(f.data(), f.size());
  return out;
}

// ---------------------------------------------------------------- message <-> JSON

bool has_id(MessageType t) {
  return t == MessageType::request || t == MessageType::reply || t == MessageType::error ||
         t == MessageType::progress || t == MessageType::chunk || t == MessageType::credit ||
         t == MessageType::cancel;
}
bool has_error(MessageType t) { return t == MessageType::error || t == MessageType::reject; }

// The keys a vector's `message` has for its type (the schema: exactly these).
std::set<std::string> message_keys(MessageType t) {
  std::set<std::string> keys = {"type", "body"};
  if (has_id(t)) keys.insert("id");
  if (t == MessageType::request) keys.insert({"method", "timeout_ms"});
  if (has_error(t)) keys.insert("error");
  if (t == MessageType::chunk) keys.insert("data_hex");
  return keys;
}

MessageType type_of(const json& message) {
  auto t = bus::message_type_from_string(message.at("type").get<std::string>());
  if (!t) throw std::runtime_error("unknown type in vector: " + message.at("type").dump());
  return *t;
}

// The bus::Message a vector's `message` describes.
bus::Message message_of(const json& m) {
  bus::Message msg;
  msg.type = type_of(m);
  if (m.contains("id")) msg.id = m.at("id").get<std::uint64_t>();
  if (m.contains("method")) msg.method = m.at("method").get<std::string>();
  if (m.contains("timeout_ms")) msg.timeout_ms = m.at("timeout_ms").get<std::uint32_t>();
  if (m.contains("error")) {
    msg.error_code = bus::error_code_from_string(m.at("error").at("code").get<std::string>());
    if (!msg.error_code) throw std::runtime_error("unknown error code in vector: " + m.at("error").dump());
    msg.error_message = m.at("error").at("message").get<std::string>();
  }
  msg.body = m.at("body");
  if (m.contains("data_hex")) {
    std::string data = bytes_of(m.at("data_hex"));
    msg.data = zmq::message_t(data.data(), data.size());
  }
  return msg;
}

// Equality that also tells a float from an integer and a signed from an unsigned integer
// (json's operator== compares numbers by value). Returns the path of the first difference.
std::optional<std::string> difference(const json& want, const json& got, const std::string& path = "body") {
  if (want.type() != got.type())
    return path + ": expected " + want.dump() + " (" + want.type_name() + "), got " + got.dump() + " (" +
           got.type_name() + ")";
  if (want.is_object()) {
    for (const auto& [k, v] : want.items()) {
      if (!got.contains(k)) return path + "." + k + ": missing";
      if (auto d = difference(v, got.at(k), path + "." + k)) return d;
    }
    for (const auto& [k, v] : got.items())
      if (!want.contains(k)) return path + "." + k + ": unexpected";
    return std::nullopt;
  }
  if (want.is_array()) {
    if (want.size() != got.size())
      return path + ": expected " + std::to_string(want.size()) + " entries, got " + std::to_string(got.size());
    for (std::size_t i = 0; i < want.size(); ++i)
      if (auto d = difference(want[i], got[i], path + "[" + std::to_string(i) + "]")) return d;
    return std::nullopt;
  }
  if (want != got) return path + ": expected " + want.dump() + ", got " + got.dump();
  return std::nullopt;
}

// Asserts that `got` (decoded) means what the vector's `message` says.
void expect_means(const json& want, const bus::Message& got) {
  const MessageType type = type_of(want);
  EXPECT_EQ(bus::to_string(got.type), bus::to_string(type));
  EXPECT_EQ(got.id, want.value("id", std::uint64_t{0}));
  EXPECT_EQ(got.method, want.value("method", std::string()));
  EXPECT_EQ(got.timeout_ms, want.value("timeout_ms", std::uint32_t{0}));
  if (want.contains("error")) {
    ASSERT_TRUE(got.error_code.has_value());
    EXPECT_EQ(bus::to_string(*got.error_code), want["error"]["code"].get<std::string>());
    EXPECT_EQ(got.error_message, want["error"]["message"].get<std::string>());
  } else {
    EXPECT_FALSE(got.error_code.has_value());
  }
  if (auto d = difference(want.at("body"), got.body)) ADD_FAILURE() << *d;
  if (type == MessageType::chunk)
    EXPECT_EQ(hex(got.data.to_string_view()), want.at("data_hex").get<std::string>());
  else
    EXPECT_EQ(got.data.size(), 0u);
}

// ---------------------------------------------------------------- generated frames

std::vector<std::string> generated_frames(const json& g) {
  const std::string kind = g.at("kind").get<std::string>();
  if (kind == "oversized_str") {
    const auto n = g.at("bytes").get<std::size_t>();
    std::string frame = bus::encode_envelope(
        bus::Message::make(MessageType::heartbeat, {{"pad", std::string(n - 31, 'x')}}));
    if (frame.size() != n) throw std::runtime_error("oversized_str frame has the wrong size");
    return {frame};
  }
  if (kind == "oversized_data") {
    bus::Message chunk = bus::Message::make(MessageType::chunk, {{"offset", 0}});
    chunk.id = 1;
    return {bus::encode_envelope(chunk), std::string(g.at("bytes").get<std::size_t>(), '\0')};
  }
  if (kind == "long_array") {
    json pad = json::array();
    for (std::size_t i = 0, n = g.at("entries").get<std::size_t>(); i < n; ++i) pad.push_back(0);
    return {bus::encode_envelope(bus::Message::make(MessageType::heartbeat, {{"pad", std::move(pad)}}))};
  }
  throw std::runtime_error("unknown generate kind '" + kind + "'");
}

// ---------------------------------------------------------------- the file itself

TEST(ProtocolVectors, FileHasTheDocumentedShape) {
  const json& doc = vectors();
  EXPECT_EQ(doc.at("version"), 1);
  EXPECT_FALSE(doc.at("schema").get<std::string>().empty());
  EXPECT_FALSE(doc.at("canonical_encoding").get<std::string>().empty());
  std::set<std::string> names;
  for (const char* s : {"valid", "noncanonical", "invalid", "events"}) {
    ASSERT_TRUE(doc.at(s).is_array()) << s;
    EXPECT_FALSE(doc.at(s).empty()) << s;
    for (const auto& v : doc.at(s)) {
      const std::string name = v.at("name").get<std::string>();
      SCOPED_TRACE(name);
      EXPECT_FALSE(name.empty());
      EXPECT_TRUE(names.insert(name).second) << "duplicate vector name";
      if (std::string_view(s) != "invalid") {
        EXPECT_FALSE(v.at("description").get<std::string>().empty());
      }
      EXPECT_NE(v.contains("frames"), v.contains("generate")) << "frames or generate, not both";
      if (v.contains("frames")) {
        ASSERT_TRUE(v.at("frames").is_array());
        for (const auto& f : v.at("frames")) EXPECT_TRUE(unhex(f.get<std::string>())) << "not lowercase hex";
      }
    }
  }
  for (const char* s : {"valid", "noncanonical"}) {
    for (const auto& v : section(s)) {
      SCOPED_TRACE(v.at("name").get<std::string>());
      const json& m = v.at("message");
      std::set<std::string> keys;
      for (const auto& [k, _] : m.items()) keys.insert(k);
      EXPECT_EQ(keys, message_keys(type_of(m)));
      EXPECT_TRUE(m.at("body").is_object());
      if (m.contains("error")) {
        EXPECT_EQ(m.at("error").size(), 2u);
      }
      EXPECT_EQ(v.at("frames").size(), type_of(m) == MessageType::chunk ? 2u : 1u);
    }
  }
  for (const auto& v : section("invalid")) EXPECT_TRUE(v.at("reason").is_string()) << v.at("name");
}

// ---------------------------------------------------------------- valid vectors

TEST(ProtocolVectors, ValidVectorsDecodeToTheirMessage) {
  for (const auto& v : section("valid")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    auto frames = zmq_frames(frame_bytes(v.at("frames")));
    try {
      bus::Message m = bus::decode(frames);
      expect_means(v.at("message"), m);
      // Decoding and encoding again gives the same bytes: the vectors are canonical.
      EXPECT_EQ(hex(bus::encode_envelope(m)), v.at("frames")[0].get<std::string>());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "decode threw: " << e.what();
    }
  }
}

TEST(ProtocolVectors, ValidVectorsEncodeToTheirFrames) {
  for (const auto& v : section("valid")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const json& want = v.at("frames");
    bus::Message m = message_of(v.at("message"));
    EXPECT_EQ(hex(bus::encode_envelope(m)), want[0].get<std::string>());
    if (m.type == MessageType::chunk) {
      ASSERT_EQ(want.size(), 2u);
      EXPECT_EQ(hex(m.data.to_string_view()), want[1].get<std::string>());
    }
  }
}

// The body of every valid vector encodes on its own (to_msgpack, as events are encoded) to the
// bytes that end its envelope frame: the body is the envelope's last field.
TEST(ProtocolVectors, BodiesEncodeCanonicallyWithToMsgpack) {
  for (const auto& v : section("valid")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const std::string frame = v.at("frames")[0].get<std::string>();
    const std::string body = hex(bus::to_msgpack(v.at("message").at("body")));
    ASSERT_GE(frame.size(), body.size());
    EXPECT_EQ(frame.substr(frame.size() - body.size()), body);
  }
}

// ---------------------------------------------------------------- noncanonical vectors

TEST(ProtocolVectors, NoncanonicalVectorsDecodeToTheirMessage) {
  for (const auto& v : section("noncanonical")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    auto frames = zmq_frames(frame_bytes(v.at("frames")));
    try {
      expect_means(v.at("message"), bus::decode(frames));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "decode threw: " << e.what();
    }
    // They are there to show what a decoder must accept besides the canonical form.
    EXPECT_NE(hex(bus::encode_envelope(message_of(v.at("message")))), v.at("frames")[0].get<std::string>())
        << "this encoding is canonical: move it to 'valid'";
  }
}

// ---------------------------------------------------------------- invalid vectors

TEST(ProtocolVectors, InvalidVectorsAreRejected) {
  for (const auto& v : section("invalid")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const auto bytes = v.contains("generate") ? generated_frames(v.at("generate")) : frame_bytes(v.at("frames"));
    auto frames = zmq_frames(bytes);
    const std::string reason = v.at("reason").get<std::string>();
    try {
      bus::Message m = bus::decode(frames);
      ADD_FAILURE() << "decoded as a " << bus::to_string(m.type) << ", expected a ProtocolError containing '"
                    << reason << "'";
    } catch (const bus::ProtocolError& e) {
      EXPECT_NE(std::string_view(e.what()).find(reason), std::string_view::npos)
          << "the decoder says '" << e.what() << "', expected it to contain '" << reason << "'";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw something other than a ProtocolError: " << e.what();
    }
  }
}

// Every generated frame is exactly as large as the vector says; the limits are one byte over.
TEST(ProtocolVectors, GeneratedFramesHaveTheirSize) {
  for (const auto& v : section("invalid")) {
    if (!v.contains("generate")) continue;
    SCOPED_TRACE(v.at("name").get<std::string>());
    const json& g = v.at("generate");
    auto frames = generated_frames(g);
    const std::string kind = g.at("kind").get<std::string>();
    if (kind == "oversized_str") {
      ASSERT_EQ(frames.size(), 1u);
      EXPECT_EQ(frames[0].size(), g.at("bytes").get<std::size_t>());
      EXPECT_EQ(frames[0].size(), bus::kMaxEnvelopeBytes + 1);
    } else if (kind == "oversized_data") {
      ASSERT_EQ(frames.size(), 2u);
      EXPECT_EQ(frames[1].size(), bus::kMaxDataBytes + 1);
    } else if (kind == "long_array") {
      EXPECT_EQ(g.at("entries").get<std::size_t>(), 65537u);
    }
  }
}

// ---------------------------------------------------------------- events

TEST(ProtocolVectors, EventsEncodeAndDecode) {
  for (const auto& v : section("events")) {
    SCOPED_TRACE(v.at("name").get<std::string>());
    const auto frames = frame_bytes(v.at("frames"));
    ASSERT_EQ(frames.size(), 2u);
    const json& event = v.at("event");
    const std::string topic = event.at("topic").get<std::string>();
    EXPECT_EQ(frames[0], topic);
    const json& body = event.at("body");
    EXPECT_EQ(body.at("topic"), topic);
    EXPECT_TRUE(body.at("time").is_string());
    EXPECT_EQ(body.at("source"), "modelzood");
    EXPECT_EQ(hex(bus::to_msgpack(body)), v.at("frames")[1].get<std::string>());
    try {
      if (auto d = difference(body, bus::from_msgpack(frames[1].data(), frames[1].size()))) ADD_FAILURE() << *d;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "from_msgpack threw: " << e.what();
    }
  }
}

// ---------------------------------------------------------------- coverage

TEST(ProtocolVectors, CoverEveryTypeCodeMethodHookPointAndAction) {
  std::set<std::string> types, codes, methods, points, actions;
  for (const auto& v : section("valid")) {
    const json& m = v.at("message");
    types.insert(m.at("type").get<std::string>());
    if (m.contains("error")) codes.insert(m.at("error").at("code").get<std::string>());
    if (m.contains("method")) methods.insert(m.at("method").get<std::string>());
    if (m.value("method", "") == "hook") points.insert(m.at("body").value("point", ""));
    if (m.at("type") == "reply" && m.at("body").contains("action"))
      actions.insert(m.at("body").at("action").get<std::string>());
  }
  for (MessageType t : kAllTypes) EXPECT_TRUE(types.count(std::string(bus::to_string(t)))) << bus::to_string(t);
  for (ErrorCode c : kAllCodes) EXPECT_TRUE(codes.count(std::string(bus::to_string(c)))) << bus::to_string(c);
  for (const auto& m : kAllMethods) EXPECT_TRUE(methods.count(m)) << "no request for method " << m;
  for (const auto& p : kHookPoints) EXPECT_TRUE(points.count(p)) << "no hook request at " << p;
  for (const auto& a : kHookActions) EXPECT_TRUE(actions.count(a)) << "no hook reply with action " << a;
  // The lists above are complete: every enumerator has a name the codec knows.
  EXPECT_EQ(types.size(), kAllTypes.size());
  EXPECT_EQ(codes.size(), kAllCodes.size());
}

}  // namespace
