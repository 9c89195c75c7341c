// The modelzoo bus envelope (docs/protocol.md, "Message envelope").
//
// A message is one msgpack map frame (the envelope), optionally followed by one raw
// data frame (only `chunk` messages carry one). On a ROUTER socket the peer's routing
// id frame precedes them. This header is the whole contract of the wire format; it
// depends on nothing of modelzoo's.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

namespace modelzoo::bus {

// Protocol versions this implementation speaks (docs/protocol.md, "Version negotiation").
inline constexpr int kProtocolVersion = 1;

// Limits (docs/protocol.md, "Limits"). A frame over these is rejected unread.
inline constexpr std::size_t kMaxEnvelopeBytes = 1u << 20;       // 1 MiB
inline constexpr std::size_t kMaxDataBytes = 8u << 20;           // 8 MiB
inline constexpr std::size_t kMaxFrames = 2;                     // envelope + data
inline constexpr std::size_t kMaxSocketMessageBytes = 16u << 20;  // ZMQ_MAXMSGSIZE

enum class MessageType {
  hello,      // plugin -> daemon: first message, identifies and authenticates the plugin
  welcome,    // daemon -> plugin: hello accepted
  reject,     // daemon -> plugin: hello refused (carries an error)
  request,    // either way: call a method; carries id, method, timeout_ms, body
  reply,      // answer to a request (success)
  error,      // answer to a request (failure), or a protocol error with id 0
  progress,   // daemon -> client: intermediate state of a long request
  chunk,      // plugin -> daemon: one piece of a download, data in the second frame
  credit,     // daemon -> plugin: permission to send more chunks of a download
  cancel,     // requester -> responder: abandon request `id`
  heartbeat,  // either way: liveness
  goodbye,    // either way: the sender is going away (daemon: "please exit")
};

std::string_view to_string(MessageType t);
std::optional<MessageType> message_type_from_string(std::string_view s);

// Typed errors (docs/protocol.md, "Errors").
// `rejected`: an extension refused the model (docs/protocol.md, "Extension hooks").
enum class ErrorCode { not_found, unavailable, timeout, bad_request, unauthorized, internal, rejected };

std::string_view to_string(ErrorCode c);
std::optional<ErrorCode> error_code_from_string(std::string_view s);

// An error carried by a message, and thrown by code that fails a request.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Thrown by decode() when bytes from a peer do not form a valid message.
// what() names the problem (never the bytes themselves).
class ProtocolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Message {
  MessageType type = MessageType::heartbeat;
  std::uint64_t id = 0;          // request, reply, error, progress, chunk, credit, cancel
  std::string method;            // request
  std::uint32_t timeout_ms = 0;  // request: time the requester will wait, from sending
  nlohmann::json body = nlohmann::json::object();  // always a map
  // The body as the msgpack bytes of one map, for messages that travel without a JSON tree
  // (docs/architecture.md, "The hot path"). When non-empty, it is the body: `body` is then
  // unused (left empty), and encode_envelope() writes these bytes verbatim. decode() fills
  // it, with bytes checked by the same rules as any body, when asked for BodyForm::raw;
  // senders fill it with MsgpackWriter output (or bytes decoded that way).
  std::string raw_body;
  std::optional<ErrorCode> error_code;             // error, reject
  std::string error_message;                       // error, reject
  zmq::message_t data;                             // chunk only

