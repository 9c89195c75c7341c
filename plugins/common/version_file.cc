#include "common/version_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>

#include "modelzoo/bus/model.h"

namespace modelzoo::plugins {

VersionFile apply_version_file(const std::string& text, const std::string& where, sdk::ModelMetadata& m) {
  VersionFile out;
  auto warn = [&](const std::string& what) { out.warnings.push_back("'" + where + "': " + what); };
  try {
    YAML::Node doc = YAML::Load(text);
    if (doc.IsNull()) return out;
    if (!doc.IsMap()) {
      out.warnings.push_back("'" + where + "' is not a YAML map, ignored");
      return out;
    }
    auto field = [&](const char* key, std::string& into) {
      YAML::Node n = doc[key];
      if (!n || n.IsNull()) return;
      if (n.IsScalar()) into = n.as<std::string>();
      else warn(std::string("'") + key + "' is not a string, ignored");
    };
    field("description", m.description);
    field("author", m.author);
    field("license", m.license);
    field("format", m.format);
    if (YAML::Node tags = doc["tags"]; tags && !tags.IsNull()) {
      if (tags.IsSequence()) {
        for (const auto& t : tags)
          if (t.IsScalar()) m.tags.push_back(t.as<std::string>());
          else warn("a tag is not a string, ignored");
      } else {
        warn("'tags' is not a list, ignored");
      }
    }
    if (YAML::Node hashes = doc["sha256"]; hashes && !hashes.IsNull()) {
      if (!hashes.IsMap()) {
        warn("'sha256' is not a map of file names to hashes, ignored");
      } else {
        for (const auto& kv : hashes) {
          if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
            warn("an entry of 'sha256' is not 'file: hash', ignored");
            continue;
          }
          std::string file = kv.first.as<std::string>(), hex = kv.second.as<std::string>();
          std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
          if (!bus::is_sha256_hex(hex)) warn("the sha256 of '" + file + "' is not 64 hex digits, ignored");
          else out.sha256[file] = hex;
        }
      }
    }
  } catch (const YAML::Exception& e) {
    out.warnings.push_back("'" + where + "' is not valid YAML (" + e.what() + "), ignored");
  }
  return out;
}

}  // namespace modelzoo::plugins
