// Hostile model names through the real daemon and CLI: a pull of a name or version that could
// become a path outside the cache is refused with a clear error (bad_request, naming what is
// wrong), and nothing is written anywhere: not outside the cache, and not inside it either.
#include <set>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

// Every path under `dir` except the daemon's runtime directory and log (which change anyway).
std::set<std::string> snapshot(const fs::path& dir, const fs::path& runtime) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it) {
    if (it->path() == runtime) {
      it.disable_recursion_pending();
      continue;
    }
    if (it->path().filename() == "daemon.log") continue;
    out.insert(it->path().lexically_relative(dir).string());
  }
  return out;
}

TEST(HostileNames, PullsOfHostileNamesAreRefusedAndWriteNothing) {
  // A local-file registry whose root sits next to a directory the names try to reach.
  Daemon d(std::string(kFastTimers) + "sources:\n" + memory_source("mem", 0, "demo/ok") +
           "  - name: local\n    plugin: local-file\n    priority: 10\n    config:\n      root: @DIR@/models\n");
  fs::create_directories(d.dir() / "models" / "org" / "m" / "1.0.0");
  std::ofstream(d.dir() / "models" / "org" / "m" / "1.0.0" / "w.bin") << "weights";
  fs::create_directories(d.dir() / "outside" / "1.0.0");
  std::ofstream(d.dir() / "outside" / "1.0.0" / "secret") << "not a model";
  d.wait_plugin("mem");
  d.wait_plugin("local");
  std::string cli = (bin_dir() / "modelzoo").string() + " --runtime-dir " + d.runtime_dir().string();
  auto before = snapshot(d.dir(), d.runtime_dir());

  const std::vector<std::string> refs = {
      "../outside",       "../../../../etc/passwd", "/etc/passwd", "models/../../outside", "org/../../outside",
      "org/m/..",          "./org/m",                "org//m",      "-rf",                  ".hidden",
      "%2e%2e/outside",    "~/x",                    "a\\..\\b",    "org/m:../../outside",  "org/m:1.0.0/../x",
      "org/m:-1",          "org/m:",                 "\xc0\xae\xc0\xae/outside",            "mo\xe2\x80\xae" "del",
      std::string(300, 'a'), "org/m\ttab"};
  for (const auto& ref : refs) {
    SCOPED_TRACE(ref);
    auto r = run(cli + " pull --json -- '" + ref + "' 2>/dev/null");
    EXPECT_EQ(WEXITSTATUS(r.status), 1) << r.out;
    nlohmann::json j;
    ASSERT_NO_THROW(j = nlohmann::json::parse(r.out)) << r.out;
    EXPECT_EQ(j["error"]["code"], "bad_request") << r.out;
    std::string msg = j["error"]["message"].get<std::string>();
    EXPECT_TRUE(msg.find("model name") != std::string::npos || msg.find("version") != std::string::npos ||
                msg.find("model reference") != std::string::npos || msg.find("UTF-8") != std::string::npos)
        << msg;
    // The plain output is one clear line too.
    auto plain = run(cli + " pull -- '" + ref + "' 2>&1");
    EXPECT_NE(WEXITSTATUS(plain.status), 0);
    EXPECT_NE(plain.out.find("bad_request"), std::string::npos) << plain.out;
  }
  // A name with a NUL byte (no shell can pass one): through the client library.
  try {
    d.client().call("pull", {{"model", std::string("org/m\0/../../outside", 21)}}, 5s);
    ADD_FAILURE() << "accepted a name with a NUL byte";
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::bad_request) << e.what();
  }
  EXPECT_EQ(snapshot(d.dir(), d.runtime_dir()), before);
  // The daemon is still fine and a real pull works.
  auto ok = run(cli + " pull org/m 2>/dev/null");
  EXPECT_EQ(WEXITSTATUS(ok.status), 0) << ok.out;
  EXPECT_TRUE(fs::exists(d.cache_dir() / "models" / "org" / "m" / "1.0.0" / "w.bin"));
}

}  // namespace
}  // namespace modelzoo::testing
