// The content-addressed model cache (docs/architecture.md, "Cache").
//
//   <root>/blobs/sha256/<64 hex>            file contents, named by their hash, read-only
//   <root>/manifests/<name>/<version>.json  metadata of each cached model version
//   <root>/models/<name>/<version>/<file>   the view users open: relative symlinks to blobs
//   <root>/tmp/<64 hex>.partial             a file being received, kept for resume
//   <root>/tmp/<64 hex>.lock                who is receiving it (an OFD lock on this file)
//   <root>/staging/<id>/                    files extensions work on before they are committed
//   <root>/tmp/staging-<id>.lock            held while that staging directory is in use
//   <root>/pins/<id>.pin                    blobs a pull or load in progress needs (Pin)
//   <root>/tmp/<64 hex>.<id>.removing       a blob being removed, until its remover has
//                                           checked nobody needs it (remove_blobs_if_unused)
//
// A blob appears only by rename() after its size and sha256 were checked and its data
// fsync'ed, so nothing partial or corrupt is ever visible under blobs/ or models/. The lock
// only avoids duplicate work between processes sharing the cache (two daemons, the CLI);
// correctness never depends on it: if locking silently fails (some network filesystems),
// two writers may spoil a partial, and the hash check then refuses to publish it.
// Thread-compatible: one ContentStore per thread, or external locking.
#pragma once

