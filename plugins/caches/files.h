// What the two read-only cache plugins (hf-cache, ollama-store) share: opening a file of the
// user's cache so that nothing outside its root is ever served, hashing it once (cached by
// inode and mtime, in memory only: the user's cache is never written to), and streaming it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>
#include <string>

#include "modelzoo/plugin.h"

namespace modelzoo::plugins::caches {

using LogFn = std::function<void(const char*, const std::string&)>;

// Whether canonical `p` is canonical `root` or below it.
bool inside(const std::filesystem::path& p, const std::filesystem::path& root);

// Canonical path of `p`, nullopt when it (or a symlink on the way) does not resolve.
std::optional<std::filesystem::path> real_path(const std::filesystem::path& p);

// Opens a regular file read-only and checks that what was opened lies inside `root`.
// Throws not_found (missing, not a regular file) or bad_request (outside the root); `what`
// names the file in messages ("<plugin>: '<what>' ...").
int open_inside(const std::filesystem::path& path, const std::filesystem::path& root, const std::string& plugin,
                const std::string& what);

// Size of an open file.
std::uint64_t fd_size(int fd, const std::string& plugin, const std::string& what);

// Streams `path` (opened with open_inside) from `offset` to its end into `sink`.
void stream_file(const std::filesystem::path& path, const std::filesystem::path& root, std::uint64_t offset,
                 sdk::ChunkSink& sink, const std::string& plugin, const std::string& what);

// sha256 of files, each computed once per (path, dev, inode, size, mtime); in memory.
class HashCache {
 public:
  // Hashes the file at `path` (inside `root`); files larger than `max_bytes` are refused
  // with Error(unavailable) naming the file and the limit.
  std::string sha256(const std::filesystem::path& path, const std::filesystem::path& root, std::uint64_t max_bytes,
                     const std::string& plugin, const std::string& what);
  std::uint64_t computations() const;  // files actually read (cache misses); for tests

 private:
  struct Entry {
    std::uint64_t dev, ino, size;
    std::int64_t sec, nsec;
    std::string sha256;
  };
  static constexpr std::size_t kMaxEntries = 65536;  // bound on memory: cleared when full
  mutable std::mutex mu_;
  std::map<std::string, Entry> cache_;
  std::uint64_t computations_ = 0;
};

bool is_hex(const std::string& s, std::size_t n);

// Runs `resolve`; false when it throws Error(not_found), the error again for any other code.
bool found(const std::function<void()>& resolve);

// Shell-style pattern match (fnmatch without FNM_PATHNAME: '*' also matches '/', as the
// hub client's allow_patterns do).
bool glob_match(const std::string& pattern, const std::string& name);

// Reads a list of strings (or one string) from config[key]; throws bad_request.
std::vector<std::string> string_list(const nlohmann::json& config, const char* key, const std::string& plugin);

}  // namespace modelzoo::plugins::caches
