// Extension hooks with the real daemon and real extension processes (docs/extensions.md):
// order, reject, crash, hang, replace, rewrite, load hooks, fail-closed, and the built-in
// extensions (format validator, decryption, decompression) on files the tests make.
#include <fstream>

#include "daemon_harness.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

// A source running the test extension.
std::string test_extension(const std::string& name, const std::string& points, const std::string& config,
                           const std::string& extra = "") {
  return "  - name: " + name + "\n    command: [\"@BIN@/modelzoo-test-extension\"]\n    kind: extension\n" +
         "    points: " + points + "\n" + extra + "    config:\n" + config;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (!e.is_directory()) ++n;
  return n;
}

bus::Error pull_error(Daemon& d, const std::string& ref, const std::string& method = "pull") {
  try {
    d.client().call(method, {{"model", ref}}, 30s);
  } catch (const bus::Error& e) {
    return e;
  }
  ADD_FAILURE() << method << " of " << ref << " succeeded";
  return bus::Error(bus::ErrorCode::internal, "succeeded");
}

TEST(Extensions, HooksRunInOrderAtEveryPointAndArePublished) {
  std::string record = "      record: @DIR@/record.txt\n";
  Daemon d(config_with(memory_source("mem", 0, "demo/ordered") +
                       test_extension("late", "[pre-download, post-download, pre-load, post-load]", record, "    order: 20\n") +
                       test_extension("early-b", "[pre-download, post-download, pre-load, post-load]", record, "    order: 10\n") +
                       test_extension("early-a", "[pre-download, post-download, pre-load, post-load]", record, "    order: 10\n")));
  for (auto n : {"mem", "late", "early-b", "early-a"}) d.wait_plugin(n);
  EventSubscriber sub(d.runtime_dir().string(), {"extension.hook"});
  auto reply = d.client().load("demo/ordered");
  EXPECT_EQ(reply["files"].size(), 1u);
  auto lines = lines_of(d.dir() / "record.txt");
  std::vector<std::string> want;
  for (auto point : {"pre-download", "post-download", "pre-load", "post-load"})
    for (auto ext : {"early-a", "early-b", "late"})
      want.push_back(std::string(ext) + " " + point + " demo/ordered:" + (std::string(point) == "pre-download" ? "" : "1.0.0") +
                     " " + (std::string(point) == "pre-download" ? "" : "weights.bin,"));
  EXPECT_EQ(lines, want);
  int events = 0;
  while (auto e = sub.next(500ms)) {
    EXPECT_EQ(e->body["outcome"], "continue");
    EXPECT_TRUE(e->body.contains("duration_ms"));
    EXPECT_EQ(e->body["model"], "demo/ordered");
    ++events;
  }
  EXPECT_EQ(events, 12);
}

TEST(Extensions, RejectionAtPostDownloadFailsThePullAndCommitsNothing) {
  Daemon d(config_with(memory_source("mem", 0, "demo/bad") +
                       test_extension("judge", "[post-download]", "      mode: reject\n      reason: weights look wrong\n")));
  d.wait_plugin("mem");
  d.wait_plugin("judge");
  EventSubscriber sub(d.runtime_dir().string(), {"extension.hook", "model.download.failed"});
  auto e = pull_error(d, "demo/bad");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("extension 'judge' rejected 'demo/bad:1.0.0' at post-download: weights look wrong"),
            std::string::npos)
      << e.what();
  EXPECT_EQ(count_files(d.cache_dir() / "blobs"), 0u) << "the rejected file stays in the cache";
  EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  EXPECT_EQ(count_files(d.cache_dir() / "models"), 0u);
  EXPECT_EQ(count_files(d.cache_dir() / "staging"), 0u);
  bool hook_event = false, failed_event = false;
  while (auto ev = sub.next(500ms)) {
    if (ev->topic == "extension.hook")
      hook_event = ev->body["outcome"] == "rejected" && ev->body["extension"] == "judge" && ev->body["point"] == "post-download";
    if (ev->topic == "model.download.failed") failed_event = ev->body["error"]["code"] == "rejected";
  }
  EXPECT_TRUE(hook_event);
  EXPECT_TRUE(failed_event);
}

