#include "plugin_test_cmd.h"

#include <iostream>

namespace modelzoo::cli {

CLI::App* add_plugin_test_command(CLI::App& plugin_group, PluginTestOptions& options) {
  CLI::App* test = plugin_group.add_subcommand("test", "Run the conformance checks against a plugin executable");
  test->add_option("COMMAND", options.command, "The plugin's command line")->required();
  return test;
}

int run_plugin_test(const PluginTestOptions&, bool) {
  std::cerr << "modelzoo: plugin test: not implemented yet\n";
  return 1;
}

}  // namespace modelzoo::cli
