// hf-cache and ollama-store with the real daemon and plugin processes: layouts built on disk as
// huggingface_hub and ollama write them, pulled into an empty cache through the daemon's own
// local copy (local_read trusts the caches' roots).
#include <gtest/gtest.h>

#include <fstream>

#include "daemon_harness.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::testing {
namespace {

std::string sha_of(const std::string& s) {
  bus::Sha256 h;
  h.update(s.data(), s.size());
  return h.hex_digest();
}

void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

const std::string kCommit = "0123456789abcdef0123456789abcdef01234567";

// <dir>/hub/models--org--tiny: an LFS blob (sha256-named), a git blob (sha1-named), refs/main.
std::string make_hf(const fs::path& dir) {
  fs::path repo = dir / "hub" / "models--org--tiny";
  std::string w(300 * 1024 + 7, 'w');
  put(repo / "blobs" / sha_of(w), w);
  put(repo / "blobs" / "1111111111111111111111111111111111111111", "{\"a\":1}");
  put(repo / "refs" / "main", kCommit);
  fs::path snap = repo / "snapshots" / kCommit;
  fs::create_directories(snap);
  fs::create_symlink("../../blobs/" + sha_of(w), snap / "model.safetensors");
  fs::create_symlink("../../blobs/1111111111111111111111111111111111111111", snap / "config.json");
  return w;
}

std::string hf_config() {
  return std::string(kFastTimers) +
         "sources:\n  - name: hfc\n    plugin: hf-cache\n    config: {path: '@DIR@/hub'}\n    local_read: ['@DIR@/hub']\n";
}

TEST(CacheSources, HfCacheModelIsCopiedLocallyByteIdentical) {
  Daemon d(hf_config(), false);
  std::string w = make_hf(d.dir());
  d.start();
  d.wait_plugin("hfc");
  auto reply = d.client().pull("org/tiny");
  EXPECT_EQ(reply["version"], "0.0.0+" + kCommit);
  ASSERT_EQ(reply["files"].size(), 2u);
  for (const auto& f : reply["files"]) {
    std::string want = f["name"] == "config.json" ? std::string("{\"a\":1}") : w;
    EXPECT_EQ(read_all(f["path"].get<std::string>()), want) << f["name"];
  }
  EXPECT_NE(d.log().find("copying 'model.safetensors' of org/tiny:0.0.0+" + kCommit + " from "), std::string::npos)
      << "the daemon copies from the trusted HF cache itself";
}

TEST(CacheSources, HfCacheCorruptedBlobIsRefusedAndADanglingLinkReported) {
  Daemon d(hf_config(), false);
  std::string w = make_hf(d.dir());
  fs::path blob = d.dir() / "hub/models--org--tiny/blobs" / sha_of(w);
  std::string bad = w;
  bad[100] = 'X';
  put(blob, bad);  // same size, other bytes: the blob's name no longer is its sha256
  fs::create_symlink("../../blobs/" + std::string(64, 'a'), d.dir() / "hub/models--org--tiny/snapshots" / kCommit / "gone.bin");
  d.start();
  d.wait_plugin("hfc");
  try {
    d.client().pull("org/tiny");
    FAIL() << "a corrupted blob was accepted";
  } catch (const bus::Error& e) {
    EXPECT_NE(std::string(e.what()).find("has sha256"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(!fs::exists(d.cache_dir() / "models") || fs::is_empty(d.cache_dir() / "models"));
  EXPECT_NE(d.log().find("gone.bin': a dangling symlink"), std::string::npos) << d.log();
}

TEST(CacheSources, OllamaStoreModelIsCopiedLocallyByteIdentical) {
  Daemon d(std::string(kFastTimers) + "sources:\n  - name: oll\n    plugin: ollama-store\n    config: {path: '@DIR@/ollama'}\n"
                                      "    local_read: ['@DIR@/ollama']\n",
           false);
  fs::path root = d.dir() / "ollama";
  std::string gguf(200 * 1024 + 3, 'g'), tmpl = "{{ .Prompt }}";
  put(root / "blobs" / ("sha256-" + sha_of(gguf)), gguf);
  put(root / "blobs" / ("sha256-" + sha_of(tmpl)), tmpl);
  std::string man = "{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:" +
                    sha_of(gguf) + "\",\"size\":" + std::to_string(gguf.size()) +
                    "},{\"mediaType\":\"application/vnd.ollama.image.template\",\"digest\":\"sha256:" + sha_of(tmpl) +
                    "\",\"size\":" + std::to_string(tmpl.size()) + "}]}";
  put(root / "manifests/registry.ollama.ai/library/tiny/latest", man);
  d.start();
  d.wait_plugin("oll");
  auto reply = d.client().pull("tiny");
  EXPECT_EQ(reply["version"], "0.0.0+latest");
  ASSERT_EQ(reply["files"].size(), 2u);
  for (const auto& f : reply["files"])
    EXPECT_EQ(read_all(f["path"].get<std::string>()), f["name"] == "model.gguf" ? gguf : tmpl) << f["name"];
  EXPECT_NE(d.log().find("copying 'model.gguf' of tiny:0.0.0+latest from "), std::string::npos) << d.log();
}

}  // namespace
}  // namespace modelzoo::testing
