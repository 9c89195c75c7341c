// Unit tests of the content-addressed model cache (core/include/modelzoo/core/cache.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "modelzoo/bus/message.h"
#include "modelzoo/core/cache.h"

namespace {

namespace fs = std::filesystem;
using modelzoo::bus::Error;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::FileInfo;
using modelzoo::bus::ModelMetadata;
using modelzoo::core::ContentStore;
using modelzoo::core::Sha256;
using testing::HasSubstr;


const std::string kAbcSha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string sha256(const std::string& data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex_digest();
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// ---- SHA-256 --------------------------------------------------------------------------------

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256("abc"), kAbcSha);
  EXPECT_EQ(sha256(""), kEmptySha);
  EXPECT_EQ(Sha256::of("abc"), kAbcSha);
  EXPECT_EQ(Sha256::of(""), kEmptySha);
  EXPECT_EQ(Sha256::of(std::string("a\0b", 3)), sha256(std::string("a\0b", 3)));
  EXPECT_NE(Sha256::of(std::string("a\0b", 3)), Sha256::of("a"));
  EXPECT_EQ(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 h;
  h.update("a", 1);
  h.update("", 0);
  h.update("bc", 2);
  EXPECT_EQ(h.hex_digest(), kAbcSha);

  // One million 'a' in uneven pieces (FIPS 180-2 test vector).
  Sha256 m;
  std::string piece(9973, 'a');
  std::size_t left = 1000000;
  while (left > 0) {
    std::size_t n = std::min(left, piece.size());
    m.update(piece.data(), n);
    left -= n;
  }
  EXPECT_EQ(m.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// ---- the content store ----------------------------------------------------------------------

class Cache : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "modelzoo-cache-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    root_ = tmp_ / "cache";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  // Writes `data` as a blob through a Writer.
  fs::path put(const ContentStore& store, const std::string& name, const std::string& data) {
    auto w = store.begin(FileInfo{name, data.size(), sha256(data)}).value();
    w->write(data.data(), data.size()).value();
    return w->commit().value();
  }

  fs::path tmp_, root_;
};

TEST_F(Cache, CreatesTheLayout) {
  ContentStore store(root_);
  EXPECT_EQ(store.root(), root_);
  EXPECT_TRUE(fs::is_directory(root_ / "blobs" / "sha256"));
  EXPECT_TRUE(fs::is_directory(root_ / "tmp"));
  EXPECT_TRUE(fs::is_directory(root_ / "models"));
  EXPECT_EQ(store.blob_path(kAbcSha), root_ / "blobs" / "sha256" / kAbcSha);
  EXPECT_EQ(store.view_dir("org/model", "1.0.0"), root_ / "models" / "org" / "model" / "1.0.0");
  ContentStore again(root_);  // existing layout is fine
  EXPECT_FALSE(again.has_blob(kAbcSha));
}

TEST_F(Cache, ConstructorNamesTheDirectoryItCannotCreate) {
  std::ofstream(tmp_ / "file") << "x";
  try {
    ContentStore store(tmp_ / "file" / "cache");
    FAIL() << "created a cache under a regular file";
  } catch (const std::runtime_error& e) {
    EXPECT_THAT(e.what(), HasSubstr((tmp_ / "file" / "cache").string()));
  }
}

TEST_F(Cache, CommitPublishesAReadOnlyBlobAndLeavesNoTemporary) {
  ContentStore store(root_);
  auto w = store.begin(FileInfo{"weights.bin", 3, kAbcSha}).value();
  // The transfer in progress: its partial and the lock file naming who receives it.
  EXPECT_EQ(entries(root_ / "tmp"), (std::vector<std::string>{kAbcSha + ".lock", kAbcSha + ".partial"}));
  EXPECT_FALSE(store.has_blob(kAbcSha));
  w->write("a", 1).value();
  w->write("bc", 2).value();
  EXPECT_EQ(w->size(), 3u);
  EXPECT_FALSE(store.has_blob(kAbcSha));  // not before commit
  fs::path blob = w->commit().value();
  EXPECT_EQ(blob, store.blob_path(kAbcSha));
  EXPECT_TRUE(store.has_blob(kAbcSha));
  EXPECT_EQ(read(blob), "abc");
  struct stat st {};
  ASSERT_EQ(::stat(blob.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  EXPECT_TRUE(entries(root_ / "tmp").empty());
  w.reset();  // destroying a committed writer keeps the blob
  EXPECT_TRUE(store.has_blob(kAbcSha));
  EXPECT_EQ(read(blob), "abc");
}

TEST_F(Cache, EmptyFileAndLargeFile) {
  ContentStore store(root_);
  auto empty = store.begin(FileInfo{"empty", 0, kEmptySha}).value();
  EXPECT_EQ(empty->commit().value(), store.blob_path(kEmptySha));
  EXPECT_EQ(fs::file_size(store.blob_path(kEmptySha)), 0u);

  std::string big(3 * 1024 * 1024 + 17, '\0');
  std::mt19937 rng(7);
  for (auto& c : big) c = static_cast<char>(rng());
  std::string sha = sha256(big);
  auto w = store.begin(FileInfo{"big.bin", big.size(), sha}).value();
  for (std::size_t off = 0; off < big.size(); off += 65536)
    w->write(big.data() + off, std::min<std::size_t>(65536, big.size() - off)).value();
  EXPECT_EQ(w->commit().value(), store.blob_path(sha));
  EXPECT_EQ(read(store.blob_path(sha)), big);
  EXPECT_TRUE(entries(root_ / "tmp").empty());
}

// Runs commit() on a writer that received `data` for `expected`, checks the error.
void expect_commit_error(const ContentStore& store, const FileInfo& expected, const std::string& data,
                         std::initializer_list<std::string> needles) {
  auto w = store.begin(expected).value();
  w->write(data.data(), data.size()).value();
  auto blob = w->commit();
  ASSERT_FALSE(blob.ok()) << "commit accepted";
  EXPECT_EQ(blob.error().code(), ErrorCode::internal);
  for (const auto& n : needles) EXPECT_THAT(blob.error().what(), HasSubstr(n));
}

TEST_F(Cache, ASizeMismatchIsAnErrorAndPublishesNothing) {
  ContentStore store(root_);
  expect_commit_error(store, FileInfo{"weights.bin", 3, kAbcSha}, "ab", {"weights.bin", "2", "3"});
  expect_commit_error(store, FileInfo{"weights.bin", 3, kAbcSha}, "abcd", {"weights.bin", "4", "3"});
  EXPECT_FALSE(store.has_blob(kAbcSha));
  EXPECT_TRUE(entries(root_ / "blobs" / "sha256").empty());
  EXPECT_TRUE(entries(root_ / "tmp").empty());
}

TEST_F(Cache, AShaMismatchIsAnErrorAndPublishesNothing) {
  ContentStore store(root_);
  // Right size, wrong content: the data hashes to kAbcSha, the metadata says kEmptySha-like.
  std::string claimed = std::string(64, 'f');
  expect_commit_error(store, FileInfo{"sub/model.gguf", 3, claimed}, "abc", {"sub/model.gguf", kAbcSha, claimed});
  EXPECT_FALSE(store.has_blob(claimed));
  EXPECT_FALSE(store.has_blob(kAbcSha));
  EXPECT_TRUE(entries(root_ / "blobs" / "sha256").empty());
  EXPECT_TRUE(entries(root_ / "tmp").empty());
}

TEST_F(Cache, FailedCommitRemovesTheTemporaryAtOnce) {
  // cache.h: commit() fails "on a mismatch ... and the partial is removed (it cannot be resumed)".
  ContentStore store(root_);
  auto w = store.begin(FileInfo{"weights.bin", 3, kAbcSha}).value();
  w->write("ab", 2).value();
  EXPECT_FALSE(w->commit().ok());
  EXPECT_TRUE(entries(root_ / "tmp").empty());  // the writer is still alive here
  auto v = store.begin(FileInfo{"weights.bin", 3, std::string(64, '0')}).value();
  v->write("abc", 3).value();
  EXPECT_FALSE(v->commit().ok());
  EXPECT_TRUE(entries(root_ / "tmp").empty());
}

TEST_F(Cache, AnInterruptedWriterLeavesItsPartialAndTheNextOneResumesIt) {
  ContentStore store(root_);
  {
    auto w = store.begin(FileInfo{"weights.bin", 3, kAbcSha}).value();
    ASSERT_TRUE(w);
    EXPECT_EQ(w->offset(), 0u);
    w->write("ab", 2).value();
  }  // interrupted: the partial stays for the next attempt
  EXPECT_EQ(read(root_ / "tmp" / (kAbcSha + ".partial")), "ab");
  EXPECT_FALSE(store.has_blob(kAbcSha));
  auto w = store.begin(FileInfo{"weights.bin", 3, kAbcSha}).value();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->offset(), 2u);  // continues after what was received
  EXPECT_EQ(w->size(), 2u);
  w->write("c", 1).value();
  w->commit().value();  // the resumed bytes were re-hashed: the whole file verifies
  EXPECT_EQ(read(store.blob_path(kAbcSha)), "abc");
  EXPECT_TRUE(entries(root_ / "tmp").empty());
}

TEST_F(Cache, APartialLongerThanTheFileIsStartedOver) {
  ContentStore store(root_);
  std::ofstream(root_ / "tmp" / (kAbcSha + ".partial")) << "abcdef";
  auto w = store.begin(FileInfo{"weights.bin", 3, kAbcSha}).value();
  ASSERT_TRUE(w);
  EXPECT_EQ(w->offset(), 0u);
  w->write("abc", 3).value();
  EXPECT_NO_THROW(w->commit().value());
}

TEST_F(Cache, ASecondWriterOfTheSameFileIsRefusedWhileTheFirstHoldsIt) {
  ContentStore store(root_);
  auto a = store.begin(FileInfo{"f", 3, kAbcSha}).value();
  ASSERT_TRUE(a);
  EXPECT_EQ(store.begin(FileInfo{"f", 3, kAbcSha}).value(), nullptr);  // OFD locks exclude within a process too
  a->write("a", 1).value();
  a.reset();
  auto b = store.begin(FileInfo{"f", 3, kAbcSha}).value();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->offset(), 1u);
  b->write("bc", 2).value();
  b->commit().value();
  EXPECT_EQ(read(store.blob_path(kAbcSha)), "abc");
}

ModelMetadata model(std::vector<FileInfo> files) {
  ModelMetadata m;
  m.name = "org/model";
  m.version = "1.0.0";
  m.files = std::move(files);
  return m;
}

TEST_F(Cache, LinkViewCreatesRelativeSymlinksToBlobs) {
  ContentStore store(root_);
  const std::string weights = "weights!", config = "{\"k\": 1}";
  auto m = model({FileInfo{"weights.bin", weights.size(), sha256(weights)},
                  FileInfo{"sub/dir/config.json", config.size(), sha256(config)}});
  EXPECT_FALSE(store.complete(m));  // nothing yet
  put(store, "weights.bin", weights);
  put(store, "sub/dir/config.json", config);
  EXPECT_FALSE(store.complete(m));  // blobs, but no view

  fs::path dir = store.link_view(m).value();
  EXPECT_EQ(dir, store.view_dir("org/model", "1.0.0"));
  for (const auto& f : m.files) {
    SCOPED_TRACE(f.name);
    fs::path link = dir / f.name;
    ASSERT_TRUE(fs::is_symlink(fs::symlink_status(link)));
    fs::path target = fs::read_symlink(link);
    EXPECT_TRUE(target.is_relative()) << target;
    EXPECT_EQ(fs::weakly_canonical(link.parent_path() / target), fs::weakly_canonical(store.blob_path(f.sha256)));
  }
  EXPECT_EQ(read(dir / "weights.bin"), weights);
  EXPECT_EQ(read(dir / "sub" / "dir" / "config.json"), config);
  EXPECT_TRUE(store.complete(m));
  // No temporary link names are left beside the files.
  EXPECT_EQ(entries(dir), (std::vector<std::string>{"sub", "weights.bin"}));
  EXPECT_EQ(entries(dir / "sub" / "dir"), std::vector<std::string>{"config.json"});
}

TEST_F(Cache, ViewSurvivesMovingTheWholeCache) {
  ContentStore store(root_);
  auto m = model({FileInfo{"a.txt", 3, kAbcSha}});
  put(store, "a.txt", "abc");
  store.link_view(m).value();
  fs::rename(root_, tmp_ / "moved");
  ContentStore moved(tmp_ / "moved");
  EXPECT_TRUE(moved.complete(m));  // links are relative
  EXPECT_EQ(read(moved.view_dir(m.name, m.version) / "a.txt"), "abc");
}

TEST_F(Cache, LinkViewIsIdempotentAndRelinks) {
  ContentStore store(root_);
  put(store, "f", "abc");
  put(store, "f", "");
  auto v1 = model({FileInfo{"f", 3, kAbcSha}});
  store.link_view(v1).value();
  store.link_view(v1).value();
  EXPECT_EQ(read(store.view_dir(v1.name, v1.version) / "f"), "abc");
  auto v2 = model({FileInfo{"f", 0, kEmptySha}});  // same name and version, new content
  store.link_view(v2).value();
  EXPECT_EQ(read(store.view_dir(v2.name, v2.version) / "f"), "");
  EXPECT_TRUE(store.complete(v2));
  EXPECT_EQ(entries(store.view_dir(v1.name, v1.version)), std::vector<std::string>{"f"});
}

TEST_F(Cache, CompleteChecksThatTheViewLinksToTheRightBlob) {
  ContentStore store(root_);
  put(store, "f", "abc");
  put(store, "f", "");
  auto v1 = model({FileInfo{"f", 3, kAbcSha}});
  auto v2 = model({FileInfo{"f", 0, kEmptySha}});
  store.link_view(v2).value();  // the view shows the empty blob
  EXPECT_FALSE(store.complete(v1));
}

TEST_F(Cache, CompleteIsFalseWhenABlobIsMissingOrWrong) {
  ContentStore store(root_);
  put(store, "a", "abc");
  auto m = model({FileInfo{"a", 3, kAbcSha}, FileInfo{"b", 0, kEmptySha}});
  store.link_view(m).value();  // "b" dangles: its blob does not exist
  EXPECT_FALSE(store.complete(m));
  put(store, "b", "");
  EXPECT_TRUE(store.complete(m));
  auto wrong_size = model({FileInfo{"a", 4, kAbcSha}});
  EXPECT_FALSE(store.complete(wrong_size));
  auto no_files = model({});
  EXPECT_TRUE(store.complete(no_files));
}

TEST_F(Cache, CleanPartialsRemovesOnlyOldPartialsNobodyHolds) {
  ContentStore store(root_);
  auto old = fs::file_time_type::clock::now() - std::chrono::hours(2);
  fs::path stale = root_ / "tmp" / (std::string(64, '1') + ".partial");
  std::ofstream(stale) << "ab";
  fs::last_write_time(stale, old);
  fs::path fresh = root_ / "tmp" / (std::string(64, '2') + ".partial");
  std::ofstream(fresh) << "ab";
  auto held = store.begin(FileInfo{"h", 3, kAbcSha}).value();
  held->write("a", 1).value();
  fs::last_write_time(root_ / "tmp" / (kAbcSha + ".partial"), old);
  std::ofstream(root_ / "tmp" / "keep.txt") << "x";
  EXPECT_EQ(store.clean_partials(std::chrono::hours(1)), 1u);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(fresh));                                       // recent: may be resumed
  EXPECT_TRUE(fs::exists(root_ / "tmp" / (kAbcSha + ".partial")));      // being received now
  EXPECT_TRUE(fs::exists(root_ / "tmp" / "keep.txt"));
  held.reset();
  EXPECT_EQ(store.clean_partials(std::chrono::hours(1)), 1u);
  EXPECT_EQ(store.clean_partials(std::chrono::seconds(0)), 1u);         // the fresh one
}

TEST_F(Cache, ManifestsRecordCachedVersionsNewestFirst) {
  ContentStore store(root_);
  auto m = model({FileInfo{"a", 3, kAbcSha}});
  EXPECT_FALSE(store.read_manifest(m.name, m.version));
  store.write_manifest(m, "src").value();
  auto back = store.read_manifest(m.name, m.version);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->files[0].sha256, kAbcSha);
  auto newer = m;
  newer.version = "1.10.0";
  store.write_manifest(newer, "src").value();
  auto pre = m;
  pre.version = "1.10.0-rc.1";
  store.write_manifest(pre, "src").value();
  EXPECT_EQ(store.cached_versions(m.name), (std::vector<std::string>{"1.10.0", "1.10.0-rc.1", "1.0.0"}));
  std::ofstream(root_ / "manifests" / m.name / "9.9.9.json") << "{not json";
  EXPECT_FALSE(store.read_manifest(m.name, "9.9.9"));  // unreadable: as if not cached
}

}  // namespace
