// The remote plugin with the real daemon and the real example HTTP registry server
// (modelzoo-http-registry) on loopback: pulls, every auth kind accepted and refused with no
// secret in any log line, event, error or --json output, retries on 503, a dropped
// connection resumed, a server dying mid-file (failover, and resume from the partial after
// a restart), and failover from a dead remote to a local source.
#include <fstream>

#include "loopback_util.h"
#include "memory/models.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {


fs::path server_exe() { return bin_dir() / "modelzoo-http-registry"; }

#define REQUIRE_SERVER()                                                                  \
  if (!fs::exists(server_exe())) GTEST_SKIP() << server_exe() << " is not built"

std::string sha256_of_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  bus::Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
    h.update(buf.data(), static_cast<std::size_t>(in.gcount()));
  return h.hex_digest();
}

// Writes the bytes the memory plugin generates for (seed, size): a file the remote serves
// and a memory source can serve identically.
void write_generated(const fs::path& file, std::uint64_t seed, std::uint64_t size) {
  fs::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  std::vector<char> buf(1 << 20);
  for (std::uint64_t off = 0; off < size;) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), size - off));
    plugins::memory::generate(seed, off, buf.data(), n);
    out.write(buf.data(), static_cast<std::streamsize>(n));
    off += n;
  }
}


// The example HTTP registry server, serving a private model tree on 127.0.0.1.
class RegistryServer : public ServerProcess {
 public:
  RegistryServer() : ServerProcess("registry") {}
  // Starts the server with `args` (auth and test knobs) on `port` (0: any free port; the
  // port it got is kept, so a restart with start(args, port()) comes back on the same one).
  void start(const std::vector<std::string>& args = {}, int port = 0) {
    std::vector<std::string> argv = {server_exe().string(), "--root", root().string(), "--listen",
                                     "127.0.0.1:" + std::to_string(port), "--port-file", port_file().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    run_server(argv, 10s);
  }
};

// The model tree of most tests: acme/llm 1.0.0, 1.2.0 and 1.10.0 (the latest: semver, not
// text order), each with one generated file.
void make_models(const RegistryServer& s, std::uint64_t size = 256 * 1024) {
  for (auto v : {"1.0.0", "1.2.0", "1.10.0"}) write_generated(s.root() / "acme" / "llm" / v / "w.bin", 7, size);
}

// A daemon configuration with the remote plugin as source `remote` (and `extra` sources).
std::string remote_config(const std::string& url, const std::string& auth_yaml = "", const std::string& extra = "",
                          int priority = 50) {
  std::ostringstream s;
  s << kFastTimers << "log_level: debug\nsources:\n  - name: remote\n    plugin: remote\n    priority: " << priority
    << "\n    config:\n      url: " << url << "\n      retry: {attempts: 3, initial_ms: 50, max_ms: 2000}\n";
  if (!auth_yaml.empty()) s << "      auth: " << auth_yaml << "\n";
  s << extra;
  return s.str();
}


// Everything published while `f` runs, as one string.
std::string events_during(Daemon& d, const std::function<void()>& f) {
  EventSubscriber sub(d.runtime_dir().string(), {""});
  f();
  std::string all;
  while (auto e = sub.next(300ms)) all += e->topic + " " + e->body.dump() + "\n";
  return all;
}

// The remote plugin, run by the conformance kit against the example server: every check
// passes, a download past a file's end among them (416 from the server: bad_request).
TEST(RemoteRegistry, TheRemotePluginPassesTheConformanceKit) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 300000);
  server.start();
  fs::path cfg = server.dir() / "remote.yaml";
  std::ofstream(cfg) << "url: " << server.url() << "\nretry: {attempts: 2, initial_ms: 50, max_ms: 200}\n";
  auto r = run((bin_dir() / "modelzoo").string() + " plugin test --json --config " + cfg.string() + " " +
               (bin_dir() / "modelzoo-plugin-remote").string() + " 2>" + (server.dir() / "kit.stderr").string());
  nlohmann::json report;
  ASSERT_NO_THROW(report = nlohmann::json::parse(r.out)) << r.out << slurp(server.dir() / "kit.stderr");
  EXPECT_EQ(report.value("failed", -1), 0) << report.dump(2);
  for (const auto& c : report["checks"])
    EXPECT_NE(c.value("result", ""), "fail") << c.dump();
}

