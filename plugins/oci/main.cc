// modelzoo-plugin-oci: serves models stored as OCI artifacts in an OCI distribution registry
// (docs/sources.md, "OCI registries").
#include "modelzoo/plugin.h"
#include "oci/oci.h"

int main(int argc, char** argv) {
  modelzoo::plugins::oci::OciRegistry registry;
  return modelzoo::sdk::run(registry, {.name = "oci", .version = MODELZOO_VERSION, .priority = 0, .handles = {"*"}},
                            argc, argv);
}
