#include "plugin_scaffold_cmd.h"

#include <iostream>

namespace modelzoo::cli {

CLI::App* add_plugin_new_command(CLI::App& plugin_group, PluginNewOptions& options) {
  CLI::App* cmd = plugin_group.add_subcommand("new", "Create a new plugin project that builds and passes `plugin test`");
  cmd->add_option("NAME", options.name, "Plugin name")->required();
  cmd->add_option("--lang", options.lang, "cpp or python")->required();
  cmd->add_option("--kind", options.kind, "registry or extension");
  return cmd;
}

CLI::App* add_plugin_validate_command(CLI::App& plugin_group, PluginValidateOptions& options) {
  CLI::App* cmd = plugin_group.add_subcommand("validate", "Check a plugin directory's manifest (plugin.yaml)");
  cmd->add_option("DIR", options.dir, "The plugin directory")->required();
  return cmd;
}

int run_plugin_new(const PluginNewOptions&, bool) {
  std::cerr << "modelzoo: plugin new: not implemented yet\n";
  return 1;
}

int run_plugin_validate(const PluginValidateOptions&, bool) {
  std::cerr << "modelzoo: plugin validate: not implemented yet\n";
  return 1;
}

}  // namespace modelzoo::cli
