#include "file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <sodium.h>

#include "modelzoo/codec/crypt.h"

namespace modelzoo::codec::detail {

namespace fs = std::filesystem;

void ensure_sodium() {
  // A function-local static: initialized once, thread-safely.
  static const int result = sodium_init();  // 0 first time, 1 if already initialized, -1 on failure
  if (result < 0) throw CodecError("cannot initialize libsodium");
}

std::string errno_text(int err) { return std::strerror(err); }

void fail(const fs::path& path, const std::string& message) { throw CodecError(path.string() + ": " + message); }

// ---- InputFile -----------------------------------------------------------------------

InputFile::InputFile(const fs::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail(path, "cannot open: " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || S_ISDIR(st.st_mode)) {
    const int err = S_ISDIR(st.st_mode) ? EISDIR : errno;
    ::close(fd_);
    fd_ = -1;
    fail(path, "cannot read: " + errno_text(err));
  }
  regular_ = S_ISREG(st.st_mode);
  size_ = regular_ ? static_cast<std::uint64_t>(st.st_size) : 0;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::size_t InputFile::read_full(void* buffer, std::size_t size) {
  auto* bytes = static_cast<unsigned char*>(buffer);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd_, bytes + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, "cannot read: " + errno_text(errno));
    }
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  offset_ += done;
  return done;
}

// ---- AtomicOutput --------------------------------------------------------------------

namespace {

std::string random_hex(std::size_t bytes) {
  unsigned char raw[16];
  randombytes_buf(raw, bytes);
  char hex[2 * sizeof raw + 1];
  sodium_bin2hex(hex, sizeof hex, raw, bytes);
  return hex;
}

}  // namespace

AtomicOutput::AtomicOutput(const fs::path& out, mode_t mode) : out_(out) {
  ensure_sodium();  // randombytes
  if (out.filename().empty()) fail(out, "not a file name");
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  // Keep the name under NAME_MAX (255) however long the output's name is.
  const std::string base = out.filename().string().substr(0, 200);
  for (int attempt = 0; attempt < 16; ++attempt) {
    temp_ = dir / ("." + base + ".tmp-" + random_hex(6));
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd_ >= 0) return;
    if (errno != EEXIST) break;
  }
  const int err = errno;
  fail(out, "cannot create a temporary file in " + dir.string() + ": " + errno_text(err));
}

AtomicOutput::~AtomicOutput() {
  if (!committed_) discard();
}

void AtomicOutput::discard() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  if (!temp_.empty()) {
    ::unlink(temp_.c_str());
    temp_.clear();
  }
}

void AtomicOutput::write(const void* data, std::size_t size) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd_, bytes + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      discard();
      fail(out_, "cannot write: " + errno_text(err));
    }
    done += static_cast<std::size_t>(n);
  }
  written_ += size;
}

void AtomicOutput::commit() {
  if (::fsync(fd_) != 0) {
    const int err = errno;
    discard();
    fail(out_, "cannot write (fsync): " + errno_text(err));
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int err = errno;
    discard();
    fail(out_, "cannot write (close): " + errno_text(err));
  }
  if (::rename(temp_.c_str(), out_.c_str()) != 0) {
    const int err = errno;
    discard();
    fail(out_, "cannot rename " + temp_.filename().string() + " into place: " + errno_text(err));
  }
  committed_ = true;
  // Make the rename durable. Best effort: `out` is in place whatever happens here.
  const fs::path dir = out_.has_parent_path() ? out_.parent_path() : fs::path(".");
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace modelzoo::codec::detail
