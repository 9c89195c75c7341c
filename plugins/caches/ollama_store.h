// The logic of the `ollama-store` plugin: serves, read-only, the models Ollama already holds
// (docs/sources.md, "Ollama's store"). The layout, as ollama writes it:
//   <root>/manifests/<registry host>/<namespace>/<model>/<tag>   an OCI-style JSON manifest
//   <root>/blobs/sha256-<64 hex>                                   the layers and the config
//
//   name     <prefix><model> or <prefix><namespace>/<model> (host registry.ollama.ai) or
//            <prefix><host>/<namespace>/<model>; the default namespace is "library"
//   version  0.0.0+<tag>, '_' written "--" (q4_K_M -> 0.0.0+q4--K--M; bus::version_of_tag);
//            tags that cannot map (an empty dot part, too long) are skipped with a log line;
//            no version = the tag "latest"
//   files    one per layer, named by media type application/vnd.ollama.image.<kind>:
//            model -> model.gguf, adapter -> adapter.gguf, projector -> projector.gguf,
//            params -> params.json, messages -> messages.json, template, system, license,
//            any other kind -> <kind>; a second layer of a kind gets "-2", "-3"...; the
//            manifest's config -> config.json
//   sha256   each layer's digest (the blob's name), checked by the daemon on every byte, so
//            a blob Ollama and the modelzoo cache both hold dedups with no hashing here
//   local_path  each blob: copied in-kernel when the daemon's `local_read` includes the root
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "caches/files.h"
#include "modelzoo/plugin.h"

namespace modelzoo::plugins::ollama_store {

struct Options {
  std::filesystem::path root;
  std::string root_source;  // "path:", "OLLAMA_MODELS", "default"
  std::string prefix;
  std::string host = "registry.ollama.ai";
  std::size_t max_models = 10000;
  caches::LogFn log;
};

// Reads {path, prefix}: root is path:, else $OLLAMA_MODELS, else ~/.ollama/models.
Options parse_config(const nlohmann::json& config, const std::function<const char*(const char*)>& env = {});

// The file name of a layer of media type `media_type`, given the names already taken.
std::string layer_file_name(const std::string& media_type, const std::vector<std::string>& taken);

class Store {
 public:
  explicit Store(Options o);
  const Options& options() const { return opt_; }

  sdk::ModelMetadata metadata(const std::string& name, const std::string& version);
  bool exists(const std::string& name, const std::string& version);
  std::vector<sdk::ModelSummary> list();
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink);

 private:
  struct Manifest {
    std::filesystem::path root;  // canonical
    std::string tag;
    std::filesystem::path path;  // canonical manifest file
  };
  void log(const char* level, const std::string& m) const { opt_.log(level, m); }
  std::filesystem::path manifest_dir(const std::string& name) const;  // relative to manifests/
  Manifest resolve(const std::string& name, const std::string& version) const;
  sdk::ModelMetadata read(const Manifest& m, const std::string& name) const;

  Options opt_;
};

}  // namespace modelzoo::plugins::ollama_store
