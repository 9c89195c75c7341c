// Transfers under failure, with the real daemon and plugin processes: kill -9 of a plugin
// or of the daemon mid-transfer, wrong sizes, a full disk, two daemons on one cache,
// offline use and the load API.
#include <fstream>

#include "daemon_harness.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {


std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

std::string sha256_of_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  bus::Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
    h.update(buf.data(), static_cast<std::size_t>(in.gcount()));
  return h.hex_digest();
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (!e.is_directory()) out.push_back(e.path());
  return out;
}

// Waits for a download progress event of `plugin` with at least `bytes` received.
bool wait_progress(EventSubscriber& sub, const std::string& plugin, std::uint64_t bytes) {
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = sub.next(100ms);
    if (e && e->topic == "model.download.progress" && e->body["plugin"] == plugin &&
        e->body["bytes"].get<std::uint64_t>() >= bytes)
      return true;
  }
  return false;
}

// A pull running on its own thread, its outcome kept for the test.
struct BackgroundPull {
  std::thread thread;
  nlohmann::json reply;
  std::string error;
  BackgroundPull(const fs::path& runtime, std::string ref) {
    thread = std::thread([this, runtime, ref] {
      try {
        reply = Client(runtime.string()).pull(ref);
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
  }
  ~BackgroundPull() {
    if (thread.joinable()) thread.join();
  }
};

TEST(Transfer, PluginKilledMidTransferFailsOverAtTheReceivedOffset) {
  Daemon d(config_with(memory_source("slow", 50, "big/model", "      throttle_bytes_per_second: 16777216\n", 32 * kMiB) +
                       memory_source("steady", 10, "big/model", "", 32 * kMiB)));
  pid_t slow = d.wait_plugin("slow")["pid"].get<pid_t>();
  d.wait_plugin("steady");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download."});
  BackgroundPull pull(d.runtime_dir(), "big/model");
  ASSERT_TRUE(wait_progress(sub, "slow", 4 * kMiB));
  ASSERT_EQ(::kill(slow, SIGKILL), 0);
  pull.thread.join();
  ASSERT_EQ(pull.error, "");
  EXPECT_EQ(pull.reply["source"], "steady");
  // What the killed plugin delivered was kept: the two sources together sent the file once.
  EXPECT_EQ(pull.reply["bytes_downloaded"], 32 * kMiB);
  EXPECT_EQ(sha256_of_file(pull.reply["files"][0]["path"].get<std::string>()),
            pull.reply["files"][0]["sha256"].get<std::string>());
  EXPECT_TRUE(files_under(d.cache_dir() / "tmp").empty());
  d.wait_plugin("slow");  // and it was restarted
}

TEST(Transfer, FilesOfAModelMoveAtOnce) {
  std::string cfg = config_with(
      "  - name: mem\n    plugin: memory\n    config:\n      throttle_bytes_per_second: 8388608\n      models:\n"
      "        - name: multi/model\n          version: 1.0.0\n          files:\n"
      "            - {name: a.bin, size: 4194304, seed: 1}\n"
      "            - {name: b.bin, size: 4194304, seed: 2}\n"
      "            - {name: c.bin, size: 4194304, seed: 3}\n");
  Daemon d(cfg);
  d.wait_plugin("mem");
  std::vector<std::string> order;  // the file named by each progress message, in order
  auto reply = d.client().pull("multi/model", [&](const nlohmann::json& p) { order.push_back(p["file"]); });
  EXPECT_EQ(reply["bytes_downloaded"], 3 * 4 * kMiB);
  // One after another, a file never reappears once the next has started; at once, they alternate.
  bool returned = false;
  for (std::size_t i = 0; i < order.size() && !returned; ++i)
    for (std::size_t j = i + 1; j < order.size() && !returned; ++j)
      if (order[j] != order[i])
        for (std::size_t k = j + 1; k < order.size(); ++k)
          if (order[k] == order[i]) {
            returned = true;
            break;
          }
  EXPECT_TRUE(returned) << "progress never went back to an earlier file: files were transferred one at a time";
  for (const auto& f : reply["files"])
    EXPECT_EQ(sha256_of_file(f["path"].get<std::string>()), f["sha256"].get<std::string>());
}

// A local-file model tree: <dir>/models/acme/llm/1.0.0/w.bin of `size` bytes.
fs::path make_local_model(const fs::path& dir, std::size_t size, char fill) {
  fs::path f = dir / "models" / "acme" / "llm" / "1.0.0" / "w.bin";
  fs::create_directories(f.parent_path());
  std::ofstream(f, std::ios::binary) << std::string(size, fill);
  return f;
}

TEST(Transfer, TrustedLocalFilesAreCopiedByTheDaemonItselfAndVerified) {
  Daemon d(config_with("  - name: disk\n    plugin: local-file\n    config: {root: '@DIR@/models'}\n"), false);
  make_local_model(d.dir(), 3 * kMiB + 5, 'x');
  d.start();
  d.wait_plugin("disk");
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["bytes_downloaded"], 3 * kMiB + 5);
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"].get<std::string>());
  EXPECT_NE(d.log().find("copying 'w.bin' of acme/llm:1.0.0 from " + (d.dir() / "models").string()), std::string::npos)
      << "the built-in local-file source's root is trusted: the daemon copies, no stream";
}

TEST(Transfer, LocalPathsOutsideTrustedDirectoriesAreStreamed) {
  Daemon d(config_with("  - name: disk\n    plugin: local-file\n    config: {root: '@DIR@/models'}\n"
                       "    local_read: ['@DIR@/elsewhere']\n"),
           false);
  make_local_model(d.dir(), kMiB, 'y');
  fs::create_directories(d.dir() / "elsewhere");
  d.start();
  d.wait_plugin("disk");
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"].get<std::string>());
  EXPECT_EQ(d.log().find("local to the daemon"), std::string::npos) << "an untrusted local_path must not be read";
}

TEST(Transfer, ALocalFileChangedAfterItsMetadataIsNeverPublished) {
  Daemon d(config_with("  - name: disk\n    plugin: local-file\n    config: {root: '@DIR@/models'}\n"), false);
  fs::path f = make_local_model(d.dir(), kMiB, 'a');
  d.start();
  d.wait_plugin("disk");
  auto show = d.client().show("acme/llm");  // the plugin hashes the file now
  auto mtime = fs::last_write_time(f);
  std::ofstream(f, std::ios::binary) << std::string(kMiB, 'b');  // same size, same inode, other bytes
  // Restore the mtime, so the plugin's hash cache (keyed on it) still answers with the old
  // hash: the metadata now lies about the bytes.
  fs::last_write_time(f, mtime);
  try {
    d.client().pull("acme/llm");
    FAIL() << "a file that no longer matches its metadata was accepted";
  } catch (const bus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has sha256"), std::string::npos) << e.what();
  }
  EXPECT_NE(d.log().find("local copy of 'w.bin' failed"), std::string::npos) << "the local copy fell back to streaming";
  EXPECT_TRUE(files_under(d.cache_dir() / "blobs").empty());
  EXPECT_TRUE(files_under(d.cache_dir() / "models").empty());
}

TEST(Transfer, DaemonKilledMidTransferResumesAfterRestart) {
  Daemon d(config_with(memory_source("slow", 0, "big/model", "      throttle_bytes_per_second: 16777216\n", 32 * kMiB)));
  d.wait_plugin("slow");
  {
    EventSubscriber sub(d.runtime_dir().string(), {"model.download.progress"});
    BackgroundPull pull(d.runtime_dir(), "big/model");
    ASSERT_TRUE(wait_progress(sub, "slow", 8 * kMiB));
    d.kill9();
  }
  auto partials = files_under(d.cache_dir() / "tmp");
  fs::path partial;
  for (const auto& p : partials)
    if (p.extension() == ".partial") partial = p;
  ASSERT_FALSE(partial.empty()) << "the interrupted transfer left no partial";
  std::uint64_t kept = fs::file_size(partial);
  EXPECT_GE(kept, 8 * kMiB);
  EXPECT_TRUE(files_under(d.cache_dir() / "blobs").empty());
  EXPECT_TRUE(files_under(d.cache_dir() / "models").empty());

  d.start();
  d.wait_plugin("slow");
  auto reply = d.client().pull("big/model");
  EXPECT_EQ(reply["bytes_downloaded"], 32 * kMiB - kept) << "resumed at the partial's end";
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"].get<std::string>());
  EXPECT_NE(d.log().find("resuming 'weights.bin' of big/model:1.0.0 at byte " + std::to_string(kept)), std::string::npos);
  EXPECT_TRUE(files_under(d.cache_dir() / "tmp").empty());
}

TEST(Transfer, PluginSendingMoreOrFewerBytesThanDeclaredIsRefused) {
  auto source = [](const std::string& name, const std::string& model, std::uint64_t serve, int seed) {
    return "  - name: " + name + "\n    plugin: memory\n    config:\n      models:\n        - name: " + model +
           "\n          version: 1.0.0\n          files:\n            - {name: w.bin, size: 1048576, seed: " +
           std::to_string(seed) + ", serve_size: " + std::to_string(serve) + "}\n";
  };
  Daemon d(config_with(source("more", "too/long", 2 * kMiB, 3) + source("fewer", "too/short", kMiB / 2, 4)));
  d.wait_plugin("more");
  d.wait_plugin("fewer");
  try {
    d.client().pull("too/long");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sent more bytes of 'w.bin' than its metadata declares (1048576)"),
              std::string::npos) << e.what();
  }
  try {
    d.client().pull("too/short");
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("ended 'w.bin' after 524288 of 1048576 bytes"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(files_under(d.cache_dir() / "blobs").empty());
  EXPECT_TRUE(files_under(d.cache_dir() / "models").empty());
  EXPECT_TRUE(process_alive(d.pid()));
}

TEST(Transfer, FullDiskFailsThePullClearlyAndPublishesNothing) {
  Daemon d(config_with(memory_source("mem", 0, "big/model", "", 16 * kMiB)), false);
  d.file_size_limit = 4 * kMiB;  // writes past 4 MiB fail with EFBIG, as on a full disk
  d.start();
  d.wait_plugin("mem");
  try {
    d.client().pull("big/model");
    FAIL();
  } catch (const bus::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cannot write 'weights.bin' to the cache"), std::string::npos) << msg;
    EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  }
  EXPECT_TRUE(files_under(d.cache_dir() / "blobs").empty());
  EXPECT_TRUE(files_under(d.cache_dir() / "models").empty());
  for (const auto& p : files_under(d.cache_dir() / "tmp")) {
    if (p.extension() == ".partial") {
      EXPECT_LE(fs::file_size(p), 4 * kMiB);
    }
  }
  EXPECT_TRUE(process_alive(d.pid()));
  EXPECT_EQ(d.client().status()["plugins"]["ready"], 1);
}

TEST(Transfer, TwoDaemonsSharingACacheTransferTheModelOnce) {
  char tmpl[] = "/tmp/modelzoo-shared-XXXXXX";
  fs::path shared = fs::path(::mkdtemp(tmpl)) / "cache";
  std::string src = memory_source("mem", 0, "big/model", "      throttle_bytes_per_second: 16777216\n", 16 * kMiB);
  Daemon a(config_with(src), false), b(config_with(src), false);
  a.shared_cache = b.shared_cache = shared;
  a.start();
  b.start();
  a.wait_plugin("mem");
  b.wait_plugin("mem");
  EventSubscriber sub(a.runtime_dir().string(), {"model.download.progress"});
  BackgroundPull first(a.runtime_dir(), "big/model");
  ASSERT_TRUE(wait_progress(sub, "mem", 2 * kMiB));  // a holds the file's lock now
  BackgroundPull second(b.runtime_dir(), "big/model");
  first.thread.join();
  second.thread.join();
  ASSERT_EQ(first.error, "");
  ASSERT_EQ(second.error, "");
  EXPECT_EQ(first.reply["path"], second.reply["path"]);
  EXPECT_EQ(first.reply["bytes_downloaded"].get<std::uint64_t>() + second.reply["bytes_downloaded"].get<std::uint64_t>(),
            16 * kMiB) << "the second daemon waited for the first instead of transferring again";
  EXPECT_EQ(sha256_of_file(second.reply["files"][0]["path"].get<std::string>()),
            second.reply["files"][0]["sha256"].get<std::string>());
  fs::remove_all(shared.parent_path());
}

TEST(Transfer, OfflineServesTheCacheAndAsksNoSource) {
  Daemon d(config_with(memory_source("mem", 0, "demo/cached") + memory_source("other", 1, "demo/uncached")));
  d.wait_plugin("mem");
  auto first = d.client().pull("demo/cached");
  ASSERT_EQ(d.stop(), 0);
  d.extra_env = {"MODELZOO_OFFLINE=1"};
  d.start();
  EXPECT_EQ(d.client().status()["offline"], true);
  auto again = d.client().pull("demo/cached");
  EXPECT_EQ(again["source"], "cache");
  EXPECT_EQ(again["cached"], true);
  EXPECT_EQ(again["path"], first["path"]);
  try {
    d.client().pull("demo/uncached");  // a source has it, but offline nothing is asked
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::unavailable);
    EXPECT_STREQ(e.what(), "offline, and 'demo/uncached' is not in the cache");
  }
}

TEST(Transfer, CachedModelIsServedWhenEverySourceIsDown) {
  Daemon d(config_with(memory_source("mem", 0, "demo/cached")));
  d.wait_plugin("mem");
  d.client().pull("demo/cached");
  ASSERT_EQ(d.stop(), 0);
  std::ofstream(d.dir() / "modelzood.yaml")
      << config_with("  - name: mem\n    command: [/bin/false]\n    restart: {backoff_initial_ms: 10, max_failures: 2}\n");
  d.start();
  d.wait_plugin("mem", "failed");
  auto reply = d.client().pull("demo/cached:1.0.0");
  EXPECT_EQ(reply["source"], "cache");
  EXPECT_EQ(reply["version"], "1.0.0");
}

TEST(Transfer, LoadReturnsPathsAndMetadataAndPublishesLoadEvents) {
  Daemon d(config_with(memory_source("mem", 0, "demo/load")));
  d.wait_plugin("mem");
  EventSubscriber sub(d.runtime_dir().string(), {"model.load."});
  auto reply = d.client().call("load", {{"model", "demo/load"}});
  EXPECT_EQ(reply["metadata"]["name"], "demo/load");
  EXPECT_EQ(reply["metadata"]["files"][0]["name"], "weights.bin");
  EXPECT_TRUE(fs::is_regular_file(reply["files"][0]["path"].get<std::string>()));
  auto started = sub.next(2s);
  ASSERT_TRUE(started);
  EXPECT_EQ(started->topic, "model.load.started");
  auto completed = sub.next(2s);
  ASSERT_TRUE(completed);
  EXPECT_EQ(completed->topic, "model.load.completed");
  EXPECT_EQ(completed->body["path"], reply["path"]);
  try {
    d.client().call("load", {{"model", "no/such"}});
    FAIL();
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::not_found);
  }
  bool failed = false;
  while (auto e = sub.next(1s))
    if (e->topic == "model.load.failed") failed = e->body["error"]["code"] == "not_found";
  EXPECT_TRUE(failed);
}

}  // namespace
}  // namespace modelzoo::testing
