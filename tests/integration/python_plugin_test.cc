// The Python plugin SDK (plugin-sdk/python) with the real daemon: the example registry
// plugins/python-example/plugin.py serves verified pulls (started from its manifest), fails
// over mid-file to a C++ source with the same bytes, is restarted after a crash or kill -9,
// and the example extension plugins/python-example/extension.py rejects at post-download.
#include <fstream>
#include <sstream>

#include "daemon_harness.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

fs::path example_dir() { return fs::path(MODELZOO_SOURCE_DIR) / "plugins" / "python-example"; }

// Empty when /usr/bin/python3 can run the SDK, else why not.
std::string python_missing() {
  if (!fs::exists("/usr/bin/python3")) return "no /usr/bin/python3";
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    return "python3-zmq or python3-msgpack missing (scripts/deps.sh installs them)";
  return {};
}

#define SKIP_WITHOUT_PYTHON()                                \
  do {                                                       \
    if (auto why = python_missing(); !why.empty()) GTEST_SKIP() << why; \
  } while (0)

std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

// A source running the example registry by its command line.
std::string py_source(const std::string& name, int priority, const std::string& extra_config = "") {
  return "  - name: " + name + "\n    command: [/usr/bin/python3, '" + (example_dir() / "plugin.py").string() +
         "']\n    priority: " + std::to_string(priority) + "\n    config:\n      root: '@DIR@/models'\n" + extra_config;
}

void write_file(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Text that YAML carries unchanged in a double-quoted scalar (lines joined by "\n" escapes).
std::string shared_text(std::size_t lines) {
  std::string s;
  for (std::size_t i = 0; i < lines; ++i) s += "modelzoo python failover line " + std::to_string(100000 + i) + "\n";
  return s;
}

std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '\n' ? std::string("\\n") : std::string(1, c);
  return out + "\"";
}

// A memory source serving `model` 1.0.0 with one file `data.txt` of `content`.
std::string memory_with_content(const std::string& name, int priority, const std::string& model,
                                const std::string& content) {
  return "  - name: " + name + "\n    plugin: memory\n    priority: " + std::to_string(priority) +
         "\n    config:\n      models:\n        - name: " + model +
         "\n          version: 1.0.0\n          files:\n            - name: data.txt\n              content: " +
         yaml_quoted(content) + "\n";
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (!e.is_directory()) ++n;
  return n;
}

TEST(PythonPlugin, ServesAVerifiedPullFromItsManifest) {
  SKIP_WITHOUT_PYTHON();
  Daemon d(std::string(kFastTimers) + "plugin_dirs: ['@DIR@/plugins']\nsources:\n"
                                      "  - name: py\n    plugin: python-example\n    priority: 5\n"
                                      "    config: {root: '@DIR@/models'}\n",
           false);
  // The manifest directory, linked: the plugin finds the SDK relative to its real path.
  fs::create_directories(d.dir() / "plugins");
  fs::create_directory_symlink(example_dir(), d.dir() / "plugins" / "python-example");
  std::string weights(3 * (1 << 20) + 7, '\0');
  for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>((i * 7919) >> 3);
  std::string config = "{\"layers\": 2}\n";
  fs::path v1 = d.dir() / "models" / "acme" / "py-model" / "1.0.0";
  write_file(v1 / "weights.bin", weights);
  write_file(v1 / "sub" / "config.json", config);
  write_file(v1 / ".hidden", "not a valid file name: ignored");
  write_file(d.dir() / "models" / "acme" / "py-model" / "0.9.0" / "old.bin", "old");
  write_file(d.dir() / "models" / "acme" / "py-model" / "2.0.0-rc.1" / "new.bin", "pre-release");
  d.start();

  auto p = d.wait_plugin("py");
  EXPECT_EQ(p["plugin"], "python-example");
  EXPECT_EQ(p["version"], "0.1.0");
  EXPECT_EQ(p["priority"], 5);

  auto show = d.client().show("acme/py-model");
  EXPECT_EQ(show["best"], "py");
  const auto& meta = show["metadata"];
  EXPECT_EQ(meta["version"], "1.0.0") << "the latest release, not the pre-release";
  ASSERT_EQ(meta["files"].size(), 2u) << meta.dump();
  EXPECT_EQ(meta["files"][0]["name"], "sub/config.json");
  EXPECT_EQ(meta["files"][0]["sha256"], bus::Sha256::of(config));
  EXPECT_EQ(meta["files"][1]["name"], "weights.bin");
  EXPECT_EQ(meta["files"][1]["size"], weights.size());
  EXPECT_EQ(meta["files"][1]["sha256"], bus::Sha256::of(weights));

  auto models = d.client().models()["models"];
  ASSERT_EQ(models.size(), 1u) << models.dump();
  EXPECT_EQ(models[0]["name"], "acme/py-model");
  EXPECT_EQ(models[0]["versions"], nlohmann::json({"2.0.0-rc.1", "1.0.0", "0.9.0"}));

  auto pulled = d.client().pull("acme/py-model");
  EXPECT_EQ(pulled["source"], "py");
  EXPECT_EQ(pulled["bytes_downloaded"], weights.size() + config.size());
  for (const auto& f : pulled["files"]) {
    std::string got = read_file(f["path"].get<std::string>());
    EXPECT_EQ(bus::Sha256::of(got), f["sha256"].get<std::string>()) << f.dump();
    EXPECT_EQ(got, f["name"] == "weights.bin" ? weights : config);
  }
  auto old = d.client().pull("acme/py-model:0.9.0");
  EXPECT_EQ(read_file(old["files"][0]["path"].get<std::string>()), "old");
  try {
    d.client().show("acme/nothing");
    ADD_FAILURE() << "a model the plugin does not have was found";
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::not_found) << e.what();
  }

  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
  EXPECT_NE(d.log().find("[py] stopped (exit 0)"), std::string::npos) << "the SDK honours goodbye";
}

