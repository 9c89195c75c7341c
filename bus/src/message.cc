#include "modelzoo/bus/message.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "msgpack_value.h"

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

// The index of the first key (in wire order) of map `m` that repeats an earlier string key,
// or SIZE_MAX. Small maps (every bus envelope and body) compare pairwise; larger ones sort,
// so a hostile 65536-key map costs n log n, not n squared.
std::size_t first_duplicate_key(const msgpack::object_map& m) {
  auto is_str = [&](std::size_t i) { return m.ptr[i].key.type == msgpack::type::STR; };
  auto key = [&](std::size_t i) { return detail::as_string_view(m.ptr[i].key); };
  if (m.size <= 16) {
    for (std::size_t i = 1; i < m.size; ++i)
      for (std::size_t j = 0; j < i && is_str(i); ++j)
        if (is_str(j) && key(j) == key(i)) return i;
    return SIZE_MAX;
  }
  std::vector<std::pair<std::string_view, std::size_t>> keys;
  keys.reserve(m.size);
  for (std::size_t i = 0; i < m.size; ++i)
    if (is_str(i)) keys.emplace_back(key(i), i);
  std::sort(keys.begin(), keys.end());  // equal keys end up in wire order
  std::size_t first = SIZE_MAX;
  for (std::size_t i = 1; i < keys.size(); ++i)
    if (keys[i].first == keys[i - 1].first) first = std::min(first, keys[i].second);
  return first;
}

}  // namespace

namespace detail {

void check_value(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
    case msgpack::type::BOOLEAN:
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
    case msgpack::type::BIN:
      return;
    case msgpack::type::STR:
      if (!valid_utf8(o.via.str.ptr, o.via.str.size)) throw ProtocolError("a string is not valid UTF-8");
      return;
    case msgpack::type::ARRAY:
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) check_value(o.via.array.ptr[i]);
      return;
    case msgpack::type::MAP: {
      // Pair by pair in wire order: the key's type, its UTF-8, whether it repeats an earlier
      // key, then the value (the order the JSON conversion reported problems in).
      const auto& m = o.via.map;
      const std::size_t dup = first_duplicate_key(m);
      for (std::uint32_t i = 0; i < m.size; ++i) {
        const auto& kv = m.ptr[i];
        if (kv.key.type != msgpack::type::STR) throw ProtocolError("map key is not a string");
        if (!valid_utf8(kv.key.via.str.ptr, kv.key.via.str.size)) throw ProtocolError("a map key is not valid UTF-8");
        if (i == dup) throw ProtocolError("duplicate map key '" + std::string(as_string_view(kv.key)) + "'");
        check_value(kv.val);
      }
      return;
    }
    case msgpack::type::EXT: break;
  }
  throw ProtocolError("msgpack extension types are not allowed");
}

nlohmann::json to_json_unchecked(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return nullptr;
    case msgpack::type::BOOLEAN: return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER: return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER: return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return o.via.f64;
    case msgpack::type::STR: return std::string(o.via.str.ptr, o.via.str.size);
    case msgpack::type::BIN: {
      auto p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      return nlohmann::json::binary(std::vector<std::uint8_t>(p, p + o.via.bin.size));
    }
    case msgpack::type::ARRAY: {
      auto a = nlohmann::json::array();
      a.get_ref<nlohmann::json::array_t&>().reserve(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) a.push_back(to_json_unchecked(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      auto m = nlohmann::json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        m.emplace(std::string(kv.key.via.str.ptr, kv.key.via.str.size), to_json_unchecked(kv.val));
      }
      return m;
    }
    case msgpack::type::EXT: break;
  }
  throw ProtocolError("msgpack extension types are not allowed");
}

const msgpack::object* find_key(const msgpack::object& o, std::string_view key) {
  for (std::uint32_t i = 0; i < o.via.map.size; ++i)
    if (as_string_view(o.via.map.ptr[i].key) == key) return &o.via.map.ptr[i].val;
  return nullptr;
}

