// Fuzz target: encrypted model files (codec/, modelzoo/codec/crypt.h, format "MZENC" version 1) as the
// decrypt extension reads a downloaded .enc file: its key id from the header, then decryption
// with a fixed key (the one the seeds were made with, tests/fuzz/make_corpus.cc) into a file of
// the scratch directory. The contract: success, or CodecError naming the problem, and never an
// output file left behind on failure.
#include <cstdint>

#include "fuzz_key.h"
#include "fuzz_util.h"
#include "modelzoo/codec/crypt.h"

namespace codec = modelzoo::codec;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<codec::Key> keys = [] {
    std::vector<codec::Key> k(1);
    k[0] = modelzoo::fuzz::fixed_key();
    return k;
  }();
  static const auto out = modelzoo::fuzz::scratch_dir() / "plain.bin";
  auto in = modelzoo::fuzz::as_file(data, size);
  try {
    auto id = codec::encrypted_key_id(in);
    FUZZ_ASSERT(id.size() == 16);
  } catch (const codec::CodecError&) {
  }
  std::error_code ec;
  std::filesystem::remove(out, ec);
  try {
    codec::decrypt_file(in, out, keys);
  } catch (const codec::CodecError&) {
    FUZZ_ASSERT(!std::filesystem::exists(out));
  }
  return 0;
}
