// Fuzz target: plugin manifests (plugin.yaml, config/src/config.cc load_manifest), read
// from a file as the daemon reads them from its plugin directories. The contract: a manifest
// is accepted or refused with ConfigError naming the file and the field; nothing else escapes.
#include <cstdint>

#include "modelzoo/config/config.h"
#include "fuzz_util.h"
#include "modelzoo/bus/names.h"

namespace sv = modelzoo::supervisor;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto file = modelzoo::fuzz::as_file(data, size);
  try {
    sv::Manifest m = sv::load_manifest(file);
    FUZZ_ASSERT(!modelzoo::bus::check_plugin_name(m.name));
    FUZZ_ASSERT(!m.command.empty() && !m.command[0].empty());
    FUZZ_ASSERT(m.kind == "registry" || m.kind == "extension");
    (void)m.config.dump();
  } catch (const sv::ConfigError&) {
  }
  return 0;
}
