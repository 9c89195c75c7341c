#include "modelzoo/core/cache_admin.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/core/cache.h"

namespace modelzoo::core {
namespace fs = std::filesystem;
using bus::Error;
using bus::ErrorCode;
using nlohmann::json;

namespace {

constexpr std::size_t kReadSize = 1 << 20;  // verify reads 1 MiB at a time

fs::path blobs_dir(const fs::path& root) { return root / "blobs" / "sha256"; }
fs::path manifests_dir(const fs::path& root) { return root / "manifests"; }
fs::path models_dir(const fs::path& root) { return root / "models"; }
fs::path tmp_dir(const fs::path& root) { return root / "tmp"; }

// lstat: the entry itself, never what a symlink points to.
std::optional<struct stat> lstat_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return std::nullopt;
  return st;
}

FileTime mtime_of(const struct stat& st) {
  // file_time_type's epoch is not the Unix one: convert through the system clock.
  auto since_epoch = std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec);
  using SysDuration = std::chrono::system_clock::duration;
  auto sys = std::chrono::system_clock::time_point(std::chrono::duration_cast<SysDuration>(since_epoch));
  return FileTime::clock::from_sys(sys);
}

bool is_regular(const fs::path& p) {
  auto st = lstat_of(p);
  return st && S_ISREG(st->st_mode);
}

bool is_hidden(const fs::path& p) {
  auto n = p.filename().string();
  return !n.empty() && n[0] == '.';
}

// Directory entries of `dir` (not recursive), sorted by name; nothing when it is missing.
std::vector<fs::path> entries_of(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) out.push_back(it->path());
  std::sort(out.begin(), out.end());
  return out;
}

std::string errno_text(int e) { return std::strerror(e); }

// A directory is treated as a cache only when it has the layout's blobs/sha256 or
// manifests/: a mistyped --cache-dir must not have its empty directories pruned.
bool is_cache(const fs::path& root) {
  std::error_code ec;
  return fs::is_directory(blobs_dir(root), ec) || fs::is_directory(manifests_dir(root), ec);
}

// ---- locks ------------------------------------------------------------------------------

// Whether someone holds the OFD lock of a ContentStore::Writer on `lock`, tested with
// F_OFD_GETLK: nothing is taken, so a receiver starting meanwhile is never turned away.
bool lock_held(const fs::path& lock) {
  int fd = ::open(lock.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno != ENOENT;  // no lock file: nobody holds it; unreadable: assume held
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  bool held = ::fcntl(fd, F_OFD_GETLK, &fl) == 0 ? fl.l_type != F_UNLCK : true;  // unknown: assume held
  ::close(fd);
  return held;
}

// Takes the lock the way a Writer does. Returns the fd holding it, or -1 when someone else
// holds it or it cannot be taken (then the file is left alone).
int take_lock(const fs::path& lock, bool create) {
  int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
  if (fd < 0) return -1;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool any_lock_held(const fs::path& root) {
  for (const auto& p : entries_of(tmp_dir(root)))
    if (p.extension() == ".lock" && lock_held(p)) return true;
  return false;
}

// ---- scanning -------------------------------------------------------------------------------

struct Manifest {
  std::string name, version, source;
  bus::ModelMetadata md;
  FileTime mtime{};
};

struct Blob {
  std::string sha256;
  std::uint64_t size = 0;
  FileTime modified{};
  dev_t dev = 0;
  ino_t ino = 0;
};

// Every manifest, the blobs they reference (with their owners) and what does not fit.
struct Scan {
  std::vector<Manifest> manifests;
  std::map<std::string, std::vector<BlobOwner>> refs;  // sha256 -> owners
  std::vector<CacheProblem> problems;
};

// The blob names the view of `name`:`version` links to, by file name (an unreadable
// manifest's view still protects its blobs).
std::vector<std::pair<std::string, std::string>> view_links(const fs::path& root, const std::string& name,
                                                            const std::string& version) {
  std::vector<std::pair<std::string, std::string>> out;
  fs::path dir = models_dir(root) / name / version;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!it->is_symlink(ec)) continue;
    fs::path target = fs::read_symlink(it->path(), ec);
    if (ec) continue;
    std::string hex = target.filename().string();
    if (target.parent_path().filename() == "sha256" && bus::is_sha256_hex(hex))
      out.emplace_back(fs::relative(it->path(), dir, ec).generic_string(), hex);
  }
  return out;
}

