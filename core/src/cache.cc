#include "modelzoo/core/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "modelzoo/bus/message.h"

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
}  // namespace

ContentStore::ContentStore(fs::path root) : root_(std::move(root)) {
  for (const auto& d : {root_ / "blobs" / "sha256", root_ / "tmp", root_ / "models"}) {
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

ContentStore::Writer::Writer(const ContentStore& store, bus::FileInfo expected, fs::path tmp, int fd)
    : store_(store), expected_(std::move(expected)), tmp_(std::move(tmp)), fd_(fd) {}

ContentStore::Writer::~Writer() { discard(); }

void ContentStore::Writer::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!done_) ::unlink(tmp_.c_str());
  done_ = true;
}

void ContentStore::Writer::write(const void* data, std::size_t size) {
  hash_.update(data, size);
  auto p = static_cast<const char*>(data);
  std::size_t left = size;
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::internal, "cannot write '" + expected_.name + "' to the cache (" + tmp_.string() +
                                           "): " + std::strerror(errno));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  written_ += size;
}

fs::path ContentStore::Writer::commit() {
  // Any failure below discards the temporary at once: nothing half-checked lingers.
  auto fail = [&](const std::string& why) {
    discard();
    return Error(ErrorCode::internal, why);
  };
  if (written_ != expected_.size)
    throw fail("file '" + expected_.name + "' has " + std::to_string(written_) + " bytes, metadata says " +
               std::to_string(expected_.size));
  std::string got = hash_.hex_digest();
  if (got != expected_.sha256)
    throw fail("file '" + expected_.name + "' has sha256 " + got + ", metadata says " + expected_.sha256);
  if (::fsync(fd_) != 0) throw fail("cannot sync '" + expected_.name + "': " + std::strerror(errno));
  ::fchmod(fd_, 0444);
  ::close(fd_);
  fd_ = -1;
  fs::path dst = store_.blob_path(expected_.sha256);
  if (::rename(tmp_.c_str(), dst.c_str()) != 0) throw fail("cannot move '" + expected_.name + "' into the cache: " + std::strerror(errno));
  done_ = true;
  fsync_dir(dst.parent_path());
  return dst;
}

std::unique_ptr<ContentStore::Writer> ContentStore::begin(const bus::FileInfo& file) const {
  fs::path tmp = root_ / "tmp" / (file.sha256 + "." + random_suffix() + ".partial");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0)
    throw Error(ErrorCode::internal, "cannot create a temporary file in " + (root_ / "tmp").string() + ": " +
                                         std::strerror(errno));
  return std::unique_ptr<Writer>(new Writer(*this, file, tmp, fd));
}

fs::path ContentStore::link_view(const bus::ModelMetadata& m) const {
  fs::path dir = view_dir(m.name, m.version);
  for (const auto& f : m.files) {
    fs::path link = dir / f.name;
    fs::create_directories(link.parent_path());
    fs::path target = fs::relative(blob_path(f.sha256), link.parent_path());
    // Create beside, then rename over: the view never shows a missing or dangling name.
    // (Built with append: GCC 12 -O3 misreports `"lit" + std::string` under -Wrestrict, PR105651.)
    std::string tmp_name = ".";
    tmp_name.append(link.filename().string()).append(".").append(random_suffix()).append(".link");
    fs::path tmp = link.parent_path() / tmp_name;
    fs::create_symlink(target, tmp);
    if (::rename(tmp.c_str(), link.c_str()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      throw Error(ErrorCode::internal, "cannot link '" + f.name + "' into " + dir.string() + ": " + std::strerror(e));
    }
  }
  fsync_dir(dir);
  return dir;
}

std::size_t ContentStore::clean_temporaries() const {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root_ / "tmp", ec)) {
    if (e.path().extension() == ".partial" && fs::remove(e.path(), ec)) ++n;
  }
  return n;
}

}  // namespace modelzoo::core
