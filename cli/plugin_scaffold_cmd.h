// `modelzoo plugin new NAME --lang cpp|python [--kind registry|extension] [--dir DIR]` and
// `modelzoo plugin validate DIR`: tools for plugin authors (docs/writing-plugins.md).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace modelzoo::cli {

struct PluginNewOptions {
  std::string name;
  std::string lang;
  std::string kind = "registry";
  std::string dir;  // where to create it (default: ./NAME); must not exist or be empty
};

struct PluginValidateOptions {
  std::string dir;
};

CLI::App* add_plugin_new_command(CLI::App& plugin_group, PluginNewOptions& options);
CLI::App* add_plugin_validate_command(CLI::App& plugin_group, PluginValidateOptions& options);

// Each prints its own output (JSON with `json`) and returns the exit status.
int run_plugin_new(const PluginNewOptions& options, bool json);
int run_plugin_validate(const PluginValidateOptions& options, bool json);

// Every problem of the manifest DIR/plugin.yaml, one line each ("plugin.yaml: version: '1.0'
// is not a semantic version ..."); empty when it is fine. Checks what the daemon checks
// (supervisor::load_manifest) and that the command can be started.
std::vector<std::string> validate_plugin_dir(const std::filesystem::path& dir);

}  // namespace modelzoo::cli
