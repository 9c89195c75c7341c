// DiskWriter (supervisor/src/disk_writer.h): chunks and local-copy pieces hashed and stored
// in submission order on its own threads, finished ones reported through fd() and take(),
// errors (a file-size limit, a source file that shrank) reported per chunk, and everything
// queued finished by the destructor.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "disk_writer.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::supervisor {
namespace {
namespace fs = std::filesystem;
using testing::HasSubstr;

struct TempDir {
  fs::path path;
  TempDir() {
    std::string t = (fs::temp_directory_path() / "dw-test-XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return s;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

zmq::message_t frame(const std::string& s) { return zmq::message_t(s.data(), s.size()); }

// Takes finished chunks until `n` have come (or 10 s passed), waiting on fd() in between.
std::vector<DiskWriter::Done> take_n(DiskWriter& w, std::size_t n) {
  std::vector<DiskWriter::Done> all;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (all.size() < n && std::chrono::steady_clock::now() < deadline) {
    pollfd p{w.fd(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    for (auto& d : w.take()) all.push_back(std::move(d));
  }
  return all;
}

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

class DiskWriterTest : public testing::Test {
 protected:
  TempDir dir;
  core::ContentStore store{dir.path / "cache"};
};

TEST_F(DiskWriterTest, ChunksAreHashedAndStoredInOrderAndReported) {
  std::string data = bytes(3 * 65536 + 17, 1);
  auto w = store.begin(bus::FileInfo("weights.bin", data.size(), bus::Sha256::of(data))).value();
  ASSERT_TRUE(w);
  DiskWriter disk;
  EXPECT_FALSE(readable(disk.fd()));
  std::size_t pieces = 0;
  for (std::size_t at = 0; at < data.size(); at += 65536, ++pieces) {
    std::string piece = data.substr(at, 65536);
    disk.submit(7, 100 + pieces, w.get(), w->reserve(piece.size()), frame(piece));
  }
  auto done = take_n(disk, pieces);
  ASSERT_EQ(done.size(), pieces);
  std::size_t total = 0;
  for (std::size_t i = 0; i < done.size(); ++i) {
    EXPECT_EQ(done[i].transfer, 7u);
    EXPECT_EQ(done[i].call, 100 + i) << "reported out of submission order";
    EXPECT_FALSE(done[i].error) << done[i].error->what();
    total += done[i].bytes;
  }
  EXPECT_EQ(total, data.size());
  EXPECT_FALSE(readable(disk.fd())) << "take() leaves the fd readable";
  EXPECT_TRUE(disk.take().empty());
  auto blob = w->commit().value();  // size and sha256 match: the bytes were hashed and stored in order
  EXPECT_EQ(read(blob), data);
}

TEST_F(DiskWriterTest, LocalCopyPiecesAreHashedFromTheSourceAndCopied) {
  std::string data = bytes((1 << 20) + 4096 + 3, 2);
  fs::path src = dir.path / "src.bin";
  std::ofstream(src, std::ios::binary) << data;
  int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto w = store.begin(bus::FileInfo("model.gguf", data.size(), bus::Sha256::of(data))).value();
  ASSERT_TRUE(w);
  {
    DiskWriter disk;
    const std::size_t piece = 1 << 19;
    std::size_t n = 0;
    for (std::uint64_t at = 0; at < data.size(); at += piece, ++n) {
      std::size_t len = std::min<std::size_t>(piece, data.size() - at);
      w->reserve(len);
      disk.submit_copy(3, w.get(), fd, at, len);
    }
    auto done = take_n(disk, n);
    ASSERT_EQ(done.size(), n);
    for (const auto& d : done) {
      EXPECT_EQ(d.transfer, 3u);
      EXPECT_EQ(d.call, 0u);
      EXPECT_FALSE(d.error) << d.error->what();
    }
  }
  ::close(fd);
  EXPECT_EQ(read(w->commit().value()), data);
}

TEST_F(DiskWriterTest, ASourceThatShrankFailsItsPiece) {
  std::string data = bytes(1000, 3);
  fs::path src = dir.path / "short.bin";
  std::ofstream(src, std::ios::binary) << data;
  int fd = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto w = store.begin(bus::FileInfo("f.bin", 5000, std::string(64, '0'))).value();
  ASSERT_TRUE(w);
  DiskWriter disk;
  w->reserve(5000);
  disk.submit_copy(1, w.get(), fd, 0, 5000);  // 5000 bytes claimed, 1000 there
  auto done = take_n(disk, 1);
  ::close(fd);
  ASSERT_EQ(done.size(), 1u);
  ASSERT_TRUE(done[0].error);
  EXPECT_EQ(done[0].error->code(), bus::ErrorCode::internal);
  EXPECT_THAT(done[0].error->what(), HasSubstr("shrank"));  // the hasher's or the copier's, whichever came first
  EXPECT_EQ(done[0].bytes, 5000u);
}

TEST_F(DiskWriterTest, AWriteBeyondTheFileSizeLimitFailsThatChunkNamingTheFile) {
  std::string data = bytes(64 * 1024, 4);
  auto w = store.begin(bus::FileInfo("big.bin", data.size() * 2, std::string(64, '0'))).value();
  ASSERT_TRUE(w);
  // A full disk as a tiny file-size limit (EFBIG instead of the SIGXFSZ that would end us).
  auto old = ::signal(SIGXFSZ, SIG_IGN);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit tiny = saved;
  tiny.rlim_cur = 8192;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &tiny), 0);
  std::vector<DiskWriter::Done> done;
  {
    DiskWriter disk;
    disk.submit(5, 1, w.get(), w->reserve(4096), frame(data.substr(0, 4096)));  // fits
    disk.submit(5, 2, w.get(), w->reserve(data.size()), frame(data));           // does not
    done = take_n(disk, 2);
  }
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_FALSE(done[0].error) << done[0].error->what();
  ASSERT_TRUE(done[1].error) << "a write over the limit was reported as stored";
  EXPECT_EQ(done[1].error->code(), bus::ErrorCode::internal);
  EXPECT_THAT(done[1].error->what(), HasSubstr("cannot write 'big.bin' to the cache"));
  EXPECT_THAT(done[1].error->what(), HasSubstr("too large"));
  EXPECT_EQ(done[1].bytes, data.size());
  // The partial was cut back to what was stored before the failure.
  w.reset();
  auto again = store.begin(bus::FileInfo("big.bin", data.size() * 2, std::string(64, '0'))).value();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->offset(), 4096u);
}

TEST_F(DiskWriterTest, TheDestructorFinishesEveryQueuedChunk) {
  std::string data = bytes(64 * 4096, 5);
  auto w = store.begin(bus::FileInfo("queued.bin", data.size(), bus::Sha256::of(data))).value();
  ASSERT_TRUE(w);
  {
    DiskWriter disk;
    for (std::size_t at = 0; at < data.size(); at += 4096)
      disk.submit(1, at, w.get(), w->reserve(4096), frame(data.substr(at, 4096)));
  }  // gone before anything was taken
  EXPECT_EQ(read(w->commit().value()), data);
}

}  // namespace
}  // namespace modelzoo::supervisor
