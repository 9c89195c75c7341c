// Isolation of plugins (docs/security.md) with the real daemon and real plugin processes:
// resource limits reach the plugin, a plugin that exceeds one is ended, restarted under its
// policy and the limit is named; the Landlock sandbox confines what a plugin may read and
// write while the built-in plugins (and a Python one) keep serving pulls.
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <map>

#include "daemon_harness.h"
#include "model_files.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/codec/zstd.h"

namespace modelzoo::testing {
namespace {

std::string config_with(const std::string& sources, const std::string& top = "") {
  return std::string(kFastTimers) + top + "sources:\n" + sources;
}

fs::path probe_bin() { return bin_dir() / "modelzoo-test-limits-probe"; }

// A source running the probe with `actions`; `extra` is more YAML of the source (indented 4).
std::string probe_source(const std::string& name, const std::vector<std::string>& actions, const std::string& extra = "") {
  std::string cmd = "[" + probe_bin().string();
  for (const auto& a : actions) cmd += ", '" + a + "'";
  return "  - name: " + name + "\n    command: " + cmd + "]\n" + extra;
}

fs::path data_dir_of(const Daemon& d, const std::string& source) { return d.dir() / "data" / "plugin-data" / source; }

// The probe's report (written whole at its end) as lines; empty until it is complete.
std::vector<std::string> report_of(const Daemon& d, const std::string& source) {
  std::ifstream in(data_dir_of(d, source) / "report.txt");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

std::vector<std::string> wait_report(Daemon& d, const std::string& source, const std::string& last = "done") {
  std::vector<std::string> lines;
  bool ok = wait_until([&] {
    lines = report_of(d, source);
    return !lines.empty() && lines.back() == last;
  }, 20s);
  EXPECT_TRUE(ok) << source << " wrote no complete report; log:\n" << d.log();
  return lines;
}

// The line of `lines` that starts with `prefix`, or "".
std::string line_with(const std::vector<std::string>& lines, const std::string& prefix) {
  for (const auto& l : lines)
    if (l.rfind(prefix, 0) == 0) return l;
  return "";
}

// "limit Max open files  64  64  files" -> {"64", "64"}.
std::pair<std::string, std::string> limit_values(const std::vector<std::string>& lines, const std::string& name) {
  std::string l = line_with(lines, "limit " + name);
  std::istringstream in(l.substr(std::min(l.size(), 6 + name.size())));
  std::string soft, hard;
  in >> soft >> hard;
  return {soft, hard};
}

bool wait_event(EventSubscriber& sub, const std::function<bool(const Event&)>& pred, std::chrono::milliseconds limit = 20s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = sub.next(100ms);
    if (e && pred(*e)) return true;
  }
  return false;
}

// ---- resource limits ------------------------------------------------------------------------

TEST(ResourceLimits, PluginRunsUnderItsLimitsAndCoreDumpsAreOffByDefault) {
  std::string once = "    restart: {policy: never}\n";
  Daemon d(config_with(probe_source("limited", {"limits", "raise-nofile", "open-files"},
                                    once + "    limits: {open_files: 64, cpu_seconds: 30, file_size: 5MiB}\n") +
                           probe_source("defaults", {"limits", "open-files"}, once),
                       "limits: {open_files: 128}\n"));
  auto limited = wait_report(d, "limited");
  EXPECT_EQ(limit_values(limited, "Max open files"), std::make_pair(std::string("64"), std::string("64")));
  EXPECT_EQ(limit_values(limited, "Max cpu time"), std::make_pair(std::string("30"), std::string("31")));
  EXPECT_EQ(limit_values(limited, "Max file size"), std::make_pair(std::string("5242880"), std::string("5242880")));
  EXPECT_EQ(limit_values(limited, "Max core file size"), std::make_pair(std::string("0"), std::string("0")));
  // Enforced: descriptors run out below 64; and the hard limit cannot be raised, even by root.
  std::string open = line_with(limited, "open-files ");
  EXPECT_NE(open.find(" EMFILE"), std::string::npos) << open;
  EXPECT_LT(std::stoi(open.substr(11)), 64);
  EXPECT_EQ(line_with(limited, "raise-nofile"), "raise-nofile EPERM");

  // The daemon's default `limits` apply where the source sets none; core dumps are off anyway.
  auto defaults = wait_report(d, "defaults");
  EXPECT_EQ(limit_values(defaults, "Max open files"), std::make_pair(std::string("128"), std::string("128")));
  EXPECT_EQ(limit_values(defaults, "Max core file size"), std::make_pair(std::string("0"), std::string("0")));

  // The status shows the effective limits (null: inherited from the daemon).
  auto p = d.plugin("limited");
  EXPECT_EQ(p["limits"], nlohmann::json({{"address_space", nullptr}, {"cpu_seconds", 30}, {"open_files", 64},
                                         {"file_size", 5242880}, {"core_dumps", false}}));
  EXPECT_EQ(p["sandbox"], "off");
  EXPECT_EQ(d.plugin("defaults")["limits"]["open_files"], 128);
  auto out = run(bin_dir().string() + "/modelzoo --runtime-dir " + d.runtime_dir().string() + " plugins");
  EXPECT_NE(out.out.find("limited: cpu 30 s, open files 64, file size 5 MiB, core dumps off"), std::string::npos) << out.out;
}

TEST(ResourceLimits, CpuLimitEndsThePluginWithSigxcpuWhichIsNamedAndRestarted) {
  Daemon d(config_with(probe_source("burner", {"burn"},
                                    "    limits: {cpu_seconds: 1}\n"
                                    "    restart: {backoff_initial_ms: 20, max_failures: 2, hello_timeout_ms: 60000}\n")));
  // Each run takes a second of CPU time: the second run's exit comes after this subscription.
  EventSubscriber sub(d.runtime_dir().string(), {"plugin.exited"});
  nlohmann::json exited;
  EXPECT_TRUE(wait_event(sub, [&](const Event& e) {
    exited = e.body;
    return true;
  }, 60s));
  EXPECT_EQ(exited["plugin"], "burner");
  EXPECT_EQ(exited["status"], "signal 24 (SIGXCPU)") << exited.dump();
  EXPECT_EQ(exited["limit"], "CPU time limit of 1 s exceeded") << exited.dump();
  auto p = d.wait_plugin("burner", "failed", 20s);
  EXPECT_EQ(p["restarts"], 1);
  EXPECT_EQ(p["last_exit"], "signal 24 (SIGXCPU)");
  EXPECT_EQ(p["last_limit"], "CPU time limit of 1 s exceeded");
  EXPECT_NE(d.log().find("CPU time limit of 1 s exceeded"), std::string::npos);
  auto out = run(bin_dir().string() + "/modelzoo --runtime-dir " + d.runtime_dir().string() + " plugins");
  EXPECT_NE(out.out.find("signal 24 (SIGXCPU); CPU time limit of 1 s exceeded"), std::string::npos) << out.out;
}

TEST(ResourceLimits, APluginIgnoringSigxcpuIsKilledAtTheHardLimit) {
  Daemon d(config_with(probe_source("stubborn", {"burn-ignoring"},
                                    "    limits: {cpu_seconds: 1}\n    restart: {policy: never, hello_timeout_ms: 60000}\n")));
  auto p = d.wait_plugin("stubborn", "stopped", 60s);
  EXPECT_EQ(p["last_exit"], "signal 9 (SIGKILL)");
  EXPECT_EQ(p["last_limit"], "CPU time limit of 1 s exceeded (killed at the hard limit)");
}

TEST(ResourceLimits, FileSizeLimitEndsThePluginWithSigxfsz) {
  Daemon d(config_with(probe_source("writer", {"write-big=4194304"},
                                    "    limits: {file_size: 1MiB}\n    restart: {policy: never}\n")));
  auto p = d.wait_plugin("writer", "stopped", 20s);
  EXPECT_EQ(p["last_exit"], "signal 25 (SIGXFSZ)");
  EXPECT_EQ(p["last_limit"], "file size limit of 1 MiB exceeded");
  EXPECT_EQ(fs::file_size(data_dir_of(d, "writer") / "big.bin"), 1u << 20);
}

// The probe is built without sanitizers, so this holds in the ASan build too (a sanitized
// program reserves terabytes of address space and could not start under such a limit).
TEST(ResourceLimits, AddressSpaceLimitFailsLargeAllocations) {
  std::string once = "    restart: {policy: never}\n";
  Daemon d(config_with(probe_source("small", {"alloc=536870912"}, once + "    limits: {address_space: 64MiB}\n") +
                       probe_source("large", {"alloc=536870912"}, once)));
  auto p = d.wait_plugin("small", "stopped", 20s);
  EXPECT_EQ(p["last_exit"], "exit 1");
  EXPECT_NE(p["last_error"].get<std::string>().find("failed to allocate 536870912 bytes"), std::string::npos) << p.dump();
  EXPECT_EQ(p["last_limit"], "may have hit its address-space limit of 64 MiB (it reported an allocation failure)");
  EXPECT_EQ(p["limits"]["address_space"], 64u << 20);
  // Without the limit the same allocation succeeds (no address-space limit by default).
  EXPECT_EQ(line_with(wait_report(d, "large"), "alloc"), "alloc ok");
  EXPECT_TRUE(d.plugin("large")["limits"]["address_space"].is_null());
}

// ---- the Landlock sandbox -------------------------------------------------------------------

// The kernel's Landlock ABI, 0 without Landlock.
int landlock_abi() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, 1U);
  return abi > 0 ? static_cast<int>(abi) : 0;
}

