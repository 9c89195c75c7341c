// The oci plugin with the real daemon and the real registry server of Debian's
// docker-registry package (distribution) on loopback: a model copied in by skopeo from an OCI
// image layout (the ORAS artifact shape: layers named by org.opencontainers.image.title) is
// pulled into an empty cache byte-identical, its tag pinned to the manifest digest; htpasswd
// basic auth accepted and refused (typed, no secret in the message); a corrupted blob refused
// by the daemon's sha256; 404 typed.
#include <fstream>
#include <random>
#include <set>
#include <thread>

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

// Starts `reg` (anonymous) holding acme/llm:1.0.0 (make_layout), copied in by skopeo.
Layout serve_llm(Registry& reg) {
  reg.start();
  auto l = make_layout(reg.dir() / "layout", "1.0.0");
  skopeo_copy(l, reg, "acme/llm:1.0.0");
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
  auto l = serve_llm(reg);
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
  auto l = serve_llm(reg);
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

// oci_proxy.py in front of a Registry: the token flow, a rate limit, injected statuses.
class Proxy {
 public:
  Proxy(const Registry& reg, std::vector<std::string> args) : dir_(reg.dir()) {
    fs::path port_file = dir_ / ("proxy" + std::to_string(++count_) + ".port");
    log_ = dir_ / ("proxy" + std::to_string(count_) + ".log");
    std::vector<std::string> argv = {"/usr/bin/python3", std::string(MODELZOO_SOURCE_DIR) + "/tests/integration/oci_proxy.py",
                                     reg.url(), port_file.string(), "--fault-file", fault_file().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = spawn_server(argv, log_, port_file, 10s);
    if (pid_ > 0) url_ = "http://127.0.0.1:" + slurp(port_file);
  }
  ~Proxy() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (::testing::Test::HasFailure()) std::cerr << "---- proxy log (last 3000 bytes)\n" << tail(slurp(log_)) << "----\n";
  }
  const std::string& url() const { return url_; }
  std::string log() const { return slurp(log_); }
  // Blob GETs answer "STATUS [RETRY_AFTER]" until cleared.
  void inject(const std::string& line) { std::ofstream(fault_file()) << line << "\n"; }
  void clear() { fs::remove(fault_file()); }

 private:
  static std::string tail(const std::string& s) { return s.size() > 3000 ? s.substr(s.size() - 3000) : s; }
  fs::path fault_file() const { return dir_ / ("fault" + std::to_string(count_)); }
  static inline int count_ = 0;
  fs::path dir_, log_;
  pid_t pid_ = -1;
  std::string url_;
};

// The Bearer challenge flow: 401 + WWW-Authenticate: Bearer realm=... -> a token from the
// realm (basic credentials) -> the request again with it. The realm is a loopback stand-in
// (oci_proxy.py --token) in front of the real docker-registry.
TEST(OciRegistry, TheBearerChallengeFlowGetsATokenFromTheRealm) {
  REQUIRE_TOOLS();
  Registry reg;
  auto l = serve_llm(reg);
  Proxy proxy(reg, {"--token", "alice:pw-RIGHT-41"});
  ASSERT_FALSE(proxy.url().empty());
  {
    Daemon d(oci_config(proxy.url(), "      auth: {user: alice, password: pw-RIGHT-41}\n"));
    d.wait_plugin("oci");
    expect_same_files(d.client().pull("acme/llm:1.0.0"), l);
    EXPECT_EQ(d.log().find("tok-BEARER-77"), std::string::npos) << "the token never shows in a log line";
  }
  {
    Daemon d(oci_config(proxy.url(), "      auth: {user: alice, password: pw-WRONG-42}\n"));
    d.wait_plugin("oci");
    auto e = pull_error(d, "acme/llm:1.0.0");
    EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
    EXPECT_NE(std::string(e.what()).find("token service"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("pw-WRONG-42"), std::string::npos) << e.what();
  }
}

std::string source_of(const std::string& name, const std::string& url, int priority, const std::string& extra = "") {
  return "  - name: " + name + "\n    plugin: oci\n    priority: " + std::to_string(priority) + "\n    config:\n      url: " + url +
         "\n      docker_config: /nonexistent\n      retry: {attempts: 2, initial_ms: 50, max_ms: 2000}\n" + extra;
}

// Behind a token flow and a per-connection rate limit: the blob comes in parallel ranged
// pieces (streams 4), and the plugin killed mid-transfer leaves the daemon to take the rest
// from the second source at the offset it had.
TEST(OciRegistry, ABlobInParallelPiecesAndAPluginKilledMidTransferFailsOverAtTheOffset) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  Layout l;
  l.dir = reg.dir() / "layout";
  l.files["model.gguf"] = random_bytes(6 * kMiB, 11);
  l.write("1.0.0");
  skopeo_copy(l, reg, "acme/big:1.0.0");
  Proxy proxy(reg, {"--token", "alice:pw-RIGHT-41", "--rate", std::to_string(3 * kMiB)});
  ASSERT_FALSE(proxy.url().empty());
  const std::string auth = "      auth: {user: alice, password: pw-RIGHT-41}\n      streams: 4\n      piece_bytes: 1048576\n";
  Daemon d(std::string(kFastTimers) + "log_level: debug\nsources:\n" + source_of("first", proxy.url(), 50, auth) +
           source_of("second", proxy.url(), 10, auth));
  auto reply = pull_killing_first(d, "acme/big:1.0.0", 1 * kMiB, 30s);
  const auto* f = file_of(reply, "model.gguf");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(slurp((*f)["path"].get<std::string>()), l.files["model.gguf"]) << "not byte-identical";
  EXPECT_LT(reply["bytes_downloaded"].get<std::uint64_t>(), 6 * kMiB + 4096)
      << "the two sources together did not send the file once";
  // pieces: distinct ranges of the blob asked for
  std::set<std::string> ranges;
  std::istringstream log(proxy.log());
  const std::string blob = "/blobs/sha256:" + sha256_hex(l.files["model.gguf"]) + " range=bytes=";
  for (std::string line; std::getline(log, line);)
    if (auto p = line.find(blob); p != std::string::npos && line.find("status=206") != std::string::npos)
      ranges.insert(line.substr(p + blob.size(), line.find(' ', p + blob.size()) - p - blob.size()));
  EXPECT_GE(ranges.size(), 3u) << "parallel pieces: " << proxy.log();
}

// Statuses a registry gives, each as the daemon's typed error naming the source's problem.
TEST(OciRegistry, StatusesFromTheRegistryBecomeTypedErrors) {
  REQUIRE_TOOLS();
  Registry reg;
  auto l = serve_llm(reg);
  Proxy proxy(reg, {});
  ASSERT_FALSE(proxy.url().empty());
  Daemon d(std::string(kFastTimers) + "sources:\n" + source_of("oci", proxy.url(), 50));
  d.wait_plugin("oci");
  const std::pair<const char*, bus::ErrorCode> cases[] = {{"403", bus::ErrorCode::unauthorized},
                                                          {"404", bus::ErrorCode::not_found},
                                                          {"500", bus::ErrorCode::unavailable},
                                                          {"503", bus::ErrorCode::unavailable},
                                                          {"429 1", bus::ErrorCode::unavailable}};
  for (const auto& [status, code] : cases) {
    proxy.inject(status);
    auto e = pull_error(d, "acme/llm:1.0.0");
    EXPECT_EQ(e.code(), code) << status << ": " << e.what();
    std::string code3 = std::string(status).substr(0, 3);
    EXPECT_NE(std::string(e.what()).find(code3), std::string::npos) << "names the status: " << e.what();
    EXPECT_NE(std::string(e.what()).find("acme/llm"), std::string::npos) << "names the repository: " << e.what();
  }
  EXPECT_NE(proxy.log().find("status=429"), std::string::npos);
  proxy.clear();
  expect_same_files(d.client().pull("acme/llm:1.0.0"), l);
}

// A file above --chunk-mib goes up in PATCH chunks the real registry assembles.
TEST(OciRegistry, AChunkedPushIsReadBackByteIdentical) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  Daemon source(std::string(kFastTimers) + "sources:\n" + memory_source("mem", 10, "acme/chunky", "", 3 * kMiB + 12345));
  source.wait_plugin("mem");
  auto pulled = source.client().pull("acme/chunky:1.0.0");
  auto res = run((bin_dir() / "modelzoo").string() + " push acme/chunky:1.0.0 oci://" + reg.host() +
                 "/acme/chunky --chunk-mib 1 --cache-dir " + source.cache_dir().string() + " --json 2>/dev/null");
  ASSERT_EQ(res.status, 0) << res.out;
  auto reply = nlohmann::json::parse(res.out);
  EXPECT_EQ(reply["chunks_uploaded"], 4) << "3 MiB + 12345 bytes in 1 MiB PATCHes: " << res.out;
  Daemon d(oci_config(reg.url()));
  d.wait_plugin("oci");
  auto back = d.client().pull("acme/chunky:1.0.0");
  ASSERT_EQ(back["files"].size(), 1u);
  EXPECT_EQ(slurp(back["files"][0]["path"].get<std::string>()), slurp(pulled["files"][0]["path"].get<std::string>()));
}

