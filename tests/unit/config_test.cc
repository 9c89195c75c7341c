// Unit tests of the daemon configuration and plugin manifests (modelzoo/config/config.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/config/config.h"
#include "resource_limits.h"
#include "modelzoo/codec/crypt.h"
#include "modelzoo/codec/secret.h"

namespace {

namespace fs = std::filesystem;
using modelzoo::supervisor::ConfigError;
using modelzoo::supervisor::DaemonConfig;
using modelzoo::supervisor::default_config_yaml;
using modelzoo::supervisor::load_manifest;
using modelzoo::supervisor::parse_config;
using modelzoo::supervisor::RestartPolicy;
using modelzoo::supervisor::Source;
using modelzoo::supervisor::yaml_to_json;
using nlohmann::json;
using std::chrono::milliseconds;
using testing::HasSubstr;

const char* const kEnvVars[] = {"MODELZOO_RUNTIME_DIR", "MODELZOO_CACHE_DIR",   "MODELZOO_DATA_DIR",
                                "MODELZOO_LOG_LEVEL",   "MODELZOO_HEARTBEAT_INTERVAL_MS", "XDG_RUNTIME_DIR",
                                "XDG_CACHE_HOME",       "XDG_DATA_HOME"};

// Every test runs with a clean environment and its own data directory (so the default
// plugin directory, <data_dir>/plugins, is an empty temporary one, never the user's).
class Config : public testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kEnvVars) {
      if (const char* old = std::getenv(v)) saved_[v] = old;
      ::unsetenv(v);
    }
    std::string tmpl = (fs::temp_directory_path() / "modelzoo-config-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    data_dir_ = tmp_ / "data";
    ::setenv("MODELZOO_DATA_DIR", data_dir_.c_str(), 1);
  }
  void TearDown() override {
    for (const char* v : kEnvVars) ::unsetenv(v);
    for (const auto& [k, v] : saved_) ::setenv(k.c_str(), v.c_str(), 1);
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  DaemonConfig parse(const std::string& yaml) { return parse_config(yaml, "test.yaml", "/opt/modelzoo/bin"); }

  // Expects parse() to throw ConfigError whose message contains every needle.
  void expect_error(const std::string& yaml, std::initializer_list<std::string> needles) {
    try {
      parse(yaml);
      ADD_FAILURE() << "accepted:\n" << yaml;
    } catch (const ConfigError& e) {
      for (const auto& n : needles) EXPECT_THAT(e.what(), HasSubstr(n)) << yaml;
    }
  }

  void write(const fs::path& file, const std::string& text) {
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
  }

  std::map<std::string, std::string> saved_;
  fs::path tmp_, data_dir_;
};

// ---- the embedded default -------------------------------------------------------------------

TEST_F(Config, EmbeddedDefault) {
  DaemonConfig c = parse_config(default_config_yaml(), "embedded default configuration", "/opt/modelzoo/bin");
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(c.data_dir, data_dir_);
  EXPECT_EQ(c.heartbeat_interval, milliseconds(1000));
  EXPECT_EQ(c.heartbeat_liveness, 3);
  EXPECT_EQ(c.request_timeout, milliseconds(30000));
  EXPECT_EQ(c.log_level, "info");
  ASSERT_EQ(c.plugin_dirs.size(), 1u);
  EXPECT_EQ(c.plugin_dirs[0], data_dir_ / "plugins");

  ASSERT_EQ(c.sources.size(), 4u);
  const Source& local = c.sources[0];
  EXPECT_EQ(local.name, "local");
  EXPECT_EQ(local.manifest.name, "local-file");
  ASSERT_EQ(local.manifest.command.size(), 1u);
  EXPECT_EQ(local.manifest.command[0], "/opt/modelzoo/bin/modelzoo-plugin-local-file");
  EXPECT_EQ(local.priority, 10);
  // The built-in local-file source's root is where the daemon may read files itself.
  ASSERT_EQ(local.local_read.size(), 1u);
  EXPECT_EQ(local.local_read[0], data_dir_ / "models");
  EXPECT_TRUE(c.sources[1].local_read.empty());  // memory: nothing to read
  EXPECT_FALSE(local.handles.has_value());
  EXPECT_EQ(local.config, json({{"root", (data_dir_ / "models").string()}}));  // ${data_dir} expanded
  EXPECT_EQ(local.restart.mode, RestartPolicy::Mode::always);

  const Source& memory = c.sources[1];
  EXPECT_EQ(memory.name, "memory");
  EXPECT_EQ(memory.manifest.name, "memory");
  EXPECT_EQ(memory.manifest.command[0], "/opt/modelzoo/bin/modelzoo-plugin-memory");
  EXPECT_EQ(memory.priority, 0);
  ASSERT_TRUE(memory.config["models"].is_array());
  ASSERT_EQ(memory.config["models"].size(), 1u);
  const json& tiny = memory.config["models"][0];
  EXPECT_EQ(tiny["name"], "demo/tiny");
  EXPECT_EQ(tiny["version"], "1.0.0");  // stays a string
  EXPECT_EQ(tiny["tags"], json::array({"demo"}));
  ASSERT_EQ(tiny["files"].size(), 2u);
  EXPECT_EQ(tiny["files"][0]["name"], "README.md");
  EXPECT_EQ(tiny["files"][0]["content"], "# demo/tiny\n\nPseudo-random weights for trying modelzoo out.\n");
  EXPECT_TRUE(tiny["files"][1]["size"].is_number_integer());
  EXPECT_EQ(tiny["files"][1]["size"], 16777216);
  EXPECT_EQ(tiny["files"][1]["seed"], 1);
}

