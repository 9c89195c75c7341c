// The Python plugin printed in docs/protocol.md ("Worked example") is extracted from the
// document and run against the real daemon and through the conformance kit (`modelzoo plugin
// test`), so the spec, the implementation and the kit cannot drift apart.
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

std::string python_example() {
  std::ifstream in(fs::path(MODELZOO_SOURCE_DIR) / "docs" / "protocol.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  auto section = doc.find("## Worked example");
  auto start = doc.find("```python\n", section);
  auto end = doc.find("\n```", start + 10);
  if (section == std::string::npos || start == std::string::npos || end == std::string::npos) return {};
  return doc.substr(start + 10, end - start - 10 + 1);
}

TEST(Docs, PythonExampleFromTheProtocolSpecServesAVerifiedPull) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3-zmq or python3-msgpack missing (scripts/deps.sh installs them)";
  std::string code = python_example();
  ASSERT_FALSE(code.empty()) << "no ```python block under '## Worked example' in docs/protocol.md";
  Daemon d(std::string(kFastTimers) +
               "sources:\n  - name: pyexample\n    command: [/usr/bin/python3, '@DIR@/example_plugin.py']\n",
           false);
  std::ofstream(d.dir() / "example_plugin.py") << code;
  d.start();
  auto p = d.wait_plugin("pyexample");
  EXPECT_EQ(p["plugin"], "pyexample");
  auto show = d.client().show("example/hello");
  EXPECT_EQ(show["best"], "pyexample");
  auto pulled = d.client().pull("example/hello");
  EXPECT_EQ(pulled["bytes_downloaded"], show["metadata"]["files"][0]["size"]);
  EXPECT_EQ(d.client().models()["models"][0]["name"], "example/hello");
  // Restart after kill -9, like any plugin.
  pid_t pid = p["pid"].get<pid_t>();
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(wait_until([&] {
    auto now = d.plugin("pyexample");
    return now["pid"] != pid && now["state"] == "ready";
  }));
  EXPECT_EQ(d.client().show("example/hello")["best"], "pyexample");
  EXPECT_EQ(WEXITSTATUS(d.stop()), 0);
  EXPECT_NE(d.log().find("[pyexample] stopped (exit 0)"), std::string::npos) << "the example honours goodbye";
}

// The doc calls the example "the whole plugin side": every check of the kit must pass, none
// skipped.
TEST(Docs, PythonExampleFromTheProtocolSpecPassesTheConformanceKit) {
  if (!fs::exists("/usr/bin/python3")) GTEST_SKIP() << "no /usr/bin/python3";
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3-zmq or python3-msgpack missing (scripts/deps.sh installs them)";
  std::string code = python_example();
  ASSERT_FALSE(code.empty()) << "no ```python block under '## Worked example' in docs/protocol.md";
  char tmpl[] = "/tmp/modelzoo-docs-kit-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  std::ofstream(dir / "example_plugin.py") << code;
  auto r = run((bin_dir() / "modelzoo").string() + " plugin test --json -- /usr/bin/python3 " +
               (dir / "example_plugin.py").string() + " 2>" + (dir / "kit.stderr").string());
  std::error_code ec;
  nlohmann::json report;
  try {
    report = nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the kit printed no JSON report (" << e.what() << "): " << r.out;
  }
  fs::remove_all(dir, ec);
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.out;
  EXPECT_EQ(report.value("failed", -1), 0) << r.out;
  EXPECT_EQ(report.value("skipped", -1), 0) << r.out;
  ASSERT_TRUE(report.contains("checks")) << r.out;
  EXPECT_EQ(report["checks"].size(), 25u) << r.out;
  for (const auto& c : report["checks"]) EXPECT_EQ(c["result"], "pass") << c.dump();
}

}  // namespace
}  // namespace modelzoo::testing
