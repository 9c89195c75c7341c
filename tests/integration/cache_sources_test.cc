// hf-cache and ollama-store with the real daemon and plugin processes: layouts built on disk as
// huggingface_hub and ollama write them, pulled into an empty cache through the daemon's own
// local copy (local_read trusts the caches' roots), or streamed by the plugin, which killed
// mid-file fails over at the offset.
#include <gtest/gtest.h>

#include <fstream>

#include <atomic>
#include <csignal>

#include "loopback_util.h"
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

std::string read_all(const fs::path& p) { return slurp(p); }

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

// <root>/...library/tiny/latest: a model layer and a template, as ollama stores them.
std::pair<std::string, std::string> make_ollama(const fs::path& root) {
  std::string gguf(200 * 1024 + 3, 'g'), tmpl = "{{ .Prompt }}";
  put(root / "blobs" / ("sha256-" + sha_of(gguf)), gguf);
  put(root / "blobs" / ("sha256-" + sha_of(tmpl)), tmpl);
  std::string man = "{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:" +
                    sha_of(gguf) + "\",\"size\":" + std::to_string(gguf.size()) +
                    "},{\"mediaType\":\"application/vnd.ollama.image.template\",\"digest\":\"sha256:" + sha_of(tmpl) +
                    "\",\"size\":" + std::to_string(tmpl.size()) + "}]}";
  put(root / "manifests/registry.ollama.ai/library/tiny/latest", man);
  return {gguf, tmpl};
}

const char* const kOllamaConfig =
    "sources:\n  - name: oll\n    plugin: ollama-store\n    config: {path: '@DIR@/ollama'}\n    local_read: ['@DIR@/ollama']\n";

TEST(CacheSources, OllamaStoreModelIsCopiedLocallyByteIdentical) {
  Daemon d(std::string(kFastTimers) + kOllamaConfig, false);
  auto [gguf, tmpl] = make_ollama(d.dir() / "ollama");
  d.start();
  d.wait_plugin("oll");
  auto reply = d.client().pull("tiny");
  EXPECT_EQ(reply["version"], "0.0.0+latest");
  ASSERT_EQ(reply["files"].size(), 2u);
  for (const auto& f : reply["files"])
    EXPECT_EQ(read_all(f["path"].get<std::string>()), f["name"] == "model.gguf" ? gguf : tmpl) << f["name"];
  EXPECT_NE(d.log().find("copying 'model.gguf' of tiny:0.0.0+latest from "), std::string::npos) << d.log();
}

// A blob of the right size and other bytes (a disk error, a hand edit): the daemon's sha256
// refuses it, and nothing is published.
TEST(CacheSources, OllamaStoreCorruptedBlobIsRefused) {
  Daemon d(std::string(kFastTimers) + kOllamaConfig, false);
  auto [gguf, tmpl] = make_ollama(d.dir() / "ollama");
  put(d.dir() / "ollama" / "blobs" / ("sha256-" + sha_of(gguf)), std::string(gguf.size(), 'x'));
  d.start();
  d.wait_plugin("oll");
  auto e = pull_error(d, "tiny");
  EXPECT_NE(std::string(e.what()).find("sha256"), std::string::npos) << e.what();
  auto cached = run((bin_dir() / "modelzoo").string() + " --runtime-dir " + d.runtime_dir().string() + " list 2>&1");
  EXPECT_EQ(cached.out.find("tiny"), std::string::npos) << "nothing published: " << cached.out;
}

// Streamed by the plugin (no local_read): the plugin stopped then killed mid-file, the daemon
// takes the rest from the second source over the same store at the offset it had. The file
// is large (512 MiB, sparse on disk) so that the transfer is still running when the first
// progress message (100 ms) comes.
TEST(CacheSources, AnOllamaStorePluginKilledMidFileFailsOverAtTheOffset) {
  auto src = [](const char* name, int prio) {
    return std::string("  - name: ") + name + "\n    plugin: ollama-store\n    priority: " + std::to_string(prio) +
           "\n    config: {path: '@DIR@/ollama'}\n";
  };
  Daemon d(std::string(kFastTimers) + "sources:\n" + src("first", 50) + src("second", 10), false);
  fs::path root = d.dir() / "ollama";
  const std::uint64_t size = 512 * kMiB;
  bus::Sha256 h;
  std::string zeros(kMiB, '\0');
  for (std::uint64_t i = 0; i < size / kMiB; ++i) h.update(zeros.data(), zeros.size());
  const std::string hex = h.hex_digest();
  fs::create_directories(root / "blobs");
  { std::ofstream(root / "blobs" / ("sha256-" + hex)); }
  fs::resize_file(root / "blobs" / ("sha256-" + hex), size);
  put(root / "manifests/registry.ollama.ai/library/big/latest",
      "{\"schemaVersion\":2,\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:" + hex +
          "\",\"size\":" + std::to_string(size) + "}]}");
  d.start();
  pid_t first = d.wait_plugin("first")["pid"].get<pid_t>();
  d.wait_plugin("second");
  std::atomic<std::uint64_t> seen{0};
  BackgroundPull pull(d, "big", [&](const nlohmann::json& p) {
    if (p.value("source", "") == "first") seen = std::max<std::uint64_t>(seen, p.value("bytes", std::uint64_t{0}));
  });
  ASSERT_TRUE(wait_until([&] { return seen > 0; }, 60s)) << "no progress from the first source";
  ::kill(first, SIGSTOP);
  const std::uint64_t at_stop = seen;
  ::kill(first, SIGKILL);
  pull.join();
  ASSERT_EQ(pull.error, "");
  ASSERT_LT(at_stop, size) << "the file was done before the plugin was stopped: nothing was tested";
  EXPECT_EQ(pull.reply["source"], "second");
  EXPECT_LT(pull.reply["bytes_downloaded"].get<std::uint64_t>(), size + 64 * kMiB)
      << "the two sources together did not send the file once";
  const auto* f = file_of(pull.reply, "model.gguf");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(fs::file_size((*f)["path"].get<std::string>()), size);
  EXPECT_EQ((*f)["sha256"], hex);
}

}  // namespace
}  // namespace modelzoo::testing
