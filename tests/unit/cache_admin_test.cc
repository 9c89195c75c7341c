// Unit tests of cache administration (core/include/modelzoo/core/cache_admin.h): caches are
// built with ContentStore's real API in temporary directories.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "modelzoo/bus/message.h"
#include "modelzoo/core/cache.h"
#include "modelzoo/core/cache_admin.h"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using modelzoo::bus::Error;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::FileInfo;
using modelzoo::bus::ModelMetadata;
using modelzoo::core::ContentStore;
using modelzoo::core::Sha256;
namespace admin = modelzoo::core;
using testing::ElementsAre;
using testing::HasSubstr;

using Files = std::vector<std::pair<std::string, std::string>>;  // file name, content

class CacheAdminTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-cache-admin-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "cache";
    store_ = std::make_unique<ContentStore>(root_);
  }
  void TearDown() override {
    store_.reset();
    std::error_code ec;
    // Blobs are read-only; their directory is not, so remove_all works.
    fs::remove_all(base_, ec);
  }

  static FileInfo info(const std::string& name, const std::string& content) {
    return {name, content.size(), Sha256::of(content)};
  }

  // Receives `content` into a blob through a Writer, as the daemon does.
  void put_blob(const std::string& content) {
    FileInfo f = info("x", content);
    if (store_->has_blob(f.sha256)) return;
    auto w = store_->begin(f).value();
    ASSERT_NE(w, nullptr);
    w->write(content.data(), content.size()).value();
    w->commit().value();
  }

  // A complete cached model version: blobs, manifest, view.
  ModelMetadata add_model(const std::string& name, const std::string& version, const Files& files,
                          const std::string& source = "mem") {
    ModelMetadata m;
    m.name = name;
    m.version = version;
    m.format = "raw";
    for (const auto& [file, content] : files) {
      put_blob(content);
      m.files.push_back(info(file, content));
    }
    store_->write_manifest(m, source).value();
    store_->link_view(m).value();
    return m;
  }

  // A partial download of `content`'s first `have` bytes, left behind by a writer.
  std::string add_partial(const std::string& content, std::size_t have) {
    auto w = store_->begin(info("p", content)).value();
    EXPECT_NE(w, nullptr);
    w->write(content.data(), have).value();
    return Sha256::of(content);
  }

  fs::path blob(const std::string& content) const { return store_->blob_path(Sha256::of(content)); }
  fs::path manifest(const std::string& name, const std::string& version) const {
    return root_ / "manifests" / name / (version + ".json");
  }
  fs::path partial(const std::string& sha) const { return root_ / "tmp" / (sha + ".partial"); }
  fs::path lock(const std::string& sha) const { return root_ / "tmp" / (sha + ".lock"); }

  static void age(const fs::path& p, std::chrono::seconds by) {
    fs::last_write_time(p, fs::file_time_type::clock::now() - by);
  }

  // Overwrites the start of a (read-only) blob with garbage of the same length.
  static void corrupt(const fs::path& p) {
    fs::permissions(p, fs::perms::owner_write, fs::perm_options::add);
    auto size = fs::file_size(p);
    std::ofstream out(p, std::ios::binary | std::ios::in | std::ios::out);
    out << std::string(std::min<std::uintmax_t>(size, 4), '#');
  }

  fs::path base_, root_;
  std::unique_ptr<ContentStore> store_;
};

const admin::CachedVersion* find(const admin::CacheListing& l, const std::string& name, const std::string& version) {
  for (const auto& m : l.models)
    if (m.name == name && m.version == version) return &m;
  return nullptr;
}

// ---- list ---------------------------------------------------------------------------------

TEST_F(CacheAdminTest, ListShowsEveryVersionWithSizeSourceFilesAndLastUse) {
  add_model("demo/a", "1.0.0", {{"w.bin", "weights-a"}, {"cfg/c.json", "{}"}}, "mem");
  add_model("demo/a", "2.0.0", {{"w.bin", "weights-a2"}}, "local");
  add_model("demo/b", "0.1.0", {{"w.bin", "weights-a"}}, "other");  // shares a blob
  auto when = fs::file_time_type::clock::now() - 3h;
  fs::last_write_time(manifest("demo/a", "1.0.0"), when);

  auto l = admin::list_cache(root_);
  EXPECT_TRUE(l.exists);
  ASSERT_EQ(l.models.size(), 3u);
  EXPECT_EQ(l.models[0].name + ":" + l.models[0].version, "demo/a:2.0.0");  // newest first
  EXPECT_EQ(l.models[1].name + ":" + l.models[1].version, "demo/a:1.0.0");
  EXPECT_EQ(l.models[2].name + ":" + l.models[2].version, "demo/b:0.1.0");
  const auto* a1 = find(l, "demo/a", "1.0.0");
  ASSERT_NE(a1, nullptr);
  EXPECT_EQ(a1->size, std::string("weights-a").size() + 2);
  EXPECT_EQ(a1->source, "mem");
  EXPECT_EQ(a1->last_used, when);
  ASSERT_EQ(a1->files.size(), 2u);
  EXPECT_EQ(a1->files[0].name, "w.bin");
  EXPECT_EQ(a1->files[0].sha256, Sha256::of("weights-a"));
  EXPECT_EQ(a1->files[1].name, "cfg/c.json");
  EXPECT_TRUE(a1->complete);
  EXPECT_EQ(find(l, "demo/b", "0.1.0")->source, "other");
  EXPECT_TRUE(l.orphans.empty());
  EXPECT_TRUE(l.partials.empty());
  EXPECT_TRUE(l.problems.empty());

  // A missing view link makes a version incomplete; a missing blob too.
  fs::remove(store_->view_dir("demo/a", "1.0.0") / "cfg" / "c.json");
  fs::remove(blob("weights-a2"));
  l = admin::list_cache(root_);
  EXPECT_FALSE(find(l, "demo/a", "1.0.0")->complete);
  EXPECT_FALSE(find(l, "demo/a", "2.0.0")->complete);
  EXPECT_TRUE(find(l, "demo/b", "0.1.0")->complete);
}