TEST_F(Config, LoadConfigWithoutPathUsesTheEmbeddedDefault) {
  DaemonConfig c = modelzoo::supervisor::load_config({}, "/x");
  ASSERT_EQ(c.sources.size(), 4u);
  EXPECT_EQ(c.sources[0].name, "local");
  EXPECT_EQ(c.sources[1].name, "memory");
  // The built-in extensions that act only on their own formats run by default.
  EXPECT_EQ(c.sources[2].name, "decompress");
  EXPECT_EQ(c.sources[2].manifest.kind, "extension");
  EXPECT_EQ(c.sources[2].manifest.command[0], "/x/modelzoo-ext-decompress");
  EXPECT_EQ(c.sources[3].name, "validate");
  EXPECT_EQ(c.sources[3].manifest.command[0], "/x/modelzoo-ext-format-validator");
}

TEST_F(Config, ExtensionSettings) {
  DaemonConfig c = parse(
      "sources:\n"
      "  - name: check\n    command: [/bin/check]\n    kind: extension\n    order: -5\n"
      "    points: [post-download, pre-load]\n    formats: [GGUF, onnx]\n    hook_timeout_ms: 1500\n"
      "  - name: dec\n    plugin: decrypt\n");
  ASSERT_EQ(c.sources.size(), 2u);
  const auto& x = c.sources[0].extension;
  EXPECT_EQ(c.sources[0].manifest.kind, "extension");
  EXPECT_EQ(x.order, -5);
  EXPECT_EQ(*x.points, (std::vector<std::string>{"post-download", "pre-load"}));
  EXPECT_EQ(*x.formats, (std::vector<std::string>{"gguf", "onnx"}));
  EXPECT_EQ(x.hook_timeout, milliseconds(1500));
  EXPECT_EQ(c.sources[1].manifest.kind, "extension");
  EXPECT_FALSE(c.sources[1].extension.points.has_value());  // from the extension's hello
  EXPECT_EQ(c.sources[1].extension.hook_timeout, milliseconds(300000));
}

TEST_F(Config, ExtensionSettingsAreChecked) {
  auto fails = [&](const std::string& yaml, const std::string& why) {
    try {
      parse(yaml);
      ADD_FAILURE() << "accepted: " << yaml;
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr(why));
    }
  };
  fails("sources:\n  - name: x\n    command: [/bin/x]\n    kind: extension\n    points: [after-load]\n",
        "'after-load' is not an extension point");
  fails("sources:\n  - name: x\n    command: [/bin/x]\n    kind: extension\n    points: []\n",
        "must name at least one extension point");
  fails("sources:\n  - name: x\n    command: [/bin/x]\n    kind: extension\n    formats: [.gguf]\n",
        "'.gguf' is not a file format");
  fails("sources:\n  - name: x\n    command: [/bin/x]\n    kind: gadget\n", "'gadget' is not a plugin kind");
  fails("sources:\n  - name: x\n    plugin: memory\n    order: 3\n", "settings of extensions");
  fails("sources:\n  - name: x\n    plugin: decrypt\n    kind: registry\n", "is set by the plugin's manifest");
  fails("sources:\n  - name: x\n    command: [/bin/x]\n    kind: extension\n    hook_timeout_ms: 1\n",
        "hook_timeout_ms");
}

TEST_F(Config, LoadConfigFromAFile) {
  write(tmp_ / "modelzood.yaml", "log_level: debug\nsources:\n  - name: mem\n    plugin: memory\n");
  DaemonConfig c = modelzoo::supervisor::load_config(tmp_ / "modelzood.yaml", "/x");
  EXPECT_EQ(c.log_level, "debug");
  ASSERT_EQ(c.sources.size(), 1u);
  EXPECT_EQ(c.sources[0].name, "mem");
  try {
    modelzoo::supervisor::load_config(tmp_ / "missing.yaml", "/x");
    ADD_FAILURE() << "loaded a missing file";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("missing.yaml"));
  }
}

TEST_F(Config, EmptyFileHasNoSources) {
  DaemonConfig c = parse("");
  EXPECT_TRUE(c.sources.empty());
  EXPECT_TRUE(c.warnings.empty());
}

// ---- errors ---------------------------------------------------------------------------------

TEST_F(Config, LocalReadMustListAbsoluteDirectories) {
  auto c = parse_config("sources:\n  - {name: d, plugin: local-file, config: {root: /r}, local_read: [/a, /b]}\n", "f.yaml",
                        "/bin");
  EXPECT_EQ(c.sources[0].local_read, (std::vector<fs::path>{"/a", "/b"}));
  auto none = parse_config("sources:\n  - {name: d, plugin: local-file, config: {root: /r}, local_read: []}\n", "f.yaml", "/bin");
  EXPECT_TRUE(none.sources[0].local_read.empty());  // trust withdrawn: always streamed
  try {
    parse_config("sources:\n  - {name: d, plugin: memory, local_read: [rel]}\n", "f.yaml", "/bin");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("sources[0].local_read: 'rel' is not an absolute directory"));
  }
}

