// The oci plugin with the real daemon and the real registry server of Debian's
// docker-registry package (distribution) on loopback: a model copied in by skopeo from an OCI
// image layout (the ORAS artifact shape: layers named by org.opencontainers.image.title) is
// pulled into an empty cache byte-identical, its tag pinned to the manifest digest; htpasswd
// basic auth accepted and refused (typed, no secret in the message); a corrupted blob refused
// by the daemon's sha256; 404 typed.
#include <fstream>
#include <random>

#include "loopback_util.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {


std::string sha256_hex(const std::string& data) {
  bus::Sha256 h;
  h.update(data.data(), data.size());
  return h.hex_digest();
}

bool have(const char* tool) { return run(std::string("command -v ") + tool + " >/dev/null").status == 0; }

#define REQUIRE_TOOLS()                                                                                  \
  for (const char* t : {"docker-registry", "skopeo", "htpasswd"})                                         \
    if (!have(t)) {                                                                                      \
      if (std::getenv("CI")) FAIL() << t << " is not installed (scripts/deps.sh installs it)";             \
      GTEST_SKIP() << t << " is not installed (scripts/deps.sh installs it)";                              \
    }


bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// docker-registry on 127.0.0.1 with a generated configuration, storage in a temp dir.
class Registry {
 public:
  Registry() {
    char tmpl[] = "/tmp/modelzoo-oci-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
  }
  ~Registry() {
    stop();
    if (::testing::Test::HasFailure()) std::cerr << "---- docker-registry log\n" << slurp(dir_ / "registry.log") << "----\n";
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const fs::path& dir() const { return dir_; }
  int port() const { return port_; }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "http://" + host(); }

