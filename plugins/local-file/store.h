// The logic of the `local-file` plugin: serves a directory tree laid out as
// <root>/<model name>/<version>/<files...>, where the model name may contain '/'.
//
// Every name arriving from the network is checked with the bus name rules, and every
// directory and file served must resolve (symlinks followed) to a path inside the canonical
// root: anything that escapes is refused when asked for directly and skipped when listing.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/plugin.h"

namespace modelzoo::plugins::local_file {

struct Options {
  std::filesystem::path root;                  // made absolute; need not exist
  std::string metadata_file = "modelzoo.yaml";  // per version, relative to the version dir
  // Log sink (level, message); sdk::log when empty.
  std::function<void(const char*, const std::string&)> log;
};

// Reads {root: string (required), metadata_file: string}. Throws Error(bad_request).
Options parse_config(const nlohmann::json& config);

struct Hashed {
  std::uint64_t size = 0;
  std::string sha256;
};

// Thread-safe: every method may be called from several threads at once.
class Store {
 public:
  explicit Store(Options options);

  const Options& options() const { return opt_; }
  // Whether the root currently exists and is a directory (it is re-resolved on every call,
  // so a root created later is picked up).
  bool root_available() const;

  // `version` empty = the highest version. Throws not_found, or bad_request for invalid
  // names and paths that escape the root.
  sdk::ModelMetadata metadata(const std::string& name, const std::string& version);
  bool exists(const std::string& name, const std::string& version);
  std::vector<sdk::ModelSummary> list();
  // Streams req.file from req.offset to its end in sink.chunk_size() pieces.
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink);

  // Size and sha256 of a regular file, cached by (path, dev, inode, size, mtime).
  Hashed hash_file(const std::filesystem::path& path);
  // How many times a file was actually read to be hashed (cache misses); for tests.
  std::uint64_t hash_computations() const;

 private:
  struct CacheEntry {
    std::uint64_t dev, ino, size;
    std::int64_t mtime_sec, mtime_nsec;
    std::string sha256;
  };
  struct Resolved {
    std::filesystem::path root;     // canonical root
    std::filesystem::path model;    // canonical model dir
    std::filesystem::path version;  // canonical version dir
    std::string version_name;
  };

  void log(const char* level, const std::string& msg) const;
  std::optional<std::filesystem::path> canonical_root() const;
  // Canonical path of root/rel, nullopt when it does not exist; throws bad_request when it
  // escapes the root.
  std::optional<std::filesystem::path> resolve(const std::filesystem::path& root, const std::string& rel) const;
  // Versions (valid semver subdirectories inside the root), newest first.
  std::vector<std::string> versions_of(const std::filesystem::path& root, const std::filesystem::path& model_dir,
                                       const std::string& name) const;
  Resolved resolve_model(const std::string& name, const std::string& version) const;
  // Fills description/author/license/format/tags from <display>/<metadata_file>, if any.
  void read_metadata_file(const std::filesystem::path& root, const std::string& display,
                          sdk::ModelMetadata& m) const;
  Hashed hash_fd(int fd, const std::filesystem::path& path);
  void walk_models(const std::filesystem::path& root, const std::filesystem::path& dir, const std::string& prefix,
                   int depth, std::vector<std::filesystem::path>& stack, std::vector<sdk::ModelSummary>& out) const;
  struct FoundFile {
    std::string name;
    std::filesystem::path path;
  };
  void walk_files(const std::filesystem::path& root, const std::filesystem::path& dir, const std::string& prefix,
                  const std::string& display, int depth, std::vector<std::filesystem::path>& stack,
                  std::vector<FoundFile>& out) const;

  Options opt_;
  mutable std::mutex mu_;
  std::map<std::string, CacheEntry> cache_;
  std::uint64_t computations_ = 0;
};

}  // namespace modelzoo::plugins::local_file
