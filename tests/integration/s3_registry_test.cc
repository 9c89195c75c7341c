// The s3 plugin with the real daemon against s3rver (npm, pinned; tests/s3/s3rver.js) on
// loopback, its bucket filled with Debian's awscli. The wrapper checks the SigV4 signature of
// every request as it arrived (s3rver itself does not), so what the plugin sends (each piece of
// a parallel download included) is what it signed; the byte-for-byte comparison with botocore
// (tests/unit/sigv4_test.cc) is the independent check of the signer.
//
// A pull byte-identical with the hashes taken from each place (modelzoo.yaml, a sidecar, the
// object's metadata, computed and recorded), `show` saying so; a listing in pages of 2;
// virtual-hosted addressing; a wrong secret, a missing model and injected 403/429/503 typed and
// naming bucket and key; the plugin killed mid-object, the pull finished by the next source at
// the offset.
#include <cstdlib>
#include <optional>
#include <random>

#include "loopback_util.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

const char* kAws = "/usr/bin/aws";  // Debian's awscli (another `aws` may come first on PATH)

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

class S3rver : public ServerProcess {
 public:
  S3rver() : ServerProcess("s3rver") {}
  fs::path fault_file() const { return dir() / "fault"; }
  void inject(const std::string& line) { std::ofstream(fault_file()) << line << "\n"; }
  void heal() { fs::remove(fault_file()); }
  // Starts it with bucket "models"; false (and `why`) when the tools are missing.
  bool start(std::string& why, const std::vector<std::string>& extra = {}) {
    if (!fs::exists(kAws)) {
      why = "Debian's awscli is not installed (scripts/deps.sh)";
      return false;
    }
    auto npm = npm_tools(why);
    if (!npm) return false;
    std::vector<std::string> argv = {npm->node, "--openssl-legacy-provider", std::string(MODELZOO_SOURCE_DIR) + "/tests/s3/s3rver.js",
                                     npm->dir, (dir() / "data").string(), port_file().string(), "--bucket", "models",
                                     "--fault-file", fault_file().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    run_server(argv, 30s);
    if (port() <= 0) ADD_FAILURE() << "s3rver did not start";
    return true;
  }
  // Runs awscli against it ("s3 sync DIR s3://models/...", "s3api ..."); its output.
  std::string aws(const std::string& args) const {
    auto r = run("AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null "
                 "AWS_SHARED_CREDENTIALS_FILE=/dev/null " + std::string(kAws) + " --endpoint-url " + url() + " " + args + " 2>&1");
    EXPECT_EQ(r.status, 0) << "aws " << args << ": " << r.out;
    return r.out;
  }
};

#define START_S3RVER(server, ...) START_TEST_SERVER("modelzoo-plugin-s3", server, ##__VA_ARGS__)

std::string source(const std::string& name, const std::string& endpoint, int priority = 50, const std::string& extra = "",
                   const std::string& secret = "S3RVER", const std::string& prefix = "zoo") {
  return "  - name: " + name + "\n    plugin: s3\n    priority: " + std::to_string(priority) +
         "\n    config:\n      bucket: models\n      prefix: '" + prefix + "'\n      endpoint: " + endpoint +
         "\n      access_key_id: S3RVER\n      secret_access_key: " + secret +
         "\n      retry: {attempts: 2, initial_ms: 50, max_ms: 1000}\n" + extra;
}

std::string config(const std::string& sources) { return std::string(kFastTimers) + "log_level: debug\nsources:\n" + sources; }

// zoo/acme/tiny/1.0.0 with a hash from each place.
struct Tiny {
  std::string weights = random_bytes(3 * kMiB + 123, 1);  // no hash stored: computed, recorded
  std::string config = "{\"hidden\": 8}\n";                 // in modelzoo.yaml
  std::string tok = "tokens\n";                            // a sidecar
  std::string odd = random_bytes(1000, 2);                 // object metadata
  const std::string odd_name = "sub/odd-file.bin";
};

void fill_tiny(const S3rver& s, const Tiny& t) {
  fs::path local = s.dir() / "upload";
  fs::path v = local / "acme/tiny/1.0.0";
  fs::create_directories(v);
  std::ofstream(v / "weights.bin", std::ios::binary) << t.weights;
  std::ofstream(v / "config.json") << t.config;
  std::ofstream(v / "tok.txt") << t.tok;
  std::ofstream(v / "tok.txt.sha256") << bus::Sha256::of(t.tok) << "  tok.txt\n";
  std::ofstream(v / "modelzoo.yaml") << "description: a tiny test model\nlicense: mit\nsha256:\n  config.json: "
                                     << bus::Sha256::of(t.config) << "\n";
  fs::create_directories(local / "acme/tiny/0.9.0");
  std::ofstream(local / "acme/tiny/0.9.0/old.bin") << "old";
  s.aws("s3 sync " + local.string() + " s3://models/zoo/ --only-show-errors");
  std::ofstream(s.dir() / "odd.bin", std::ios::binary) << t.odd;
  s.aws("s3api put-object --bucket models --key 'zoo/acme/tiny/1.0.0/" + t.odd_name + "' --body " +
        (s.dir() / "odd.bin").string() + " --metadata sha256=" + bus::Sha256::of(t.odd));
}

TEST(S3Registry, PullsAModelByteIdenticalWithItsHashesFromEachPlaceAndRecordsTheComputedOne) {
  S3rver s3;
  START_S3RVER(s3);
  Tiny t;
  fill_tiny(s3, t);
  {
    Daemon d(config(source("bucket", s3.url(), 50, "      streams: 4\n      piece_bytes: 1048576\n")));
    d.wait_plugin("bucket");
    // The first look at the version hashes weights.bin (no hash stored with it) and records it.
    std::string desc = d.client().show("acme/tiny:1.0.0").dump();
    EXPECT_NE(desc.find("a tiny test model"), std::string::npos) << desc;
    EXPECT_NE(desc.find("1 from modelzoo.yaml"), std::string::npos) << desc;
    EXPECT_NE(desc.find("1 from .sha256 sidecars"), std::string::npos) << desc;
    EXPECT_NE(desc.find("1 from object metadata"), std::string::npos) << desc;
    EXPECT_NE(desc.find("1 computed by the plugin and recorded"), std::string::npos) << desc;
    auto reply = d.client().pull("acme/tiny");
    EXPECT_EQ(reply["version"], "1.0.0") << "latest";
    ASSERT_EQ(reply["files"].size(), 4u) << reply.dump() << " (no modelzoo.yaml, no sidecar among the files)";
    const std::pair<std::string, const std::string*> want[] = {
        {"weights.bin", &t.weights}, {"config.json", &t.config}, {"tok.txt", &t.tok}, {t.odd_name, &t.odd}};
    for (const auto& [name, bytes] : want) {
      const auto* f = file_of(reply, name);
      ASSERT_NE(f, nullptr) << name;
      EXPECT_EQ(slurp((*f)["path"].get<std::string>()), *bytes) << name;
    }
    // Parallel pieces of weights.bin, each signed on its own (s3rver checks them all).
    std::set<std::string> ranges;
    std::istringstream log(s3.log());
    for (std::string line; std::getline(log, line);)
      if (line.find("weights.bin range=bytes=") != std::string::npos && line.find("status=206") != std::string::npos)
        ranges.insert(line.substr(line.find("range=")));
    EXPECT_GE(ranges.size(), 3u) << s3.log();
    EXPECT_EQ(s3.log().find("sig=bad"), std::string::npos) << s3.log();
    EXPECT_EQ(d.log().find("S3RVER\n"), std::string::npos);
  }
  // The sidecar the plugin wrote is what the next daemon reads: nothing is hashed twice.
  std::string sidecar = s3.aws("s3 cp s3://models/zoo/acme/tiny/1.0.0/weights.bin.sha256 -");
  EXPECT_EQ(sidecar, bus::Sha256::of(t.weights) + "  weights.bin\n");
  Daemon d2(config(source("bucket", s3.url())));
  d2.wait_plugin("bucket");
  std::string show = d2.client().show("acme/tiny:1.0.0").dump();
  EXPECT_NE(show.find("2 from .sha256 sidecars"), std::string::npos) << show;
  EXPECT_EQ(show.find("computed"), std::string::npos) << show;
}

TEST(S3Registry, RecordingInTheObjectsMetadataKeepsItsOtherMetadata) {
  S3rver s3;
  START_S3RVER(s3);
  fs::create_directories(s3.dir() / "up");
  std::ofstream(s3.dir() / "up/w.bin") << "weights!";
  s3.aws("s3api put-object --bucket models --key zoo/acme/m/2.0.0/w.bin --body " + (s3.dir() / "up/w.bin").string() +
         " --metadata owner=team-a --content-type application/x-test");
  Daemon d(config(source("bucket", s3.url(), 50, "      record: metadata\n")));
  d.wait_plugin("bucket");
  auto reply = d.client().pull("acme/m:2.0.0");
  ASSERT_NE(file_of(reply, "w.bin"), nullptr);
  auto head = nlohmann::json::parse(s3.aws("s3api head-object --bucket models --key zoo/acme/m/2.0.0/w.bin"));
  EXPECT_EQ(head["Metadata"]["sha256"], bus::Sha256::of("weights!")) << head.dump();
  EXPECT_EQ(head["Metadata"]["owner"], "team-a") << head.dump();
  EXPECT_EQ(head["ContentType"], "application/x-test") << head.dump();
}

TEST(S3Registry, ListsInPagesAndSpeaksVirtualHostedStyle) {
  S3rver s3;
  START_S3RVER(s3);
  fs::path up = s3.dir() / "up";
  for (int i = 0; i < 5; ++i) {
    fs::create_directories(up / ("org/m" + std::to_string(i)) / "1.0.0");
    std::ofstream(up / ("org/m" + std::to_string(i)) / "1.0.0/f.txt") << i;
  }
  fs::create_directories(up / "org/m0/1.2.0");
  std::ofstream(up / "org/m0/1.2.0/f.txt") << "new";
  std::ofstream(up / "stray.txt") << "not a model";
  // A prefix with a blank, a '+' and non-ASCII: encoded in listings and GETs, and signed so.
  s3.aws("s3 sync " + up.string() + " 's3://models/my zoo+\xc3\xa9/' --only-show-errors");
  const std::string endpoint = "http://s3.localhost:" + std::to_string(s3.port());
  Daemon d(config(source("vhost", endpoint, 50, "      addressing: virtual\n      page_size: 2\n", "S3RVER", "my zoo+\xc3\xa9")));
  d.wait_plugin("vhost");
  auto models = d.client().models();
  std::map<std::string, std::vector<std::string>> seen;
  for (const auto& m : models["models"]) seen[m["name"]] = m["versions"].get<std::vector<std::string>>();
  EXPECT_EQ(seen.size(), 5u) << models.dump();
  EXPECT_EQ(seen["org/m0"], (std::vector<std::string>{"1.2.0", "1.0.0"})) << models.dump();
  auto reply = d.client().pull("org/m0");
  EXPECT_EQ(reply["version"], "1.2.0");
  EXPECT_NE(s3.log().find("models.s3.localhost"), std::string::npos) << "not virtual-hosted: " << s3.log();
  EXPECT_NE(s3.log().find("continuation-token"), std::string::npos) << "not paged: " << s3.log();
  EXPECT_EQ(s3.log().find("sig=bad"), std::string::npos) << s3.log();
  EXPECT_NE(s3.log().find("f.txt range=bytes="), std::string::npos) << s3.log();
}

TEST(S3Registry, ErrorsAreTypedAndNameTheBucketAndKeyButNeverTheSecret) {
  S3rver s3;
  START_S3RVER(s3);
  Tiny t;
  fill_tiny(s3, t);
  Daemon d(config(source("good", s3.url(), 50)));
  d.wait_plugin("good");
  auto missing = pull_error(d, "acme/nothing");
  EXPECT_EQ(missing.code(), bus::ErrorCode::not_found) << missing.what();
  const std::pair<const char*, bus::ErrorCode> cases[] = {
      {"403", bus::ErrorCode::unauthorized}, {"503", bus::ErrorCode::unavailable}, {"429 1", bus::ErrorCode::unavailable}};
  for (const auto& [status, code] : cases) {
    s3.inject(status);
    auto e = pull_error(d, "acme/tiny:1.0.0");
    EXPECT_EQ(e.code(), code) << status << ": " << e.what();
    EXPECT_NE(std::string(e.what()).find(std::string(status).substr(0, 3)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("s3://models/zoo/acme/tiny/1.0.0/"), std::string::npos) << e.what();
  }
  s3.heal();
  EXPECT_NE(s3.log().find("status=429"), std::string::npos);
  // The wrong secret alone: its signatures are refused (SignatureDoesNotMatch).
  Daemon d2(config(source("wrong", s3.url(), 40, "", "WRONG-secret-93")));
  d2.wait_plugin("wrong");
  auto e = pull_error(d2, "acme/tiny:1.0.0");
  EXPECT_EQ(e.code(), bus::ErrorCode::unauthorized) << e.what();
  EXPECT_NE(std::string(e.what()).find("s3://models/zoo/acme/tiny"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("SignatureDoesNotMatch"), std::string::npos) << e.what();
  EXPECT_EQ(cached_files(d2), std::vector<std::string>{}) << "a refused pull left files in the cache";
  EXPECT_EQ(std::string(e.what()).find("WRONG-secret-93"), std::string::npos) << e.what();
  EXPECT_EQ(d2.log().find("WRONG-secret-93"), std::string::npos);
}

TEST(S3Registry, APluginKilledMidObjectLeavesTheNextSourceToFinishAtTheOffset) {
  S3rver s3;
  START_S3RVER(s3, {"--rate", std::to_string(2 * kMiB)});
  fs::create_directories(s3.dir() / "up/acme/big/1.0.0");
  std::string big = random_bytes(6 * kMiB, 7);
  std::ofstream(s3.dir() / "up/acme/big/1.0.0/model.bin", std::ios::binary) << big;
  std::ofstream(s3.dir() / "up/acme/big/1.0.0/modelzoo.yaml") << "sha256:\n  model.bin: " << bus::Sha256::of(big) << "\n";
  s3.aws("s3 sync " + (s3.dir() / "up").string() + " s3://models/zoo/ --only-show-errors");
  const std::string extra = "      streams: 4\n      piece_bytes: 1048576\n";
  Daemon d(config(source("first", s3.url(), 50, extra) + source("second", s3.url(), 10, extra)));
  auto reply = pull_killing_first(d, "acme/big:1.0.0", 1 * kMiB, 30s);
  const auto* f = file_of(reply, "model.bin");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(slurp((*f)["path"].get<std::string>()), big) << "not byte-identical";
  EXPECT_LT(reply["bytes_downloaded"].get<std::uint64_t>(), 6 * kMiB + 4096) << "the file was not sent once";
}

// The stand-ins for STS and IMDSv2 (tests/s3/aws_endpoints.py).
class AwsEndpoints : public ServerProcess {
 public:
  AwsEndpoints() : ServerProcess("aws") {}
  void start(const std::string& token, const std::string& role) {
    run_server({"/usr/bin/python3", std::string(MODELZOO_SOURCE_DIR) + "/tests/s3/aws_endpoints.py", port_file().string(),
                "--token", token, "--role", role},
               20s);
  }
};

TEST(S3Registry, WebIdentityAndTheInstanceMetadataServiceGiveTemporaryCredentials) {
  S3rver s3;
  START_S3RVER(s3);
  Tiny t;
  fill_tiny(s3, t);
  AwsEndpoints aws;
  aws.start("jwt-of-the-pod-31", "arn:aws:iam::123456789012:role/models-reader");
  fs::path token = s3.dir() / "token";
  std::ofstream(token) << "jwt-of-the-pod-31\n";
  auto keyless = [&](const std::string& name, const std::string& extra) {
    return "  - name: " + name + "\n    plugin: s3\n    config:\n      bucket: models\n      prefix: zoo\n      endpoint: " +
           s3.url() + "\n      retry: {attempts: 1}\n" + extra;
  };
  ScopedEnv clean({{"AWS_ACCESS_KEY_ID", nullptr}, {"AWS_SECRET_ACCESS_KEY", nullptr}, {"AWS_SESSION_TOKEN", nullptr},
                   {"AWS_PROFILE", nullptr}, {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"}, {"AWS_CONFIG_FILE", "/dev/null"},
                   {"AWS_EC2_METADATA_DISABLED", nullptr}});
  {
    ScopedEnv wi({{"AWS_WEB_IDENTITY_TOKEN_FILE", token.c_str()}, {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/models-reader"}});
    Daemon d(config(keyless("wi", "      sts_endpoint: " + aws.url() + "\n")));
    d.wait_plugin("wi");
    auto reply = d.client().pull("acme/tiny:1.0.0");
    EXPECT_EQ(reply["source"], "wi");
    EXPECT_NE(aws.log().find("aws: POST / AssumeRoleWithWebIdentity session=modelzoo"), std::string::npos) << aws.log();
    EXPECT_EQ(d.log().find("jwt-of-the-pod-31"), std::string::npos) << "the token is in the daemon's log";
  }
  {
    // A token STS refuses: the source fails to start with `unauthorized` naming the role.
    std::ofstream(token) << "stolen-token\n";
    ScopedEnv wi({{"AWS_WEB_IDENTITY_TOKEN_FILE", token.c_str()}, {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/models-reader"}});
    Daemon d(config(keyless("wi", "      sts_endpoint: " + aws.url() + "\n")));
    EXPECT_TRUE(wait_until([&] { return d.log().find("AccessDenied") != std::string::npos; }, 20s)) << d.log();
    EXPECT_NE(d.log().find("role/models-reader"), std::string::npos);
    EXPECT_EQ(d.log().find("stolen-token"), std::string::npos);
  }
  Daemon d(config(keyless("imds", "      imds_endpoint: " + aws.url() + "\n")));
  d.wait_plugin("imds");
  auto reply = d.client().pull("acme/tiny:1.0.0");
  EXPECT_EQ(reply["source"], "imds");
  EXPECT_NE(aws.log().find("aws: PUT /latest/api/token"), std::string::npos) << aws.log();
  EXPECT_NE(aws.log().find("aws: GET /latest/meta-data/iam/security-credentials/modelzoo-role"), std::string::npos) << aws.log();
}

}  // namespace
}  // namespace modelzoo::testing
