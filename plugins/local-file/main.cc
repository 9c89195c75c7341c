// modelzoo-plugin-local-file: serves models from a directory tree
// <root>/<model name>/<version>/<files...>.
#include <memory>

#include "modelzoo/plugin.h"
#include "local-file/store.h"

namespace {

using namespace modelzoo;

class LocalFileRegistry final : public sdk::Registry {
 public:
  void configure(const nlohmann::json& config) override {
    store_ = std::make_unique<plugins::local_file::Store>(plugins::local_file::parse_config(config));
    const auto& root = store_->options().root;
    if (store_->root_available())
      sdk::log("info", "local-file: serving " + root.string());
    else
      sdk::log("warn", "local-file: root " + root.string() + " is not an existing directory; serving no models until it is");
  }

  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) override {
    return store().metadata(name, version);
  }
  bool exists(const std::string& name, const std::string& version) override { return store().exists(name, version); }
  std::vector<sdk::ModelSummary> list() override { return store().list(); }
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override { store().download(req, sink); }

 private:
  plugins::local_file::Store& store() {
    if (!store_) throw sdk::Error(sdk::ErrorCode::unavailable, "local-file: not configured");
    return *store_;
  }
  std::unique_ptr<plugins::local_file::Store> store_;  // set once by configure()
};

}  // namespace

int main(int argc, char** argv) {
  LocalFileRegistry registry;
  return sdk::run(registry, {.name = "local-file", .version = "0.1.0", .priority = 10, .handles = {"*"}}, argc, argv);
}