TEST(RemoteRegistry, PullsTheLatestVersionAndVerifiesIt) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server);
  server.start();
  Daemon d(remote_config(server.url()));
  d.wait_plugin("remote");
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["source"], "remote");
  EXPECT_EQ(reply["version"], "1.10.0");
  ASSERT_EQ(reply["files"].size(), 1u);
  EXPECT_EQ(reply["files"][0]["sha256"], sha256_of_file(server.root() / "acme/llm/1.10.0/w.bin"));
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"]);
  EXPECT_EQ(reply["bytes_downloaded"], 256 * 1024);

  auto pinned = d.client().pull("acme/llm:1.2.0");
  EXPECT_EQ(pinned["version"], "1.2.0");
  EXPECT_EQ(pinned["bytes_downloaded"], 0) << "same bytes as 1.10.0: already in the cache";

  auto models = d.client().models();
  EXPECT_NE(models.dump().find("acme/llm"), std::string::npos) << models.dump();

  try {
    d.client().pull("acme/nothing");
    ADD_FAILURE() << "pulled a model the registry does not have";
  } catch (const bus::Error& e) {
    EXPECT_EQ(e.code(), bus::ErrorCode::not_found) << e.what();
  }
}

// One auth kind: the server's flags, the plugin's auth with the right secret and with a
// wrong one, and every secret that must never show.
struct AuthCase {
  std::string label;
  std::vector<std::string> server_args;
  std::string good_auth;
  std::string bad_auth;
  std::vector<std::string> secrets;
};

std::vector<AuthCase> auth_cases(const fs::path& dir) {
  std::ofstream(dir / "good-token") << "tok-file-RIGHT-51\n";
  std::ofstream(dir / "bad-token") << "tok-file-WRONG-52\n";
  std::ofstream(dir / "server-token") << "tok-file-RIGHT-51\n";
  return {
      {"api key in a header",
       {"--api-key", "key-RIGHT-11"},
       "{kind: api_key, key: key-RIGHT-11}",
       "{kind: api_key, key: key-WRONG-12}",
       {"key-RIGHT-11", "key-WRONG-12"}},
      {"api key in the query",
       {"--api-key", "key-RIGHT-21", "--api-key-query", "api_key"},
       "{kind: api_key, query: api_key, key: key-RIGHT-21}",
       "{kind: api_key, query: api_key, key: key-WRONG-22}",
       {"key-RIGHT-21", "key-WRONG-22"}},
      {"static bearer token",
       {"--bearer", "tok-RIGHT-31"},
       "{kind: bearer, token: tok-RIGHT-31}",
       "{kind: bearer, token: tok-WRONG-32}",
       {"tok-RIGHT-31", "tok-WRONG-32"}},
      {"bearer token file",
       {"--bearer-file", (dir / "server-token").string()},
       "{kind: bearer, token_file: '" + (dir / "good-token").string() + "'}",
       "{kind: bearer, token_file: '" + (dir / "bad-token").string() + "'}",
       {"tok-file-RIGHT-51", "tok-file-WRONG-52"}},
      {"basic",
       {"--basic", "alice:pw-RIGHT-41"},
       "{kind: basic, user: alice, password: pw-RIGHT-41}",
       "{kind: basic, user: alice, password: pw-WRONG-42}",
       // and the base64 of "alice:<password>", the form that travels
       {"pw-RIGHT-41", "pw-WRONG-42", "YWxpY2U6cHctUklHSFQtNDE", "YWxpY2U6cHctV1JPTkctNDI"}},
      {"custom command",
       {"--require-header", "X-Registry-Pass:cmd-RIGHT-61"},
       "{kind: custom, command: [/bin/echo, 'X-Registry-Pass: cmd-RIGHT-61']}",
       "{kind: custom, command: [/bin/echo, 'X-Registry-Pass: cmd-WRONG-62']}",
       {"cmd-RIGHT-61"}},  // the wrong one is in the configured command line itself; see below
  };
}

void expect_no_secret(const std::string& where, const std::string& text, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) EXPECT_EQ(text.find(s), std::string::npos) << "'" << s << "' appears in " << where << ":\n" << text;
}

