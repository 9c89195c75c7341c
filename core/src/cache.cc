#include "modelzoo/core/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/core/cache_admin.h"

namespace modelzoo::core {
namespace fs = std::filesystem;
using bus::Error;
using bus::ErrorCode;

namespace {
void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
std::string random_suffix() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}
// Starts writeback of each 32 MiB stretch that bytes [from, to) completed, without waiting
// for it, so the fsync at commit finds little left to flush (~0.4 s of a 1 GiB pull otherwise).
void start_writeback(int fd, std::uint64_t from, std::uint64_t to) {
  constexpr std::uint64_t kStretch = 32u << 20;
  if (to / kStretch == from / kStretch) return;
  std::uint64_t end = to / kStretch * kStretch;
  ::sync_file_range(fd, static_cast<off_t>(end - kStretch), static_cast<off_t>(kStretch), SYNC_FILE_RANGE_WRITE);
}

// Runs `step` (0 or an errno) inside `dir`, creating it first. `cache rm` in another process
// removes the emptied directories of a view or of the manifests at once, possibly between our
// mkdir and `step` (ENOENT; seen by tests/chaos): both are tried again, a few times.
int in_dir(const fs::path& dir, const std::function<int()>& step) {
  int e = ENOENT;
  for (int attempt = 0; attempt < 10 && e == ENOENT; ++attempt) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) return ec.value();
    e = ec ? ENOENT : step();
  }
  return e;
}

// The error for a failed write of `what` with errno `e`. A full filesystem or quota is
// `unavailable` (it goes away when space is freed: another pull may just have taken the last
// bytes) and says what to do; anything else is `internal`.
Error write_failure(int e, const std::string& what) {
  if (e == ENOSPC || e == EDQUOT)
    return Error(ErrorCode::unavailable, what + ": " + std::strerror(e) +
                                             " (the cache's filesystem is full: free space there, run `modelzoo cache "
                                             "prune`, or set cache.max_size or cache.min_free so the daemon makes "
                                             "room before a pull)");
  return Error(ErrorCode::internal, what + ": " + (e ? std::strerror(e) : std::string("short write")));
}

}  // namespace

ContentStore::ContentStore(fs::path root) : root_(std::move(root)) {
  for (const auto& d : {root_ / "blobs" / "sha256", root_ / "tmp", root_ / "models", root_ / "manifests",
                        root_ / "staging", root_ / "pins"}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) throw std::runtime_error("cannot create cache directory " + d.string() + ": " + ec.message());
  }
}

fs::path ContentStore::blob_path(const std::string& sha256) const { return root_ / "blobs" / "sha256" / sha256; }

bool ContentStore::has_blob(const std::string& sha256) const {
  std::error_code ec;
  return fs::is_regular_file(blob_path(sha256), ec);
}

fs::path ContentStore::view_dir(const std::string& name, const std::string& version) const {
  return root_ / "models" / name / version;
}

bool ContentStore::complete(const bus::ModelMetadata& m) const {
  for (const auto& f : m.files) {
    std::error_code ec;
    // The view name must lead to this file's own blob, not merely to some file.
    fs::path linked = fs::canonical(view_dir(m.name, m.version) / f.name, ec);
    if (ec) return false;
    fs::path blob = fs::canonical(blob_path(f.sha256), ec);
    if (ec || linked != blob || !fs::is_regular_file(blob, ec)) return false;
    if (fs::file_size(blob, ec) != f.size || ec) return false;
  }
  return true;
}

namespace {

// An OFD lock (per open file description, so it also excludes a second writer inside this
// process) on `path`. Returns the fd holding it, -1 when someone else holds it.
bus::Result<int> try_lock(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Error(ErrorCode::internal, "cannot open lock file " + path.string() + ": " + std::strerror(errno));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &fl) != 0) {
    int e = errno;
    ::close(fd);
    if (e == EAGAIN || e == EACCES) return -1;
    return Error(ErrorCode::internal, "cannot lock " + path.string() + ": " + std::strerror(e));
  }
  return fd;
}

}  // namespace

