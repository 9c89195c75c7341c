// Internal to modelzoo_bus: reading msgpack values from peers with msgpack-c, under the rules
// of docs/protocol.md ("Message envelope", "Limits"), without building JSON trees.
// Every translation unit of the bus that includes msgpack.hpp includes it through here, so
// MSGPACK_ZONE_CHUNK_SIZE is the same everywhere (it changes msgpack-c's inline code).
#pragma once

#include <cstddef>
#include <string_view>

// Bus messages are small: msgpack-c's 8 KiB default zone chunk and buffer cost a large
// allocation (and malloc_consolidate) per message. The chunk size is a compile-time knob.
#define MSGPACK_ZONE_CHUNK_SIZE 1024
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace modelzoo::bus::detail {

// Parses exactly one msgpack value filling [data, data+size) within the limits (size, depth
// 32, containers of at most 65536 entries, no ext) and checks it with check_value(). Throws
// ProtocolError naming the problem: oversized or empty frame, not msgpack, trailing bytes,
// and whatever check_value() refuses.
msgpack::object_handle unpack_checked(const void* data, std::size_t size);

// Every string and map key is valid UTF-8, every map key is a string and appears once, and
// there is no extension value, checked depth-first in wire order (so the first problem
// reported is the one the JSON conversion used to report). Throws ProtocolError.
void check_value(const msgpack::object& o);

// The JSON form of a value that check_value() accepted (binary values map to json::binary).
nlohmann::json to_json_unchecked(const msgpack::object& o);

// The value of `key` in map `o`, or nullptr. Keys are unique once checked.
const msgpack::object* find_key(const msgpack::object& o, std::string_view key);

inline std::string_view as_string_view(const msgpack::object& o) {
  return {o.via.str.ptr, o.via.str.size};
}

// The number of bytes of the msgpack value at `p`, which lies in a buffer that unpack_checked()
// accepted (at most `n` bytes left). Used to find a field's bytes inside an envelope.
std::size_t value_length(const char* p, std::size_t n);

}  // namespace modelzoo::bus::detail
