// Fuzz target: the ONNX structural check (extensions/formats), on the bytes as a file, read
// with pread as the format-validator extension reads a downloaded file, with one external data
// file "weights.bin" (64 bytes) next to it; and the same check on the bytes in memory, which
// must give the same verdict.
#include <cstdint>
#include <fstream>

#include "fuzz_util.h"
#include "modelzoo/formats/formats.h"

namespace formats = modelzoo::formats;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::filesystem::path weights = [] {
    auto p = modelzoo::fuzz::scratch_dir() / "weights.bin";
    std::ofstream(p, std::ios::binary) << std::string(64, '\x01');
    return p;
  }();
  formats::ModelFileLookup lookup = [](const std::string& rel) -> std::optional<std::filesystem::path> {
    FUZZ_ASSERT(!rel.empty() && rel[0] != '/');
    if (rel == "weights.bin" || rel == "sub/weights.bin") return weights;
    return std::nullopt;
  };
  auto on_disk = formats::check_file(modelzoo::fuzz::as_file(data, size), "onnx", lookup);
  auto in_memory = formats::check_bytes(std::string_view(reinterpret_cast<const char*>(data), size), "onnx", lookup);
  FUZZ_ASSERT(on_disk.has_value() == in_memory.has_value());
  if (on_disk) {
    FUZZ_ASSERT(on_disk->rule == in_memory->rule);
    FUZZ_ASSERT(on_disk->rule.rfind("onnx.", 0) == 0);
    (void)formats::describe(*on_disk);
  }
  return 0;
}