#define REQUIRE_LANDLOCK()                                                                   \
  do {                                                                                       \
    if (landlock_abi() == 0)                                                                 \
      GTEST_SKIP() << "the kernel has no Landlock (landlock_create_ruleset: " << std::strerror(errno) << ")"; \
  } while (0)

TEST(Sandbox, APluginReachesOnlyItsOwnFilesAndWhatItIsGranted) {
  REQUIRE_LANDLOCK();
  Daemon d("", false);
  fs::path outside = d.dir() / "outside";  // the test's directory: the plugin has no business there
  fs::create_directories(outside / "granted-read");
  fs::create_directories(outside / "granted-write");
  std::ofstream(outside / "secret.txt") << "secret\n";
  std::ofstream(outside / "granted-read" / "ok.txt") << "ok\n";
  fs::path data = data_dir_of(d, "boxed");
  std::vector<std::string> actions = {
      "read=" + probe_bin().string(),                        // its own executable's directory
      "write=" + (data / "state.txt").string(),              // its data directory
      "write=" + (data / "tmp" / "scratch").string(),        // ...where TMPDIR points
      "write=" + (outside / "dropped.txt").string(),         // elsewhere: denied
      "read=" + (outside / "secret.txt").string(),           // denied
      "read=" + (d.dir() / "modelzood.yaml").string(),       // the daemon's configuration: denied
      "write=" + (bin_dir() / "planted").string(),           // its own directory is read-only
      "write=/tmp/modelzoo-sandbox-escape",                  // /tmp: denied (TMPDIR is its own)
      "read=/etc/shadow",                                    // /etc is granted entry by entry
      "read=/etc/ld.so.cache",
      "read=/proc/self/status",
      "exec=/usr/bin/env",                                   // programs still run
      "read=" + (outside / "granted-read" / "ok.txt").string(),
      "write=" + (outside / "granted-write" / "new.txt").string(),
      "limits"};
  std::ofstream(d.dir() / "modelzood.yaml")
      << config_with(probe_source("boxed", actions,
                                  "    restart: {policy: never}\n    sandbox: landlock\n"
                                  "    sandbox_read: [" + (outside / "granted-read").string() + "]\n"
                                  "    sandbox_write: [" + (outside / "granted-write").string() + "]\n"));
  d.start();
  auto r = wait_report(d, "boxed");
  auto expect = [&](const std::string& line) { EXPECT_NE(std::find(r.begin(), r.end(), line), r.end()) << line; };
  expect("read " + probe_bin().string() + " ok");
  expect("write " + (data / "state.txt").string() + " ok");
  expect("write " + (data / "tmp" / "scratch").string() + " ok");
  expect("write " + (outside / "dropped.txt").string() + " EACCES");
  expect("read " + (outside / "secret.txt").string() + " EACCES");
  expect("read " + (d.dir() / "modelzood.yaml").string() + " EACCES");
  expect("write " + (bin_dir() / "planted").string() + " EACCES");
  expect("write /tmp/modelzoo-sandbox-escape EACCES");
  if (fs::exists("/etc/shadow")) expect("read /etc/shadow EACCES");
  expect("read /etc/ld.so.cache ok");
  expect("read /proc/self/status ok");
  expect("exec /usr/bin/env ok");
  expect("read " + (outside / "granted-read" / "ok.txt").string() + " ok");
  expect("write " + (outside / "granted-write" / "new.txt").string() + " ok");
  EXPECT_FALSE(fs::exists(outside / "dropped.txt"));
  EXPECT_FALSE(fs::exists("/tmp/modelzoo-sandbox-escape"));
  EXPECT_EQ(d.plugin("boxed")["sandbox"], "landlock (ABI " + std::to_string(landlock_abi()) + ")");
}

