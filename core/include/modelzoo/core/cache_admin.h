// Administration of a model cache (the layout of cache.h): list what it holds, re-verify
// every blob, remove model versions, prune what nothing needs. Free functions over a cache
// root that need no daemon: the `modelzoo cache ...` commands run them in their own process,
// so a long verify never blocks the daemon, and they work while no daemon runs.
//
// Sharing the cache with a running daemon (or several) is safe within these rules:
//   * A blob is referenced when a readable manifest lists it. Unreferenced blobs ("orphans")
//     are what prune deletes, but NEVER one modified less than kBlobGracePeriod (10 minutes)
//     ago: a daemon commits each blob of a pull as it arrives and writes the manifest only
//     once every file is in, so a young orphan is most likely part of a pull in progress.
//     For the same reason prune deletes no orphan at all while any file is being received
//     (some tmp/<hex>.lock is held): a pull of several large files may take longer than the
//     grace period, and its first blobs would otherwise look abandoned.
//   * Partials are deleted only under their OFD lock (the one a receiving ContentStore::Writer
//     holds), so a partial being received is never touched; list only tests the lock
//     (F_OFD_GETLK) and never takes it, so it cannot make a receiver back off.
//   * Empty directories under models/ and manifests/ are removed by prune only when their
//     own mtime is older than the grace period (or they became empty in that same prune):
//     a daemon creates a directory just before it writes into it.
//   * remove and verify --remove-corrupt delete what they are told to at once. A removed
//     model or blob is fetched again by the next pull; a pull racing with them may reply with
//     a view whose links dangle, which the pull after it repairs (complete() is false).
// Names and versions given by users (remove) are checked with bus::check_model_name and
// bus::check_version before they become paths. Names found on disk that do not pass these
// checks are reported as problems, never followed.
//
// Errors: bus::Error(bad_request) for an invalid name or version, bus::Error(not_found) for a
// model that is not cached, bus::Error(internal) naming the path when the filesystem refuses
// (a blob that cannot be read or deleted). Functions are thread-compatible.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/model.h"