TEST_F(CacheAdminTest, ListFindsOrphansAndPartialsAndWhetherTheyAreBeingReceived) {
  add_model("demo/a", "1.0.0", {{"w.bin", "kept"}});
  put_blob("orphan-one");
  put_blob("orphan-two!");
  std::string idle = add_partial("an idle partial download", 5);  // its writer is gone
  std::string busy_content = "a partial being received";
  auto busy = store_->begin(info("busy", busy_content)).value();
  ASSERT_NE(busy, nullptr);
  busy->write(busy_content.data(), 7).value();

  auto l = admin::list_cache(root_);
  ASSERT_EQ(l.orphans.size(), 2u);
  std::map<std::string, std::uint64_t> orphans;
  for (const auto& o : l.orphans) orphans[o.sha256] = o.size;
  EXPECT_EQ(orphans[Sha256::of("orphan-one")], 10u);
  EXPECT_EQ(orphans[Sha256::of("orphan-two!")], 11u);
  ASSERT_EQ(l.partials.size(), 2u);
  std::map<std::string, admin::PartialFile> partials;
  for (const auto& p : l.partials) partials[p.sha256] = p;
  EXPECT_EQ(partials[idle].size, 5u);
  EXPECT_FALSE(partials[idle].receiving);
  EXPECT_EQ(partials[Sha256::of(busy_content)].size, 7u);
  EXPECT_TRUE(partials[Sha256::of(busy_content)].receiving);

  // Listing only tested the lock: the receiver keeps it, and a second writer is refused.
  EXPECT_TRUE(store_->begin(info("busy", busy_content)).value() == nullptr);
  busy.reset();
  l = admin::list_cache(root_);
  for (const auto& p : l.partials) EXPECT_FALSE(p.receiving) << p.sha256;
}

TEST_F(CacheAdminTest, ListOfSomethingThatIsNotACacheIsEmptyAndCreatesNothing) {
  auto l = admin::list_cache(base_ / "nothing-here");
  EXPECT_FALSE(l.exists);
  EXPECT_TRUE(l.models.empty());
  EXPECT_FALSE(fs::exists(base_ / "nothing-here"));
  fs::create_directories(base_ / "plain" / "models" / "x");
  EXPECT_FALSE(admin::list_cache(base_ / "plain").exists);
  EXPECT_FALSE(fs::exists(base_ / "plain" / "blobs"));
}

TEST_F(CacheAdminTest, UnreadableManifestIsAProblemAndItsViewStillProtectsItsBlobs) {
  add_model("demo/a", "1.0.0", {{"w.bin", "protected"}});
  std::ofstream(manifest("demo/a", "1.0.0"), std::ios::trunc) << "{not json";
  age(blob("protected"), 24h);
  auto l = admin::list_cache(root_);
  EXPECT_TRUE(l.models.empty());
  ASSERT_EQ(l.problems.size(), 1u);
  EXPECT_THAT(l.problems[0].reason, HasSubstr("demo/a:1.0.0"));
  EXPECT_TRUE(l.orphans.empty());
  admin::prune_cache(root_);
  EXPECT_TRUE(fs::exists(blob("protected")));
}

// ---- verify -------------------------------------------------------------------------------

TEST_F(CacheAdminTest, VerifyReportsEveryCorruptBlobWithItsOwners) {
  add_model("demo/a", "1.0.0", {{"shared.bin", "shared content"}, {"a.bin", "content of a"}});
  add_model("demo/b", "2.0.0", {{"s.bin", "shared content"}, {"b.bin", "content of b"}});
  add_model("demo/c", "3.0.0", {{"c.bin", "content of c"}});
  put_blob("an orphan");
  corrupt(blob("shared content"));
  corrupt(blob("content of c"));
  corrupt(blob("an orphan"));

  std::vector<std::pair<std::uint64_t, std::uint64_t>> progress;
  admin::VerifyOptions opts;
  opts.on_progress = [&](std::uint64_t done, std::uint64_t total) { progress.emplace_back(done, total); };
  auto r = admin::verify_cache(root_, opts);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.blobs, 5u);
  ASSERT_EQ(r.corrupt.size(), 3u);
  std::map<std::string, admin::CorruptBlob> bad;
  for (const auto& c : r.corrupt) bad[c.expected] = c;
  const auto& shared = bad[Sha256::of("shared content")];
  EXPECT_EQ(shared.actual, Sha256::of("####ed content"));
  ASSERT_EQ(shared.owners.size(), 2u);
  EXPECT_EQ(shared.owners[0].name + ":" + shared.owners[0].version + " " + shared.owners[0].file,
            "demo/a:1.0.0 shared.bin");
  EXPECT_EQ(shared.owners[1].name + ":" + shared.owners[1].version + " " + shared.owners[1].file,
            "demo/b:2.0.0 s.bin");
  const auto& c = bad[Sha256::of("content of c")];
  ASSERT_EQ(c.owners.size(), 1u);
  EXPECT_EQ(c.owners[0].name, "demo/c");
  EXPECT_TRUE(bad[Sha256::of("an orphan")].owners.empty());
  for (const auto& [_, b] : bad) EXPECT_FALSE(b.removed);
  EXPECT_TRUE(fs::exists(blob("content of c")));  // only reported

  // Progress: from 0 to every byte, never backwards.
  ASSERT_GE(progress.size(), 2u);
  std::uint64_t total = 0;
  for (const auto& p : fs::directory_iterator(root_ / "blobs" / "sha256")) total += fs::file_size(p.path());
  EXPECT_EQ(progress.front(), std::make_pair(std::uint64_t{0}, total));
  EXPECT_EQ(progress.back(), std::make_pair(total, total));
  EXPECT_TRUE(std::is_sorted(progress.begin(), progress.end()));
  EXPECT_EQ(r.bytes, total);

  auto j = admin::to_json(r);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["corrupt"].size(), 3u);
}