Scan scan_manifests(const fs::path& root) {
  Scan s;
  const fs::path top = manifests_dir(root);
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(top, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec)) {
    if (is_hidden(it->path())) {  // a manifest being written (.<version>.json.<random>)
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->path().extension() == ".json" && is_regular(it->path())) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    fs::path rel = file.lexically_relative(top);
    std::string name = rel.parent_path().generic_string();
    std::string version = rel.stem().string();
    if (auto why = bus::check_model_name(name)) {
      s.problems.push_back({file, "not a cached model: " + *why});
      continue;
    }
    if (auto why = bus::check_version(version)) {
      s.problems.push_back({file, "not a cached model: " + *why});
      continue;
    }
    auto st = lstat_of(file);
    if (!st) continue;  // removed meanwhile
    Manifest m;
    m.name = name;
    m.version = version;
    m.mtime = mtime_of(*st);
    std::string reason;
    try {
      std::ifstream in(file);
      if (!in) throw std::runtime_error("cannot be read: " + errno_text(errno));
      json j = json::parse(in);
      m.md = bus::ModelMetadata::from_json(j.at("metadata"));
      if (auto src = j.find("source"); src != j.end() && src->is_string()) m.source = src->get<std::string>();
      if (m.md.name != name || m.md.version != version)
        throw std::runtime_error("describes " + m.md.name + ":" + m.md.version + ", not " + name + ":" + version);
    } catch (const std::exception& e) {
      reason = e.what();
    }
    if (!reason.empty()) {
      std::string text = "unreadable manifest of ";
      text.append(name).append(":").append(version).append(": ").append(reason);
      s.problems.push_back({file, text});
      for (auto& [file_name, hex] : view_links(root, name, version)) s.refs[hex].push_back({name, version, file_name});
      continue;
    }
    for (const auto& f : m.md.files) s.refs[f.sha256].push_back({name, version, f.name});
    s.manifests.push_back(std::move(m));
  }
  return s;
}

// Every blob under blobs/sha256 (regular files named by a hash), by name.
std::vector<Blob> scan_blobs(const fs::path& root, std::vector<CacheProblem>* problems) {
  std::vector<Blob> out;
  for (const auto& p : entries_of(blobs_dir(root))) {
    auto st = lstat_of(p);
    if (!st) continue;
    std::string hex = p.filename().string();
    if (!S_ISREG(st->st_mode) || !bus::is_sha256_hex(hex)) {
      if (problems) problems->push_back({p, "not a blob (a regular file named by its sha256)"});
      continue;
    }
    out.push_back({hex, static_cast<std::uint64_t>(st->st_size), mtime_of(*st), st->st_dev, st->st_ino});
  }
  return out;
}

std::string hex_of_partial(const fs::path& p) {
  std::string stem = p.stem().string();
  return bus::is_sha256_hex(stem) ? stem : std::string();
}

// Removes `dir` and its parents up to (not including) `stop` while they are empty.
void remove_empty_parents(fs::path dir, const fs::path& stop) {
  while (dir != stop && dir.string().size() > stop.string().size()) {
    if (::rmdir(dir.c_str()) != 0) return;
    dir = dir.parent_path();
  }
}

// Throws bus::Error(internal) when `path` (resolving symlinks) is not inside `top`.
void require_inside(const fs::path& top, const fs::path& path) {
  std::error_code ec;
  fs::path real_top = fs::weakly_canonical(top, ec);
  if (ec) return;  // nothing there: nothing to delete either
  fs::path real = fs::weakly_canonical(path, ec);
  if (ec) return;
  fs::path rel = real.lexically_relative(real_top);
  if (rel.empty() || *rel.begin() == "..")
    throw Error(ErrorCode::internal, path.string() + " leads out of the cache (to " + real.string() + ")");
}

std::string ref_text(const std::string& name, const std::string& version) {
  std::string s = name;
  s.append(":").append(version);
  return s;
}

// RFC 3339 UTC with milliseconds.
std::string rfc3339(FileTime t) {
  auto sys = FileTime::clock::to_sys(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int frac = static_cast<int>(ms - static_cast<long long>(secs) * 1000);
  std::tm parts{};
  gmtime_r(&secs, &parts);
  char buf[96];  // room for any int the compiler cannot rule out
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", parts.tm_year + 1900, parts.tm_mon + 1,
                parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, frac);
  return buf;
}

std::int64_t age_ms(FileTime now, FileTime t) {
  return std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(now - t).count());
}