TEST_F(Config, UnknownTopLevelKey) {
  expect_error("heartbeat_interval_ms: 500\nbogus_setting: 1\n", {"test.yaml", "unknown setting 'bogus_setting'"});
}

TEST_F(Config, NotYaml) { expect_error("sources: [unclosed\n", {"test.yaml", "not valid YAML"}); }

TEST_F(Config, TopLevelNotAMap) { expect_error("- a\n- b\n", {"must be a map"}); }

TEST_F(Config, SourceWithBothPluginAndCommand) {
  expect_error("sources:\n  - name: s\n    plugin: memory\n    command: [/bin/true]\n",
               {"sources[0]", "either 'plugin' or 'command', not both"});
}

TEST_F(Config, SourceWithNeitherPluginNorCommand) {
  expect_error("sources:\n  - name: s\n", {"sources[0]", "needs 'plugin'"});
}

TEST_F(Config, UnknownPlugin) {
  expect_error("sources:\n  - name: ok\n    plugin: memory\n  - name: s\n    plugin: nosuch\n",
               {"sources[1].plugin", "no plugin named 'nosuch'"});
}

TEST_F(Config, DuplicateSourceNames) {
  expect_error("sources:\n  - name: twin\n    plugin: memory\n  - name: twin\n    plugin: local-file\n",
               {"two sources are named 'twin'"});
}

TEST_F(Config, BadSourceName) {
  expect_error("sources:\n  - name: Bad/Name\n    plugin: memory\n", {"sources[0].name"});
  expect_error("sources:\n  - plugin: memory\n", {"sources[0].name", "is required"});
}

TEST_F(Config, UnknownSourceKey) {
  expect_error("sources:\n  - name: s\n    plugin: memory\n    priorty: 3\n", {"sources[0]", "unknown setting 'priorty'"});
}

TEST_F(Config, BadRestartPolicy) {
  expect_error("sources:\n  - name: s\n    plugin: memory\n    restart:\n      policy: sometimes\n",
               {"sources[0].restart.policy", "always, on-failure or never"});
  expect_error("restart:\n  policy: sometimes\n", {"restart.policy"});
  expect_error("restart:\n  max_failures: 0\n", {"restart.max_failures", "between 1 and 1000"});
  expect_error("restart:\n  backoff_initial_ms: fast\n", {"restart.backoff_initial_ms", "must be an integer"});
  expect_error("restart:\n  retries: 3\n", {"restart", "unknown setting 'retries'"});
}

TEST_F(Config, OutOfRangeNumbers) {
  expect_error("heartbeat_interval_ms: 1\n", {"heartbeat_interval_ms", "between 10 and 600000"});
  expect_error("heartbeat_liveness: 1.5\n", {"heartbeat_liveness", "must be an integer"});
  expect_error("sources:\n  - name: s\n    plugin: memory\n    priority: \"5\"\n", {"priority", "must be an integer"});
}

// ---- restart policies -----------------------------------------------------------------------

TEST_F(Config, RestartPolicyInheritance) {
  DaemonConfig c = parse(R"(
restart:
  policy: on-failure
  backoff_initial_ms: 250
  max_failures: 7
sources:
  - name: inherits
    plugin: memory
  - name: overrides
    plugin: memory
    restart:
      policy: never
      backoff_max_ms: 1000
      stable_after_ms: 42
      hello_timeout_ms: 2000
)");
  ASSERT_EQ(c.sources.size(), 2u);
  const RestartPolicy& a = c.sources[0].restart;
  EXPECT_EQ(a.mode, RestartPolicy::Mode::on_failure);
  EXPECT_EQ(a.backoff_initial, milliseconds(250));
  EXPECT_EQ(a.max_failures, 7);
  EXPECT_EQ(a.backoff_max, milliseconds(30000));
  const RestartPolicy& b = c.sources[1].restart;
  EXPECT_EQ(b.mode, RestartPolicy::Mode::never);
  EXPECT_EQ(b.backoff_initial, milliseconds(250));  // from the top level
  EXPECT_EQ(b.backoff_max, milliseconds(1000));
  EXPECT_EQ(b.stable_after, milliseconds(42));
  EXPECT_EQ(b.hello_timeout, milliseconds(2000));
}

// ---- environment ----------------------------------------------------------------------------

TEST_F(Config, EnvironmentOverridesTheFile) {
  const std::string yaml = "runtime_dir: /from/file/run\ncache_dir: /from/file/cache\nlog_level: warn\n";
  DaemonConfig before = parse(yaml);
  EXPECT_EQ(before.runtime_dir, fs::path("/from/file/run"));
  EXPECT_EQ(before.cache_dir, fs::path("/from/file/cache"));
  EXPECT_EQ(before.log_level, "warn");

  ::setenv("MODELZOO_RUNTIME_DIR", (tmp_ / "run").c_str(), 1);
  ::setenv("MODELZOO_CACHE_DIR", (tmp_ / "cache").c_str(), 1);
  ::setenv("MODELZOO_LOG_LEVEL", "trace", 1);
  DaemonConfig after = parse(yaml);
  EXPECT_EQ(after.runtime_dir, tmp_ / "run");
  EXPECT_EQ(after.cache_dir, tmp_ / "cache");
  EXPECT_EQ(after.log_level, "trace");
}

