// The object stores' shared layout (plugins/objstore/bucket.h) against an in-memory Store, their
// XML reader, and the s3 plugin's pure parts: configuration, addressing, URL splitting for the
// signer and ListObjectsV2 pages. The wire itself is tested against s3rver
// (tests/integration/s3_registry_test.cc).
#include <gtest/gtest.h>

#include <map>
#include <stdexcept>

#include "modelzoo/bus/sha256.h"
#include "objstore/bucket.h"
#include "objstore/xml.h"
#include "s3/s3.h"

namespace modelzoo::plugins {
namespace {

using objstore::Page;
using sdk::ErrorCode;

// A bucket in memory: keys -> bytes and user metadata; pages of at most `max` keys, sorted.
class MemoryStore final : public objstore::Store {
 public:
  std::map<std::string, std::string> objects;
  std::map<std::string, std::map<std::string, std::string>> meta;
  int lists = 0, reads = 0, heads = 0;
  bool refuse_writes = false;

  Page list(const std::string& prefix, const std::string& delimiter, const std::string& token, std::size_t max) override {
    ++lists;
    Page p;
    auto it = token.empty() ? objects.lower_bound(prefix) : objects.upper_bound(token);
    std::string last_prefix;
    for (; it != objects.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (p.objects.size() + p.prefixes.size() >= max) {
        p.next = std::prev(it)->first;
        return p;
      }
      auto rest = it->first.substr(prefix.size());
      if (!delimiter.empty() && rest.find(delimiter) != std::string::npos) {
        std::string pre = prefix + rest.substr(0, rest.find(delimiter) + 1);
        if (pre != last_prefix) p.prefixes.push_back(last_prefix = pre);
        continue;
      }
      p.objects.push_back({it->first, it->second.size(), "\"e" + std::to_string(it->second.size()) + "\""});
    }
    return p;
  }
  std::string get(const std::string& key, std::size_t max) override {
    auto it = objects.find(key);
    if (it == objects.end()) throw sdk::Error(ErrorCode::not_found, key);
    if (it->second.size() > max) throw sdk::Error(ErrorCode::internal, "too long");
    return it->second;
  }
  void read(const std::string& key, const std::function<void(const char*, std::size_t)>& on_data) override {
    ++reads;
    const std::string& s = objects.at(key);
    on_data(s.data(), s.size());
  }
  std::string user_metadata(const std::string& key, const std::string& name) override {
    ++heads;
    return meta[key][name];
  }
  void put(const std::string& key, const std::string& body) override {
    if (refuse_writes) throw sdk::Error(ErrorCode::unauthorized, "AccessDenied");
    objects[key] = body;
  }
  void set_user_metadata(const std::string& key, const std::string& name, const std::string& value) override {
    if (refuse_writes) throw sdk::Error(ErrorCode::unauthorized, "AccessDenied");
    meta[key][name] = value;
  }
  std::string object_path(const std::string& key) const override { return "/" + key; }
  std::string describe(const std::string& key) const override { return "mem://b/" + key; }
};

struct Bucket {
  objstore::BucketRegistry reg;
  MemoryStore* store;
  explicit Bucket(objstore::Layout layout = {}) {
    auto s = std::make_unique<MemoryStore>();
    store = s.get();
    if (layout.prefix.empty()) layout.prefix = "zoo/";
    reg.set_store(std::move(s), layout, "test");
  }
};

const sdk::FileInfo* file(const sdk::ModelMetadata& m, const std::string& name) {
  for (const auto& f : m.files)
    if (f.name == name) return &f;
  return nullptr;
}

TEST(ObjstoreLayout, HashesComeFromTheMetadataFileSidecarsObjectMetadataElseAreComputedOnceAndRecorded) {
  Bucket b;
  auto& o = b.store->objects;
  o["zoo/acme/m/1.0.0/a.bin"] = "alpha";
  o["zoo/acme/m/1.0.0/b.bin"] = "beta";
  o["zoo/acme/m/1.0.0/b.bin.sha256"] = bus::Sha256::of("beta") + "  b.bin\n";
  o["zoo/acme/m/1.0.0/c.bin"] = "gamma";
  o["zoo/acme/m/1.0.0/d/e.bin"] = "delta";
  o["zoo/acme/m/1.0.0/modelzoo.yaml"] = "description: test\nformat: raw\nsha256:\n  a.bin: " + bus::Sha256::of("alpha") + "\n";
  b.store->meta["zoo/acme/m/1.0.0/c.bin"]["sha256"] = bus::Sha256::of("gamma");
  auto m = b.reg.metadata("acme/m", "1.0.0");
  ASSERT_EQ(m.files.size(), 4u);
  for (const auto& [name, bytes] : std::map<std::string, std::string>{{"a.bin", "alpha"}, {"b.bin", "beta"}, {"c.bin", "gamma"}, {"d/e.bin", "delta"}}) {
    ASSERT_NE(file(m, name), nullptr) << name;
    EXPECT_EQ(file(m, name)->sha256, bus::Sha256::of(bytes)) << name;
    EXPECT_EQ(file(m, name)->size, bytes.size()) << name;
  }
  EXPECT_EQ(m.format, "raw");
  EXPECT_EQ(m.description,
            "test (sha256: 1 from modelzoo.yaml, 1 from .sha256 sidecars, 1 from object metadata, 1 computed by the plugin and "
            "recorded)");
  EXPECT_EQ(b.store->objects.at("zoo/acme/m/1.0.0/d/e.bin.sha256"), bus::Sha256::of("delta") + "  e.bin\n");
  EXPECT_EQ(b.reg.hashes_computed(), 1u);
  // Asked again: the recorded sidecar answers; nothing is read again.
  auto again = b.reg.metadata("acme/m", "");
  EXPECT_EQ(again.version, "1.0.0");
  EXPECT_EQ(b.reg.hashes_computed(), 1u);
  EXPECT_NE(again.description.find("2 from .sha256 sidecars"), std::string::npos) << again.description;
}

TEST(ObjstoreLayout, AStoreRefusingTheRecordKeepsTheHashInMemoryAndSaysSo) {
  Bucket b;
  b.store->refuse_writes = true;
  b.store->objects["zoo/m/1.0.0/w"] = "weights";
  auto m = b.reg.metadata("m", "1.0.0");
  EXPECT_EQ(m.files.at(0).sha256, bus::Sha256::of("weights"));
  EXPECT_NE(m.description.find("computed by the plugin (not recorded in the store)"), std::string::npos) << m.description;
  EXPECT_NE(b.reg.metadata("m", "1.0.0").description.find("kept in memory"), std::string::npos);
  EXPECT_EQ(b.store->reads, 1);
  // The object replaced (another ETag / size): hashed again, never the old answer.
  b.store->objects["zoo/m/1.0.0/w"] = "weights, v2";
  EXPECT_EQ(b.reg.metadata("m", "1.0.0").files.at(0).sha256, bus::Sha256::of("weights, v2"));
  EXPECT_EQ(b.store->reads, 2);
}

TEST(ObjstoreLayout, RecordInMetadataAndNoneAndTheSizeLimit) {
  objstore::Layout l;
  l.record = objstore::Record::metadata;
  Bucket meta(l);
  meta.store->objects["zoo/m/1.0.0/w"] = "weights";
  meta.reg.metadata("m", "1.0.0");
  EXPECT_EQ(meta.store->meta["zoo/m/1.0.0/w"]["sha256"], bus::Sha256::of("weights"));
  EXPECT_EQ(meta.store->objects.size(), 1u) << "no sidecar";

  l.record = objstore::Record::none;
  l.max_hash_bytes = 4;
  Bucket none(l);
  none.store->objects["zoo/m/1.0.0/small"] = "abc";
  none.store->objects["zoo/m/1.0.0/big"] = "too big";
  try {
    none.reg.metadata("m", "1.0.0");
    FAIL() << "a file over max_hash_bytes without a stored hash was accepted";
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unavailable);
    EXPECT_NE(std::string(e.what()).find("mem://b/zoo/m/1.0.0/big"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_hash_bytes"), std::string::npos) << e.what();
  }
  none.store->meta["zoo/m/1.0.0/big"]["sha256"] = bus::Sha256::of("too big");
  EXPECT_EQ(none.reg.metadata("m", "1.0.0").files.size(), 2u);
  EXPECT_EQ(none.store->objects.size(), 2u) << "record: none writes nothing";
}

TEST(ObjstoreLayout, ListingWalksEveryPageAndSplitsKeysAtTheFirstVersion) {
  objstore::Layout l;
  l.page_size = 2;
  Bucket b(l);
  auto& o = b.store->objects;
  for (int i = 0; i < 7; ++i) o["zoo/org/m" + std::to_string(i) + "/1.0.0/f"] = "x";
  o["zoo/org/m0/2.0.0-rc.1/f"] = "x";
  o["zoo/org/m0/1.5.0/sub/f"] = "x";
  o["zoo/loose.txt"] = "x";              // no version: not a model
  o["zoo/org/empty/1.0.0/"] = "";          // a "directory" marker only
  o["zoo/bad name!/1.0.0/f"] = "x";        // not a model name
  o["elsewhere/a/1.0.0/f"] = "x";          // outside the prefix
  auto models = b.reg.list();
  std::map<std::string, std::vector<std::string>> seen;
  for (const auto& m : models) seen[m.name] = m.versions;
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(seen["org/m0"], (std::vector<std::string>{"2.0.0-rc.1", "1.5.0", "1.0.0"}));
  EXPECT_GE(b.store->lists, 6);
  EXPECT_EQ(b.reg.metadata("org/m0", "").version, "1.5.0") << "latest is the highest release";
  EXPECT_TRUE(b.reg.exists("org/m3", "1.0.0"));
  EXPECT_FALSE(b.reg.exists("org/m3", "9.0.0"));
  EXPECT_FALSE(b.reg.exists("org/none", ""));
}

TEST(ObjstoreLayout, MissingModelsAndHostileNamesAreTypedErrors) {
  Bucket b;
  b.store->objects["zoo/m/1.0.0/f"] = "x";
  try {
    b.reg.metadata("other", "");
    FAIL();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_NE(std::string(e.what()).find("mem://b/zoo/other/"), std::string::npos) << e.what();
  }
  try {
    b.reg.metadata("m", "2.0.0");
    FAIL();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
  }
  for (const auto& [name, version] : std::vector<std::pair<std::string, std::string>>{{"../etc", "1.0.0"}, {"m", "../1"}, {"m/../x", "1.0.0"}}) {
    try {
      b.reg.metadata(name, version);
      FAIL() << name << ":" << version;
    } catch (const sdk::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request) << name << ":" << version << ": " << e.what();
    }
  }
}

TEST(ObjstoreLayout, SettingsAreCheckedAndNamed) {
  nlohmann::json c = {{"prefix", "/models"}, {"record", "metadata"}, {"page_size", 10}, {"other", 1}};
  auto l = objstore::take_layout(c, "s3");
  EXPECT_EQ(l.prefix, "models/");
  EXPECT_EQ(l.record, objstore::Record::metadata);
  EXPECT_EQ(l.page_size, 10u);
  EXPECT_EQ(c, (nlohmann::json{{"other", 1}})) << "the layout's settings are taken out";
  for (const auto& bad : {nlohmann::json{{"record", "somewhere"}}, nlohmann::json{{"page_size", 0}},
                          nlohmann::json{{"page_size", 1001}}, nlohmann::json{{"prefix", "a//b"}},
                          nlohmann::json{{"metadata_file", "../x"}}, nlohmann::json{{"head_objects", "yes"}}}) {
    nlohmann::json j = bad;
    try {
      objstore::take_layout(j, "s3");
      FAIL() << bad.dump();
    } catch (const sdk::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request);
      EXPECT_NE(std::string(e.what()).find("s3: setting '" + bad.begin().key() + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(ObjstoreXml, WalksElementsAndRefusesWhatIsNotXml) {
  std::vector<std::string> seen;
  objstore::walk_xml("<?xml version=\"1.0\"?><A><B>x &amp; y</B><C><D>1</D></C><E/></A>",
                     [&](const std::string& path, const std::string& text) { seen.push_back(path + "=" + text); });
  EXPECT_EQ(seen, (std::vector<std::string>{"A/B=x & y", "A/C/D=1"}));
  EXPECT_THROW(objstore::walk_xml("<A><B></A>", [](auto&, auto&) {}), std::invalid_argument);
  EXPECT_THROW(objstore::walk_xml("not xml", [](auto&, auto&) {}), std::invalid_argument);
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "<a>";
  EXPECT_THROW(objstore::walk_xml(deep, [](auto&, auto&) {}), std::invalid_argument);
  // An entity bomb: expat refuses the expansion.
  std::string bomb = "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">";
  std::string prev = "a";
  for (int i = 0; i < 10; ++i) {
    std::string name = "e" + std::to_string(i);
    bomb += "<!ENTITY " + name + " \"" + std::string(10, ' ');
    for (int k = 0; k < 10; ++k) bomb += "&" + prev + ";";
    bomb += "\">";
    prev = name;
  }
  bomb += "]><l>&" + prev + ";</l>";
  EXPECT_THROW(objstore::walk_xml(bomb, [](auto&, auto&) {}), std::invalid_argument);
}

TEST(S3List, ReadsAListObjectsV2Page) {
  auto p = s3::parse_list(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><Prefix>zoo/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
      "<Contents><Key>zoo/a b/1.0.0/&lt;x&gt;.bin</Key><Size>12</Size><ETag>&quot;abc&quot;</ETag></Contents>"
      "<CommonPrefixes><Prefix>zoo/c/</Prefix></CommonPrefixes>"
      "<NextContinuationToken>tok/+=</NextContinuationToken></ListBucketResult>");
  ASSERT_EQ(p.objects.size(), 1u);
  EXPECT_EQ(p.objects[0].key, "zoo/a b/1.0.0/<x>.bin");
  EXPECT_EQ(p.objects[0].size, 12u);
  EXPECT_EQ(p.objects[0].etag, "\"abc\"");
  EXPECT_EQ(p.prefixes, std::vector<std::string>{"zoo/c/"});
  EXPECT_EQ(p.next, "tok/+=");
  EXPECT_THROW(s3::parse_list("<Error><Code>x</Code></Error>"), std::invalid_argument);
  EXPECT_THROW(s3::parse_list("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"), std::invalid_argument);
  EXPECT_THROW(s3::parse_list("<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"),
               std::invalid_argument);
  EXPECT_EQ(s3::parse_list("<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>").next, "");
}

TEST(S3Url, SplitsWhatTheClientSendsForTheSigner) {
  auto u = s3::split_url("http://127.0.0.1:4568/models/zoo/a%20b/%C3%A9.bin");
  EXPECT_EQ(u.host, "127.0.0.1:4568");
  EXPECT_EQ(u.path, "/models/zoo/a b/\xC3\xA9.bin");
  EXPECT_TRUE(u.query.empty());
  auto q = s3::split_url("https://B.s3.eu-west-1.amazonaws.com:443?list-type=2&prefix=zoo%2F&continuation-token=a%2Bb%3D&empty=");
  EXPECT_EQ(q.host, "b.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(q.path, "/");
  EXPECT_EQ(q.query, (s3::Pairs{{"list-type", "2"}, {"prefix", "zoo/"}, {"continuation-token", "a+b="}, {"empty", ""}}));
}

TEST(S3Config, AddressingEndpointAndCredentialsFollowTheAwsTools) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  sdk::http::ClientOptions http;
  auto [aws, layout] = s3::parse_config({{"bucket", "my-models"}, {"prefix", "zoo"}, {"region", "eu-west-1"}},
                                        http, env({{"AWS_ACCESS_KEY_ID", "AKIA1"}, {"AWS_SECRET_ACCESS_KEY", "s3cr3t"}, {"HOME", "/nonexistent"}}));
  EXPECT_EQ(aws.base_url, "https://my-models.s3.eu-west-1.amazonaws.com") << "AWS: virtual-hosted";
  EXPECT_EQ(http.base_url, aws.base_url);
  EXPECT_EQ(layout.prefix, "zoo/");
  ASSERT_TRUE(aws.credentials);
  EXPECT_EQ(aws.credentials->credentials.access_key, "AKIA1");

  auto [minio, l2] = s3::parse_config({{"bucket", "my.models"}, {"endpoint", "http://127.0.0.1:9000/"}, {"anonymous", true}}, http,
                                      env({{"HOME", "/nonexistent"}}));
  EXPECT_EQ(minio.base_url, "http://127.0.0.1:9000/my.models") << "another endpoint: path style";
  EXPECT_FALSE(minio.credentials);

  auto [dotted, l3] = s3::parse_config({{"bucket", "my.models"}, {"anonymous", true}}, http, env({{"HOME", "/nonexistent"}}));
  EXPECT_EQ(dotted.base_url, "https://s3.us-east-1.amazonaws.com/my.models") << "a dot breaks the TLS wildcard: path style";

  auto [from_env, l4] = s3::parse_config({{"bucket", "b1"}, {"anonymous", true}}, http,
                                         env({{"HOME", "/nonexistent"}, {"AWS_ENDPOINT_URL_S3", "http://minio:9000"}}));
  EXPECT_EQ(from_env.base_url, "http://minio:9000/b1");

  struct Bad {
    nlohmann::json config;
    std::string says;
    ErrorCode code;
  };
  for (const auto& bad : std::vector<Bad>{
           {{{"prefix", "x"}}, "setting 'bucket' is required", ErrorCode::bad_request},
           {{{"bucket", "a/b"}}, "setting 'bucket'", ErrorCode::bad_request},
           {{{"bucket", "b1"}, {"url", "http://x"}}, "setting 'url' is not a setting", ErrorCode::bad_request},
           {{{"bucket", "b1"}, {"addressing", "sideways"}, {"anonymous", true}}, "setting 'addressing'", ErrorCode::bad_request},
           {{{"bucket", "Bad_Name"}, {"addressing", "virtual"}, {"anonymous", true}}, "cannot be a host name", ErrorCode::bad_request},
           {{{"bucket", "b1"}, {"endpoint", "ftp://x"}, {"anonymous", true}}, "setting 'endpoint'", ErrorCode::bad_request},
           {{{"bucket", "b1"}, {"imds", false}}, "no credentials for bucket 'b1'", ErrorCode::unauthorized},
           {{{"bucket", "b1"}, {"imds", "no"}}, "setting 'imds'", ErrorCode::bad_request},
       }) {
    try {
      s3::parse_config(bad.config, http, env({{"HOME", "/nonexistent"}}));
      FAIL() << bad.config.dump();
    } catch (const sdk::Error& e) {
      EXPECT_EQ(e.code(), bad.code) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad.says), std::string::npos) << e.what();
    }
  }
}

TEST(S3Exchange, ReadsStsAndImdsAnswersAndRenewsBeforeExpiry) {
  auto t = s3::parse_sts(
      "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>"
      "<Credentials><AccessKeyId>ASIA1</AccessKeyId><SecretAccessKey>sec</SecretAccessKey><SessionToken>tok</SessionToken>"
      "<Expiration>2026-12-08T03:04:05Z</Expiration></Credentials></AssumeRoleWithWebIdentityResult>"
      "</AssumeRoleWithWebIdentityResponse>");
  EXPECT_EQ(t.credentials.access_key, "ASIA1");
  EXPECT_EQ(t.credentials.secret_key, "sec");
  EXPECT_EQ(t.credentials.session_token, "tok");
  EXPECT_EQ(std::chrono::system_clock::to_time_t(t.expires), 1796699045);
  EXPECT_THROW(s3::parse_sts("<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>"), std::invalid_argument);
  auto i = s3::parse_imds(R"({"Code":"Success","AccessKeyId":"ASIA2","SecretAccessKey":"s","Token":"t","Expiration":"2026-12-08T03:04:05.123Z"})");
  EXPECT_EQ(i.credentials.session_token, "t");
  EXPECT_EQ(i.expires, t.expires);
  EXPECT_THROW(s3::parse_imds(R"({"Code":"Failure"})"), std::invalid_argument);
  EXPECT_THROW(s3::parse_imds("nope"), std::invalid_argument);
  EXPECT_FALSE(s3::parse_iso8601("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(s3::parse_iso8601("2026-12-01 00:00:00"));

  // Fetched at once, reused, fetched again 5 minutes before it expires; a failed renewal
  // keeps the valid ones, and fails once they expired.
  auto now = std::chrono::system_clock::from_time_t(1796690000);
  int fetches = 0;
  bool fail = false;
  s3::CredentialSource src(
      [&] {
        if (fail) throw sdk::Error(ErrorCode::unavailable, "STS is down");
        ++fetches;
        s3::Temporary x;
        x.credentials = {"K" + std::to_string(fetches), "S", "T"};
        x.expires = now + std::chrono::minutes(60);
        return x;
      },
      "test", [&] { return now; });
  EXPECT_EQ(fetches, 1);
  EXPECT_EQ(src.get().access_key, "K1");
  now += std::chrono::minutes(50);
  EXPECT_EQ(src.get().access_key, "K1");
  now += std::chrono::minutes(6);
  EXPECT_EQ(src.get().access_key, "K2");
  fail = true;
  now += std::chrono::minutes(57);
  EXPECT_EQ(src.get().access_key, "K2") << "still valid for 3 minutes";
  now += std::chrono::minutes(4);
  EXPECT_THROW(src.get(), sdk::Error);
}

}  // namespace
}  // namespace modelzoo::plugins
