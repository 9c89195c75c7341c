// The gcs plugin with the real daemon against a loopback stand-in for GCS's JSON API and
// Google's token endpoints (tests/gcs/fake_gcs.py), which verifies the plugin's service-account
// JWTs with Google's own library (Debian's python3-google-auth).
//
// A service account: hashes from each place, a computed one recorded by objects.patch with the
// object's other metadata kept, 4 parallel ranges; pages of 2 with an authorized_user refresh
// token; the metadata server; a wrong token, another key's JWT refused and a missing model typed.
#include <cstdlib>
#include <random>

#include "loopback_util.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

const char* kEmail = "modelzoo-test@example-project.iam.gserviceaccount.com";

std::string gcs_random(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class FakeGcs : public ServerProcess {
 public:
  FakeGcs() : ServerProcess("gcs") {}
  fs::path bucket() const { return root() / "models"; }
  // A service account key pair (openssl), the server started with its public half.
  bool start(std::string& why) {
    if (run("/usr/bin/python3 -c 'import google.auth.jwt' 2>&1").status != 0) {
      why = "Debian's python3-google-auth is not installed (scripts/deps.sh)";
      return false;
    }
    for (const char* k : {"key", "other"})
      if (run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + (dir() / (std::string(k) + ".pem")).string() +
              " 2>&1").status != 0) {
        why = "openssl cannot make an RSA key";
        return false;
      }
    EXPECT_EQ(run("openssl pkey -in " + (dir() / "key.pem").string() + " -pubout -out " + (dir() / "pub.pem").string()).status, 0);
    fs::create_directories(bucket());
    run_server({"/usr/bin/python3", std::string(MODELZOO_SOURCE_DIR) + "/tests/gcs/fake_gcs.py", port_file().string(), "--root",
                root().string(), "--public-key", (dir() / "pub.pem").string(), "--client-email", kEmail, "--refresh-token",
                "1//refresh-me"},
               20s);
    return true;
  }
  // A credentials file of `type` ("service_account" signed with `key`, or "authorized_user").
  fs::path credentials(const std::string& type, const std::string& key = "key") const {
    nlohmann::json j = {{"type", type}, {"token_uri", url() + "/token"}};
    if (type == "service_account") {
      j.update({{"client_email", kEmail}, {"private_key", slurp(dir() / (key + ".pem"))}, {"private_key_id", "k1"},
                {"project_id", "example-project"}});
    } else {
      j.update({{"client_id", "id.apps.googleusercontent.com"}, {"client_secret", "shh"}, {"refresh_token", "1//refresh-me"}});
    }
    fs::path f = dir() / (type + "-" + key + ".json");
    std::ofstream(f) << j.dump();
    return f;
  }
  void object(const std::string& name, const std::string& bytes) const {
    fs::create_directories((bucket() / name).parent_path());
    std::ofstream(bucket() / name, std::ios::binary) << bytes;
  }
  nlohmann::json metadata() const {
    std::ifstream in(root() / "models.metadata.json");
    return in ? nlohmann::json::parse(in) : nlohmann::json::object();
  }
};

#define START_GCS(server) START_TEST_SERVER("modelzoo-plugin-gcs", server)

std::string source(const std::string& name, const FakeGcs& g, const std::string& auth, const std::string& extra = "") {
  return "  - name: " + name + "\n    plugin: gcs\n    config:\n      bucket: models\n      prefix: zoo\n      endpoint: " + g.url() +
         "\n      metadata_server: false\n      retry: {attempts: 2, initial_ms: 50, max_ms: 1000}\n" + auth + extra;
}
std::string config(const std::string& sources) { return std::string(kFastTimers) + "log_level: debug\nsources:\n" + sources; }

