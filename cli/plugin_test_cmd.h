// `modelzoo plugin test [OPTIONS] [--] COMMAND...`: the conformance kit (docs/writing-plugins.md,
// "Testing your plugin: the conformance kit"). Starts a plugin the way modelzood does and runs
// the protocol through it; the checks live in tools/conformance (modelzoo_conformance).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace modelzoo::cli {

struct PluginTestOptions {
  std::vector<std::string> command;  // the plugin's argv
  std::string config_file;           // --config: YAML or JSON map, sent as the welcome's config
  std::string model;                 // --model NAME[:VERSION]
  std::string kind;                  // --kind registry|extension (default: what the hello says)
  std::uint32_t timeout_ms = 5000;   // --timeout-ms: wait for each answer
  std::uint64_t max_bytes = 64ull << 20;  // --max-bytes: download budget
  bool verbose = false;              // --verbose: details of passed checks, the plugin's output
  bool json = false;                 // --json given after `test` (the global --json works too)
};

// Adds `test` to the `plugin` group, filling `options` when parsed.
CLI::App* add_plugin_test_command(CLI::App& plugin_group, PluginTestOptions& options);

// Runs the checks, printing one line per check (or, with `global_json` or options.json, one
// JSON document), and returns the process exit status: 0 when every check passed, 1
// otherwise, 2 for a usage error (unreadable --config, invalid --model), 130 when interrupted
// by a signal.
int run_plugin_test(const PluginTestOptions& options, bool global_json);

}  // namespace modelzoo::cli
