// `--config FILE`: a YAML (or JSON, which YAML reads too) map, converted to JSON the way the
// daemon converts a source's `config:` (docs/protocol.md, "welcome": YAML scalars arrive as
// strings, integers, floats, booleans or nil as they parse; quoted scalars are strings).
#include <cerrno>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <yaml-cpp/yaml.h>

#include "modelzoo/config/config.h"  // supervisor::yaml_to_json
#include "modelzoo/conformance/kit.h"

namespace modelzoo::conformance {

using nlohmann::json;

json load_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read configuration file " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  json config;
  try {
    config = supervisor::yaml_to_json(ss.str());  // exactly as the daemon reads a source config
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("configuration file " + path.string() + " is not valid YAML or JSON: " + e.what());
  }
  if (config.is_null()) return json::object();  // an empty file
  if (!config.is_object()) throw std::runtime_error("configuration file " + path.string() + " does not hold a map");
  return config;
}

}  // namespace modelzoo::conformance
