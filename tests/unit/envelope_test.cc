// Unit tests of the bus envelope (bus/include/modelzoo/bus/message.h): encoding, decoding,
// msgpack <-> JSON conversion, limits and the rejection of hostile input.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "msgpack_build.h"

namespace {

using modelzoo::bus::decode;
using modelzoo::bus::encode_envelope;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::from_msgpack;
using modelzoo::bus::kMaxDataBytes;
using modelzoo::bus::kMaxEnvelopeBytes;
using modelzoo::bus::Message;
using modelzoo::bus::MessageType;
using modelzoo::bus::ProtocolError;
using modelzoo::bus::to_msgpack;
using nlohmann::json;
using namespace std::string_literals;
using modelzoo::testing::Packer;

// Tests that demonstrate a bug in the code under test are skipped unless this is set.

const std::vector<MessageType> kAllTypes = {
    MessageType::hello,    MessageType::welcome, MessageType::reject, MessageType::request,
    MessageType::reply,    MessageType::error,   MessageType::progress, MessageType::chunk,
    MessageType::credit,   MessageType::cancel,  MessageType::heartbeat, MessageType::goodbye};
const std::vector<ErrorCode> kAllCodes = {ErrorCode::not_found,   ErrorCode::unavailable,
                                          ErrorCode::timeout,     ErrorCode::bad_request,
                                          ErrorCode::unauthorized, ErrorCode::internal,
                                          ErrorCode::rejected};

// Hostile shapes are written with msgpack-c's packer (msgpack_build.h).
using modelzoo::testing::packed;
using modelzoo::testing::str;

Message decode_bytes(const std::string& bytes) { return decode(bytes.data(), bytes.size()); }

zmq::message_t frame(const std::string& bytes) { return zmq::message_t(bytes.data(), bytes.size()); }

std::vector<zmq::message_t> frames_of(std::initializer_list<std::string> parts) {
  std::vector<zmq::message_t> v;
  for (const auto& p : parts) v.push_back(frame(p));
  return v;
}

// Asserts that decoding `bytes` throws ProtocolError whose message contains `needle`.
void expect_rejected(const std::string& bytes, const std::string& needle) {
  try {
    decode_bytes(bytes);
    ADD_FAILURE() << "decoded, expected a ProtocolError containing '" << needle << "'";
  } catch (const ProtocolError& e) {
    EXPECT_THAT(e.what(), testing::HasSubstr(needle));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ProtocolError: " << e.what();
  }
}
void expect_frames_rejected(std::vector<zmq::message_t> frames, const std::string& needle) {
  try {
    decode(frames);
    ADD_FAILURE() << "decoded, expected a ProtocolError containing '" << needle << "'";
  } catch (const ProtocolError& e) {
    EXPECT_THAT(e.what(), testing::HasSubstr(needle));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-ProtocolError: " << e.what();
  }
}

Message round_trip(const Message& m) { return decode_bytes(encode_envelope(m)); }

json rich_body() {
  return {
      {"nested", {{"a", {{"b", {{"c", json::array({1, 2, json::array({3, json::object()})})}}}}}}},
      {"array", json::array({"x", -1, 2.5, nullptr, true, false, json::array()})},
      {"binary", json::binary({0x00, 0xff, 0x10, 0x00, 0x7f})},
      {"empty_binary", json::binary({})},
      {"negative", -42},
      {"int64_min", std::numeric_limits<std::int64_t>::min()},
      {"uint64_max", std::numeric_limits<std::uint64_t>::max()},
      {"float", -3.25},
      {"tiny_float", 1e-300},
      {"unicode", "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\xa6\x99 \xe6\x97\xa5\xe6\x9c\xac"},
      {"with_nul", "a\0b"s},
      {"", "empty key"},
      {"empty_string", ""},
  };
}

// ---- names of types and codes -------------------------------------------------------------

TEST(EnvelopeNames, EveryTypeAndCodeRoundTripsThroughItsName) {
  for (auto t : kAllTypes) {
    auto back = modelzoo::bus::message_type_from_string(modelzoo::bus::to_string(t));
    ASSERT_TRUE(back.has_value()) << modelzoo::bus::to_string(t);
    EXPECT_EQ(*back, t);
  }
  for (auto c : kAllCodes) {
    auto back = modelzoo::bus::error_code_from_string(modelzoo::bus::to_string(c));
    ASSERT_TRUE(back.has_value()) << modelzoo::bus::to_string(c);
    EXPECT_EQ(*back, c);
  }
  EXPECT_EQ(modelzoo::bus::to_string(MessageType::request), "request");
  EXPECT_EQ(modelzoo::bus::to_string(ErrorCode::bad_request), "bad_request");
  EXPECT_FALSE(modelzoo::bus::message_type_from_string("Request").has_value());
  EXPECT_FALSE(modelzoo::bus::message_type_from_string("").has_value());
  EXPECT_FALSE(modelzoo::bus::error_code_from_string("notfound").has_value());
}

// ---- round trips ----------------------------------------------------------------------------

TEST(EnvelopeRoundTrip, RequestKeepsIdMethodTimeoutAndBody) {
  auto m = Message::make_request(42, "metadata", {{"name", "org/model"}, {"version", "1.2.3"}}, 1500);
  auto d = round_trip(m);
  EXPECT_EQ(d.type, MessageType::request);
  EXPECT_EQ(d.id, 42u);
  EXPECT_EQ(d.method, "metadata");
  EXPECT_EQ(d.timeout_ms, 1500u);
  EXPECT_EQ(d.body, json({{"name", "org/model"}, {"version", "1.2.3"}}));
  EXPECT_FALSE(d.error_code.has_value());
}

TEST(EnvelopeRoundTrip, RequestWithExtremeIdAndTimeout) {
  auto m = Message::make_request(std::numeric_limits<std::uint64_t>::max(), std::string(64, 'm'),
                                 json::object(), std::numeric_limits<std::uint32_t>::max());
  auto d = round_trip(m);
  EXPECT_EQ(d.id, std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(d.method, std::string(64, 'm'));
  EXPECT_EQ(d.timeout_ms, std::numeric_limits<std::uint32_t>::max());
}

TEST(EnvelopeRoundTrip, Reply) {
  auto d = round_trip(Message::make_reply(7, {{"ok", true}, {"n", 3}}));
  EXPECT_EQ(d.type, MessageType::reply);
  EXPECT_EQ(d.id, 7u);
  EXPECT_EQ(d.body, json({{"ok", true}, {"n", 3}}));
  EXPECT_TRUE(d.method.empty());
}

TEST(EnvelopeRoundTrip, ErrorWithEveryCode) {
  for (auto c : kAllCodes) {
    SCOPED_TRACE(std::string(modelzoo::bus::to_string(c)));
    auto d = round_trip(Message::make_error(9, c, "went wrong: \xe2\x9c\x97"));
    EXPECT_EQ(d.type, MessageType::error);
    EXPECT_EQ(d.id, 9u);
    ASSERT_TRUE(d.error_code.has_value());
    EXPECT_EQ(*d.error_code, c);
    EXPECT_EQ(d.error_message, "went wrong: \xe2\x9c\x97");
  }
}

TEST(EnvelopeRoundTrip, ProtocolErrorWithIdZero) {
  auto d = round_trip(Message::make_error(0, ErrorCode::bad_request, "bad envelope"));
  EXPECT_EQ(d.type, MessageType::error);
  EXPECT_EQ(d.id, 0u);
  EXPECT_EQ(d.error_code, ErrorCode::bad_request);
}

TEST(EnvelopeRoundTrip, RejectCarriesAnError) {
  auto m = Message::make(MessageType::reject, {{"detail", 1}});
  m.error_code = ErrorCode::unauthorized;
  m.error_message = "bad token";
  auto d = round_trip(m);
  EXPECT_EQ(d.type, MessageType::reject);
  EXPECT_EQ(d.error_code, ErrorCode::unauthorized);
  EXPECT_EQ(d.error_message, "bad token");
  EXPECT_EQ(d.body, json({{"detail", 1}}));
}

TEST(EnvelopeRoundTrip, ChunkWithDataFrame) {
  auto m = Message::make(MessageType::chunk, {{"offset", 1024}});
  m.id = 5;
  const std::string data = "chunk\0data\xff"s;
  auto frames = frames_of({encode_envelope(m), data});
  auto d = decode(frames);
  EXPECT_EQ(d.type, MessageType::chunk);
  EXPECT_EQ(d.id, 5u);
  EXPECT_EQ(d.body, json({{"offset", 1024}}));
  EXPECT_EQ(d.data.to_string(), data);
}

TEST(EnvelopeRoundTrip, ChunkWithEmptyDataFrame) {
  auto m = Message::make(MessageType::chunk);
  m.id = 1;
  auto frames = frames_of({encode_envelope(m), ""});
  auto d = decode(frames);
  EXPECT_EQ(d.type, MessageType::chunk);
  EXPECT_EQ(d.data.size(), 0u);
}

TEST(EnvelopeRoundTrip, IdCarryingTypes) {
  for (auto t : {MessageType::credit, MessageType::cancel, MessageType::progress}) {
    SCOPED_TRACE(std::string(modelzoo::bus::to_string(t)));
    auto m = Message::make(t, {{"credits", 4}, {"done", 10}});
    m.id = 1234567890123ull;
    auto frames = frames_of({encode_envelope(m)});
    auto d = decode(frames);
    EXPECT_EQ(d.type, t);
    EXPECT_EQ(d.id, 1234567890123ull);
    EXPECT_EQ(d.body, json({{"credits", 4}, {"done", 10}}));
  }
}

TEST(EnvelopeRoundTrip, SessionTypesWithoutId) {
  for (auto t : {MessageType::hello, MessageType::welcome, MessageType::heartbeat, MessageType::goodbye}) {
    SCOPED_TRACE(std::string(modelzoo::bus::to_string(t)));
    auto m = Message::make(t, {{"name", "memory"}, {"protocol", json::array({1})}});
    auto d = round_trip(m);
    EXPECT_EQ(d.type, t);
    EXPECT_EQ(d.id, 0u);
    EXPECT_EQ(d.body, json({{"name", "memory"}, {"protocol", json::array({1})}}));
    EXPECT_FALSE(d.error_code.has_value());
  }
}

TEST(EnvelopeRoundTrip, EveryTypeDecodesAsItself) {
  for (auto t : kAllTypes) {
    SCOPED_TRACE(std::string(modelzoo::bus::to_string(t)));
    Message m = Message::make(t, {{"k", "v"}});
    m.id = 3;
    m.method = "list";
    m.timeout_ms = 10;
    if (t == MessageType::error || t == MessageType::reject) m.error_code = ErrorCode::timeout;
    std::vector<zmq::message_t> frames;
    frames.push_back(frame(encode_envelope(m)));
    if (t == MessageType::chunk) frames.push_back(frame("x"));
    auto d = decode(frames);
    EXPECT_EQ(d.type, t);
    EXPECT_EQ(d.body, json({{"k", "v"}}));
  }
}

TEST(EnvelopeRoundTrip, RichBodySurvives) {
  auto d = round_trip(Message::make_reply(1, rich_body()));
  EXPECT_EQ(d.body, rich_body());
  ASSERT_TRUE(d.body["binary"].is_binary());
  EXPECT_EQ(d.body["binary"].get_binary(), std::vector<std::uint8_t>({0x00, 0xff, 0x10, 0x00, 0x7f}));
  EXPECT_EQ(d.body["negative"].get<std::int64_t>(), -42);
  EXPECT_EQ(d.body["int64_min"].get<std::int64_t>(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(d.body["uint64_max"].get<std::uint64_t>(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_DOUBLE_EQ(d.body["float"].get<double>(), -3.25);
  EXPECT_EQ(d.body["with_nul"].get<std::string>().size(), 3u);
}

TEST(EnvelopeRoundTrip, NonObjectBodyIsSentAsEmptyMap) {
  Message m = Message::make_reply(1, json::array({1, 2}));
  auto d = round_trip(m);
  EXPECT_EQ(d.body, json::object());
}

TEST(EnvelopeRoundTrip, MissingBodyDecodesAsEmptyMap) {
  auto bytes = packed([](Packer& pk) {
    pk.pack_map(1);
    str(pk, "type");
    str(pk, "heartbeat");
  });
  auto d = decode_bytes(bytes);
  EXPECT_EQ(d.type, MessageType::heartbeat);
  EXPECT_TRUE(d.body.is_object());
  EXPECT_TRUE(d.body.empty());
}

TEST(MsgpackJson, ValuesOfEveryKindRoundTrip) {
  for (const json& v : {json(nullptr), json(true), json(false), json(0), json(-1), json(127), json(128),
                        json(-33), json(65536), json(std::numeric_limits<std::int64_t>::min()),
                        json(std::numeric_limits<std::uint64_t>::max()), json(0.5), json(-1e300), json(""),
                        json(std::string(70000, 'x')), json::array(), json::object(), json::binary({1, 2, 3}),
                        rich_body()}) {
    auto bytes = to_msgpack(v);
    EXPECT_EQ(from_msgpack(bytes.data(), bytes.size()), v) << v.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

TEST(MsgpackJson, KnownEncodings) {
  EXPECT_EQ(to_msgpack(json(1)), "\x01"s);
  EXPECT_EQ(to_msgpack(json(-1)), "\xff"s);
  EXPECT_EQ(to_msgpack(json(nullptr)), "\xc0"s);
  EXPECT_EQ(to_msgpack(json("ab")), "\xa2" "ab"s);
  EXPECT_EQ(to_msgpack(json::binary({7})), "\xc4\x01\x07"s);
  EXPECT_EQ(to_msgpack(json::array({true, false})), "\x92\xc3\xc2"s);
  EXPECT_EQ(to_msgpack(json({{"a", 1}})), "\x81\xa1" "a\x01"s);
}

TEST(MsgpackJson, FloatsStayFloats) {
  // A float64 on the wire decodes as a JSON float.
  auto d = from_msgpack("\xcb\x40\x00\x00\x00\x00\x00\x00\x00", 9);  // float64 2.0
  EXPECT_TRUE(d.is_number_float());
  EXPECT_DOUBLE_EQ(d.get<double>(), 2.0);
  // Non-integral values survive to_msgpack as floats.
  auto bytes = to_msgpack(json(0.5));
  EXPECT_TRUE(from_msgpack(bytes.data(), bytes.size()).is_number_float());
}

TEST(MsgpackJson, IntegralFloatsKeepTheirType) {
  for (double v : {2.0, -0.0, 1e15, 18446744073709551616.0}) {
    SCOPED_TRACE(v);
    auto bytes = to_msgpack(json(v));
    EXPECT_EQ(bytes.size(), 9u);
    EXPECT_EQ(static_cast<unsigned char>(bytes.at(0)), 0xcbu);  // float 64
    json back = from_msgpack(bytes.data(), bytes.size());
    EXPECT_TRUE(back.is_number_float());
    EXPECT_EQ(back.get<double>(), v);
    EXPECT_EQ(std::signbit(back.get<double>()), std::signbit(v));
  }
}

TEST(MsgpackJson, Float32IsAccepted) {
  auto d = from_msgpack("\xca\x3f\xc0\x00\x00", 5);  // float32 1.5
  EXPECT_DOUBLE_EQ(d.get<double>(), 1.5);
}

// ---- reading untrusted body fields ---------------------------------------------------------

TEST(BodyFields, GetStringFallsBackOnMissingOrMistyped) {
  json body = {{"s", "text"}, {"n", 5}, {"b", json::binary({'x'})}, {"null", nullptr}};
  EXPECT_EQ(modelzoo::bus::get_string(body, "s"), "text");
  EXPECT_EQ(modelzoo::bus::get_string(body, "missing"), "");
  EXPECT_EQ(modelzoo::bus::get_string(body, "missing", "dflt"), "dflt");
  EXPECT_EQ(modelzoo::bus::get_string(body, "n", "dflt"), "dflt");
  EXPECT_EQ(modelzoo::bus::get_string(body, "b", "dflt"), "dflt");
  EXPECT_EQ(modelzoo::bus::get_string(body, "null", "dflt"), "dflt");
}

TEST(BodyFields, GetUintAcceptsOnlyNonNegativeIntegers) {
  // As decoded from msgpack: non-negative integers are unsigned, negative ones signed.
  json body = {{"zero", std::uint64_t{0}}, {"big", std::numeric_limits<std::uint64_t>::max()}, {"neg", -1},
               {"float", 2.0}, {"str", "3"}, {"bool", true}};
  EXPECT_EQ(modelzoo::bus::get_uint(body, "zero"), std::optional<std::uint64_t>(0));
  EXPECT_EQ(modelzoo::bus::get_uint(body, "big"), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(modelzoo::bus::get_uint(body, "neg"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_uint(body, "float"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_uint(body, "str"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_uint(body, "bool"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_uint(body, "missing"), std::nullopt);
}

TEST(BodyFields, GetIntAcceptsIntegersThatFitInt64) {
  json body = {{"pos", std::uint64_t{42}},
               {"neg", -42},
               {"min", std::numeric_limits<std::int64_t>::min()},
               {"max", std::uint64_t{std::numeric_limits<std::int64_t>::max()}},
               {"too_big", std::uint64_t{1} << 63},
               {"float", -1.0},
               {"str", "1"}};
  EXPECT_EQ(modelzoo::bus::get_int(body, "pos"), std::optional<std::int64_t>(42));
  EXPECT_EQ(modelzoo::bus::get_int(body, "neg"), std::optional<std::int64_t>(-42));
  EXPECT_EQ(modelzoo::bus::get_int(body, "min"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(modelzoo::bus::get_int(body, "max"), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(modelzoo::bus::get_int(body, "too_big"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_int(body, "float"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_int(body, "str"), std::nullopt);
  EXPECT_EQ(modelzoo::bus::get_int(body, "missing"), std::nullopt);
}

// ---- rejections -----------------------------------------------------------------------------

TEST(EnvelopeRejects, EmptyFrame) {
  expect_rejected("", "empty frame");
  EXPECT_THROW(from_msgpack("", 0), ProtocolError);
}

TEST(EnvelopeRejects, NoFrames) { expect_frames_rejected({}, "no frames"); }

TEST(EnvelopeRejects, NotMsgpack) {
  expect_rejected("\xc1"s, "not valid msgpack");      // never-used byte
  expect_rejected("\x81\xa4ty"s, "not valid msgpack");  // truncated
  expect_rejected("\xdd\xff\xff\xff\xff"s, "msgpack");  // array32 of 4G elements, no body
}

TEST(EnvelopeRejects, NotAMap) {
  expect_rejected("\x92\x01\x02"s, "not a map");  // array
  expect_rejected("\x05"s, "not a map");          // int
  expect_rejected("\xa4type"s, "not a map");      // string
  expect_rejected("\xc0"s, "not a map");          // nil
}

TEST(EnvelopeRejects, MissingType) {
  expect_rejected(to_msgpack({{"id", 1}, {"body", json::object()}}), "lacks field 'type'");
  expect_rejected("\x80"s, "lacks field 'type'");
}

TEST(EnvelopeRejects, UnknownType) {
  expect_rejected(to_msgpack({{"type", "bogus"}}), "unknown message type 'bogus'");
  expect_rejected(to_msgpack({{"type", "Request"}}), "unknown message type");
  expect_rejected(to_msgpack({{"type", ""}}), "unknown message type");
}

TEST(EnvelopeRejects, UnknownTypeNameIsTruncated) {
  std::string long_name(5000, 'z');
  try {
    decode_bytes(to_msgpack({{"type", long_name}}));
    FAIL() << "decoded";
  } catch (const ProtocolError& e) {
    EXPECT_THAT(e.what(), testing::HasSubstr("unknown message type"));
    EXPECT_LT(std::string(e.what()).size(), 200u);
  }
}

TEST(EnvelopeRejects, RequestMissingFields) {
  json full = {{"type", "request"}, {"id", 1}, {"method", "list"}, {"timeout_ms", 100}};
  ASSERT_NO_THROW(decode_bytes(to_msgpack(full)));
  for (const char* f : {"id", "method", "timeout_ms"}) {
    SCOPED_TRACE(f);
    json j = full;
    j.erase(f);
    expect_rejected(to_msgpack(j), "request message lacks field '"s + f + "'");
  }
}

TEST(EnvelopeRejects, IdZeroOnRequestAndReplies) {
  expect_rejected(to_msgpack({{"type", "request"}, {"id", 0}, {"method", "list"}, {"timeout_ms", 100}}),
                  "request message has id 0");
  for (const char* t : {"reply", "progress", "credit", "cancel"}) {
    SCOPED_TRACE(t);
    expect_rejected(to_msgpack({{"type", t}, {"id", 0}}), "has id 0");
  }
}

TEST(EnvelopeRejects, IdMissingOnIdCarryingTypes) {
  for (const char* t : {"reply", "progress", "credit", "cancel", "error"}) {
    SCOPED_TRACE(t);
    json j = {{"type", t}};
    if (std::string(t) == "error") j["error"] = {{"code", "internal"}, {"message", "x"}};
    expect_rejected(to_msgpack(j), "lacks field 'id'");
  }
}

TEST(EnvelopeRejects, MethodEmptyOrTooLong) {
  expect_rejected(to_msgpack({{"type", "request"}, {"id", 1}, {"method", ""}, {"timeout_ms", 1}}), "method name");
  expect_rejected(
      to_msgpack({{"type", "request"}, {"id", 1}, {"method", std::string(65, 'm')}, {"timeout_ms", 1}}),
      "method name");
}

// Each message names the message type and the field.
TEST(EnvelopeRejects, WrongFieldTypes) {
  expect_rejected(to_msgpack({{"type", 3}}), "field 'type'");
  expect_rejected(to_msgpack({{"type", json::binary({'r', 'e', 'p', 'l', 'y'})}}), "field 'type'");
  expect_rejected(to_msgpack({{"type", "reply"}, {"id", "1"}}), "reply message field 'id'");
  expect_rejected(to_msgpack({{"type", "reply"}, {"id", true}}), "reply message field 'id'");
  expect_rejected(to_msgpack({{"type", "reply"}, {"id", nullptr}}), "reply message field 'id'");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", "x"}, {"error", {{"code", "internal"}, {"message", ""}}}}),
                  "error message field 'id'");
  expect_rejected(to_msgpack({{"type", "request"}, {"id", 1}, {"method", 5}, {"timeout_ms", 1}}),
                  "request message field 'method'");
  expect_rejected(to_msgpack({{"type", "request"}, {"id", 1}, {"method", json::binary({'m'})}, {"timeout_ms", 1}}),
                  "request message field 'method'");
  expect_rejected(to_msgpack({{"type", "request"}, {"id", 1}, {"method", "m"}, {"timeout_ms", "10"}}),
                  "request message field 'timeout_ms'");
  expect_rejected(to_msgpack({{"type", "request"}, {"id", 1}, {"method", "m"}, {"timeout_ms", json::array()}}),
                  "request message field 'timeout_ms'");
}

// Numbers of the wrong kind or range must not be silently converted.
TEST(EnvelopeRejects, NegativeOrFractionalId) {
  expect_rejected(to_msgpack({{"type", "reply"}, {"id", -1}}), "field 'id'");
  expect_rejected(to_msgpack({{"type", "reply"}, {"id", 1.5}}), "field 'id'");
  expect_rejected(to_msgpack({{"type", "request"}, {"id", -5}, {"method", "m"}, {"timeout_ms", 1}}), "field 'id'");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", -1}, {"error", {{"code", "internal"}, {"message", ""}}}}),
                  "field 'id'");
  // A non-negative id in a signed msgpack format is still an id (signedness is not significant).
  auto d = decode_bytes("\x82\xa4type\xa5reply\xa2id\xd3\x00\x00\x00\x00\x00\x00\x00\x07"s);  // int64 7
  EXPECT_EQ(d.id, 7u);
}

TEST(EnvelopeRejects, TimeoutOutOfRangeOrNotAnInteger) {
  for (const json& bad : {json(4294967296ull), json(4294967296ull + 5), json(-1), json(true), json(2.5)}) {
    SCOPED_TRACE(bad.dump());
    expect_rejected(to_msgpack({{"type", "request"}, {"id", 1}, {"method", "m"}, {"timeout_ms", bad}}),
                    "field 'timeout_ms'");
  }
}

TEST(EnvelopeRejects, BodyNotAMap) {
  expect_rejected(to_msgpack({{"type", "reply"}, {"id", 1}, {"body", json::array({1})}}), "body is not a map");
  expect_rejected(to_msgpack({{"type", "heartbeat"}, {"body", "x"}}), "heartbeat message body is not a map");
  expect_rejected(to_msgpack({{"type", "heartbeat"}, {"body", nullptr}}), "body is not a map");
}

TEST(EnvelopeRejects, ErrorFieldProblems) {
  expect_rejected(to_msgpack({{"type", "error"}, {"id", 1}}), "error message lacks field 'error'");
  expect_rejected(to_msgpack({{"type", "reject"}}), "reject message lacks field 'error'");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", 1}, {"error", "boom"}}), "field 'error' is not a map");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", 1}, {"error", {{"message", "m"}}}}),
                  "lacks field 'code'");
  expect_rejected(to_msgpack({{"type", "reject"}, {"error", {{"message", "m"}}}}), "lacks field 'code'");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", 1}, {"error", {{"code", "oops"}, {"message", "m"}}}}),
                  "unknown error code 'oops'");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", 1}, {"error", {{"code", 3}, {"message", "m"}}}}),
                  "error message field 'code'");
  expect_rejected(to_msgpack({{"type", "error"}, {"id", 1}, {"error", {{"code", "timeout"}}}}),
                  "lacks field 'message'");
}

TEST(EnvelopeRejects, TrailingBytes) {
  auto good = encode_envelope(Message::make(MessageType::heartbeat));
  ASSERT_NO_THROW(decode_bytes(good));
  expect_rejected(good + "\x00"s, "trailing bytes");
  expect_rejected(good + good, "trailing bytes");
  EXPECT_THROW(from_msgpack((good + "\xc0").data(), good.size() + 1), ProtocolError);
}

TEST(EnvelopeRejects, NonStringMapKeys) {
  expect_rejected(packed([](Packer& pk) {
                    pk.pack_map(2);
                    str(pk, "type");
                    str(pk, "heartbeat");
                    pk.pack_int(1);
                    pk.pack_nil();
                  }),
                  "map key is not a string");
  // Deep inside the body too.
  expect_rejected(packed([](Packer& pk) {
                    pk.pack_map(2);
                    str(pk, "type");
                    str(pk, "heartbeat");
                    str(pk, "body");
                    pk.pack_map(1);
                    str(pk, "a");
                    pk.pack_array(1);
                    pk.pack_map(1);
                    pk.pack_bin(1);
                    pk.pack_bin_body("k", 1);
                    pk.pack_true();
                  }),
                  "map key is not a string");
}

TEST(EnvelopeRejects, DuplicateKeys) {
  expect_rejected("\x82\xa4type\xa9heartbeat\xa4type\xa9heartbeat"s, "duplicate map key 'type'");
  // A duplicate that would change the meaning: type heartbeat, then type request.
  expect_rejected("\x82\xa4type\xa9heartbeat\xa4type\xa7request"s, "duplicate map key");
  expect_rejected(packed([](Packer& pk) {
                    pk.pack_map(2);
                    str(pk, "type");
                    str(pk, "heartbeat");
                    str(pk, "body");
                    pk.pack_map(2);
                    str(pk, "x");
                    pk.pack_int(1);
                    str(pk, "x");
                    pk.pack_int(2);
                  }),
                  "duplicate map key 'x'");
}

TEST(EnvelopeRejects, ExtensionTypes) {
  // fixext 1 as the type, and an ext 8 of length 0 inside the body.
  expect_rejected("\x81\xa4type\xd4\x01\x00"s, "ext");
  expect_rejected("\x82\xa4type\xa9heartbeat\xa4" "body\x81\xa1x\xc7\x00\x05"s, "ext");
  expect_rejected(packed([](Packer& pk) {
                    pk.pack_map(2);
                    str(pk, "type");
                    str(pk, "heartbeat");
                    str(pk, "body");
                    pk.pack_map(1);
                    str(pk, "t");
                    pk.pack_ext(8, -1);  // timestamp
                    pk.pack_ext_body("\0\0\0\0\0\0\0\0", 8);
                  }),
                  "ext");
}

// Nesting: the envelope map is level 1, its body level 2.
std::string nested_envelope(int depth) {
  return packed([depth](Packer& pk) {
    pk.pack_map(2);
    str(pk, "type");
    str(pk, "heartbeat");
    str(pk, "body");
    pk.pack_map(1);
    str(pk, "x");
    for (int level = 3; level <= depth; ++level) pk.pack_array(1);
    pk.pack_nil();
  });
}

TEST(EnvelopeRejects, NestingDeeperThan32) {
  EXPECT_NO_THROW(decode_bytes(nested_envelope(32)));
  expect_rejected(nested_envelope(33), "depth");
  expect_rejected(nested_envelope(1000), "depth");
  // A bare run of nested arrays: nothing recursive may blow the stack.
  std::string deep(100000, '\x91');
  deep += '\xc0';
  EXPECT_THROW(from_msgpack(deep.data(), deep.size()), ProtocolError);
}

// An envelope of exactly `size` bytes: a heartbeat with a padding string in its body.
std::string envelope_of_size(std::size_t size) {
  std::string head = "\x82\xa4type\xa9heartbeat\xa4" "body\x81\xa1p\xdb"s;  // str32 follows
  std::size_t pad = size - head.size() - 4;
  std::string out = head;
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((pad >> shift) & 0xff);
  out += std::string(pad, 'p');
  return out;
}

TEST(EnvelopeRejects, EnvelopeOverOneMiB) {
  auto ok = envelope_of_size(kMaxEnvelopeBytes);
  ASSERT_EQ(ok.size(), kMaxEnvelopeBytes);
  auto d = decode_bytes(ok);
  EXPECT_EQ(d.body["p"].get<std::string>().size(), kMaxEnvelopeBytes - 29);  // 25 bytes of map, 4 of length

  auto big = envelope_of_size(kMaxEnvelopeBytes + 1);
  expect_rejected(big, "exceeds the 1 MiB limit");
  auto frames = frames_of({big});
  expect_frames_rejected(std::move(frames), "1 MiB");
}

TEST(EnvelopeRejects, ThreeFrames) {
  auto m = Message::make(MessageType::chunk);
  m.id = 1;
  expect_frames_rejected(frames_of({encode_envelope(m), "a", "b"}), "3 frames");
}

TEST(EnvelopeRejects, ChunkWithoutDataFrame) {
  auto m = Message::make(MessageType::chunk);
  m.id = 1;
  expect_frames_rejected(frames_of({encode_envelope(m)}), "chunk message lacks its data frame");
}

TEST(EnvelopeRejects, NonChunkWithDataFrame) {
  expect_frames_rejected(frames_of({encode_envelope(Message::make_reply(1, {})), "data"}),
                         "reply message carries an unexpected data frame");
  expect_frames_rejected(frames_of({encode_envelope(Message::make(MessageType::heartbeat)), ""}),
                         "unexpected data frame");
}

TEST(EnvelopeRejects, DataFrameOverEightMiB) {
  auto m = Message::make(MessageType::chunk);
  m.id = 2;
  {
    std::vector<zmq::message_t> frames;
    frames.push_back(frame(encode_envelope(m)));
    frames.emplace_back(kMaxDataBytes);
    auto d = decode(frames);
    EXPECT_EQ(d.data.size(), kMaxDataBytes);
  }
  std::vector<zmq::message_t> frames;
  frames.push_back(frame(encode_envelope(m)));
  frames.emplace_back(kMaxDataBytes + 1);
  expect_frames_rejected(std::move(frames), "8 MiB");
}

// ---- fuzzing: decode() either succeeds or throws ProtocolError ---------------------------

// Returns "" when decoding ended in an allowed way, else what went wrong.
std::string decode_outcome(const std::string& bytes) {
  try {
    Message m = decode_bytes(bytes);
    if (!m.body.is_object()) return "decoded with a body that is not a map";
    return "";
  } catch (const ProtocolError&) {
    return "";
  } catch (const std::exception& e) {
    return std::string("threw a non-ProtocolError: ") + e.what();
  } catch (...) {
    return "threw a non-exception";
  }
}

std::string hex(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s.substr(0, 64)) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

TEST(EnvelopeFuzz, RandomBuffers) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> byte(0, 255), len(0, 48);
  int decoded = 0;
  for (int i = 0; i < 4000; ++i) {
    std::string buf(static_cast<std::size_t>(len(rng)), '\0');
    for (auto& c : buf) c = static_cast<char>(byte(rng));
    // Half of them start like a map so the decoder gets past the first byte more often.
    if (i % 2 == 0 && !buf.empty()) buf[0] = static_cast<char>(0x80 | (buf[0] & 0x0f));
    auto why = decode_outcome(buf);
    ASSERT_EQ(why, "") << "input " << hex(buf);
    try {
      decode_bytes(buf);
      ++decoded;
    } catch (const ProtocolError&) {
    }
  }
  SUCCEED() << decoded << " random buffers decoded";
}

TEST(EnvelopeFuzz, MutationsOfValidEnvelopes) {
  std::vector<std::string> seeds;
  for (auto t : kAllTypes) {
    Message m = Message::make(t, rich_body());
    m.id = 77;
    m.method = "download";
    m.timeout_ms = 5000;
    if (t == MessageType::error || t == MessageType::reject) {
      m.error_code = ErrorCode::unavailable;
      m.error_message = "gone";
    }
    seeds.push_back(encode_envelope(m));
  }
  seeds.push_back(encode_envelope(Message::make_request(1, "metadata", {{"name", "a/b"}}, 10)));

  std::mt19937 rng(424242);
  std::uniform_int_distribution<int> byte(0, 255), op(0, 5), count(1, 4);
  int decoded = 0;
  for (int i = 0; i < 6000; ++i) {
    std::string buf = seeds[static_cast<std::size_t>(i) % seeds.size()];
    for (int n = count(rng); n > 0 && !buf.empty(); --n) {
      std::uniform_int_distribution<std::size_t> pos(0, buf.size() - 1);
      switch (op(rng)) {
        case 0: buf[pos(rng)] = static_cast<char>(byte(rng)); break;                  // replace
        case 1: buf[pos(rng)] ^= static_cast<char>(1 << (byte(rng) % 8)); break;       // flip a bit
        case 2: buf.resize(pos(rng)); break;                                           // truncate
        case 3: buf.insert(pos(rng), 1, static_cast<char>(byte(rng))); break;          // insert
        case 4: buf.erase(pos(rng), 1); break;                                         // delete
        case 5: buf[pos(rng)] = static_cast<char>(0xdb + byte(rng) % 5); break;        // big headers
      }
    }
    auto why = decode_outcome(buf);
    ASSERT_EQ(why, "") << "input " << hex(buf);
    try {
      decode_bytes(buf);
      ++decoded;
    } catch (const ProtocolError&) {
    }
  }
  // Some mutations (e.g. of padding bytes in strings) leave a valid envelope.
  EXPECT_GT(decoded, 0);
  EXPECT_LT(decoded, 6000);
}

TEST(EnvelopeFuzz, RandomFrameSets) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int> nframes(0, 3), byte(0, 255), len(0, 16), pick(0, 2);
  auto m = Message::make(MessageType::chunk);
  m.id = 1;
  const std::string chunk = encode_envelope(m);
  const std::string reply = encode_envelope(Message::make_reply(1, {}));
  for (int i = 0; i < 2000; ++i) {
    std::vector<zmq::message_t> frames;
    int n = nframes(rng);
    for (int f = 0; f < n; ++f) {
      int k = pick(rng);
      if (k == 0) frames.push_back(frame(chunk));
      else if (k == 1) frames.push_back(frame(reply));
      else {
        std::string buf(static_cast<std::size_t>(len(rng)), '\0');
        for (auto& c : buf) c = static_cast<char>(byte(rng));
        frames.push_back(frame(buf));
      }
    }
    try {
      decode(frames);
    } catch (const ProtocolError&) {
    } catch (const std::exception& e) {
      FAIL() << "frame set " << i << " threw a non-ProtocolError: " << e.what();
    }
  }
}

// Strict field reading (issue 19): a mistyped field is named with the type expected and the
// type found, never read as absent; an absent one is not an error.
TEST(StrictFields, MistypedFieldsAreNamedWithBothTypes) {
  using modelzoo::bus::field_type_error;
  using modelzoo::bus::FieldType;
  const nlohmann::json body = {{"s", "x"},         {"i", 3},          {"b", true},        {"n", nullptr},
                               {"f", 1.5},         {"l", {"a", "b"}}, {"li", {1, 2}},     {"mixed", {"a", 1}},
                               {"m", {{"k", 1}}}, {"neg", -4}};
  EXPECT_EQ(field_type_error(body, "absent", FieldType::string), std::nullopt);
  EXPECT_EQ(field_type_error(body, "s", FieldType::string), std::nullopt);
  EXPECT_EQ(field_type_error(body, "i", FieldType::integer), std::nullopt);
  EXPECT_EQ(field_type_error(body, "neg", FieldType::integer), std::nullopt);
  EXPECT_EQ(field_type_error(body, "b", FieldType::boolean), std::nullopt);
  EXPECT_EQ(field_type_error(body, "l", FieldType::string_list), std::nullopt);
  EXPECT_EQ(field_type_error(body, "li", FieldType::integer_list), std::nullopt);
  EXPECT_EQ(field_type_error(body, "m", FieldType::map), std::nullopt);
  EXPECT_EQ(field_type_error(body, "s", FieldType::boolean), "'s' must be a boolean, not a string");
  EXPECT_EQ(field_type_error(body, "i", FieldType::boolean), "'i' must be a boolean, not an integer");
  EXPECT_EQ(field_type_error(body, "n", FieldType::boolean), "'n' must be a boolean, not a nil");
  EXPECT_EQ(field_type_error(body, "f", FieldType::integer), "'f' must be an integer, not a float");
  EXPECT_EQ(field_type_error(body, "l", FieldType::string), "'l' must be a string, not an array");
  EXPECT_EQ(field_type_error(body, "m", FieldType::string), "'m' must be a string, not a map");
  EXPECT_EQ(field_type_error(body, "s", FieldType::string_list), "'s' must be a list of strings, not a string");
  EXPECT_EQ(field_type_error(body, "mixed", FieldType::string_list),
            "'mixed' must be a list of strings, not an array holding an integer");
  EXPECT_EQ(field_type_error(body, "l", FieldType::integer_list), "'l' must be a list of integers, not an array holding a string");
  EXPECT_EQ(field_type_error(nlohmann::json::array(), "s", FieldType::string), std::nullopt);  // not a map: nothing to read
}

TEST(StrictFields, RequestParametersThrowBadRequest) {
  using modelzoo::bus::optional_bool_param;
  using modelzoo::bus::require_string_param;
  EXPECT_EQ(require_string_param({{"model", "a/b"}}, "model"), "a/b");
  EXPECT_EQ(optional_bool_param({{"offline", true}}, "offline"), true);
  EXPECT_EQ(optional_bool_param(nlohmann::json::object(), "offline"), std::nullopt);
  for (const nlohmann::json& wrong : {nlohmann::json("yes"), nlohmann::json(1), nlohmann::json("false"),
                                      nlohmann::json::array({true}), nlohmann::json(nullptr)}) {
    try {
      optional_bool_param({{"offline", wrong}}, "offline");
      ADD_FAILURE() << wrong.dump() << " accepted";
    } catch (const modelzoo::bus::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request);
      EXPECT_THAT(e.what(), ::testing::StartsWith("parameter 'offline' must be a boolean, not "));
    }
  }
  try {
    require_string_param(nlohmann::json::object(), "model");
    ADD_FAILURE();
  } catch (const modelzoo::bus::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request);
    EXPECT_STREQ(e.what(), "request lacks string parameter 'model'");
  }
  try {
    require_string_param({{"model", 7}}, "model");
    ADD_FAILURE();
  } catch (const modelzoo::bus::Error& e) {
    EXPECT_STREQ(e.what(), "parameter 'model' must be a string, not an integer");
  }
}

}  // namespace
