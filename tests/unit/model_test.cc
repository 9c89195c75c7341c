// Unit tests of model metadata as it travels on the bus (bus/include/modelzoo/bus/model.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/model.h"

namespace {

using modelzoo::bus::Error;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::FileInfo;
using modelzoo::bus::is_sha256_hex;
using modelzoo::bus::ModelMetadata;
using modelzoo::bus::ModelSummary;
using nlohmann::json;
using testing::HasSubstr;


const std::string kAbcSha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// A valid metadata document; sizes are unsigned as they are after a msgpack or JSON parse.
json valid() {
  return {{"name", "org/model"},
          {"version", "1.2.3-rc.1"},
          {"description", "A model"},
          {"author", "someone"},
          {"license", "MIT"},
          {"format", "safetensors"},
          {"tags", json::array({"demo", "small"})},
          {"files", json::array({{{"name", "weights.bin"}, {"size", std::uint64_t{3}}, {"sha256", kAbcSha}},
                                 {{"name", "sub/empty.txt"}, {"size", std::uint64_t{0}}, {"sha256", kEmptySha}}})}};
}

void expect_bad(const json& j, const std::string& reason) {
  try {
    ModelMetadata::from_json(j);
    ADD_FAILURE() << "accepted " << j.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request);
    EXPECT_THAT(e.what(), HasSubstr(reason)) << j.dump();
  }
}

json with(const std::function<void(json&)>& edit) {
  json j = valid();
  edit(j);
  return j;
}

TEST(ModelMetadata, FromJsonReadsEveryField) {
  auto m = ModelMetadata::from_json(valid());
  EXPECT_EQ(m.name, "org/model");
  EXPECT_EQ(m.version, "1.2.3-rc.1");
  EXPECT_EQ(m.description, "A model");
  EXPECT_EQ(m.author, "someone");
  EXPECT_EQ(m.license, "MIT");
  EXPECT_EQ(m.format, "safetensors");
  EXPECT_EQ(m.tags, (std::vector<std::string>{"demo", "small"}));
  ASSERT_EQ(m.files.size(), 2u);
  EXPECT_EQ(m.files[0].name, "weights.bin");
  EXPECT_EQ(m.files[0].size, 3u);
  EXPECT_EQ(m.files[0].sha256, kAbcSha);
  EXPECT_EQ(m.files[1].name, "sub/empty.txt");
  EXPECT_EQ(m.total_size(), 3u);
}

TEST(ModelMetadata, RoundTrip) {
  auto m = ModelMetadata::from_json(valid());
  json j = m.to_json();
  EXPECT_EQ(j, valid());
  auto again = ModelMetadata::from_json(j);
  EXPECT_EQ(again.to_json(), j);
}

TEST(ModelMetadata, RoundTripThroughMsgpack) {
  auto m = ModelMetadata::from_json(valid());
  auto bytes = modelzoo::bus::to_msgpack(m.to_json());
  auto back = ModelMetadata::from_json(modelzoo::bus::from_msgpack(bytes.data(), bytes.size()));
  EXPECT_EQ(back.to_json(), m.to_json());
}

TEST(ModelMetadata, OptionalFieldsMayBeMissingOrNull) {
  json j = {{"name", "a"}, {"version", "0.1.0"}, {"files", json::array()}, {"author", nullptr}, {"tags", nullptr}};
  auto m = ModelMetadata::from_json(j);
  EXPECT_EQ(m.name, "a");
  EXPECT_EQ(m.description, "");
  EXPECT_EQ(m.author, "");
  EXPECT_TRUE(m.tags.empty());
  EXPECT_TRUE(m.files.empty());
  EXPECT_EQ(m.total_size(), 0u);
  // to_json writes every field, with empty values.
  json out = m.to_json();
  EXPECT_EQ(out["description"], "");
  EXPECT_EQ(out["tags"], json::array());
  EXPECT_EQ(out["files"], json::array());
}

TEST(ModelMetadata, LargeSizesSurvive) {
  json j = with([](json& j) { j["files"][0]["size"] = std::uint64_t{1} << 40; });
  auto m = ModelMetadata::from_json(j);
  EXPECT_EQ(m.files[0].size, std::uint64_t{1} << 40);
  EXPECT_EQ(m.total_size(), std::uint64_t{1} << 40);
}

TEST(ModelMetadata, RejectsNotAMap) {
  expect_bad(json::array(), "not a map");
  expect_bad(json("x"), "not a map");
}

TEST(ModelMetadata, RejectsBadName) {
  expect_bad(with([](json& j) { j.erase("name"); }), "lacks 'name'");
  expect_bad(with([](json& j) { j["name"] = ""; }), "model name is empty");
  expect_bad(with([](json& j) { j["name"] = "../etc"; }), "'..' segment");
  expect_bad(with([](json& j) { j["name"] = "a b"; }), "character '\\x20'");
  expect_bad(with([](json& j) { j["name"] = 5; }), "'name' is not a string");
}

TEST(ModelMetadata, RejectsBadVersion) {
  expect_bad(with([](json& j) { j.erase("version"); }), "lacks 'version'");
  expect_bad(with([](json& j) { j["version"] = "latest"; }), "not a semantic version");
  expect_bad(with([](json& j) { j["version"] = "1.0"; }), "not a semantic version");
  expect_bad(with([](json& j) { j["version"] = "01.0.0"; }), "not a semantic version");
  expect_bad(with([](json& j) { j["version"] = 1; }), "'version' is not a string");
}

