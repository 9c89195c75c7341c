// Test helper: hostile msgpack shapes written with msgpack-c's packer, for the envelope and
// hot-path tests. Include after <msgpack.hpp> (with MSGPACK_NO_BOOST, as the tests build it).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include <msgpack.hpp>

namespace modelzoo::testing {

using Packer = msgpack::packer<msgpack::sbuffer>;

// The bytes `f` writes.
inline std::string packed(const std::function<void(Packer&)>& f) {
  msgpack::sbuffer buf;
  Packer pk(buf);
  f(pk);
  return std::string(buf.data(), buf.size());
}

// A msgpack string (str family).
inline void str(Packer& pk, std::string_view s) {
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

}  // namespace modelzoo::testing