TEST_F(CacheAdminTest, VerifyRemoveCorruptUncachesTheOwnerAndKeepsItsGoodFiles) {
  add_model("demo/a", "1.0.0", {{"a.bin", "content of a"}, {"ok.bin", "fine"}});
  add_model("demo/other", "1.0.0", {{"x.bin", "unrelated"}});
  corrupt(blob("content of a"));
  admin::VerifyOptions opts;
  opts.remove_corrupt = true;
  auto r = admin::verify_cache(root_, opts);
  EXPECT_FALSE(r.ok());  // it found damage, even though it cleaned it up
  ASSERT_EQ(r.corrupt.size(), 1u);
  EXPECT_TRUE(r.corrupt[0].removed);
  EXPECT_EQ(r.uncached, std::vector<std::string>{"demo/a:1.0.0"});
  EXPECT_FALSE(fs::exists(blob("content of a")));
  EXPECT_TRUE(fs::exists(blob("fine")));  // the next pull fetches only a.bin
  EXPECT_FALSE(fs::exists(manifest("demo/a", "1.0.0")));
  EXPECT_FALSE(fs::exists(root_ / "models" / "demo" / "a" / "1.0.0"));
  EXPECT_TRUE(fs::exists(manifest("demo/other", "1.0.0")));

  r = admin::verify_cache(root_);  // consistent again
  EXPECT_TRUE(r.ok());
  EXPECT_TRUE(r.missing.empty());
  EXPECT_TRUE(r.corrupt.empty());
}

TEST_F(CacheAdminTest, AModelWithAMissingBlobFailsVerificationNamingIt) {
  add_model("demo/a", "1.0.0", {{"a.bin", "content of a"}, {"ok.bin", "fine"}});
  fs::remove(blob("content of a"));
  auto r = admin::verify_cache(root_);
  EXPECT_FALSE(r.ok());
  ASSERT_EQ(r.missing.size(), 1u);
  EXPECT_EQ(r.missing[0].sha256, Sha256::of("content of a"));
  ASSERT_EQ(r.missing[0].owners.size(), 1u);
  EXPECT_EQ(r.missing[0].owners[0].name, "demo/a");
  EXPECT_EQ(r.missing[0].owners[0].file, "a.bin");
  EXPECT_FALSE(admin::to_json(r)["ok"].get<bool>());

  admin::VerifyOptions opts;
  opts.remove_corrupt = true;
  r = admin::verify_cache(root_, opts);
  EXPECT_EQ(r.uncached, std::vector<std::string>{"demo/a:1.0.0"});
  EXPECT_TRUE(admin::verify_cache(root_).ok());
  EXPECT_TRUE(fs::exists(blob("fine")));
}

TEST_F(CacheAdminTest, VerifyOfAnIntactCacheIsOk) {
  add_model("demo/a", "1.0.0", {{"a.bin", std::string(3 << 20, 'x')}});  // several 1 MiB reads
  auto r = admin::verify_cache(root_);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.blobs, 1u);
  EXPECT_EQ(r.bytes, 3u << 20);
  EXPECT_TRUE(r.missing.empty());
}

// ---- remove -------------------------------------------------------------------------------

TEST_F(CacheAdminTest, RemoveFreesOnlyBlobsNoOtherManifestUses) {
  add_model("demo/a", "1.0.0", {{"shared.bin", "shared!"}, {"a.bin", "only in a"}});
  add_model("demo/b", "1.0.0", {{"shared.bin", "shared!"}, {"b.bin", "only in b!"}});

  auto r = admin::remove_cached(root_, "demo/a");
  EXPECT_THAT(r.versions, ElementsAre("1.0.0"));
  EXPECT_EQ(r.blobs_removed, 1u);
  EXPECT_EQ(r.blobs_kept, 1u);
  EXPECT_EQ(r.bytes_freed, std::string("only in a").size());
  EXPECT_FALSE(fs::exists(blob("only in a")));
  EXPECT_TRUE(fs::exists(blob("shared!")));
  EXPECT_FALSE(fs::exists(manifest("demo/a", "1.0.0")));
  EXPECT_FALSE(fs::exists(root_ / "models" / "demo" / "a"));
  EXPECT_FALSE(fs::exists(root_ / "manifests" / "demo" / "a"));
  auto l = admin::list_cache(root_);
  ASSERT_EQ(l.models.size(), 1u);
  EXPECT_TRUE(l.models[0].complete);
  EXPECT_TRUE(l.orphans.empty());

  r = admin::remove_cached(root_, "demo/b", "1.0.0");
  EXPECT_EQ(r.blobs_removed, 2u);
  EXPECT_EQ(r.bytes_freed, std::string("shared!").size() + std::string("only in b!").size());
  EXPECT_TRUE(fs::is_empty(root_ / "blobs" / "sha256"));
  EXPECT_TRUE(fs::is_empty(root_ / "models"));
  EXPECT_TRUE(fs::is_empty(root_ / "manifests"));
}

