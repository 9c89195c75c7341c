// modelzoo-plugin-huggingface: serves models from the Hugging Face Hub (docs/sources.md).
#include "huggingface/hub.h"
#include "modelzoo/plugin.h"

int main(int argc, char** argv) {
  modelzoo::plugins::huggingface::HubRegistry registry;
  return modelzoo::sdk::run(registry,
                            {.name = "huggingface", .version = MODELZOO_VERSION, .priority = 0, .handles = {"*"}}, argc,
                            argv);
}
