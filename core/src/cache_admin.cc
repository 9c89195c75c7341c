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
#include <random>
#include <set>
#include <sys/statvfs.h>

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

// Directory entries of `dir` (not recursive), sorted by name; nothing when it is missing
// (or was removed meanwhile). Any other error throws: a listing cut short would make what it
// did not reach look absent, and removers decide from these listings what nothing needs.
std::vector<fs::path> entries_of(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) return out;
  for (; !ec && it != end; it.increment(ec)) out.push_back(it->path());
  if (ec) throw Error(ErrorCode::internal, "cannot list " + dir.string() + ": " + ec.message());
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
void collect_links(const fs::path& dir, const fs::path& top, std::vector<std::pair<std::string, std::string>>& out,
                   int depth) {
  if (depth > 64) throw Error(ErrorCode::internal, dir.string() + " is nested deeper than any model name");
  for (const auto& p : entries_of(dir)) {
    auto st = lstat_of(p);
    if (!st) continue;  // removed meanwhile
    if (S_ISDIR(st->st_mode)) {
      collect_links(p, top, out, depth + 1);
      continue;
    }
    if (!S_ISLNK(st->st_mode)) continue;
    std::error_code ec;
    fs::path target = fs::read_symlink(p, ec);
    if (ec) continue;
    std::string hex = target.filename().string();
    if (target.parent_path().filename() == "sha256" && bus::is_sha256_hex(hex))
      out.emplace_back(p.lexically_relative(top).generic_string(), hex);
  }
}

std::vector<std::pair<std::string, std::string>> view_links(const fs::path& root, const std::string& name,
                                                            const std::string& version) {
  std::vector<std::pair<std::string, std::string>> out;
  const fs::path dir = models_dir(root) / name / version;
  collect_links(dir, dir, out, 0);
  return out;
}

// The manifest files below `dir`, walked one directory at a time without following links.
// A directory removed during the walk (a concurrent rm or prune of that model) held nothing
// any more; its siblings are still walked. A recursive_directory_iterator ends the whole walk
// at such an error, which made every manifest not yet reached look absent, and a remover then
// deleted blobs they list.
void collect_manifests(const fs::path& dir, std::vector<fs::path>& files, int depth) {
  if (depth > 64) throw Error(ErrorCode::internal, dir.string() + " is nested deeper than any model name");
  for (const auto& p : entries_of(dir)) {
    if (is_hidden(p)) continue;  // a manifest being written (.<version>.json.<random>)
    auto st = lstat_of(p);
    if (!st) continue;  // removed meanwhile
    if (S_ISDIR(st->st_mode)) collect_manifests(p, files, depth + 1);
    else if (S_ISREG(st->st_mode) && p.extension() == ".json") files.push_back(p);
  }
}