TEST(RemoteRegistry, EveryAuthKindIsAcceptedAndRefusedWithoutLeakingTheSecret) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 4096);
  for (const auto& c : auth_cases(server.dir())) {
    SCOPED_TRACE(c.label);
    server.start(c.server_args);
    std::string cli_base = (bin_dir() / "modelzoo").string() + " --runtime-dir ";
    {
      Daemon d(remote_config(server.url(), c.good_auth));
      d.wait_plugin("remote");
      std::string events = events_during(d, [&] {
        auto reply = d.client().pull("acme/llm");
        EXPECT_EQ(reply["source"], "remote");
      });
      expect_no_secret("the events", events, c.secrets);
      expect_no_secret("the daemon log", d.log(), c.secrets);
    }
    {
      Daemon d(remote_config(server.url(), c.bad_auth));
      d.wait_plugin("remote");
      std::string message;
      std::string events = events_during(d, [&] {
        auto e = pull_error(d, "acme/llm");
        EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
        message = e.what();
      });
      EXPECT_NE(message.find("remote"), std::string::npos) << message;        // the source
      EXPECT_NE(message.find(server.url()), std::string::npos) << message;    // the registry
      EXPECT_NE(message.find("refused"), std::string::npos) << message;
      auto cli = run(cli_base + d.runtime_dir().string() + " pull acme/llm --json 2>&1");
      EXPECT_NE(cli.out.find("unauthorized"), std::string::npos) << cli.out;
      auto plugins = run(cli_base + d.runtime_dir().string() + " plugins --json 2>&1");
      std::vector<std::string> secrets = c.secrets;
      // A custom command's configured argv is the user's own text, shown nowhere either.
      if (c.label == "custom command") secrets.push_back("cmd-WRONG-62");
      expect_no_secret("the error message", message, secrets);
      expect_no_secret("the events", events, secrets);
      expect_no_secret("`modelzoo pull --json`", cli.out, secrets);
      expect_no_secret("`modelzoo plugins --json`", plugins.out, secrets);
      expect_no_secret("the daemon log", d.log(), secrets);
    }
  }
}

TEST(RemoteRegistry, MissingCredentialsAreUnauthorizedAndSaySo) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 4096);
  server.start({"--bearer", "tok-73"});
  Daemon d(remote_config(server.url()));
  d.wait_plugin("remote");
  auto e = pull_error(d, "acme/llm");
  EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized);
  EXPECT_NE(std::string(e.what()).find("no credentials configured"), std::string::npos) << e.what();
}

TEST(RemoteRegistry, ARotatedTokenFileIsPickedUpWithoutARestart) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 4096);
  fs::path server_token = server.dir() / "server-token", plugin_token = server.dir() / "plugin-token";
  std::ofstream(server_token) << "rotated-NEW-81\n";
  std::ofstream(plugin_token) << "stale-OLD-82\n";
  server.start({"--bearer-file", server_token.string()});
  Daemon d(remote_config(server.url(), "{kind: bearer, token_file: '" + plugin_token.string() + "'}"));
  pid_t pid = d.wait_plugin("remote")["pid"].get<pid_t>();
  EXPECT_EQ(pull_error(d, "acme/llm").code(), bus::ErrorCode::unauthorized);
  std::ofstream(plugin_token, std::ios::trunc) << "rotated-NEW-81\n";
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["source"], "remote");
  EXPECT_EQ(d.plugin("remote")["pid"].get<pid_t>(), pid) << "the plugin was restarted";
  expect_no_secret("the daemon log", d.log(), {"rotated-NEW-81", "stale-OLD-82"});
}

TEST(RemoteRegistry, TransientFailuresAreRetriedHonouringRetryAfter) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 4096);
  server.start({"--fail-first", "2", "--retry-after", "1"});
  Daemon d(remote_config(server.url()));
  d.wait_plugin("remote");
  auto t0 = std::chrono::steady_clock::now();
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["source"], "remote");
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 2s) << "Retry-After: 1 was not waited for, twice";
  auto log = d.log();
  EXPECT_NE(log.find("HTTP 503 Service Unavailable"), std::string::npos) << log;
  EXPECT_NE(log.find("retrying in 1000 ms (Retry-After)"), std::string::npos) << log;

  // 429 without a wait, too.
  server.start({"--fail-first", "2", "--fail-status", "429", "--retry-after", "0"});
  Daemon d2(remote_config(server.url()));
  d2.wait_plugin("remote");
  EXPECT_EQ(d2.client().pull("acme/llm")["source"], "remote");
  EXPECT_NE(d2.log().find("HTTP 429"), std::string::npos);
}

