// Internal to modelzoo_codec: reading a file in pieces, and writing one atomically.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace modelzoo::codec::detail {

// Initializes libsodium once (sodium_init is itself thread-safe and idempotent); throws
// CodecError if it cannot.
void ensure_sodium();

std::string errno_text(int err);

// Throws CodecError("<path>: <message>").
[[noreturn]] void fail(const std::filesystem::path& path, const std::string& message);

// An input file read sequentially.
class InputFile {
 public:
  explicit InputFile(const std::filesystem::path& path);  // throws CodecError
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  // Reads until `size` bytes are in `buffer` or the file ends; returns how many were read.
  std::size_t read_full(void* buffer, std::size_t size);
  // Bytes read so far.
  std::uint64_t offset() const { return offset_; }
  // Whether it is a regular file, and then its size when opened.
  bool regular() const { return regular_; }
  std::uint64_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;
  bool regular_ = false;
  std::uint64_t size_ = 0;
};

// A file that appears at `out` only when commit() succeeds. Until then the data goes to a
// temporary file in the same directory (".<name>.tmp-<random>", created O_EXCL), which the
// destructor removes unless committed.
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::filesystem::path& out, mode_t mode = 0644);  // throws CodecError
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  void write(const void* data, std::size_t size);  // throws CodecError
  // fsync, close, rename over `out`, fsync the directory (best effort). Throws CodecError and
  // removes the temporary file on failure.
  void commit();
  std::uint64_t bytes_written() const { return written_; }

 private:
  void discard() noexcept;

  std::filesystem::path out_;
  std::filesystem::path temp_;
  int fd_ = -1;
  std::uint64_t written_ = 0;
  bool committed_ = false;
};

}  // namespace modelzoo::codec::detail
