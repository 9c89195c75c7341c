// The `modelzoo` command against a real daemon: one clear line when none runs, --json output.
#include <cstdio>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

TEST(Cli, NoDaemonGivesOneClearLineAndExitCode3) {
  auto r = run((bin_dir() / "modelzoo").string() + " --runtime-dir /tmp/modelzoo-no-such-dir status");
  EXPECT_EQ(WEXITSTATUS(r.status), 3);
  EXPECT_EQ(r.out, "modelzoo: daemon not running (no socket at /tmp/modelzoo-no-such-dir/client.sock)\n");
}

TEST(Cli, PullPrintsThePathAndJsonIsParseable) {
  Daemon d(std::string(kFastTimers) + "sources:\n" + memory_source("mem", 0, "demo/cli"));
  d.wait_plugin("mem");
  std::string cli = (bin_dir() / "modelzoo").string() + " --runtime-dir " + d.runtime_dir().string();
  auto pull = run(cli + " pull demo/cli 2>/dev/null");
  EXPECT_EQ(WEXITSTATUS(pull.status), 0) << pull.out;
  std::string last = pull.out.substr(pull.out.rfind('\n', pull.out.size() - 2) + 1);
  EXPECT_EQ(last, (d.cache_dir() / "models" / "demo" / "cli" / "1.0.0").string() + "\n") << pull.out;
  auto plugins = run(cli + " plugins --json");
  auto j = nlohmann::json::parse(plugins.out);
  EXPECT_EQ(j["plugins"][0]["name"], "mem");
  auto missing = run(cli + " show no/such --json 2>/dev/null");
  EXPECT_EQ(WEXITSTATUS(missing.status), 1);
  EXPECT_EQ(nlohmann::json::parse(missing.out)["error"]["code"], "not_found");
}

}  // namespace
}  // namespace modelzoo::testing
