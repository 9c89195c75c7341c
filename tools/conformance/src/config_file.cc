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

#include "modelzoo/conformance/kit.h"

namespace modelzoo::conformance {
namespace {

using nlohmann::json;

json scalar_to_json(const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (n.Tag() == "!") return s;  // quoted: always a string
  if (s == "true" || s == "True" || s == "yes") return true;
  if (s == "false" || s == "False" || s == "no") return false;
  if (s == "null" || s == "~" || s.empty()) return nullptr;
  char* end = nullptr;
  errno = 0;
  if (s[0] == '-') {
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (*end == 0 && errno == 0) return v;
  } else {
    unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (*end == 0 && errno == 0 && std::isdigit(static_cast<unsigned char>(s[0]))) return v;
  }
  double d = std::strtod(s.c_str(), &end);
  if (*end == 0 && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.')) return d;
  return s;
}

json node_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return scalar_to_json(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(node_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json m = json::object();
      for (const auto& kv : n) m[kv.first.as<std::string>()] = node_to_json(kv.second);
      return m;
    }
  }
  return nullptr;
}

}  // namespace

json load_config_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read configuration file " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  json config;
  try {
    config = node_to_json(YAML::Load(ss.str()));
  } catch (const YAML::Exception& e) {
    throw std::runtime_error("configuration file " + path.string() + " is not valid YAML or JSON: " + e.what());
  }
  if (config.is_null()) return json::object();  // an empty file
  if (!config.is_object()) throw std::runtime_error("configuration file " + path.string() + " does not hold a map");
  return config;
}

}  // namespace modelzoo::conformance
