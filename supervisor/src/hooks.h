// Extension hooks (docs/extensions.md): runs the extensions that serve one point of a
// model's life, one after the other in their order, and checks what each answers.
// Runs on the daemon's event loop; finds the extensions through an ExtensionDirectory and
// calls them through a core::PluginCaller.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/core/events.h"
#include "modelzoo/core/resolver.h"

namespace modelzoo::supervisor {

// An extension source as the hook runner sees it.
struct ExtensionView {
  std::string name;                  // source name
  bool ready = false;
  std::string state;                 // for the error when it is not ready
  int order = 0;
  std::vector<std::string> points;   // empty: every point (not known yet: fail closed)
  std::vector<std::string> formats;  // empty: any
  std::vector<std::string> handles;  // model-name globs
  std::chrono::milliseconds timeout{300000};
};

// A file of the model on its way through the hooks.
struct StagedFile {
  std::string name;
  std::filesystem::path path;  // empty at pre-download
  std::uint64_t size = 0;
  std::string sha256;          // empty: written by an extension, hashed when committed
};

struct HookStep {
  std::string point;
  bus::ModelRef ref;           // the model (at pre-download: as requested)
  nlohmann::json metadata;     // null at pre-download
  std::vector<StagedFile> files;
  std::filesystem::path staging;  // post-download: where each hook gets its output directory
};

struct HookOutcome {
  std::optional<bus::Error> error;  // the step failed (code `rejected` for a verdict)
  std::vector<StagedFile> files;    // the files after every replace
  bus::ModelRef ref;                // the model after every rewrite
  nlohmann::json applied = nlohmann::json::array();  // [{extension, point, action}] of the hooks that ran
  bool changed_files = false;       // some hook answered replace
};

// The extension sources, as the sources part of the daemon knows them.
class ExtensionDirectory {
 public:
  virtual ~ExtensionDirectory() = default;
  // Every extension source, ready or not.
  virtual std::vector<ExtensionView> extensions() = 0;
  // Kills a plugin that did not finish a hook in time; its restart policy brings it back.
  virtual void restart_plugin(const std::string& name, const std::string& why) = 0;
};

// The extensions that serve `point` for `model` (by points and handles, not yet by
// formats, which match bus::file_format of a file's name), in the order they run:
// ascending order, ties by name.
std::vector<ExtensionView> hooks_for(const std::vector<ExtensionView>& all, const std::string& point,
                                     const std::string& model);

// Runs the hooks of `step.point` in order, each a `hook` call through `calls`. `done` runs
// exactly once, possibly before run_hooks returns (when no hook applies).
void run_hooks(ExtensionDirectory& extensions, core::PluginCaller& calls, core::EventSink& events, HookStep step,
               std::function<void(HookOutcome)> done);

}  // namespace modelzoo::supervisor
