// modelzood: the modelzoo supervisor daemon.
#include <malloc.h>
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
  // Streamed pulls receive every chunk (up to bus::kMaxDataBytes, 8 MiB) into a buffer that
  // libzmq's I/O thread mallocs and a disk thread frees. glibc's defaults give those buffers
  // back to the kernel (mmap/munmap, or trimming the heap) and fault them in again: ~33,000
  // page faults and 0.3 s of CPU per GiB on the VM measured (docs/performance.md). Keeping
  // them in the heap costs at most the chunks in flight (tens of MiB), which stay mapped.
  mallopt(M_MMAP_THRESHOLD, 16 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
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