#include <chrono>
#include <filesystem>
#include <vector>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/model.h"
#include "modelzoo/bus/result.h"
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

  // The blobs one pull or load needs while it runs: every remover of blobs (`cache rm`,
  // `cache prune`, eviction, a rejected pull) leaves a pinned blob alone, in any process.
  // A pin is the file pins/<id>.pin, append-only lines "+<hex>" / "-<hex>", under an OFD
  // lock its holder keeps for the pin's life: when the holder dies (a daemon killed) the
  // kernel drops the lock and the pin lapses at once, so nothing stays pinned forever;
  // prune and the next daemon remove the lapsed file. The file appears (by rename) only
  // once locked, so a pin is never seen unheld while its holder lives.
  // hold() writes the pin *before* it looks at the blob, and a remover moves the blob
  // away *before* it reads the pins (remove_blobs_if_unused): whichever goes second sees
  // the other, so either the remover keeps the blob or the holder sees it gone and fetches
  // it again. Thread-safe.
  class Pin {
   public:
    ~Pin();  // unpins everything
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    // Pins `sha256`, then returns whether its blob is present; the error names the pin file
    // when it cannot be written (the blob is then not pinned).
    bus::Result<bool> hold(const std::string& sha256);
    // No longer needs these (blobs it is about to remove itself). A line that cannot be
    // written leaves the blob pinned until the pin goes, which is safe.
    void release(const std::vector<std::string>& sha256s);
    bool holds(const std::string& sha256) const;
    // For a held blob found missing later. hold() saw it present after pinning, so a
    // remover that moved it aside since is between its move and its reading of the pins,
    // and will put it back; this puts it back now instead of waiting. Returns whether the
    // blob is present afterwards (false: something that does not honour pins removed it,
    // such as `cache verify --remove-corrupt`).
    bool recover(const std::string& sha256) const;
    const std::filesystem::path& path() const { return path_; }

   private:
    friend class ContentStore;
    Pin() = default;
    bus::Status append(const std::string& line);
    const ContentStore* store_ = nullptr;
    std::filesystem::path path_;
    int fd_ = -1;
    mutable std::mutex mu_;
    std::set<std::string> held_;
  };
  // A new, empty pin; `holder` ("pull org/model:1.0.0") is its file's first line, for a
  // person looking into pins/. The error names the pin file when it cannot be created.
  bus::Result<std::unique_ptr<Pin>> pin(const std::string& holder) const;

  // Receives one file into tmp/<sha256>.partial, hashing as it goes. Resumes: bytes
  // already in the partial (from an interrupted transfer) are re-hashed and kept, and
  // offset() says where the transfer continues. Destroying an uncommitted writer keeps the
  // partial for the next attempt; discard() removes it.
  class Writer {
   public:
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    // Where the sender must continue: the bytes already present.
    std::uint64_t offset() const { return resumed_; }
    // Appends bytes. On a write error (ENOSPC, EFBIG) the error names the file (unavailable
    // for a full disk or quota, else internal) and the partial is cut back to the last
    // complete write.
    bus::Status write(const void* data, std::size_t size);

    // write() in three parts, so that receiving, hashing and writing can each run on a
    // thread of its own: reserve() returns the offset the next `size` bytes belong at (one
    // thread, in order); absorb() hashes them (one thread, in reserve order); store()
    // writes them at their offset (one thread, in reserve order). A store() failure leaves
    // the writer unusable: destroy it; the partial is cut back to the failed offset so a
    // later writer resumes from consistent bytes. commit() only after every absorb() and
    // store() has returned.
    std::uint64_t reserve(std::size_t size);
    void absorb(const void* data, std::size_t size);
    bus::Status store(std::uint64_t offset, const void* data, std::size_t size) const;
    // Like store(), but the bytes come from `src_fd` at the same offset, copied inside the
    // kernel (copy_file_range; pread/pwrite where that is not possible).
    bus::Status copy_from(int src_fd, std::uint64_t offset, std::size_t size) const;
    std::uint64_t size() const { return size_; }
    // fsyncs, checks size and sha256 against the expected file and renames the blob into
    // place. On a mismatch the error (internal) names the file and both values, and the
    // partial is removed (it cannot be resumed). Returns the blob path.
    bus::Result<std::filesystem::path> commit();
    // Removes the partial now.
    void discard();

   private:
    friend class ContentStore;
    Writer(const ContentStore& store, bus::FileInfo expected);
    void close_files();
    void remove_lock_file();
    const ContentStore& store_;
    bus::FileInfo expected_;
    std::filesystem::path partial_;
    int fd_ = -1;
    int lock_fd_ = -1;
    std::uint64_t resumed_ = 0;
    std::uint64_t size_ = 0;
    Sha256 hash_;
    bool done_ = false;
  };
  // Starts (or resumes) receiving `file`. Returns nullptr when another writer -- in this
  // process or another -- holds it: wait for the blob to appear, then try again. An error
  // (internal) when the partial or its lock cannot be created.
  bus::Result<std::unique_ptr<Writer>> begin(const bus::FileInfo& file) const;

  // The metadata of cached model versions. `derived`, when not null, records that extensions
  // produced the files from others (docs/extensions.md): {"source_files": [...], "extensions": [...]}.
  // The error names the manifest (unavailable for a full disk or quota).
  bus::Status write_manifest(const bus::ModelMetadata& m, const std::string& source,
                      const nlohmann::json& derived = nullptr) const;
  std::optional<bus::ModelMetadata> read_manifest(const std::string& name, const std::string& version) const;
  // The whole manifest ({"metadata", "source", "derived"}), or nullopt when absent or unreadable.
  std::optional<nlohmann::json> read_manifest_record(const std::string& name, const std::string& version) const;

  // A private directory under staging/ for one pull's extensions, removed (with everything
  // in it) when the object goes. While it exists its lock in tmp/ is held; the blobs its
  // extensions work on (not referenced by a manifest yet) are kept by the pull's pin.
  class Staging {
   public:
    ~Staging();
    Staging(const Staging&) = delete;
    Staging& operator=(const Staging&) = delete;
    const std::filesystem::path& dir() const { return dir_; }

   private:
    friend class ContentStore;
    Staging() = default;
    std::filesystem::path dir_, lock_;
    int lock_fd_ = -1;
  };
  // The error (internal) names the directory when it cannot be created.
  bus::Result<std::unique_ptr<Staging>> begin_staging() const;

  // Commits a finished file that an extension wrote inside a staging directory: checks that
  // it is a regular file with a single link, hashes it, fsyncs it, makes it read-only and
  // renames it into blobs/ (or drops it when that blob exists). Returns it as `name`.
  // `pin`, when given, holds the blob from before it appears. The error (internal) names
  // `name` on any failure. Safe to call from any thread.
  bus::Result<bus::FileInfo> adopt(const std::filesystem::path& file, const std::string& name, Pin* pin = nullptr) const;

  // Removes blob `sha256` unless a manifest lists it (the source files of a model that
  // extensions replaced) or a pin holds it. Returns true when it was removed.
  bool remove_unreferenced_blob(const std::string& sha256) const;
  // Versions of `name` whose manifest exists, newest first.
  std::vector<std::string> cached_versions(const std::string& name) const;
  // Records a use (pull, load) of a cached version: its manifest's mtime is its last use.
  void touch(const std::string& name, const std::string& version) const;

  // Links every file of `m` (whose blobs must exist) into its view; returns the view dir.
  // The error (internal) names the file that could not be linked.
  bus::Result<std::filesystem::path> link_view(const bus::ModelMetadata& m) const;

  // Removes partials nobody is receiving that were last written more than `older_than`
  // ago (and their lock files), staging directories nobody holds (left by a daemon that
  // died), lapsed pins, and blobs a killed remover left half-removed (restored when still
  // needed). Returns how many partials were removed.
  std::size_t clean_partials(std::chrono::seconds older_than) const;

 private:
  std::filesystem::path root_;
};

}  // namespace modelzoo::core