TEST(Extensions, RejectionAtPreDownloadDownloadsNothing) {
  Daemon d(config_with(memory_source("mem", 0, "demo/vetoed") +
                       test_extension("policy", "[pre-download]", "      mode: reject\n      reason: not on the allow list\n")));
  d.wait_plugin("mem");
  d.wait_plugin("policy");
  auto e = pull_error(d, "demo/vetoed:1.0.0");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("not on the allow list"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir()), 0u);
}

TEST(Extensions, PreDownloadMayRewriteTheRequest) {
  Daemon d(config_with(memory_source("mem", 0, "demo/real") +
                       test_extension("alias", "[pre-download]", "      mode: rewrite\n      rewrite_to: demo/real:1.0.0\n",
                                      "    handles: [\"alias/*\"]\n")));
  d.wait_plugin("mem");
  d.wait_plugin("alias");
  auto reply = d.client().pull("alias/anything");
  EXPECT_EQ(reply["name"], "demo/real");
  EXPECT_EQ(reply["version"], "1.0.0");
  // Outside its handles the extension is not asked.
  EXPECT_EQ(d.client().pull("demo/real")["name"], "demo/real");
}

TEST(Extensions, AnExtensionThatCrashesFailsTheStepAndIsRestarted) {
  Daemon d(config_with(memory_source("mem", 0, "demo/crash") +
                       test_extension("fragile", "[post-download]", "      mode: crash\n      once: @DIR@/crashed-once\n",
                                      "    restart: {stable_after_ms: 50}\n")));
  d.wait_plugin("mem");
  d.wait_plugin("fragile");
  auto e = pull_error(d, "demo/crash");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable) << e.what();
  EXPECT_NE(std::string(e.what()).find("extension 'fragile' failed at post-download of 'demo/crash:1.0.0'"), std::string::npos)
      << e.what();
  EXPECT_NE(std::string(e.what()).find("exited"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  ASSERT_TRUE(wait_until([&] { return d.plugin("fragile")["restarts"].get<int>() >= 1 && d.plugin("fragile")["state"] == "ready"; }));
  // The verified download was kept: the retry runs the hook again without fetching anything.
  auto reply = d.client().pull("demo/crash");
  EXPECT_EQ(reply["bytes_downloaded"], 0);
  EXPECT_TRUE(fs::is_regular_file(reply["files"][0]["path"].get<std::string>()));
}

TEST(Extensions, AnExtensionThatHangsIsTimedOutAndRestarted) {
  Daemon d(config_with(memory_source("mem", 0, "demo/hang") +
                       test_extension("stuck", "[post-download]", "      mode: hang\n", "    hook_timeout_ms: 500\n")));
  d.wait_plugin("mem");
  d.wait_plugin("stuck");
  auto e = pull_error(d, "demo/hang");
  EXPECT_EQ(e.code(), bus::ErrorCode::timeout) << e.what();
  EXPECT_NE(std::string(e.what()).find("extension 'stuck' failed at post-download"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  ASSERT_TRUE(wait_until([&] { return d.plugin("stuck")["restarts"].get<int>() >= 1; }));
  EXPECT_NE(d.log().find("did not finish a hook within 500 ms"), std::string::npos);
}

TEST(Extensions, AnExtensionErrorFailsTheStepWithItsMessage) {
  Daemon d(config_with(memory_source("mem", 0, "demo/err") + test_extension("buggy", "[post-download]", "      mode: error\n")));
  d.wait_plugin("mem");
  d.wait_plugin("buggy");
  auto e = pull_error(d, "demo/err");
  EXPECT_EQ(e.code(), bus::ErrorCode::internal);
  EXPECT_NE(std::string(e.what()).find("test extension failed on purpose"), std::string::npos) << e.what();
}

TEST(Extensions, ReplacedFilesAreCommittedAndTheDerivedModelIsCached) {
  Daemon d(config_with(memory_source("mem", 0, "demo/replaced") + test_extension("adder", "[post-download]", "      mode: replace\n")));
  d.wait_plugin("mem");
  d.wait_plugin("adder");
  auto reply = d.client().pull("demo/replaced");
  ASSERT_EQ(reply["files"].size(), 2u);
  EXPECT_EQ(reply["files"][1]["name"], "adder.txt");
  fs::path added = reply["files"][1]["path"].get<std::string>();
  EXPECT_EQ(read_text(added), "adder\n");
  EXPECT_EQ(reply["files"][1]["sha256"], bus::Sha256::of("adder\n"));
  EXPECT_EQ(count_files(d.cache_dir() / "staging"), 0u);
  auto manifest = nlohmann::json::parse(read_text(d.cache_dir() / "manifests/demo/replaced/1.0.0.json"));
  EXPECT_EQ(manifest["derived"]["source_files"].size(), 1u);
  EXPECT_EQ(manifest["derived"]["extensions"][0]["extension"], "adder");
  // The next pull finds the derived model: cached, nothing fetched, the hook not run again.
  auto again = d.client().pull("demo/replaced");
  EXPECT_EQ(again["cached"], true);
  EXPECT_EQ(again["files"].size(), 2u);
}

TEST(Extensions, AReplacementOutsideTheOutputDirectoryIsRefused) {
  for (std::string mode : {"escape", "symlink"}) {
    SCOPED_TRACE(mode);
    Daemon d(config_with(memory_source("mem", 0, "demo/escape") + test_extension("sly", "[post-download]", "      mode: " + mode + "\n")));
    d.wait_plugin("mem");
    d.wait_plugin("sly");
    auto e = pull_error(d, "demo/escape");
    EXPECT_EQ(e.code(), bus::ErrorCode::internal);
    EXPECT_NE(std::string(e.what()).find(mode == "escape" ? "outside its output directory" : "not a regular file"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  }
}

TEST(Extensions, LoadHooksMayVetoALoadOfACachedModel) {
  Daemon d(config_with(memory_source("mem", 0, "demo/loadveto") +
                       test_extension("gate", "[pre-load]", "      mode: reject\n      reason: not during business hours\n")));
  d.wait_plugin("mem");
  d.wait_plugin("gate");
  EXPECT_EQ(d.client().pull("demo/loadveto")["name"], "demo/loadveto");  // pulls are not load hooks' business
  EventSubscriber sub(d.runtime_dir().string(), {"model.load."});
  auto e = pull_error(d, "demo/loadveto", "load");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("at pre-load: not during business hours"), std::string::npos) << e.what();
  bool failed = false;
  while (auto ev = sub.next(500ms))
    if (ev->topic == "model.load.failed") failed = ev->body["error"]["code"] == "rejected";
  EXPECT_TRUE(failed);
}

TEST(Extensions, FormatsAndHandlesLimitWhereAnExtensionRuns) {
  Daemon d(config_with(memory_source("mem", 0, "demo/plain") +
                       test_extension("gguf-only", "[post-download]", "      mode: reject\n", "    formats: [gguf]\n") +
                       test_extension("other-models", "[post-download]", "      mode: reject\n", "    handles: [\"other/*\"]\n")));
  d.wait_plugin("mem");
  d.wait_plugin("gguf-only");
  d.wait_plugin("other-models");
  EXPECT_EQ(d.client().pull("demo/plain")["name"], "demo/plain");  // weights.bin: neither applies
}

TEST(Extensions, AStepFailsClosedWhileItsExtensionIsDown) {
  Daemon d(config_with(memory_source("mem", 0, "demo/guarded") +
                       "  - name: broken-validator\n    command: [\"/bin/false\"]\n    kind: extension\n"
                       "    restart: {max_failures: 1}\n"));
  d.wait_plugin("mem");
  d.wait_plugin("broken-validator", "failed");
  auto e = pull_error(d, "demo/guarded");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable);
  EXPECT_NE(std::string(e.what()).find("extension 'broken-validator' is not running (failed"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir()), 0u);
}

}  // namespace
}  // namespace modelzoo::testing
