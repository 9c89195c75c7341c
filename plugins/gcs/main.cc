// modelzoo-plugin-gcs: serves models from a Google Cloud Storage bucket (docs/sources.md).
#include "gcs/gcs.h"
#include "modelzoo/plugin.h"

int main(int argc, char** argv) {
  modelzoo::plugins::gcs::GcsRegistry registry;
  return modelzoo::sdk::run(registry, {.name = "gcs", .version = MODELZOO_VERSION, .priority = 0, .handles = {"*"}}, argc, argv);
}
