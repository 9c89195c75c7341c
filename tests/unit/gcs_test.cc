// The gcs plugin's pure parts: objects.list pages, its configuration (credential precedence,
// errors naming the file, never a secret), base64url and the service-account JWT (checked here
// with OpenSSL's verify; on the wire, Google's own library verifies it: tests/gcs/fake_gcs.py).
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "gcs/gcs.h"

namespace modelzoo::plugins {
namespace {

using sdk::ErrorCode;

std::string b64url_decode(std::string s) {
  for (auto& c : s) c = c == '-' ? '+' : c == '_' ? '/' : c;
  while (s.size() % 4) s += '=';
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  out.resize(static_cast<std::size_t>(n) - (s.size() - s.find_last_not_of('=') - 1));
  return out;
}

TEST(GcsList, ReadsAnObjectsListPage) {
  auto p = gcs::parse_list(nlohmann::json::parse(
      R"({"kind":"storage#objects","items":[{"name":"zoo/a/1.0.0/f","size":"12","etag":"CJ"}],"prefixes":["zoo/b/"],"nextPageToken":"tok"})"));
  ASSERT_EQ(p.objects.size(), 1u);
  EXPECT_EQ(p.objects[0].key, "zoo/a/1.0.0/f");
  EXPECT_EQ(p.objects[0].size, 12u);
  EXPECT_EQ(p.prefixes, std::vector<std::string>{"zoo/b/"});
  EXPECT_EQ(p.next, "tok");
  EXPECT_TRUE(gcs::parse_list(nlohmann::json::parse(R"({"kind":"storage#objects"})")).objects.empty());
  EXPECT_THROW(gcs::parse_list(nlohmann::json::parse(R"({"kind":"storage#buckets"})")), std::invalid_argument);
  EXPECT_THROW(gcs::parse_list(nlohmann::json::parse(R"({"items":[{"size":"1"}]})")), std::invalid_argument);
  EXPECT_THROW(gcs::parse_list(nlohmann::json::parse(R"({"items":[{"name":"a","size":"-1"}]})")), std::invalid_argument);
}

TEST(GcsJwt, IsRs256OverTheServiceAccountsClaimsAndVerifies) {
  // A key made here; the JWT checked with its public half.
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_RSA_gen(2048), &EVP_PKEY_free);
  ASSERT_TRUE(key);
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  nlohmann::json creds = {{"type", "service_account"}, {"client_email", "sa@p.iam.gserviceaccount.com"},
                          {"private_key", std::string(data, static_cast<std::size_t>(len))}, {"private_key_id", "kid-1"},
                          {"token_uri", "https://oauth2.googleapis.com/token"}};
  std::string jwt = gcs::service_account_jwt(creds, "https://www.googleapis.com/auth/devstorage.read_only", 1800000000);
  auto d1 = jwt.find('.'), d2 = jwt.rfind('.');
  ASSERT_NE(d1, d2);
  auto header = nlohmann::json::parse(b64url_decode(jwt.substr(0, d1)));
  auto claims = nlohmann::json::parse(b64url_decode(jwt.substr(d1 + 1, d2 - d1 - 1)));
  EXPECT_EQ(header, (nlohmann::json{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "kid-1"}}));
  EXPECT_EQ(claims["iss"], "sa@p.iam.gserviceaccount.com");
  EXPECT_EQ(claims["aud"], "https://oauth2.googleapis.com/token");
  EXPECT_EQ(claims["scope"], "https://www.googleapis.com/auth/devstorage.read_only");
  EXPECT_EQ(claims["iat"], 1800000000);
  EXPECT_EQ(claims["exp"], 1800003600);
  std::string sig = b64url_decode(jwt.substr(d2 + 1)), input = jwt.substr(0, d2);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  ASSERT_EQ(EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()), 1);
  EXPECT_EQ(EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
            1);
  EXPECT_EQ(jwt.find('='), std::string::npos) << "base64url has no padding";
  creds["private_key"] = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n";
  EXPECT_THROW(gcs::service_account_jwt(creds, "s", 0), sdk::Error);
  EXPECT_EQ(gcs::base64url("\xfb\xff"), "-_8");
}

TEST(GcsConfig, CredentialsComeInTheClientLibrariesOrderAndErrorsNameTheFile) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  auto dir = std::filesystem::temp_directory_path() / ("gcs-config-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "user.json") << R"({"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"})";
  std::ofstream(dir / "odd.json") << R"({"type":"external_account"})";
  std::ofstream(dir / "bad.json") << "not json";
  sdk::http::ClientOptions http;
  auto [c, l] = gcs::parse_config({{"bucket", "b"}, {"prefix", "zoo"}}, http,
                                  env({{"GOOGLE_APPLICATION_CREDENTIALS", (dir / "user.json").string()}, {"HOME", "/nonexistent"}}));
  EXPECT_EQ(c.auth, gcs::AuthKind::authorized_user);
  EXPECT_NE(c.auth_from.find("GOOGLE_APPLICATION_CREDENTIALS"), std::string::npos);
  EXPECT_EQ(http.base_url, "https://storage.googleapis.com");
  EXPECT_EQ(l.prefix, "zoo/");
  auto [t, l2] = gcs::parse_config({{"bucket", "b"}, {"token", "ya29.x"}}, http,
                                   env({{"GOOGLE_APPLICATION_CREDENTIALS", (dir / "user.json").string()}}));
  EXPECT_EQ(t.auth, gcs::AuthKind::token) << "an explicit token comes first";
  auto [md, l3] = gcs::parse_config({{"bucket", "b"}}, http, env({{"HOME", "/nonexistent"}, {"GCE_METADATA_HOST", "10.0.0.1:8080"}}));
  EXPECT_EQ(md.auth, gcs::AuthKind::metadata_server);
  EXPECT_EQ(md.metadata_host, "10.0.0.1:8080");
  auto [em, l4] = gcs::parse_config({{"bucket", "b"}, {"anonymous", true}}, http, env({{"STORAGE_EMULATOR_HOST", "localhost:4443"}}));
  EXPECT_EQ(em.endpoint, "http://localhost:4443");
  struct Bad {
    nlohmann::json config;
    std::string says;
    ErrorCode code;
  };
  for (const auto& bad : std::vector<Bad>{
           {{{"prefix", "x"}}, "setting 'bucket' is required", ErrorCode::bad_request},
           {{{"bucket", "b"}, {"url", "http://x"}}, "setting 'url' is not a setting", ErrorCode::bad_request},
           {{{"bucket", "b"}, {"token", "t"}, {"anonymous", true}}, "give one of them", ErrorCode::bad_request},
           {{{"bucket", "b"}, {"credentials_file", (dir / "none.json").string()}}, "cannot read the credentials file", ErrorCode::unauthorized},
           {{{"bucket", "b"}, {"credentials_file", (dir / "bad.json").string()}}, "is not JSON", ErrorCode::unauthorized},
           {{{"bucket", "b"}, {"credentials_file", (dir / "odd.json").string()}}, "of type 'external_account'", ErrorCode::unauthorized},
           {{{"bucket", "b"}, {"metadata_server", false}}, "no credentials for bucket 'b'", ErrorCode::unauthorized},
       }) {
    try {
      gcs::parse_config(bad.config, http, env({{"HOME", "/nonexistent"}}));
      FAIL() << bad.config.dump();
    } catch (const sdk::Error& e) {
      EXPECT_EQ(e.code(), bad.code) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad.says), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace modelzoo::plugins
