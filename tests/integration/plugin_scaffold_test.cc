// `modelzoo plugin new`, `plugin validate` and the installed SDK, end to end: this build tree
// is installed (`cmake --install`) into a temporary prefix; plugins scaffolded by the
// installed `modelzoo` are built out of tree against it with find_package(modelzoo),
// validated, run through the conformance kit (`plugin test`) unchanged, and served by a
// real modelzood. And a manifest with several problems gets every one of them reported.
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

using Result = Run;  // (inside a fixture, Run is testing::Test::Run)

// The build tree holds bin/ (MODELZOO_BIN_DIR).
fs::path build_dir() { return bin_dir().parent_path(); }

// Appended: '"'" + std::string' at -O3 trips GCC 12's false -Wrestrict (PR105651).
std::string q(const fs::path& p) { return std::string("'").append(p.string()).append("'"); }

int exit_status(const Result& r) { return WIFEXITED(r.status) ? WEXITSTATUS(r.status) : -1; }

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The content of the file `name` of a pull's reply.
std::string pulled_file(const nlohmann::json& pulled, const std::string& name) {
  for (const auto& f : pulled["files"])
    if (f["name"] == name) return read_file(f["path"].get<std::string>());
  ADD_FAILURE() << "no file " << name << " in " << pulled.dump();
  return {};
}

// Empty when /usr/bin/python3 can run the Python SDK, else why not.
std::string python_missing() {
  if (!fs::exists("/usr/bin/python3")) return "no /usr/bin/python3";
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    return "python3-zmq or python3-msgpack missing";
  if (!fs::exists(fs::path(MODELZOO_SOURCE_DIR) / "plugin-sdk" / "python" / "modelzoo_plugin" / "__init__.py"))
    return "no Python SDK (plugin-sdk/python/modelzoo_plugin)";
  return {};
}

class PluginScaffold : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-scaffold-XXXXXX";
    work_ = ::mkdtemp(tmpl);
    prefix_ = work_ / "prefix";
    plugins_ = work_ / "plugins";
    fs::create_directories(plugins_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(work_, ec);
  }

  // Installs this build tree into prefix_ (once per test).
  void install() {
    Result r = run("cmake --install " + q(build_dir()) + " --prefix " + q(prefix_));
    ASSERT_EQ(r.status, 0) << r.out;
    for (const char* f : {"bin/modelzood", "bin/modelzoo", "bin/modelzoo-plugin-memory", "include/modelzoo/plugin.h",
                          "include/modelzoo/extension.h", "include/modelzoo/bus/sha256.h"})
      ASSERT_TRUE(fs::exists(prefix_ / f)) << f << " not installed:\n" << r.out;
  }
  std::string mz() const { return q(prefix_ / "bin" / "modelzoo"); }

  // `plugin new` with the installed modelzoo; returns the plugin's directory.
  fs::path scaffold(const std::string& name, const std::string& lang, const std::string& kind) {
    fs::path dir = plugins_ / name;
    Result r = run(mz() + " plugin new " + name + " --lang " + lang + " --kind " + kind + " --dir " + q(dir));
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(fs::exists(dir / "plugin.yaml")) << r.out;
    EXPECT_TRUE(fs::exists(dir / "README.md")) << r.out;
    return dir;
  }

  // Configures and builds a scaffolded C++ plugin out of tree against the installed SDK.
  void build_cpp(const fs::path& dir) {
    // Debug: the fastest to compile; the scaffold itself defaults to RelWithDebInfo.
    Result conf = run("cmake -S " + q(dir) + " -B " + q(dir / "build") + " -DCMAKE_PREFIX_PATH=" + q(prefix_) +
                   " -DCMAKE_BUILD_TYPE=Debug");
    ASSERT_EQ(conf.status, 0) << conf.out;
    Result build = run("cmake --build " + q(dir / "build") + " -j2");
    ASSERT_EQ(build.status, 0) << build.out;
  }

  void expect_valid(const fs::path& dir) {
    Result r = run(mz() + " plugin validate " + q(dir));
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_EQ(r.out, "ok\n");
  }

  // The conformance kit, from the plugin's directory (as the daemon runs it), unchanged.
  void expect_kit_passes(const fs::path& dir, const std::string& command, const std::string& env = "") {
    Result r = run("cd " + q(dir) + " && " + env + " " + mz() + " plugin test -- " + command);
    EXPECT_EQ(r.status, 0) << "the conformance kit failed on " << command << ":\n" << r.out;
  }

  std::string daemon_config(const std::string& sources) const {
    return std::string(kFastTimers) + "plugin_dirs: ['" + plugins_.string() + "']\n" +
           (sources.empty() ? "sources: []\n" : "sources:\n" + sources);
  }

  fs::path work_, prefix_, plugins_;
};