json owners_json(const std::vector<BlobOwner>& owners) {
  json out = json::array();
  for (const auto& o : owners) out.push_back({{"name", o.name}, {"version", o.version}, {"file", o.file}});
  return out;
}

json problems_json(const std::vector<CacheProblem>& problems) {
  json out = json::array();
  for (const auto& p : problems) out.push_back({{"path", p.path.string()}, {"reason", p.reason}});
  return out;
}

}  // namespace

fs::path default_cache_dir() {
  if (const char* d = std::getenv("MODELZOO_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "modelzoo";
  std::string home;
  if (const char* h = std::getenv("HOME"); h && *h) {
    home = h;
  } else {
    struct passwd pw {};
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(::getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found && found->pw_dir)
      home = found->pw_dir;
  }
  if (home.empty()) home = "/";
  return fs::path(home) / ".cache" / "modelzoo";
}

// ---- list -------------------------------------------------------------------------------

CacheListing list_cache(const fs::path& root) {
  CacheListing out;
  out.root = root;
  if (!is_cache(root)) {
    out.exists = false;
    return out;
  }
  std::vector<Blob> blobs = scan_blobs(root, &out.problems);
  Scan scan = scan_manifests(root);
  out.problems.insert(out.problems.end(), scan.problems.begin(), scan.problems.end());

  std::unique_ptr<ContentStore> store;  // only for a cache that has manifests: it creates the layout
  if (!scan.manifests.empty()) store = std::make_unique<ContentStore>(root);
  for (auto& m : scan.manifests) {
    CachedVersion v;
    v.name = m.name;
    v.version = m.version;
    v.source = m.source;
    v.size = m.md.total_size();
    v.last_used = m.mtime;
    v.files = m.md.files;
    v.complete = store->complete(m.md);
    out.models.push_back(std::move(v));
  }
  std::stable_sort(out.models.begin(), out.models.end(), [](const CachedVersion& a, const CachedVersion& b) {
    if (a.name != b.name) return a.name < b.name;
    auto va = bus::SemVer::parse(a.version), vb = bus::SemVer::parse(b.version);
    return va && vb && va->compare(*vb) > 0;
  });

  for (const auto& b : blobs) {
    out.blob_bytes += b.size;
    if (!scan.refs.count(b.sha256)) out.orphans.push_back({b.sha256, b.size, b.modified});
  }

  for (const auto& p : entries_of(tmp_dir(root))) {
    if (p.extension() != ".partial") continue;
    auto st = lstat_of(p);
    std::string hex = hex_of_partial(p);
    if (!st || !S_ISREG(st->st_mode) || hex.empty()) continue;
    fs::path lock = p;
    lock.replace_extension(".lock");
    out.partials.push_back({hex, static_cast<std::uint64_t>(st->st_size), mtime_of(*st), lock_held(lock)});
  }
  return out;
}

// ---- verify -------------------------------------------------------------------------------

VerifyReport verify_cache(const fs::path& root, const VerifyOptions& options) {
  VerifyReport report;
  report.root = root;
  if (!is_cache(root)) {
    if (options.on_progress) options.on_progress(0, 0);
    return report;
  }
  std::vector<Blob> blobs = scan_blobs(root, &report.problems);
  Scan scan = scan_manifests(root);
  report.problems.insert(report.problems.end(), scan.problems.begin(), scan.problems.end());

  std::uint64_t total = 0, done = 0;
  for (const auto& b : blobs) total += b.size;
  if (options.on_progress) options.on_progress(0, total);

  std::set<std::string> present;
  std::vector<char> buf(kReadSize);
  for (const auto& b : blobs) {
    present.insert(b.sha256);
    const fs::path path = blobs_dir(root) / b.sha256;
    const std::uint64_t done_before = done;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {  // removed meanwhile (another prune, rm)
      done += b.size;
      continue;
    }
    CorruptBlob bad;
    bad.expected = b.sha256;
    bad.size = b.size;
    struct stat hashed {};
    if (fd < 0) {
      bad.error = "cannot open: " + errno_text(errno);
    } else {
      ::fstat(fd, &hashed);
      bad.size = static_cast<std::uint64_t>(hashed.st_size);
      bus::Sha256 hash;
      std::uint64_t read_bytes = 0;
      while (true) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          bad.error = "read error: " + errno_text(errno);
          break;
        }
        if (n == 0) break;
        hash.update(buf.data(), static_cast<std::size_t>(n));
        read_bytes += static_cast<std::uint64_t>(n);
        done = std::min(total, done_before + read_bytes);
        if (options.on_progress) options.on_progress(done, total);
      }
      report.bytes += read_bytes;
      if (bad.error.empty()) bad.actual = hash.hex_digest();
    }
    report.blobs++;
    done = std::min(total, done_before + b.size);
    if (bad.error.empty() && bad.actual == bad.expected) {
      if (fd >= 0) ::close(fd);
      continue;
    }
    if (auto it = scan.refs.find(b.sha256); it != scan.refs.end()) bad.owners = it->second;
    if (options.remove_corrupt) {
      // Only the very file that was hashed: a good copy committed meanwhile must stay.
      auto now = lstat_of(path);
      bool same = fd >= 0 && now && now->st_dev == hashed.st_dev && now->st_ino == hashed.st_ino;
      if (fd < 0 || same) {
        if (::unlink(path.c_str()) == 0 || errno == ENOENT) {
          bad.removed = true;
        } else {
          std::string e = "cannot remove: " + errno_text(errno);
          bad.error = bad.error.empty() ? e : bad.error + "; " + e;
        }
      }
    }
    if (fd >= 0) ::close(fd);
    report.corrupt.push_back(std::move(bad));
  }
  if (options.on_progress) options.on_progress(total, total);

  for (const auto& [hex, owners] : scan.refs)
    if (!present.count(hex) && !is_regular(blobs_dir(root) / hex)) report.missing.push_back({hex, owners});
  return report;
}

