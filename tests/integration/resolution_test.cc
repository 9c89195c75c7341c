// Resolution, priority, failover and pulls with the real daemon and plugin processes.
#include <fstream>

#include "daemon_harness.h"
#include "modelzoo/core/cache.h"

namespace modelzoo::testing {
namespace {

std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

std::string sha256_of_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  core::Sha256 h;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) h.update(buf, static_cast<std::size_t>(in.gcount()));
  return h.hex_digest();
}

// No file is left half-written anywhere in the cache.
void expect_no_temporaries(const fs::path& cache) {
  for (const auto& e : fs::recursive_directory_iterator(cache))
    EXPECT_EQ(e.path().string().find(".partial"), std::string::npos) << e.path();
}

TEST(Resolution, HighestPrioritySourceIsBestAndEverySourceIsShown) {
  Daemon d(config_with(memory_source("low", 1, "shared/model") + memory_source("high", 50, "shared/model") +
                       memory_source("other", 99, "other/model")));
  for (auto n : {"low", "high", "other"}) d.wait_plugin(n);
  auto show = d.client().show("shared/model");
  EXPECT_EQ(show["best"], "high");
  ASSERT_EQ(show["sources"].size(), 3u);  // every plugin handles "*"
  EXPECT_EQ(show["sources"][0]["plugin"], "other");
  EXPECT_EQ(show["sources"][0]["ok"], false);
  EXPECT_EQ(show["sources"][0]["error"]["code"], "not_found");
  EXPECT_EQ(show["sources"][1]["plugin"], "high");
  EXPECT_EQ(show["sources"][2]["plugin"], "low");
  EXPECT_EQ(show["metadata"]["files"][0]["size"], 65536);

  auto pulled = d.client().pull("shared/model");
  EXPECT_EQ(pulled["source"], "high");
  EXPECT_EQ(pulled["cached"], false);
}

TEST(Resolution, TiesAreBrokenByNameDeterministically) {
  Daemon d(config_with(memory_source("zeta", 5, "tie/m") + memory_source("alpha", 5, "tie/m")));
  d.wait_plugin("zeta");
  d.wait_plugin("alpha");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(d.client().show("tie/m")["best"], "alpha");
}

TEST(Resolution, UnknownModelIsNotFoundAndNoPluginsIsHandled) {
  Daemon d(config_with(memory_source("mem", 0, "demo/a")));
  d.wait_plugin("mem");
  try {
    d.client().show("nope/missing");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::not_found);
    EXPECT_NE(std::string(e.what()).find("nope/missing"), std::string::npos);
  }
  Daemon empty(kFastTimers);
  try {
    empty.client().pull("demo/a");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::not_found);
    EXPECT_STREQ(e.what(), "no source handles model 'demo/a'");
  }
  EXPECT_EQ(empty.client().models()["models"].size(), 0u);
}

TEST(Resolution, ModelOfASourceThatIsDownIsUnavailableNotNotFound) {
  Daemon d(config_with("  - name: broken\n    command: [/bin/false]\n    handles: ['demo/*']\n"
                       "    restart: {backoff_initial_ms: 10, max_failures: 2}\n" +
                       memory_source("other", 0, "other/model") + "    handles: ['other/*']\n"));
  d.wait_plugin("broken", "failed");
  d.wait_plugin("other");
  try {
    d.client().show("demo/x");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::unavailable);
    EXPECT_STREQ(e.what(), "broken: not running (failed, last exit: exit 1)");
  }
  try {
    d.client().show("elsewhere/x");  // no source, up or down, handles it
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::not_found);
  }
}

TEST(Resolution, FailingBestSourceFallsOverToTheNext) {
  Daemon d(config_with(memory_source("flaky", 50, "shared/model", "      fail_download_after_bytes: 30000\n", 3 << 20) +
                       memory_source("steady", 10, "shared/model", "", 3 << 20)));
  d.wait_plugin("flaky");
  d.wait_plugin("steady");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download."});
  auto show = d.client().show("shared/model");
  EXPECT_EQ(show["best"], "flaky");
  auto pulled = d.client().pull("shared/model");
  EXPECT_EQ(pulled["source"], "steady");
  auto file = fs::path(pulled["files"][0]["path"].get<std::string>());
  EXPECT_EQ(sha256_of_file(file), show["metadata"]["files"][0]["sha256"]);
  expect_no_temporaries(d.cache_dir());
  bool completed = false;
  while (auto e = sub.next(2s)) {
    if (e->topic == "model.download.completed") {
      EXPECT_EQ(e->body["plugin"], "steady");
      EXPECT_EQ(e->body["source"], "modelzood");
      EXPECT_EQ(e->body["failovers"], 1);
      EXPECT_EQ(e->body["bytes"], 3 << 20);
      // The next source continued at the offset already received: not one byte was sent twice.
      EXPECT_EQ(e->body["bytes_transferred"], 3 << 20);
      completed = true;
      break;
    }
  }
  EXPECT_TRUE(completed);
}