  static Message make_request(std::uint64_t id, std::string method, nlohmann::json body,
                              std::uint32_t timeout_ms);
  static Message make_reply(std::uint64_t id, nlohmann::json body);
  static Message make_error(std::uint64_t id, ErrorCode code, std::string message);
  static Message make(MessageType type, nlohmann::json body = nlohmann::json::object());
  // A reply whose body is already msgpack (one map): see raw_body.
  static Message make_raw_reply(std::uint64_t id, std::string raw_body);
};

// How decode() hands over the body: as a JSON tree in `body` (what handlers read), or as
// its checked msgpack bytes in `raw_body` (`body` empty), for a receiver that forwards the
// body or reads it with a typed decoder. Both check the same rules and throw the same errors.
enum class BodyForm { json, raw };

// Moves a raw body into `body` as a JSON tree (raw_body is then empty). No-op for a
// message without raw_body. The bytes must have come from decode() or MsgpackWriter.
void materialize_body(Message& m);

// Writes msgpack values into a byte string, in the encodings msgpack-c's packer picks
// (smallest integer, str8 for strings of 32-255 bytes, float64 always), so what it writes
// is byte for byte what encoding the same value as a JSON tree gives. The caller counts
// entries: map(n) must be followed by n key/value pairs, array(n) by n values.
class MsgpackWriter {
 public:
  MsgpackWriter() { out_.reserve(256); }
  void map(std::size_t entries);
  void array(std::size_t entries);
  void str(std::string_view s);
  void key(std::string_view k) { str(k); }
  void uint(std::uint64_t v);
  void sint(std::int64_t v);  // a non-negative value is written as uint() writes it
  void boolean(bool v) { out_.push_back(v ? '\xc3' : '\xc2'); }
  void nil() { out_.push_back('\xc0'); }
  void float64(double v);
  void binary(const void* data, std::size_t size);
  void json(const nlohmann::json& v);  // any JSON value, as to_msgpack() writes it
  void raw(std::string_view encoded) { out_.append(encoded); }  // one complete msgpack value
  const std::string& bytes() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void head(unsigned char fix, unsigned char fix_max, unsigned char c16, std::size_t n);
  void be(std::uint64_t v, int bytes);
  std::string out_;
};

// Encodes the envelope (not the data frame) as msgpack.
std::string encode_envelope(const Message& m);

// Decodes and validates an envelope and, for `chunk`, its data frame.
// Throws ProtocolError naming the problem: oversized frame, not msgpack, not a map,
// unknown type, missing or mistyped field, trailing bytes, nesting too deep.
Message decode(const void* envelope, std::size_t size, BodyForm form = BodyForm::json);
Message decode(std::vector<zmq::message_t>& frames, BodyForm form = BodyForm::json);  // frames without routing id

// {"code": "<code>", "message": "<text>"}: an error as it appears in replies and events.
nlohmann::json to_json(const Error& e);

// Reading a field of a body that came from another process, without trusting its type:
// a missing or mistyped field gives the fallback (never an exception).
std::string get_string(const nlohmann::json& body, const char* key, const std::string& fallback = {});
std::optional<std::uint64_t> get_uint(const nlohmann::json& body, const char* key);
std::optional<std::int64_t> get_int(const nlohmann::json& body, const char* key);

// Strict reading, for the fields a receiver acts on (docs/protocol.md, "Errors"): a field of
// the wrong type is refused, never read as absent or as a default, so a client that sends
// `"offline": "yes"` learns its mistake instead of getting a pull it did not ask for.
enum class FieldType { string, integer, boolean, map, string_list, integer_list };
// The msgpack family of a value as an error names it: "nil", "boolean", "integer", "float",
// "string", "binary", "array", "map".
std::string_view type_name(const nlohmann::json& v);
// What a field of `type` is called in an error: "a string", "a list of strings", ...
std::string_view expected_name(FieldType type);
// Why `body[key]` does not have `type` ("'offline' must be a boolean, not a string"), or
// nothing when it does or is absent. A nil value is a wrong type, not an absent field.
std::optional<std::string> field_type_error(const nlohmann::json& body, const char* key, FieldType type);
// Request parameters: throw Error(bad_request) naming the parameter and the type expected.
std::string require_string_param(const nlohmann::json& body, const char* key);
std::optional<bool> optional_bool_param(const nlohmann::json& body, const char* key);

// msgpack <-> JSON value conversion used for bodies (binary values map to json::binary).
std::string to_msgpack(const nlohmann::json& value);
nlohmann::json from_msgpack(const void* data, std::size_t size);  // throws ProtocolError

}  // namespace modelzoo::bus