TEST_F(Config, XdgDefaults) {
  ::unsetenv("MODELZOO_DATA_DIR");
  ::setenv("XDG_RUNTIME_DIR", (tmp_ / "xdg-run").c_str(), 1);
  ::setenv("XDG_CACHE_HOME", (tmp_ / "xdg-cache").c_str(), 1);
  ::setenv("XDG_DATA_HOME", (tmp_ / "xdg-data").c_str(), 1);
  DaemonConfig c = parse("");
  EXPECT_EQ(c.runtime_dir, tmp_ / "xdg-run" / "modelzoo");
  EXPECT_EQ(c.cache_dir, tmp_ / "xdg-cache" / "modelzoo");
  EXPECT_EQ(c.data_dir, tmp_ / "xdg-data" / "modelzoo");
}

TEST_F(Config, DirectoriesAreExpandedInSourceConfig) {
  ::setenv("MODELZOO_CACHE_DIR", "/c", 1);
  ::setenv("MODELZOO_RUNTIME_DIR", "/r", 1);
  DaemonConfig c = parse(R"(
sources:
  - name: s
    plugin: local-file
    config:
      a: ${cache_dir}/x
      b: ["${runtime_dir}", "${data_dir}"]
      c: ${unterminated
      d: 5
)");
  ASSERT_EQ(c.sources.size(), 1u);
  const json& cfg = c.sources[0].config;
  EXPECT_EQ(cfg["a"], "/c/x");
  EXPECT_EQ(cfg["b"], json::array({"/r", data_dir_.string()}));
  EXPECT_EQ(cfg["c"], "${unterminated");
  EXPECT_EQ(cfg["d"], 5);
}

TEST_F(Config, BadHeartbeatEnvironmentValueIsAConfigError) {
  for (const char* bad : {"abc", "0", "-5", "9", "600001", "100ms", " "}) {
    SCOPED_TRACE(bad);
    ::setenv("MODELZOO_HEARTBEAT_INTERVAL_MS", bad, 1);
    try {
      parse("");
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr("MODELZOO_HEARTBEAT_INTERVAL_MS"));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "threw a non-ConfigError: " << e.what();
    }
  }
}

TEST_F(Config, HeartbeatEnvironmentOverride) {
  ::setenv("MODELZOO_HEARTBEAT_INTERVAL_MS", "250", 1);
  EXPECT_EQ(parse("heartbeat_interval_ms: 1000\n").heartbeat_interval, milliseconds(250));
}

// Every setting has a MODELZOO_* variable: top level, restart policy, per source, per source
// config key; values are YAML.
TEST_F(Config, EverySettingHasAnEnvironmentVariable) {
  struct Var {
    const char* name;
    const char* value;
  };
  const Var vars[] = {{"MODELZOO_REQUEST_TIMEOUT_MS", "1234"},
                      {"MODELZOO_OFFLINE", "1"},
                      {"MODELZOO_PLUGIN_DIRS", "[/p1, /p2]"},
                      {"MODELZOO_RESTART_MAX_FAILURES", "9"},
                      {"MODELZOO_SOURCE_TEAM_FILES_PRIORITY", "42"},
                      {"MODELZOO_SOURCE_TEAM_FILES_HANDLES", "[\"team/*\"]"},
                      {"MODELZOO_SOURCE_TEAM_FILES_CONFIG_ROOT", "/srv/override"},
                      {"MODELZOO_SOURCE_TEAM_FILES_CONFIG_NEW_KEY", "{a: 1}"},
                      {"MODELZOO_SOURCE_CHECK_ORDER", "-3"}};
  for (const auto& v : vars) ::setenv(v.name, v.value, 1);
  DaemonConfig c;
  try {
    c = parse(
        "request_timeout_ms: 5000\nsources:\n"
        "  - name: team-files\n    plugin: local-file\n    priority: 1\n    config: {root: /srv/models}\n"
        "  - name: check\n    command: [/bin/check]\n    kind: extension\n");
  } catch (...) {
    for (const auto& v : vars) ::unsetenv(v.name);
    throw;
  }
  for (const auto& v : vars) ::unsetenv(v.name);
  EXPECT_EQ(c.request_timeout, milliseconds(1234));
  EXPECT_TRUE(c.offline);
  EXPECT_EQ(c.plugin_dirs, (std::vector<fs::path>{"/p1", "/p2"}));
  ASSERT_EQ(c.sources.size(), 2u);
  EXPECT_EQ(c.sources[0].restart.max_failures, 9);
  EXPECT_EQ(c.sources[0].priority, 42);
  EXPECT_EQ(*c.sources[0].handles, std::vector<std::string>{"team/*"});
  EXPECT_EQ(c.sources[0].config["root"], "/srv/override");
  EXPECT_EQ(c.sources[0].config["new_key"], json({{"a", 1}}));
  EXPECT_EQ(c.sources[1].extension.order, -3);
  for (const auto& v : vars)  // (and MODELZOO_DATA_DIR, which the fixture sets)
    EXPECT_NE(std::find(c.env_overrides.begin(), c.env_overrides.end(), v.name), c.env_overrides.end()) << v.name;
}

