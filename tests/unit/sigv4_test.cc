// The S3 signer (plugins/s3/sigv4.h): AWS's published example, then byte-for-byte agreement
// with an independent implementation, botocore's S3SigV4Auth (Debian's python3-botocore, run
// by tests/s3/botocore_sign.py), over hostile keys, prefixes with spaces and unicode, query
// strings with empty values and reserved characters, session tokens and extra headers.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/sha256.h"
#include "s3/sigv4.h"

namespace {

using modelzoo::plugins::s3::Credentials;
using modelzoo::plugins::s3::Request;
using modelzoo::plugins::s3::sign;
using modelzoo::plugins::s3::uri_encode;
using nlohmann::json;
namespace fs = std::filesystem;

std::string header(const modelzoo::plugins::s3::Signed& s, const std::string& name) {
  for (const auto& [k, v] : s.headers)
    if (k == name) return v;
  return "";
}

// docs.aws.amazon.com, S3 API, "Signature Calculations for the Authorization Header:
// Transferring Payload in a Single Chunk", example "GET Object".
TEST(SigV4, AwsPublishedGetObjectExample) {
  Request r;
  r.host = "examplebucket.s3.amazonaws.com";
  r.path = "/test.txt";
  r.headers = {{"Range", "bytes=0-9"}};
  r.amz_date = "20130524T000000Z";
  auto s = sign(r, {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""});
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41") << s.canonical_request;
  EXPECT_EQ(header(s, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(header(s, "x-amz-content-sha256"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.canonical_request.find("wJalrXUtnFEMI"), std::string::npos);
}

TEST(SigV4, UriEncodingKeepsOnlyTheUnreservedCharacters) {
  EXPECT_EQ(uri_encode("a b/c~d-e_f.g", true), "a%20b/c~d-e_f.g");
  EXPECT_EQ(uri_encode("a b/c", false), "a%20b%2Fc");
  EXPECT_EQ(uri_encode("+=&?#%", false), "%2B%3D%26%3F%23%25");
  EXPECT_EQ(uri_encode("\xc3\xa9", true), "%C3%A9");  // é as UTF-8 bytes
}

struct Case {
  std::string method = "GET", host = "127.0.0.1:4568", bucket = "models", key, body;
  std::vector<std::pair<std::string, std::string>> query, headers;
  std::string region = "us-east-1", service = "s3", date = "20261207T120000Z";
  std::string access_key = "AKIDEXAMPLE", secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token;
};

std::vector<Case> cases() {
  std::vector<Case> v;
  auto add = [&](auto f) {
    Case c;
    f(c);
    v.push_back(c);
  };
  add([](Case& c) { c.key = "acme/llm/1.0.0/model.safetensors"; });
  add([](Case& c) { c.key = "prefix with spaces/  two  spaces /w.bin"; });
  add([](Case& c) { c.key = "unicode/\xc3\xa9t\xc3\xa9/\xe6\xa8\xa1\xe5\x9e\x8b/\xf0\x9f\xa6\x99.gguf"; });
  add([](Case& c) { c.key = "hostile/../a//b/./c?d#e%f+g=h&i;j:k@l$m,n!o*p'q(r)s[t]u{v}w|x\\y^z`~"; });
  add([](Case& c) { c.key = "tab\there/newline"; });
  add([](Case& c) {
    c.key = "";
    c.query = {{"list-type", "2"}, {"prefix", "models/acme llm/"}, {"delimiter", "/"}, {"continuation-token", "1/2+3=="},
               {"max-keys", "1000"}, {"fetch-owner", ""}, {"start-after", "a&b=c?d"}};
  });
  add([](Case& c) {
    c.key = "";
    c.query = {{"b", ""}, {"a", "2"}, {"a", "1"}, {"A", "x"}, {"~_.-", "*'()!"}, {"\xc3\xa9", "\xe2\x82\xac"}};
  });
  add([](Case& c) {
    c.key = "w.bin";
    c.token = "FQoGZXIvYXdzEJr//////////wEaDOp+session/token=";
    c.headers = {{"Range", "bytes=1048576-2097151"}, {"X-Amz-Meta-Sha256", "  ab  cd  "}};
  });
  add([](Case& c) {
    c.method = "PUT";
    c.key = "sidecar/w.bin.sha256";
    c.body = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n";
    c.headers = {{"Content-Type", "text/plain"}};
  });
  add([](Case& c) {
    c.bucket = "";  // virtual-hosted style: the bucket is in the host
    c.host = "my-bucket.s3.eu-central-1.amazonaws.com";
    c.region = "eu-central-1";
    c.key = "models/acme/llm/1.0.0/config.json";
  });
  add([](Case& c) {
    c.host = "storage.googleapis.com";  // GCS's XML API with HMAC keys
    c.region = "auto";
    c.key = "a/b";
    c.secret_key = "+/=hostile secret with spaces and \xc3\xa9";
    c.access_key = "GOOG1EXAMPLE";
  });
  return v;
}

std::string sha256_hex(const std::string& s) {
  modelzoo::bus::Sha256 h;
  h.update(s.data(), s.size());
  return h.hex_digest();
}

TEST(SigV4, MatchesBotocoreByteForByte) {
  if (std::system("/usr/bin/python3 -c 'import botocore' 2>/dev/null") != 0) {
    if (std::getenv("CI")) FAIL() << "python3-botocore is not installed (scripts/deps.sh installs it)";
    GTEST_SKIP() << "python3-botocore is not installed (scripts/deps.sh installs it)";
  }
  auto all = cases();
  json in = json::array();
  for (const auto& c : all)
    in.push_back({{"method", c.method}, {"host", c.host}, {"bucket", c.bucket}, {"key", c.key}, {"body", c.body},
                  {"query", c.query}, {"headers", c.headers}, {"region", c.region}, {"service", c.service},
                  {"date", c.date}, {"access_key", c.access_key}, {"secret_key", c.secret_key}, {"token", c.token}});
  fs::path dir = fs::temp_directory_path() / ("modelzoo-sigv4-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "cases.json") << in.dump();
  std::string cmd = "/usr/bin/python3 " MODELZOO_SOURCE_DIR "/tests/s3/botocore_sign.py " + (dir / "cases.json").string();
  std::string text;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
    ASSERT_EQ(::pclose(p), 0) << "botocore_sign.py failed: " << text;
  }
  fs::remove_all(dir);
  auto ref = json::parse(text);
  ASSERT_EQ(ref.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& c = all[i];
    Request r;
    r.method = c.method;
    r.host = c.host;
    r.path = "/" + (c.bucket.empty() ? "" : c.bucket + "/") + c.key;
    r.query = c.query;
    r.headers = c.headers;
    r.payload_sha256 = sha256_hex(c.body);
    r.region = c.region;
    r.service = c.service;
    r.amz_date = c.date;
    auto s = sign(r, {c.access_key, c.secret_key, c.token});
    EXPECT_EQ(s.canonical_request, ref[i]["canonical_request"].get<std::string>()) << "case " << i << ": " << c.key;
    EXPECT_EQ(header(s, "authorization"), ref[i]["authorization"].get<std::string>()) << "case " << i;
    EXPECT_EQ(header(s, "x-amz-content-sha256"), ref[i]["headers"]["x-amz-content-sha256"].get<std::string>());
    if (!c.token.empty()) {
      EXPECT_EQ(header(s, "x-amz-security-token"), c.token);
    }
  }
}

}  // namespace