TEST(RemoteRegistry, ADroppedConnectionIsResumedWhereItBroke) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 6 * kMiB);
  server.start({"--drop-after-bytes", std::to_string(512 * 1024 + 12345)});  // inside the first piece (1 MiB)
  Daemon d(remote_config(server.url()));
  d.wait_plugin("remote");
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["source"], "remote");
  EXPECT_EQ(reply["bytes_downloaded"], 6 * kMiB) << "bytes were sent twice";
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"]);
  EXPECT_NE(d.log().find("retrying in"), std::string::npos);
  EXPECT_NE(server.log().find(" 206 "), std::string::npos) << "no range request reached the server:\n" << server.log();
}

TEST(RemoteRegistry, AServerDyingMidFileFailsOverToAnotherSourceAtTheOffset) {
  REQUIRE_SERVER();
  RegistryServer server;
  write_generated(server.root() / "big/model/1.0.0/weights.bin", 7, 8 * kMiB);
  server.start({"--die-after-bytes", std::to_string(3 * kMiB)});
  Daemon d(remote_config(server.url(), "", memory_source("local", 10, "big/model", "", 8 * kMiB)));
  d.wait_plugin("remote");
  d.wait_plugin("local");
  auto reply = d.client().pull("big/model");
  EXPECT_TRUE(server.wait_exit(5s)) << "the server did not die";
  EXPECT_EQ(reply["source"], "local");
  EXPECT_EQ(reply["bytes_downloaded"], 8 * kMiB) << "the two sources together did not send the file exactly once";
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"]);
}

TEST(RemoteRegistry, AServerDyingMidFileLeavesAPartialTheNextPullResumes) {
  REQUIRE_SERVER();
  RegistryServer server;
  make_models(server, 8 * kMiB);
  server.start({"--die-after-bytes", std::to_string(3 * kMiB + 4321)});
  Daemon d(remote_config(server.url()));
  d.wait_plugin("remote");
  auto e = pull_error(d, "acme/llm");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable) << e.what();
  EXPECT_TRUE(server.wait_exit(5s));
  server.start({}, server.port());  // back, on the same port
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["source"], "remote");
  EXPECT_LT(reply["bytes_downloaded"].get<std::uint64_t>(), 8 * kMiB) << "the partial was not resumed";
  EXPECT_GE(reply["bytes_downloaded"].get<std::uint64_t>(), 4 * kMiB);
  EXPECT_EQ(sha256_of_file(reply["files"][0]["path"].get<std::string>()), reply["files"][0]["sha256"]);
  EXPECT_NE(server.log().find(" 206 "), std::string::npos) << server.log();
}

TEST(RemoteRegistry, ADeadRemoteFailsOverToALocalSource) {
  std::string url = "http://127.0.0.1:" + std::to_string(dead_port());
  std::string local =
      "  - name: local\n    plugin: memory\n    priority: 10\n    config:\n      models:\n"
      "        - name: acme/llm\n          version: 1.0.0\n          files:\n"
      "            - {name: readme.txt, content: \"served locally\\n\"}\n";
  Daemon d(remote_config(url, "", local));
  d.wait_plugin("remote");
  d.wait_plugin("local");
  auto reply = d.client().pull("acme/llm");
  EXPECT_EQ(reply["source"], "local");
  EXPECT_EQ(slurp(reply["files"][0]["path"].get<std::string>()), "served locally\n");
  auto show = d.client().show("acme/llm");
  bool remote_unavailable = false;
  for (const auto& s : show["sources"])
    if (s["plugin"] == "remote") remote_unavailable = s["error"]["code"] == "unavailable";
  EXPECT_TRUE(remote_unavailable) << show.dump();
}

}  // namespace
}  // namespace modelzoo::testing
