// Helpers shared by the fuzz targets: a file holding the input (for decoders that read files),
// a scratch directory, and the split of one input into several frames or parts.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace modelzoo::fuzz {

// The bytes as a file: an in-memory file (memfd) rewritten for each input, named by its
// /proc/self/fd path so code that opens paths reads it. One per process and `slot`.
inline std::filesystem::path as_file(const std::uint8_t* data, std::size_t size, int slot = 0) {
  static int fds[4] = {-1, -1, -1, -1};
  int& fd = fds[slot];
  if (fd < 0) {
    fd = ::memfd_create("fuzz-input", MFD_CLOEXEC);
    if (fd < 0) std::abort();
  }
  if (::ftruncate(fd, 0) != 0) std::abort();
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
    if (n <= 0) std::abort();
    done += static_cast<std::size_t>(n);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

// A private directory for the process, removed at exit.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    std::string base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/modelzoo-fuzz-XXXXXX";
    if (!::mkdtemp(tmpl.data())) std::abort();
    static std::string keep = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(keep, ec);
    });
    return std::filesystem::path(tmpl);
  }();
  return dir;
}

// Splits an input into at most `max_parts` parts, each a little-endian u16 length followed
// by that many bytes (cut short by the end of the input); the last part takes what remains
// when the count is reached. Seeds are written the same way (tests/fuzz/make_corpus.cc).
inline std::vector<std::string_view> split_parts(const std::uint8_t* data, std::size_t size, std::size_t max_parts) {
  std::vector<std::string_view> parts;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (!in.empty() && parts.size() + 1 < max_parts) {
    if (in.size() < 2) break;
    std::size_t len = static_cast<unsigned char>(in[0]) | (static_cast<std::size_t>(static_cast<unsigned char>(in[1])) << 8);
    in.remove_prefix(2);
    len = std::min(len, in.size());
    parts.push_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  if (!in.empty() || parts.empty()) parts.push_back(in);
  return parts;
}

// The inverse of split_parts (same `max_parts`), for seeds.
inline std::string join_parts(const std::vector<std::string>& parts, std::size_t max_parts) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i + 1 < max_parts) {
      out += static_cast<char>(parts[i].size() & 0xff);
      out += static_cast<char>((parts[i].size() >> 8) & 0xff);
    }
    out += parts[i];
  }
  return out;
}

// A check the fuzzer must never see fail: an invariant of the decoder, not of the input.
#define FUZZ_ASSERT(cond)                                                                  \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);    \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)

}  // namespace modelzoo::fuzz