TEST_F(Config, AnEnvironmentValueThatBreaksASettingNamesTheVariable) {
  ::setenv("MODELZOO_SOURCE_MEM_PRIORITY", "high", 1);
  try {
    parse("sources:\n  - name: mem\n    plugin: memory\n");
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr("sources[0].priority"));
    EXPECT_THAT(e.what(), HasSubstr("MODELZOO_SOURCE_MEM_PRIORITY"));
  }
  ::unsetenv("MODELZOO_SOURCE_MEM_PRIORITY");
  ::setenv("MODELZOO_LOG_LEVEL", "loud", 1);
  EXPECT_THROW(parse(""), ConfigError);
}

// Encrypted credentials: decrypted at load; a wrong key or a tampered value names the setting.
TEST_F(Config, EncryptedValuesAreDecryptedAndFailuresNameTheSetting) {
  namespace codec = modelzoo::codec;
  auto key = codec::generate_key(), other = codec::generate_key();
  codec::write_key_file(tmp_ / "secret.key", key);
  codec::write_key_file(tmp_ / "other.key", other);
  std::string value = codec::encrypt_secret("s3cr3t-token", key);
  std::string yaml = "secret_key_file: " + (tmp_ / "secret.key").string() +
                     "\nsources:\n  - name: remote\n    plugin: memory\n    config: {auth: {token: \"" + value + "\"}}\n";
  DaemonConfig c = parse(yaml);
  EXPECT_EQ(c.sources[0].config["auth"]["token"], "s3cr3t-token");

  auto fails = [&](const std::string& text, const std::string& why) {
    try {
      parse(text);
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      EXPECT_THAT(e.what(), HasSubstr(why));
      EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos) << "the secret leaked: " << e.what();
      EXPECT_EQ(std::string(e.what()).find(value.substr(30, 20)), std::string::npos) << "the ciphertext leaked";
    }
  };
  std::string wrong_key = yaml;
  wrong_key.replace(wrong_key.find("secret.key"), 10, "other.key");
  fails(wrong_key, "sources[remote].config.auth.token: cannot decrypt");
  std::string tampered = yaml;
  auto at = tampered.find(value) + value.size() - 5;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  fails(tampered, "sources[remote].config.auth.token: cannot decrypt");
  std::string missing = yaml;
  missing.replace(missing.find("secret.key"), 10, "absent.key");
  fails(missing, "secret_key_file");
}

// ---- plugin directories ---------------------------------------------------------------------

TEST_F(Config, PluginDirsSkipBrokenManifestsWithWarnings) {
  fs::path dir = tmp_ / "plugins";
  write(dir / "a-broken" / "plugin.yaml", "name: broken\ncommand: [unclosed\n");
  write(dir / "b-invalid" / "plugin.yaml", "name: invalid\nversion: 1.0.0\n");  // no command
  write(dir / "c-good" / "plugin.yaml", R"(
name: good
version: 2.1.0
command: [bin/run, --flag]
priority: 7
handles: ["org/*", "other/model"]
restart:
  max_failures: 9
config:
  key: value
  nested: {n: 1}
)");
  write(dir / "not-a-plugin" / "README", "no manifest here");
  write(dir / "file.yaml", "name: stray\ncommand: [x]\n");  // not <dir>/<plugin>/plugin.yaml

  DaemonConfig c = parse("plugin_dirs: [" + dir.string() + "]\n");
  ASSERT_EQ(c.plugin_dirs.size(), 1u);
  EXPECT_EQ(c.plugin_dirs[0], dir);

  ASSERT_EQ(c.sources.size(), 1u);
  const Source& s = c.sources[0];
  EXPECT_EQ(s.name, "good");
  EXPECT_EQ(s.manifest.name, "good");
  EXPECT_EQ(s.manifest.version, "2.1.0");
  EXPECT_EQ(s.manifest.dir, dir / "c-good");
  EXPECT_EQ(s.manifest.command, (std::vector<std::string>{(dir / "c-good" / "bin" / "run").string(), "--flag"}));
  EXPECT_EQ(s.priority, 7);
  ASSERT_TRUE(s.handles.has_value());
  EXPECT_EQ(*s.handles, (std::vector<std::string>{"org/*", "other/model"}));
  EXPECT_EQ(s.restart.max_failures, 9);
  EXPECT_EQ(s.config, json({{"key", "value"}, {"nested", {{"n", 1}}}}));

  ASSERT_EQ(c.warnings.size(), 2u);
  EXPECT_THAT(c.warnings[0], HasSubstr((dir / "a-broken" / "plugin.yaml").string()));
  EXPECT_THAT(c.warnings[0], HasSubstr("not valid YAML"));
  EXPECT_THAT(c.warnings[1], HasSubstr((dir / "b-invalid" / "plugin.yaml").string()));
  EXPECT_THAT(c.warnings[1], HasSubstr("manifest.command"));
}

TEST_F(Config, SourceUsesAManifestAndOverlaysItsConfig) {
  write(data_dir_ / "plugins" / "hub" / "plugin.yaml",
        "name: hub\ncommand: [/usr/bin/hub-plugin]\npriority: 3\nconfig:\n  url: https://a\n  opts: {x: 1, y: 2}\n");
  DaemonConfig c = parse(R"(
sources:
  - name: mirror
    plugin: hub
    priority: 20
    config:
      opts: {y: 3}
      extra: true
)");
  // The default plugin directory is <data_dir>/plugins; the manifest runs only as `mirror`.
  ASSERT_EQ(c.sources.size(), 1u);
  const Source& s = c.sources[0];
  EXPECT_EQ(s.name, "mirror");
  EXPECT_EQ(s.manifest.name, "hub");
  EXPECT_EQ(s.manifest.command, std::vector<std::string>{"/usr/bin/hub-plugin"});
  EXPECT_EQ(s.priority, 20);
  EXPECT_EQ(s.config, json({{"url", "https://a"}, {"opts", {{"x", 1}, {"y", 3}}}, {"extra", true}}));
  EXPECT_TRUE(c.warnings.empty());
}

