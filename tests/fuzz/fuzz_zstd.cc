// Fuzz target: zstd-compressed model files (codec, decompress_file) as the
// decompress extension reads a downloaded .zst file: decoded into a file of the scratch
// directory with a 4 MiB output limit. The contract: success, or CodecError naming the problem,
// and never an output file left behind on failure.
#include <cstdint>

#include "fuzz_util.h"
#include "modelzoo/codec/zstd.h"

namespace codec = modelzoo::codec;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto out = modelzoo::fuzz::scratch_dir() / "out.bin";
  std::error_code ec;
  std::filesystem::remove(out, ec);
  try {
    codec::decompress_file(modelzoo::fuzz::as_file(data, size), out, 4u << 20);
    FUZZ_ASSERT(std::filesystem::file_size(out) <= (4u << 20));
  } catch (const codec::CodecError&) {
    FUZZ_ASSERT(!std::filesystem::exists(out));
  }
  return 0;
}