// ---- remove -------------------------------------------------------------------------------

RemoveReport remove_cached(const fs::path& root, const std::string& name, const std::string& version) {
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, *why);
  if (!version.empty())
    if (auto why = bus::check_version(version)) throw Error(ErrorCode::bad_request, *why);

  RemoveReport report;
  report.name = name;
  const fs::path dir = manifests_dir(root) / name;
  std::vector<std::string> cached;
  for (const auto& p : entries_of(dir)) {
    if (p.extension() != ".json" || is_hidden(p) || !is_regular(p)) continue;
    std::string v = p.stem().string();
    if (!bus::check_version(v)) cached.push_back(v);
  }
  if (version.empty()) {
    if (cached.empty()) throw Error(ErrorCode::not_found, "model '" + name + "' is not in the cache");
    report.versions = cached;
  } else {
    if (std::find(cached.begin(), cached.end(), version) == cached.end()) {
      std::string msg = "model '" + ref_text(name, version) + "' is not in the cache";
      if (!cached.empty()) {
        msg += " (cached versions:";
        for (const auto& v : cached) msg.append(" ").append(v);
        msg += ")";
      }
      throw Error(ErrorCode::not_found, msg);
    }
    report.versions = {version};
  }

  // The files of each version, by file name -> blob: from its manifest, or from its view's
  // links when the manifest is unreadable.
  Scan before = scan_manifests(root);
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> own_files;
  std::set<std::string> candidates;
  for (const auto& v : report.versions) {
    auto m = std::find_if(before.manifests.begin(), before.manifests.end(),
                          [&](const Manifest& x) { return x.name == name && x.version == v; });
    auto& files = own_files[v];
    if (m != before.manifests.end()) {
      for (const auto& f : m->md.files) files.emplace_back(f.name, f.sha256);
    } else {
      files = view_links(root, name, v);
    }
    for (const auto& f : files) candidates.insert(f.second);
  }

  // Names are checked, but a directory on the way may still be a symlink leading out.
  require_inside(manifests_dir(root), dir);
  require_inside(models_dir(root), models_dir(root) / name);

  for (const auto& v : report.versions) {
    fs::path manifest = dir / (v + ".json");
    if (::unlink(manifest.c_str()) != 0 && errno != ENOENT)
      throw Error(ErrorCode::internal, "cannot remove " + manifest.string() + ": " + errno_text(errno));
    // The view. Another model's view may live inside it (a model named "<name>/<version>/x"
    // is valid): then only this version's own links go.
    const fs::path view = models_dir(root) / name / v;
    std::error_code ec;
    std::string inside = name;
    inside.append("/").append(v).append("/");
    bool nested = std::any_of(before.manifests.begin(), before.manifests.end(), [&](const Manifest& m) {
      return (m.name + "/").rfind(inside, 0) == 0;
    });
    if (!nested) {
      // A daemon pulling this version meanwhile may add a link between remove_all's
      // unlinks and its rmdir (ENOTEMPTY, seen by tests/chaos): go again a few times.
      for (int attempt = 0; attempt < 10; ++attempt) {
        ec.clear();
        fs::remove_all(view, ec);
        if (ec != std::errc::directory_not_empty) break;
      }
      if (ec && ec != std::errc::no_such_file_or_directory)
        throw Error(ErrorCode::internal, "cannot remove " + view.string() + ": " + ec.message());
    } else {
      for (const auto& [file_name, hex] : own_files[v]) {
        fs::path link = view / file_name;
        ::unlink(link.c_str());
        remove_empty_parents(link.parent_path(), view);
      }
      ::rmdir(view.c_str());
    }
    remove_empty_parents(view.parent_path(), models_dir(root));
  }
  remove_empty_parents(dir, manifests_dir(root));

  Scan after = scan_manifests(root);
  for (const auto& hex : candidates) {
    if (after.refs.count(hex)) {
      report.blobs_kept++;
      continue;
    }
    fs::path blob = blobs_dir(root) / hex;
    auto st = lstat_of(blob);
    if (!st || !S_ISREG(st->st_mode)) continue;
    if (::unlink(blob.c_str()) != 0) {
      if (errno == ENOENT) continue;
      throw Error(ErrorCode::internal, "cannot remove " + blob.string() + ": " + errno_text(errno));
    }
    report.blobs_removed++;
    report.bytes_freed += static_cast<std::uint64_t>(st->st_size);
  }
  return report;
}

