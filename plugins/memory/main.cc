// modelzoo-plugin-memory: serves models defined in its configuration (tests and demos).
#include <chrono>
#include <cstdlib>
#include <memory>
#include <thread>

#include "memory/models.h"
#include "modelzoo/plugin.h"

namespace {

using namespace modelzoo;

class MemoryRegistry final : public sdk::Registry {
 public:
  void configure(const nlohmann::json& config) override {
    models_ = plugins::memory::Models(plugins::memory::parse_config(config));
    sdk::log("info", "memory: serving " + std::to_string(models_.config().models.size()) + " model version(s)");
  }

  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) override {
    if (auto ms = models_.config().metadata_delay_ms)
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return models_.metadata(name, version);
  }

  std::vector<sdk::ModelSummary> list() override { return models_.list(); }

  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override {
    if (models_.config().crash_on_download) {
      sdk::log("warn", "memory: crash_on_download is set, aborting");
      std::abort();
    }
    models_.download(req, sink);
  }

 private:
  plugins::memory::Models models_;  // set once by configure(), read-only afterwards
};

}  // namespace

int main(int argc, char** argv) {
  MemoryRegistry registry;
  // Every answer comes from memory and never blocks (metadata_delay_ms is a test knob that
  // sleeps, but only in tests that ask for it): answer on the main loop.
  return sdk::run(registry, {.name = "memory", .version = "0.1.0", .priority = 0, .handles = {"*"}, .inline_requests = true},
                  argc, argv);
}
