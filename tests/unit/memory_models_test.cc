// Unit tests of the memory plugin's logic (plugins/memory/models.h): no processes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "modelzoo/bus/sha256.h"
#include "vector_sink.h"
#include "memory/models.h"

namespace {

using modelzoo::sdk::DownloadRequest;
using modelzoo::sdk::Error;
using modelzoo::sdk::ErrorCode;
using nlohmann::json;
namespace mem = modelzoo::plugins::memory;

const std::string kAbcSha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string gen(std::uint64_t seed, std::uint64_t offset, std::size_t n) {
  std::string s(n, '\0');
  mem::generate(seed, offset, s.data(), n);
  return s;
}

json model(const std::string& name, const std::string& version, json files = json::array()) {
  return {{"name", name}, {"version", version}, {"files", files}};
}

// Expects parse_config to throw bad_request whose message contains every `needles`.
void expect_rejected(const json& config, const std::vector<std::string>& needles) {
  try {
    mem::parse_config(config);
    ADD_FAILURE() << "accepted: " << config.dump();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request) << e.what();
    for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << " lacks " << n;
  }
}

ErrorCode code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  ADD_FAILURE() << "no error thrown";
  return ErrorCode::internal;
}

TEST(MemoryModels, ParsesAFullConfig) {
  json cfg = {{"models",
               {{{"name", "demo/tiny"},
                 {"version", "1.0.0"},
                 {"description", "a tiny model"},
                 {"author", "me"},
                 {"license", "MIT"},
                 {"format", "raw"},
                 {"tags", {"a", "b"}},
                 {"files",
                  {{{"name", "README.md"}, {"content", "abc"}},
                   {{"name", "weights/part-1.bin"}, {"size", 100000}, {"seed", 42}}}}}}},
              {"fail_download_after_bytes", 10},
              {"crash_on_download", false},
              {"metadata_delay_ms", 5}};
  auto c = mem::parse_config(cfg);
  ASSERT_EQ(c.models.size(), 1u);
  EXPECT_EQ(c.fail_download_after_bytes, 10u);
  EXPECT_FALSE(c.crash_on_download);
  EXPECT_EQ(c.metadata_delay_ms, 5u);
  const auto& m = c.models[0].meta;
  EXPECT_EQ(m.name, "demo/tiny");
  EXPECT_EQ(m.version, "1.0.0");
  EXPECT_EQ(m.description, "a tiny model");
  EXPECT_EQ(m.author, "me");
  EXPECT_EQ(m.license, "MIT");
  EXPECT_EQ(m.format, "raw");
  EXPECT_EQ(m.tags, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(m.files.size(), 2u);
  EXPECT_EQ(m.files[0].name, "README.md");
  EXPECT_EQ(m.files[0].size, 3u);
  EXPECT_EQ(m.files[0].sha256, kAbcSha);
  EXPECT_EQ(m.files[1].size, 100000u);
  EXPECT_EQ(m.files[1].sha256, modelzoo::bus::Sha256::of(gen(42, 0, 100000)));
  // The metadata is valid by the bus rules.
  EXPECT_NO_THROW(modelzoo::bus::ModelMetadata::from_json(m.to_json()));
}

TEST(MemoryModels, EmptyConfigMeansNoModels) {
  EXPECT_TRUE(mem::parse_config(json::object()).models.empty());
  mem::Models ms(mem::parse_config(json::object()));
  EXPECT_TRUE(ms.list().empty());
  EXPECT_EQ(code_of([&] { ms.metadata("x", ""); }), ErrorCode::not_found);
}

TEST(MemoryModels, RejectsBadConfigs) {
  auto with = [](json m) { return json{{"models", json::array({m})}}; };
  json ok_file = {{"name", "f"}, {"content", "x"}};
  expect_rejected(json::array(), {"not a map"});
  expect_rejected({{"models", "x"}}, {"'models'"});
  expect_rejected({{"models", {1}}}, {"model #1", "not a map"});
  expect_rejected(with({{"version", "1.0.0"}}), {"model #1", "'name'"});
  expect_rejected(with(model("../evil", "1.0.0")), {"model #1", "'name'"});
  expect_rejected(with(model("bad name", "1.0.0")), {"'name'"});
  expect_rejected(with({{"name", "m"}}), {"model 'm'", "'version'"});
  expect_rejected(with(model("m", "1.0")), {"model 'm'", "'version'"});
  expect_rejected(with(model("m", "latest")), {"model 'm'", "'version'"});
  {
    json m = model("m", "1.0.0");
    m["version"] = 1;
    expect_rejected(with(m), {"model 'm'", "'version'"});
  }
  for (const char* key : {"description", "author", "license", "format"}) {
    json m = model("m", "1.0.0");
    m[key] = 3;
    expect_rejected(with(m), {"model 'm'", std::string("'") + key + "'"});
  }
  {
    json m = model("m", "1.0.0");
    m["tags"] = "a";
    expect_rejected(with(m), {"model 'm'", "'tags'"});
    m["tags"] = {"a", 1};
    expect_rejected(with(m), {"model 'm'", "tag"});
  }
  {
    json m = model("m", "1.0.0");
    m["files"] = "x";
    expect_rejected(with(m), {"model 'm'", "'files'"});
    m["weird"] = 1;
    m["files"] = json::array();
    expect_rejected(with(m), {"model 'm'", "'weird'"});
  }
  expect_rejected(with(model("m", "1.0.0", {1})), {"model 'm'", "file #1"});
  expect_rejected(with(model("m", "1.0.0", {{{"content", "x"}}})), {"model 'm'", "file #1", "'name'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "../x"}, {"content", "x"}}})), {"model 'm'", "'name'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "/abs"}, {"content", "x"}}})), {"model 'm'", "'name'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}}})), {"model 'm'", "file 'f'", "neither"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"content", "x"}, {"size", 1}}})),
                  {"model 'm'", "file 'f'", "both"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"content", "x"}, {"seed", 1}}})), {"file 'f'", "'seed'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"content", 5}}})), {"file 'f'", "'content'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"size", -1}}})), {"file 'f'", "'size'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"size", "10"}}})), {"file 'f'", "'size'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"size", 1.5}}})), {"file 'f'", "'size'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"size", 1}, {"seed", "x"}}})), {"file 'f'", "'seed'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"content", "x"}, {"declared_sha256", "abc"}}})),
                  {"file 'f'", "'declared_sha256'"});
  expect_rejected(with(model("m", "1.0.0", {{{"name", "f"}, {"content", "x"}, {"sha256", kAbcSha}}})),
                  {"file 'f'", "'sha256'"});
  expect_rejected(with(model("m", "1.0.0", {ok_file, ok_file})), {"model 'm'", "'f'", "twice"});
  expect_rejected({{"models", {model("m", "1.0.0"), model("m", "1.0.0")}}}, {"model 'm'", "'1.0.0'", "twice"});
  expect_rejected({{"fail_download_after_bytes", "1"}}, {"'fail_download_after_bytes'"});
  expect_rejected({{"fail_download_after_bytes", -1}}, {"'fail_download_after_bytes'"});
  expect_rejected({{"crash_on_download", "no"}}, {"'crash_on_download'"});
  expect_rejected({{"metadata_delay_ms", -5}}, {"'metadata_delay_ms'"});
}