// ---- prune --------------------------------------------------------------------------------

namespace {

// Removes the empty directories below `dir` (not `dir` itself) bottom-up. A directory that
// was empty already is removed only when older than the grace period; one emptied by this
// very pass goes at once. Returns whether `dir` is now empty.
bool prune_dirs(const fs::path& dir, FileTime now, std::size_t& removed) {
  bool empty = true;
  for (const auto& p : entries_of(dir)) {
    auto st = lstat_of(p);
    if (!st) continue;
    if (!S_ISDIR(st->st_mode)) {
      empty = false;
      continue;
    }
    auto sub = entries_of(p);
    bool had_entries = !sub.empty();
    bool sub_empty = prune_dirs(p, now, removed);
    bool old_enough = now - mtime_of(*st) >= kBlobGracePeriod;
    if (sub_empty && (had_entries || old_enough) && ::rmdir(p.c_str()) == 0) {
      removed++;
    } else {
      empty = false;
    }
  }
  return empty;
}

}  // namespace

PruneReport prune_cache(const fs::path& root, const PruneOptions& options) {
  PruneReport report;
  if (!is_cache(root)) return report;
  const auto now = FileTime::clock::now();

  // Orphan blobs. Blobs are listed before the manifests are read, so a blob whose manifest
  // appears between the two steps is seen as referenced.
  std::vector<Blob> blobs = scan_blobs(root, nullptr);
  const bool receiving = any_lock_held(root);
  Scan scan = scan_manifests(root);
  for (const auto& b : blobs) {
    if (scan.refs.count(b.sha256)) continue;
    if (now - b.modified < kBlobGracePeriod) {
      report.blobs_kept_recent++;
      continue;
    }
    if (receiving) {
      report.blobs_kept_receiving++;
      continue;
    }
    fs::path path = blobs_dir(root) / b.sha256;
    auto st = lstat_of(path);
    if (!st || st->st_ino != b.ino || st->st_dev != b.dev) continue;  // replaced meanwhile
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) continue;
      throw Error(ErrorCode::internal, "cannot remove " + path.string() + ": " + errno_text(errno));
    }
    report.blobs_removed++;
    report.blob_bytes_freed += b.size;
  }

  // Partials nobody receives, under their lock (as ContentStore::clean_partials).
  for (const auto& p : entries_of(tmp_dir(root))) {
    if (p.extension() != ".partial" || hex_of_partial(p).empty()) continue;
    auto st = lstat_of(p);
    if (!st || !S_ISREG(st->st_mode)) continue;
    if (options.partial_age.count() > 0 && now - mtime_of(*st) < options.partial_age) {
      report.partials_kept++;
      continue;
    }
    fs::path lock = p;
    lock.replace_extension(".lock");
    int fd = take_lock(lock, true);
    if (fd < 0) {
      report.partials_kept++;
      continue;
    }
    auto locked = lstat_of(p);  // as it is now that nobody can write it
    if (locked && ::unlink(p.c_str()) == 0) {
      report.partials_removed++;
      report.partial_bytes_freed += static_cast<std::uint64_t>(locked->st_size);
    }
    ::unlink(lock.c_str());  // still held: see ContentStore::Writer::discard
    ::close(fd);
  }
  // Lock files left without a partial (a receiver killed between the two), held by nobody.
  for (const auto& p : entries_of(tmp_dir(root))) {
    if (p.extension() != ".lock" || hex_of_partial(p).empty()) continue;
    fs::path partial = p;
    partial.replace_extension(".partial");
    if (lstat_of(partial)) continue;
    int fd = take_lock(p, false);
    if (fd < 0) continue;
    if (!lstat_of(partial) && ::unlink(p.c_str()) == 0) report.locks_removed++;
    ::close(fd);
  }

  prune_dirs(models_dir(root), now, report.dirs_removed);
  prune_dirs(manifests_dir(root), now, report.dirs_removed);
  return report;
}

