// The executable side of the cache plugins: a Registry over a Store (hf_cache or
// ollama_store), made by configure() from the plugin's configuration.
#pragma once

#include <memory>
#include <string>

#include "modelzoo/plugin.h"

namespace modelzoo::plugins::caches {

template <class Store, auto parse>
class StoreRegistry final : public sdk::Registry {
 public:
  explicit StoreRegistry(std::string plugin) : plugin_(std::move(plugin)) {}
  void configure(const nlohmann::json& config) override {
    store_ = std::make_unique<Store>(parse(config, {}));
    sdk::log("info", plugin_ + ": serving " + store_->options().root.string() + " (from " + store_->options().root_source +
                         "), read-only");
  }
  sdk::ModelMetadata metadata(const std::string& n, const std::string& v) override { return store().metadata(n, v); }
  bool exists(const std::string& n, const std::string& v) override { return store().exists(n, v); }
  std::vector<sdk::ModelSummary> list() override { return store().list(); }
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override { store().download(req, sink); }

 private:
  Store& store() {
    if (!store_) throw sdk::Error(sdk::ErrorCode::unavailable, plugin_ + ": not configured");
    return *store_;
  }
  std::string plugin_;
  std::unique_ptr<Store> store_;  // set once by configure()
};

}  // namespace modelzoo::plugins::caches