TEST_F(CacheAdminTest, RemoveOneVersionKeepsTheOthers) {
  add_model("demo/a", "1.0.0", {{"w.bin", "v1"}, {"common.bin", "common"}});
  add_model("demo/a", "2.0.0", {{"w.bin", "v2"}, {"common.bin", "common"}});
  auto r = admin::remove_cached(root_, "demo/a", "1.0.0");
  EXPECT_EQ(r.bytes_freed, 2u);
  EXPECT_TRUE(fs::exists(blob("common")));
  EXPECT_TRUE(fs::exists(manifest("demo/a", "2.0.0")));
  auto l = admin::list_cache(root_);
  ASSERT_EQ(l.models.size(), 1u);
  EXPECT_EQ(l.models[0].version, "2.0.0");
  EXPECT_TRUE(l.models[0].complete);

  r = admin::remove_cached(root_, "demo/a");  // every version left
  EXPECT_THAT(r.versions, ElementsAre("2.0.0"));
  EXPECT_TRUE(admin::list_cache(root_).models.empty());
}

TEST_F(CacheAdminTest, RemoveDoesNotTouchAModelNestedInsideTheView) {
  // "demo/a/1.0.0" is a valid model name: its view lives inside demo/a:1.0.0's view.
  add_model("demo/a", "1.0.0", {{"w.bin", "outer"}});
  add_model("demo/a/1.0.0", "2.0.0", {{"w.bin", "inner"}});
  admin::remove_cached(root_, "demo/a", "1.0.0");
  auto l = admin::list_cache(root_);
  ASSERT_EQ(l.models.size(), 1u);
  EXPECT_EQ(l.models[0].name, "demo/a/1.0.0");
  EXPECT_TRUE(l.models[0].complete);
  EXPECT_FALSE(fs::exists(root_ / "models" / "demo" / "a" / "1.0.0" / "w.bin"));
}

TEST_F(CacheAdminTest, RemoveOfAnUnknownModelNamesIt) {
  add_model("demo/a", "1.0.0", {{"w.bin", "x"}});
  try {
    admin::remove_cached(root_, "demo/nope");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_THAT(e.what(), HasSubstr("demo/nope"));
  }
  try {
    admin::remove_cached(root_, "demo/a", "9.9.9");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_THAT(e.what(), HasSubstr("demo/a:9.9.9"));
    EXPECT_THAT(e.what(), HasSubstr("1.0.0"));  // what is cached
  }
  EXPECT_EQ(admin::list_cache(root_).models.size(), 1u);
}

TEST_F(CacheAdminTest, HostileNamesAreRefusedBeforeBecomingPaths) {
  add_model("demo/a", "1.0.0", {{"w.bin", "x"}});
  // Things outside the cache that a path built from these names would reach.
  fs::create_directories(base_ / "victim");
  std::ofstream(base_ / "victim" / "1.0.0.json") << "{}";
  fs::create_directories(root_ / "victim");
  for (const std::string& name : std::vector<std::string>{"../victim", "demo/../../victim", "/etc", "demo//a",
                                                          ".hidden", "", "a\\b", std::string("demo/a\0x", 8)}) {
    try {
      admin::remove_cached(root_, name);
      ADD_FAILURE() << "accepted '" << name << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request) << name;
    }
  }
  for (const std::string& version : std::vector<std::string>{"../../1.0.0", "1.0", "1.0.0/..", "x"}) {
    try {
      admin::remove_cached(root_, "demo/a", version);
      ADD_FAILURE() << "accepted version '" << version << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request) << version;
    }
  }
  EXPECT_TRUE(fs::exists(base_ / "victim" / "1.0.0.json"));
  EXPECT_TRUE(fs::exists(root_ / "victim"));
  EXPECT_EQ(admin::list_cache(root_).models.size(), 1u);
}

TEST_F(CacheAdminTest, RemoveRefusesAViewDirectoryLeadingOutOfTheCache) {
  add_model("evil/a", "1.0.0", {{"w.bin", "x"}});
  fs::remove_all(root_ / "models" / "evil");
  fs::create_directories(base_ / "outside" / "a" / "1.0.0");
  std::ofstream(base_ / "outside" / "a" / "1.0.0" / "precious") << "keep me";
  fs::create_directory_symlink(base_ / "outside", root_ / "models" / "evil");
  try {
    admin::remove_cached(root_, "evil/a");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::internal);
    EXPECT_THAT(e.what(), HasSubstr("leads out of the cache"));
  }
  EXPECT_TRUE(fs::exists(base_ / "outside" / "a" / "1.0.0" / "precious"));
  EXPECT_TRUE(fs::exists(manifest("evil/a", "1.0.0")));  // refused before deleting anything
}

// ---- prune --------------------------------------------------------------------------------

TEST_F(CacheAdminTest, PruneDeletesOldOrphansButNeverYoungOnes) {
  add_model("demo/a", "1.0.0", {{"w.bin", "in use"}});
  age(blob("in use"), 48h);
  put_blob("old orphan");
  age(blob("old orphan"), 1h);
  put_blob("young orphan");
  age(blob("young orphan"), 9min);  // inside the 10 minute grace period

  auto r = admin::prune_cache(root_);
  EXPECT_EQ(r.blobs_removed, 1u);
  EXPECT_EQ(r.blob_bytes_freed, std::string("old orphan").size());
  EXPECT_EQ(r.blobs_kept_recent, 1u);
  EXPECT_EQ(r.bytes_freed(), r.blob_bytes_freed);
  EXPECT_FALSE(fs::exists(blob("old orphan")));
  EXPECT_TRUE(fs::exists(blob("young orphan")));
  EXPECT_TRUE(fs::exists(blob("in use")));

  age(blob("young orphan"), admin::kBlobGracePeriod + 1s);
  r = admin::prune_cache(root_);
  EXPECT_EQ(r.blobs_removed, 1u);
  EXPECT_FALSE(fs::exists(blob("young orphan")));
  EXPECT_TRUE(admin::list_cache(root_).models[0].complete);
}

