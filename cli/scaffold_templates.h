// The files `modelzoo plugin new` writes (docs/writing-plugins.md, "From nothing to a running
// plugin"). Pure functions: the templates are raw string literals in scaffold_templates.cc
// with {{PLACEHOLDERS}} filled in here.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace modelzoo::cli::scaffold {

struct Params {
  std::string name;           // plugin name, already checked with bus::check_plugin_name
  std::string lang;           // "cpp" or "python"
  std::string kind;           // "registry" or "extension"
  std::string prefix;         // where modelzoo is installed (for the README), may be empty
  std::string python_sdk;     // directory holding modelzoo_plugin (Python only)
  std::string sdk_version;    // modelzoo's version, e.g. "0.1.0"
};

struct File {
  std::string path;           // relative to the plugin directory
  std::string content;
  bool executable = false;
};

// The files of a new plugin. Throws std::invalid_argument for an unknown lang or kind.
std::vector<File> render(const Params& params);

// "my-plugin" -> "MyPlugin"; a leading digit gets "Plugin" in front ("3d" -> "Plugin3d").
std::string class_name(const std::string& plugin_name);

// Replaces every "{{KEY}}" of `vars` in `text`. Unknown placeholders are left alone.
std::string substitute(std::string text, const std::map<std::string, std::string>& vars);

// `s` as a Python string literal ("..." with backslashes, quotes and control characters escaped).
std::string python_string(const std::string& s);

// Where the binary of a scaffolded C++ plugin lands, relative to its directory.
std::string cpp_binary_path(const std::string& name);

}  // namespace modelzoo::cli::scaffold
