// modelzood: the modelzoo supervisor daemon.
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "modelzoo/config/config.h"
#include "daemon.h"

namespace fs = std::filesystem;

int main(int argc, char** argv) {
  CLI::App app{"modelzood: resolves, downloads and verifies models through registry plugins"};
  std::string config_path;
  bool print_default = false, check = false;
  app.add_option("-c,--config", config_path, "YAML configuration file (default: the embedded configuration)")
      ->envname("MODELZOO_CONFIG");
  app.add_flag("--print-default-config", print_default, "print the embedded default configuration and exit");
  app.add_flag("--check-config", check, "load the configuration, report problems and exit");
  app.set_version_flag("--version", std::string("modelzood ") + MODELZOO_VERSION);
  CLI11_PARSE(app, argc, argv);

  if (print_default) {
    std::cout << modelzoo::supervisor::default_config_yaml();
    return 0;
  }
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  char exe[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  fs::path exe_dir = n > 0 ? fs::path(std::string(exe, static_cast<std::size_t>(n))).parent_path() : fs::current_path();
  try {
    auto cfg = modelzoo::supervisor::load_config(config_path, exe_dir);
    spdlog::set_level(spdlog::level::from_str(cfg.log_level));
    if (check) {
      for (const auto& w : cfg.warnings) std::cerr << "warning: " << w << "\n";
      std::cout << "configuration OK: " << cfg.sources.size() << " source(s)\n";
      return 0;
    }
    modelzoo::supervisor::Daemon d(std::move(cfg));
    return d.run();
  } catch (const modelzoo::supervisor::ConfigError& e) {
    std::cerr << "modelzood: configuration error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "modelzood: " << e.what() << "\n";
    return 1;
  }
}