TEST_F(CacheAdminTest, PruneNeverTouchesAPartialBeingReceivedNorAPinnedOrphan) {
  put_blob("first file of a pull");
  age(blob("first file of a pull"), 3h);
  auto pin = store_->pin("pull demo/a:1.0.0").value();
  EXPECT_TRUE(pin->hold(Sha256::of("first file of a pull")).value());
  std::string second = "second file, still arriving";
  auto w = store_->begin(info("second", second)).value();
  ASSERT_NE(w, nullptr);
  w->write(second.data(), 3).value();

  auto r = admin::prune_cache(root_, {std::chrono::seconds(0)});
  EXPECT_EQ(r.blobs_removed, 0u);
  EXPECT_EQ(r.blobs_kept_in_use, 1u);
  EXPECT_EQ(r.partials_removed, 0u);  // held, even with --all
  EXPECT_EQ(r.partials_kept, 1u);
  EXPECT_TRUE(fs::exists(blob("first file of a pull")));
  EXPECT_TRUE(fs::exists(partial(Sha256::of(second))));
  w->write(second.data() + 3, second.size() - 3).value();  // the receiver was not disturbed
  w->commit().value();
  w.reset();
  pin.reset();  // the pull ended without a manifest (failed): its blobs are orphans now

  r = admin::prune_cache(root_);
  EXPECT_EQ(r.blobs_removed, 1u);  // the second blob is younger than the grace period
  EXPECT_EQ(r.blobs_kept_recent, 1u);
  EXPECT_FALSE(fs::exists(blob("first file of a pull")));
}

// The interleaving, at the level of the cache: pull b counted shared.bin present
// (pinned it), then `cache rm a` and `cache rm b` ran before b's manifest existed.
TEST_F(CacheAdminTest, RemoveOfEveryOwnerKeepsABlobAPullInProgressHolds) {
  add_model("m-share/a", "1.0.0", {{"big.bin", "big a"}, {"shared.bin", "shared"}});
  add_model("m-share/b", "1.0.0", {{"other.bin", "other b"}, {"shared.bin", "shared"}});
  auto pin = store_->pin("pull m-share/b:1.0.0").value();
  EXPECT_TRUE(pin->hold(Sha256::of("shared")).value());
  EXPECT_TRUE(pin->hold(Sha256::of("other b")).value());

  auto ra = admin::remove_cached(root_, "m-share/a");
  EXPECT_EQ(ra.blobs_removed, 1u);  // big.bin
  EXPECT_EQ(ra.blobs_kept, 1u);     // shared.bin: b's manifest still lists it
  auto rb = admin::remove_cached(root_, "m-share/b");
  EXPECT_EQ(rb.blobs_removed, 0u);
  EXPECT_EQ(rb.blobs_kept_in_use, 2u);
  EXPECT_TRUE(fs::exists(blob("shared")));
  EXPECT_TRUE(fs::exists(blob("other b")));
  EXPECT_EQ(admin::to_json(rb)["blobs_kept_in_use"], 2);
  // Nothing was left half-removed.
  for (const auto& e : fs::directory_iterator(root_ / "tmp")) EXPECT_NE(e.path().extension(), ".removing") << e.path();

  pin.reset();
  EXPECT_TRUE(admin::pinned_blobs(root_).empty());
  EXPECT_TRUE(store_->remove_unreferenced_blob(Sha256::of("shared")));
}

TEST_F(CacheAdminTest, ReleasedPinsAndPinsOfDeadHoldersHoldNothing) {
  put_blob("x");
  auto pin = store_->pin("load demo/x:1.0.0").value();
  pin->hold(Sha256::of("x")).value();
  pin->hold(Sha256::of("y")).value();
  EXPECT_EQ(admin::pinned_blobs(root_).size(), 2u);
  pin->release({Sha256::of("y")});
  EXPECT_EQ(admin::pinned_blobs(root_), std::set<std::string>{Sha256::of("x")});
  EXPECT_FALSE(store_->remove_unreferenced_blob(Sha256::of("x")));

  // A holder killed with its pin: the kernel drops its lock; the pin lapses at once.
  fs::path child_pin;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ContentStore store(root_);
    auto p = store.pin("pull demo/killed:1.0.0").value();
    p->hold(Sha256::of("z")).value();
    std::string path = p->path().string();
    (void)!::write(pipe_fds[1], path.data(), path.size());
    ::_exit(0);  // no destructor: the file stays, as after SIGKILL
  }
  ::close(pipe_fds[1]);
  char buf[4096];
  ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
  ::close(pipe_fds[0]);
  ASSERT_GT(n, 0);
  child_pin = std::string(buf, static_cast<std::size_t>(n));
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(fs::exists(child_pin));
  EXPECT_FALSE(admin::pinned_blobs(root_).count(Sha256::of("z")));
  auto r = admin::prune_cache(root_);
  EXPECT_EQ(r.pins_removed, 1u);
  EXPECT_FALSE(fs::exists(child_pin));
  EXPECT_TRUE(fs::exists(pin->path()));  // the live one stays
  fs::path live = pin->path();
  pin.reset();
  EXPECT_FALSE(fs::exists(live));
}

TEST_F(CacheAdminTest, ABlobAKilledRemoverLeftAsideGoesBackWhenStillNeeded) {
  add_model("demo/a", "1.0.0", {{"a.bin", "needed"}});
  put_blob("garbage");
  // A remover killed between its move and its decision.
  fs::path aside = root_ / "tmp" / (Sha256::of("needed") + ".0123456789abcdef.removing");
  fs::path junk = root_ / "tmp" / (Sha256::of("garbage") + ".0123456789abcdef.removing");
  fs::rename(blob("needed"), aside);
  fs::rename(blob("garbage"), junk);
  age(aside, 2min);
  age(junk, 2min);
  EXPECT_FALSE(admin::verify_cache(root_).ok());
  auto r = admin::prune_cache(root_);
  EXPECT_EQ(r.blobs_restored, 1u);
  EXPECT_TRUE(fs::exists(blob("needed")));
  EXPECT_FALSE(fs::exists(aside));
  EXPECT_FALSE(fs::exists(junk));
  EXPECT_FALSE(fs::exists(blob("garbage")));
  EXPECT_TRUE(admin::verify_cache(root_).ok());
}

