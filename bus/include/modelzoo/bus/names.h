// Model and plugin names (docs/protocol.md, "Names"). Every name that may become part of a
// path is checked here, at the edge, before it is used.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace modelzoo::bus {

// A model name is one to eight segments separated by '/', each of 1..64 characters from
// [A-Za-z0-9._-], not starting with '.' or '-'. At most 200 characters in all.
// Returns nullopt when valid, else the reason.
std::optional<std::string> check_model_name(std::string_view name);

// A version is a semantic version (semver.org 2.0.0), at most 64 characters.
std::optional<std::string> check_version(std::string_view version);

// A file name inside a model: one or more segments like model names, at most 255
// characters, no empty, "." or ".." segment, no leading '/'.
std::optional<std::string> check_file_name(std::string_view name);

// A plugin or source name: 1..64 characters from [a-z0-9_-], starting with a letter or digit.
std::optional<std::string> check_plugin_name(std::string_view name);

// "NAME" or "NAME:VERSION". Throws bus::Error(bad_request) on an invalid reference.
struct ModelRef {
  std::string name;
  std::string version;  // empty = latest
  std::string str() const { return version.empty() ? name : name + ":" + version; }
};
ModelRef parse_model_ref(std::string_view ref);

// Glob match as used by `handles` patterns: '*' matches any run of characters including
// '/', '?' one character, everything else itself.
bool glob_match(std::string_view pattern, std::string_view name);

// A registry tag that is not a semantic version (Ollama's "8b-instruct-q4_K_M") as the
// version "0.0.0+<tag>", '_' (which build metadata cannot carry) written "--":
// "0.0.0+8b-instruct-q4--K--M". nullopt when the tag has another character build metadata
// cannot carry, an empty dot-separated part, a '_' next to a '-' (it could not be read
// back), or the version would exceed 64 characters.
// Two tags may give one version ("a_b" and "a--b"); tag_of_version's caller then decides.
std::optional<std::string> version_of_tag(std::string_view tag);
// The tag a "0.0.0+..." version names, '--' read as '_' ("0.0.0+q4--0" -> "q4_0"); nullopt
// for any other version. A registry holding the literal tag ("q4--0") is asked for that first.
std::optional<std::string> tag_of_version(std::string_view version);

}  // namespace modelzoo::bus

namespace modelzoo::bus {

// A parsed semantic version; ordering follows semver.org 2.0.0 section 11
// (build metadata ignored, a pre-release sorts before its release).
struct SemVer {
  unsigned long long major = 0, minor = 0, patch = 0;
  std::string prerelease;  // dot-separated identifiers, empty when none
  std::string build;

  static std::optional<SemVer> parse(std::string_view s);
  int compare(const SemVer& o) const;  // <0, 0, >0
};

}  // namespace modelzoo::bus