TEST(Gcs, AServiceAccountPullsWithHashesFromEachPlaceAndRecordsTheComputedOneByPatch) {
  FakeGcs g;
  START_GCS(g);
  std::string weights = gcs_random(2 * kMiB + 5, 8), cfg = "{\"d\": 1}\n", vocab = "x y\n", extra = gcs_random(777, 9);
  g.object("zoo/acme/tiny/1.0.0/weights.bin", weights);
  g.object("zoo/acme/tiny/1.0.0/config.json", cfg);
  g.object("zoo/acme/tiny/1.0.0/vocab.txt", vocab);
  g.object("zoo/acme/tiny/1.0.0/vocab.txt.sha256", bus::Sha256::of(vocab) + "  vocab.txt\n");
  g.object("zoo/acme/tiny/1.0.0/extra.bin", extra);
  g.object("zoo/acme/tiny/1.0.0/modelzoo.yaml", "description: tiny on gcs\nsha256:\n  config.json: " + bus::Sha256::of(cfg) + "\n");
  std::ofstream(g.root() / "models.metadata.json")
      << nlohmann::json{{"zoo/acme/tiny/1.0.0/extra.bin", {{"sha256", bus::Sha256::of(extra)}}},
                        {"zoo/acme/tiny/1.0.0/weights.bin", {{"owner", "team-c"}}}}
             .dump();
  Daemon d(config(source("gcs", g, "      credentials_file: " + g.credentials("service_account").string() + "\n",
                         "      record: metadata\n      streams: 4\n      piece_bytes: 1048576\n")));
  d.wait_plugin("gcs");
  std::string desc = d.client().show("acme/tiny").dump();
  EXPECT_NE(desc.find("tiny on gcs"), std::string::npos) << desc;
  EXPECT_NE(desc.find("1 from modelzoo.yaml, 1 from .sha256 sidecars, 1 from object metadata, 1 computed by the plugin and recorded"),
            std::string::npos)
      << desc;
  auto reply = d.client().pull("acme/tiny:1.0.0");
  ASSERT_EQ(reply["files"].size(), 4u) << reply.dump();
  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
           {"weights.bin", weights}, {"config.json", cfg}, {"vocab.txt", vocab}, {"extra.bin", extra}}) {
    const auto* f = file_of(reply, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(slurp((*f)["path"].get<std::string>()), bytes) << name;
  }
  auto meta = g.metadata()["zoo/acme/tiny/1.0.0/weights.bin"];
  EXPECT_EQ(meta["sha256"], bus::Sha256::of(weights)) << meta.dump();
  EXPECT_EQ(meta["owner"], "team-c") << "the object's other metadata was dropped";
  EXPECT_NE(g.log().find("JWT verified for " + std::string(kEmail)), std::string::npos) << g.log();
  EXPECT_NE(g.log().find("weights.bin?alt=media"), std::string::npos);
  EXPECT_EQ(d.log().find("BEGIN PRIVATE KEY"), std::string::npos);
}

TEST(Gcs, PagesARefreshTokenTheMetadataServerAndRefusals) {
  FakeGcs g;
  START_GCS(g);
  for (int i = 0; i < 5; ++i) g.object("zoo/org/m" + std::to_string(i) + "/1.0.0/f.txt", std::to_string(i));
  ScopedEnv env({{"GOOGLE_APPLICATION_CREDENTIALS", nullptr}, {"HOME", "/nonexistent"}});
  {
    Daemon d(config(source("user", g, "      credentials_file: " + g.credentials("authorized_user").string() + "\n",
                           "      page_size: 2\n")));
    d.wait_plugin("user");
    auto models = d.client().models();
    EXPECT_EQ(models["models"].size(), 5u) << models.dump();
    EXPECT_NE(g.log().find("pageToken="), std::string::npos) << g.log();
    auto missing = pull_error(d, "org/none");
    EXPECT_EQ(missing.code(), bus::ErrorCode::not_found) << missing.what();
  }
  {
    std::string src = source("md", g, "");
    src.replace(src.find("metadata_server: false"), 22, "metadata_host: 127.0.0.1:" + std::to_string(g.port()));
    Daemon d(config(src));
    d.wait_plugin("md");
    auto reply = d.client().pull("org/m3:1.0.0");
    EXPECT_EQ(reply["source"], "md");
    EXPECT_NE(g.log().find("GET /computeMetadata/v1/instance/service-accounts/default/token status=200"), std::string::npos);
  }
  {
    // A wrong access token: unauthorized, nothing cached.
    Daemon d(config(source("tok", g, "      token: ya29.not-the-right-one\n")));
    d.wait_plugin("tok");
    auto e = pull_error(d, "org/m1:1.0.0");
    EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
    EXPECT_NE(std::string(e.what()).find("gs://models/zoo/org/m1"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("not-the-right-one"), std::string::npos) << e.what();
    EXPECT_EQ(cached_files(d), std::vector<std::string>{}) << "a refused pull left files in the cache";
  }
  // A JWT signed with another key: Google's library refuses it; the source says why.
  Daemon d(config(source("other", g, "      credentials_file: " + g.credentials("service_account", "other").string() + "\n")));
  EXPECT_TRUE(wait_until([&] { return d.log().find("invalid_grant: Invalid JWT Signature.") != std::string::npos; }, 20s)) << d.log();
  EXPECT_NE(g.log().find("JWT refused"), std::string::npos) << g.log();
}

}  // namespace
}  // namespace modelzoo::testing