// ---- pins ---------------------------------------------------------------------------------

bus::Result<std::unique_ptr<ContentStore::Pin>> ContentStore::pin(const std::string& holder) const {
  std::unique_ptr<Pin> p(new Pin());
  p->store_ = this;
  const fs::path dir = root_ / "pins";
  const std::string id = random_suffix();
  fs::path fresh = dir / ("." + id + ".pin.new");
  p->path_ = dir / (id + ".pin");
  int e = in_dir(dir, [&] {
    p->fd_ = ::open(fresh.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    return p->fd_ < 0 ? errno : 0;
  });
  if (p->fd_ < 0) return Error(ErrorCode::internal, "cannot create pin " + fresh.string() + ": " + std::strerror(e));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  // Locked before it is visible: a visible pin whose lock is free belongs to a dead holder.
  if (::fcntl(p->fd_, F_OFD_SETLK, &fl) != 0 || ::rename(fresh.c_str(), p->path_.c_str()) != 0) {
    int err = errno;
    ::unlink(fresh.c_str());
    ::close(p->fd_);
    p->fd_ = -1;
    return Error(ErrorCode::internal, "cannot create pin " + p->path_.string() + ": " + std::strerror(err));
  }
  std::string head = "# ";
  for (char c : holder) head += (c == '\n' || c == '\r') ? ' ' : c;
  head += " (pid " + std::to_string(::getpid()) + ")\n";
  if (auto written = p->append(head); !written) return written.error();
  return p;
}

ContentStore::Pin::~Pin() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still locked
  ::close(fd_);
}

bus::Status ContentStore::Pin::append(const std::string& line) {
  // O_APPEND: one write per line, so a reader sees whole lines (a torn last line at worst,
  // which the hold() protocol tolerates: the blob is looked at only after write returns).
  ssize_t n;
  do n = ::write(fd_, line.data(), line.size());
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(line.size()))
    return write_failure(n < 0 ? errno : 0, "cannot write pin " + path_.string());
  return {};
}

bus::Result<bool> ContentStore::Pin::hold(const std::string& sha256) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!held_.count(sha256)) {
      if (auto written = append("+" + sha256 + "\n"); !written) return written.error();
      held_.insert(sha256);
    }
  }
  return store_->has_blob(sha256);  // only now: see the class comment
}

void ContentStore::Pin::release(const std::vector<std::string>& sha256s) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& h : sha256s)
    if (held_.erase(h) && !append("-" + h + "\n")) held_.insert(h);  // still pinned on disk
}

bool ContentStore::Pin::holds(const std::string& sha256) const {
  std::lock_guard<std::mutex> lock(mu_);
  return held_.count(sha256) > 0;
}

bool ContentStore::Pin::recover(const std::string& sha256) const {
  if (!bus::is_sha256_hex(sha256) || !holds(sha256)) return store_->has_blob(sha256);
  if (store_->has_blob(sha256)) return true;
  const std::string prefix = sha256 + ".";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(store_->root() / "tmp", ec)) {
    const std::string n = e.path().filename().string();
    if (n.compare(0, prefix.size(), prefix) != 0 || e.path().extension() != ".removing") continue;
    // The remover's own put-back then finds the blob there (EEXIST) and just drops its copy.
    if (::link(e.path().c_str(), store_->blob_path(sha256).c_str()) == 0 || errno == EEXIST) break;
  }
  return store_->has_blob(sha256);
}

// ---- writer -------------------------------------------------------------------------------

ContentStore::Writer::Writer(const ContentStore& store, bus::FileInfo expected)
    : store_(store), expected_(std::move(expected)) {}

ContentStore::Writer::~Writer() { close_files(); }

void ContentStore::Writer::close_files() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
  lock_fd_ = -1;
}

