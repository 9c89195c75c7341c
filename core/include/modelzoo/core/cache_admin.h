// Administration of a model cache (the layout of cache.h): list what it holds, re-verify
// every blob, remove model versions, prune what nothing needs. Free functions over a cache
// root that need no daemon: the `modelzoo cache ...` commands run them in their own process,
// so a long verify never blocks the daemon, and they work while no daemon runs.
//
// Sharing the cache with a running daemon (or several) is safe within these rules:
//   * A blob is needed when a readable manifest lists it (it is "referenced") or a live pin
//     holds it (ContentStore::Pin: a pull or load in progress, in any process). Every
//     removal of blobs here -- remove, prune, eviction -- goes through
//     remove_blobs_if_unused, which moves a blob aside first, then reads the manifests and
//     pins, and puts it back when anything needs it; a pull pins first, then looks. So a
//     blob a pull counts as present is never deleted under it, and a pull that looked just
//     too late sees the blob gone and fetches it again (docs/reliability.md, "Pins").
//   * A daemon writes a model's manifest only when every file is in (and checks them again
//     before it answers): a manifest never lists a blob that was not there, so a missing
//     blob is always damage (verify fails on it). Orphans -- blobs no manifest references --
//     are what prune deletes, never one that is pinned nor one modified less than
//     kBlobGracePeriod (10 minutes) ago (a killed pull's files, worth keeping for a retry).
//   * Partials are deleted only under their OFD lock (the one a receiving ContentStore::Writer
//     holds), so a partial being received is never touched; list only tests the lock
//     (F_OFD_GETLK) and never takes it, so it cannot make a receiver back off.
//   * Empty directories under models/ and manifests/ are removed by prune only when their
//     own mtime is older than the grace period (or they became empty in that same prune):
//     a daemon creates a directory just before it writes into it.
//   * remove deletes the model's manifest and view at once; a pull of the same version in
//     progress writes them again when it finishes (the pull wins, and its blobs stayed
//     pinned). verify --remove-corrupt deletes a corrupt blob even when pinned (its bytes
//     are wrong): the pull holding it finds it gone at its final check and fetches it again.
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
#include <set>
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
  bool in_use = false;        // a pull or load in progress holds one of its files (a pin)
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
  // Delete corrupt blobs, and uncache the model versions that lack a file (corrupt or
  // missing), so that the next pull fetches them again.
  bool remove_corrupt = false;
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
  // With remove_corrupt: the model versions that lost a file (corrupt and removed, or
  // missing) and were uncached -- manifest and view removed, their other blobs kept -- so
  // that the next pull fetches what they lack.
  std::vector<std::string> uncached;  // "name:version"
  // A model with a corrupt or a missing file is a failed verification (also when
  // remove_corrupt cleaned it up: the next verify is the one that passes).
  bool ok() const { return corrupt.empty() && missing.empty(); }
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
  std::size_t blobs_kept_in_use = 0;  // held by a pull or load in progress (a pin)
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
  std::size_t blobs_kept_in_use = 0;   // orphans a pull or load in progress holds (pins)
  std::size_t partials_removed = 0;
  std::uint64_t partial_bytes_freed = 0;
  std::size_t partials_kept = 0;       // being received, or younger than partial_age
  std::size_t locks_removed = 0;       // lock files without a partial, held by nobody
  std::size_t dirs_removed = 0;        // empty directories under models/ and manifests/
  std::size_t pins_removed = 0;        // pin files whose holder died
  std::size_t blobs_restored = 0;      // half-removed by a killed remover and still needed
  std::uint64_t bytes_freed() const { return blob_bytes_freed + partial_bytes_freed; }
};

// Deletes unreferenced blobs (see the safety rules above), partials nobody holds older than
// `options.partial_age`, stray lock files and empty directories under models/ and
// manifests/. A missing root prunes nothing.
PruneReport prune_cache(const std::filesystem::path& root, const PruneOptions& options = {});

// ---- pins and removal --------------------------------------------------------------------

// The blobs live pins hold now (pins whose holder died are ignored).
std::set<std::string> pinned_blobs(const std::filesystem::path& root);

