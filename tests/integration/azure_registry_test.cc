// The azure-blob plugin with the real daemon against Azurite (npm azurite@3.35.0, pinned;
// tests/azure/azurite.sh, --disableTelemetry) on loopback, its container filled and inspected
// with Microsoft's own client (Debian's python3-azure; tests/azure/blob_tool.py). Azurite checks
// Shared Key signatures and SAS tokens, so what the plugin signs is checked by another
// implementation on every request.
//
// Shared Key: hashes from each place, a computed one recorded as metadata with the blob's
// other metadata kept; a listing in pages of 2; a wrong key and a missing model typed. SAS (made
// by the Python client): a read-only pull whose computed hash cannot be recorded, saying so; a
// tampered SAS refused.
#include <cstdlib>
#include <random>

#include "loopback_util.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

constexpr const char* kKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

std::string blob_random(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class Azurite : public ServerProcess {
 public:
  Azurite() : ServerProcess("azurite") {}
  std::string account_url() const { return url() + "/devstoreaccount1"; }
  // False (and `why`) when node, npm or python3-azure is missing.
  bool start(std::string& why) {
    if (run("/usr/bin/python3 -c 'import azure.storage.blob' 2>&1").status != 0) {
      why = "Debian's python3-azure is not installed (scripts/deps.sh)";
      return false;
    }
    auto npm = npm_tools(why);
    if (!npm) return false;
    run_server({"/bin/bash", std::string(MODELZOO_SOURCE_DIR) + "/tests/azure/azurite.sh", npm->dir, (dir() / "data").string(),
                port_file().string(), std::to_string(dead_port())},
               60s);
    if (port() <= 0) ADD_FAILURE() << "azurite did not start";
    else tool("create models");
    return true;
  }
  std::string tool(const std::string& args) const {
    auto r = run("/usr/bin/python3 " + std::string(MODELZOO_SOURCE_DIR) + "/tests/azure/blob_tool.py " + account_url() + " " + args +
                 " 2>&1");
    EXPECT_EQ(r.status, 0) << "blob_tool " << args << ": " << r.out;
    return r.out;
  }
};

#define START_AZURITE(server) START_TEST_SERVER("modelzoo-plugin-azure-blob", server)

std::string source(const std::string& name, const Azurite& a, const std::string& auth, const std::string& extra = "") {
  return "  - name: " + name + "\n    plugin: azure-blob\n    config:\n      account: devstoreaccount1\n      container: models\n"
         "      prefix: zoo\n      endpoint: " + a.account_url() + "\n      retry: {attempts: 2, initial_ms: 50, max_ms: 1000}\n" +
         auth + extra;
}
std::string shared_key(const std::string& key = kKey) { return "      account_key: '" + key + "'\n"; }
std::string config(const std::string& sources) { return std::string(kFastTimers) + "log_level: debug\nsources:\n" + sources; }

struct Model {
  std::string weights = blob_random(2 * kMiB + 7, 3);  // computed by the plugin
  std::string config = "{\"layers\": 2}\n";              // modelzoo.yaml
  std::string vocab = "a b c\n";                         // sidecar
  std::string extra = blob_random(999, 4);               // blob metadata
};

void fill(const Azurite& a, const Model& m) {
  fs::path v = a.dir() / "up/acme/tiny/1.0.0";
  fs::create_directories(v);
  std::ofstream(v / "weights.bin", std::ios::binary) << m.weights;
  std::ofstream(v / "config.json") << m.config;
  std::ofstream(v / "vocab.txt") << m.vocab;
  std::ofstream(v / "vocab.txt.sha256") << bus::Sha256::of(m.vocab) << "  vocab.txt\n";
  std::ofstream(v / "modelzoo.yaml") << "description: tiny on azure\nsha256:\n  config.json: " << bus::Sha256::of(m.config) << "\n";
  a.tool("upload models " + (a.dir() / "up").string() + " zoo");
  std::ofstream(a.dir() / "extra.bin", std::ios::binary) << m.extra;
  a.tool("put models zoo/acme/tiny/1.0.0/extra.bin " + (a.dir() / "extra.bin").string() + " sha256=" +
         bus::Sha256::of(m.extra) + " owner=team-b");
}

TEST(AzureBlob, SharedKeyPullsWithHashesFromEachPlaceAndRecordsTheComputedOneInTheBlobsMetadata) {
  Azurite az;
  START_AZURITE(az);
  Model m;
  fill(az, m);
  fs::path w = az.dir() / "w.bin";
  std::ofstream(w, std::ios::binary) << m.weights;
  az.tool("put models zoo/acme/tiny/1.0.0/weights.bin " + w.string() + " owner=team-a");
  Daemon d(config(source("az", az, shared_key(), "      record: metadata\n      streams: 4\n      piece_bytes: 1048576\n")));
  d.wait_plugin("az");
  std::string desc = d.client().show("acme/tiny:1.0.0").dump();
  EXPECT_NE(desc.find("tiny on azure"), std::string::npos) << desc;
  EXPECT_NE(desc.find("1 from modelzoo.yaml, 1 from .sha256 sidecars, 1 from object metadata, 1 computed by the plugin and recorded"),
            std::string::npos)
      << desc;
  auto reply = d.client().pull("acme/tiny");
  EXPECT_EQ(reply["version"], "1.0.0");
  const std::pair<std::string, const std::string*> want[] = {
      {"weights.bin", &m.weights}, {"config.json", &m.config}, {"vocab.txt", &m.vocab}, {"extra.bin", &m.extra}};
  ASSERT_EQ(reply["files"].size(), 4u) << reply.dump();
  for (const auto& [name, bytes] : want) {
    const auto* f = file_of(reply, name);
    ASSERT_NE(f, nullptr) << name;
    EXPECT_EQ(slurp((*f)["path"].get<std::string>()), *bytes) << name;
  }
  auto meta = nlohmann::json::parse(az.tool("meta models zoo/acme/tiny/1.0.0/weights.bin"));
  EXPECT_EQ(meta["metadata"]["sha256"], bus::Sha256::of(m.weights)) << meta.dump();
  EXPECT_EQ(meta["metadata"]["owner"], "team-a") << "the blob's other metadata was dropped: " << meta.dump();
  EXPECT_EQ(d.log().find(kKey), std::string::npos);
}

TEST(AzureBlob, ListsInPagesAndTypesAWrongKeyAndAMissingModel) {
  Azurite az;
  START_AZURITE(az);
  fs::path up = az.dir() / "up";
  for (int i = 0; i < 5; ++i) {
    fs::create_directories(up / ("org/m" + std::to_string(i)) / "1.0.0");
    std::ofstream(up / ("org/m" + std::to_string(i)) / "1.0.0/f.txt") << i;
  }
  az.tool("upload models " + up.string() + " zoo");
  Daemon d(config(source("az", az, shared_key(), "      page_size: 2\n")));
  d.wait_plugin("az");
  auto models = d.client().models();
  EXPECT_EQ(models["models"].size(), 5u) << models.dump();
  auto missing = pull_error(d, "org/none");
  EXPECT_EQ(missing.code(), bus::ErrorCode::not_found) << missing.what();
  // Another (valid base64) key: Azurite refuses the signatures.
  const std::string wrong = "V1JPTkcta2V5LW9mLTMyLWJ5dGVzLS0tLS0tLS0tLS0=";
  Daemon d2(config(source("az", az, shared_key(wrong))));
  d2.wait_plugin("az");
  auto e = pull_error(d2, "org/m1:1.0.0");
  EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
  EXPECT_NE(std::string(e.what()).find("azure://devstoreaccount1/models/zoo/org/m1"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("403"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find(wrong), std::string::npos) << e.what();
  EXPECT_EQ(cached_files(d2), std::vector<std::string>{}) << "a refused pull left files in the cache";
}

TEST(AzureBlob, ASasFromMicrosoftsClientPullsReadOnlyAndATamperedOneIsRefused) {
  Azurite az;
  START_AZURITE(az);
  Model m;
  fill(az, m);
  std::string sas = az.tool("sas models");
  while (!sas.empty() && (sas.back() == '\n' || sas.back() == '\r')) sas.pop_back();
  Daemon d(config(source("az", az, "      sas_token: '" + sas + "'\n")));
  d.wait_plugin("az");
  auto reply = d.client().pull("acme/tiny:1.0.0");
  ASSERT_NE(file_of(reply, "weights.bin"), nullptr);
  EXPECT_EQ(slurp((*file_of(reply, "weights.bin"))["path"].get<std::string>()), m.weights);
  // The SAS allows read and list only: the computed hash stays in the plugin's memory.
  std::string desc = d.client().show("acme/tiny:1.0.0").dump();
  EXPECT_NE(desc.find("kept in memory"), std::string::npos) << desc;
  EXPECT_NE(d.log().find("cannot record the sha256"), std::string::npos);
  EXPECT_EQ(d.log().find(sas.substr(sas.find("sig=") + 4, 20)), std::string::npos) << "the SAS signature is in the log";
  std::string tampered = sas;
  auto sig = tampered.find("sig=") + 4;
  tampered[sig] = tampered[sig] == 'A' ? 'B' : 'A';
  Daemon d2(config(source("az", az, "      sas_token: '" + tampered + "'\n")));
  d2.wait_plugin("az");
  auto e = pull_error(d2, "acme/tiny:1.0.0");
  EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
  EXPECT_EQ(cached_files(d2), std::vector<std::string>{}) << "a refused pull left files in the cache";
}

}  // namespace
}  // namespace modelzoo::testing