// The lock file goes too, while still held: a process that opened it earlier re-checks the
// blob before it writes, so the worst case of this race is a duplicate transfer.
void ContentStore::Writer::discard() {
  if (!done_) ::unlink(partial_.c_str());
  done_ = true;
  remove_lock_file();
  close_files();
}

void ContentStore::Writer::remove_lock_file() {
  fs::path lock = partial_;
  lock.replace_extension(".lock");
  ::unlink(lock.c_str());
}

bus::Status ContentStore::Writer::write(const void* data, std::size_t size) {
  if (auto stored = store(size_, data, size); !stored) return stored;  // first: on failure nothing was counted or hashed
  absorb(data, size);
  reserve(size);
  return {};
}

std::uint64_t ContentStore::Writer::reserve(std::size_t size) {
  std::uint64_t at = size_;
  size_ += size;
  return at;
}

void ContentStore::Writer::absorb(const void* data, std::size_t size) { hash_.update(data, size); }

bus::Status ContentStore::Writer::copy_from(int src_fd, std::uint64_t offset, std::size_t size) const {
  std::uint64_t done = 0;
  while (done < size) {
    off_t in = static_cast<off_t>(offset + done), out = in;
    ssize_t n = ::copy_file_range(src_fd, &in, fd_, &out, size - done, 0);
    if (n > 0) {
      done += static_cast<std::uint64_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
      // Not possible between these files: copy through a buffer instead.
      std::vector<char> buf(1 << 20);
      while (done < size) {
        ssize_t r = ::pread(src_fd, buf.data(), std::min<std::uint64_t>(buf.size(), size - done),
                            static_cast<off_t>(offset + done));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return Error(ErrorCode::internal, "cannot read the local copy of '" + expected_.name + "': " +
                                                         (r == 0 ? std::string("file shrank") : std::strerror(errno)));
        if (auto stored = store(offset + done, buf.data(), static_cast<std::size_t>(r)); !stored) return stored;
        done += static_cast<std::uint64_t>(r);
      }
      break;
    }
    int e = n == 0 ? 0 : errno;
    (void)!::ftruncate(fd_, static_cast<off_t>(offset));
    if (e == 0)
      return Error(ErrorCode::internal,
                  "cannot copy '" + expected_.name + "' into the cache (" + partial_.string() + "): source file shrank");
    return write_failure(e, "cannot copy '" + expected_.name + "' into the cache (" + partial_.string() + ")");
  }
  start_writeback(fd_, offset, offset + size);
  return {};
}

bus::Status ContentStore::Writer::store(std::uint64_t offset, const void* data, std::size_t size) const {
  auto p = static_cast<const char*>(data);
  std::size_t left = size;
  std::uint64_t at = offset;
  while (left > 0) {
    ssize_t n = ::pwrite(fd_, p, left, static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      // Keep the partial a consistent prefix: cut off this write's remains.
      (void)!::ftruncate(fd_, static_cast<off_t>(offset));
      return write_failure(e, "cannot write '" + expected_.name + "' to the cache (" + partial_.string() + ")");
    }
    p += n;
    at += static_cast<std::uint64_t>(n);
    left -= static_cast<std::size_t>(n);
  }
  start_writeback(fd_, offset, at);
  return {};
}

bus::Result<fs::path> ContentStore::Writer::commit() {
  // A partial that does not hash right cannot be resumed: discard it with the error.
  auto fail = [&](const std::string& why) {
    discard();
    return Error(ErrorCode::internal, why);
  };
  if (size_ != expected_.size)
    return fail("file '" + expected_.name + "' has " + std::to_string(size_) + " bytes, metadata says " +
               std::to_string(expected_.size));
  std::string got = hash_.hex_digest();
  if (got != expected_.sha256)
    return fail("file '" + expected_.name + "' has sha256 " + got + ", metadata says " + expected_.sha256);
  if (::fsync(fd_) != 0) return fail("cannot sync '" + expected_.name + "': " + std::strerror(errno));
  ::fchmod(fd_, 0444);
  ::futimens(fd_, nullptr);  // a blob's mtime is its arrival (cache prune's grace period counts from it)
  fs::path dst = store_.blob_path(expected_.sha256);
  if (::rename(partial_.c_str(), dst.c_str()) != 0)
    return fail("cannot move '" + expected_.name + "' into the cache: " + std::strerror(errno));
  done_ = true;
  remove_lock_file();
  close_files();
  fsync_dir(dst.parent_path());
  return dst;
}

