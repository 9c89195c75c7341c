// Fuzz target: cache manifests read back from disk (core/src/cache.cc, cache_admin.cc):
// <cache>/manifests/<name>/<version>.json written by an earlier daemon, perhaps damaged or
// edited since. The input is the file's contents, placed as manifests/org/m/1.0.0.json of a
// scratch cache; then what the daemon and `modelzoo cache` do with it: read_manifest,
// read_manifest_record, cached_versions, remove_unreferenced_blob and list_cache. A manifest
// is used or reported as a problem; nothing throws.
#include <cstdint>
#include <fstream>

#include "fuzz_util.h"
#include "modelzoo/core/cache.h"
#include "modelzoo/core/cache_admin.h"

namespace core = modelzoo::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto root = modelzoo::fuzz::scratch_dir() / "cache";
  static core::ContentStore store(root);
  static const auto file = root / "manifests" / "org" / "m" / "1.0.0.json";
  std::filesystem::create_directories(file.parent_path());
  {
    std::ofstream f(file, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto md = store.read_manifest("org/m", "1.0.0");
  if (md) FUZZ_ASSERT(md->name.size() > 0);
  auto rec = store.read_manifest_record("org/m", "1.0.0");
  FUZZ_ASSERT(md.has_value() == rec.has_value());
  (void)store.cached_versions("org/m");
  (void)store.remove_unreferenced_blob(std::string(64, 'a'));
  auto listing = core::list_cache(root);
  FUZZ_ASSERT(listing.models.size() + listing.problems.size() >= 1);
  return 0;
}