TEST(Sandbox, BuiltinPluginsServePullsUnderTheSandbox) {
  REQUIRE_LANDLOCK();
  char tmpl[] = "/tmp/modelzoo-models-XXXXXX";
  fs::path root = ::mkdtemp(tmpl);
  std::string gguf = valid_gguf();
  fs::create_directories(root / "files" / "iso" / "zst" / "1.0.0");
  std::ofstream(root / "model.gguf", std::ios::binary) << gguf;
  codec::compress_file(root / "model.gguf", root / "files" / "iso" / "zst" / "1.0.0" / "model.gguf.zst");
  fs::create_directories(root / "files" / "iso" / "plain" / "1.0.0");
  std::ofstream(root / "files" / "iso" / "plain" / "1.0.0" / "model.safetensors", std::ios::binary) << valid_safetensors();
  Daemon d(config_with("  - name: files\n    plugin: local-file\n    config:\n      root: " + (root / "files").string() + "\n" +
                           memory_source("mem", 0, "demo/a") + "  - name: decompress\n    plugin: decompress\n" +
                           "  - name: validate\n    plugin: format-validator\n",
                       "sandbox: landlock\n"));
  std::string expected = "landlock (ABI " + std::to_string(landlock_abi()) + ")";
  for (auto n : {"files", "mem", "decompress", "validate"}) EXPECT_EQ(d.wait_plugin(n)["sandbox"], expected) << n;
  EXPECT_EQ(d.client().pull("demo/a")["files"].size(), 1u);
  EXPECT_EQ(d.client().pull("iso/plain")["files"][0]["sha256"], bus::Sha256::of(valid_safetensors()));
  // decompress writes the plain file into the cache's staging area; the validator reads it.
  auto reply = d.client().pull("iso/zst");
  ASSERT_EQ(reply["files"].size(), 1u) << reply.dump();
  EXPECT_EQ(reply["files"][0]["name"], "model.gguf");
  EXPECT_EQ(reply["files"][0]["sha256"], bus::Sha256::of(gguf));
  std::error_code ec;
  fs::remove_all(root, ec);
}