Scan scan_manifests(const fs::path& root) {
  Scan s;
  const fs::path top = manifests_dir(root);
  std::vector<fs::path> files;
  collect_manifests(top, files, 0);
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

fs::path pins_dir(const fs::path& root) { return root / "pins"; }

std::string random_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

// Puts a blob moved aside back, unless a new copy was committed meanwhile (then the aside
// one goes: the content is the same, its name says so).
void put_back(const fs::path& root, const std::string& hex, const fs::path& aside) {
  fs::path blob = blobs_dir(root) / hex;
  if (::link(aside.c_str(), blob.c_str()) != 0 && errno != EEXIST)
    throw Error(ErrorCode::internal, "cannot put " + blob.string() + " back (it is at " + aside.string() +
                                         "): " + errno_text(errno));
  ::unlink(aside.c_str());
}

// Removes the manifest and the view of `name`:`version` (not its blobs). `before` is a scan
// taken earlier (another model's view may live inside this one's: a model named
// "<name>/<version>/x" is valid; then only this version's own links go); `own_files` are its
// files by name -> blob.
void drop_version(const fs::path& root, const std::string& name, const std::string& v, const Scan& before,
                  const std::vector<std::pair<std::string, std::string>>& own_files) {
  const fs::path dir = manifests_dir(root) / name;
  fs::path manifest = dir / (v + ".json");
  if (::unlink(manifest.c_str()) != 0 && errno != ENOENT)
    throw Error(ErrorCode::internal, "cannot remove " + manifest.string() + ": " + errno_text(errno));
  const fs::path view = models_dir(root) / name / v;
  std::error_code ec;
  std::string inside = name;
  inside.append("/").append(v).append("/");
  bool nested = std::any_of(before.manifests.begin(), before.manifests.end(), [&](const Manifest& m) {
    return (m.name + "/").rfind(inside, 0) == 0;
  });
  if (!nested) {
    // A daemon pulling this version meanwhile may add a link between remove_all's
    // unlinks and its rmdir (ENOTEMPTY, seen by tests/chaos): go again a few times. A pull
    // writes the manifest before it links the view, so a manifest back in place means a
    // pull committed this version again while we removed it: the pull wins (docs/
    // reliability.md, "Pins"), and the removal is over, not failed.
    for (int attempt = 0; attempt < 10; ++attempt) {
      ec.clear();
      fs::remove_all(view, ec);
      if (ec != std::errc::directory_not_empty) break;
      if (struct stat st {}; ::lstat(manifest.c_str(), &st) == 0) {
        ec.clear();
        break;
      }
    }
    if (ec && ec != std::errc::no_such_file_or_directory)
      throw Error(ErrorCode::internal, "cannot remove " + view.string() + ": " + ec.message());
  } else {
    for (const auto& [file_name, hex] : own_files) {
      fs::path link = view / file_name;
      ::unlink(link.c_str());
      remove_empty_parents(link.parent_path(), view);
    }
    ::rmdir(view.c_str());
  }
  remove_empty_parents(view.parent_path(), models_dir(root));
  remove_empty_parents(dir, manifests_dir(root));
}

// The files of `name`:`version` by file name -> blob: from its manifest in `scan`, or from
// its view's links when the manifest is unreadable.
std::vector<std::pair<std::string, std::string>> files_of(const fs::path& root, const Scan& scan,
                                                          const std::string& name, const std::string& v) {
  std::vector<std::pair<std::string, std::string>> files;
  auto m = std::find_if(scan.manifests.begin(), scan.manifests.end(),
                        [&](const Manifest& x) { return x.name == name && x.version == v; });
  if (m != scan.manifests.end()) {
    for (const auto& f : m->md.files) files.emplace_back(f.name, f.sha256);
  } else {
    files = view_links(root, name, v);
  }
  return files;
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
  const std::set<std::string> pinned = pinned_blobs(root);
  for (auto& m : scan.manifests) {
    CachedVersion v;
    v.name = m.name;
    v.version = m.version;
    v.source = m.source;
    v.size = m.md.total_size();
    v.last_used = m.mtime;
    v.files = m.md.files;
    v.complete = store->complete(m.md);
    v.in_use = std::any_of(m.md.files.begin(), m.md.files.end(), [&](const bus::FileInfo& f) { return pinned.count(f.sha256) > 0; });
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

  if (options.remove_corrupt) {
    // A model version that lacks a file is not cached any more: its manifest and view go
    // (its other blobs stay, so the next pull fetches only what is missing).
    std::set<std::pair<std::string, std::string>> lacking;
    for (const auto& c : report.corrupt)
      if (c.removed)
        for (const auto& o : c.owners) lacking.insert({o.name, o.version});
    for (const auto& m : report.missing)
      for (const auto& o : m.owners) lacking.insert({o.name, o.version});
    for (const auto& [name, version] : lacking) {
      drop_version(root, name, version, scan, files_of(root, scan, name, version));
      report.uncached.push_back(ref_text(name, version));
    }
  }
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

  Scan before = scan_manifests(root);
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> own_files;
  std::vector<std::string> candidates;
  for (const auto& v : report.versions) {
    own_files[v] = files_of(root, before, name, v);
    for (const auto& f : own_files[v]) candidates.push_back(f.second);
  }

  // Names are checked, but a directory on the way may still be a symlink leading out.
  require_inside(manifests_dir(root), dir);
  require_inside(models_dir(root), models_dir(root) / name);

  for (const auto& v : report.versions) drop_version(root, name, v, before, own_files[v]);

  // Its blobs that nothing else needs: no other manifest, no pull or load in progress.
  BlobRemoval removal = remove_blobs_if_unused(root, candidates);
  report.blobs_removed = removal.removed.size();
  report.blobs_kept = removal.kept_referenced;
  report.blobs_kept_in_use = removal.kept_in_use;
  report.bytes_freed = removal.bytes_freed;
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

  // Leftovers of killed holders and removers first: a half-removed blob still needed
  // goes back before anything is judged an orphan.
  std::tie(report.pins_removed, report.blobs_restored) = clean_leftovers(root);

  // Orphan blobs: no manifest lists them. Young ones stay (a killed pull's files, worth a
  // retry); remove_blobs_if_unused keeps those a pin holds, and those a manifest written
  // meanwhile lists.
  std::vector<Blob> blobs = scan_blobs(root, nullptr);
  Scan scan = scan_manifests(root);
  std::vector<std::string> candidates;
  for (const auto& b : blobs) {
    if (scan.refs.count(b.sha256)) continue;
    if (now - b.modified < kBlobGracePeriod) {
      report.blobs_kept_recent++;
      continue;
    }
    candidates.push_back(b.sha256);
  }
  BlobRemoval removal = remove_blobs_if_unused(root, candidates);
  report.blobs_removed = removal.removed.size();
  report.blob_bytes_freed = removal.bytes_freed;
  report.blobs_kept_in_use = removal.kept_in_use;

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

// ---- pins and removal --------------------------------------------------------------------

namespace {

// The blobs one pin file holds ("+hex" adds, "-hex" removes; anything else is ignored).
std::set<std::string> read_pin(const fs::path& file) {
  std::set<std::string> held;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() != 65 || !bus::is_sha256_hex(line.substr(1))) continue;
    if (line[0] == '+') held.insert(line.substr(1));
    else if (line[0] == '-') held.erase(line.substr(1));
  }
  return held;
}

constexpr std::chrono::seconds kLeftoverAge{60};  // a remover takes milliseconds, a pin creator too

}  // namespace

std::set<std::string> pinned_blobs(const fs::path& root) {
  std::set<std::string> out;
  for (const auto& p : entries_of(pins_dir(root))) {
    if (p.extension() != ".pin" || is_hidden(p)) continue;
    if (!lock_held(p)) continue;  // its holder died: the pin lapsed
    auto held = read_pin(p);
    out.insert(held.begin(), held.end());
  }
  return out;
}

BlobRemoval remove_blobs_if_unused(const fs::path& root, const std::vector<std::string>& candidates) {
  BlobRemoval out;
  struct Aside {
    std::string hex;
    fs::path path;
    std::uint64_t size;
  };
  std::vector<Aside> moved;
  std::set<std::string> seen;
  // A blob some model or pin needs now is never moved at all: a reader opening it through
  // a view would find it gone for the moment of the check. Only what looks unused goes
  // aside, to be checked again.
  {
    const std::set<std::string> pins = pinned_blobs(root);
    const Scan scan = scan_manifests(root);
    for (const auto& hex : candidates) {
      if (!bus::is_sha256_hex(hex) || seen.count(hex)) continue;
      auto st = lstat_of(blobs_dir(root) / hex);
      if (!st || !S_ISREG(st->st_mode)) continue;
      if (scan.refs.count(hex)) out.kept_referenced++;
      else if (pins.count(hex)) out.kept_in_use++;
      else continue;
      seen.insert(hex);
    }
  }
  // First out of blobs/, so that a pull looking from now on sees it gone...
  for (const auto& hex : candidates) {
    if (!bus::is_sha256_hex(hex) || !seen.insert(hex).second) continue;
    fs::path blob = blobs_dir(root) / hex;
    auto st = lstat_of(blob);
    if (!st || !S_ISREG(st->st_mode)) continue;
    fs::path aside = tmp_dir(root) / (hex + "." + random_id() + ".removing");
    if (::rename(blob.c_str(), aside.c_str()) != 0) {
      if (errno == ENOENT) continue;
      int e = errno;
      for (const auto& m : moved) put_back(root, m.hex, m.path);
      throw Error(ErrorCode::internal, "cannot remove " + blob.string() + ": " + errno_text(e));
    }
    // Its age from now: rename keeps the blob's mtime, and a concurrent prune takes an
    // old .removing for one whose remover died.
    ::utimensat(AT_FDCWD, aside.c_str(), nullptr, 0);
    moved.push_back({hex, aside, static_cast<std::uint64_t>(st->st_size)});
  }
  if (moved.empty()) return out;
  // ...then the pins and manifests: a pin written before the move is seen here, and a
  // manifest written by a pull that finished meanwhile (it pinned first, then unpinned).
  const std::set<std::string> pins = pinned_blobs(root);
  const Scan scan = scan_manifests(root);
  for (const auto& m : moved) {
    const bool referenced = scan.refs.count(m.hex) > 0, pinned = pins.count(m.hex) > 0;
    if (referenced || pinned) {
      put_back(root, m.hex, m.path);
      if (referenced) out.kept_referenced++;
      else out.kept_in_use++;
      continue;
    }
    if (::unlink(m.path.c_str()) != 0 && errno != ENOENT)
      throw Error(ErrorCode::internal, "cannot remove " + m.path.string() + ": " + errno_text(errno));
    out.removed.push_back(m.hex);
    out.bytes_freed += m.size;
  }
  return out;
}

namespace {
// Whether `name` is a temporary of ContentStore: `.<file>.<16 hex>` (a manifest being
// written) or `.<file>.<16 hex>.link` (a view's link being replaced).
bool is_store_temporary(std::string name) {
  if (name.size() > 5 && name.compare(name.size() - 5, 5, ".link") == 0) name.resize(name.size() - 5);
  if (name.size() < 19 || name[0] != '.' || name[name.size() - 17] != '.') return false;
  return std::all_of(name.end() - 16, name.end(), [](unsigned char c) { return std::isxdigit(c); });
}

// Removes below `dir` the store's temporaries older than kLeftoverAge (a writer's live for
// milliseconds): what a writer killed between creating and renaming one left.
std::size_t remove_stale_temporaries(const fs::path& dir, FileTime now, int depth) {
  std::size_t n = 0;
  if (depth > 64) return n;
  for (const auto& p : entries_of(dir)) {
    auto st = lstat_of(p);
    if (!st) continue;
    if (S_ISDIR(st->st_mode)) n += remove_stale_temporaries(p, now, depth + 1);
    else if ((S_ISREG(st->st_mode) || S_ISLNK(st->st_mode)) && is_store_temporary(p.filename().string()) &&
             now - mtime_of(*st) >= kLeftoverAge && ::unlink(p.c_str()) == 0)
      ++n;
  }
  return n;
}
}  // namespace

std::pair<std::size_t, std::size_t> clean_leftovers(const fs::path& root) {
  std::size_t pins = 0, restored = 0;
  const auto now = FileTime::clock::now();
  remove_stale_temporaries(manifests_dir(root), now, 0);
  remove_stale_temporaries(models_dir(root), now, 0);
  for (const auto& p : entries_of(pins_dir(root))) {
    const std::string n = p.filename().string();
    const bool visible = p.extension() == ".pin" && !is_hidden(p);
    const bool fresh = is_hidden(p) && n.size() > 8 && n.compare(n.size() - 8, 8, ".pin.new") == 0;
    if (!visible && !fresh) continue;
    auto st = lstat_of(p);
    if (!st || !S_ISREG(st->st_mode)) continue;
    if (fresh && now - mtime_of(*st) < kLeftoverAge) continue;  // being created (locked next)
    int fd = take_lock(p, false);
    if (fd < 0) continue;  // alive
    if (::unlink(p.c_str()) == 0) pins++;
    ::close(fd);
  }
  std::vector<std::pair<std::string, fs::path>> abandoned;
  for (const auto& p : entries_of(tmp_dir(root))) {
    if (p.extension() != ".removing") continue;
    const std::string n = p.filename().string();
    if (n.size() < 65 || n[64] != '.' || !bus::is_sha256_hex(n.substr(0, 64))) continue;
    auto st = lstat_of(p);
    if (!st || !S_ISREG(st->st_mode) || now - mtime_of(*st) < kLeftoverAge) continue;
    abandoned.emplace_back(n.substr(0, 64), p);
  }
  if (!abandoned.empty()) {
    const std::set<std::string> pinned = pinned_blobs(root);
    const Scan scan = scan_manifests(root);
    for (const auto& [hex, path] : abandoned) {
      if (scan.refs.count(hex) || pinned.count(hex)) {
        put_back(root, hex, path);
        restored++;
      } else {
        ::unlink(path.c_str());
      }
    }
  }
  return {pins, restored};
}

// ---- space --------------------------------------------------------------------------------

std::string format_size(std::uint64_t bytes) {
  static const char* units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

FsSpace fs_space(const fs::path& dir) {
  struct statvfs v {};
  if (::statvfs(dir.c_str(), &v) != 0)
    throw Error(ErrorCode::internal, "cannot read the free space of " + dir.string() + ": " + errno_text(errno));
  FsSpace out;
  out.free = static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
  out.total = static_cast<std::uint64_t>(v.f_blocks) * v.f_frsize;
  // The mount point: the topmost directory on the same device.
  std::error_code ec;
  fs::path at = fs::weakly_canonical(dir, ec);
  if (ec) at = dir;
  struct stat here {};
  if (::stat(at.c_str(), &here) == 0) {
    while (at.has_parent_path() && at.parent_path() != at) {
      struct stat up {};
      if (::stat(at.parent_path().c_str(), &up) != 0 || up.st_dev != here.st_dev) break;
      at = at.parent_path();
    }
  }
  out.mount = at;
  return out;
}

std::string SpaceOutcome::describe() const {
  std::string s = "needs " + format_size(needed) + ", " + format_size(free) + " free on " + mount.string();
  if (min_free > 0) s += " (cache.min_free keeps " + format_size(min_free) + " of it free)";
  if (max_size > 0 && cache_size + needed > max_size)
    s += "; the cache holds " + format_size(cache_size) + " of its cache.max_size " + format_size(max_size);
  if (bytes_freed > 0) {
    s += "; freed " + format_size(bytes_freed) + " (" + std::to_string(partials_removed) + " idle partials, " +
         std::to_string(blobs_removed) + " unused blobs";
    if (!evicted.empty()) s += ", " + std::to_string(evicted.size()) + " models evicted";
    s += ")";
  }
  if (reclaimable_models > 0) {
    s += "; could be freed: " + format_size(reclaimable_models) + " in cached models not in use (modelzoo cache rm";
    for (const auto& n : reclaimable_names) s += " " + n;
    s += "), or set cache.max_size / cache.min_free to evict the least recently used";
  } else {
    s += "; nothing else in the cache can be freed (every other file is in use)";
  }
  return s;
}

SpaceOutcome make_room(const fs::path& root, const SpaceRequest& request, const SpacePolicy& policy) {
  SpaceOutcome out;
  out.needed = request.bytes;
  out.min_free = policy.min_free;
  out.max_size = policy.max_size;
  auto shortfall = [&] {
    std::uint64_t want = request.bytes + policy.min_free;
    std::uint64_t fs_short = want > out.free ? want - out.free : 0;
    std::uint64_t max_short = 0;
    if (policy.max_size > 0 && out.cache_size + request.bytes > policy.max_size)
      max_short = out.cache_size + request.bytes - policy.max_size;
    return std::max(fs_short, max_short);
  };
  auto measure = [&] {
    FsSpace sp = fs_space(root);
    out.free = sp.free;
    out.mount = sp.mount;
    out.cache_size = 0;
    for (const auto& b : scan_blobs(root, nullptr)) out.cache_size += b.size;
    for (const auto& p : entries_of(tmp_dir(root)))
      if (auto st = lstat_of(p); st && S_ISREG(st->st_mode) && p.extension() == ".partial") out.cache_size += st->st_size;
    out.shortfall = shortfall();
  };
  auto freed = [&](std::uint64_t n) {
    out.bytes_freed += n;
    out.free += n;
    out.cache_size -= std::min(out.cache_size, n);
    out.shortfall = shortfall();
  };
  measure();
  if (out.shortfall == 0) return out;

  // 1. Partials nobody is receiving, oldest first (resume state: worth less than the pull at hand).
  struct Idle {
    fs::path path;
    FileTime mtime;
  };
  std::vector<Idle> idle;
  for (const auto& p : entries_of(tmp_dir(root))) {
    std::string hex = hex_of_partial(p);
    if (p.extension() != ".partial" || hex.empty() || request.own_partials.count(hex)) continue;
    auto st = lstat_of(p);
    if (st && S_ISREG(st->st_mode)) idle.push_back({p, mtime_of(*st)});
  }
  std::sort(idle.begin(), idle.end(), [](const Idle& a, const Idle& b) { return a.mtime < b.mtime; });
  for (const auto& i : idle) {
    if (out.shortfall == 0) break;
    fs::path lock = i.path;
    lock.replace_extension(".lock");
    int fd = take_lock(lock, true);
    if (fd < 0) continue;  // being received
    auto st = lstat_of(i.path);
    if (st && ::unlink(i.path.c_str()) == 0) {
      out.partials_removed++;
      freed(static_cast<std::uint64_t>(st->st_size));
    }
    ::unlink(lock.c_str());
    ::close(fd);
  }

  // 2. Orphan blobs no pin holds, oldest first, any age.
  if (out.shortfall > 0) {
    std::vector<Blob> blobs = scan_blobs(root, nullptr);
    Scan scan = scan_manifests(root);
    std::sort(blobs.begin(), blobs.end(), [](const Blob& a, const Blob& b) { return a.modified < b.modified; });
    std::vector<std::string> batch;
    std::uint64_t batch_bytes = 0;
    for (const auto& b : blobs) {
      if (scan.refs.count(b.sha256)) continue;
      batch.push_back(b.sha256);
      batch_bytes += b.size;
      if (batch_bytes >= out.shortfall) break;
    }
    BlobRemoval r = remove_blobs_if_unused(root, batch);
    out.blobs_removed += r.removed.size();
    freed(r.bytes_freed);
  }

  // 3. Whole models no pin holds, least recently used first: only when the user set a limit.
  std::vector<Manifest> candidates;
  std::set<std::string> pinned;
  if (out.shortfall > 0) {
    Scan scan = scan_manifests(root);
    pinned = pinned_blobs(root);
    for (auto& m : scan.manifests) {
      if (request.keep_models.count(ref_text(m.name, m.version))) continue;
      bool in_use = std::any_of(m.md.files.begin(), m.md.files.end(),
                                [&](const bus::FileInfo& f) { return pinned.count(f.sha256) > 0; });
      if (!in_use) candidates.push_back(std::move(m));
    }
    std::sort(candidates.begin(), candidates.end(), [](const Manifest& a, const Manifest& b) { return a.mtime < b.mtime; });
  }
  if (out.shortfall > 0 && policy.evict_models()) {
    for (const auto& m : candidates) {
      if (out.shortfall == 0) break;
      try {
        RemoveReport r = remove_cached(root, m.name, m.version);
        out.evicted.push_back(ref_text(m.name, m.version));
        out.blobs_removed += r.blobs_removed;
        freed(r.bytes_freed);
      } catch (const Error& e) {
        if (e.code() != ErrorCode::not_found) throw;  // removed meanwhile
      }
    }
  }
  measure();
  if (out.shortfall > 0 && !policy.evict_models()) {
    std::sort(candidates.begin(), candidates.end(),
              [](const Manifest& a, const Manifest& b) { return a.md.total_size() > b.md.total_size(); });
    for (const auto& m : candidates) {
      out.reclaimable_models += m.md.total_size();
      if (out.reclaimable_names.size() < 5) out.reclaimable_names.push_back(ref_text(m.name, m.version));
    }
  }
  return out;
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
                      {"in_use", m.in_use},
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
          {"uncached", r.uncached},       {"problems", problems_json(r.problems)}};
}

json to_json(const RemoveReport& r) {
  return {{"name", r.name},
          {"versions", r.versions},
          {"blobs_removed", r.blobs_removed},
          {"blobs_kept", r.blobs_kept},
          {"blobs_kept_in_use", r.blobs_kept_in_use},
          {"bytes_freed", r.bytes_freed}};
}

json to_json(const PruneReport& r) {
  return {{"blobs_removed", r.blobs_removed},
          {"blob_bytes_freed", r.blob_bytes_freed},
          {"blobs_kept_recent", r.blobs_kept_recent},
          {"blobs_kept_in_use", r.blobs_kept_in_use},
          {"pins_removed", r.pins_removed},
          {"blobs_restored", r.blobs_restored},
          {"partials_removed", r.partials_removed},
          {"partial_bytes_freed", r.partial_bytes_freed},
          {"partials_kept", r.partials_kept},
          {"locks_removed", r.locks_removed},
          {"dirs_removed", r.dirs_removed},
          {"bytes_freed", r.bytes_freed()}};
}

}  // namespace modelzoo::core