TEST_F(CacheAdminTest, ModelsRemovedDuringAScanNeverHideTheOthersFromRemovers) {
  // Stable models among siblings that another remover deletes and a pull recreates
  // throughout: every listing must show the stable ones, and a remover asked to delete
  // their blobs must keep them all. A walk that stopped at the first directory vanishing
  // under it missed about one stable model in thirty and deleted blobs they list.
  std::vector<std::string> stable_blobs;
  for (int i = 0; i < 8; ++i) {
    const std::string tag = std::to_string(i);
    add_model(std::string("g").append(tag).append("/stable"), "1.0.0", {{"w.bin", std::string("stable ").append(tag)}});
    stable_blobs.push_back(Sha256::of(std::string("stable ").append(tag)));
  }
  const std::string manifest_text = [&] {
    std::ifstream in(manifest("g0/stable", "1.0.0"));
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    for (unsigned k = 0; !stop; ++k) {
      // Siblings before, between and after the stable ones, at both depths.
      for (const char* top : {"a", "g3", "m", "z"}) {
        fs::path dir = root_ / "manifests" / top / std::string("churn").append(std::to_string(k % 4));
        std::error_code ec;
        fs::create_directories(dir / "deeper", ec);
        std::ofstream(dir / "1.0.0.json") << manifest_text;
        std::ofstream(dir / "deeper" / "1.0.0.json") << manifest_text;
      }
      for (const char* top : {"a", "g3", "m", "z"}) {
        std::error_code ec;
        fs::remove_all(root_ / "manifests" / top / std::string("churn").append(std::to_string((k + 2) % 4)), ec);
      }
    }
  });
  // At least 3 s and 100 rounds (the old walk failed within 20), at most 60 s on a slow build.
  const auto start = std::chrono::steady_clock::now();
  auto more = [&](int rounds) {
    auto t = std::chrono::steady_clock::now() - start;
    return t < 60s && (t < 3s || rounds < 100);
  };
  int rounds = 0, missed = 0, removed = 0;
  while (more(rounds) && missed == 0 && removed == 0) {
    ++rounds;
    auto l = admin::list_cache(root_);
    for (int i = 0; i < 8; ++i)
      if (!find(l, std::string("g").append(std::to_string(i)).append("/stable"), "1.0.0")) ++missed;
    removed += static_cast<int>(admin::remove_blobs_if_unused(root_, stable_blobs).removed.size());
  }
  stop = true;
  churn.join();
  EXPECT_EQ(missed, 0) << "after " << rounds << " rounds";
  EXPECT_EQ(removed, 0) << "after " << rounds << " rounds";
  for (const auto& hex : stable_blobs) EXPECT_TRUE(fs::exists(store_->blob_path(hex))) << hex;
}