TEST(Sandbox, APythonPluginRunsUnderTheSandbox) {
  REQUIRE_LANDLOCK();
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    GTEST_SKIP() << "/usr/bin/python3 with python3-zmq and python3-msgpack is missing";
  fs::path repo = MODELZOO_SOURCE_DIR;
  Daemon d("", false);
  fs::path models = d.dir() / "models";
  fs::create_directories(models / "py" / "model" / "1.0.0");
  std::ofstream(models / "py" / "model" / "1.0.0" / "weights.bin") << "python under landlock\n";
  // The example imports the SDK from the source tree: a directory the sandbox must be told of.
  std::ofstream(d.dir() / "modelzood.yaml")
      << config_with("  - name: py\n    command: [/usr/bin/python3, '" + (repo / "plugins" / "python-example" / "plugin.py").string() +
                     "']\n    sandbox: require\n    sandbox_read: [" + (repo / "plugin-sdk" / "python").string() + ", " +
                     models.string() + "]\n    config:\n      root: " + models.string() + "\n");
  d.start();
  EXPECT_EQ(d.wait_plugin("py", "ready", 20s)["sandbox"], "landlock (ABI " + std::to_string(landlock_abi()) + ")");
  auto reply = d.client().pull("py/model");
  ASSERT_EQ(reply["files"].size(), 1u);
  EXPECT_EQ(reply["files"][0]["sha256"], bus::Sha256::of("python under landlock\n"));
}

// Where the kernel has no Landlock, `sandbox: landlock` runs the plugin unconfined and says
// why, and `sandbox: require` does not start it. modelzood runs under a seccomp filter that
// makes the Landlock calls fail with ENOSYS, as on a kernel built without it.
TEST(Sandbox, WithoutLandlockItRunsUnconfinedOrRequireRefusesToStart) {
  Daemon d(config_with(memory_source("loose", 0, "demo/a") + "    sandbox: landlock\n" +
                       memory_source("strict", 0, "demo/b", "", 65536, "{policy: never}") + "    sandbox: require\n"),
           false);
  d.launcher = {(bin_dir() / "modelzoo-test-without-landlock").string()};
  d.start();
  const std::string why = "the kernel has no Landlock (landlock_create_ruleset: ENOSYS; Linux 5.13 or later)";
  EXPECT_EQ(d.wait_plugin("loose")["sandbox"], "unsupported: " + why);
  EXPECT_EQ(d.client().pull("demo/a")["files"].size(), 1u);
  EXPECT_TRUE(wait_until([&] { return d.log().find("[loose] runs without its sandbox: " + why) != std::string::npos; }));

  auto strict = d.wait_plugin("strict", "stopped");
  EXPECT_EQ(strict["sandbox"], "unsupported: " + why);
  EXPECT_EQ(strict["last_error"], "the sandbox is required (sandbox: require) but unavailable: " + why);
  EXPECT_EQ(strict["last_exit"], "not started");
  EXPECT_EQ(strict["pid"], 0) << "never started";
  try {
    d.client().pull("demo/b");
    ADD_FAILURE() << "demo/b was served without its required sandbox";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("strict"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace modelzoo::testing
