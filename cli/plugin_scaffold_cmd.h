// `modelzoo plugin new NAME --lang cpp|python [--kind registry|extension]` and
// `modelzoo plugin validate DIR`: tools for plugin authors (docs/writing-plugins.md).
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace modelzoo::cli {

struct PluginNewOptions {
  std::string name;
  std::string lang;
  std::string kind = "registry";
  std::string dir;  // where to create it (default: ./NAME)
};

struct PluginValidateOptions {
  std::string dir;
};

CLI::App* add_plugin_new_command(CLI::App& plugin_group, PluginNewOptions& options);
CLI::App* add_plugin_validate_command(CLI::App& plugin_group, PluginValidateOptions& options);

// Each prints its own output (JSON with `json`) and returns the exit status.
int run_plugin_new(const PluginNewOptions& options, bool json);
int run_plugin_validate(const PluginValidateOptions& options, bool json);

}  // namespace modelzoo::cli
