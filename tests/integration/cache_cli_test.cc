// `modelzoo cache ...` and `modelzoo load` against a real daemon and its real cache: the CLI
// finds the cache through the daemon's status, lists, verifies, removes; load prints the path.
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

int exit_code(const Run& r) { return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1; }

nlohmann::json parse(const Run& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "): " << r.out;
    return nullptr;
  }
}

// The last line of `out`, without its newline.
std::string last_line(std::string out) {
  if (!out.empty() && out.back() == '\n') out.pop_back();
  auto nl = out.rfind('\n');
  return nl == std::string::npos ? out : out.substr(nl + 1);
}

// Overwrites the start of a (read-only) blob with garbage of the same length.
void corrupt(const fs::path& blob) {
  fs::permissions(blob, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream out(blob, std::ios::binary | std::ios::in | std::ios::out);
  out << "garbage!";
}

class CacheCli : public ::testing::Test {
 protected:
  CacheCli() : daemon_(std::string(kFastTimers) + "sources:\n" + memory_source("mem", 0, "demo/cache")) {}
  void SetUp() override { daemon_.wait_plugin("mem"); }

  std::string cli() const {
    return (bin_dir() / "modelzoo").string() + " --runtime-dir " + daemon_.runtime_dir().string();
  }
  fs::path blob(const std::string& sha) const { return daemon_.cache_dir() / "blobs" / "sha256" / sha; }

  Daemon daemon_;
};

TEST_F(CacheCli, LsFindsTheDaemonsCacheAndListsAPulledModel) {
  auto pulled = daemon_.client().pull("demo/cache");
  const std::string sha = pulled["files"][0]["sha256"];

  auto ls = run(cli() + " cache ls --json 2>/dev/null");
  ASSERT_EQ(exit_code(ls), 0) << ls.out;
  auto j = parse(ls);
  EXPECT_EQ(j["cache_dir"], daemon_.cache_dir().string());  // from the daemon's status
  ASSERT_EQ(j["models"].size(), 1u) << ls.out;
  const auto& m = j["models"][0];
  EXPECT_EQ(m["name"], "demo/cache");
  EXPECT_EQ(m["version"], "1.0.0");
  EXPECT_EQ(m["source"], "mem");
  EXPECT_EQ(m["size"], 65536);
  EXPECT_EQ(m["complete"], true);
  EXPECT_EQ(m["files"][0]["name"], "weights.bin");
  EXPECT_EQ(m["files"][0]["sha256"], sha);
  EXPECT_TRUE(j["orphans"].empty());
  EXPECT_TRUE(j["partials"].empty());

  // The human table.
  auto table = run(cli() + " cache ls");
  EXPECT_EQ(exit_code(table), 0) << table.out;
  EXPECT_NE(table.out.find("MODEL"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("demo/cache  1.0.0    64.0 KiB"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("complete"), std::string::npos) << table.out;

  // Without a daemon: --cache-dir, else $MODELZOO_CACHE_DIR.
  std::string no_daemon = (bin_dir() / "modelzoo").string() + " --runtime-dir " + (daemon_.dir() / "none").string();
  auto by_option = run(no_daemon + " cache ls --json --cache-dir " + daemon_.cache_dir().string() + " 2>/dev/null");
  ASSERT_EQ(exit_code(by_option), 0) << by_option.out;
  EXPECT_EQ(parse(by_option)["models"].size(), 1u);
  auto by_env =
      run("MODELZOO_CACHE_DIR=" + daemon_.cache_dir().string() + " " + no_daemon + " cache ls --json 2>/dev/null");
  ASSERT_EQ(exit_code(by_env), 0) << by_env.out;
  EXPECT_EQ(parse(by_env)["cache_dir"], daemon_.cache_dir().string());
}

TEST_F(CacheCli, VerifyNamesTheModelOfACorruptBlobAndCanRemoveIt) {
  auto pulled = daemon_.client().pull("demo/cache");
  const std::string sha = pulled["files"][0]["sha256"];
  auto clean = run(cli() + " cache verify");
  EXPECT_EQ(exit_code(clean), 0) << clean.out;
  EXPECT_NE(clean.out.find("all intact"), std::string::npos) << clean.out;

  corrupt(blob(sha));
  auto bad = run(cli() + " cache verify 2>/dev/null");
  EXPECT_EQ(exit_code(bad), 1) << bad.out;
  EXPECT_NE(bad.out.find("corrupt: " + sha), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("demo/cache:1.0.0 (weights.bin)"), std::string::npos) << bad.out;
  EXPECT_TRUE(fs::exists(blob(sha)));

  auto json_report = run(cli() + " cache verify --json 2>/dev/null");
  EXPECT_EQ(exit_code(json_report), 1) << json_report.out;
  auto j = parse(json_report);
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["corrupt"].size(), 1u);
  EXPECT_EQ(j["corrupt"][0]["sha256"], sha);
  EXPECT_EQ(j["corrupt"][0]["owners"][0]["name"], "demo/cache");

  auto removed = run(cli() + " cache verify --remove-corrupt 2>/dev/null");
  EXPECT_EQ(exit_code(removed), 1) << removed.out;
  EXPECT_FALSE(fs::exists(blob(sha)));

  // The next pull fetches it again, and the cache verifies.
  auto again = daemon_.client().pull("demo/cache");
  EXPECT_EQ(again["cached"], false);
  EXPECT_TRUE(fs::exists(blob(sha)));
  auto fixed = run(cli() + " cache verify 2>/dev/null");
  EXPECT_EQ(exit_code(fixed), 0) << fixed.out;
}

TEST_F(CacheCli, RmRemovesTheModelAndFreesItsBlob) {
  auto pulled = daemon_.client().pull("demo/cache");
  const std::string sha = pulled["files"][0]["sha256"];
  ASSERT_TRUE(fs::exists(blob(sha)));

  auto rm = run(cli() + " cache rm demo/cache:1.0.0 --json 2>/dev/null");
  ASSERT_EQ(exit_code(rm), 0) << rm.out;
  auto r = parse(rm);
  EXPECT_EQ(r["versions"], nlohmann::json::array({"1.0.0"}));
  EXPECT_EQ(r["bytes_freed"], 65536);
  EXPECT_FALSE(fs::exists(blob(sha)));
  EXPECT_FALSE(fs::exists(daemon_.cache_dir() / "models" / "demo" / "cache" / "1.0.0"));

  auto ls = run(cli() + " cache ls --json 2>/dev/null");
  auto j = parse(ls);
  EXPECT_TRUE(j["models"].empty()) << ls.out;
  EXPECT_TRUE(j["orphans"].empty()) << ls.out;

  auto missing = run(cli() + " cache rm demo/cache");
  EXPECT_EQ(exit_code(missing), 1) << missing.out;
  EXPECT_NE(missing.out.find("not_found"), std::string::npos) << missing.out;
  EXPECT_NE(missing.out.find("demo/cache"), std::string::npos) << missing.out;
  auto hostile = run(cli() + " cache rm ../../etc");
  EXPECT_EQ(exit_code(hostile), 1) << hostile.out;
  EXPECT_NE(hostile.out.find("bad_request"), std::string::npos) << hostile.out;

  auto prune = run(cli() + " cache prune --all --json 2>/dev/null");
  EXPECT_EQ(exit_code(prune), 0) << prune.out;
  EXPECT_EQ(parse(prune)["blobs_removed"], 0);
}

TEST_F(CacheCli, LoadPrintsThePathLastAndJsonCarriesTheMetadata) {
  auto load = run(cli() + " load demo/cache 2>/dev/null");
  ASSERT_EQ(exit_code(load), 0) << load.out;
  const fs::path view = daemon_.cache_dir() / "models" / "demo" / "cache" / "1.0.0";
  EXPECT_EQ(last_line(load.out), view.string()) << load.out;
  EXPECT_TRUE(fs::exists(view / "weights.bin"));

  auto summary = run(cli() + " load demo/cache:1.0.0");
  EXPECT_EQ(exit_code(summary), 0) << summary.out;
  EXPECT_NE(summary.out.find("loaded demo/cache:1.0.0"), std::string::npos) << summary.out;

  auto j = parse(run(cli() + " load demo/cache --json 2>/dev/null"));
  EXPECT_EQ(j["path"], view.string());
  EXPECT_EQ(j["metadata"]["name"], "demo/cache");
  EXPECT_EQ(j["metadata"]["files"][0]["size"], 65536);

  auto missing = run(cli() + " load demo/none");
  EXPECT_EQ(exit_code(missing), 1) << missing.out;
}

}  // namespace
}  // namespace modelzoo::testing
