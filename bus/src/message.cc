#include "modelzoo/bus/message.h"

#include <array>
#include <cstring>

// Bus messages are small: msgpack-c's 8 KiB default zone chunk and buffer cost a large
// allocation (and malloc_consolidate) per message. The chunk size is a compile-time knob.
#define MSGPACK_ZONE_CHUNK_SIZE 1024
#include <msgpack.hpp>

namespace modelzoo::bus {
namespace {

constexpr std::array<std::string_view, 12> kTypeNames = {
    "hello", "welcome", "reject", "request", "reply", "error",
    "progress", "chunk", "credit", "cancel", "heartbeat", "goodbye"};
constexpr std::array<std::string_view, 7> kErrorNames = {
    "not_found", "unavailable", "timeout", "bad_request", "unauthorized", "internal", "rejected"};

// Hostile-input bounds handed to msgpack-c: nesting depth and container sizes.
msgpack::unpack_limit decode_limits() {
  return msgpack::unpack_limit(/*array=*/65536, /*map=*/65536, /*str=*/kMaxEnvelopeBytes,
                               /*bin=*/kMaxEnvelopeBytes, /*ext=*/0, /*depth=*/32);
}

// True when [p, p+n) is well-formed UTF-8 (no overlongs, surrogates or code points past
// U+10FFFF). Text that is not would make every later dump() of the value throw.
bool valid_utf8(const char* p, std::size_t n) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n;) {
    unsigned c = u[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    unsigned cp, min;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((u[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (u[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

nlohmann::json to_json(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::STR:
      if (!valid_utf8(o.via.str.ptr, o.via.str.size)) throw ProtocolError("a string is not valid UTF-8");
      return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: {
      auto p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      return nlohmann::json::binary(std::vector<std::uint8_t>(p, p + o.via.bin.size));
    }
    case msgpack::type::ARRAY: {
      auto a = nlohmann::json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      auto m = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) throw ProtocolError("map key is not a string");
        if (!valid_utf8(kv.key.via.str.ptr, kv.key.via.str.size)) throw ProtocolError("a map key is not valid UTF-8");
        std::string key(kv.key.via.str.ptr, kv.key.via.str.size);
        if (m.contains(key)) throw ProtocolError("duplicate map key '" + key + "'");
        m[key] = to_json(kv.val);
      }
      return m;
    }
    case msgpack::type::EXT: break;
  }
  throw ProtocolError("msgpack extension types are not allowed");
}

void pack(msgpack::packer<msgpack::sbuffer>& pk, const nlohmann::json& v) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::null: case T::discarded: pk.pack_nil(); return;
    case T::boolean: v.get<bool>() ? pk.pack_true() : pk.pack_false(); return;
    case T::number_integer: pk.pack_int64(v.get<std::int64_t>()); return;
    case T::number_unsigned: pk.pack_uint64(v.get<std::uint64_t>()); return;
    case T::number_float: {
      // Always float64 (0xcb + 8 big-endian IEEE bytes): msgpack-c's pack_double turns
      // whole-number doubles into integers, so 2.0 would arrive as 2 and -0.0 as 0.
      double d = v.get<double>();
      std::uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      char buf[9];
      buf[0] = static_cast<char>(0xcb);
      for (int i = 0; i < 8; ++i) buf[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
      pk.pack_bin_body(buf, sizeof buf);  // raw append: no header
      return;
    }
    case T::string: {
      const auto& s = v.get_ref<const std::string&>();
      pk.pack_str(static_cast<std::uint32_t>(s.size()));
      pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
      return;
    }
    case T::binary: {
      const auto& b = v.get_binary();
      pk.pack_bin(static_cast<std::uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()), static_cast<std::uint32_t>(b.size()));
      return;
    }
    case T::array:
      pk.pack_array(static_cast<std::uint32_t>(v.size()));
      for (const auto& e : v) pack(pk, e);
      return;
    case T::object:
      pk.pack_map(static_cast<std::uint32_t>(v.size()));
      for (const auto& [k, e] : v.items()) {
        pk.pack_str(static_cast<std::uint32_t>(k.size()));
        pk.pack_str_body(k.data(), static_cast<std::uint32_t>(k.size()));
        pack(pk, e);
      }
      return;
  }
}

void pack_str(msgpack::packer<msgpack::sbuffer>& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

const nlohmann::json& field(const nlohmann::json& env, const char* key, std::string_view type) {
  auto it = env.find(key);
  if (it == env.end()) throw ProtocolError(std::string(type) + " message lacks field '" + key + "'");
  return *it;
}

std::string string_field(const nlohmann::json& env, const char* key, std::string_view type) {
  const auto& v = field(env, key, type);
  if (!v.is_string()) throw ProtocolError(std::string(type) + " message field '" + key + "' is not a string");
  return v.get<std::string>();
}

// Integers must be msgpack unsigned integers within `max`: no negatives, no floats, no truncation.
std::uint64_t uint_field(const nlohmann::json& env, const char* key, std::string_view type, std::uint64_t max) {
  const auto& v = field(env, key, type);
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > max)
    throw ProtocolError(std::string(type) + " message field '" + key + "' is not an unsigned integer <= " +
                        std::to_string(max));
  return v.get<std::uint64_t>();
}

}  // namespace

nlohmann::json to_json(const Error& e) {
  return {{"code", std::string(to_string(e.code()))}, {"message", e.what()}};
}

std::string get_string(const nlohmann::json& body, const char* key, const std::string& fallback) {
  auto it = body.find(key);
  return it != body.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::optional<std::uint64_t> get_uint(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<std::uint64_t>();
}

std::optional<std::int64_t> get_int(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned() && it->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
  return it->get<std::int64_t>();
}

std::string_view type_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: return "nil";
    case nlohmann::json::value_t::boolean: return "boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned: return "integer";
    case nlohmann::json::value_t::number_float: return "float";
    case nlohmann::json::value_t::string: return "string";
    case nlohmann::json::value_t::binary: return "binary";
    case nlohmann::json::value_t::array: return "array";
    case nlohmann::json::value_t::object: return "map";
    default: return "unknown";
  }
}

std::string_view expected_name(FieldType type) {
  switch (type) {
    case FieldType::string: return "a string";
    case FieldType::integer: return "an integer";
    case FieldType::boolean: return "a boolean";
    case FieldType::map: return "a map";
    case FieldType::string_list: return "a list of strings";
    case FieldType::integer_list: return "a list of integers";
  }
  return "?";
}

namespace {
// "a string", "an integer": a type name with its article, as errors read.
std::string with_article(std::string_view name) {
  bool vowel = !name.empty() && std::strchr("aeiou", name[0]) != nullptr;
  return (vowel ? "an " : "a ") + std::string(name);
}
}  // namespace

std::optional<std::string> field_type_error(const nlohmann::json& body, const char* key, FieldType type) {
  if (!body.is_object()) return std::nullopt;
  auto it = body.find(key);
  if (it == body.end()) return std::nullopt;
  const nlohmann::json& v = *it;
  std::string got = with_article(type_name(v));
  bool ok = false;
  switch (type) {
    case FieldType::string: ok = v.is_string(); break;
    case FieldType::integer: ok = v.is_number_integer(); break;
    case FieldType::boolean: ok = v.is_boolean(); break;
    case FieldType::map: ok = v.is_object(); break;
    case FieldType::string_list:
    case FieldType::integer_list:
      ok = v.is_array();
      if (ok)  // (nlohmann iterates a scalar as a list of one)
        for (const auto& e : v)
          if (type == FieldType::string_list ? !e.is_string() : !e.is_number_integer()) {
            ok = false;
            got = "an array holding " + with_article(type_name(e));
            break;
          }
      break;
  }
  if (ok) return std::nullopt;
  return "'" + std::string(key) + "' must be " + std::string(expected_name(type)) + ", not " + got;
}

std::string require_string_param(const nlohmann::json& body, const char* key) {
  if (auto why = field_type_error(body, key, FieldType::string)) throw Error(ErrorCode::bad_request, "parameter " + *why);
  auto it = body.find(key);
  if (it == body.end()) throw Error(ErrorCode::bad_request, std::string("request lacks string parameter '") + key + "'");
  return it->get<std::string>();
}

std::optional<bool> optional_bool_param(const nlohmann::json& body, const char* key) {
  if (auto why = field_type_error(body, key, FieldType::boolean)) throw Error(ErrorCode::bad_request, "parameter " + *why);
  auto it = body.find(key);
  if (it == body.end()) return std::nullopt;
  return it->get<bool>();
}

std::string_view to_string(MessageType t) { return kTypeNames[static_cast<std::size_t>(t)]; }
std::optional<MessageType> message_type_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kTypeNames.size(); ++i)
    if (kTypeNames[i] == s) return static_cast<MessageType>(i);
  return std::nullopt;
}
std::string_view to_string(ErrorCode c) { return kErrorNames[static_cast<std::size_t>(c)]; }
std::optional<ErrorCode> error_code_from_string(std::string_view s) {
  for (std::size_t i = 0; i < kErrorNames.size(); ++i)
    if (kErrorNames[i] == s) return static_cast<ErrorCode>(i);
  return std::nullopt;
}

