// Unit tests of the hf-cache and ollama-store plugins' logic (plugins/caches/): layouts built
// on disk the way huggingface_hub and ollama write them; no processes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "caches/hf_cache.h"
#include "caches/ollama_store.h"
#include "modelzoo/bus/sha256.h"
#include "vector_sink.h"

namespace {

namespace fs = std::filesystem;
namespace hc = modelzoo::plugins::hf_cache;
namespace os = modelzoo::plugins::ollama_store;
using modelzoo::sdk::Error;
using modelzoo::sdk::ErrorCode;
using nlohmann::json;

std::string sha256(const std::string& s) {
  modelzoo::bus::Sha256 h;
  h.update(s.data(), s.size());
  return h.hex_digest();
}

void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";
const std::string kOld = "fedcba9876543210fedcba9876543210fedcba98";
const std::string kGitSha1 = "1111111111111111111111111111111111111111";

class Dirs : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("cache_stores_test." + std::to_string(::getpid()) + "." +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    fs::create_directories(base_);
    logger_ = [this](const char*, const std::string& m) { logs_ += m + "\n"; };
  }
  void TearDown() override { fs::remove_all(base_); }
  fs::path base_;
  std::string logs_;
  modelzoo::plugins::caches::LogFn logger_;
};

// models--org--tiny as huggingface_hub writes it: an LFS blob named by its sha256, a git file
// named by its sha1, a nested file, refs/main, and an older snapshot.
class HfCache : public Dirs {
 protected:
  void SetUp() override {
    Dirs::SetUp();
    repo_ = base_ / "hub" / "models--org--tiny";
    weights_ = std::string(5000, 'w');
    put(repo_ / "blobs" / sha256(weights_), weights_);
    put(repo_ / "blobs" / kGitSha1, "{\"a\":1}");
    put(repo_ / "refs" / "main", kCommit);
    fs::path snap = repo_ / "snapshots" / kCommit;
    fs::create_directories(snap / "sub");
    fs::create_symlink("../../blobs/" + sha256(weights_), snap / "model.safetensors");
    fs::create_symlink("../../blobs/" + kGitSha1, snap / "config.json");
    fs::create_symlink("../../../blobs/" + kGitSha1, snap / "sub" / "nested.json");
    fs::create_directories(repo_ / "snapshots" / kOld);
    fs::create_symlink("../../blobs/" + kGitSha1, repo_ / "snapshots" / kOld / "config.json");
  }
  hc::Store store(json extra = json::object()) {
    extra["path"] = (base_ / "hub").string();
    hc::Options o = hc::parse_config(extra);
    o.log = logger_;
    return hc::Store(std::move(o));
  }
  fs::path repo_;
  std::string weights_;
};

TEST_F(HfCache, RootFromConfigThenEnvironment) {
  std::map<std::string, std::string> env;
  auto get = [&](const char* k) -> const char* { return env.count(k) ? env[k].c_str() : nullptr; };
  env["HOME"] = "/h";
  EXPECT_EQ(hc::parse_config(json::object(), get).root, "/h/.cache/huggingface/hub");
  env["HF_HOME"] = "/hh";
  EXPECT_EQ(hc::parse_config(json::object(), get).root, "/hh/hub");
  env["HF_HUB_CACHE"] = "/c";
  EXPECT_EQ(hc::parse_config(json::object(), get).root, "/c");
  EXPECT_EQ(hc::parse_config({{"path", "/p"}}, get).root, "/p");
  EXPECT_THROW(hc::parse_config({{"path", 3}}, get), Error);
}

TEST_F(HfCache, MainResolvesThroughRefsToItsCommit) {
  auto s = store();
  auto m = s.metadata("org/tiny", "");
  EXPECT_EQ(m.version, "0.0.0+" + kCommit);
  ASSERT_EQ(m.files.size(), 3u);
  EXPECT_EQ(m.files[0].name, "config.json");
  EXPECT_EQ(m.files[0].sha256, sha256("{\"a\":1}"));  // a git blob: hashed, not its sha1 name
  EXPECT_EQ(m.files[1].name, "model.safetensors");
  EXPECT_EQ(m.files[1].sha256, sha256(weights_));
  EXPECT_EQ(m.files[1].size, 5000u);
  EXPECT_EQ(m.files[1].local_path, fs::canonical(repo_ / "blobs" / sha256(weights_)).string());
  EXPECT_EQ(m.files[2].name, "sub/nested.json");
  // The git blob is hashed once for both names and both calls.
  s.metadata("org/tiny", "");
  EXPECT_EQ(s.hash_computations(), 1u);
  EXPECT_EQ(s.metadata("org/tiny", "0.0.0+" + kOld).files.size(), 1u);
}

