// modelzoo-ext-decrypt: decrypts model files published encrypted at rest ("*.enc", libsodium
// secretstream, made by `modelzoo encrypt`) after download, before they enter the cache.
// A wrong key, a tampered or truncated file is rejected; nothing half-decrypted is kept.
//
// config:
//   keys: [/path/to/key, ...]   key files (mode 0600); the file's header names which key it needs
#include "common/transform.h"
#include "modelzoo/codec/crypt.h"
#include "modelzoo/extension.h"

namespace {

using namespace modelzoo;

class Decrypt final : public sdk::Extension {
 public:
  void configure(const nlohmann::json& config) override {
    auto keys = config.value("keys", nlohmann::json::array());
    if (keys.is_string()) keys = nlohmann::json::array({keys});
    if (!keys.is_array() || keys.empty())
      throw std::runtime_error("decrypt: 'keys' must list at least one key file (made by `modelzoo encrypt --generate-key`)");
    for (const auto& k : keys) {
      if (!k.is_string()) throw std::runtime_error("decrypt: 'keys' must be a list of file paths");
      keys_.push_back(codec::read_key_file(k.get<std::string>()));  // throws naming the file
    }
    std::string ids;
    for (const auto& k : keys_) ids += (ids.empty() ? "" : ", ") + k.id;
    sdk::log("info", "decrypt: " + std::to_string(keys_.size()) + " key(s): " + ids);
  }

  sdk::HookResult hook(const sdk::HookRequest& req) override {
    return extensions::transform_files(req, std::string(codec::kEncryptedSuffix), [&](const auto& in, const auto& out) {
      try {
        codec::decrypt_file(in, out, keys_);
      } catch (const codec::CodecError& e) {
        throw extensions::BadContent(e.what());
      }
    });
  }

 private:
  std::vector<codec::Key> keys_;  // set by configure(), read-only afterwards
};

}  // namespace

int main(int argc, char** argv) {
  Decrypt ext;
  return sdk::run(ext,
                  {.name = "decrypt",
                   .version = MODELZOO_VERSION,
                   .points = {sdk::kPostDownload},
                   .formats = {"enc"},
                   .order = 10,
                   .handles = {"*"}},
                  argc, argv);
}