TEST(MemoryModels, SameNameDifferentVersionsAndSameVersionDifferentNamesAreFine) {
  json cfg = {{"models", {model("m", "1.0.0"), model("m", "1.0.1"), model("n", "1.0.0")}}};
  EXPECT_EQ(mem::parse_config(cfg).models.size(), 3u);
}

TEST(MemoryModels, GeneratedBytesAreDeterministicAndSeekable) {
  const std::string whole = gen(7, 0, 4096);
  EXPECT_EQ(gen(7, 0, 4096), whole);
  for (std::uint64_t off : {1u, 2u, 3u, 7u, 8u, 9u, 15u, 16u, 17u, 1000u, 4095u}) {
    EXPECT_EQ(gen(7, off, 4096 - off), whole.substr(off)) << "offset " << off;
    for (std::size_t n : {0u, 1u, 5u, 8u, 13u})
      if (off + n <= 4096) {
        EXPECT_EQ(gen(7, off, n), whole.substr(off, n)) << off << "+" << n;
      }
  }
  EXPECT_NE(gen(8, 0, 4096), whole);
  // Far offsets: bytes at 1 GiB - 3 match a read that starts a bit earlier.
  std::uint64_t far = (1ull << 30) - 3;
  EXPECT_EQ(gen(7, far, 100), gen(7, far - 5, 105).substr(5));
  // Not trivially patterned.
  int zeros = 0;
  for (char c : whole) zeros += c == 0;
  EXPECT_LT(zeros, 64);
}

