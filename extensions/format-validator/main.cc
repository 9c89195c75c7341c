// modelzoo-ext-format-validator: structural checks of safetensors, GGUF and ONNX files
// (rules in docs/extensions.md) after download, before the model enters the cache. It reads
// headers only, so it is cheap enough to run on every pull. A broken file is rejected with
// the exact rule it breaks.
#include <map>

#include "modelzoo/extension.h"
#include "modelzoo/formats/formats.h"

namespace {

using namespace modelzoo;
namespace fs = std::filesystem;

class FormatValidator final : public sdk::Extension {
 public:
  sdk::HookResult hook(const sdk::HookRequest& req) override {
    // ONNX external data names files relative to the model's root: the model's own files.
    std::map<std::string, fs::path> by_name;
    for (const auto& f : req.files) by_name[f.name] = f.path;
    formats::ModelFileLookup lookup = [&](const std::string& rel) -> std::optional<fs::path> {
      auto it = by_name.find(rel);
      if (it == by_name.end()) return std::nullopt;
      return it->second;
    };
    std::string problems;
    int checked = 0;
    for (const auto& f : req.files) {
      std::string format = formats::format_of(f.name);
      if (format.empty()) continue;
      ++checked;
      std::optional<formats::Violation> v;
      try {
        v = formats::check_file(f.path, format, lookup);
      } catch (const std::runtime_error& e) {
        throw sdk::Error(sdk::ErrorCode::internal, "cannot read '" + f.name + "': " + e.what());
      }
      if (v) problems += (problems.empty() ? "" : "; ") + f.name + ": " + formats::describe(*v);
    }
    if (!problems.empty()) return sdk::HookResult::reject(problems);
    return sdk::HookResult::proceed(std::to_string(checked) + " file(s) checked");
  }
};

}  // namespace

int main(int argc, char** argv) {
  FormatValidator ext;
  return sdk::run(ext,
                  {.name = "format-validator",
                   .version = MODELZOO_VERSION,
                   .points = {sdk::kPostDownload},
                   .formats = {"safetensors", "gguf", "onnx"},
                   .order = 100,
                   .handles = {"*"}},
                  argc, argv);
}