TEST_F(PluginScaffold, CppRegistryBuildsOutOfTreeAgainstTheInstalledSdk) {
  ASSERT_NO_FATAL_FAILURE(install());
  EXPECT_TRUE(fs::exists(prefix_ / "lib" / "cmake" / "modelzoo" / "modelzooConfig.cmake") ||
              fs::exists(prefix_ / "lib64" / "cmake" / "modelzoo" / "modelzooConfig.cmake"));
  fs::path dir = scaffold("hello-reg", "cpp", "registry");
  for (const char* f : {"CMakeLists.txt", "main.cc"}) EXPECT_TRUE(fs::exists(dir / f)) << f;
  EXPECT_NE(read_file(dir / "CMakeLists.txt").find("find_package(modelzoo"), std::string::npos);

  // Before the build, the manifest's command does not exist yet: validate says so.
  Result before = run(mz() + " plugin validate " + q(dir));
  EXPECT_EQ(exit_status(before), 1) << before.out;
  EXPECT_NE(before.out.find("plugin.yaml: command: './build/hello-reg' does not exist"), std::string::npos)
      << before.out;

  ASSERT_NO_FATAL_FAILURE(build_cpp(dir));
  ASSERT_TRUE(fs::exists(dir / "build" / "hello-reg"));
  expect_valid(dir);
  expect_kit_passes(dir, "./build/hello-reg");

  // And modelzood runs it from its manifest, as a source of its own name.
  Daemon d(daemon_config(""));
  d.wait_plugin("hello-reg");
  auto pulled = d.client().pull("hello-reg/hello");
  EXPECT_EQ(pulled["source"], "hello-reg");
  EXPECT_EQ(pulled["files"].size(), 2u) << pulled.dump();
  EXPECT_EQ(pulled_file(pulled, "hello.txt"), "Hello from hello-reg!\n");
  EXPECT_EQ(pulled_file(pulled, "weights.bin").size(), 256u * 1024);
}

TEST_F(PluginScaffold, CppExtensionBuildsOutOfTreeAgainstTheInstalledSdk) {
  ASSERT_NO_FATAL_FAILURE(install());
  fs::path dir = scaffold("no-bad", "cpp", "extension");
  ASSERT_NO_FATAL_FAILURE(build_cpp(dir));
  expect_valid(dir);
  expect_kit_passes(dir, "./build/no-bad");

  std::string memory =
      "  - name: mem\n    plugin: memory\n    config:\n      models:\n"
      "        - {name: demo/good, version: 1.0.0, files: [{name: w.bin, size: 4096, seed: 3}]}\n"
      "        - {name: demo/evil, version: 1.0.0, files: [{name: w.bad, size: 4096, seed: 4}]}\n";
  Daemon d(daemon_config(memory));
  d.wait_plugin("mem");
  d.wait_plugin("no-bad");
  EXPECT_EQ(d.client().pull("demo/good")["source"], "mem");
  try {
    d.client().pull("demo/evil");
    ADD_FAILURE() << "the scaffolded extension did not reject demo/evil";
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::rejected) << e.what();
    EXPECT_NE(std::string(e.what()).find("w.bad: files named *.bad are not allowed"), std::string::npos) << e.what();
  }
}

TEST_F(PluginScaffold, PythonPluginsFindTheInstalledSdk) {
  if (auto why = python_missing(); !why.empty()) GTEST_SKIP() << why;
  ASSERT_NO_FATAL_FAILURE(install());
  fs::path sdk = prefix_ / "share" / "modelzoo" / "python";
  ASSERT_TRUE(fs::exists(sdk / "modelzoo_plugin" / "__init__.py")) << "the Python SDK was not installed";

  fs::path reg = scaffold("py-reg", "python", "registry");
  fs::path ext = scaffold("py-ext", "python", "extension");
  // The installed SDK's place is written into plugin.py: no PYTHONPATH needed.
  EXPECT_NE(read_file(reg / "plugin.py").find(sdk.string()), std::string::npos);
  expect_valid(reg);
  expect_valid(ext);
  expect_kit_passes(reg, "/usr/bin/python3 ./plugin.py", "env -u PYTHONPATH -u MODELZOO_PYTHON_SDK");
  expect_kit_passes(ext, "/usr/bin/python3 ./plugin.py", "env -u PYTHONPATH -u MODELZOO_PYTHON_SDK");

  Daemon d(daemon_config(""));
  d.wait_plugin("py-reg");
  d.wait_plugin("py-ext");  // an extension that is still starting fails the pull closed
  auto pulled = d.client().pull("py-reg/hello");
  EXPECT_EQ(pulled["source"], "py-reg");
  EXPECT_EQ(pulled["files"].size(), 2u) << pulled.dump();
  EXPECT_EQ(pulled_file(pulled, "hello.txt"), "Hello from py-reg!\n");
  EXPECT_EQ(pulled_file(pulled, "weights.bin").size(), 256u * 1024);
}

