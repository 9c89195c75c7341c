// modelzoo-plugin-azure-blob: serves models from an Azure Blob Storage container (docs/sources.md).
#include "azure/azure.h"
#include "modelzoo/plugin.h"

int main(int argc, char** argv) {
  modelzoo::plugins::azure::AzureRegistry registry;
  return modelzoo::sdk::run(registry, {.name = "azure-blob", .version = MODELZOO_VERSION, .priority = 0, .handles = {"*"}}, argc,
                            argv);
}