TEST_F(HfCache, ListsCommitsWithTheRefFirst) {
  auto l = store({{"prefix", "hf"}}).list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].name, "hf/org/tiny");
  ASSERT_EQ(l[0].versions.size(), 2u);
  EXPECT_EQ(l[0].versions[0], "0.0.0+" + kCommit);
  EXPECT_TRUE(store({{"prefix", "hf/"}}).exists("hf/org/tiny", ""));
  EXPECT_FALSE(store({{"prefix", "hf/"}}).exists("org/tiny", ""));
}

TEST_F(HfCache, DownloadsFromAnOffset) {
  VectorSink sink(1000);
  store().download({"org/tiny", "0.0.0+" + kCommit, "model.safetensors", 4000}, sink);
  EXPECT_EQ(sink.bytes, weights_.substr(4000));
}

TEST_F(HfCache, SkipsDanglingAndIncompleteWithALogLine) {
  fs::path snap = repo_ / "snapshots" / kCommit;
  fs::create_symlink("../../blobs/" + std::string(64, 'a'), snap / "gone.bin");
  put(repo_ / "blobs" / (std::string(64, 'b') + ".incomplete"), "part");
  fs::create_symlink("../../blobs/" + std::string(64, 'b') + ".incomplete", snap / "partial.bin");
  auto m = store().metadata("org/tiny", "");
  EXPECT_EQ(m.files.size(), 3u);
  EXPECT_NE(logs_.find("gone.bin': a dangling symlink"), std::string::npos) << logs_;
  EXPECT_NE(logs_.find("partial.bin': its blob is still downloading"), std::string::npos) << logs_;
}

TEST_F(HfCache, RefusesHostileNamesAndEscapingSymlinks) {
  auto s = store();
  for (std::string bad : {"../x", "/abs", "org/../tiny", "a/b--c"}) EXPECT_FALSE([&] {
      try { s.metadata(bad, ""); } catch (const Error& e) { return e.code() != ErrorCode::bad_request; }
      return true;
    }()) << bad;
  put(base_ / "secret", "s");
  fs::create_symlink(base_ / "secret", repo_ / "snapshots" / kCommit / "leak");
  try {
    s.metadata("org/tiny", "");
    FAIL() << "an escaping symlink was served";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request);
    EXPECT_NE(std::string(e.what()).find("leads outside"), std::string::npos) << e.what();
  }
}

TEST_F(HfCache, AllowAndIgnorePatterns) {
  auto m = store({{"allow_patterns", json::array({"*.json"})}, {"ignore_patterns", "sub/*"}}).metadata("org/tiny", "");
  ASSERT_EQ(m.files.size(), 1u);
  EXPECT_EQ(m.files[0].name, "config.json");
}

TEST_F(HfCache, NeverWritesIntoTheCache) {
  auto before = fs::last_write_time(repo_ / "blobs");
  store().metadata("org/tiny", "");
  EXPECT_EQ(std::distance(fs::directory_iterator(repo_ / "blobs"), fs::directory_iterator{}), 2);
  EXPECT_EQ(fs::last_write_time(repo_ / "blobs"), before);
}

