// modelzoo-ext-decompress: decompresses model files published as "*.zst" (zstd) after
// download; the cache keeps them under their plain names and hashes.
//
// config:
//   max_output_bytes: 1099511627776   refuse a file that expands beyond this (default 1 TiB)
#include "common/transform.h"
#include "modelzoo/codec/zstd.h"
#include "modelzoo/extension.h"

namespace {

using namespace modelzoo;

class Decompress final : public sdk::Extension {
 public:
  void configure(const nlohmann::json& config) override {
    auto limit = config.value("max_output_bytes", nlohmann::json(std::uint64_t{1} << 40));
    if (!limit.is_number_unsigned()) throw std::runtime_error("decompress: 'max_output_bytes' must be a non-negative integer");
    limit_ = limit.get<std::uint64_t>();
  }

  sdk::HookResult hook(const sdk::HookRequest& req) override {
    return extensions::transform_files(req, std::string(codec::kZstdSuffix), [&](const auto& in, const auto& out) {
      try {
        codec::decompress_file(in, out, limit_);
      } catch (const codec::CodecError& e) {
        throw extensions::BadContent(e.what());
      }
    });
  }

 private:
  std::uint64_t limit_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  Decompress ext;
  return sdk::run(ext,
                  {.name = "decompress",
                   .version = MODELZOO_VERSION,
                   .points = {sdk::kPostDownload},
                   .formats = {"zst"},
                   .order = 20,
                   .handles = {"*"}},
                  argc, argv);
}
