// Remote peers over TCP (docs/security.md, "Remote peers over TCP"): the real daemon listens
// on loopback with CURVE and its ZAP allow-list; a real memory plugin, started by the test
// as a peer on "another host", is admitted with its key and refused without one, with a
// key that is not on the list, or with another source's id. Keys come from `modelzoo keys`.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>

#include "daemon_harness.h"
#include "modelzoo/bus/curve.h"

namespace modelzoo::testing {
namespace {

using nlohmann::json;

// A key directory made with the real CLI.
struct Keys {
  fs::path dir;
  Keys() {
    char tmpl[] = "/tmp/modelzoo-keys-XXXXXX";
    dir = ::mkdtemp(tmpl);
    for (const char* name : {"server", "gpu-box", "intruder", "alice"}) {
      auto r = run((bin_dir() / "modelzoo").string() + " keys generate " + name + " --dir " + dir.string() + " --json");
      EXPECT_EQ(r.status, 0) << r.out;
    }
    std::ofstream(dir / "authorized_clients") << "# clients admitted over TCP\n" << pub("alice") << " alice\n";
  }
  ~Keys() { fs::remove_all(dir); }
  std::string pub(const std::string& name) const { return bus::read_key_file(dir / (name + ".pub")).public_key; }
  fs::path pair(const std::string& name) const { return dir / (name + ".key"); }
};

constexpr const char* kMemoryModels =
    "      models:\n"
    "        - name: remote-model\n"
    "          version: 1.0.0\n"
    "          files:\n"
    "            - name: weights.bin\n"
    "              size: 200000\n"
    "              seed: 3\n";

std::string tcp_config(const Keys& k, const std::string& source_config = kMemoryModels) {
  return std::string(kFastTimers) + "listen:\n  plugins: tcp://127.0.0.1:*\n  clients: tcp://127.0.0.1:*\n" +
         "  server_key_file: " + k.pair("server").string() + "\n  client_keys_file: " +
         (k.dir / "authorized_clients").string() + "\n" +
         "sources:\n"
         "  - name: gpu-box\n"
         "    remote_key: \"" + k.pub("gpu-box") + "\"\n"
         "    priority: 10\n"
         "    config:\n" + source_config;
}

// A plugin process started by hand, as on another host: nothing of the daemon's
// environment, only what the remote side knows.
class Peer {
 public:
  explicit Peer(std::vector<std::string> env, const fs::path& log,
                std::vector<std::string> argv_s = {(bin_dir() / "modelzoo-plugin-memory").string()}) {
    env.push_back("PATH=/usr/bin:/bin");
    std::vector<char*> argv, envp;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    EXPECT_EQ(::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // Waits for the peer to exit; its exit code, or -1.
  int wait_exit(std::chrono::milliseconds limit) {
    int st = 0;
    if (!wait_until([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, limit)) return -1;
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

 private:
  pid_t pid_ = -1;
};

std::optional<Event> wait_event(EventSubscriber& sub, const std::string& topic, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    auto e = sub.next(100ms);
    if (e && e->topic == topic) return e;
  }
  return std::nullopt;
}

std::vector<std::string> peer_env(Daemon& d, const Keys& k, const std::string& key, const std::string& id = "gpu-box") {
  std::string endpoint = d.client().status()["listen"]["endpoints"]["plugins"];
  std::vector<std::string> env = {"MODELZOO_ENDPOINT=" + endpoint, "MODELZOO_PLUGIN_ID=" + id};
  if (!key.empty()) {
    env.push_back("MODELZOO_SERVER_KEY=" + k.pub("server"));
    env.push_back("MODELZOO_KEY_FILE=" + k.pair(key).string());
  }
  return env;
}

TEST(TcpCurve, RemotePluginWithItsKeyIsAdmittedAndServesPulls) {
  Keys k;
  Daemon d(tcp_config(k));
  auto st = d.client().status();
  ASSERT_TRUE(st["listen"].is_object()) << st.dump();
  EXPECT_EQ(st["listen"]["server_key"], k.pub("server"));
  EXPECT_EQ(st["listen"]["endpoints"]["plugins"].get<std::string>().rfind("tcp://127.0.0.1:", 0), 0u) << st.dump();
  auto waiting = d.wait_plugin("gpu-box", "waiting");
  EXPECT_EQ(waiting["remote"], true);
  EXPECT_EQ(waiting["pid"], 0);

  EventSubscriber sub(d.runtime_dir().string(), {"plugin."});
  Peer peer(peer_env(d, k, "gpu-box"), d.dir() / "peer.log");
  auto ready = d.wait_plugin("gpu-box", "ready");
  EXPECT_EQ(ready["pid"], peer.pid()) << ready.dump();
  auto started = wait_event(sub, "plugin.started");
  ASSERT_TRUE(started) << d.log();
  EXPECT_EQ(started->body["remote"], true);

  auto r = d.client().pull("remote-model:1.0.0");
  EXPECT_EQ(r["source"], "gpu-box") << r.dump();
  EXPECT_EQ(r["bytes_downloaded"], 200000) << r.dump();
  EXPECT_NE(d.log().find("admitted plugins over TCP"), std::string::npos) << d.log();

  // The peer dies: missed heartbeats drop it, and the source waits for it to come back.
  ::kill(peer.pid(), SIGKILL);
  d.wait_plugin("gpu-box", "waiting");
  auto exited = wait_event(sub, "plugin.exited");
  ASSERT_TRUE(exited);
  EXPECT_NE(exited->body["status"].get<std::string>().find("disconnected"), std::string::npos) << exited->body.dump();

  // And comes back: admitted again with the same key.
  Peer again(peer_env(d, k, "gpu-box"), d.dir() / "peer2.log");
  d.wait_plugin("gpu-box", "ready");
}

// The Python SDK speaks CURVE from the same two variables: the example plugin, unchanged,
// serves a remote source.
TEST(TcpCurve, PythonPluginOverTcpIsAdmittedWithItsKey) {
  if (std::system("/usr/bin/python3 -c 'import zmq, msgpack' 2>/dev/null") != 0)
    GTEST_SKIP() << "python3-zmq or python3-msgpack missing (scripts/deps.sh installs them)";
  Keys k;
  Daemon d(tcp_config(k, "      root: " + k.dir.string() + "\n"));
  auto env = peer_env(d, k, "gpu-box");
  Peer peer(env, d.dir() / "peer.log",
            {"/usr/bin/python3", std::string(MODELZOO_SOURCE_DIR) + "/plugins/python-example/plugin.py"});
  auto ready = d.wait_plugin("gpu-box", "ready");
  EXPECT_EQ(ready["plugin"], "python-example") << ready.dump();
  EXPECT_EQ(ready["pid"], peer.pid());
  // Without its key file the SDK refuses to start rather than fall back to plaintext.
  env.back() = "MODELZOO_KEY_FILE=" + (k.dir / "missing.key").string();
  Peer broken(env, d.dir() / "broken.log",
              {"/usr/bin/python3", std::string(MODELZOO_SOURCE_DIR) + "/plugins/python-example/plugin.py"});
  EXPECT_EQ(broken.wait_exit(20s), 2);
  std::ifstream log(d.dir() / "broken.log");
  std::string text((std::istreambuf_iterator<char>(log)), {});
  EXPECT_NE(text.find("CURVE cannot be used"), std::string::npos) << text;
}

TEST(TcpCurve, PeerWithoutCurveIsRefusedAndTheAttemptPublished) {
  Keys k;
  Daemon d(tcp_config(k));
  EventSubscriber sub(d.runtime_dir().string(), {"plugin.rejected"});
  Peer peer(peer_env(d, k, ""), d.dir() / "peer.log");
  auto rejected = wait_event(sub, "plugin.rejected");
  ASSERT_TRUE(rejected) << d.log();
  EXPECT_EQ(rejected->body["transport"], "tcp");
  EXPECT_NE(rejected->body["reason"].get<std::string>().find("handshake failed"), std::string::npos) << rejected->body.dump();
  EXPECT_NE(d.log().find("refused a plugin connection"), std::string::npos) << d.log();
  // Never admitted: its hello never arrives, it gives up (exit 3: no welcome), the source waits.
  EXPECT_EQ(peer.wait_exit(20s), 3);
  EXPECT_EQ(d.plugin("gpu-box")["state"], "waiting");
}

TEST(TcpCurve, KeyNotOnTheAllowListIsRefusedByZap) {
  Keys k;
  Daemon d(tcp_config(k));
  EventSubscriber sub(d.runtime_dir().string(), {"plugin.rejected"});
  // A valid CURVE key pair, the right server key, but not a source's remote_key. Without a
  // ZAP handler libzmq would admit it.
  Peer peer(peer_env(d, k, "intruder"), d.dir() / "peer.log");
  auto rejected = wait_event(sub, "plugin.rejected");
  ASSERT_TRUE(rejected) << d.log();
  EXPECT_EQ(rejected->body["key"], k.pub("intruder")) << rejected->body.dump();
  EXPECT_NE(rejected->body["reason"].get<std::string>().find("not the remote_key of any source"), std::string::npos);
  EXPECT_EQ(peer.wait_exit(20s), 3);
  EXPECT_EQ(d.plugin("gpu-box")["state"], "waiting");
  EXPECT_GE(d.client().status()["listen"]["refused"].get<int>(), 1);
}

TEST(TcpCurve, KeyOfOneSourceCannotClaimAnotherPluginsId) {
  Keys k;
  Daemon d(tcp_config(k) + "  - name: local\n    plugin: memory\n");
  d.wait_plugin("local");
  EventSubscriber sub(d.runtime_dir().string(), {"plugin.rejected"});
  Peer peer(peer_env(d, k, "gpu-box", "local.1"), d.dir() / "peer.log");
  auto rejected = wait_event(sub, "plugin.rejected");
  ASSERT_TRUE(rejected) << d.log();
  EXPECT_NE(rejected->body["reason"].get<std::string>().find("plugin id 'local.1' claimed over TCP with the key of source 'gpu-box'"),
            std::string::npos)
      << rejected->body.dump();
  EXPECT_EQ(peer.wait_exit(20s), 3);
  EXPECT_EQ(d.plugin("gpu-box")["state"], "waiting");
  EXPECT_EQ(d.plugin("local")["restarts"], 0);  // the real one is untouched
}

TEST(TcpCurve, ClientWithAListedKeyIsServedOthersAreRefused) {
  Keys k;
  Daemon d(tcp_config(k));
  std::string endpoint = d.client().status()["listen"]["endpoints"]["clients"];
  std::string cli = (bin_dir() / "modelzoo").string() + " --connect " + endpoint + " --server-key '" + k.pub("server") + "'";
  // The CLI over TCP, with a key on the allow-list.
  auto ok = run(cli + " --key " + k.pair("alice").string() + " status --json 2>/dev/null");
  ASSERT_EQ(ok.status, 0) << ok.out << d.log();
  EXPECT_EQ(nlohmann::json::parse(ok.out)["pid"], d.pid());
  // The library too.
  RemoteDaemon remote{endpoint, k.pub("server"), k.pair("alice").string(), ""};
  Client c(remote);
  EXPECT_EQ(c.call("ping")["pong"], true);

  EventSubscriber sub(d.runtime_dir().string(), {"client.rejected"});
  // A valid key the daemon does not list: refused by ZAP, and told so.
  auto refused = run(cli + " --key " + k.pair("intruder").string() + " status");
  EXPECT_EQ(WEXITSTATUS(refused.status), 3) << refused.out;
  EXPECT_NE(refused.out.find("refused this client's key"), std::string::npos) << refused.out;
  auto rejected = wait_event(sub, "client.rejected");
  ASSERT_TRUE(rejected) << d.log();
  EXPECT_EQ(rejected->body["key"], k.pub("intruder"));
  // A plugin's key is not a client's key.
  auto plugin_key = run(cli + " --key " + k.pair("gpu-box").string() + " status");
  EXPECT_EQ(WEXITSTATUS(plugin_key.status), 3) << plugin_key.out;
  // Removing a key from the allow-list takes effect at its next connection, without a restart.
  std::ofstream(k.dir / "authorized_clients") << "# nobody\n";
  auto revoked = run(cli + " --key " + k.pair("alice").string() + " status");
  EXPECT_EQ(WEXITSTATUS(revoked.status), 3) << revoked.out;
}

TEST(TcpCurve, KeysCommandGeneratesListsAndShows) {
  Keys k;
  struct stat st {};
  ASSERT_EQ(::stat(k.pair("alice").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto kp = bus::read_key_file(k.pair("alice"));
  EXPECT_EQ(kp.public_key, k.pub("alice"));
  std::string cli = (bin_dir() / "modelzoo").string();
  auto list = run(cli + " keys list --json --dir " + k.dir.string() + " 2>/dev/null");
  ASSERT_EQ(list.status, 0) << list.out;
  auto j = json::parse(list.out);
  EXPECT_EQ(j["keys"].size(), 4u) << list.out;
  EXPECT_EQ(j["authorized_clients"].size(), 1u);
  EXPECT_EQ(j["authorized_clients"][0]["name"], "alice");
  EXPECT_EQ(list.out.find(kp.secret_key), std::string::npos) << "a secret key was printed";
  auto show = run(cli + " keys show alice --dir " + k.dir.string() + " 2>/dev/null");
  EXPECT_EQ(show.out, kp.public_key + "\n");
  // Never over an existing key; a name that is not a file name is refused.
  auto again = run(cli + " keys generate alice --dir " + k.dir.string());
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.out.find("already exists"), std::string::npos) << again.out;
  auto hostile = run(cli + " keys generate ../evil --dir " + k.dir.string());
  EXPECT_NE(hostile.status, 0);
  EXPECT_FALSE(fs::exists(k.dir.parent_path() / "evil.key"));
  // A key file others can read is refused.
  ::chmod(k.pair("alice").c_str(), 0644);
  EXPECT_THROW(bus::read_key_file(k.pair("alice")), bus::KeyError);
}

}  // namespace
}  // namespace modelzoo::testing
