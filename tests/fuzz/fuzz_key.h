// The fixed key the codec fuzz targets decrypt with, and their seeds were encrypted with.
#pragma once

#include "modelzoo/codec/crypt.h"

namespace modelzoo::fuzz {

inline codec::Key fixed_key() {
  codec::Key k;
  for (std::size_t i = 0; i < k.bytes.size(); ++i) k.bytes[i] = static_cast<unsigned char>(0x40 + i);
  k.id = codec::key_id(k.bytes);
  return k;
}

}  // namespace modelzoo::fuzz