TEST_F(Config, DisabledSourceIsSkipped) {
  DaemonConfig c = parse("sources:\n  - name: off\n    plugin: nosuch\n    enabled: false\n  - name: on\n    plugin: memory\n");
  ASSERT_EQ(c.sources.size(), 1u);
  EXPECT_EQ(c.sources[0].name, "on");
}

TEST_F(Config, CommandSource) {
  DaemonConfig c = parse("sources:\n  - name: custom\n    command: [/usr/local/bin/p, -v]\n    priority: -2\n");
  ASSERT_EQ(c.sources.size(), 1u);
  EXPECT_EQ(c.sources[0].manifest.name, "custom");
  EXPECT_EQ(c.sources[0].manifest.command, (std::vector<std::string>{"/usr/local/bin/p", "-v"}));
  EXPECT_EQ(c.sources[0].priority, -2);
}

TEST_F(Config, LoadManifestErrorsNameTheFileAndField) {
  write(tmp_ / "m" / "plugin.yaml", "name: Bad_Name\ncommand: [x]\n");
  try {
    load_manifest(tmp_ / "m" / "plugin.yaml");
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_THAT(e.what(), HasSubstr((tmp_ / "m" / "plugin.yaml").string()));
    EXPECT_THAT(e.what(), HasSubstr("manifest.name"));
  }
  write(tmp_ / "k" / "plugin.yaml", "name: k\ncommand: [x]\nkind: exporter\n");
  EXPECT_THROW(load_manifest(tmp_ / "k" / "plugin.yaml"), ConfigError);
  write(tmp_ / "v" / "plugin.yaml", "name: v\ncommand: [x]\nversion: one\n");
  EXPECT_THROW(load_manifest(tmp_ / "v" / "plugin.yaml"), ConfigError);
  EXPECT_THROW(load_manifest(tmp_ / "none" / "plugin.yaml"), ConfigError);
}

// ---- resource limits and the sandbox (docs/security.md) ------------------------------------

TEST_F(Config, LimitsComeFromTheDaemonThenTheManifestThenTheSource) {
  write(data_dir_ / "plugins" / "hub" / "plugin.yaml",
        "name: hub\ncommand: [/usr/bin/hub-plugin]\nlimits: {address_space: 4GiB, cpu_seconds: 60}\n");
  DaemonConfig c = parse(R"(
limits: {open_files: 512, cpu_seconds: 10, file_size: 1 MiB}
sandbox: landlock
sources:
  - name: mirror
    plugin: hub
    limits: {cpu_seconds: unlimited, core_dumps: true}
    sandbox: off
    sandbox_read: [/srv/models, "${data_dir}/extra"]
    sandbox_write: [/srv/out]
  - name: mem
    plugin: memory
)");
  ASSERT_EQ(c.sources.size(), 2u);
  EXPECT_EQ(c.limits.open_files, 512u);
  const auto& hub = c.sources[0].limits;
  EXPECT_EQ(hub.address_space, 4ULL << 30);                                  // the manifest's
  EXPECT_EQ(hub.cpu_seconds, modelzoo::supervisor::ResourceLimits::kUnlimited);  // the source's
  EXPECT_EQ(hub.open_files, 512u);                                           // the daemon's
  EXPECT_EQ(hub.file_size, 1u << 20);
  EXPECT_EQ(hub.core_dumps, true);
  EXPECT_EQ(c.sources[0].sandbox, modelzoo::supervisor::SandboxMode::off);
  EXPECT_EQ(c.sources[0].sandbox_read, (std::vector<fs::path>{"/srv/models", data_dir_ / "extra"}));
  EXPECT_EQ(c.sources[0].sandbox_write, std::vector<fs::path>{"/srv/out"});
  const auto& mem = c.sources[1].limits;
  EXPECT_FALSE(mem.address_space.has_value());  // inherited: never set by default
  EXPECT_EQ(mem.cpu_seconds, 10u);
  EXPECT_EQ(mem.core_dumps, false);  // off unless asked for
  EXPECT_EQ(c.sources[1].sandbox, modelzoo::supervisor::SandboxMode::landlock);
  EXPECT_FALSE(c.sources[1].from_command);
}

TEST_F(Config, WithoutLimitsOnlyCoreDumpsAreOff) {
  DaemonConfig c = parse("sources:\n  - name: x\n    command: [/bin/x]\n");
  const auto& l = c.sources[0].limits;
  EXPECT_FALSE(l.address_space || l.cpu_seconds || l.open_files || l.file_size);
  EXPECT_EQ(l.core_dumps, false);
  EXPECT_EQ(c.sources[0].sandbox, modelzoo::supervisor::SandboxMode::off);
  EXPECT_TRUE(c.sources[0].from_command);
}