namespace modelzoo::core {

// No blob younger than this (by mtime) is deleted by prune_cache; see above.
inline constexpr std::chrono::seconds kBlobGracePeriod{10 * 60};
// How long the daemon keeps partials of interrupted pulls by default (partial_retention_hours).
inline constexpr std::chrono::seconds kDefaultPartialRetention{7 * 24 * 3600};

// The cache modelzood uses unless configured otherwise: $MODELZOO_CACHE_DIR, else
// $XDG_CACHE_HOME/modelzoo, else $HOME/.cache/modelzoo (HOME from the password database when
// unset).
std::filesystem::path default_cache_dir();

using FileTime = std::filesystem::file_time_type;

// ---- list ---------------------------------------------------------------------------------

struct CachedVersion {
  std::string name;
  std::string version;
  std::string source;         // the source it was pulled from, as the manifest says
  std::uint64_t size = 0;     // sum of its files' sizes (shared blobs counted for each owner)
  FileTime last_used{};       // the manifest's mtime (ContentStore::touch)
  std::vector<bus::FileInfo> files;
  bool complete = false;      // ContentStore::complete: every blob present and linked
};

struct OrphanBlob {
  std::string sha256;
  std::uint64_t size = 0;
  FileTime modified{};
};

struct PartialFile {
  std::string sha256;         // of the file being received
  std::uint64_t size = 0;     // bytes received so far
  FileTime modified{};        // last write
  bool receiving = false;     // someone holds its lock right now
};

// Something in the cache that does not fit the layout: an unreadable manifest, a name that
// is not a valid model name. Reported, never deleted or followed.
struct CacheProblem {
  std::filesystem::path path;
  std::string reason;
};

struct CacheListing {
  std::filesystem::path root;
  std::vector<CachedVersion> models;  // by name, then newest version first
  std::vector<OrphanBlob> orphans;    // by sha256
  std::vector<PartialFile> partials;  // by sha256
  std::vector<CacheProblem> problems;
  std::uint64_t blob_bytes = 0;       // all blobs: the space the cache's files take
  bool exists = true;                 // false: no cache at `root` (everything empty)
};

// Reads the cache at `root`. Changes nothing, except that a cache holding manifests gets
// any missing layout directory created (ContentStore, for complete()). A directory that is
// not a cache (missing, or without blobs/sha256 and manifests/) gives an empty listing with
// exists == false; verify_cache and prune_cache then do nothing and remove_cached reports
// not_found.
CacheListing list_cache(const std::filesystem::path& root);

// ---- verify -------------------------------------------------------------------------------

struct BlobOwner {
  std::string name;
  std::string version;
  std::string file;  // the file name inside that model version
};

struct CorruptBlob {
  std::string expected;         // its file name: the hash it must have
  std::string actual;           // the hash of its content ("" when it could not be read)
  std::string error;            // why it could not be read, else ""
  std::uint64_t size = 0;
  std::vector<BlobOwner> owners;  // model versions whose manifest lists it (may be empty)
  bool removed = false;         // deleted (VerifyOptions::remove_corrupt)
};

struct MissingBlob {            // listed by a manifest but not in blobs/ (fetched by the next pull)
  std::string sha256;
  std::vector<BlobOwner> owners;
};

struct VerifyOptions {
  bool remove_corrupt = false;  // delete corrupt blobs so that the next pull fetches them again
  // Called with (bytes hashed so far, bytes to hash in all) after every read, and once at
  // the start. May throw to abort.
  std::function<void(std::uint64_t, std::uint64_t)> on_progress;
};

struct VerifyReport {
  std::filesystem::path root;
  std::size_t blobs = 0;         // blobs hashed
  std::uint64_t bytes = 0;       // bytes hashed
  std::vector<CorruptBlob> corrupt;  // every corrupt blob, by sha256
  std::vector<MissingBlob> missing;  // by sha256
  std::vector<CacheProblem> problems;
  bool ok() const { return corrupt.empty(); }
};

// Re-hashes every blob (SHA-256, 1 MiB reads) and reports every one whose content does not
// match its name, with the model versions that own it. Blobs appearing or vanishing during
// the run (a daemon pulling) are tolerated. With remove_corrupt a corrupt blob is deleted
// only if the file at its path is still the one that was hashed.
VerifyReport verify_cache(const std::filesystem::path& root, const VerifyOptions& options = {});

// ---- remove -------------------------------------------------------------------------------

struct RemoveReport {
  std::string name;
  std::vector<std::string> versions;  // the versions removed
  std::size_t blobs_removed = 0;
  std::size_t blobs_kept = 0;         // still referenced by another manifest
  std::uint64_t bytes_freed = 0;      // size of the blobs removed
};

// Removes model `name` at `version` (empty: every cached version): its manifest(s) and view
// dir(s), then every blob of it that no remaining manifest references. Throws
// bus::Error(bad_request) for an invalid name or version and bus::Error(not_found) naming
// the model when no such version is cached.
RemoveReport remove_cached(const std::filesystem::path& root, const std::string& name,
                           const std::string& version = {});

// ---- prune --------------------------------------------------------------------------------

struct PruneOptions {
  // Partials nobody receives that were last written at least this long ago are deleted.
  // Zero: any age (`--all`).
  std::chrono::seconds partial_age = kDefaultPartialRetention;
};

struct PruneReport {
  std::size_t blobs_removed = 0;
  std::uint64_t blob_bytes_freed = 0;
  std::size_t blobs_kept_recent = 0;   // orphans younger than kBlobGracePeriod
  std::size_t blobs_kept_receiving = 0;  // orphans kept because a transfer is in progress
  std::size_t partials_removed = 0;
  std::uint64_t partial_bytes_freed = 0;
  std::size_t partials_kept = 0;       // being received, or younger than partial_age
  std::size_t locks_removed = 0;       // lock files without a partial, held by nobody
  std::size_t dirs_removed = 0;        // empty directories under models/ and manifests/
  std::uint64_t bytes_freed() const { return blob_bytes_freed + partial_bytes_freed; }
};

// Deletes unreferenced blobs (see the safety rules above), partials nobody holds older than
// `options.partial_age`, stray lock files and empty directories under models/ and
// manifests/. A missing root prunes nothing.
PruneReport prune_cache(const std::filesystem::path& root, const PruneOptions& options = {});

// ---- JSON ---------------------------------------------------------------------------------
// The shapes `modelzoo cache ... --json` prints. Times are RFC 3339 UTC with milliseconds
// ("2026-11-21T22:33:57.123Z", as in events), ages are milliseconds before `now`.

nlohmann::json to_json(const CacheListing& listing, FileTime now = FileTime::clock::now());
nlohmann::json to_json(const VerifyReport& report);
nlohmann::json to_json(const RemoveReport& report);
nlohmann::json to_json(const PruneReport& report);

}  // namespace modelzoo::core