bus::Result<std::unique_ptr<ContentStore::Writer>> ContentStore::begin(const bus::FileInfo& file) const {
  fs::path tmp = root_ / "tmp";
  auto locked = try_lock(tmp / (file.sha256 + ".lock"));
  if (!locked) return locked.error();
  int lock_fd = *locked;
  if (lock_fd < 0) return std::unique_ptr<Writer>();
  std::unique_ptr<Writer> w(new Writer(*this, file));
  w->lock_fd_ = lock_fd;
  w->partial_ = tmp / (file.sha256 + ".partial");
  w->fd_ = ::open(w->partial_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (w->fd_ < 0)
    return Error(ErrorCode::internal, "cannot create " + w->partial_.string() + ": " + std::strerror(errno));
  struct stat st {};
  ::fstat(w->fd_, &st);
  auto have = static_cast<std::uint64_t>(st.st_size);
  if (have > file.size) {  // not a prefix of this file: start over
    (void)!::ftruncate(w->fd_, 0);
    have = 0;
  }
  // Resume: re-hash what an earlier attempt left, so the final check covers every byte.
  std::vector<char> buf(1 << 20);
  std::uint64_t at = 0;
  while (at < have) {
    ssize_t n = ::pread(w->fd_, buf.data(), std::min<std::uint64_t>(buf.size(), have - at), static_cast<off_t>(at));
    if (n <= 0) {
      (void)!::ftruncate(w->fd_, static_cast<off_t>(at));  // unreadable tail: drop it
      break;
    }
    w->hash_.update(buf.data(), static_cast<std::size_t>(n));
    at += static_cast<std::uint64_t>(n);
  }
  w->resumed_ = w->size_ = at;
  return w;
}

bus::Result<fs::path> ContentStore::link_view(const bus::ModelMetadata& m) const {
  fs::path dir = view_dir(m.name, m.version);
  for (const auto& f : m.files) {
    fs::path link = dir / f.name;
    // Lexical: both paths are built from the cache root and checked names. fs::relative
    // resolves them on disk, and throws when `cache rm` removes a directory meanwhile.
    fs::path target = blob_path(f.sha256).lexically_normal().lexically_relative(link.parent_path().lexically_normal());
    // Create beside, then rename over: the view never shows a missing or dangling name.
    // (Built with append: GCC 12 -O3 misreports `"lit" + std::string` under -Wrestrict, PR105651.)
    std::string tmp_name = ".";
    tmp_name.append(link.filename().string()).append(".").append(random_suffix()).append(".link");
    fs::path tmp = link.parent_path() / tmp_name;
    int e = in_dir(link.parent_path(), [&] {
      if (::symlink(target.c_str(), tmp.c_str()) != 0) return errno;
      if (::rename(tmp.c_str(), link.c_str()) == 0) return 0;
      int err = errno;
      ::unlink(tmp.c_str());
      return err;
    });
    if (e != 0)
      return Error(ErrorCode::internal, "cannot link '" + f.name + "' into " + dir.string() + ": " + std::strerror(e));
  }
  fsync_dir(dir);
  return dir;
}

namespace {
// Gives the anonymous file `fd` (O_TMPFILE) the name `path`: 0 or an errno. EEXIST when
// `path` exists (linkat never replaces).
int link_anonymous(int fd, const fs::path& path) {
  const std::string self = "/proc/self/fd/" + std::to_string(fd);
  return ::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, path.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
}
}  // namespace

// The manifest is written and flushed with no name (O_TMPFILE), then linked under its own
// name: a daemon killed at any point leaves either no manifest or a whole one, and no
// temporary file. Replacing an existing manifest needs a named temporary renamed over it
// (linkat cannot replace); it exists for microseconds, and a killed writer's is removed by
// clean_leftovers. Filesystems without O_TMPFILE take the named temporary all the way.
bus::Status ContentStore::write_manifest(const bus::ModelMetadata& m, const std::string& source,
                                  const nlohmann::json& derived) const {
  fs::path file = root_ / "manifests" / m.name / (m.version + ".json");
  nlohmann::json j = {{"metadata", m.to_json()}, {"source", source}};
  if (!derived.is_null()) j["derived"] = derived;
  std::string text = j.dump(2) + "\n";
  std::string tmp_name = ".";
  tmp_name.append(file.filename().string()).append(".").append(random_suffix());
  fs::path tmp = file.parent_path() / tmp_name;
  const std::string what = "cannot write manifest " + file.string();
  int fd = -1;
  bool anonymous = false;
  int open_error = in_dir(file.parent_path(), [&] {
    fd = ::open(file.parent_path().c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    if (fd >= 0) {
      anonymous = true;
      return 0;
    }
    if (errno == ENOENT) return ENOENT;  // the directory went meanwhile: in_dir tries again
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    return fd < 0 ? errno : 0;
  });
  if (fd < 0) return write_failure(open_error, what);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  int e = ok ? 0 : (errno ? errno : EIO);
  if (ok && anonymous) {
    // The directory looks empty to `cache rm` while the file has no name: it may be gone
    // (ENOENT), and in_dir makes it again.
    e = in_dir(file.parent_path(), [&] { return link_anonymous(fd, file); });
    if (e == EEXIST) e = in_dir(file.parent_path(), [&] { return link_anonymous(fd, tmp); });
    else if (e == 0) {
      ::close(fd);
      fsync_dir(file.parent_path());
      return {};
    }
    ok = e == 0;
  }
  ::close(fd);
  if (ok && ::rename(tmp.c_str(), file.c_str()) != 0) {
    ok = false;
    e = errno;
  }
  if (!ok) {
    ::unlink(tmp.c_str());
    return write_failure(e, what);
  }
  fsync_dir(file.parent_path());
  return {};
}

std::optional<bus::ModelMetadata> ContentStore::read_manifest(const std::string& name, const std::string& version) const {
  std::ifstream in(root_ / "manifests" / name / (version + ".json"));
  if (!in) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(in);
    return bus::ModelMetadata::from_json(j.at("metadata"));
  } catch (const std::exception&) {
    return std::nullopt;  // unreadable manifest: as if not cached
  }
}

std::optional<nlohmann::json> ContentStore::read_manifest_record(const std::string& name,
                                                                const std::string& version) const {
  std::ifstream in(root_ / "manifests" / name / (version + ".json"));
  if (!in) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(in);
    bus::ModelMetadata::from_json(j.at("metadata"));  // readable as a manifest at all
    return j;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

ContentStore::Staging::~Staging() {
  std::error_code ec;
  fs::remove_all(dir_, ec);
  ::unlink(lock_.c_str());
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

bus::Result<std::unique_ptr<ContentStore::Staging>> ContentStore::begin_staging() const {
  std::string id = random_suffix();
  std::unique_ptr<Staging> s(new Staging());
  s->lock_ = root_ / "tmp" / ("staging-" + id + ".lock");
  auto locked = try_lock(s->lock_);
  if (!locked) return locked.error();
  s->lock_fd_ = *locked;
  if (s->lock_fd_ < 0) return Error(ErrorCode::internal, "staging lock " + s->lock_.string() + " is taken");
  s->dir_ = root_ / "staging" / id;
  std::error_code ec;
  fs::create_directories(s->dir_, ec);
  if (ec) return Error(ErrorCode::internal, "cannot create staging directory " + s->dir_.string() + ": " + ec.message());
  return s;
}

bus::Result<bus::FileInfo> ContentStore::adopt(const fs::path& file, const std::string& name, Pin* pin) const {
  auto fail = [&](const std::string& why) { return Error(ErrorCode::internal, "cannot commit '" + name + "': " + why); };
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return fail(file.string() + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1) {
    ::close(fd);
    return fail(file.string() + " is not a regular file with a single link");
  }
  Sha256 h;
  std::vector<char> buf(1 << 20);
  std::uint64_t size = 0;
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return fail(std::string("read: ") + std::strerror(e));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<std::size_t>(n));
    size += static_cast<std::uint64_t>(n);
  }
  bool synced = ::fsync(fd) == 0;
  ::fchmod(fd, 0444);
  ::futimens(fd, nullptr);
  ::close(fd);
  if (!synced) return fail(std::string("fsync: ") + std::strerror(errno));
  bus::FileInfo info(name, size, h.hex_digest());
  fs::path dst = blob_path(info.sha256);
  if (pin) {  // before the blob appears: no remover can take it then
    if (auto held = pin->hold(info.sha256); !held) return held.error();
  }
  if (has_blob(info.sha256)) {
    ::unlink(file.c_str());  // the same content is already there
  } else if (::rename(file.c_str(), dst.c_str()) != 0) {
    return fail("cannot move it into the cache: " + std::string(std::strerror(errno)));
  }
  fsync_dir(dst.parent_path());
  return info;
}

bool ContentStore::remove_unreferenced_blob(const std::string& sha256) const {
  return !remove_blobs_if_unused(root_, {sha256}).removed.empty();
}

std::vector<std::string> ContentStore::cached_versions(const std::string& name) const {
  std::vector<std::pair<bus::SemVer, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ / "manifests" / name, ec)) {
    if (e.path().extension() != ".json") continue;
    std::string v = e.path().stem().string();
    if (auto sv = bus::SemVer::parse(v)) found.emplace_back(*sv, v);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first.compare(b.first) > 0; });
  std::vector<std::string> out;
  for (auto& [_, v] : found) out.push_back(v);
  return out;
}