// Uploads `data` as a blob of `repo` (POST + monolithic PUT, with curl).
std::string upload_blob(const Registry& reg, const std::string& repo, const std::string& data) {
  auto hex = sha256_hex(data);
  fs::path f = reg.dir() / ("up-" + hex);
  std::ofstream(f, std::ios::binary) << data;
  auto loc = run("curl -s -o /dev/null -w '%{redirect_url}%header{location}' -X POST " + reg.url() + "/v2/" + repo + "/blobs/uploads/");
  EXPECT_EQ(loc.status, 0) << loc.out;
  std::string url = loc.out.rfind("http", 0) == 0 ? loc.out : reg.url() + loc.out;
  url += (url.find('?') == std::string::npos ? "?" : "&") + std::string("digest=sha256:") + hex;
  auto put = run("curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary @" + f.string() + " '" + url + "'");
  EXPECT_EQ(put.status, 0) << put.out;
  return "sha256:" + hex;
}

// An Ollama-layout manifest (Docker schema 2, application/vnd.ollama.image.* layers) in the
// real registry, under Ollama-style tags: a tag with '_' is the
// version 0.0.0+<tag> with '--' for '_'; `versions` maps a semantic version to a tag.
TEST(OciRegistry, AnOllamaLayoutManifestPullsByItsTags) {
  REQUIRE_TOOLS();
  Registry reg;
  reg.start();
  const std::string repo = "library/llama3";
  std::string gguf = random_bytes(256 * 1024, 21), params = R"({"stop":["<|eot_id|>"]})", tmpl = "{{ .Prompt }}";
  nlohmann::json config = {{"model_format", "gguf"}, {"model_family", "llama"}};
  std::string cfg = config.dump();
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
                      {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"},
                                  {"digest", upload_blob(reg, repo, cfg)}, {"size", cfg.size()}}},
                      {"layers",
                       {{{"mediaType", "application/vnd.ollama.image.model"}, {"digest", upload_blob(reg, repo, gguf)}, {"size", gguf.size()}},
                        {{"mediaType", "application/vnd.ollama.image.template"}, {"digest", upload_blob(reg, repo, tmpl)}, {"size", tmpl.size()}},
                        {{"mediaType", "application/vnd.ollama.image.params"}, {"digest", upload_blob(reg, repo, params)}, {"size", params.size()}}}}};
  std::ofstream(reg.dir() / "manifest.json") << m.dump();
  for (const char* tag : {"latest", "8b-instruct-q4_K_M", "8b"}) {
    auto put = run("curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary @" +
                   (reg.dir() / "manifest.json").string() + " " + reg.url() + "/v2/" + repo + "/manifests/" + tag);
    ASSERT_EQ(put.status, 0) << put.out;
  }
  // page_size 1: the catalog and every tag list come one entry a page (Link: rel="next")
  Daemon d(oci_config(reg.url(), "      versions: {\"8.0.0\": \"8b\"}\n      page_size: 1\n"));
  d.wait_plugin("oci");
  auto check = [&](const nlohmann::json& reply) {
    ASSERT_EQ(reply["files"].size(), 3u) << reply.dump();
    EXPECT_EQ(slurp(file_of(reply, "model.gguf")->at("path").get<std::string>()), gguf);
    EXPECT_EQ(slurp(file_of(reply, "template")->at("path").get<std::string>()), tmpl);
    EXPECT_EQ(slurp(file_of(reply, "params.json")->at("path").get<std::string>()), params);
  };
  auto latest = d.client().pull("library/llama3:8.0.0");
  check(latest);
  auto q = d.client().pull("library/llama3:0.0.0+8b-instruct-q4--K--M");
  check(q);
  // only tags that are no semantic version: no version is `latest`
  for (const auto& data : {cfg, gguf, tmpl, params}) upload_blob(reg, "library/phi3", data);
  for (const char* tag : {"q4_0", "latest"}) {
    auto put = run("curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' --data-binary @" +
                   (reg.dir() / "manifest.json").string() + " " + reg.url() + "/v2/library/phi3/manifests/" + tag);
    ASSERT_EQ(put.status, 0) << put.out;
  }
  auto phi = d.client().pull("library/phi3");
  EXPECT_EQ(phi["version"], "0.0.0+latest");
  check(phi);
  auto versions = d.client().models().dump();
  EXPECT_NE(versions.find("0.0.0+8b-instruct-q4--K--M"), std::string::npos) << versions;
  EXPECT_NE(versions.find("0.0.0+latest"), std::string::npos) << versions;
  EXPECT_NE(versions.find("8.0.0"), std::string::npos) << versions;
  EXPECT_NE(versions.find("library/phi3"), std::string::npos) << "the second catalog page: " << versions;
  EXPECT_NE(versions.find("0.0.0+q4--0"), std::string::npos) << versions;
}

}  // namespace
}  // namespace modelzoo::testing
