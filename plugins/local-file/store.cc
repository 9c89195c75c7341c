#include "local-file/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>


#include "common/version_file.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/bus/unique_fd.h"

namespace modelzoo::plugins::local_file {
namespace {

namespace fs = std::filesystem;
using sdk::Error;
using sdk::ErrorCode;

constexpr std::size_t kHashBlock = 1u << 20;             // read size when hashing
constexpr std::size_t kDefaultChunk = 1u << 20;          // when the sink names no chunk size
constexpr std::uintmax_t kMaxMetadataFile = 1u << 20;    // modelzoo.yaml larger than this is ignored
constexpr int kMaxModelDepth = 8;                        // segments of a model name
constexpr int kMaxFileDepth = 16;                        // segments of a file name
constexpr std::size_t kMaxFiles = 100000;                // files in one model version

using Fd = bus::UniqueFd;

std::string errno_text(int e) { return std::strerror(e); }

// Whether `p` is `root` or below it. Both must be canonical.
bool inside(const fs::path& p, const fs::path& root) {
  const std::string& r = root.native();
  const std::string& s = p.native();
  if (r == "/") return !s.empty() && s[0] == '/';
  return s == r || (s.size() > r.size() && s.compare(0, r.size(), r) == 0 && s[r.size()] == '/');
}

std::string escapes(const std::string& rel) { return "local-file: '" + rel + "' escapes the root"; }

bool is_version(const std::string& n) { return !bus::check_version(n).has_value(); }

// Newest first; equal precedence (differing build metadata) ordered by string, descending.
bool newer(const std::string& a, const std::string& b) {
  auto sa = bus::SemVer::parse(a), sb = bus::SemVer::parse(b);
  int c = sa->compare(*sb);
  return c != 0 ? c > 0 : a > b;
}

// A model name with a segment that is a version is never a model: list() does not descend
// into version directories, so such a name would point inside another model's version.
bool has_version_segment(const std::string& name) {
  std::size_t start = 0;
  while (true) {
    std::size_t end = name.find('/', start);
    if (is_version(name.substr(start, end == std::string::npos ? std::string::npos : end - start))) return true;
    if (end == std::string::npos) return false;
    start = end + 1;
  }
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Sorted entry names of a directory, nullopt (with `err` set) when it cannot be read.
std::optional<std::vector<std::string>> list_dir(const fs::path& dir, std::string& err) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  for (; !ec && it != end; it.increment(ec)) names.push_back(it->path().filename().native());
  if (ec) {
    err = ec.message();
    return std::nullopt;
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Opens a regular file for reading and checks that what was opened lies inside `root`
// (closing the gap between resolving the path and opening it).
int open_checked(const fs::path& path, const fs::path& root, const std::string& rel) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR || e == ELOOP)
      throw Error(ErrorCode::not_found, "local-file: '" + rel + "' does not exist");
    throw Error(ErrorCode::unavailable, "local-file: cannot open '" + rel + "': " + errno_text(e));
  }
  Fd guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw Error(ErrorCode::unavailable, "local-file: cannot stat '" + rel + "': " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::not_found, "local-file: '" + rel + "' is not a regular file");
  char buf[4096];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n > 0 && buf[0] == '/') {  // /proc may be missing; then the earlier resolution stands
    buf[n] = '\0';
    if (!inside(fs::path(buf), root)) throw Error(ErrorCode::bad_request, escapes(rel));
  }
  return guard.release();
}

}  // namespace

Options parse_config(const nlohmann::json& config) {
  Options o;
  if (!config.is_object()) throw Error(ErrorCode::bad_request, "local-file: configuration is not a map");
  auto root = config.find("root");
  if (root == config.end() || root->is_null())
    throw Error(ErrorCode::bad_request, "local-file: configuration lacks 'root' (the directory to serve)");
  if (!root->is_string() || root->get<std::string>().empty())
    throw Error(ErrorCode::bad_request, "local-file: 'root' must be a non-empty string");
  std::error_code ec;
  o.root = fs::absolute(root->get<std::string>(), ec);
  if (ec) o.root = root->get<std::string>();
  if (auto mf = config.find("metadata_file"); mf != config.end() && !mf->is_null()) {
    if (!mf->is_string()) throw Error(ErrorCode::bad_request, "local-file: 'metadata_file' must be a string");
    o.metadata_file = mf->get<std::string>();
    if (auto why = bus::check_file_name(o.metadata_file))
      throw Error(ErrorCode::bad_request, "local-file: invalid 'metadata_file': " + *why);
  }
  return o;
}

