// `modelzoo plugin test`, the conformance kit, run as users run it (the real CLI binary) over
// every built-in plugin, the examples, the Python example, and a deliberately broken plugin
// (tests/helpers/broken_plugin.cc) whose every mode must fail the right check for the right reason.
#include <sys/wait.h>

#include <fstream>
#include <map>
#include <sstream>

#include "daemon_harness.h"

namespace modelzoo::testing {
namespace {

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

class PluginKit : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-kit-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  fs::path path(const std::string& name) const { return dir_ / name; }
  static std::string bin(const std::string& name) { return (bin_dir() / name).string(); }

  void write(const std::string& name, const std::string& text) {
    fs::create_directories(path(name).parent_path());
    std::ofstream(path(name), std::ios::binary) << text;
  }

  // `modelzoo plugin test --json ARGS`: the parsed report; status_ and stderr_ are kept.
  nlohmann::json kit(const std::string& args) {
    auto r = run(bin("modelzoo") + " plugin test --json " + args + " 2>" + path("kit.stderr").string());
    status_ = exit_code(r.status);
    std::ifstream err(path("kit.stderr"));
    std::stringstream ss;
    ss << err.rdbuf();
    stderr_ = ss.str();
    try {
      return nlohmann::json::parse(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not JSON (" << e.what() << "): " << r.out << "\nstderr: " << stderr_;
      return nlohmann::json::object();
    }
  }

  static std::map<std::string, nlohmann::json> checks(const nlohmann::json& report) {
    std::map<std::string, nlohmann::json> out;
    for (const auto& c : report.value("checks", nlohmann::json::array())) out[c["name"].get<std::string>()] = c;
    return out;
  }

  // Every check passed (none failed, none skipped but those named), and the kit exited 0.
  void expect_all_pass(const nlohmann::json& report, const std::vector<std::string>& may_skip = {}) {
    EXPECT_EQ(status_, 0) << report.dump(2) << "\nstderr: " << stderr_;
    EXPECT_EQ(report.value("failed", -1), 0);
    for (const auto& [name, c] : checks(report)) {
      if (c["result"] == "skip" && std::find(may_skip.begin(), may_skip.end(), name) != may_skip.end()) continue;
      EXPECT_EQ(c["result"], "pass") << name << ": " << c.dump();
    }
  }

  fs::path dir_;
  int status_ = -1;
  std::string stderr_;
};

const char* kMemoryConfig = R"(models:
  - name: demo/tiny
    version: 1.0.0
    license: MIT
    files:
      - name: weights.bin
        size: 300000
        seed: 7
      - name: config.json
        content: '{"layers": 2}'
  - name: demo/tiny
    version: 0.9.0
    files:
      - name: weights.bin
        size: 1000
        seed: 3
)";

const std::vector<std::string> kRegistryChecks = {
    "hello", "welcome", "reject.token", "reject.protocol", "welcome.version", "heartbeat", "list", "metadata",
    "metadata.not-found", "exists", "download", "download.resume", "download.credit", "download.concurrent",
    "download.cancel", "download.not-found", "unknown-method", "malformed", "invalid-message", "oversized-message",
    "deadline", "liveness", "heartbeat.sustained", "messages", "shutdown"};

TEST_F(PluginKit, MemoryPluginPassesEveryCheck) {
  write("memory.yaml", kMemoryConfig);
  auto report = kit("--config " + path("memory.yaml").string() + " -- " + bin("modelzoo-plugin-memory"));
  expect_all_pass(report);
  std::vector<std::string> names;
  for (const auto& c : report["checks"]) names.push_back(c["name"]);
  EXPECT_EQ(names, kRegistryChecks);
  EXPECT_EQ(report["plugin"]["name"], "memory");
  EXPECT_FALSE(report["plugin"].contains("token"));
  EXPECT_LT(report["duration_ms"].get<int>(), 10000) << "a good plugin is checked in seconds";
  EXPECT_NE(checks(report)["metadata"]["reason"].get<std::string>().find("demo/tiny:1.0.0"), std::string::npos);
  // A pass reads as one: the plugin left after the silence, as the rule asks.
  const std::string liveness = checks(report)["liveness"]["reason"];
  EXPECT_EQ(liveness.rfind("left when the kit fell silent, as required: exited (exit 4) ", 0), 0u) << liveness;
  EXPECT_EQ(liveness.find("limit"), std::string::npos) << liveness;
}

TEST_F(PluginKit, HelpListsJsonAndJsonWorksBeforeAndAfterTest) {
  auto help = run(bin("modelzoo") + " plugin test --help");
  EXPECT_EQ(exit_code(help.status), 0) << help.out;
  EXPECT_NE(help.out.find("--json"), std::string::npos) << help.out;
  write("memory.yaml", kMemoryConfig);
  // The global form, before the subcommand (kit() puts it after `test`).
  auto r = run(bin("modelzoo") + " --json plugin test --config " + path("memory.yaml").string() + " " +
               bin("modelzoo-plugin-memory") + " 2>/dev/null");
  EXPECT_EQ(exit_code(r.status), 0) << r.out;
  nlohmann::json report = nlohmann::json::object();
  EXPECT_NO_THROW(report = nlohmann::json::parse(r.out)) << r.out;
  EXPECT_EQ(report.value("failed", -1), 0) << r.out;
}

TEST_F(PluginKit, MemoryPluginWithAChosenVersion) {
  write("memory.yaml", kMemoryConfig);
  auto report = kit("--config " + path("memory.yaml").string() + " --model demo/tiny:0.9.0 -- " +
                    bin("modelzoo-plugin-memory"));
  // 0.9.0's only file is 1000 bytes: too small for credit to run out.
  expect_all_pass(report, {"download.credit", "download.concurrent", "download.cancel"});
  EXPECT_NE(checks(report)["metadata"]["reason"].get<std::string>().find("demo/tiny:0.9.0"), std::string::npos);
}

TEST_F(PluginKit, LocalFilePluginPassesEveryCheck) {
  std::string big(200000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  write("models/acme/bert/1.2.0/model.safetensors", big);
  write("models/acme/bert/1.2.0/sub/README.txt", "hello\n");
  write("models/acme/bert/1.0.0/a.bin", "old\n");
  write("local.yaml", "root: " + path("models").string() + "\n");
  auto report = kit("--config " + path("local.yaml").string() + " " + bin("modelzoo-plugin-local-file"));
  expect_all_pass(report);
}

TEST_F(PluginKit, WithoutItsConfigurationAPluginFailsWelcome) {
  auto report = kit(bin("modelzoo-plugin-local-file"));
  EXPECT_EQ(status_, 1);
  auto c = checks(report);
  EXPECT_EQ(c["hello"]["result"], "pass");
  EXPECT_EQ(c["welcome"]["result"], "fail");
  EXPECT_NE(c["welcome"]["reason"].get<std::string>().find("configuration rejected"), std::string::npos) << c["welcome"];
  EXPECT_NE(c["welcome"]["reason"].get<std::string>().find("--config"), std::string::npos);
  // The liveness spawn runs beside the main session: the plugin may leave over its
  // configuration before or after the kit falls silent, so only a failure would be wrong.
  EXPECT_NE(c["liveness"]["result"], "fail");
  EXPECT_EQ(c["shutdown"]["result"], "skip");
  EXPECT_EQ(report["failed"], 1);
}

TEST_F(PluginKit, FormatValidatorPasses) { expect_all_pass(kit(bin("modelzoo-ext-format-validator"))); }

TEST_F(PluginKit, DecompressPasses) { expect_all_pass(kit(bin("modelzoo-ext-decompress"))); }

TEST_F(PluginKit, DecryptPassesWithAKey) {
  auto gen = run(bin("modelzoo") + " encrypt --generate-key " + path("publisher.key").string());
  ASSERT_EQ(exit_code(gen.status), 0) << gen.out;
  write("decrypt.yaml", "keys: [" + path("publisher.key").string() + "]\n");
  expect_all_pass(kit("--config " + path("decrypt.yaml").string() + " " + bin("modelzoo-ext-decrypt")));
}

TEST_F(PluginKit, TestExtensionPassesAtEveryPoint) {
  auto report = kit(bin("modelzoo-test-extension"));
  expect_all_pass(report);
  auto c = checks(report);
  for (const char* p : {"hook.pre-download", "hook.post-download", "hook.pre-load", "hook.post-load"})
    EXPECT_EQ(c[p]["result"], "pass") << p;
}

TEST_F(PluginKit, LicensePolicyExamplePasses) {
  write("policy.json", R"({"allow": ["MIT", "Apache-2.0"]})");
  auto report = kit("--config " + path("policy.json").string() + " " + bin("modelzoo-example-license-policy"));
  expect_all_pass(report);
  EXPECT_NE(checks(report)["hook.post-download"]["reason"].get<std::string>().find("continue"), std::string::npos);
}

TEST_F(PluginKit, PythonExamplePasses) {
  const fs::path example = fs::path(MODELZOO_SOURCE_DIR) / "plugins" / "python-example";
  if (!fs::exists(example / "plugin.py")) GTEST_SKIP() << "no plugins/python-example/plugin.py";
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 lacks zmq or msgpack";
  write("models/example/hello/1.0.0/hello.txt", std::string(100000, 'h'));
  write("py.yaml", "root: " + path("models").string() + "\n");
  expect_all_pass(kit("--config " + path("py.yaml").string() + " -- /usr/bin/python3 " + (example / "plugin.py").string()));
  if (fs::exists(example / "extension.py"))
    expect_all_pass(kit("-- /usr/bin/python3 " + (example / "extension.py").string()));
}

TEST_F(PluginKit, TextOutputHasOneLinePerCheckAndASummary) {
  write("memory.yaml", kMemoryConfig);
  auto r = run(bin("modelzoo") + " plugin test --config " + path("memory.yaml").string() + " " +
               bin("modelzoo-plugin-memory") + " 2>/dev/null");
  EXPECT_EQ(exit_code(r.status), 0) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<std::string> all;
  while (std::getline(lines, line)) all.push_back(line);
  ASSERT_EQ(all.size(), kRegistryChecks.size() + 2) << r.out;  // a heading, the checks, a summary
  for (std::size_t i = 0; i < kRegistryChecks.size(); ++i) EXPECT_EQ(all[i + 1], "PASS " + kRegistryChecks[i]);
  EXPECT_EQ(all.back().rfind("25 checks: 25 passed, 0 failed, 0 skipped (", 0), 0u) << all.back();

  auto bad = run(bin("modelzoo") + " plugin test " + bin("modelzoo-test-broken-plugin") + " unknown-reply 2>/dev/null");
  EXPECT_EQ(exit_code(bad.status), 1) << bad.out;
  EXPECT_NE(bad.out.find("\nFAIL unknown-method: answered the unknown method"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("1 failed"), std::string::npos) << bad.out;
}

TEST_F(PluginKit, UsageErrorsAndUnstartableCommands) {
  auto missing = run(bin("modelzoo") + " plugin test --config " + path("nope.yaml").string() + " /bin/true");
  EXPECT_EQ(exit_code(missing.status), 2) << missing.out;
  EXPECT_NE(missing.out.find("cannot read configuration file"), std::string::npos) << missing.out;
  write("list.yaml", "- a\n- b\n");
  auto not_map = run(bin("modelzoo") + " plugin test --config " + path("list.yaml").string() + " /bin/true");
  EXPECT_EQ(exit_code(not_map.status), 2) << not_map.out;
  auto bad_model = run(bin("modelzoo") + " plugin test --model ../x /bin/true");
  EXPECT_EQ(exit_code(bad_model.status), 2) << bad_model.out;

  auto report = kit(path("no-such-plugin").string());
  EXPECT_EQ(status_, 1);
  auto c = checks(report);
  EXPECT_EQ(c["hello"]["result"], "fail");
  EXPECT_NE(c["hello"]["reason"].get<std::string>().find("cannot start"), std::string::npos) << c["hello"];
  EXPECT_EQ(c["shutdown"]["result"], "skip");

  // A program that is not a plugin: it exits at once.
  auto t = kit("/bin/true");
  EXPECT_EQ(status_, 1);
  EXPECT_NE(checks(t)["hello"]["reason"].get<std::string>().find("exited (exit 0) without saying hello"), std::string::npos)
      << checks(t)["hello"];
}

TEST_F(PluginKit, TheBrokenPluginInGoodModePasses) {
  expect_all_pass(kit(bin("modelzoo-test-broken-plugin") + " good"));
}

// ---- a deliberately broken plugin: each mode fails the right check, for the right reason.

struct Broken {
  const char* mode;
  const char* check;
  const char* reason;  // a part of the failure's reason
};

void PrintTo(const Broken& b, std::ostream* os) { *os << b.mode; }

class BrokenPlugin : public PluginKit, public ::testing::WithParamInterface<Broken> {};

TEST_P(BrokenPlugin, FailsTheRightCheck) {
  const Broken& b = GetParam();
  auto report = kit(bin("modelzoo-test-broken-plugin") + " " + b.mode);
  EXPECT_EQ(status_, 1) << report.dump(2);
  auto c = checks(report);
  ASSERT_TRUE(c.count(b.check)) << report.dump(2);
  EXPECT_EQ(c[b.check]["result"], "fail") << c[b.check];
  EXPECT_NE(c[b.check]["reason"].get<std::string>().find(b.reason), std::string::npos)
      << "reason: " << c[b.check]["reason"] << "\nexpected to contain: " << b.reason;
  // The handshake and the shutdown of a plugin that breaks something else still pass.
  if (std::string(b.check) != "hello") {
    EXPECT_EQ(c["hello"]["result"], "pass");
  }
}

// Named so that --gtest_filter='PluginKit*' selects them too.
INSTANTIATE_TEST_SUITE_P(
    PluginKit, BrokenPlugin,
    ::testing::Values(
        Broken{"ignore-reject", "reject.token", "still running 3000 ms after a reject (unauthorized: wrong token)"},
        Broken{"ignore-reject", "reject.protocol", "still running 3000 ms after a reject (bad_request: no common protocol version)"},
        Broken{"exit-zero-on-reject", "reject.token", "exited with status 0 after a reject"},
        Broken{"ignore-version", "welcome.version", "still running 3000 ms after a welcome choosing protocol 2"},
        Broken{"no-heartbeat", "heartbeat", "no heartbeat in the"},
        Broken{"no-heartbeat", "heartbeat.sustained", "no heartbeat during the whole session"},
        Broken{"wrong-name", "metadata", "answered for 'broken/other:1.0.0' when asked for 'broken/model'"},
        Broken{"exists-not-found", "exists", "exists answers {\"exists\": false}, not not_found"},
        Broken{"no-credit", "download.credit", "sent a chunk of 'weights.bin' without credit"},
        Broken{"wrong-sha", "download", "'weights.bin': the 65536 bytes received have SHA-256"},
        Broken{"ignore-cancel", "download.cancel", "chunk(s) of 'weights.bin' after the cancel"},
        Broken{"unknown-reply", "unknown-method", "with a reply {}; an unknown method is answered with error bad_request"},
        Broken{"lax-names", "malformed", "metadata without 'name' answered error not_found"},
        Broken{"lax-exists", "malformed", "exists of the invalid model name '../../etc/passwd' answered a reply {\"exists\":false}"},
        Broken{"refuse-end", "download.resume", "from its end (offset 65536): the download of 'weights.bin' from offset 65536 failed after 0 bytes: error bad_request: nothing to send"},
        Broken{"answer-garbage", "invalid-message", "answered an invalid message with an error of id 0"},
        Broken{"crash-on-garbage", "invalid-message", "the plugin exited (exit 1) after 13 invalid or unexpected messages"},
        Broken{"ignore-silence", "liveness", "still running 2300 ms after the kit went silent"},
        Broken{"ignore-goodbye", "shutdown", "still running 3000 ms after goodbye"}),
    [](const ::testing::TestParamInfo<Broken>& info) {
      std::string n = std::string(info.param.mode) + "_" + info.param.check;
      for (auto& ch : n)
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      return n;
    });

// Extensions answering against the hook rules (modelzoo-test-extension's modes; the kit's
// source name is "kit", so its extra file is kit.txt).
TEST_F(PluginKit, AnExtensionBreakingTheHookRulesFails) {
  struct Case {
    std::string config, check, reason;
  } cases[] = {
      {"mode: escape", "hook.post-download", "replaced 'kit.txt' with '/etc/hostname'"},
      {"mode: escape", "hook.pre-download", "answered 'replace' at pre-download (only at post-download)"},
      {"mode: rewrite\nrewrite_to: other/model", "hook.post-download", "answered 'rewrite' at post-download (only at pre-download)"},
      {"mode: error", "hook.pre-load", "answered error internal: test extension failed on purpose"},
  };
  for (const auto& c : cases) {
    write("ext.yaml", c.config + "\n");
    auto report = kit("--config " + path("ext.yaml").string() + " " + bin("modelzoo-test-extension"));
    EXPECT_EQ(status_, 1) << c.config;
    auto got = checks(report)[c.check];
    EXPECT_EQ(got["result"], "fail") << c.config << ": " << got;
    EXPECT_NE(got.value("reason", "").find(c.reason), std::string::npos) << c.config << ": " << got;
  }
}

}  // namespace
}  // namespace modelzoo::testing
