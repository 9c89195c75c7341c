// The logic of the `hf-cache` plugin: serves, read-only, the models a Hugging Face cache
// already holds (docs/sources.md, "the Hugging Face cache"). The layout, as huggingface_hub
// writes it:
//   <root>/models--<org>--<name>/blobs/<etag>                 the bytes (LFS: etag = sha256)
//   <root>/models--<org>--<name>/snapshots/<commit>/<files>   symlinks into ../../blobs (or
//                                                              real files), nested directories
//   <root>/models--<org>--<name>/refs/<branch>                the commit sha the branch was at
//
//   name     <prefix><org>/<name> (or <prefix><name> for a repo without an org)
//   version  0.0.0+<40-hex commit sha> (the version the huggingface plugin gives the same
//            commit); no version = the commit refs/<revision> names (default "main")
//   sha256   a blob named by 64 hex digits is an LFS blob named by its sha256: that is stated
//            (and checked by the daemon on every byte it copies). Any other file (small git
//            files, whose blob is named by its git sha1) is hashed once, in memory, never
//            written into the user's cache.
//   local_path  each file's blob: the daemon copies it in-kernel when its `local_read`
//            includes the root.
// Blobs still downloading (*.incomplete) and dangling symlinks are skipped with a log line;
// a symlink leading out of the repo is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "caches/files.h"
#include "modelzoo/plugin.h"

namespace modelzoo::plugins::hf_cache {

struct Options {
  std::filesystem::path root;
  std::string root_source;  // "path:", "HF_HUB_CACHE", "HF_HOME", "default"
  std::string prefix;       // e.g. "hf/"; stripped from names
  std::string revision = "main";
  std::vector<std::string> allow_patterns, ignore_patterns;
  std::uint64_t max_hash_bytes = 1ull << 30;
  std::size_t max_models = 10000;  // bound on list()
  caches::LogFn log;
};

// Reads {path, prefix, revision, allow_patterns, ignore_patterns, max_hash_bytes}. The root
// is path:, else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
// `env` reads the environment (getenv by default). Throws Error(bad_request).
Options parse_config(const nlohmann::json& config, const std::function<const char*(const char*)>& env = {});

std::string version_of_commit(const std::string& sha);
std::string commit_of_version(const std::string& version);  // empty when not 0.0.0+<sha>

class Store {
 public:
  explicit Store(Options o);
  const Options& options() const { return opt_; }

  sdk::ModelMetadata metadata(const std::string& name, const std::string& version);
  bool exists(const std::string& name, const std::string& version);
  std::vector<sdk::ModelSummary> list();
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink);
  std::uint64_t hash_computations() const { return hashes_.computations(); }

 private:
  struct File {
    std::string name;
    std::filesystem::path blob;  // canonical
    std::uint64_t size;
    std::string sha256;          // empty: hash it
  };
  struct Repo {
    std::filesystem::path dir;  // canonical repo dir
    std::string commit;
  };
  void log(const char* level, const std::string& m) const { opt_.log(level, m); }
  std::string repo_dir_name(const std::string& name) const;  // throws bad_request / not_found
  Repo resolve(const std::string& name, const std::string& version) const;
  std::vector<std::string> commits(const std::filesystem::path& repo) const;  // refs' commit first
  std::vector<File> files(const Repo& r, const std::string& name) const;
  bool wanted(const std::string& file) const;

  Options opt_;
  caches::HashCache hashes_;
};

}  // namespace modelzoo::plugins::hf_cache