msgpack::object_handle unpack_checked(const void* data, std::size_t size) {
  if (size > kMaxEnvelopeBytes) throw ProtocolError("frame of " + std::to_string(size) + " bytes exceeds the 1 MiB limit");
  if (size == 0) throw ProtocolError("empty frame");
  try {
    std::size_t off = 0;
    msgpack::object_handle oh = msgpack::unpack(static_cast<const char*>(data), size, off, nullptr,
                                                nullptr, decode_limits());
    if (off != size) throw ProtocolError("trailing bytes after the msgpack value");
    check_value(oh.get());
    return oh;
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

std::size_t value_length(const char* p, std::size_t n) {
  auto u = reinterpret_cast<const unsigned char*>(p);
  std::size_t pos = 0;
  std::uint64_t pending = 1;  // values still to skip
  auto need = [&](std::size_t k) {
    if (pos + k > n) throw ProtocolError("truncated msgpack value");
  };
  auto read_be = [&](int bytes) {
    need(static_cast<std::size_t>(bytes));
    std::uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | u[pos++];
    return v;
  };
  while (pending > 0) {
    --pending;
    need(1);
    unsigned c = u[pos++];
    std::uint64_t skip = 0;
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) skip = 0;
    else if (c >= 0x80 && c <= 0x8f) pending += 2 * std::uint64_t(c & 0x0f);
    else if (c >= 0x90 && c <= 0x9f) pending += c & 0x0f;
    else if (c >= 0xa0 && c <= 0xbf) skip = c & 0x1f;
    else switch (c) {
      case 0xc4: case 0xd9: skip = read_be(1); break;
      case 0xc5: case 0xda: skip = read_be(2); break;
      case 0xc6: case 0xdb: skip = read_be(4); break;
      case 0xc7: skip = read_be(1) + 1; break;
      case 0xc8: skip = read_be(2) + 1; break;
      case 0xc9: skip = read_be(4) + 1; break;
      case 0xca: skip = 4; break;
      case 0xcb: skip = 8; break;
      case 0xcc: case 0xd0: skip = 1; break;
      case 0xcd: case 0xd1: skip = 2; break;
      case 0xce: case 0xd2: skip = 4; break;
      case 0xcf: case 0xd3: skip = 8; break;
      case 0xd4: skip = 2; break;
      case 0xd5: skip = 3; break;
      case 0xd6: skip = 5; break;
      case 0xd7: skip = 9; break;
      case 0xd8: skip = 17; break;
      case 0xdc: pending += read_be(2); break;
      case 0xdd: pending += read_be(4); break;
      case 0xde: pending += 2 * read_be(2); break;
      case 0xdf: pending += 2 * read_be(4); break;
      default: throw ProtocolError("not valid msgpack: reserved byte");
    }
    need(static_cast<std::size_t>(skip));
    pos += static_cast<std::size_t>(skip);
  }
  return pos;
}

}  // namespace detail