  // `auth_yaml`: the registry's auth section (empty: anonymous).
  void start(const std::string& auth_yaml = "") {
    port_ = dead_port();
    std::ofstream(dir_ / "config.yml") << "version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: "
                                       << (dir_ / "store").string() << "}\nhttp:\n  addr: " << host() << "\n"
                                       << auth_yaml;
    std::vector<std::string> argv_s = {"/usr/bin/docker-registry", "serve", (dir_ / "config.yml").string()};
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    std::string log_file = (dir_ / "registry.log").string();
    posix_spawn_file_actions_addopen(&fa, 2, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    int rc = ::posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ASSERT_EQ(rc, 0) << "cannot start docker-registry";
    ASSERT_TRUE(wait_until([&] { return port_open(port_) || !process_alive(pid_); }, 20s));
    ASSERT_TRUE(process_alive(pid_)) << "docker-registry exited at start:\n" << slurp(dir_ / "registry.log");
  }
  void stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // The stored bytes of a blob (distribution's filesystem layout).
  fs::path blob_data(const std::string& hex) const {
    return dir_ / "store/docker/registry/v2/blobs/sha256" / hex.substr(0, 2) / hex / "data";
  }

 private:
  fs::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// An OCI image layout holding one model artifact, the way ORAS shapes one: an empty config,
// one layer per file titled with its name.
struct Layout {
  fs::path dir;
  std::map<std::string, std::string> files;  // name -> bytes
  std::string manifest_digest;

  std::string blob(const std::string& data) {
    auto hex = sha256_hex(data);
    std::ofstream(dir / "blobs/sha256" / hex, std::ios::binary) << data;
    return "sha256:" + hex;
  }
  void write(const std::string& tag) {
    fs::create_directories(dir / "blobs/sha256");
    nlohmann::json layers = nlohmann::json::array();
    for (auto& [name, data] : files)
      layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                        {"digest", blob(data)},
                        {"size", data.size()},
                        {"annotations", {{"org.opencontainers.image.title", name}}}});
    nlohmann::json m = {{"schemaVersion", 2},
                        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                        {"artifactType", "application/vnd.modelzoo.model.v1"},
                        {"config", {{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", blob("{}")}, {"size", 2}}},
                        {"layers", layers}};
    std::string mb = m.dump();
    manifest_digest = blob(mb);
    nlohmann::json index = {{"schemaVersion", 2},
                            {"manifests",
                             {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                               {"digest", manifest_digest},
                               {"size", mb.size()},
                               {"annotations", {{"org.opencontainers.image.ref.name", tag}}}}}}};
    std::ofstream(dir / "index.json") << index.dump();
    std::ofstream(dir / "oci-layout") << R"({"imageLayoutVersion":"1.0.0"})";
  }
};

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

// Copies the layout's `tag` into the registry with skopeo.
void skopeo_copy(const Layout& l, const Registry& r, const std::string& repo_tag, const std::string& creds = "") {
  auto res = run("skopeo copy --quiet --dest-tls-verify=false " + (creds.empty() ? "" : "--dest-creds " + creds + " ") +
                 "oci:" + l.dir.string() + ":" + repo_tag.substr(repo_tag.rfind(':') + 1) + " docker://" + r.host() +
                 "/" + repo_tag);
  ASSERT_EQ(res.status, 0) << res.out;
}

Layout make_layout(const fs::path& dir, const std::string& tag) {
  Layout l;
  l.dir = dir;
  l.files["weights/w.bin"] = random_bytes(300 * 1024, 7);
  l.files["config.json"] = R"({"arch":"tiny"})";
  l.write(tag);
  return l;
}

std::string oci_config(const std::string& url, const std::string& extra = "") {
  std::ostringstream s;
  s << kFastTimers << "log_level: debug\nsources:\n  - name: oci\n    plugin: oci\n    priority: 50\n    config:\n"
    << "      url: " << url << "\n      docker_config: /nonexistent\n" << extra;
  return s.str();
}


void expect_same_files(const nlohmann::json& reply, const Layout& l) {
  ASSERT_EQ(reply["files"].size(), l.files.size()) << reply.dump();
  for (const auto& f : reply["files"]) {
    auto name = f["name"].get<std::string>();
    ASSERT_TRUE(l.files.count(name)) << name;
    EXPECT_EQ(slurp(f["path"].get<std::string>()), l.files.at(name)) << name << " is not byte-identical";
    EXPECT_EQ(f["sha256"], sha256_hex(l.files.at(name)));
  }
}

TEST(OciRegistry, AModelCopiedInBySkopeoPullsByteIdenticalPinnedToItsDigest) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  auto l = make_layout(reg.dir() / "layout", "1.0.0");
  skopeo_copy(l, reg, "acme/llm:1.0.0");
  Daemon d(oci_config(reg.url()));
  d.wait_plugin("oci");
  auto reply = d.client().pull("acme/llm:1.0.0");
  EXPECT_EQ(reply["source"], "oci");
  expect_same_files(reply, l);
  auto show = d.client().show("acme/llm:1.0.0").dump();
  EXPECT_NE(show.find(l.manifest_digest), std::string::npos) << "the pinned manifest digest is reported: " << show;
  // latest: the highest semver tag
  EXPECT_EQ(d.client().pull("acme/llm")["version"], "1.0.0");
  auto models = d.client().models().dump();
  EXPECT_NE(models.find("acme/llm"), std::string::npos) << models;
  auto e = pull_error(d, "acme/nothing:1.0.0");
  EXPECT_EQ(e.code(), bus::ErrorCode::not_found) << e.what();
  e = pull_error(d, "acme/llm:9.9.9");
  EXPECT_EQ(e.code(), bus::ErrorCode::not_found) << e.what();
}

TEST(OciRegistry, ACorruptedBlobIsRefusedByTheDaemon) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  auto l = make_layout(reg.dir() / "layout", "1.0.0");
  skopeo_copy(l, reg, "acme/llm:1.0.0");
  // Same size, other bytes: the registry's filesystem store serves them as they are.
  auto path = reg.blob_data(sha256_hex(l.files["weights/w.bin"]));
  ASSERT_TRUE(fs::exists(path)) << path;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << random_bytes(300 * 1024, 8);
  Daemon d(oci_config(reg.url()));
  d.wait_plugin("oci");
  auto e = pull_error(d, "acme/llm:1.0.0");
  EXPECT_NE(std::string(e.what()).find("sha256"), std::string::npos) << e.what();
}