TEST(PythonPlugin, FailsOverMidFileToACppSourceWithTheSameBytes) {
  SKIP_WITHOUT_PYTHON();
  std::string content = shared_text(8000);  // ~300 KB
  Daemon d(config_with(py_source("py", 50, "      fail_download_after_bytes: 100000\n") +
                       memory_with_content("mem", 10, "demo/shared", content)),
           false);
  write_file(d.dir() / "models" / "demo" / "shared" / "1.0.0" / "data.txt", content);
  d.start();
  d.wait_plugin("py");
  d.wait_plugin("mem");
  auto show = d.client().show("demo/shared");
  EXPECT_EQ(show["best"], "py");
  EventSubscriber sub(d.runtime_dir().string(), {"model.download.completed"});
  auto pulled = d.client().pull("demo/shared");
  EXPECT_EQ(pulled["source"], "mem");
  EXPECT_EQ(pulled["bytes_downloaded"], content.size()) << "the second source continued where the first stopped";
  EXPECT_EQ(read_file(pulled["files"][0]["path"].get<std::string>()), content);
  bool completed = false;
  while (auto e = sub.next(2s)) {
    if (e->topic != "model.download.completed") continue;
    EXPECT_EQ(e->body["failovers"], 1);
    completed = true;
    break;
  }
  EXPECT_TRUE(completed);
  EXPECT_EQ(d.plugin("py")["state"], "ready") << "a failed download is not a failed plugin";
}

TEST(PythonPlugin, CrashMidDownloadFailsOverAndThePluginIsRestarted) {
  SKIP_WITHOUT_PYTHON();
  std::string content = shared_text(6000);
  Daemon d(config_with(py_source("py", 50, "      crash_after_bytes: 65536\n") +
                       memory_with_content("mem", 10, "demo/crashy", content)),
           false);
  write_file(d.dir() / "models" / "demo" / "crashy" / "1.0.0" / "data.txt", content);
  d.start();
  pid_t first = d.wait_plugin("py")["pid"].get<pid_t>();
  d.wait_plugin("mem");
  auto pulled = d.client().pull("demo/crashy");
  EXPECT_EQ(pulled["source"], "mem");
  EXPECT_EQ(read_file(pulled["files"][0]["path"].get<std::string>()), content);
  ASSERT_TRUE(wait_until([&] {
    auto now = d.plugin("py");
    return now["pid"] != first && now["state"] == "ready" && now["restarts"].get<int>() >= 1;
  })) << d.plugin("py").dump();
  EXPECT_EQ(d.plugin("py")["last_exit"], "exit 1");
  EXPECT_EQ(d.client().show("demo/crashy")["best"], "py");
}

TEST(PythonPlugin, RestartedAfterKill9AndServesAgain) {
  SKIP_WITHOUT_PYTHON();
  Daemon d(config_with(py_source("py", 0)), false);
  write_file(d.dir() / "models" / "demo" / "py" / "1.0.0" / "w.bin", std::string(200000, 'w'));
  d.start();
  pid_t pid = d.wait_plugin("py")["pid"].get<pid_t>();
  EXPECT_EQ(d.client().show("demo/py")["best"], "py");
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  ASSERT_TRUE(wait_until([&] {
    auto now = d.plugin("py");
    return now["pid"] != pid && now["state"] == "ready";
  })) << d.plugin("py").dump();
  EXPECT_FALSE(process_alive(pid));
  auto pulled = d.client().pull("demo/py");
  EXPECT_EQ(pulled["source"], "py");
  EXPECT_EQ(read_file(pulled["files"][0]["path"].get<std::string>()), std::string(200000, 'w'));
}

TEST(PythonPlugin, ExtensionRejectsAtPostDownload) {
  SKIP_WITHOUT_PYTHON();
  std::string memory =
      "  - name: mem\n    plugin: memory\n    config:\n      models:\n"
      "        - {name: demo/denied, version: 1.0.0, files: [{name: w.bin, size: 65536, seed: 3}]}\n"
      "        - {name: demo/allowed, version: 1.0.0, files: [{name: w.bin, size: 65536, seed: 4}]}\n";
  std::string policy = "  - name: policy\n    command: [/usr/bin/python3, '" + (example_dir() / "extension.py").string() +
                       "']\n    kind: extension\n    config:\n      deny: ['demo/den*']\n"
                       "      reason: not on the allow list\n";
  Daemon d(config_with(memory + policy));
  d.wait_plugin("mem");
  d.wait_plugin("policy");
  try {
    d.client().pull("demo/denied");
    ADD_FAILURE() << "the extension did not reject demo/denied";
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::rejected) << e.what();
    EXPECT_NE(std::string(e.what()).find("extension 'policy' rejected 'demo/denied:1.0.0' at post-download: "
                                         "not on the allow list (demo/denied matches 'demo/den*')"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(count_files(d.cache_dir() / "models"), 0u) << "nothing rejected is committed";
  auto pulled = d.client().pull("demo/allowed");
  EXPECT_EQ(pulled["files"].size(), 1u);
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
  EXPECT_NE(d.log().find("[policy] stopped (exit 0)"), std::string::npos);
}

}  // namespace
}  // namespace modelzoo::testing
