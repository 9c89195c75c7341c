#include "modelzoo/bus/random.h"

#include <sys/random.h>

#include <cerrno>
#include <system_error>
#include <vector>

namespace modelzoo::bus {

std::string random_hex(std::size_t digits) {
  static const char* hex = "0123456789abcdef";
  std::vector<unsigned char> raw((digits + 1) / 2);
  std::size_t got = 0;
  while (got < raw.size()) {
    ssize_t n = ::getrandom(raw.data() + got, raw.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "getrandom");
    got += static_cast<std::size_t>(n);
  }
  std::string out;
  out.reserve(digits);
  for (std::size_t i = 0; i < digits; ++i) out += hex[(raw[i / 2] >> (i % 2 ? 0 : 4)) & 15];
  return out;
}

}  // namespace modelzoo::bus
