// modelzoo-plugin-remote: serves models from an HTTP registry (docs/http-registry.md).
#include "modelzoo/plugin.h"
#include "remote/remote.h"

int main(int argc, char** argv) {
  modelzoo::plugins::remote::RemoteRegistry registry;
  // Answers come over the network: requests run on the SDK's workers, never inline.
  return modelzoo::sdk::run(registry, {.name = "remote", .version = MODELZOO_VERSION, .priority = 0, .handles = {"*"}},
                            argc, argv);
}
