// modelzoo-plugin-ollama-store: serves, read-only, the models of Ollama's local store.
#include "caches/ollama_store.h"
#include "caches/registry.h"

int main(int argc, char** argv) {
  namespace os = modelzoo::plugins::ollama_store;
  modelzoo::plugins::caches::StoreRegistry<os::Store, os::parse_config> registry("ollama-store");
  return modelzoo::sdk::run(registry, {.name = "ollama-store", .version = "0.1.0", .priority = 20, .handles = {"*"}}, argc, argv);
}
