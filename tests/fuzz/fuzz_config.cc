// Fuzz target: the daemon's configuration (config/src/config.cc): parse_config on YAML
// text, with the MODELZOO_* environment overlay, and yaml_to_json alone. The input is the YAML
// text, optionally followed by a line "#ENV" and lines NAME=VALUE that are set as environment
// variables (MODELZOO_ is prepended to names that lack it) for that one parse. The contract:
// a configuration is accepted or refused with ConfigError; nothing else escapes.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "modelzoo/config/config.h"
#include "fuzz_util.h"

namespace sv = modelzoo::supervisor;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Defaults that touch nothing real: every directory under the scratch directory.
  const auto& dir = modelzoo::fuzz::scratch_dir();
  ::setenv("HOME", dir.c_str(), 1);
  for (const char* v : {"XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "XDG_DATA_HOME"}) ::setenv(v, dir.c_str(), 1);
  std::vector<std::string> ours;
  for (char** e = environ; *e; ++e)
    if (std::string_view(*e).rfind("MODELZOO_", 0) == 0) ours.emplace_back(std::string(*e).substr(0, std::string(*e).find('=')));
  for (const auto& n : ours) ::unsetenv(n.c_str());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> set;
  if (auto cut = text.find("\n#ENV\n"); cut != std::string::npos) {
    std::string env = text.substr(cut + 6);
    text.resize(cut + 1);
    std::size_t start = 0;
    while (start < env.size() && set.size() < 8) {
      auto end = env.find('\n', start);
      std::string line = env.substr(start, end == std::string::npos ? std::string::npos : end - start);
      start = end == std::string::npos ? env.size() : end + 1;
      auto eq = line.find('=');
      if (eq == std::string::npos || eq == 0) continue;
      std::string name = line.substr(0, eq);
      bool ok = true;
      for (char c : name) ok = ok && ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_');
      if (!ok || line.find('\0') != std::string::npos) continue;
      if (name.rfind("MODELZOO_", 0) != 0) name = "MODELZOO_" + name;
      ::setenv(name.c_str(), line.substr(eq + 1).c_str(), 1);
      set.push_back(name);
    }
  }
  try {
    (void)sv::yaml_to_json(text);
  } catch (const YAML::Exception&) {
  }
  try {
    sv::DaemonConfig c = sv::parse_config(text, "fuzz.yaml", "/nonexistent/modelzoo-fuzz-bin");
    for (const auto& s : c.sources) (void)s.config.dump();
  } catch (const sv::ConfigError&) {
  }
  for (const auto& n : set) ::unsetenv(n.c_str());
  return 0;
}