TEST(ModelMetadata, RejectsBadSha256) {
  expect_bad(with([](json& j) { j["files"][0]["sha256"] = kAbcSha.substr(1); }), "not 64 lowercase hex");
  expect_bad(with([](json& j) { j["files"][0]["sha256"] = kAbcSha + "0"; }), "not 64 lowercase hex");
  std::string upper = kAbcSha;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  expect_bad(with([&](json& j) { j["files"][0]["sha256"] = upper; }), "not 64 lowercase hex");
  expect_bad(with([](json& j) { j["files"][0]["sha256"] = std::string(63, 'a') + "g"; }), "not 64 lowercase hex");
  expect_bad(with([](json& j) { j["files"][0].erase("sha256"); }), "lacks 'sha256'");
  expect_bad(with([](json& j) { j["files"][0]["sha256"] = 5; }), "'sha256' is not a string");
  // The message names the file.
  expect_bad(with([](json& j) { j["files"][1]["sha256"] = "zz"; }), "file 'sub/empty.txt'");
}

TEST(ModelMetadata, RejectsDuplicateFile) {
  expect_bad(with([](json& j) { j["files"][1]["name"] = "weights.bin"; }), "lists file 'weights.bin' twice");
}

TEST(ModelMetadata, RejectsNegativeOrMissingSize) {
  expect_bad(with([](json& j) { j["files"][0]["size"] = -1; }), "non-negative integer 'size'");
  expect_bad(with([](json& j) { j["files"][0]["size"] = 1.5; }), "non-negative integer 'size'");
  expect_bad(with([](json& j) { j["files"][0]["size"] = "3"; }), "non-negative integer 'size'");
  expect_bad(with([](json& j) { j["files"][0].erase("size"); }), "file 'weights.bin' lacks");
}

TEST(ModelMetadata, AcceptsNonNegativeSizeStoredAsSignedInteger) {
  // json(3) built in C++ holds a signed integer; it is still a non-negative integer.
  json j = with([](json& j) { j["files"][0]["size"] = 3; });
  ASSERT_TRUE(j["files"][0]["size"].is_number_integer());
  EXPECT_EQ(ModelMetadata::from_json(j).files[0].size, 3u);
}

TEST(ModelMetadata, RejectsMissingFiles) {
  expect_bad(with([](json& j) { j.erase("files"); }), "lacks a 'files' array");
  expect_bad(with([](json& j) { j["files"] = json::object(); }), "lacks a 'files' array");
  expect_bad(with([](json& j) { j["files"] = nullptr; }), "lacks a 'files' array");
  expect_bad(with([](json& j) { j["files"][0] = "weights.bin"; }), "file entry is not a map");
}

TEST(ModelMetadata, RejectsBadFileName) {
  expect_bad(with([](json& j) { j["files"][0]["name"] = "../escape"; }), "'..' segment");
  expect_bad(with([](json& j) { j["files"][0]["name"] = "/etc/passwd"; }), "absolute");
  expect_bad(with([](json& j) { j["files"][0]["name"] = ""; }), "file name is empty");
  expect_bad(with([](json& j) { j["files"][0].erase("name"); }), "lacks 'name'");
}

TEST(ModelMetadata, RejectsBadOptionalFields) {
  expect_bad(with([](json& j) { j["description"] = 1; }), "'description' is not a string");
  expect_bad(with([](json& j) { j["tags"] = "demo"; }), "'tags' is not an array");
  expect_bad(with([](json& j) { j["tags"] = json::array({1}); }), "tag is not a string");
}

TEST(ModelSummary, RoundTripAndValidation) {
  ModelSummary s{"org/model", {"2.0.0", "1.0.0"}, "desc"};
  auto back = ModelSummary::from_json(s.to_json());
  EXPECT_EQ(back.name, "org/model");
  EXPECT_EQ(back.versions, (std::vector<std::string>{"2.0.0", "1.0.0"}));
  EXPECT_EQ(back.description, "desc");
  EXPECT_THROW(ModelSummary::from_json(json{{"name", "../x"}}), Error);
  EXPECT_THROW(ModelSummary::from_json(json::array()), Error);
}

TEST(Sha256Hex, Shape) {
  EXPECT_TRUE(is_sha256_hex(kAbcSha));
  EXPECT_TRUE(is_sha256_hex(std::string(64, '0')));
  EXPECT_FALSE(is_sha256_hex(""));
  EXPECT_FALSE(is_sha256_hex(std::string(64, 'A')));
  EXPECT_FALSE(is_sha256_hex(std::string(65, 'a')));
  EXPECT_FALSE(is_sha256_hex(std::string(63, 'a')));
}

}  // namespace

TEST(ModelMetadata, LocalPathMustBeAbsoluteAndRoundTrips) {
  auto j = valid();
  j["files"][0]["local_path"] = "/srv/models/org/model/1.2.3/weights.bin";
  auto m = ModelMetadata::from_json(j);
  EXPECT_EQ(m.files[0].local_path, "/srv/models/org/model/1.2.3/weights.bin");
  EXPECT_EQ(ModelMetadata::from_json(m.to_json()).files[0].local_path, m.files[0].local_path);
  EXPECT_FALSE(m.to_json()["files"][1].contains("local_path"));  // absent when there is none
  j["files"][0]["local_path"] = "relative/weights.bin";
  expect_bad(j, "local_path that is not an absolute path");
  j["files"][0]["local_path"] = std::string("/a\0b", 4);
  expect_bad(j, "local_path that is not an absolute path");
}