TEST(OciRegistry, HtpasswdBasicAuthIsAcceptedAndRefusedWithTypedErrors) {
  REQUIRE_TOOLS();
  Registry reg;
  auto hp = run("htpasswd -Bbn alice pw-RIGHT-41 > " + (reg.dir() / "htpasswd").string());
  ASSERT_EQ(hp.status, 0) << hp.out;
  reg.start("auth:\n  htpasswd:\n    realm: modelzoo-test\n    path: " + (reg.dir() / "htpasswd").string() + "\n");
  auto l = make_layout(reg.dir() / "layout", "1.0.0");
  skopeo_copy(l, reg, "acme/llm:1.0.0", "alice:pw-RIGHT-41");
  {
    Daemon d(oci_config(reg.url(), "      auth: {user: alice, password: pw-RIGHT-41}\n"));
    d.wait_plugin("oci");
    expect_same_files(d.client().pull("acme/llm:1.0.0"), l);
  }
  {
    Daemon d(oci_config(reg.url(), "      auth: {user: alice, password: pw-WRONG-42}\n"));
    d.wait_plugin("oci");
    auto e = pull_error(d, "acme/llm:1.0.0");
    EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
    EXPECT_EQ(std::string(e.what()).find("pw-WRONG-42"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("acme/llm"), std::string::npos) << "names the repository: " << e.what();
    EXPECT_EQ(d.log().find("pw-WRONG-42"), std::string::npos);
  }
  {
    Daemon d(oci_config(reg.url()));  // anonymous
    d.wait_plugin("oci");
    auto e = pull_error(d, "acme/llm:1.0.0");
    EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
  }
  {  // credentials from a docker config.json `auths` entry
    std::ofstream(reg.dir() / "docker.json") << R"({"auths":{")" << reg.host() << R"(":{"auth":"YWxpY2U6cHctUklHSFQtNDE="}}})";
    Daemon d(kFastTimers + std::string("sources:\n  - name: oci\n    plugin: oci\n    config:\n      url: ") + reg.url() +
             "\n      docker_config: " + (reg.dir() / "docker.json").string() + "\n");
    d.wait_plugin("oci");
    expect_same_files(d.client().pull("acme/llm:1.0.0"), l);
  }
}

// modelzoo push of a cached model, then a pull into an empty cache from the registry.
TEST(OciRegistry, PushThenPullIntoAnEmptyCacheIsByteIdentical) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  Daemon source(std::string(kFastTimers) + "sources:\n" + memory_source("mem", 10, "acme/tiny", "", 200 * 1024));
  source.wait_plugin("mem");
  auto pulled = source.client().pull("acme/tiny:1.0.0");
  std::string cli = (bin_dir() / "modelzoo").string() + " push acme/tiny:1.0.0 oci://" + reg.host() + "/acme/tiny --cache-dir " +
                    source.cache_dir().string() + " --json";
  auto first = run(cli + " 2>/dev/null");
  ASSERT_EQ(first.status, 0) << first.out;
  auto reply = nlohmann::json::parse(first.out);
  EXPECT_EQ(reply["tag"], "1.0.0");
  EXPECT_EQ(reply["blobs_uploaded"], 2) << "the file and the config";
  auto again = nlohmann::json::parse(run(cli + " 2>/dev/null").out);
  EXPECT_EQ(again["blobs_skipped"], 2) << "HEAD finds them: nothing uploaded twice";
  EXPECT_EQ(again["digest"], reply["digest"]);

  Daemon d(oci_config(reg.url()));
  d.wait_plugin("oci");
  auto back = d.client().pull("acme/tiny:1.0.0");
  ASSERT_EQ(back["files"].size(), 1u);
  EXPECT_EQ(back["files"][0]["name"], "weights.bin");
  EXPECT_EQ(slurp(back["files"][0]["path"].get<std::string>()), slurp(pulled["files"][0]["path"].get<std::string>()));
  EXPECT_NE(d.client().show("acme/tiny:1.0.0").dump().find(reply["digest"].get<std::string>()), std::string::npos);

  auto missing = run((bin_dir() / "modelzoo").string() + " push acme/none:1.0.0 oci://" + reg.host() + "/x --cache-dir " +
                     source.cache_dir().string() + " --json 2>&1");
  EXPECT_NE(missing.status, 0);
  EXPECT_NE(missing.out.find("not_found"), std::string::npos) << missing.out;
}

// The Bearer challenge flow: 401 + WWW-Authenticate: Bearer realm=... -> a token from the
// realm (basic credentials) -> the request again with it. The realm is a loopback stand-in
// (oci_token_realm.py) in front of the real docker-registry.
TEST(OciRegistry, TheBearerChallengeFlowGetsATokenFromTheRealm) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  auto l = make_layout(reg.dir() / "layout", "1.0.0");
  skopeo_copy(l, reg, "acme/llm:1.0.0");
  fs::path port_file = reg.dir() / "realm.port";
  std::string script = std::string(MODELZOO_SOURCE_DIR) + "/tests/integration/oci_token_realm.py";
  std::vector<std::string> argv_s = {"/usr/bin/python3", script, reg.url(), "alice:pw-RIGHT-41", port_file.string()};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  ASSERT_EQ(::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  struct Reap {
    pid_t pid;
    ~Reap() {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  } reap{pid};
  ASSERT_TRUE(wait_until([&] { return fs::exists(port_file) || !process_alive(pid); }, 10s));
  ASSERT_TRUE(fs::exists(port_file)) << "the token realm did not start";
  std::string url = "http://127.0.0.1:" + slurp(port_file);
  {
    Daemon d(oci_config(url, "      auth: {user: alice, password: pw-RIGHT-41}\n"));
    d.wait_plugin("oci");
    expect_same_files(d.client().pull("acme/llm:1.0.0"), l);
    EXPECT_EQ(d.log().find("tok-BEARER-77"), std::string::npos) << "the token never shows in a log line";
  }
  {
    Daemon d(oci_config(url, "      auth: {user: alice, password: pw-WRONG-42}\n"));
    d.wait_plugin("oci");
    auto e = pull_error(d, "acme/llm:1.0.0");
    EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
    EXPECT_NE(std::string(e.what()).find("token service"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("pw-WRONG-42"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace modelzoo::testing