TEST_F(CacheAdminTest, AManifestDirectoryThatCannotBeReadStopsRemoversWithItsName) {
  add_model("demo/a", "1.0.0", {{"a.bin", "in a"}});
  add_model("demo/b", "1.0.0", {{"b.bin", "in b"}});
  put_blob("orphan");
  age(blob("orphan"), 2h);
  const fs::path hidden = root_ / "manifests" / "demo";
  // Root reads any directory: then the prune runs in a child that is the cache's owner, nobody.
  const bool as_root = ::geteuid() == 0;
  if (as_root) {
    for (const auto& e : fs::recursive_directory_iterator(base_)) ASSERT_EQ(::lchown(e.path().c_str(), 65534, 65534), 0);
    ASSERT_EQ(::chown(base_.c_str(), 65534, 65534), 0);
  }
  fs::permissions(hidden, fs::perms::owner_all, fs::perm_options::remove);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (as_root && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    try {
      admin::prune_cache(root_);
      ::_exit(1);  // went on without reading every manifest
    } catch (const Error& e) {
      ::_exit(std::string(e.what()).find(hidden.string()) != std::string::npos ? 0 : 2);
    } catch (...) {
      ::_exit(4);
    }
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "0: refused naming the directory, 1: pruned anyway, 2: error without its name, 3: cannot become nobody, 4: "
         "another exception; got status "
      << status;
  fs::permissions(hidden, fs::perms::owner_all, fs::perm_options::add);
  EXPECT_TRUE(fs::exists(blob("in a")));
  EXPECT_TRUE(fs::exists(blob("in b")));
  auto r = admin::prune_cache(root_);
  EXPECT_EQ(r.blobs_removed, 1u);
  EXPECT_FALSE(fs::exists(blob("orphan")));
}

// ---- space --------------------------------------------------------------------------------

TEST_F(CacheAdminTest, MakeRoomFreesIdlePartialsThenOrphansThenLeastRecentlyUsedModels) {
  const std::string big(1000, 'b');
  add_model("demo/old", "1.0.0", {{"f", std::string(3000, 'o')}});
  add_model("demo/recent", "1.0.0", {{"f", std::string(3000, 'r')}});
  add_model("demo/pinned", "1.0.0", {{"f", std::string(3000, 'p')}});
  age(manifest("demo/old", "1.0.0"), 3h);
  age(manifest("demo/recent", "1.0.0"), 1h);
  age(manifest("demo/pinned", "1.0.0"), 5h);  // oldest, but in use
  auto pin = store_->pin("load demo/pinned:1.0.0").value();
  pin->hold(Sha256::of(std::string(3000, 'p'))).value();
  put_blob(std::string(2000, 'x'));          // an orphan
  add_partial(std::string(4000, 'q'), 1500);  // an idle partial
  // 9000 in models + 2000 orphan + 1500 partial = 12500.
  admin::SpacePolicy policy{12500 + 100, 0};

  admin::SpaceRequest small{50, {}, {}};
  auto out = admin::make_room(root_, small, policy);
  EXPECT_TRUE(out.ok());
  EXPECT_EQ(out.bytes_freed, 0u);  // it fits: nothing touched

  admin::SpaceRequest req{1700, {}, {}};  // needs 1600 more: the partial (1500), then the orphan
  out = admin::make_room(root_, req, policy);
  EXPECT_TRUE(out.ok()) << out.describe();
  EXPECT_EQ(out.partials_removed, 1u);
  EXPECT_EQ(out.blobs_removed, 1u);
  EXPECT_TRUE(out.evicted.empty());
  EXPECT_FALSE(fs::exists(blob(std::string(2000, 'x'))));

  admin::SpaceRequest more{4000, {}, {"demo/recent:1.0.0"}};  // 9000 + 4000 > 9100: evict 3000+
  out = admin::make_room(root_, more, policy);
  EXPECT_TRUE(out.ok()) << out.describe();
  EXPECT_EQ(out.evicted, std::vector<std::string>{"demo/old:1.0.0"});  // not pinned, not the kept one
  EXPECT_TRUE(fs::exists(manifest("demo/pinned", "1.0.0")));
  EXPECT_TRUE(fs::exists(manifest("demo/recent", "1.0.0")));

  admin::SpaceRequest huge{100000, {}, {}};
  out = admin::make_room(root_, huge, policy);
  EXPECT_FALSE(out.ok());
  EXPECT_NE(out.describe().find("needs 97.7 KiB"), std::string::npos) << out.describe();
  EXPECT_NE(out.describe().find("cache.max_size"), std::string::npos) << out.describe();
  EXPECT_TRUE(fs::exists(manifest("demo/pinned", "1.0.0")));  // never one in use
}

TEST_F(CacheAdminTest, WithoutALimitMakeRoomEvictsNoModelAndNamesWhatCouldBeFreed) {
  add_model("demo/a", "1.0.0", {{"f", std::string(3000, 'a')}});
  // More than any filesystem has free: the shortfall cannot be met.
  admin::SpaceRequest req{std::uint64_t{1} << 62, {}, {}};
  auto out = admin::make_room(root_, req, {});
  EXPECT_FALSE(out.ok());
  EXPECT_TRUE(out.evicted.empty());
  EXPECT_TRUE(fs::exists(manifest("demo/a", "1.0.0")));
  std::string text = out.describe();
  EXPECT_NE(text.find("free on /"), std::string::npos) << text;
  EXPECT_NE(text.find("modelzoo cache rm demo/a:1.0.0"), std::string::npos) << text;
}

TEST_F(CacheAdminTest, PruneDeletesIdlePartialsByAgeAndAllWithAll) {
  std::string old_sha = add_partial("an old partial download", 6);
  age(partial(old_sha), admin::kDefaultPartialRetention + 1h);
  std::string young_sha = add_partial("a young partial download", 4);
  age(partial(young_sha), 2h);

  auto r = admin::prune_cache(root_);
  EXPECT_EQ(r.partials_removed, 1u);
  EXPECT_EQ(r.partial_bytes_freed, 6u);
  EXPECT_EQ(r.partials_kept, 1u);
  EXPECT_FALSE(fs::exists(partial(old_sha)));
  EXPECT_FALSE(fs::exists(lock(old_sha)));
  EXPECT_TRUE(fs::exists(partial(young_sha)));

  r = admin::prune_cache(root_, {std::chrono::seconds(0)});  // --all
  EXPECT_EQ(r.partials_removed, 1u);
  EXPECT_EQ(r.partial_bytes_freed, 4u);
  EXPECT_EQ(r.bytes_freed(), 4u);
  EXPECT_FALSE(fs::exists(partial(young_sha)));
  EXPECT_TRUE(fs::is_empty(root_ / "tmp"));
}

TEST_F(CacheAdminTest, PruneDeletesStrayLockFilesNobodyHolds) {
  std::string sha = Sha256::of("whatever");
  std::ofstream(lock(sha)) << "";
  std::string held_content = "held lock";
  auto w = store_->begin(info("h", held_content)).value();  // its partial exists: not stray
  ASSERT_NE(w, nullptr);
  auto r = admin::prune_cache(root_);
  EXPECT_EQ(r.locks_removed, 1u);
  EXPECT_FALSE(fs::exists(lock(sha)));
  EXPECT_TRUE(fs::exists(lock(Sha256::of(held_content))));
  EXPECT_TRUE(fs::exists(partial(Sha256::of(held_content))));
}

TEST_F(CacheAdminTest, PruneRemovesOldEmptyDirectoriesOnly) {
  add_model("demo/a", "1.0.0", {{"w.bin", "x"}});
  fs::create_directories(root_ / "models" / "old" / "deep" / "1.0.0");
  fs::create_directories(root_ / "manifests" / "old" / "deep");
  fs::create_directories(root_ / "models" / "fresh" / "1.0.0");  // a daemon may be about to fill it
  age(root_ / "models" / "old" / "deep" / "1.0.0", 1h);
  age(root_ / "manifests" / "old" / "deep", 1h);

  auto r = admin::prune_cache(root_);
  // models/old/deep/1.0.0, then models/old/deep and models/old which it emptied; manifests/old/deep, manifests/old.
  EXPECT_EQ(r.dirs_removed, 5u);
  EXPECT_FALSE(fs::exists(root_ / "models" / "old"));
  EXPECT_FALSE(fs::exists(root_ / "manifests" / "old"));
  EXPECT_TRUE(fs::exists(root_ / "models" / "fresh" / "1.0.0"));
  EXPECT_TRUE(fs::exists(root_ / "models"));
  EXPECT_TRUE(fs::exists(root_ / "manifests"));
  auto l = admin::list_cache(root_);
  ASSERT_EQ(l.models.size(), 1u);
  EXPECT_TRUE(l.models[0].complete);
}

TEST_F(CacheAdminTest, PruneLeavesADirectoryThatIsNotACacheAlone) {
  fs::create_directories(base_ / "project" / "models" / "empty");
  age(base_ / "project" / "models" / "empty", 24h);
  auto r = admin::prune_cache(base_ / "project");
  EXPECT_EQ(r.dirs_removed, 0u);
  EXPECT_TRUE(fs::exists(base_ / "project" / "models" / "empty"));
  EXPECT_EQ(admin::prune_cache(base_ / "missing").dirs_removed, 0u);
}

// ---- JSON ---------------------------------------------------------------------------------

TEST_F(CacheAdminTest, ListingJsonHasTheFieldsTheCliPrints) {
  add_model("demo/a", "1.0.0", {{"w.bin", "abc"}}, "mem");
  put_blob("orphan");
  add_partial("partial content", 2);
  auto now = fs::file_time_type::clock::now();
  fs::last_write_time(manifest("demo/a", "1.0.0"), now - 90s);
  auto j = admin::to_json(admin::list_cache(root_), now);
  EXPECT_EQ(j["cache_dir"], root_.string());
  ASSERT_EQ(j["models"].size(), 1u);
  const auto& m = j["models"][0];
  EXPECT_EQ(m["name"], "demo/a");
  EXPECT_EQ(m["version"], "1.0.0");
  EXPECT_EQ(m["size"], 3);
  EXPECT_EQ(m["source"], "mem");
  EXPECT_EQ(m["complete"], true);
  EXPECT_EQ(m["last_used_ms_ago"], 90000);
  EXPECT_THAT(m["last_used"].get<std::string>(),
              testing::MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z"));
  EXPECT_EQ(m["files"][0]["sha256"], Sha256::of("abc"));
  EXPECT_EQ(j["orphans"][0]["sha256"], Sha256::of("orphan"));
  EXPECT_EQ(j["orphans"][0]["size"], 6);
  EXPECT_EQ(j["partials"][0]["size"], 2);
  EXPECT_EQ(j["partials"][0]["receiving"], false);
  EXPECT_EQ(j["totals"]["models"], 3);
}

TEST(CacheAdmin, DefaultCacheDirFollowsTheDaemonsRules) {
  auto saved = [](const char* n) {
    const char* v = std::getenv(n);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  auto cache = saved("MODELZOO_CACHE_DIR"), xdg = saved("XDG_CACHE_HOME"), home = saved("HOME");
  ::setenv("MODELZOO_CACHE_DIR", "/x/cache", 1);
  ::setenv("XDG_CACHE_HOME", "/x/xdg", 1);
  ::setenv("HOME", "/x/home", 1);
  EXPECT_EQ(admin::default_cache_dir(), fs::path("/x/cache"));
  ::unsetenv("MODELZOO_CACHE_DIR");
  EXPECT_EQ(admin::default_cache_dir(), fs::path("/x/xdg/modelzoo"));
  ::setenv("XDG_CACHE_HOME", "", 1);
  EXPECT_EQ(admin::default_cache_dir(), fs::path("/x/home/.cache/modelzoo"));
  auto restore = [](const char* n, const std::optional<std::string>& v) {
    if (v) ::setenv(n, v->c_str(), 1);
    else ::unsetenv(n);
  };
  restore("MODELZOO_CACHE_DIR", cache);
  restore("XDG_CACHE_HOME", xdg);
  restore("HOME", home);
}

}  // namespace

// A manifest is written with no name until it is whole: nothing hidden is ever left beside
// it, whether it is new or replaces one. What a killed writer of an older daemon (or one on a
// filesystem without O_TMPFILE) left is removed once it is a minute old, never sooner, and
// nothing else hidden is touched.
TEST_F(CacheAdminTest, WritingAManifestLeavesNoTemporaryAndKilledWritersTemporariesAreCleaned) {
  ModelMetadata m = add_model("demo/t", "1.0.0", {{"a", "alpha"}});
  store_->write_manifest(m, "again").value();  // replaces: through a named temporary, renamed
  const fs::path dir = manifest("demo/t", "1.0.0").parent_path();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"1.0.0.json"});
  EXPECT_EQ(admin::list_cache(root_).models.at(0).source, "again");

  const fs::path old_manifest = dir / ".1.0.0.json.0123456789abcdef";
  const fs::path young_manifest = dir / ".2.0.0.json.fedcba9876543210";
  const fs::path old_link = root_ / "models" / "demo/t" / "1.0.0" / ".a.00000000deadbeef.link";
  const fs::path not_ours = dir / ".keep-me";
  std::ofstream(old_manifest) << "{";
  std::ofstream(young_manifest) << "{";
  std::ofstream(not_ours) << "x";
  fs::create_symlink("../../../../blobs/sha256/x", old_link);
  age(old_manifest, std::chrono::seconds(61));
  age(not_ours, std::chrono::seconds(3600));
  struct timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 120, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, old_link.c_str(), times, AT_SYMLINK_NOFOLLOW), 0);

  admin::clean_leftovers(root_);
  EXPECT_FALSE(fs::exists(fs::symlink_status(old_manifest)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(old_link)));
  EXPECT_TRUE(fs::exists(young_manifest));  // may be a live writer's
  EXPECT_TRUE(fs::exists(not_ours));
  EXPECT_TRUE(fs::exists(manifest("demo/t", "1.0.0")));
  EXPECT_TRUE(admin::verify_cache(root_).ok());
}