Message Message::make_request(std::uint64_t id, std::string method, nlohmann::json body,
                              std::uint32_t timeout_ms) {
  Message m;
  m.type = MessageType::request;
  m.id = id;
  m.method = std::move(method);
  m.body = std::move(body);
  m.timeout_ms = timeout_ms;
  return m;
}
Message Message::make_reply(std::uint64_t id, nlohmann::json body) {
  Message m;
  m.type = MessageType::reply;
  m.id = id;
  m.body = std::move(body);
  return m;
}
Message Message::make_error(std::uint64_t id, ErrorCode code, std::string message) {
  Message m;
  m.type = MessageType::error;
  m.id = id;
  m.error_code = code;
  m.error_message = std::move(message);
  return m;
}
Message Message::make(MessageType type, nlohmann::json body) {
  Message m;
  m.type = type;
  m.body = std::move(body);
  return m;
}

constexpr std::size_t kInitialBuffer = 512;

std::string to_msgpack(const nlohmann::json& value) {
  msgpack::sbuffer buf(kInitialBuffer);
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pack(pk, value);
  return std::string(buf.data(), buf.size());
}

nlohmann::json from_msgpack(const void* data, std::size_t size) {
  if (size > kMaxEnvelopeBytes) throw ProtocolError("frame of " + std::to_string(size) + " bytes exceeds the 1 MiB limit");
  if (size == 0) throw ProtocolError("empty frame");
  try {
    std::size_t off = 0;
    msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(data), size, off, nullptr,
                                                nullptr, decode_limits());
    if (off != size) throw ProtocolError("trailing bytes after the msgpack value");
    return to_json(oh.get());
  } catch (const ProtocolError&) {
    throw;
  } catch (const msgpack::unpack_error& e) {
    throw ProtocolError(std::string("not valid msgpack: ") + e.what());
  } catch (const std::bad_alloc&) {
    throw ProtocolError("msgpack value too large");
  } catch (const std::exception& e) {
    throw ProtocolError(std::string("not valid msgpack: ") + e.what());
  }
}

