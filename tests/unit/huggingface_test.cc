// The huggingface plugin's mapping (plugins/huggingface/hub.h) without processes or network:
// configuration, patterns, git blob ids, commit versions and the hub's model info.
#include <gtest/gtest.h>

#include "huggingface/hub.h"

namespace modelzoo::plugins::huggingface {
namespace {

using nlohmann::json;

TEST(HuggingFaceConfig, ReadsItsSettingsAndRefusesUnknownOnes) {
  auto [c, o] = parse_config(json{{"endpoint", "http://127.0.0.1:9/"}, {"prefix", "hf/"}, {"token", "hf_abc123"},
                                  {"allow_patterns", json::array({"*.json"})}, {"timeout_ms", 5000u}});
  EXPECT_EQ(c.endpoint, "http://127.0.0.1:9");
  EXPECT_EQ(o.base_url, "http://127.0.0.1:9");
  EXPECT_EQ(o.auth.kind, sdk::http::Auth::Kind::bearer);
  EXPECT_EQ(c.token_source, "the configured token");
  EXPECT_EQ(c.prefix, "hf/");
  EXPECT_THROW(parse_config(json{{"endpoint", "http://h"}, {"nonsense", 1}}), sdk::Error);
  EXPECT_THROW(parse_config(json{{"url", "http://h"}}), sdk::Error);
  EXPECT_THROW(parse_config(json{{"endpoint", "http://h"}, {"token", "a"}, {"token_file", "/f"}}), sdk::Error);
  try {
    parse_config(json{{"endpoint", "http://h"}, {"list_limit", 0}});
    ADD_FAILURE();
  } catch (const sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("list_limit"), std::string::npos);
  }
}

TEST(HuggingFaceConfig, PatternsSelectFilesAsTheHubsClientsDo) {
  HubConfig c;
  c.allow_patterns = {"*.safetensors", "*.json"};
  c.ignore_patterns = {"original/*"};
  EXPECT_TRUE(selected(c, "model.safetensors"));
  EXPECT_TRUE(selected(c, "sub/dir/model.safetensors"));  // '*' crosses '/'
  EXPECT_TRUE(selected(c, "config.json"));
  EXPECT_FALSE(selected(c, "pytorch_model.bin"));
  EXPECT_FALSE(selected(c, "original/consolidated.safetensors"));
  EXPECT_TRUE(selected(HubConfig{}, "anything"));
}

TEST(HuggingFaceMapping, GitBlobIdsAndCommitVersions) {
  EXPECT_EQ(git_blob_id(""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");  // git hash-object of an empty file
  EXPECT_EQ(git_blob_id("hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
  std::string sha(40, 'a');
  EXPECT_EQ(commit_of_version(version_of_commit(sha)), sha);
  EXPECT_EQ(commit_of_version("1.2.0"), "");
  EXPECT_EQ(commit_of_version("0.0.0+abc"), "");
}

json model_info() {
  return json{{"id", "acme/tiny"},
              {"sha", std::string(40, 'c')},
              {"author", "acme"},
              {"tags", json::array({"license:mit", "safetensors"})},
              {"siblings", json::array({json{{"rfilename", "config.json"}, {"size", 6}, {"blobId", std::string(40, 'b')}},
                                        json{{"rfilename", "model.safetensors"},
                                             {"size", 134},
                                             {"blobId", std::string(40, 'd')},
                                             {"lfs", {{"sha256", std::string(64, 'e')}, {"size", 1000}, {"pointerSize", 134}}}},
                                        json{{"rfilename", "pytorch_model.bin"}, {"size", 9}, {"blobId", std::string(40, 'f')}}})}};
}

TEST(HuggingFaceMapping, ModelInfoBecomesMetadataWithEveryFileHashed) {
  HubRegistry r;
  r.configure(json{{"endpoint", "http://127.0.0.1:9"}, {"prefix", "hf/"}, {"ignore_patterns", json::array({"*.bin"})}});
  EXPECT_EQ(r.repo_of("hf/acme/tiny"), "acme/tiny");
  EXPECT_THROW(r.repo_of("other/acme/tiny"), sdk::Error);
  EXPECT_THROW(r.repo_of("hf/acme"), sdk::Error);
  std::vector<std::string> hashed;
  auto md = r.parse_revision("hf/acme/tiny", model_info(), [&](const std::string& f, const std::string& blob, std::uint64_t size) {
    hashed.push_back(f);
    EXPECT_EQ(blob, std::string(40, 'b'));
    EXPECT_EQ(size, 6u);
    return std::string(64, '1');
  });
  EXPECT_EQ(md.version, "0.0.0+" + std::string(40, 'c'));
  EXPECT_EQ(md.license, "mit");
  EXPECT_EQ(md.format, "safetensors");
  ASSERT_EQ(md.files.size(), 2u);
  EXPECT_EQ(md.files[0].sha256, std::string(64, '1'));  // the git file: hashed by the plugin
  EXPECT_EQ(md.files[1].sha256, std::string(64, 'e'));  // the LFS file: the hub's sha256
  EXPECT_EQ(md.files[1].size, 1000u);                   // the LFS size, not the pointer's
  EXPECT_EQ(hashed, std::vector<std::string>{"config.json"});
  EXPECT_NE(md.description.find("1 LFS file(s)"), std::string::npos) << md.description;
  EXPECT_NO_THROW(sdk::ModelMetadata::from_json(md.to_json()));

  auto bad = model_info();
  bad["siblings"][1]["lfs"].erase("sha256");
  EXPECT_THROW(r.parse_revision("hf/acme/tiny", bad, [](auto&&...) { return std::string(64, '1'); }), sdk::Error);
  auto none = model_info();
  none["siblings"] = json::array();
  try {
    r.parse_revision("hf/acme/tiny", none, [](auto&&...) { return std::string(64, '1'); });
    ADD_FAILURE();
  } catch (const sdk::Error& e) {
    EXPECT_EQ(e.code(), sdk::ErrorCode::not_found);
  }
}

}  // namespace
}  // namespace modelzoo::plugins::huggingface