Store::Store(Options options) : opt_(std::move(options)) {
  if (!opt_.log) opt_.log = [](const char* level, const std::string& msg) { sdk::log(level, msg); };
}

void Store::log(const char* level, const std::string& msg) const { opt_.log(level, msg); }

std::optional<fs::path> Store::canonical_root() const {
  std::error_code ec;
  fs::path c = fs::canonical(opt_.root, ec);
  if (ec || !is_dir(c)) return std::nullopt;
  return c;
}

bool Store::root_available() const { return canonical_root().has_value(); }

std::optional<fs::path> Store::resolve(const fs::path& root, const std::string& rel) const {
  std::error_code ec;
  // weakly_canonical resolves the existing part, so an escape is seen even when the rest
  // does not exist (no probing of paths outside the root).
  fs::path w = fs::weakly_canonical(root / rel, ec);
  if (ec) return std::nullopt;
  if (!inside(w, root)) throw Error(ErrorCode::bad_request, escapes(rel));
  if (!fs::exists(w, ec) || ec) return std::nullopt;
  return w;
}

std::vector<std::string> Store::versions_of(const fs::path& root, const fs::path& model_dir,
                                            const std::string& name) const {
  std::vector<std::string> out;
  std::string err;
  auto entries = list_dir(model_dir, err);
  if (!entries) {
    log("warn", "local-file: cannot read '" + name + "': " + err);
    return out;
  }
  for (const auto& n : *entries) {
    if (!is_version(n)) continue;
    std::string rel = join(name, n);
    try {
      auto c = resolve(root, rel);
      if (c && is_dir(*c)) out.push_back(n);
    } catch (const Error& e) {
      log("warn", std::string(e.what()) + ", skipped");
    }
  }
  std::sort(out.begin(), out.end(), newer);
  return out;
}

Store::Resolved Store::resolve_model(const std::string& name, const std::string& version) const {
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, "local-file: " + *why);
  if (!version.empty())
    if (auto why = bus::check_version(version)) throw Error(ErrorCode::bad_request, "local-file: " + *why);
  Error no_model(ErrorCode::not_found, "local-file: no model '" + name + "'");
  Resolved r;
  auto root = canonical_root();
  if (!root || has_version_segment(name)) throw no_model;
  r.root = *root;
  auto model = resolve(r.root, name);
  if (!model || !is_dir(*model)) throw no_model;
  r.model = *model;
  if (version.empty()) {
    auto versions = versions_of(r.root, r.model, name);
    if (versions.empty()) throw no_model;
    // Newest first: the first release, or the newest pre-release when there is no release
    // (docs/protocol.md: latest SHOULD prefer releases).
    auto release = std::find_if(versions.begin(), versions.end(),
                                [](const std::string& v) { return bus::SemVer::parse(v)->prerelease.empty(); });
    r.version_name = release != versions.end() ? *release : versions.front();
  } else {
    r.version_name = version;
  }
  auto vdir = resolve(r.root, name + "/" + r.version_name);
  if (!vdir || !is_dir(*vdir))
    throw Error(ErrorCode::not_found, "local-file: no version '" + version + "' of model '" + name + "'");
  r.version = *vdir;
  return r;
}

void Store::read_metadata_file(const fs::path& root, const std::string& display, sdk::ModelMetadata& m) const {
  std::string rel = display + "/" + opt_.metadata_file;
  std::string text;
  try {
    auto c = resolve(root, rel);
    if (!c) return;
    Fd fd(open_checked(*c, root, rel));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || static_cast<std::uintmax_t>(st.st_size) > kMaxMetadataFile) {
      log("warn", "local-file: '" + rel + "' is larger than 1 MiB, ignored");
      return;
    }
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < text.size()) {
      ssize_t n = ::pread(fd.get(), text.data() + got, text.size() - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
    }
    text.resize(got);
  } catch (const Error& e) {
    log("warn", std::string(e.what()) + ", metadata file ignored");
    return;
  }
  for (const auto& w : apply_version_file(text, rel, m).warnings) log("warn", "local-file: " + w);
}

