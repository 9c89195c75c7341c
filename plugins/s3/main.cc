// modelzoo-plugin-s3: serves models from an S3 bucket or an S3-compatible store (docs/sources.md).
#include "modelzoo/plugin.h"
#include "s3/s3.h"

int main(int argc, char** argv) {
  modelzoo::plugins::s3::S3Registry registry;
  return modelzoo::sdk::run(registry, {.name = "s3", .version = MODELZOO_VERSION, .priority = 0, .handles = {"*"}}, argc, argv);
}