TEST_F(Config, SizesTakeUnits) {
  auto as = [&](const std::string& v) {
    return *parse("sources:\n  - name: x\n    command: [/bin/x]\n    limits: {address_space: " + v + "}\n")
                .sources[0]
                .limits.address_space;
  };
  EXPECT_EQ(as("268435456"), 256ULL << 20);
  EXPECT_EQ(as("256MiB"), 256ULL << 20);
  EXPECT_EQ(as("\"256 MiB\""), 256ULL << 20);
  EXPECT_EQ(as("1.5GiB"), 3ULL << 29);
  EXPECT_EQ(as("2 tib"), 2ULL << 40);
  EXPECT_EQ(as("65536 KiB"), 64ULL << 20);
  EXPECT_EQ(as("unlimited"), modelzoo::supervisor::ResourceLimits::kUnlimited);
}

TEST_F(Config, BadLimitsNameTheFileAndTheKey) {
  auto src = [](const std::string& limits) { return "sources:\n  - name: x\n    command: [/bin/x]\n    limits: " + limits + "\n"; };
  expect_error(src("{address_space: 4GB}"), {"test.yaml", "sources[0].limits.address_space", "unknown unit 'gb'", "GiB"});
  expect_error(src("{address_space: lots}"), {"sources[0].limits.address_space", "'lots' is not a size"});
  expect_error(src("{address_space: -5}"), {"sources[0].limits.address_space", "is not a size"});
  expect_error(src("{address_space: 1MiB}"), {"sources[0].limits.address_space", "at least 16 MiB"});
  expect_error(src("{address_space: 99999999TiB}"), {"sources[0].limits.address_space", "too large"});
  expect_error(src("{cpu_seconds: 0}"), {"sources[0].limits.cpu_seconds", "at least 1"});
  expect_error(src("{cpu_seconds: 1.5}"), {"sources[0].limits.cpu_seconds", "is not a number of seconds"});
  expect_error(src("{open_files: 8}"), {"sources[0].limits.open_files", "at least 16"});
  expect_error(src("{open_files: unlimited}"), {"sources[0].limits.open_files", "cannot be unlimited"});
  expect_error(src("{core_dumps: sometimes}"), {"sources[0].limits.core_dumps", "true or false"});
  expect_error(src("{memory: 1GiB}"), {"sources[0].limits", "unknown setting 'memory'"});
  expect_error(src("4GiB"), {"sources[0].limits", "must be a map"});
  expect_error("limits: {file_size: 3 bytes}\n", {"top level.limits.file_size", "unknown unit"});
  expect_error("sandbox: strict\n", {"top level.sandbox", "'strict' is not a sandbox mode (off, landlock or require)"});
  expect_error("sources:\n  - name: x\n    command: [/bin/x]\n    sandbox_read: [relative/dir]\n",
               {"sources[0].sandbox_read", "'relative/dir' is not an absolute path"});
}

TEST_F(Config, ABrokenManifestLimitSkipsThePluginNamingTheFileAndKey) {
  write(data_dir_ / "plugins" / "hub" / "plugin.yaml", "name: hub\ncommand: [/usr/bin/hub-plugin]\nlimits: {open_files: many}\n");
  DaemonConfig c = parse("");
  EXPECT_TRUE(c.sources.empty());
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_THAT(c.warnings[0], HasSubstr((data_dir_ / "plugins" / "hub" / "plugin.yaml").string()));
  EXPECT_THAT(c.warnings[0], HasSubstr("manifest.limits.open_files"));
}

TEST_F(Config, LimitsAndSandboxHaveEnvironmentVariables) {
  const std::pair<const char*, const char*> vars[] = {{"MODELZOO_SANDBOX", "require"},
                                                      {"MODELZOO_LIMITS_OPEN_FILES", "100"},
                                                      {"MODELZOO_SOURCE_MEM_LIMITS_CPU_SECONDS", "7"},
                                                      {"MODELZOO_SOURCE_MEM_SANDBOX", "off"},
                                                      {"MODELZOO_SOURCE_MEM_SANDBOX_WRITE", "[/w]"}};
  for (const auto& [k, v] : vars) ::setenv(k, v, 1);
  DaemonConfig c;
  try {
    c = parse("limits: {cpu_seconds: 3}\nsources:\n  - name: mem\n    plugin: memory\n    limits: {file_size: 1MiB}\n"
              "  - name: other\n    plugin: memory\n");
  } catch (...) {
    for (const auto& [k, v] : vars) ::unsetenv(k);
    throw;
  }
  for (const auto& [k, v] : vars) ::unsetenv(k);
  ASSERT_EQ(c.sources.size(), 2u);
  EXPECT_EQ(c.sources[0].limits.cpu_seconds, 7u);
  EXPECT_EQ(c.sources[0].limits.file_size, 1u << 20);  // the file's value, beside the variable's
  EXPECT_EQ(c.sources[0].limits.open_files, 100u);
  EXPECT_EQ(c.sources[0].sandbox, modelzoo::supervisor::SandboxMode::off);
  EXPECT_EQ(c.sources[0].sandbox_write, std::vector<fs::path>{"/w"});
  EXPECT_EQ(c.sources[1].limits.cpu_seconds, 3u);
  EXPECT_EQ(c.sources[1].sandbox, modelzoo::supervisor::SandboxMode::require);
}