void Store::walk_files(const fs::path& root, const fs::path& dir, const std::string& prefix,
                       const std::string& display, int depth, std::vector<fs::path>& stack,
                       std::vector<FoundFile>& out) const {
  std::string err;
  auto entries = list_dir(dir, err);
  if (!entries)
    throw Error(ErrorCode::unavailable, "local-file: cannot read '" + join(display, prefix) + "': " + err);
  for (const auto& n : *entries) {
    std::string rel = join(prefix, n);
    std::string full = display + "/" + rel;
    if (rel == opt_.metadata_file) continue;
    if (auto why = bus::check_file_name(rel)) {
      log("info", "local-file: skipping '" + full + "': " + *why);
      continue;
    }
    std::optional<fs::path> c;
    try {
      c = resolve(root, full);
    } catch (const Error& e) {
      log("warn", std::string(e.what()) + ", skipped");
      continue;
    }
    if (!c) {
      log("info", "local-file: skipping '" + full + "': it does not resolve (dangling symlink?)");
      continue;
    }
    std::error_code ec;
    auto st = fs::status(*c, ec);
    if (ec) {
      log("info", "local-file: skipping '" + full + "': " + ec.message());
    } else if (fs::is_directory(st)) {
      if (depth + 1 >= kMaxFileDepth) {
        log("info", "local-file: skipping '" + full + "': nested too deep");
      } else if (std::find(stack.begin(), stack.end(), *c) != stack.end()) {
        log("info", "local-file: skipping '" + full + "': a symlink loop");
      } else {
        stack.push_back(*c);
        walk_files(root, *c, rel, display, depth + 1, stack, out);
        stack.pop_back();
      }
    } else if (fs::is_regular_file(st)) {
      if (out.size() >= kMaxFiles)
        throw Error(ErrorCode::unavailable,
                    "local-file: '" + display + "' has more than " + std::to_string(kMaxFiles) + " files");
      out.push_back({rel, *c});
    } else {
      log("info", "local-file: skipping '" + full + "': not a regular file");
    }
  }
}

sdk::ModelMetadata Store::metadata(const std::string& name, const std::string& version) {
  Resolved r = resolve_model(name, version);
  sdk::ModelMetadata m;
  m.name = name;
  m.version = r.version_name;
  std::string display = name + "/" + r.version_name;
  read_metadata_file(r.root, display, m);
  std::vector<FoundFile> found;
  std::vector<fs::path> stack{r.version};
  walk_files(r.root, r.version, "", display, 0, stack, found);
  std::sort(found.begin(), found.end(), [](const FoundFile& a, const FoundFile& b) { return a.name < b.name; });
  for (const auto& f : found) {
    std::string rel = display + "/" + f.name;
    try {
      Fd fd(open_checked(f.path, r.root, rel));
      Hashed h = hash_fd(fd.get(), f.path);
      // Where the daemon may copy it from directly, if its configuration trusts this root.
      m.files.push_back({f.name, h.size, std::move(h.sha256), f.path.string()});
    } catch (const Error& e) {
      if (e.code() != ErrorCode::not_found && e.code() != ErrorCode::bad_request) throw;
      log("warn", std::string(e.what()) + ", skipped");
    }
  }
  return m;
}

bool Store::exists(const std::string& name, const std::string& version) {
  try {
    resolve_model(name, version);
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) return false;
    throw;
  }
}

void Store::walk_models(const fs::path& root, const fs::path& dir, const std::string& prefix, int depth,
                        std::vector<fs::path>& stack, std::vector<sdk::ModelSummary>& out) const {
  if (!prefix.empty()) {
    auto versions = versions_of(root, dir, prefix);
    if (!versions.empty()) {
      sdk::ModelMetadata m;
      std::string display = prefix + "/" + versions.front();
      read_metadata_file(root, display, m);
      out.push_back({prefix, std::move(versions), std::move(m.description)});
    }
  }
  if (depth >= kMaxModelDepth) return;
  std::string err;
  auto entries = list_dir(dir, err);
  if (!entries) {
    if (prefix.empty()) log("warn", "local-file: cannot read the root: " + err);  // else versions_of logged it
    return;
  }
  for (const auto& n : *entries) {
    if (is_version(n)) continue;
    std::string rel = join(prefix, n);
    if (bus::check_model_name(rel)) continue;  // hidden or odd names: not models
    std::optional<fs::path> c;
    try {
      c = resolve(root, rel);
    } catch (const Error& e) {
      log("warn", std::string(e.what()) + ", skipped");
      continue;
    }
    if (!c || !is_dir(*c)) continue;
    if (std::find(stack.begin(), stack.end(), *c) != stack.end()) {
      log("info", "local-file: skipping '" + rel + "': a symlink loop");
      continue;
    }
    stack.push_back(*c);
    walk_models(root, *c, rel, depth + 1, stack, out);
    stack.pop_back();
  }
}