// ---- JSON ---------------------------------------------------------------------------------

json to_json(const CacheListing& l, FileTime now) {
  json models = json::array();
  std::uint64_t model_bytes = 0;
  for (const auto& m : l.models) {
    json files = json::array();
    for (const auto& f : m.files) files.push_back({{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}});
    models.push_back({{"name", m.name},
                      {"version", m.version},
                      {"source", m.source},
                      {"size", m.size},
                      {"last_used", rfc3339(m.last_used)},
                      {"last_used_ms_ago", age_ms(now, m.last_used)},
                      {"complete", m.complete},
                      {"files", files}});
    model_bytes += m.size;
  }
  json orphans = json::array();
  std::uint64_t orphan_bytes = 0;
  for (const auto& o : l.orphans) {
    orphans.push_back({{"sha256", o.sha256}, {"size", o.size}, {"modified", rfc3339(o.modified)}});
    orphan_bytes += o.size;
  }
  json partials = json::array();
  std::uint64_t partial_bytes = 0;
  for (const auto& p : l.partials) {
    partials.push_back({{"sha256", p.sha256},
                        {"size", p.size},
                        {"modified", rfc3339(p.modified)},
                        {"age_ms", age_ms(now, p.modified)},
                        {"receiving", p.receiving}});
    partial_bytes += p.size;
  }
  return {{"cache_dir", l.root.string()},
          {"exists", l.exists},
          {"models", models},
          {"orphans", orphans},
          {"partials", partials},
          {"problems", problems_json(l.problems)},
          {"totals",
           {{"models", model_bytes}, {"blobs", l.blob_bytes}, {"orphans", orphan_bytes}, {"partials", partial_bytes}}}};
}

json to_json(const VerifyReport& r) {
  json corrupt = json::array();
  for (const auto& c : r.corrupt) {
    json entry = {{"sha256", c.expected},
                  {"actual", c.actual.empty() ? json(nullptr) : json(c.actual)},
                  {"size", c.size},
                  {"owners", owners_json(c.owners)},
                  {"removed", c.removed}};
    if (!c.error.empty()) entry["error"] = c.error;
    corrupt.push_back(std::move(entry));
  }
  json missing = json::array();
  for (const auto& m : r.missing) missing.push_back({{"sha256", m.sha256}, {"owners", owners_json(m.owners)}});
  return {{"cache_dir", r.root.string()}, {"ok", r.ok()},          {"blobs", r.blobs},
          {"bytes", r.bytes},             {"corrupt", corrupt},    {"missing", missing},
          {"problems", problems_json(r.problems)}};
}

json to_json(const RemoveReport& r) {
  return {{"name", r.name},
          {"versions", r.versions},
          {"blobs_removed", r.blobs_removed},
          {"blobs_kept", r.blobs_kept},
          {"bytes_freed", r.bytes_freed}};
}

json to_json(const PruneReport& r) {
  return {{"blobs_removed", r.blobs_removed},
          {"blob_bytes_freed", r.blob_bytes_freed},
          {"blobs_kept_recent", r.blobs_kept_recent},
          {"blobs_kept_receiving", r.blobs_kept_receiving},
          {"partials_removed", r.partials_removed},
          {"partial_bytes_freed", r.partial_bytes_freed},
          {"partials_kept", r.partials_kept},
          {"locks_removed", r.locks_removed},
          {"dirs_removed", r.dirs_removed},
          {"bytes_freed", r.bytes_freed()}};
}

}  // namespace modelzoo::core
