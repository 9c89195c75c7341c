// The huggingface plugin with the real daemon and a loopback stand-in for the Hugging Face Hub
// (tests/hfhub/hub_server.py: the hub's API shapes, resolve answering 302 to a second "CDN"
// port): a pull into an empty cache byte-identical to the repo, git files verified by blob id,
// allow/ignore patterns, the commit pinned, no token at the CDN, 401/403/404/429/5xx typed, a
// corrupted file refused, a plugin killed mid-transfer failing over at the offset, a server
// dying mid-file resumed.
#include <fstream>
#include <random>
#include <set>

#include "loopback_util.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {


std::string sha256_of_file(const fs::path& p) {
  std::string s = slurp(p);
  bus::Sha256 h;
  h.update(s.data(), s.size());
  return h.hex_digest();
}

void write_random(const fs::path& file, std::uint64_t size, unsigned seed) {
  fs::create_directories(file.parent_path());
  std::mt19937_64 rng(seed);
  std::string buf(size, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  std::ofstream(file, std::ios::binary | std::ios::trunc) << buf;
}

fs::path server_script() { return fs::path(MODELZOO_SOURCE_DIR) / "tests/hfhub/hub_server.py"; }

#define REQUIRE_PLUGIN()                                                                            \
  if (!fs::exists(bin_dir() / "modelzoo-plugin-huggingface")) GTEST_SKIP() << "the plugin is not built"

// The fake hub: a repo tree on disk (root()), the hub port and its CDN port.
class FakeHub : public ServerProcess {
 public:
  FakeHub() : ServerProcess("hfhub") {}
  fs::path cdn_log() const { return dir() / "cdn.log"; }
  void start(const std::vector<std::string>& args = {}, int port = 0) {
    std::vector<std::string> argv = {"/usr/bin/python3", server_script().string(), "--root", root().string(),
                                     "--port", std::to_string(port), "--port-file", port_file().string(),
                                     "--cdn-log", cdn_log().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    run_server(argv, 20s);
  }
};

// acme/tiny: a git file, an LFS weights file, and a file patterns leave out.
void make_repo(const FakeHub& h, std::uint64_t weights = 512 * 1024, const std::string& repo = "acme/tiny") {
  fs::create_directories(h.root() / repo);
  std::ofstream(h.root() / repo / "config.json") << "{\"architectures\": [\"Tiny\"], \"hidden\": 8}\n";
  write_random(h.root() / repo / "model.safetensors", weights, 5);
  write_random(h.root() / repo / "pytorch_model.bin", 100 * 1024, 6);
}

std::string source(const std::string& name, const std::string& url, int priority = 50, const std::string& extra = "") {
  return "  - name: " + name + "\n    plugin: huggingface\n    priority: " + std::to_string(priority) +
         "\n    config:\n      endpoint: " + url + "\n      prefix: hf/\n      retry: {attempts: 3, initial_ms: 50, max_ms: 2000}\n"
         "      allow_patterns: ['*.safetensors', '*.json']\n" + extra;
}

std::string config(const std::string& sources) { return std::string(kFastTimers) + "log_level: debug\nsources:\n" + sources; }


TEST(HuggingFace, PullsARepoByteIdenticalWithoutTheTokenReachingTheCdn) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  make_repo(hub);
  hub.start({"--private", "acme/tiny=hf_SECRET_token_77"});
  Daemon d(config(source("hf", hub.url(), 50, "      token: hf_SECRET_token_77\n")));
  d.wait_plugin("hf");
  auto reply = d.client().pull("hf/acme/tiny");
  EXPECT_EQ(reply["source"], "hf");
  std::string version = reply["version"];
  EXPECT_EQ(version.rfind("0.0.0+", 0), 0u) << "not pinned to a commit: " << version;
  EXPECT_EQ(version.size(), 6u + 40u);
  ASSERT_EQ(reply["files"].size(), 2u) << reply.dump() << " (allow_patterns leave out pytorch_model.bin)";
  for (auto name : {"config.json", "model.safetensors"}) {
    const auto* f = file_of(reply, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(slurp((*f)["path"].get<std::string>()), slurp(hub.root() / "acme/tiny" / name)) << name;
  }
  // The LFS file went through the CDN, and the token did not go with it.
  std::string cdn = slurp(hub.cdn_log());
  EXPECT_NE(cdn.find("noauth /acme/tiny/"), std::string::npos) << cdn;
  EXPECT_EQ(cdn.find("auth /") == 0 || cdn.find("\nauth /") != std::string::npos, false) << cdn;
  EXPECT_EQ(d.log().find("hf_SECRET_token_77"), std::string::npos);
  // The pinned version comes from the cache, and the metadata says how files were verified.
  auto again = d.client().pull("hf/acme/tiny:" + version);
  EXPECT_EQ(again["bytes_downloaded"], 0);
  auto show = run((bin_dir() / "modelzoo").string() + " --runtime-dir " + d.runtime_dir().string() + " show hf/acme/tiny:" +
                  version + " 2>&1");
  EXPECT_NE(show.out.find("git blob id"), std::string::npos) << show.out;
}

TEST(HuggingFace, AuthAndMissingReposAreTypedAndSayWhatToDo) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  make_repo(hub, 4096);
  make_repo(hub, 4096, "acme/gated");
  hub.start({"--private", "acme/tiny=tok-right-1", "--gated", "acme/gated=tok-right-1"});
  Daemon d(config(source("hf", hub.url(), 50, "      token: tok-wrong-2\n")));
  d.wait_plugin("hf");
  auto e401 = pull_error(d, "hf/acme/tiny");
  EXPECT_EQ(e401.code(), bus::ErrorCode::unauthorized) << e401.what();
  EXPECT_NE(std::string(e401.what()).find("acme/tiny"), std::string::npos) << e401.what();
  EXPECT_NE(std::string(e401.what()).find("HF_TOKEN"), std::string::npos) << e401.what();
  auto e403 = pull_error(d, "hf/acme/gated");
  EXPECT_EQ(e403.code(), bus::ErrorCode::unauthorized) << e403.what();
  EXPECT_NE(std::string(e403.what()).find("accept its terms"), std::string::npos) << e403.what();
  EXPECT_NE(std::string(e403.what()).find("403"), std::string::npos) << e403.what();
  EXPECT_EQ(std::string(e403.what()).find("tok-wrong-2"), std::string::npos) << e403.what();
  auto e404 = pull_error(d, "hf/acme/nothing");
  // Without the repo, a hub answers 401 to a request without a token and 404 with one.
  EXPECT_EQ(e404.code(), bus::ErrorCode::not_found) << e404.what();
}

TEST(HuggingFace, TooManyRequestsAndServerErrorsAreRetriedThenUnavailable) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  make_repo(hub, 4096);
  hub.start({"--fail-first", "2", "--fail-status", "429", "--retry-after", "1"});
  {
    Daemon d(config(source("hf", hub.url())));
    d.wait_plugin("hf");
    EXPECT_EQ(d.client().pull("hf/acme/tiny")["source"], "hf");
    EXPECT_NE(d.log().find("retrying in 1000 ms (Retry-After)"), std::string::npos) << d.log();
  }
  hub.start({"--fail-first", "1000", "--fail-status", "503"});
  Daemon d(config(source("hf", hub.url())));
  d.wait_plugin("hf");
  auto e = pull_error(d, "hf/acme/tiny");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable) << e.what();
  EXPECT_NE(std::string(e.what()).find("503"), std::string::npos) << e.what();
}