TEST(MemoryModels, HashesGeneratedContentAcrossHashBlocks) {
  const std::size_t size = 3 * (1u << 20) + 5;  // not a multiple of the hash block
  json cfg = {{"models", {model("m", "1.0.0", {{{"name", "w"}, {"size", size}, {"seed", 3}}, {{"name", "e"}, {"content", ""}}})}}};
  auto c = mem::parse_config(cfg);
  EXPECT_EQ(c.models[0].meta.files[0].sha256, modelzoo::bus::Sha256::of(gen(3, 0, size)));
  EXPECT_EQ(c.models[0].meta.files[1].sha256, kEmptySha);
  EXPECT_EQ(c.models[0].meta.files[1].size, 0u);
  // Several generated files (hashed in parallel) each get their own hash.
  json files = json::array();
  for (int i = 0; i < 6; ++i) files.push_back({{"name", "part-" + std::to_string(i)}, {"size", 70000 + i}, {"seed", i}});
  auto many = mem::parse_config({{"models", {model("m", "1.0.0", files), model("m", "2.0.0", files)}}});
  for (const auto& m : many.models)
    for (int i = 0; i < 6; ++i) EXPECT_EQ(m.meta.files[i].sha256, modelzoo::bus::Sha256::of(gen(i, 0, 70000 + i))) << i;
  // Seed defaults to 0.
  json cfg0 = {{"models", {model("m", "1.0.0", {{{"name", "w"}, {"size", 10}}})}}};
  EXPECT_EQ(mem::parse_config(cfg0).models[0].meta.files[0].sha256, modelzoo::bus::Sha256::of(gen(0, 0, 10)));
}

TEST(MemoryModels, DeclaredShaIsAdvertised) {
  std::string fake(64, 'A');
  json cfg = {{"models", {model("m", "1.0.0", {{{"name", "f"}, {"content", "abc"}, {"declared_sha256", fake}}})}}};
  mem::Models ms(mem::parse_config(cfg));
  auto m = ms.metadata("m", "1.0.0");
  EXPECT_EQ(m.files[0].sha256, std::string(64, 'a'));
  EXPECT_EQ(ms.find("m", "1.0.0").files[0].sha256, kAbcSha);  // the real one is still known
  VectorSink sink(4096);
  ms.download({"m", "1.0.0", "f", 0}, sink);
  EXPECT_EQ(sink.bytes, "abc");  // the real bytes are served
}

TEST(MemoryModels, LatestIsTheHighestSemVer) {
  json cfg = {{"models",
               {model("m", "1.2.0"), model("m", "1.10.0-rc.1"), model("m", "1.10.0"), model("m", "1.9.9"),
                model("a/b", "0.0.1")}}};
  cfg["models"][2]["description"] = "newest";
  mem::Models ms(mem::parse_config(cfg));
  EXPECT_EQ(ms.metadata("m", "").version, "1.10.0");
  EXPECT_EQ(ms.metadata("m", "1.2.0").version, "1.2.0");
  auto list = ms.list();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].name, "a/b");
  EXPECT_EQ(list[1].name, "m");
  EXPECT_EQ(list[1].versions, (std::vector<std::string>{"1.10.0", "1.10.0-rc.1", "1.9.9", "1.2.0"}));
  EXPECT_EQ(list[1].description, "newest");
}

