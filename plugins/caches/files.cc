#include "caches/files.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "modelzoo/bus/sha256.h"
#include "modelzoo/bus/unique_fd.h"

namespace modelzoo::plugins::caches {
namespace {

namespace fs = std::filesystem;
using sdk::Error;
using sdk::ErrorCode;

constexpr std::size_t kBlock = 1u << 20;

using Fd = bus::UniqueFd;

}  // namespace

bool inside(const fs::path& p, const fs::path& root) {
  const std::string& r = root.native();
  const std::string& s = p.native();
  if (r == "/") return !s.empty() && s[0] == '/';
  return s == r || (s.size() > r.size() && s.compare(0, r.size(), r) == 0 && s[r.size()] == '/');
}

std::optional<fs::path> real_path(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (ec) return std::nullopt;
  return c;
}

int open_inside(const fs::path& path, const fs::path& root, const std::string& plugin, const std::string& what) {
  auto c = real_path(path);
  if (!c) throw Error(ErrorCode::not_found, plugin + ": '" + what + "' does not resolve (a dangling symlink?)");
  if (!inside(*c, root)) throw Error(ErrorCode::bad_request, plugin + ": '" + what + "' leads outside " + root.string());
  int fd = ::open(c->c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT || e == ENOTDIR || e == ELOOP)
      throw Error(ErrorCode::not_found, plugin + ": '" + what + "' does not exist");
    throw Error(ErrorCode::unavailable, plugin + ": cannot open '" + what + "': " + std::strerror(e));
  }
  Fd guard(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(ErrorCode::not_found, plugin + ": '" + what + "' is not a regular file");
  char buf[4096];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n > 0 && buf[0] == '/') {  // closes the gap between resolving and opening
    buf[n] = '\0';
    if (!inside(fs::path(buf), root))
      throw Error(ErrorCode::bad_request, plugin + ": '" + what + "' leads outside " + root.string());
  }
  return guard.release();
}

std::uint64_t fd_size(int fd, const std::string& plugin, const std::string& what) {
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw Error(ErrorCode::unavailable, plugin + ": cannot stat '" + what + "': " + std::strerror(errno));
  return static_cast<std::uint64_t>(st.st_size);
}

void stream_file(const fs::path& path, const fs::path& root, std::uint64_t offset, sdk::ChunkSink& sink,
                 const std::string& plugin, const std::string& what) {
  Fd fd(open_inside(path, root, plugin, what));
  std::uint64_t size = fd_size(fd.get(), plugin, what);
  if (offset > size)
    throw Error(ErrorCode::bad_request, plugin + ": offset " + std::to_string(offset) + " is past the end of '" + what +
                                            "' (" + std::to_string(size) + " bytes)");
  std::size_t chunk = sink.chunk_size() ? sink.chunk_size() : kBlock;
  std::size_t buf_size = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, std::max<std::uint64_t>(size - offset, 1)));
  std::unique_ptr<char[]> buf(new char[buf_size]);
  std::uint64_t off = offset;
  while (off < size) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf_size, size - off));
    ssize_t n = ::pread(fd.get(), buf.get(), want, static_cast<off_t>(off));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::unavailable, plugin + ": cannot read '" + what + "': " + std::strerror(errno));
    }
    if (n == 0) break;  // truncated meanwhile: the daemon's sha256 check refuses it
    sink.write(buf.get(), static_cast<std::size_t>(n));
    off += static_cast<std::uint64_t>(n);
  }
}

std::string HashCache::sha256(const fs::path& path, const fs::path& root, std::uint64_t max_bytes,
                              const std::string& plugin, const std::string& what) {
  Fd fd(open_inside(path, root, plugin, what));
  struct stat before {};
  if (::fstat(fd.get(), &before) != 0)
    throw Error(ErrorCode::unavailable, plugin + ": cannot stat '" + what + "': " + std::strerror(errno));
  auto same = [](const Entry& e, const struct stat& st) {
    return e.dev == static_cast<std::uint64_t>(st.st_dev) && e.ino == static_cast<std::uint64_t>(st.st_ino) &&
           e.size == static_cast<std::uint64_t>(st.st_size) && e.sec == st.st_mtim.tv_sec && e.nsec == st.st_mtim.tv_nsec;
  };
  std::string key = path.native();
  {
    std::lock_guard lk(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && same(it->second, before)) return it->second.sha256;
  }
  if (static_cast<std::uint64_t>(before.st_size) > max_bytes)
    throw Error(ErrorCode::unavailable, plugin + ": '" + what + "' has no sha256 in its name and is larger than " +
                                            std::to_string(max_bytes) + " bytes (max_hash_bytes); not served");
  {
    std::lock_guard lk(mu_);
    ++computations_;
  }
  bus::Sha256 h;
  std::unique_ptr<char[]> buf(new char[kBlock]);
  std::uint64_t total = 0;
  while (true) {
    ssize_t n = ::read(fd.get(), buf.get(), kBlock);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(ErrorCode::unavailable, plugin + ": cannot read '" + what + "': " + std::strerror(errno));
    }
    if (n == 0) break;
    h.update(buf.get(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  Entry e{static_cast<std::uint64_t>(before.st_dev), static_cast<std::uint64_t>(before.st_ino),
          static_cast<std::uint64_t>(before.st_size), before.st_mtim.tv_sec, before.st_mtim.tv_nsec, h.hex_digest()};
  struct stat after {};
  std::string out = e.sha256;
  if (::fstat(fd.get(), &after) == 0 && same(e, after) && total == e.size) {
    std::lock_guard lk(mu_);
    if (cache_.size() >= kMaxEntries) cache_.clear();
    cache_[key] = std::move(e);
  }
  return out;
}

std::uint64_t HashCache::computations() const {
  std::lock_guard lk(mu_);
  return computations_;
}

bool is_hex(const std::string& s, std::size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool found(const std::function<void()>& resolve) {
  try {
    resolve();
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) return false;
    throw;
  }
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return ::fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

std::vector<std::string> string_list(const nlohmann::json& config, const char* key, const std::string& plugin) {
  std::vector<std::string> out;
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return out;
  if (it->is_string()) return {it->get<std::string>()};
  if (!it->is_array()) throw Error(ErrorCode::bad_request, plugin + ": '" + key + "' must be a string or a list of strings");
  for (const auto& v : *it) {
    if (!v.is_string()) throw Error(ErrorCode::bad_request, plugin + ": '" + key + "' must hold only strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace modelzoo::plugins::caches
