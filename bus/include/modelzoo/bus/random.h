// Random hex strings from the kernel's CSPRNG: per-spawn plugin tokens (the daemon and the
// conformance kit), nonces.
#pragma once

#include <cstddef>
#include <string>

namespace modelzoo::bus {

// `digits` lowercase hex digits (4 random bits each) from getrandom(2). Throws
// std::system_error if the kernel cannot give them.
std::string random_hex(std::size_t digits);

}  // namespace modelzoo::bus
