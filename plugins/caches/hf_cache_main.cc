// modelzoo-plugin-hf-cache: serves, read-only, the models of a local Hugging Face cache.
#include "caches/hf_cache.h"
#include "caches/registry.h"

int main(int argc, char** argv) {
  namespace hc = modelzoo::plugins::hf_cache;
  modelzoo::plugins::caches::StoreRegistry<hc::Store, hc::parse_config> registry("hf-cache");
  return modelzoo::sdk::run(registry, {.name = "hf-cache", .version = "0.1.0", .priority = 20, .handles = {"*"}}, argc, argv);
}