std::string encode_envelope(const Message& m) {
  msgpack::sbuffer buf(kInitialBuffer);
  msgpack::packer<msgpack::sbuffer> pk(buf);
  const bool has_id = m.type == MessageType::request || m.type == MessageType::reply ||
                      m.type == MessageType::error || m.type == MessageType::progress ||
                      m.type == MessageType::chunk || m.type == MessageType::credit ||
                      m.type == MessageType::cancel;
  const bool has_error = m.type == MessageType::error || m.type == MessageType::reject;
  const bool is_request = m.type == MessageType::request;
  std::uint32_t n = 2 + (has_id ? 1 : 0) + (has_error ? 1 : 0) + (is_request ? 2 : 0);
  pk.pack_map(n);
  pack_str(pk, "type");
  pack_str(pk, to_string(m.type));
  if (has_id) {
    pack_str(pk, "id");
    pk.pack_uint64(m.id);
  }
  if (is_request) {
    pack_str(pk, "method");
    pack_str(pk, m.method);
    pack_str(pk, "timeout_ms");
    pk.pack_uint32(m.timeout_ms);
  }
  if (has_error) {
    pack_str(pk, "error");
    pk.pack_map(2);
    pack_str(pk, "code");
    pack_str(pk, to_string(m.error_code.value_or(ErrorCode::internal)));
    pack_str(pk, "message");
    pack_str(pk, m.error_message);
  }
  pack_str(pk, "body");
  if (m.body.is_object()) pack(pk, m.body);
  else pk.pack_map(0);
  return std::string(buf.data(), buf.size());
}