class OllamaStore : public Dirs {
 protected:
  void SetUp() override {
    Dirs::SetUp();
    root_ = base_ / "models";
    gguf_ = std::string(3000, 'g');
    tmpl_ = "{{ .Prompt }}";
    config_ = "{\"model_format\":\"gguf\"}";
    for (const auto* b : {&gguf_, &tmpl_, &config_}) put(root_ / "blobs" / ("sha256-" + sha256(*b)), *b);
    auto layer = [](const std::string& kind, const std::string& b) {
      return json{{"mediaType", "application/vnd.ollama.image." + kind}, {"digest", "sha256:" + sha256(b)}, {"size", b.size()}};
    };
    json man = {{"schemaVersion", 2},
                {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
                {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"}, {"digest", "sha256:" + sha256(config_)}, {"size", config_.size()}}},
                {"layers", json::array({layer("model", gguf_), layer("template", tmpl_), layer("license", tmpl_)})}};
    put(root_ / "manifests/registry.ollama.ai/library/tiny/latest", man.dump());
    put(root_ / "manifests/registry.ollama.ai/library/tiny/1b", man.dump());
    put(root_ / "manifests/registry.ollama.ai/library/tiny/q4_K_M", man.dump());
  }
  os::Store store() {
    os::Options o = os::parse_config({{"path", root_.string()}});
    o.log = logger_;
    return os::Store(std::move(o));
  }
  fs::path root_;
  std::string gguf_, tmpl_, config_;
};

TEST_F(OllamaStore, LayerNamesByMediaType) {
  EXPECT_EQ(os::layer_file_name("application/vnd.ollama.image.model", {}), "model.gguf");
  EXPECT_EQ(os::layer_file_name("application/vnd.ollama.image.params", {}), "params.json");
  EXPECT_EQ(os::layer_file_name("application/vnd.ollama.image.license", {"license"}), "license-2");
  EXPECT_EQ(os::layer_file_name("application/vnd.ollama.image.adapter", {"adapter.gguf"}), "adapter-2.gguf");
  EXPECT_EQ(os::layer_file_name("text/../x", {}), "layer");
}

TEST_F(OllamaStore, TagsAreVersionsAndDigestsAreTheSha256) {
  auto s = store();
  auto m = s.metadata("tiny", "");
  EXPECT_EQ(m.version, "0.0.0+latest");
  ASSERT_EQ(m.files.size(), 4u);
  EXPECT_EQ(m.files[0].name, "config.json");
  EXPECT_EQ(m.files[1].name, "license");
  EXPECT_EQ(m.files[2].name, "model.gguf");
  EXPECT_EQ(m.files[2].sha256, sha256(gguf_));
  EXPECT_EQ(m.files[2].local_path, fs::canonical(root_ / "blobs" / ("sha256-" + sha256(gguf_))).string());
  EXPECT_EQ(m.files[3].name, "template");
  EXPECT_EQ(s.metadata("library/tiny", "0.0.0+1b").version, "0.0.0+1b");
  auto l = s.list();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].name, "tiny");
  EXPECT_EQ(l[0].versions, (std::vector<std::string>{"0.0.0+latest", "0.0.0+1b", "0.0.0+q4--K--M"}));
  // a tag with '_': '--' in its version, read back as '_'
  EXPECT_EQ(s.metadata("tiny", "0.0.0+q4--K--M").version, "0.0.0+q4--K--M");
  EXPECT_THROW(s.metadata("tiny", "0.0.0+q4-K-M"), Error);
  VectorSink sink(700);
  s.download({"tiny", "0.0.0+latest", "model.gguf", 10}, sink);
  EXPECT_EQ(sink.bytes, gguf_.substr(10));
}

TEST_F(OllamaStore, MissingOrShortBlobIsReportedClearly) {
  fs::resize_file(root_ / "blobs" / ("sha256-" + sha256(gguf_)), 10);
  try {
    store().metadata("tiny", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.gguf has 10 bytes, the manifest says 3000"), std::string::npos) << e.what();
  }
  fs::remove(root_ / "blobs" / ("sha256-" + sha256(gguf_)));
  try {
    store().metadata("tiny", "");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is missing from the store"), std::string::npos) << e.what();
  }
}

TEST_F(OllamaStore, RefusesHostileNames) {
  auto s = store();
  for (std::string bad : {"../x", "/abs", "a/../b"}) {
    try {
      s.metadata(bad, "");
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request) << bad;
    }
  }
  fs::create_symlink(base_ / "outside", root_ / "manifests/registry.ollama.ai/library/tiny/evil");
  put(base_ / "outside", "{}");
  try {
    s.metadata("tiny", "0.0.0+evil");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request) << e.what();
  }
}

}  // namespace