std::vector<sdk::ModelSummary> Store::list() {
  std::vector<sdk::ModelSummary> out;
  auto root = canonical_root();
  if (!root) return out;
  std::vector<fs::path> stack{*root};
  walk_models(*root, *root, "", 0, stack, out);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void Store::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) {
  if (auto why = bus::check_file_name(req.file)) throw Error(ErrorCode::bad_request, "local-file: " + *why);
  Resolved r = resolve_model(req.name, req.version);
  std::string display = req.name + "/" + r.version_name;
  Error no_file(ErrorCode::not_found,
                "local-file: model '" + req.name + "' version '" + r.version_name + "' has no file '" + req.file + "'");
  if (req.file == opt_.metadata_file) throw no_file;
  std::string rel = display + "/" + req.file;
  auto c = resolve(r.root, rel);
  if (!c) throw no_file;
  int raw;
  try {
    raw = open_checked(*c, r.root, rel);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) throw no_file;
    throw;
  }
  Fd fd(raw);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    throw Error(ErrorCode::unavailable, "local-file: cannot stat '" + rel + "': " + errno_text(errno));
  auto size = static_cast<std::uint64_t>(st.st_size);
  if (req.offset > size)
    throw Error(ErrorCode::bad_request, "local-file: offset " + std::to_string(req.offset) + " is past the end of '" +
                                            req.file + "' (" + std::to_string(size) + " bytes)");
  std::size_t chunk = sink.chunk_size();
  if (chunk == 0) chunk = kDefaultChunk;
  std::size_t buf_size = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, std::max<std::uint64_t>(size - req.offset, 1)));
  std::unique_ptr<char[]> buf(new char[buf_size]);
  std::uint64_t off = req.offset;
  while (off < size) {  // the size at open: a file that grows meanwhile is not chased
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf_size, size - off));
    ssize_t n = ::pread(fd.get(), buf.get(), want, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::unavailable, "local-file: cannot read '" + rel + "': " + errno_text(errno));
    }
    if (n == 0) break;  // truncated meanwhile: send what is there, the daemon checks the hash
    sink.write(buf.get(), static_cast<std::size_t>(n));
    off += static_cast<std::uint64_t>(n);
  }
}

Hashed Store::hash_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    throw Error(e == ENOENT || e == ENOTDIR ? ErrorCode::not_found : ErrorCode::unavailable,
                "local-file: cannot open '" + path.string() + "': " + errno_text(e));
  }
  Fd guard(fd);
  return hash_fd(fd, path);
}

Hashed Store::hash_fd(int fd, const fs::path& path) {
  struct stat before {};
  if (::fstat(fd, &before) != 0)
    throw Error(ErrorCode::unavailable, "local-file: cannot stat '" + path.string() + "': " + errno_text(errno));
  if (!S_ISREG(before.st_mode))
    throw Error(ErrorCode::not_found, "local-file: '" + path.string() + "' is not a regular file");
  auto same = [](const CacheEntry& e, const struct stat& st) {
    return e.dev == static_cast<std::uint64_t>(st.st_dev) && e.ino == static_cast<std::uint64_t>(st.st_ino) &&
           e.size == static_cast<std::uint64_t>(st.st_size) && e.mtime_sec == st.st_mtim.tv_sec &&
           e.mtime_nsec == st.st_mtim.tv_nsec;
  };
  {
    std::lock_guard lk(mu_);
    auto it = cache_.find(path.native());
    if (it != cache_.end() && same(it->second, before)) return {it->second.size, it->second.sha256};
    ++computations_;
  }
  bus::Sha256 h;
  std::unique_ptr<char[]> buf(new char[kHashBlock]);
  std::uint64_t total = 0;
  while (true) {
    ssize_t n = ::read(fd, buf.get(), kHashBlock);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::unavailable, "local-file: cannot read '" + path.string() + "': " + errno_text(errno));
    }
    if (n == 0) break;
    h.update(buf.get(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  Hashed out{total, h.hex_digest()};
  struct stat after {};
  CacheEntry e{static_cast<std::uint64_t>(before.st_dev), static_cast<std::uint64_t>(before.st_ino),
               static_cast<std::uint64_t>(before.st_size), before.st_mtim.tv_sec, before.st_mtim.tv_nsec, out.sha256};
  // Cache only when the file did not change while it was read.
  if (::fstat(fd, &after) == 0 && same(e, after) && total == e.size) {
    std::lock_guard lk(mu_);
    cache_[path.native()] = std::move(e);
  }
  return out;
}

std::uint64_t Store::hash_computations() const {
  std::lock_guard lk(mu_);
  return computations_;
}

}  // namespace modelzoo::plugins::local_file
