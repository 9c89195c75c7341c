// The content-addressed model cache (docs/architecture.md, "Cache").
//
//   <root>/blobs/sha256/<64 hex>          file contents, named by their hash, read-only
//   <root>/tmp/<hex>.<random>.partial     transfers in progress (same filesystem as blobs)
//   <root>/models/<name>/<version>/<file> the view users open: relative symlinks to blobs
//
// A blob appears only by rename() after its size and sha256 were checked and its data
// fsync'ed, so a reader never sees a partial or corrupt file under blobs/ or models/.
// Thread-compatible: one ContentStore per thread, or external locking.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "modelzoo/bus/model.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::core {

// Kept under core:: for the cache's users; the implementation is the bus's.
using bus::Sha256;

class ContentStore {
 public:
  // Creates the directory layout under `root` if missing. Throws std::runtime_error naming
  // the directory that could not be created.
  explicit ContentStore(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path blob_path(const std::string& sha256) const;
  bool has_blob(const std::string& sha256) const;
  // Where the files of a model version are presented.
  std::filesystem::path view_dir(const std::string& name, const std::string& version) const;
  // True when every file of `m` is present as a blob and linked in the view.
  bool complete(const bus::ModelMetadata& m) const;

  // Receives one file. Data is hashed as it is written; commit() verifies and publishes it.
  // Destroying an uncommitted writer removes its temporary file.
  class Writer {
   public:
    ~Writer();
    // Appends bytes. Throws bus::Error(internal) naming the file on a write error (e.g. ENOSPC).
    void write(const void* data, std::size_t size);
    std::uint64_t size() const { return written_; }
    // fsyncs, checks size and sha256 against the expected file and renames the blob into
    // place. Throws bus::Error(internal) naming the file and both values on a mismatch
    // (the temporary is removed). Returns the blob path.
    std::filesystem::path commit();

   private:
    friend class ContentStore;
    void discard();  // closes and removes the temporary (idempotent)
    Writer(const ContentStore& store, bus::FileInfo expected, std::filesystem::path tmp, int fd);
    const ContentStore& store_;
    bus::FileInfo expected_;
    std::filesystem::path tmp_;
    int fd_;
    std::uint64_t written_ = 0;
    Sha256 hash_;
    bool done_ = false;
  };
  std::unique_ptr<Writer> begin(const bus::FileInfo& file) const;

  // Links every file of `m` (whose blobs must exist) into its view; returns the view dir.
  std::filesystem::path link_view(const bus::ModelMetadata& m) const;

  // Removes temporaries left by dead transfers. Returns how many were removed.
  std::size_t clean_temporaries() const;

 private:
  std::filesystem::path root_;
};

}  // namespace modelzoo::core
