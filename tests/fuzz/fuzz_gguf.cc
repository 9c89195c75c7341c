// Fuzz target: the gguf structural check (extensions/formats), on the bytes as a file, read
// with pread as the format-validator extension reads a downloaded file; and the same check on
// the bytes in memory, which must give the same verdict.
#include <cstdint>

#include "fuzz_util.h"
#include "modelzoo/formats/formats.h"

namespace formats = modelzoo::formats;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto on_disk = formats::check_file(modelzoo::fuzz::as_file(data, size), "gguf");
  auto in_memory = formats::check_bytes(std::string_view(reinterpret_cast<const char*>(data), size), "gguf");
  FUZZ_ASSERT(on_disk.has_value() == in_memory.has_value());
  if (on_disk) {
    FUZZ_ASSERT(on_disk->rule == in_memory->rule);
    FUZZ_ASSERT(on_disk->rule.rfind("gguf.", 0) == 0);
    (void)formats::describe(*on_disk);
  }
  return 0;
}
