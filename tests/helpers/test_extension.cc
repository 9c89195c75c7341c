// modelzoo-test-extension: an extension whose behaviour the test configures. It declares
// every point in its hello; the test narrows them with the source's `points` setting.
//
// config:
//   mode:    continue | reject | crash | hang | replace | rewrite | error | escape | symlink
//   reason:  the rejection reason (mode reject)
//   record:  a file to which each call appends "<source> <point> <name>:<version> <files>\n"
//   rewrite_to: "name[:version]" (mode rewrite)
//   once:    a file; when it exists the mode is ignored (continue) -- crash once, then work
//
// replace writes "<source>.txt" (containing the source's name) into the output directory
// and keeps every input; escape answers with a path outside the output directory; symlink
// with a symbolic link inside it.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "modelzoo/extension.h"

namespace {

using namespace modelzoo;
namespace fs = std::filesystem;

class TestExtension final : public sdk::Extension {
 public:
  void configure(const nlohmann::json& config) override {
    mode_ = config.value("mode", "continue");
    reason_ = config.value("reason", "test rejection");
    record_ = config.value("record", "");
    rewrite_to_ = config.value("rewrite_to", "");
    once_ = config.value("once", "");
    const char* inst = std::getenv("MODELZOO_INSTANCE");
    source_ = inst ? inst : "test-extension";
  }

  sdk::HookResult hook(const sdk::HookRequest& req) override {
    if (!record_.empty()) {
      std::string line = source_ + " " + req.point + " " + req.name + ":" + req.version + " ";
      for (const auto& f : req.files) line += f.name + ",";
      line += "\n";
      std::lock_guard lk(mu_);
      std::ofstream(record_, std::ios::app) << line;
    }
    std::string mode = mode_;
    if (!once_.empty()) {
      if (fs::exists(once_)) mode = "continue";
      else std::ofstream(once_) << "done\n";
    }
    if (mode == "reject") return sdk::HookResult::reject(reason_);
    if (mode == "crash") {
      sdk::log("warn", "test extension: crashing as configured");
      std::abort();
    }
    if (mode == "hang") {
      while (true) std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    if (mode == "error") throw sdk::Error(sdk::ErrorCode::internal, "test extension failed on purpose");
    if (mode == "rewrite") {
      auto colon = rewrite_to_.find(':');
      return sdk::HookResult::rewrite(rewrite_to_.substr(0, colon),
                                      colon == std::string::npos ? "" : rewrite_to_.substr(colon + 1));
    }
    if (mode == "replace" || mode == "escape" || mode == "symlink") {
      std::vector<sdk::OutputFile> out;
      for (const auto& f : req.files) out.push_back({f.name, f.path});
      fs::path extra = req.output_dir / (source_ + ".txt");
      if (mode == "replace") {
        std::ofstream(extra) << source_ << "\n";
      } else if (mode == "escape") {
        extra = "/etc/hostname";
      } else {
        fs::create_symlink("/etc/hostname", extra);
      }
      out.push_back({source_ + ".txt", extra});
      return sdk::HookResult::replace(std::move(out), "added " + source_ + ".txt");
    }
    return sdk::HookResult::proceed();
  }

 private:
  std::string mode_, reason_, record_, rewrite_to_, once_, source_;
  std::mutex mu_;
};

}  // namespace

int main(int argc, char** argv) {
  TestExtension ext;
  return sdk::run(ext,
                  {.name = "test-extension",
                   .version = "1.0.0",
                   .points = {sdk::kPreDownload, sdk::kPostDownload, sdk::kPreLoad, sdk::kPostLoad},
                   .formats = {},
                   .order = 0,
                   .handles = {"*"}},
                  argc, argv);
}
