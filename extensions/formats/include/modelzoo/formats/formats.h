// Cheap structural checks of model files: safetensors, GGUF and ONNX. The rules, numbered,
// are those of docs/extensions.md ("format-validator"); every violation names the rule it broke.
//
// The checks read headers and metadata only, through a Reader (pread on a file, or bytes in
// memory), never the tensor data: a 10 GB safetensors file is checked by reading 8 + N bytes.
// They never crash, hang or allocate beyond what the input justifies, whatever the bytes: every
// length and count is compared with the bytes that remain before anything is allocated or looped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace modelzoo::formats {

// The format a file name declares by its suffix (case-insensitive): "safetensors", "gguf",
// "onnx", or "" when the name has none of these suffixes.
std::string format_of(std::string_view file_name);

// A broken rule: format ("safetensors"), rule id ("safetensors.5", numbered as in docs/extensions.md),
// and a message naming the exact problem with numbers (e.g. "tensor 'w' ends at 48 but the next
// begins at 52").
struct Violation {
  std::string format;
  std::string rule;
  std::string message;
};

// "<format> rule <n>: <message>" — what the validator extension reports to users.
std::string describe(const Violation& v);

// A name taken from a file, quoted for a message: 'name', bytes outside printable ASCII (and
// the quote and backslash) escaped as \xNN, cut after `max` bytes with "...".
std::string quote_name(std::string_view name, std::size_t max = 64);

// Resolves a path relative to the model's root directory (an ONNX external_data `location`) to
// the file on disk, or std::nullopt when the model has no such file. Must reject (return nullopt
// for) absolute paths and paths with ".." components — the checker also refuses such locations
// itself with a violation of onnx rule 4 before asking.
using ModelFileLookup =
    std::function<std::optional<std::filesystem::path>(const std::string& relative)>;

// Checks the file at `path` as `format` ("safetensors", "gguf" or "onnx"). Returns std::nullopt
// when the file keeps every rule. Throws std::runtime_error (message naming the path and errno
// text) only when the file cannot be opened/read at all (an I/O problem, not a verdict) or the
// format is unknown.
std::optional<Violation> check_file(const std::filesystem::path& path, const std::string& format,
                                    const ModelFileLookup& lookup = {});

// The same checks on bytes in memory (unit tests, fuzzers). Throws std::runtime_error only for an
// unknown format.
std::optional<Violation> check_bytes(std::string_view bytes, const std::string& format,
                                     const ModelFileLookup& lookup = {});

// ---------------------------------------------------------------------------------------------
// What the checks read through.

// Random access to the bytes of one file. read() fails cleanly (returns false, reads nothing)
// when [offset, offset + len) extends past size(); it throws std::runtime_error only on an I/O
// error.
class Reader {
 public:
  virtual ~Reader() = default;
  virtual std::uint64_t size() const = 0;
  virtual bool read(std::uint64_t offset, void* dst, std::size_t len) = 0;
};

// Bytes in memory (not owned: they must outlive the reader).
class MemoryReader final : public Reader {
 public:
  explicit MemoryReader(std::string_view bytes) : bytes_(bytes) {}
  std::uint64_t size() const override { return bytes_.size(); }
  bool read(std::uint64_t offset, void* dst, std::size_t len) override;

 private:
  std::string_view bytes_;
};

// A file read with pread(2); its size is taken once, at open. Counts the bytes it reads, so a
// test can show that a check read only the header.
class FileReader final : public Reader {
 public:
  // Throws std::runtime_error naming the path and the errno text when the file cannot be opened.
  explicit FileReader(const std::filesystem::path& path);
  ~FileReader() override;
  FileReader(const FileReader&) = delete;
  FileReader& operator=(const FileReader&) = delete;

  std::uint64_t size() const override { return size_; }
  // Throws std::runtime_error naming the path on a read error or when the file shrank.
  bool read(std::uint64_t offset, void* dst, std::size_t len) override;
  std::uint64_t bytes_read() const { return bytes_read_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t bytes_read_ = 0;
};

// Serves small reads from a window of the underlying reader (one pread per window instead of
// one per field); reads larger than the window go straight through.
class BufferedReader final : public Reader {
 public:
  explicit BufferedReader(Reader& inner, std::size_t window = 64 * 1024);
  std::uint64_t size() const override { return inner_.size(); }
  bool read(std::uint64_t offset, void* dst, std::size_t len) override;

 private:
  Reader& inner_;
  std::size_t window_;
  std::string buffer_;
  std::uint64_t buffer_offset_ = 0;
};

// The checks themselves, on any reader. check_reader() dispatches on `format` and throws
// std::runtime_error for an unknown one.
std::optional<Violation> check_reader(Reader& reader, const std::string& format,
                                      const ModelFileLookup& lookup = {});
std::optional<Violation> check_safetensors(Reader& reader);
std::optional<Violation> check_gguf(Reader& reader);
std::optional<Violation> check_onnx(Reader& reader, const ModelFileLookup& lookup = {});

// Limits of the checks (docs/extensions.md and the bounds on work).
inline constexpr std::uint64_t kSafetensorsMaxHeader = 100'000'000;  // safetensors rule 1
inline constexpr std::uint64_t kGgufMaxKeyLength = 65535;             // gguf rule 3
inline constexpr std::uint64_t kGgufMaxTensorName = 64;               // gguf rule 5
inline constexpr std::uint32_t kGgufMaxDims = 4;                      // gguf rule 5
inline constexpr int kGgufMaxArrayDepth = 8;                          // gguf rule 3
inline constexpr std::uint64_t kOnnxMinIrVersion = 1;                 // onnx rule 3
inline constexpr std::uint64_t kOnnxMaxIrVersion = 14;                // onnx rule 3

}  // namespace modelzoo::formats
