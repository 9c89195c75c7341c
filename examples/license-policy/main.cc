// An example extension (docs/extensions.md): lets into the cache only models whose declared
// license is on an allow list.
//
//   - name: licenses
//     command: [/path/to/modelzoo-example-license-policy]
//     kind: extension
//     config: {allow: [MIT, Apache-2.0, CC0-1.0]}
#include <set>

#include "modelzoo/extension.h"

namespace sdk = modelzoo::sdk;

class LicensePolicy : public sdk::Extension {
 public:
  void configure(const nlohmann::json& config) override {
    for (const auto& l : config.value("allow", nlohmann::json::array())) allowed_.insert(l.get<std::string>());
    if (allowed_.empty()) throw std::runtime_error("license-policy: 'allow' lists no license");
  }

  sdk::HookResult hook(const sdk::HookRequest& req) override {
    std::string license = req.metadata.value("license", nlohmann::json()).is_string()
                              ? req.metadata["license"].get<std::string>()
                              : "";
    if (license.empty()) return sdk::HookResult::reject("the model declares no license");
    if (!allowed_.count(license)) return sdk::HookResult::reject("license '" + license + "' is not on the allow list");
    return sdk::HookResult::proceed("license " + license);
  }

 private:
  std::set<std::string> allowed_;  // written by configure() only, before any hook
};

int main(int argc, char** argv) {
  LicensePolicy policy;
  return sdk::run(policy,
                  {.name = "license-policy",
                   .version = "1.0.0",
                   .points = {sdk::kPostDownload},  // before the model enters the cache
                   .formats = {},                   // whatever its files
                   .order = 50,
                   .handles = {"*"}},
                  argc, argv);
}