namespace {
using detail::as_string_view;

const msgpack::object& field(const msgpack::object& env, const char* key, std::string_view type) {
  const msgpack::object* v = detail::find_key(env, key);
  if (!v) throw ProtocolError(std::string(type) + " message lacks field '" + key + "'");
  return *v;
}

std::string_view string_field(const msgpack::object& env, const char* key, std::string_view type) {
  const auto& v = field(env, key, type);
  if (v.type != msgpack::type::STR) throw ProtocolError(std::string(type) + " message field '" + key + "' is not a string");
  return as_string_view(v);
}

// Integers must be msgpack unsigned integers within `max`: no negatives, no floats, no truncation.
std::uint64_t uint_field(const msgpack::object& env, const char* key, std::string_view type, std::uint64_t max) {
  const auto& v = field(env, key, type);
  if (v.type != msgpack::type::POSITIVE_INTEGER || v.via.u64 > max)
    throw ProtocolError(std::string(type) + " message field '" + key + "' is not an unsigned integer <= " +
                        std::to_string(max));
  return v.via.u64;
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

Message Message::make_raw_reply(std::uint64_t id, std::string raw_body) {
  Message m;
  m.type = MessageType::reply;
  m.id = id;
  m.raw_body = std::move(raw_body);
  return m;
}

// ------------------------------------------------------------------ MsgpackWriter
void MsgpackWriter::be(std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out_.push_back(static_cast<char>(v >> (8 * i)));
}

void MsgpackWriter::head(unsigned char fix, unsigned char fix_max, unsigned char c16, std::size_t n) {
  if (n <= fix_max) {
    out_.push_back(static_cast<char>(fix | n));
  } else if (n <= 0xffff) {
    out_.push_back(static_cast<char>(c16));
    be(n, 2);
  } else {
    out_.push_back(static_cast<char>(c16 + 1));
    be(n, 4);
  }
}

void MsgpackWriter::map(std::size_t entries) { head(0x80, 15, 0xde, entries); }
void MsgpackWriter::array(std::size_t entries) { head(0x90, 15, 0xdc, entries); }

void MsgpackWriter::str(std::string_view s) {
  const std::size_t n = s.size();
  if (n <= 31) {
    out_.push_back(static_cast<char>(0xa0 | n));
  } else if (n <= 0xff) {
    out_.push_back('\xd9');
    be(n, 1);
  } else if (n <= 0xffff) {
    out_.push_back('\xda');
    be(n, 2);
  } else {
    out_.push_back('\xdb');
    be(n, 4);
  }
  out_.append(s);
}

void MsgpackWriter::uint(std::uint64_t v) {
  if (v < 0x80) out_.push_back(static_cast<char>(v));
  else if (v <= 0xff) { out_.push_back('\xcc'); be(v, 1); }
  else if (v <= 0xffff) { out_.push_back('\xcd'); be(v, 2); }
  else if (v <= 0xffffffffu) { out_.push_back('\xce'); be(v, 4); }
  else { out_.push_back('\xcf'); be(v, 8); }
}

void MsgpackWriter::sint(std::int64_t v) {
  if (v >= 0) return uint(static_cast<std::uint64_t>(v));
  const auto u = static_cast<std::uint64_t>(v);
  if (v >= -32) out_.push_back(static_cast<char>(u));
  else if (v >= -128) { out_.push_back('\xd0'); be(u, 1); }
  else if (v >= -32768) { out_.push_back('\xd1'); be(u, 2); }
  else if (v >= INT32_MIN) { out_.push_back('\xd2'); be(u, 4); }
  else { out_.push_back('\xd3'); be(u, 8); }
}

// Always float64 (0xcb + 8 big-endian IEEE bytes): msgpack-c's pack_double turns
// whole-number doubles into integers, so 2.0 would arrive as 2 and -0.0 as 0.
void MsgpackWriter::float64(double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  out_.push_back('\xcb');
  be(bits, 8);
}

void MsgpackWriter::binary(const void* data, std::size_t size) {
  if (size <= 0xff) { out_.push_back('\xc4'); be(size, 1); }
  else if (size <= 0xffff) { out_.push_back('\xc5'); be(size, 2); }
  else { out_.push_back('\xc6'); be(size, 4); }
  out_.append(static_cast<const char*>(data), size);
}

void MsgpackWriter::json(const nlohmann::json& v) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::null: case T::discarded: return nil();
    case T::boolean: return boolean(v.get<bool>());
    case T::number_integer: return sint(v.get<std::int64_t>());
    case T::number_unsigned: return uint(v.get<std::uint64_t>());
    case T::number_float: return float64(v.get<double>());
    case T::string: return str(v.get_ref<const std::string&>());
    case T::binary: {
      const auto& b = v.get_binary();
      return binary(b.data(), b.size());
    }
    case T::array:
      array(v.size());
      for (const auto& e : v) json(e);
      return;
    case T::object:
      map(v.size());
      for (const auto& [k, e] : v.items()) {
        str(k);
        json(e);
      }
      return;
  }
}

// ------------------------------------------------------------------ encoding and decoding
std::string to_msgpack(const nlohmann::json& value) {
  MsgpackWriter w;
  w.json(value);
  return w.take();
}

nlohmann::json from_msgpack(const void* data, std::size_t size) {
  msgpack::object_handle oh = detail::unpack_checked(data, size);
  return detail::to_json_unchecked(oh.get());
}

void materialize_body(Message& m) {
  if (m.raw_body.empty()) return;
  m.body = from_msgpack(m.raw_body.data(), m.raw_body.size());
  m.raw_body.clear();
}