Message decode(const void* envelope, std::size_t size) {
  nlohmann::json env = from_msgpack(envelope, size);
  if (!env.is_object()) throw ProtocolError("envelope is not a map");
  auto type_name = string_field(env, "type", "any");
  auto type = message_type_from_string(type_name);
  if (!type) throw ProtocolError("unknown message type '" + type_name.substr(0, 32) + "'");
  Message m;
  m.type = *type;
  std::string_view tn = to_string(m.type);
  if (auto it = env.find("body"); it != env.end()) {
    if (!it->is_object()) throw ProtocolError(std::string(tn) + " message body is not a map");
    m.body = std::move(*it);
  }
  switch (m.type) {
    case MessageType::request:
      m.method = string_field(env, "method", tn);
      if (m.method.empty() || m.method.size() > 64) throw ProtocolError("request method name is empty or longer than 64 bytes");
      m.timeout_ms = static_cast<std::uint32_t>(uint_field(env, "timeout_ms", tn, UINT32_MAX));
      [[fallthrough]];
    case MessageType::reply:
    case MessageType::progress:
    case MessageType::chunk:
    case MessageType::credit:
    case MessageType::cancel:
      m.id = uint_field(env, "id", tn, UINT64_MAX);
      if (m.id == 0) throw ProtocolError(std::string(tn) + " message has id 0");
      break;
    case MessageType::error:
    case MessageType::reject: {
      if (m.type == MessageType::error) m.id = uint_field(env, "id", tn, UINT64_MAX);
      const auto& err = field(env, "error", tn);
      if (!err.is_object()) throw ProtocolError(std::string(tn) + " message field 'error' is not a map");
      auto code = string_field(err, "code", "error");
      m.error_code = error_code_from_string(code);
      if (!m.error_code) throw ProtocolError("unknown error code '" + code.substr(0, 32) + "'");
      m.error_message = string_field(err, "message", "error");
      break;
    }
    case MessageType::hello:
    case MessageType::welcome:
    case MessageType::heartbeat:
    case MessageType::goodbye:
      break;
  }
  return m;
}

Message decode(std::vector<zmq::message_t>& frames) {
  if (frames.empty()) throw ProtocolError("no frames");
  if (frames.size() > kMaxFrames)
    throw ProtocolError("message has " + std::to_string(frames.size()) + " frames, at most 2 allowed");
  Message m = decode(frames[0].data(), frames[0].size());
  if (m.type == MessageType::chunk) {
    if (frames.size() != 2) throw ProtocolError("chunk message lacks its data frame");
    if (frames[1].size() > kMaxDataBytes) throw ProtocolError("chunk data frame exceeds the 8 MiB limit");
    m.data = std::move(frames[1]);
  } else if (frames.size() != 1) {
    throw ProtocolError(std::string(to_string(m.type)) + " message carries an unexpected data frame");
  }
  return m;
}

}  // namespace modelzoo::bus
