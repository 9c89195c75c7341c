// The optional per-version metadata file of the directory-like sources (local-file, and the
// object stores of plugins/objstore): `modelzoo.yaml` beside a version's files.
//
//   description: "Llama 3 8B, int4"      # each a string, all optional
//   author: acme
//   license: apache-2.0
//   format: gguf
//   tags: [llm, q4]
//   sha256:                               # object stores: the sha256 of files, by name
//     model.gguf: 3f6a...64 hex digits
//
// A field of the wrong type is ignored with a warning; the rest still counts.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "modelzoo/plugin.h"

namespace modelzoo::plugins {

struct VersionFile {
  std::map<std::string, std::string> sha256;  // file name -> 64 lower-case hex digits
  std::vector<std::string> warnings;          // "'tags' is not a list, ignored", ...
};

// Parses `text` (named `where` in warnings) and sets m's description, author, license, format
// and tags from it. Never throws: a file that is not YAML, or not a map, is one warning.
VersionFile apply_version_file(const std::string& text, const std::string& where, sdk::ModelMetadata& m);

}  // namespace modelzoo::plugins