TEST(HuggingFace, ListingFollowsTheHubsPagesUpToListLimit) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  for (int i = 0; i < 5; ++i) make_repo(hub, 1024, "acme/m" + std::to_string(i));
  hub.start({"--max-page", "2"});  // pages of 2 with a Link to the next
  auto names = [](Daemon& d) {
    std::set<std::string> out;
    auto reply = d.client().models();
    for (const auto& m : reply["models"]) out.insert(m["name"].get<std::string>());
    EXPECT_TRUE(reply["errors"].empty()) << reply.dump();
    return out;
  };
  {
    Daemon d(config(source("hf", hub.url(), 50, "      author: acme\n")));
    d.wait_plugin("hf");
    EXPECT_EQ(names(d), (std::set<std::string>{"hf/acme/m0", "hf/acme/m1", "hf/acme/m2", "hf/acme/m3", "hf/acme/m4"}));
  }
  Daemon d(config(source("hf", hub.url(), 50, "      author: acme\n      list_limit: 3\n")));
  d.wait_plugin("hf");
  EXPECT_EQ(names(d).size(), 3u);  // two pages, the second cut at the limit
}

TEST(HuggingFace, ACorruptedFileIsRefused) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  make_repo(hub);
  hub.start({"--corrupt", "model.safetensors"});
  Daemon d(config(source("hf", hub.url())));
  d.wait_plugin("hf");
  auto e = pull_error(d, "hf/acme/tiny");
  EXPECT_NE(std::string(e.what()).find("sha256"), std::string::npos) << e.what();
  EXPECT_FALSE(run((bin_dir() / "modelzoo").string() + " --runtime-dir " + d.runtime_dir().string() + " list 2>&1")
                   .out.find("hf/acme/tiny") != std::string::npos);
}

TEST(HuggingFace, APluginKilledMidTransferFailsOverAtTheOffset) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  make_repo(hub, 6 * kMiB);
  hub.start({"--rate-limit", std::to_string(4 * kMiB)});
  Daemon d(config(source("first", hub.url(), 50) + source("second", hub.url(), 10)));
  auto reply = pull_killing_first(d, "hf/acme/tiny", 1 * kMiB, 20s, "model.safetensors");
  const auto* f = file_of(reply, "model.safetensors");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(sha256_of_file((*f)["path"].get<std::string>()), sha256_of_file(hub.root() / "acme/tiny/model.safetensors"));
  EXPECT_LT(reply["bytes_downloaded"].get<std::uint64_t>(), 6 * kMiB + 4096)
      << "the two sources together did not send the file once";
}

TEST(HuggingFace, AServerDyingMidFileLeavesAPartialTheNextPullResumes) {
  REQUIRE_PLUGIN();
  FakeHub hub;
  make_repo(hub, 4 * kMiB);
  hub.start({"--die-after-bytes", std::to_string(kMiB + 4321)});
  Daemon d(config(source("hf", hub.url())));
  d.wait_plugin("hf");
  auto e = pull_error(d, "hf/acme/tiny");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable) << e.what();
  EXPECT_TRUE(hub.wait_exit(5s));
  hub.start({}, hub.port());
  auto reply = d.client().pull("hf/acme/tiny");
  EXPECT_LT(reply["bytes_downloaded"].get<std::uint64_t>(), 4 * kMiB) << "the partial was not resumed";
  const auto* f = file_of(reply, "model.safetensors");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(sha256_of_file((*f)["path"].get<std::string>()), sha256_of_file(hub.root() / "acme/tiny/model.safetensors"));
}

}  // namespace
}  // namespace modelzoo::testing
