// YAML text to JSON values (the form every setting is read in), bounded against alias
// cycles and "billion laughs", with UTF-8 checked; and reading a file.
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "internal.h"

namespace modelzoo::supervisor {
using nlohmann::json;

namespace {

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

// An alias inside its own anchor ("a: &x [*x]") makes a cycle, and aliases of aliases repeat
// a node exponentially ("billion laughs"): the conversion stops at these bounds with an error
// instead of recursing without end or filling the memory.
constexpr int kMaxYamlDepth = 64;
constexpr std::size_t kMaxYamlValues = 250000;

// YAML takes any bytes, JSON text is UTF-8: a string that is not would make every later dump()
// of the configuration throw (and plugins refuse it on the bus).
json utf8_checked(json v, const YAML::Node& n) {
  if (v.is_string()) {
    try {
      (void)v.dump();
    } catch (const json::type_error&) {
      throw YAML::Exception(n.Mark(), "a string is not valid UTF-8");
    }
  }
  return v;
}

json node_to_json(const YAML::Node& n, int depth, std::size_t& values) {
  if (depth > kMaxYamlDepth)
    throw YAML::Exception(n.Mark(), "nested deeper than " + std::to_string(kMaxYamlDepth) +
                                        " levels (an alias inside its own anchor?)");
  if (++values > kMaxYamlValues)
    throw YAML::Exception(n.Mark(), "more than " + std::to_string(kMaxYamlValues) + " values (aliases repeating aliases?)");
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return nullptr;
    case YAML::NodeType::Scalar: return utf8_checked(scalar_to_json(n), n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(node_to_json(e, depth + 1, values));
      return a;
    }
    case YAML::NodeType::Map: {
      json m = json::object();
      for (const auto& kv : n)
        m[utf8_checked(kv.first.as<std::string>(), kv.first).get<std::string>()] = node_to_json(kv.second, depth + 1, values);
      return m;
    }
  }
  return nullptr;
}

}  // namespace

nlohmann::json yaml_to_json(const std::string& yaml_text) {
  std::size_t values = 0;
  return node_to_json(YAML::Load(yaml_text), 0, values);
}

namespace detail {

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw ConfigError(file.string() + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace detail
}  // namespace modelzoo::supervisor