void ContentStore::touch(const std::string& name, const std::string& version) const {
  std::error_code ec;
  fs::last_write_time(root_ / "manifests" / name / (version + ".json"), fs::file_time_type::clock::now(), ec);
}

std::size_t ContentStore::clean_partials(std::chrono::seconds older_than) const {
  std::size_t n = 0;
  std::error_code ec;
  auto now = fs::file_time_type::clock::now();
  for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) {
    if (e.path().extension() != ".partial") continue;
    auto mtime = fs::last_write_time(e.path(), ec);
    if (ec || now - mtime < older_than) continue;
    fs::path lock = e.path();
    lock.replace_extension(".lock");
    auto locked = try_lock(lock);
    if (!locked || *locked < 0) continue;  // being received right now (or not ours to lock)
    int fd = *locked;
    if (fs::remove(e.path(), ec)) ++n;
    fs::remove(lock, ec);
    ::close(fd);
  }
  // Staging directories of extensions whose daemon died: nobody holds their lock.
  for (const auto& e : fs::directory_iterator(root_ / "staging", ec)) {
    fs::path lock = root_ / "tmp" / ("staging-" + e.path().filename().string() + ".lock");
    auto locked = try_lock(lock);
    if (!locked || *locked < 0) continue;
    int fd = *locked;
    fs::remove_all(e.path(), ec);
    ::unlink(lock.c_str());
    ::close(fd);
  }
  clean_leftovers(root_);
  return n;
}

}  // namespace modelzoo::core
