// `modelzoo plugin test [--] COMMAND...`: the conformance kit (docs/writing-plugins.md).
// Starts a plugin the way modelzood does and runs the protocol through it.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace modelzoo::cli {

struct PluginTestOptions {
  std::vector<std::string> command;  // the plugin's argv
};

// Adds `test` to the `plugin` group, filling `options` when parsed.
CLI::App* add_plugin_test_command(CLI::App& plugin_group, PluginTestOptions& options);

// Runs the checks, printing one line per check (or, with `json`, one JSON document), and
// returns the process exit status: 0 when every check passed, 1 otherwise.
int run_plugin_test(const PluginTestOptions& options, bool json);

}  // namespace modelzoo::cli
