// The azure-blob plugin's pure parts: Shared Key's string-to-sign and signature, byte for byte
// against Microsoft's own Python client (Debian's python3-azure, tests/azure/azure_sign.py), its
// configuration (auth precedence, connection string) and List Blobs pages. The wire is tested
// against Azurite (tests/integration/azure_registry_test.cc).
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "azure/azure.h"

namespace modelzoo::plugins {
namespace {

using sdk::ErrorCode;
const char* kKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

TEST(AzureSharedKey, MatchesMicrosoftsPythonClientByteForByte) {
  if (std::system("/usr/bin/python3 -c 'import azure.storage.blob' 2>/dev/null") != 0) {
    if (std::getenv("CI")) FAIL() << "python3-azure is not installed (scripts/deps.sh installs it)";
    GTEST_SKIP() << "python3-azure is not installed (scripts/deps.sh installs it)";
  }
  const std::string date = "Tue, 08 Dec 2026 01:40:00 GMT";
  struct Case {
    std::string method, url;
    azure::Pairs headers;
  };
  const std::vector<Case> cases = {
      {"GET", "http://127.0.0.1:10000/devstoreaccount1/models?restype=container&comp=list&prefix=my%20zoo%2F%C3%A9&maxresults=2&marker=2%21abc%3D",
       {{"x-ms-version", "2021-08-06"}, {"x-ms-date", date}}},
      {"HEAD", "https://acct.blob.core.windows.net/models/zoo/a%20b/%C3%A9%2B.bin", {{"x-ms-version", "2021-08-06"}, {"x-ms-date", date}}},
      {"PUT", "https://acct.blob.core.windows.net/models/zoo/w.bin.sha256",
       {{"x-ms-version", "2021-08-06"}, {"x-ms-date", date}, {"x-ms-blob-type", "BlockBlob"},
        {"Content-Type", "text/plain; charset=utf-8"}, {"Content-Length", "77"}}},
      {"PUT", "https://acct.blob.core.windows.net/models/zoo/w.bin?comp=metadata",
       {{"x-ms-version", "2021-08-06"}, {"x-ms-date", date}, {"x-ms-meta-sha256", "ab12"}, {"x-ms-meta-owner", "team a"},
        {"If-Match", "\"0x8DB\""}, {"Content-Type", "text/plain"}, {"Content-Length", "0"}}},
  };
  nlohmann::json in = nlohmann::json::array();
  for (const auto& c : cases) {
    nlohmann::json h = nlohmann::json::array();
    for (const auto& [k, v] : c.headers) h.push_back({k, v});
    in.push_back({{"account", c.url.find("devstoreaccount1") != std::string::npos ? "devstoreaccount1" : "acct"},
                  {"key", kKey}, {"method", c.method}, {"url", c.url}, {"headers", h}});
  }
  auto dir = std::filesystem::temp_directory_path() / ("azure-sign-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "cases.json") << in.dump();
  std::string cmd = "/usr/bin/python3 " MODELZOO_SOURCE_DIR "/tests/azure/azure_sign.py " + (dir / "cases.json").string();
  std::string text;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
    ASSERT_EQ(::pclose(p), 0) << "azure_sign.py failed: " << text;
  }
  std::filesystem::remove_all(dir);
  auto out = nlohmann::json::parse(text);
  ASSERT_EQ(out.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    std::string account = in[i]["account"];
    std::string ours = azure::string_to_sign(account, cases[i].method, cases[i].url, cases[i].headers);
    EXPECT_EQ(ours, out[i]["string_to_sign"].get<std::string>()) << cases[i].url;
    EXPECT_EQ(azure::shared_key_authorization(account, kKey, ours), out[i]["authorization"].get<std::string>()) << cases[i].url;
  }
}

TEST(AzureSharedKey, TheRangeHeaderIsSignedInItsPlace) {
  std::string s = azure::string_to_sign("a", "GET", "https://a.blob.core.windows.net/c/k", {{"Range", "bytes=0-9"}, {"x-ms-date", "d"}});
  EXPECT_EQ(s, "GET\n\n\n\n\n\n\n\n\n\n\nbytes=0-9\nx-ms-date:d\n/a/c/k");
  EXPECT_THROW(azure::shared_key_authorization("a", "not base64!", s), sdk::Error);
}

TEST(AzureList, ReadsAnEnumerationResultsPage) {
  auto p = azure::parse_list(
      "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"x\" ContainerName=\"c\">"
      "<Prefix>zoo/</Prefix><MaxResults>2</MaxResults><Blobs><Blob><Name>zoo/a &amp; b</Name><Properties>"
      "<Content-Length>42</Content-Length><Etag>0x8DB</Etag></Properties></Blob><BlobPrefix><Name>zoo/d/</Name></BlobPrefix>"
      "</Blobs><NextMarker>2!88!abc</NextMarker></EnumerationResults>");
  ASSERT_EQ(p.objects.size(), 1u);
  EXPECT_EQ(p.objects[0].key, "zoo/a & b");
  EXPECT_EQ(p.objects[0].size, 42u);
  EXPECT_EQ(p.objects[0].etag, "0x8DB");
  EXPECT_EQ(p.prefixes, std::vector<std::string>{"zoo/d/"});
  EXPECT_EQ(p.next, "2!88!abc");
  EXPECT_EQ(azure::parse_list("<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>").next, "");
  EXPECT_THROW(azure::parse_list("<Error><Code>AuthenticationFailed</Code></Error>"), std::invalid_argument);
}

TEST(AzureConfig, AuthPrecedenceConnectionStringAndErrors) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const char* n) -> const char* {
      auto it = vars.find(n);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  sdk::http::ClientOptions http;
  auto [c, l] = azure::parse_config({{"account", "acct"}, {"container", "models"}, {"prefix", "zoo"}}, http,
                                    env({{"AZURE_STORAGE_KEY", kKey}, {"AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x"}}));
  EXPECT_EQ(c.base_url, "https://acct.blob.core.windows.net/models");
  EXPECT_EQ(c.auth, azure::AuthKind::shared_key) << "the key comes before the SAS";
  EXPECT_EQ(c.auth_from, "AZURE_STORAGE_KEY");
  EXPECT_EQ(l.prefix, "zoo/");
  auto [sas, l2] = azure::parse_config({{"account", "acct"}, {"container", "models"}, {"sas_token", "?sv=1&sig=abc"}}, http, env({}));
  EXPECT_EQ(sas.auth, azure::AuthKind::sas);
  EXPECT_EQ(sas.sas, "sv=1&sig=abc") << "the leading '?' is dropped";
  auto [cs, l3] = azure::parse_config(
      {{"container", "models"}}, http,
      env({{"AZURE_STORAGE_CONNECTION_STRING", std::string("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=") + kKey +
                                                   ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"}}));
  EXPECT_EQ(cs.account, "devstoreaccount1");
  EXPECT_EQ(cs.base_url, "http://127.0.0.1:10000/devstoreaccount1/models");
  EXPECT_EQ(cs.auth, azure::AuthKind::shared_key);
  EXPECT_EQ(cs.key, kKey) << "a value holding '=' is kept whole";
  struct Bad {
    nlohmann::json config;
    std::string says;
    ErrorCode code;
  };
  for (const auto& bad : std::vector<Bad>{
           {{{"container", "m"}}, "setting 'account' is required", ErrorCode::bad_request},
           {{{"account", "acct"}}, "setting 'container' is required", ErrorCode::bad_request},
           {{{"account", "a-b"}, {"container", "m"}}, "setting 'account'", ErrorCode::bad_request},
           {{{"account", "acct"}, {"container", "m"}, {"account_key", kKey}, {"sas_token", "x"}}, "give one of them", ErrorCode::bad_request},
           {{{"account", "acct"}, {"container", "m"}, {"account_key", "###"}}, "setting 'account_key' is not base64", ErrorCode::bad_request},
           {{{"account", "acct"}, {"container", "m"}}, "no credentials for container 'm'", ErrorCode::unauthorized},
       }) {
    try {
      azure::parse_config(bad.config, http, env({}));
      FAIL() << bad.config.dump();
    } catch (const sdk::Error& e) {
      EXPECT_EQ(e.code(), bad.code) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad.says), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find(kKey), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace modelzoo::plugins