TEST_F(PluginScaffold, ValidateReportsEveryProblem) {
  fs::path dir = plugins_ / "broken";
  fs::create_directories(dir);
  std::ofstream(dir / "plugin.yaml") << "name: Broken Plugin\n"
                                        "version: '1.0'\n"
                                        "kind: registry\n"
                                        "protocol: '>=2'\n"
                                        "command: [./missing-binary]\n"
                                        "priority: 5000000\n"
                                        "handles: ['', 'acme/[a-z]*']\n"
                                        "points: [post-download]\n"
                                        "colour: blue\n";
  std::string modelzoo = q(bin_dir() / "modelzoo");
  Result r = run(modelzoo + " plugin validate " + q(dir));
  EXPECT_EQ(exit_status(r), 1) << r.out;
  for (const char* line : {
           "plugin.yaml: colour: is not a manifest setting",
           "plugin.yaml: name: plugin name 'Broken Plugin' may contain only a-z, 0-9, '-' and '_'",
           "plugin.yaml: version: '1.0' is not a semantic version",
           "plugin.yaml: protocol: '>=2' does not include protocol 1",
           "plugin.yaml: command: './missing-binary' does not exist",
           "plugin.yaml: priority: 5000000 is out of range (-1000000 to 1000000)",
           "plugin.yaml: handles: pattern '' must have 1 to 200 characters",
           "plugin.yaml: handles: pattern 'acme/[a-z]*' contains '['",
           "plugin.yaml: points: is a setting of extensions",
       })
    EXPECT_NE(r.out.find(line), std::string::npos) << "missing: " << line << "\nin:\n" << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 9) << r.out;

  Result j = run(modelzoo + " --json plugin validate " + q(dir) + " 2>/dev/null");
  EXPECT_EQ(exit_status(j), 1);
  auto doc = nlohmann::json::parse(j.out);
  EXPECT_EQ(doc["dir"], dir.string());
  EXPECT_EQ(doc["problems"].size(), 9u) << j.out;

  // The daemon refuses the same manifest (its first problem), and accepts the protocol key.
  std::ofstream(dir / "plugin.yaml") << "name: fine\nversion: 1.0.0\nprotocol: [1, 2]\ncommand: [/bin/true]\n";
  Result ok = run(modelzoo + " plugin validate " + q(dir));
  EXPECT_EQ(ok.status, 0) << ok.out;

  // No manifest at all.
  Result none = run(modelzoo + " plugin validate " + q(plugins_));
  EXPECT_EQ(exit_status(none), 1);
  EXPECT_NE(none.out.find("plugin.yaml: not found in"), std::string::npos) << none.out;
}

TEST_F(PluginScaffold, NewRefusesBadNamesAndNonEmptyDirectories) {
  std::string modelzoo = q(bin_dir() / "modelzoo");
  Result bad = run(modelzoo + " plugin new Bad_Name --lang cpp --dir " + q(work_ / "x"));
  EXPECT_NE(exit_status(bad), 0);
  EXPECT_NE(bad.out.find("may contain only a-z"), std::string::npos) << bad.out;
  EXPECT_FALSE(fs::exists(work_ / "x"));

  fs::create_directories(work_ / "busy");
  std::ofstream(work_ / "busy" / "keep.txt") << "mine";
  Result busy = run(modelzoo + " plugin new busy --lang python --dir " + q(work_ / "busy"));
  EXPECT_NE(exit_status(busy), 0);
  EXPECT_NE(busy.out.find("is not empty"), std::string::npos) << busy.out;
  EXPECT_EQ(read_file(work_ / "busy" / "keep.txt"), "mine");

  // Default directory: ./NAME.
  Result ok = run("cd " + q(work_) + " && " + modelzoo + " plugin new fresh --lang python --kind extension");
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_TRUE(fs::exists(work_ / "fresh" / "plugin.py"));
  EXPECT_NE(read_file(work_ / "fresh" / "plugin.yaml").find("kind: extension"), std::string::npos);
}

}  // namespace
}  // namespace modelzoo::testing