struct BlobRemoval {
  std::vector<std::string> removed;  // sha256 of each blob deleted
  std::size_t kept_referenced = 0;   // a manifest lists it
  std::size_t kept_in_use = 0;       // a pin holds it
  std::uint64_t bytes_freed = 0;
};
// Deletes those of `candidates` that no manifest lists and no pin holds, safely against
// pulls in progress in any process (see the rules above). Blobs not present are skipped.
// Throws bus::Error(internal) naming the blob when the filesystem refuses.
BlobRemoval remove_blobs_if_unused(const std::filesystem::path& root, const std::vector<std::string>& candidates);

// Removes pins whose holder died and finishes removals a killed remover left half-done
// (tmp/<hex>.<id>.removing older than a minute: put back when a manifest or pin needs
// the blob, else deleted), and removes the temporaries of manifests and view links a killed
// writer left (hidden `.<file>.<16 hex>[.link]`, older than a minute). Returns {pins removed,
// blobs put back}.
std::pair<std::size_t, std::size_t> clean_leftovers(const std::filesystem::path& root);

// ---- space --------------------------------------------------------------------------------

struct FsSpace {
  std::uint64_t free = 0;           // bytes an unprivileged writer may still use (f_bavail)
  std::uint64_t total = 0;
  std::filesystem::path mount;      // the filesystem's mount point
};
// Throws bus::Error(internal) naming `dir` when statvfs fails.
FsSpace fs_space(const std::filesystem::path& dir);

// The cache's limits (docs/configuration.md, `cache`). 0 means no limit.
struct SpacePolicy {
  std::uint64_t max_size = 0;  // blobs + partials may take at most this
  std::uint64_t min_free = 0;  // leave at least this free on the filesystem
  // Whether cached models may be evicted (least recently used first, never one in use):
  // only when the user set a limit. Idle partials and unused orphans are always fair game
  // when space is short.
  bool evict_models() const { return max_size > 0 || min_free > 0; }
};

struct SpaceRequest {
  std::uint64_t bytes = 0;               // what the transfer still has to write
  std::set<std::string> own_partials;    // partials of the files it fetches: kept (resume)
  std::set<std::string> keep_models;     // "name:version" never evicted (the one pulled)
};

struct SpaceOutcome {
  std::uint64_t needed = 0;       // the request's bytes
  std::uint64_t free = 0;         // free on the filesystem afterwards
  std::uint64_t cache_size = 0;   // blobs + partials afterwards
  std::uint64_t shortfall = 0;    // 0: the transfer fits within the filesystem and the policy
  std::filesystem::path mount;
  std::uint64_t min_free = 0, max_size = 0;  // the policy it was measured against
  std::size_t partials_removed = 0, blobs_removed = 0;
  std::vector<std::string> evicted;  // "name:version", least recently used first
  std::uint64_t bytes_freed = 0;
  // When short: what the user could still free by hand (models not in use, when eviction
  // is off) and what is held (in use).
  std::uint64_t reclaimable_models = 0;
  std::vector<std::string> reclaimable_names;  // largest first, at most 5
  bool ok() const { return shortfall == 0; }
  // "needs 40.0 MiB, 3.1 MiB free on /mnt/models (...)": for the error of a pull that does not fit.
  std::string describe() const;
};
// Makes room for `request` under `policy`: when the filesystem's free space (less
// min_free) or max_size leaves less than request.bytes, removes, oldest first, idle
// partials (nobody receiving; not request.own_partials), then orphan blobs no pin holds
// (any age: space is short), then -- only when policy.evict_models() -- whole model
// versions no pin holds and not in request.keep_models, least recently used first
// (manifest mtime), until it fits. Returns what it did and whether it fits now.
SpaceOutcome make_room(const std::filesystem::path& root, const SpaceRequest& request, const SpacePolicy& policy);

// Human sizes ("3.1 MiB") for messages.
std::string format_size(std::uint64_t bytes);

// ---- JSON ---------------------------------------------------------------------------------
// The shapes `modelzoo cache ... --json` prints. Times are RFC 3339 UTC with milliseconds
// ("2026-11-21T22:33:57.123Z", as in events), ages are milliseconds before `now`.

nlohmann::json to_json(const CacheListing& listing, FileTime now = FileTime::clock::now());
nlohmann::json to_json(const VerifyReport& report);
nlohmann::json to_json(const RemoveReport& report);
nlohmann::json to_json(const PruneReport& report);

}  // namespace modelzoo::core
