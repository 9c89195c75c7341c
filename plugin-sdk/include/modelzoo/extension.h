// Extensions: plugins that hook a model's life (docs/extensions.md). An extension implements
// `Extension::hook` and calls `run`; the SDK does the rest, as for a registry (handshake,
// heartbeats, worker threads, deadlines, errors, exit when the daemon goes away).
//
//   class Checker : public modelzoo::sdk::Extension {
//     HookResult hook(const HookRequest& req) override {
//       for (const auto& f : req.files)
//         if (f.format == "gguf" && !looks_right(f.path)) return HookResult::reject(f.name + ": ...");
//       return HookResult::proceed();
//     }
//   };
//   int main(int argc, char** argv) {
//     Checker c;
//     return modelzoo::sdk::run(c, {.name = "checker", .version = "1.0.0",
//                                   .points = {"post-download"}, .formats = {"gguf"}}, argc, argv);
//   }
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/hello.h"
#include "modelzoo/plugin.h"

namespace modelzoo::sdk {

// The four extension points, in the order a model meets them (bus/hello.h).
inline constexpr const char* kPreDownload = bus::kPreDownload;
inline constexpr const char* kPostDownload = bus::kPostDownload;
inline constexpr const char* kPreLoad = bus::kPreLoad;
inline constexpr const char* kPostLoad = bus::kPostLoad;

// What an extension says about itself in its hello. The daemon's configuration may override
// order, handles, points and formats (docs/configuration.md).
struct ExtensionInfo {
  std::string name;                       // plugin name, [a-z0-9_-]
  std::string version = "0.0.0";         // semantic version of the extension
  std::vector<std::string> points;        // the extension points it serves (at least one)
  std::vector<std::string> formats;       // file formats it applies to ("safetensors", "zst"...); empty: any
  int order = 0;                          // hooks of one point run in ascending order (ties: by name)
  std::vector<std::string> handles{"*"};  // glob patterns of the model names it applies to
};

// One file of the model as the hook sees it.
struct HookFile {
  std::string name;              // its name inside the model
  std::filesystem::path path;    // where to read it (read-only); empty at pre-download
  std::uint64_t size = 0;
  std::string sha256;            // empty for a file an earlier hook produced (hashed at commit)
  std::string format;            // the suffix after the last '.', lowercase ("safetensors", "zst"); "" if none
};

struct HookRequest {
  std::string point;             // one of kPreDownload ... kPostLoad
  std::string name, version;     // the model (pre-download: as requested; version may be empty)
  nlohmann::json metadata;       // the model's metadata (empty at pre-download)
  std::vector<HookFile> files;   // empty at pre-download
  // post-download only: an empty directory, owned by this call, where replacement files go.
  std::filesystem::path output_dir;
  std::chrono::steady_clock::time_point deadline;  // the daemon gives up on the hook then
  nlohmann::json body;           // the request as received, for fields this SDK does not know yet
};

// A replacement file: `path` is either a file given in the request or a regular file the
// hook wrote inside output_dir.
struct OutputFile {
  std::string name;
  std::filesystem::path path;
};

struct HookResult {
  std::string action = "continue";  // continue | reject | replace | rewrite
  std::string reason;               // reject: why, shown to the user
  std::vector<OutputFile> files;    // replace: the model's complete new file list
  std::string name, version;        // rewrite (pre-download only): the model to pull instead
  std::string message;              // optional note for the daemon's log and the hook event

  static HookResult proceed(std::string message = {}) {
    HookResult r;
    r.message = std::move(message);
    return r;
  }
  static HookResult reject(std::string reason) {
    HookResult r;
    r.action = "reject";
    r.reason = std::move(reason);
    return r;
  }
  // Allowed at post-download only.
  static HookResult replace(std::vector<OutputFile> files, std::string message = {}) {
    HookResult r;
    r.action = "replace";
    r.files = std::move(files);
    r.message = std::move(message);
    return r;
  }
  // Allowed at pre-download only; `version` may be empty (the latest).
  static HookResult rewrite(std::string name, std::string version, std::string message = {}) {
    HookResult r;
    r.action = "rewrite";
    r.name = std::move(name);
    r.version = std::move(version);
    r.message = std::move(message);
    return r;
  }
  nlohmann::json to_json() const;
};

// An extension. hook() is called from several worker threads at once and must be
// thread-safe. A verdict on the model is a HookResult (reject with a reason); a failure of
// the extension itself is an exception: throw Error with a code, any other exception
// becomes `internal`. Either way the step fails and nothing is committed.
class Extension {
 public:
  virtual ~Extension() = default;
  // As Registry::configure: once, after the welcome, before any hook. Throwing ends the plugin.
  virtual void configure(const nlohmann::json& config) { (void)config; }
  virtual HookResult hook(const HookRequest& request) = 0;
};

// Parses a hook request body (exposed for tests and for authors who drive hooks by hand).
// Throws Error(bad_request) naming the missing or mistyped field.
HookRequest parse_hook_request(const nlohmann::json& body, std::chrono::steady_clock::time_point deadline);

// The format of a file name: the suffix after its last '.', lowercase; "" when none
// (bus::file_format, as the daemon matches `formats`).
std::string file_format(const std::string& file_name);

// As run() for a registry (see plugin.h).
int run(Extension& extension, const ExtensionInfo& info, int argc, char** argv);

}  // namespace modelzoo::sdk
