// Format dispatch, messages and the readers the checks read through (formats.h).
#include "modelzoo/formats/formats.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace modelzoo::formats {
namespace {

bool ends_with_icase(std::string_view s, std::string_view suffix) {
  if (s.size() <= suffix.size()) return false;  // a bare ".gguf" declares nothing
  std::string_view tail = s.substr(s.size() - suffix.size());
  for (std::size_t i = 0; i < suffix.size(); ++i) {
    char c = tail[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

std::string format_of(std::string_view file_name) {
  if (ends_with_icase(file_name, ".safetensors")) return "safetensors";
  if (ends_with_icase(file_name, ".gguf")) return "gguf";
  if (ends_with_icase(file_name, ".onnx")) return "onnx";
  return "";
}

std::string describe(const Violation& v) {
  std::string number = v.rule;
  if (auto dot = number.rfind('.'); dot != std::string::npos) number = number.substr(dot + 1);
  return v.format + " rule " + number + ": " + v.message;
}

std::string quote_name(std::string_view name, std::size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < name.size() && i < max; ++i) {
    auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (name.size() > max) out += "...";
  out += "'";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Readers.

bool MemoryReader::read(std::uint64_t offset, void* dst, std::size_t len) {
  if (offset > bytes_.size() || len > bytes_.size() - offset) return false;
  if (len > 0) std::memcpy(dst, bytes_.data() + offset, len);
  return true;
}

FileReader::FileReader(const std::filesystem::path& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    int err = errno;
    throw std::runtime_error("cannot open " + path.string() + ": " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    int err = errno;
    ::close(fd_);
    throw std::runtime_error("cannot stat " + path.string() + ": " + errno_text(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd_);
    throw std::runtime_error("cannot read " + path.string() + ": " + errno_text(EISDIR));
  }
  size_ = st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool FileReader::read(std::uint64_t offset, void* dst, std::size_t len) {
  if (offset > size_ || len > size_ - offset) return false;
  auto* out = static_cast<char*>(dst);
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd_, out + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      throw std::runtime_error("cannot read " + path_.string() + ": " + errno_text(err));
    }
    if (n == 0) {
      throw std::runtime_error("cannot read " + path_.string() + ": the file shrank to " +
                               std::to_string(offset + done) + " bytes while being checked (" +
                               std::to_string(size_) + " at open)");
    }
    done += static_cast<std::size_t>(n);
    bytes_read_ += static_cast<std::uint64_t>(n);
  }
  return true;
}

BufferedReader::BufferedReader(Reader& inner, std::size_t window)
    : inner_(inner), window_(std::max<std::size_t>(window, 16)) {}

bool BufferedReader::read(std::uint64_t offset, void* dst, std::size_t len) {
  const std::uint64_t size = inner_.size();
  if (offset > size || len > size - offset) return false;
  if (len == 0) return true;
  if (offset >= buffer_offset_ && offset - buffer_offset_ <= buffer_.size() &&
      len <= buffer_.size() - (offset - buffer_offset_)) {
    std::memcpy(dst, buffer_.data() + (offset - buffer_offset_), len);
    return true;
  }
  if (len > window_ / 2) return inner_.read(offset, dst, len);
  const std::size_t fill =
      static_cast<std::size_t>(std::min<std::uint64_t>(window_, size - offset));
  buffer_.resize(fill);
  buffer_offset_ = offset;
  if (!inner_.read(offset, buffer_.data(), fill)) {
    buffer_.clear();
    return false;
  }
  std::memcpy(dst, buffer_.data(), len);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Dispatch.

std::optional<Violation> check_reader(Reader& reader, const std::string& format,
                                      const ModelFileLookup& lookup) {
  if (format == "safetensors") return check_safetensors(reader);
  if (format == "gguf") return check_gguf(reader);
  if (format == "onnx") return check_onnx(reader, lookup);
  throw std::runtime_error("unknown model file format '" + format +
                           "' (known: safetensors, gguf, onnx)");
}

std::optional<Violation> check_file(const std::filesystem::path& path, const std::string& format,
                                    const ModelFileLookup& lookup) {
  if (format != "safetensors" && format != "gguf" && format != "onnx") {
    throw std::runtime_error("cannot check " + path.string() + ": unknown model file format '" +
                             format + "' (known: safetensors, gguf, onnx)");
  }
  FileReader reader(path);
  return check_reader(reader, format, lookup);
}

std::optional<Violation> check_bytes(std::string_view bytes, const std::string& format,
                                     const ModelFileLookup& lookup) {
  MemoryReader reader(bytes);
  return check_reader(reader, format, lookup);
}

}  // namespace modelzoo::formats