TEST(MemoryModels, NotFoundMessages) {
  mem::Models ms(mem::parse_config({{"models", {model("m", "1.0.0", {{{"name", "f"}, {"content", "x"}}})}}}));
  try {
    ms.metadata("x", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_STREQ(e.what(), "memory: no model 'x'");
  }
  try {
    ms.metadata("m", "1.2.3");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_STREQ(e.what(), "memory: no version '1.2.3' of model 'm'");
  }
  VectorSink sink(4096);
  EXPECT_EQ(code_of([&] { ms.download({"m", "1.0.0", "g", 0}, sink); }), ErrorCode::not_found);
  EXPECT_EQ(code_of([&] { ms.download({"m", "2.0.0", "f", 0}, sink); }), ErrorCode::not_found);
  EXPECT_EQ(code_of([&] { ms.download({"n", "1.0.0", "f", 0}, sink); }), ErrorCode::not_found);
}

TEST(MemoryModels, DownloadsFromAnOffsetInChunks) {
  const std::size_t size = 10000;
  mem::Models ms(mem::parse_config(
      {{"models", {model("m", "1.0.0", {{{"name", "w"}, {"size", size}, {"seed", 9}}, {{"name", "t"}, {"content", "hello world"}}})}}}));
  const std::string all = gen(9, 0, size);
  for (std::uint64_t off : {0u, 1u, 4095u, 4096u, 9999u, 10000u}) {
    VectorSink sink(4096);
    ms.download({"m", "1.0.0", "w", off}, sink);
    EXPECT_EQ(sink.bytes, all.substr(off)) << off;
    for (auto n : sink.writes) EXPECT_LE(n, 4096u);
  }
  VectorSink t(4096);
  ms.download({"m", "1.0.0", "t", 6}, t);
  EXPECT_EQ(t.bytes, "world");
  VectorSink small(3);  // pieces of chunk_size
  ms.download({"m", "1.0.0", "t", 0}, small);
  EXPECT_EQ(small.bytes, "hello world");
  EXPECT_EQ(small.writes, (std::vector<std::size_t>{3, 3, 3, 2}));
  VectorSink past(4096);
  EXPECT_EQ(code_of([&] { ms.download({"m", "1.0.0", "w", size + 1}, past); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([&] { ms.download({"m", "1.0.0", "t", 12}, past); }), ErrorCode::bad_request);
  EXPECT_TRUE(past.bytes.empty());
}

TEST(MemoryModels, SimulatedFailureAfterBytes) {
  json cfg = {{"models", {model("m", "1.0.0", {{{"name", "w"}, {"size", 10000}, {"seed", 1}}})}},
              {"fail_download_after_bytes", 3000}};
  mem::Models ms(mem::parse_config(cfg));
  const std::string all = gen(1, 0, 10000);
  VectorSink sink(1024);
  try {
    ms.download({"m", "1.0.0", "w", 500}, sink);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unavailable);
    EXPECT_STREQ(e.what(), "memory: simulated failure after 3000 bytes");
  }
  EXPECT_EQ(sink.bytes, all.substr(500, 3000));
  // When no more than N bytes remain, the download completes.
  VectorSink rest(1024);
  ms.download({"m", "1.0.0", "w", 7000}, rest);
  EXPECT_EQ(rest.bytes, all.substr(7000));
  // N = 0 fails at once.
  cfg["fail_download_after_bytes"] = 0;
  mem::Models zero(mem::parse_config(cfg));
  VectorSink none(1024);
  EXPECT_EQ(code_of([&] { zero.download({"m", "1.0.0", "w", 0}, none); }), ErrorCode::unavailable);
  EXPECT_TRUE(none.bytes.empty());
}

}  // namespace