std::string encode_envelope(const Message& m) {
  MsgpackWriter pk;
  const bool has_id = m.type == MessageType::request || m.type == MessageType::reply ||
                      m.type == MessageType::error || m.type == MessageType::progress ||
                      m.type == MessageType::chunk || m.type == MessageType::credit ||
                      m.type == MessageType::cancel;
  const bool has_error = m.type == MessageType::error || m.type == MessageType::reject;
  const bool is_request = m.type == MessageType::request;
  std::uint32_t n = 2 + (has_id ? 1 : 0) + (has_error ? 1 : 0) + (is_request ? 2 : 0);
  pk.map(n);
  pk.key("type");
  pk.str(to_string(m.type));
  if (has_id) {
    pk.key("id");
    pk.uint(m.id);
  }
  if (is_request) {
    pk.key("method");
    pk.str(m.method);
    pk.key("timeout_ms");
    pk.uint(m.timeout_ms);
  }
  if (has_error) {
    pk.key("error");
    pk.map(2);
    pk.key("code");
    pk.str(to_string(m.error_code.value_or(ErrorCode::internal)));
    pk.key("message");
    pk.str(m.error_message);
  }
  pk.key("body");
  if (!m.raw_body.empty()) pk.raw(m.raw_body);
  else if (m.body.is_object()) pk.json(m.body);
  else pk.map(0);
  return pk.take();
}

Message decode(const void* envelope, std::size_t size, BodyForm form) {
  // One parse into msgpack-c's zone, checked once; the envelope's fields are read from it
  // directly, and only the body becomes a JSON tree (or stays bytes, for BodyForm::raw).
  msgpack::object_handle oh = detail::unpack_checked(envelope, size);
  const msgpack::object& env = oh.get();
  if (env.type != msgpack::type::MAP) throw ProtocolError("envelope is not a map");
  std::string_view type_name = string_field(env, "type", "any");
  auto type = message_type_from_string(type_name);
  if (!type) throw ProtocolError("unknown message type '" + std::string(type_name.substr(0, 32)) + "'");
  Message m;
  m.type = *type;
  std::string_view tn = to_string(m.type);
  if (const msgpack::object* body = detail::find_key(env, "body")) {
    if (body->type != msgpack::type::MAP) throw ProtocolError(std::string(tn) + " message body is not a map");
    if (form == BodyForm::json) {
      m.body = detail::to_json_unchecked(*body);
    } else {
      // The body's bytes, found by walking the envelope's top-level pairs in the frame.
      auto p = static_cast<const char*>(envelope);
      std::size_t pos = 0, left = size;
      auto skip = [&] {
        std::size_t k = detail::value_length(p + pos, left);
        pos += k;
        left -= k;
      };
      const unsigned head = static_cast<unsigned char>(p[0]);
      pos = head <= 0x8f ? 1 : head == 0xde ? 3 : 5;
      left = size - pos;
      for (std::uint32_t i = 0; i < env.via.map.size; ++i) {
        skip();  // the key
        const std::size_t value_at = pos;
        skip();
        if (&env.via.map.ptr[i].val == body) {
          m.raw_body.assign(p + value_at, pos - value_at);
          break;
        }
      }
    }
  }
  if (form == BodyForm::raw && m.raw_body.empty()) m.raw_body.assign(1, '\x80');  // absent: {}
  switch (m.type) {
    case MessageType::request: {
      std::string_view method = string_field(env, "method", tn);
      if (method.empty() || method.size() > 64) throw ProtocolError("request method name is empty or longer than 64 bytes");
      m.method = method;
      m.timeout_ms = static_cast<std::uint32_t>(uint_field(env, "timeout_ms", tn, UINT32_MAX));
      [[fallthrough]];
    }
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
      if (err.type != msgpack::type::MAP) throw ProtocolError(std::string(tn) + " message field 'error' is not a map");
      std::string_view code = string_field(err, "code", "error");
      m.error_code = error_code_from_string(code);
      if (!m.error_code) throw ProtocolError("unknown error code '" + std::string(code.substr(0, 32)) + "'");
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

Message decode(std::vector<zmq::message_t>& frames, BodyForm form) {
  if (frames.empty()) throw ProtocolError("no frames");
  if (frames.size() > kMaxFrames)
    throw ProtocolError("message has " + std::to_string(frames.size()) + " frames, at most 2 allowed");
  Message m = decode(frames[0].data(), frames[0].size(), form);
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