TEST(ResourceLimits, ExitsAreExplainedOnlyByALimitThatIsSet) {
  using modelzoo::supervisor::limit_exceeded;
  modelzoo::supervisor::ResourceLimits l;
  l.cpu_seconds = 2;
  l.address_space = 256ULL << 20;
  l.open_files = 64;
  l.file_size = 1ULL << 20;
  auto signalled = [](int sig) { return sig; };  // a wait status for "killed by sig"
  auto exited = [](int code) { return code << 8; };
  EXPECT_EQ(limit_exceeded(signalled(SIGXCPU), l, 2.0, ""), "CPU time limit of 2 s exceeded");
  EXPECT_EQ(limit_exceeded(signalled(SIGKILL), l, 3.0, ""), "CPU time limit of 2 s exceeded (killed at the hard limit)");
  EXPECT_EQ(limit_exceeded(signalled(SIGKILL), l, 0.1, ""), "");  // killed by someone else
  EXPECT_EQ(limit_exceeded(signalled(SIGXFSZ), l, 0, ""), "file size limit of 1 MiB exceeded");
  EXPECT_EQ(limit_exceeded(exited(1), l, 0, "std::bad_alloc"),
            "may have hit its address-space limit of 256 MiB (it reported an allocation failure)");
  EXPECT_EQ(limit_exceeded(signalled(SIGABRT), l, 0, "open: Too many open files"),
            "may have hit its open-files limit of 64 (it reported too many open files)");
  EXPECT_EQ(limit_exceeded(exited(0), l, 0, "std::bad_alloc"), "");  // a clean exit is no failure
  EXPECT_EQ(limit_exceeded(exited(1), l, 0, "connection refused"), "");
  modelzoo::supervisor::ResourceLimits none;
  EXPECT_EQ(limit_exceeded(signalled(SIGXCPU), none, 5.0, ""), "");  // the daemon's own limit: not ours to name
  EXPECT_EQ(limit_exceeded(exited(1), none, 0, "MemoryError"), "");
}

TEST(ResourceLimits, SizesAndStatus) {
  using modelzoo::supervisor::format_size;
  EXPECT_EQ(format_size(256ULL << 20), "256 MiB");
  EXPECT_EQ(format_size(3ULL << 29), "1.5 GiB");
  EXPECT_EQ(format_size(1000), "1000 B");
  EXPECT_EQ(format_size(1000000), "1000000 B");
  EXPECT_EQ(format_size(modelzoo::supervisor::ResourceLimits::kUnlimited), "unlimited");
  modelzoo::supervisor::ResourceLimits l;
  l.cpu_seconds = 5;
  l.core_dumps = false;
  l.file_size = modelzoo::supervisor::ResourceLimits::kUnlimited;
  EXPECT_EQ(modelzoo::supervisor::limits_to_json(l),
            json({{"address_space", nullptr}, {"cpu_seconds", 5}, {"open_files", nullptr}, {"file_size", "unlimited"},
                  {"core_dumps", false}}));
  EXPECT_EQ(modelzoo::supervisor::describe_limits(l), "cpu 5 s, file size unlimited, core dumps off");
  // CPU: hard one second above soft, so SIGXCPU comes first; core dumps off: 0/0.
  auto calls = modelzoo::supervisor::rlimits_for(l);
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].resource, RLIMIT_CPU);
  EXPECT_EQ(calls[0].soft, 5u);
  EXPECT_EQ(calls[0].hard, 6u);
  EXPECT_EQ(calls[2].resource, RLIMIT_CORE);
  EXPECT_EQ(calls[2].hard, 0u);
}

// ---- YAML to JSON ---------------------------------------------------------------------------

TEST(YamlToJson, ScalarTyping) {
  json j = yaml_to_json(R"(
quoted_one: "1"
single_quoted: '2'
one: 1
negative: -5
float: 1.5
version: 1.0.0
yes_bool: true
quoted_true: "true"
no_bool: false
nothing: ~
null_word: null
word: hello
quoted_empty: ""
list: [1, "2", three]
map: {k: v}
)");
  EXPECT_TRUE(j["quoted_one"].is_string());
  EXPECT_EQ(j["quoted_one"], "1");
  EXPECT_TRUE(j["single_quoted"].is_string());
  EXPECT_EQ(j["single_quoted"], "2");
  EXPECT_TRUE(j["one"].is_number_integer());
  EXPECT_EQ(j["one"], 1);
  EXPECT_TRUE(j["negative"].is_number_integer());
  EXPECT_EQ(j["negative"].get<long long>(), -5);
  EXPECT_TRUE(j["float"].is_number_float());
  EXPECT_DOUBLE_EQ(j["float"].get<double>(), 1.5);
  EXPECT_EQ(j["version"], "1.0.0");
  EXPECT_EQ(j["yes_bool"], true);
  EXPECT_EQ(j["quoted_true"], "true");
  EXPECT_EQ(j["no_bool"], false);
  EXPECT_TRUE(j["nothing"].is_null());
  EXPECT_TRUE(j["null_word"].is_null());
  EXPECT_EQ(j["word"], "hello");
  EXPECT_EQ(j["quoted_empty"], "");
  EXPECT_EQ(j["list"], json::array({1, "2", "three"}));
  EXPECT_TRUE(j["list"][1].is_string());
  EXPECT_EQ(j["map"], json({{"k", "v"}}));
}

TEST(YamlToJson, EmptyDocumentIsNull) { EXPECT_TRUE(yaml_to_json("").is_null()); }

}  // namespace