TEST(Resolution, SourceCrashingMidTransferFallsOverAndIsRestarted) {
  Daemon d(config_with(memory_source("crashy", 50, "shared/model", "      crash_on_download: true\n") +
                       memory_source("steady", 10, "shared/model")));
  pid_t crashy = d.wait_plugin("crashy")["pid"].get<pid_t>();
  d.wait_plugin("steady");
  auto pulled = d.client().pull("shared/model");
  EXPECT_EQ(pulled["source"], "steady");
  EXPECT_FALSE(process_alive(crashy));
  auto after = d.wait_plugin("crashy");
  EXPECT_NE(after["pid"], crashy);
}

TEST(Resolution, WrongSha256IsRejectedAndNothingIsCached) {
  std::string bad(64, 'a');
  std::string cfg = config_with(
      "  - name: liar\n    plugin: memory\n    config:\n      models:\n        - name: bad/model\n"
      "          version: 1.0.0\n          files:\n            - {name: w.bin, size: 100000, seed: 1, declared_sha256: " +
      bad + "}\n");
  Daemon d(cfg);
  d.wait_plugin("liar");
  try {
    d.client().pull("bad/model");
    FAIL();
  } catch (const bus::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("'w.bin' has sha256"), std::string::npos) << msg;
    EXPECT_NE(msg.find("metadata says " + bad), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(d.cache_dir() / "blobs" / "sha256" / bad));
  EXPECT_FALSE(fs::exists(d.cache_dir() / "models" / "bad"));
  expect_no_temporaries(d.cache_dir());
}

TEST(Resolution, PullFromLocalFilesVerifiesAndSecondPullIsCached) {
  Daemon d(config_with("  - name: disk\n    plugin: local-file\n    config: {root: '@DIR@/models'}\n"), false);
  fs::path vdir = d.dir() / "models" / "acme" / "llm" / "2.1.0";
  fs::create_directories(vdir / "sub");
  std::ofstream(vdir / "config.json") << "{\"layers\": 2}";
  std::ofstream(vdir / "sub" / "weights.bin") << std::string(300000, 'w');
  std::ofstream(vdir / "modelzoo.yaml") << "description: test model\nlicense: MIT\nformat: raw\ntags: [a, b]\n";
  fs::create_directories(d.dir() / "models" / "acme" / "llm" / "1.0.0");
  std::ofstream(d.dir() / "models" / "acme" / "llm" / "1.0.0" / "old.bin") << "old";
  d.start();
  d.wait_plugin("disk");
  auto show = d.client().show("acme/llm");
  EXPECT_EQ(show["metadata"]["version"], "2.1.0");
  EXPECT_EQ(show["metadata"]["license"], "MIT");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download.started"});
  std::vector<nlohmann::json> progress;
  auto pulled = d.client().pull("acme/llm", [&](const nlohmann::json& p) { progress.push_back(p); });
  EXPECT_EQ(pulled["version"], "2.1.0");
  EXPECT_FALSE(progress.empty());
  fs::path dir = pulled["path"].get<std::string>();
  std::ifstream in(dir / "sub" / "weights.bin", std::ios::binary);
  std::string content((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(content, std::string(300000, 'w'));
  auto e = sub.next(2s);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->body["model"], "acme/llm");
  EXPECT_EQ(e->body["plugin"], "disk");
  auto again = d.client().pull("acme/llm:2.1.0");
  EXPECT_EQ(again["cached"], true);
  EXPECT_EQ(again["bytes_downloaded"], 0);
  auto old = d.client().pull("acme/llm:1.0.0");
  EXPECT_EQ(old["version"], "1.0.0");
}

TEST(Resolution, ConcurrentPullsOfOneModelShareOneTransfer) {
  Daemon d(config_with(memory_source("mem", 0, "big/model", "", 8 << 20)));
  d.wait_plugin("mem");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download.started"});
  nlohmann::json r1, r2;
  std::thread t1([&] { r1 = Client(d.runtime_dir().string()).pull("big/model"); });
  std::thread t2([&] { r2 = Client(d.runtime_dir().string()).pull("big/model"); });
  t1.join();
  t2.join();
  EXPECT_EQ(r1["path"], r2["path"]);
  int started = 0;
  while (sub.next(500ms)) ++started;
  EXPECT_EQ(started, 1);
}

TEST(Resolution, ModelsListsEverySourceAndReportsErrors) {
  Daemon d(config_with(memory_source("a", 1, "shared/m") + memory_source("b", 2, "shared/m") +
                       memory_source("c", 3, "only/c")));
  for (auto n : {"a", "b", "c"}) d.wait_plugin(n);
  auto models = d.client().models()["models"];
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0]["name"], "only/c");
  EXPECT_EQ(models[1]["name"], "shared/m");
  EXPECT_EQ(models[1]["sources"].size(), 2u);
}

}  // namespace
}  // namespace modelzoo::testing
