// What the decrypt and decompress extensions share: every file whose name ends in a suffix
// is turned into a new file without it, written in the hook's output directory; the other
// files pass on unchanged (docs/extensions.md, "replace").
#pragma once

#include <filesystem>
#include <functional>
#include <set>
#include <string>

#include "modelzoo/extension.h"

namespace modelzoo::extensions {

// Thrown by a transform for a problem with the file's content (wrong key, corrupt data):
// the model is rejected with this reason. Any other exception fails the step instead.
class BadContent : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Applies `transform(in, out)` to every file of `req` named "*<suffix>", producing the file
// named without the suffix. Rejects the model when a transform throws BadContent, or when
// the plain name is already taken by another file of the model.
inline sdk::HookResult transform_files(
    const sdk::HookRequest& req, const std::string& suffix,
    const std::function<void(const std::filesystem::path&, const std::filesystem::path&)>& transform) {
  auto has_suffix = [&](const std::string& n) {
    return n.size() > suffix.size() && n.compare(n.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::set<std::string> names;
  for (const auto& f : req.files) names.insert(f.name);
  std::vector<sdk::OutputFile> out;
  int changed = 0;
  for (const auto& f : req.files) {
    if (!has_suffix(f.name)) {
      out.push_back({f.name, f.path});
      continue;
    }
    std::string plain = f.name.substr(0, f.name.size() - suffix.size());
    if (names.count(plain))
      return sdk::HookResult::reject("'" + f.name + "' would become '" + plain + "', which the model already has");
    std::filesystem::path dst = req.output_dir / plain;
    std::filesystem::create_directories(dst.parent_path());
    try {
      transform(f.path, dst);
    } catch (const BadContent& e) {
      return sdk::HookResult::reject(f.name + ": " + e.what());
    }
    out.push_back({plain, dst});
    ++changed;
  }
  if (changed == 0) return sdk::HookResult::proceed("no " + suffix + " file");
  return sdk::HookResult::replace(std::move(out), std::to_string(changed) + " file(s) without " + suffix);
}

}  // namespace modelzoo::extensions
