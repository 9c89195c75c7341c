// Extension hooks with the real daemon and real extension processes (docs/extensions.md):
// order, reject, crash, hang, replace, rewrite, load hooks, fail-closed, and the built-in
// extensions (format validator, decryption, decompression) on files the tests make.
#include <fstream>

#include "daemon_harness.h"
#include "model_files.h"
#include "modelzoo/bus/sha256.h"
#include "modelzoo/codec/crypt.h"
#include "modelzoo/codec/zstd.h"

namespace modelzoo::testing {
namespace {

std::string config_with(const std::string& sources) { return std::string(kFastTimers) + "sources:\n" + sources; }

// A source running the test extension.
std::string test_extension(const std::string& name, const std::string& points, const std::string& config,
                           const std::string& extra = "") {
  return "  - name: " + name + "\n    command: [\"@BIN@/modelzoo-test-extension\"]\n    kind: extension\n" +
         "    points: " + points + "\n" + extra + "    config:\n" + config;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const fs::path& p) {
  std::vector<std::string> out;
  std::ifstream in(p);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (!e.is_directory()) ++n;
  return n;
}

bus::Error pull_error(Daemon& d, const std::string& ref, const std::string& method = "pull") {
  try {
    d.client().call(method, {{"model", ref}}, 30s);
  } catch (const bus::Error& e) {
    return e;
  }
  ADD_FAILURE() << method << " of " << ref << " succeeded";
  return bus::Error(bus::ErrorCode::internal, "succeeded");
}

TEST(Extensions, HooksRunInOrderAtEveryPointAndArePublished) {
  std::string record = "      record: @DIR@/record.txt\n";
  Daemon d(config_with(memory_source("mem", 0, "demo/ordered") +
                       test_extension("late", "[pre-download, post-download, pre-load, post-load]", record, "    order: 20\n") +
                       test_extension("early-b", "[pre-download, post-download, pre-load, post-load]", record, "    order: 10\n") +
                       test_extension("early-a", "[pre-download, post-download, pre-load, post-load]", record, "    order: 10\n")));
  for (auto n : {"mem", "late", "early-b", "early-a"}) d.wait_plugin(n);
  EventSubscriber sub(d.runtime_dir().string(), {"extension.hook"});
  auto reply = d.client().load("demo/ordered");
  EXPECT_EQ(reply["files"].size(), 1u);
  auto lines = lines_of(d.dir() / "record.txt");
  std::vector<std::string> want;
  for (auto point : {"pre-download", "post-download", "pre-load", "post-load"})
    for (auto ext : {"early-a", "early-b", "late"})
      want.push_back(std::string(ext) + " " + point + " demo/ordered:" + (std::string(point) == "pre-download" ? "" : "1.0.0") +
                     " " + (std::string(point) == "pre-download" ? "" : "weights.bin,"));
  EXPECT_EQ(lines, want);
  int events = 0;
  while (auto e = sub.next(500ms)) {
    EXPECT_EQ(e->body["outcome"], "continue");
    EXPECT_TRUE(e->body.contains("duration_ms"));
    EXPECT_EQ(e->body["model"], "demo/ordered");
    ++events;
  }
  EXPECT_EQ(events, 12);
}

TEST(Extensions, RejectionAtPostDownloadFailsThePullAndCommitsNothing) {
  Daemon d(config_with(memory_source("mem", 0, "demo/bad") +
                       test_extension("judge", "[post-download]", "      mode: reject\n      reason: weights look wrong\n")));
  d.wait_plugin("mem");
  d.wait_plugin("judge");
  EventSubscriber sub(d.runtime_dir().string(), {"extension.hook", "model.download.failed"});
  auto e = pull_error(d, "demo/bad");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("extension 'judge' rejected 'demo/bad:1.0.0' at post-download: weights look wrong"),
            std::string::npos)
      << e.what();
  EXPECT_EQ(count_files(d.cache_dir() / "blobs"), 0u) << "the rejected file stays in the cache";
  EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  EXPECT_EQ(count_files(d.cache_dir() / "models"), 0u);
  EXPECT_EQ(count_files(d.cache_dir() / "staging"), 0u);
  bool hook_event = false, failed_event = false;
  while (auto ev = sub.next(500ms)) {
    if (ev->topic == "extension.hook")
      hook_event = ev->body["outcome"] == "rejected" && ev->body["extension"] == "judge" && ev->body["point"] == "post-download";
    if (ev->topic == "model.download.failed") failed_event = ev->body["error"]["code"] == "rejected";
  }
  EXPECT_TRUE(hook_event);
  EXPECT_TRUE(failed_event);
}

TEST(Extensions, RejectionAtPreDownloadDownloadsNothing) {
  Daemon d(config_with(memory_source("mem", 0, "demo/vetoed") +
                       test_extension("policy", "[pre-download]", "      mode: reject\n      reason: not on the allow list\n")));
  d.wait_plugin("mem");
  d.wait_plugin("policy");
  auto e = pull_error(d, "demo/vetoed:1.0.0");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("not on the allow list"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir()), 0u);
}

TEST(Extensions, PreDownloadMayRewriteTheRequest) {
  Daemon d(config_with(memory_source("mem", 0, "demo/real") +
                       test_extension("alias", "[pre-download]", "      mode: rewrite\n      rewrite_to: demo/real:1.0.0\n",
                                      "    handles: [\"alias/*\"]\n")));
  d.wait_plugin("mem");
  d.wait_plugin("alias");
  auto reply = d.client().pull("alias/anything");
  EXPECT_EQ(reply["name"], "demo/real");
  EXPECT_EQ(reply["version"], "1.0.0");
  // Outside its handles the extension is not asked.
  EXPECT_EQ(d.client().pull("demo/real")["name"], "demo/real");
}

TEST(Extensions, AnExtensionThatCrashesFailsTheStepAndIsRestarted) {
  Daemon d(config_with(memory_source("mem", 0, "demo/crash") +
                       test_extension("fragile", "[post-download]", "      mode: crash\n      once: @DIR@/crashed-once\n",
                                      "    restart: {stable_after_ms: 50}\n")));
  d.wait_plugin("mem");
  d.wait_plugin("fragile");
  auto e = pull_error(d, "demo/crash");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable) << e.what();
  EXPECT_NE(std::string(e.what()).find("extension 'fragile' failed at post-download of 'demo/crash:1.0.0'"), std::string::npos)
      << e.what();
  EXPECT_NE(std::string(e.what()).find("exited"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  ASSERT_TRUE(wait_until([&] { return d.plugin("fragile")["restarts"].get<int>() >= 1 && d.plugin("fragile")["state"] == "ready"; }));
  // The verified download was kept: the retry runs the hook again without fetching anything.
  auto reply = d.client().pull("demo/crash");
  EXPECT_EQ(reply["bytes_downloaded"], 0);
  EXPECT_TRUE(fs::is_regular_file(reply["files"][0]["path"].get<std::string>()));
}

TEST(Extensions, AnExtensionThatHangsIsTimedOutAndRestarted) {
  Daemon d(config_with(memory_source("mem", 0, "demo/hang") +
                       test_extension("stuck", "[post-download]", "      mode: hang\n", "    hook_timeout_ms: 500\n")));
  d.wait_plugin("mem");
  d.wait_plugin("stuck");
  auto e = pull_error(d, "demo/hang");
  EXPECT_EQ(e.code(), bus::ErrorCode::timeout) << e.what();
  EXPECT_NE(std::string(e.what()).find("extension 'stuck' failed at post-download"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  ASSERT_TRUE(wait_until([&] { return d.plugin("stuck")["restarts"].get<int>() >= 1; }));
  EXPECT_NE(d.log().find("did not finish a hook within 500 ms"), std::string::npos);
}

TEST(Extensions, AnExtensionErrorFailsTheStepWithItsMessage) {
  Daemon d(config_with(memory_source("mem", 0, "demo/err") + test_extension("buggy", "[post-download]", "      mode: error\n")));
  d.wait_plugin("mem");
  d.wait_plugin("buggy");
  auto e = pull_error(d, "demo/err");
  EXPECT_EQ(e.code(), bus::ErrorCode::internal);
  EXPECT_NE(std::string(e.what()).find("test extension failed on purpose"), std::string::npos) << e.what();
}

TEST(Extensions, ReplacedFilesAreCommittedAndTheDerivedModelIsCached) {
  Daemon d(config_with(memory_source("mem", 0, "demo/replaced") + test_extension("adder", "[post-download]", "      mode: replace\n")));
  d.wait_plugin("mem");
  d.wait_plugin("adder");
  auto reply = d.client().pull("demo/replaced");
  ASSERT_EQ(reply["files"].size(), 2u);
  EXPECT_EQ(reply["files"][1]["name"], "adder.txt");
  fs::path added = reply["files"][1]["path"].get<std::string>();
  EXPECT_EQ(read_text(added), "adder\n");
  EXPECT_EQ(reply["files"][1]["sha256"], bus::Sha256::of("adder\n"));
  EXPECT_EQ(count_files(d.cache_dir() / "staging"), 0u);
  auto manifest = nlohmann::json::parse(read_text(d.cache_dir() / "manifests/demo/replaced/1.0.0.json"));
  EXPECT_EQ(manifest["derived"]["source_files"].size(), 1u);
  EXPECT_EQ(manifest["derived"]["extensions"][0]["extension"], "adder");
  // The next pull finds the derived model: cached, nothing fetched, the hook not run again.
  auto again = d.client().pull("demo/replaced");
  EXPECT_EQ(again["cached"], true);
  EXPECT_EQ(again["files"].size(), 2u);
}

TEST(Extensions, AReplacementOutsideTheOutputDirectoryIsRefused) {
  for (std::string mode : {"escape", "symlink"}) {
    SCOPED_TRACE(mode);
    Daemon d(config_with(memory_source("mem", 0, "demo/escape") + test_extension("sly", "[post-download]", "      mode: " + mode + "\n")));
    d.wait_plugin("mem");
    d.wait_plugin("sly");
    auto e = pull_error(d, "demo/escape");
    EXPECT_EQ(e.code(), bus::ErrorCode::internal);
    EXPECT_NE(std::string(e.what()).find(mode == "escape" ? "outside its output directory" : "not a regular file"),
              std::string::npos)
        << e.what();
    EXPECT_EQ(count_files(d.cache_dir() / "manifests"), 0u);
  }
}

TEST(Extensions, LoadHooksMayVetoALoadOfACachedModel) {
  Daemon d(config_with(memory_source("mem", 0, "demo/loadveto") +
                       test_extension("gate", "[pre-load]", "      mode: reject\n      reason: not during business hours\n")));
  d.wait_plugin("mem");
  d.wait_plugin("gate");
  EXPECT_EQ(d.client().pull("demo/loadveto")["name"], "demo/loadveto");  // pulls are not load hooks' business
  EventSubscriber sub(d.runtime_dir().string(), {"model.load."});
  auto e = pull_error(d, "demo/loadveto", "load");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("at pre-load: not during business hours"), std::string::npos) << e.what();
  bool failed = false;
  while (auto ev = sub.next(500ms))
    if (ev->topic == "model.load.failed") failed = ev->body["error"]["code"] == "rejected";
  EXPECT_TRUE(failed);
}

TEST(Extensions, FormatsAndHandlesLimitWhereAnExtensionRuns) {
  Daemon d(config_with(memory_source("mem", 0, "demo/plain") +
                       test_extension("gguf-only", "[post-download]", "      mode: reject\n", "    formats: [gguf]\n") +
                       test_extension("other-models", "[post-download]", "      mode: reject\n", "    handles: [\"other/*\"]\n")));
  d.wait_plugin("mem");
  d.wait_plugin("gguf-only");
  d.wait_plugin("other-models");
  EXPECT_EQ(d.client().pull("demo/plain")["name"], "demo/plain");  // weights.bin: neither applies
}

TEST(Extensions, AStepFailsClosedWhileItsExtensionIsDown) {
  Daemon d(config_with(memory_source("mem", 0, "demo/guarded") +
                       "  - name: broken-validator\n    command: [\"/bin/false\"]\n    kind: extension\n"
                       "    restart: {max_failures: 1}\n"));
  d.wait_plugin("mem");
  d.wait_plugin("broken-validator", "failed");
  auto e = pull_error(d, "demo/guarded");
  EXPECT_EQ(e.code(), bus::ErrorCode::unavailable);
  EXPECT_NE(std::string(e.what()).find("extension 'broken-validator' is not running (failed"), std::string::npos) << e.what();
  EXPECT_EQ(count_files(d.cache_dir()), 0u);
}

// The example extension of docs/extensions.md, as printed there.
TEST(Extensions, TheDocumentedExampleEnforcesALicenseAllowList) {
  std::string doc = read_text(fs::path(MODELZOO_SOURCE_DIR) / "docs/extensions.md");
  std::string code = read_text(fs::path(MODELZOO_SOURCE_DIR) / "examples/license-policy/main.cc");
  auto body = code.substr(code.find("#include <set>"));
  EXPECT_NE(doc.find(body), std::string::npos) << "docs/extensions.md no longer prints examples/license-policy/main.cc";
  auto model = [](const std::string& name, const std::string& license) {
    return "        - name: " + name + "\n          version: 1.0.0\n          license: " + license +
           "\n          files:\n            - name: w.bin\n              content: abc\n";
  };
  Daemon d(config_with("  - name: mem\n    plugin: memory\n    config:\n      models:\n" + model("lic/mit", "MIT") +
                       model("lic/gpl", "GPL-3.0-only") +
                       "  - name: licenses\n    command: [\"@BIN@/modelzoo-example-license-policy\"]\n    kind: extension\n"
                       "    config: {allow: [MIT, Apache-2.0]}\n"));
  d.wait_plugin("mem");
  d.wait_plugin("licenses");
  EXPECT_EQ(d.client().pull("lic/mit")["name"], "lic/mit");
  auto e = pull_error(d, "lic/gpl");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("license 'GPL-3.0-only' is not on the allow list"), std::string::npos) << e.what();
}

// ---- built-in extensions, on real files the tests make, served by the local-file registry

// A daemon whose local-file source serves `root` (laid out <model>/<version>/<files>) and
// runs the built-in extensions given as YAML source entries.
std::string local_models(const fs::path& root, const std::string& extensions) {
  return config_with("  - name: files\n    plugin: local-file\n    config:\n      root: " + root.string() + "\n" + extensions);
}
const char* kValidator = "  - name: validate\n    plugin: format-validator\n";
const char* kDecompress = "  - name: decompress\n    plugin: decompress\n";
std::string decrypt_with(const std::vector<fs::path>& keys) {
  std::string s = "  - name: decrypt\n    plugin: decrypt\n    config:\n      keys:\n";
  for (const auto& k : keys) s += "        - " + k.string() + "\n";
  return s;
}

struct ModelTree {
  fs::path root;
  ModelTree() {
    char tmpl[] = "/tmp/modelzoo-models-XXXXXX";
    root = ::mkdtemp(tmpl);
  }
  ~ModelTree() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  fs::path file(const std::string& model, const std::string& name) const { return root / model / "1.0.0" / name; }
  fs::path add(const std::string& model, const std::string& name, std::string_view bytes) const {
    fs::path p = file(model, name);
    fs::create_directories(p.parent_path());
    write_file(p, bytes);
    return p;
  }
};

std::string sha_of(std::string_view bytes) { return bus::Sha256::of(bytes); }

void expect_nothing_cached(Daemon& d, const std::string& model) {
  EXPECT_FALSE(fs::exists(d.cache_dir() / "manifests" / model)) << model;
  EXPECT_FALSE(fs::exists(d.cache_dir() / "models" / model)) << model;
  EXPECT_EQ(count_files(d.cache_dir() / "staging"), 0u);
}

TEST(BuiltinExtensions, ValidatorPassesValidFilesAndNamesTheRuleEachBrokenFileBreaks) {
  ModelTree tree;
  tree.add("fmt/valid", "model.safetensors", valid_safetensors());
  tree.add("fmt/valid", "model.gguf", valid_gguf());
  tree.add("fmt/valid", "model.onnx", valid_onnx());
  tree.add("fmt/valid", "README.md", "not checked\n");
  auto broken = broken_files();
  ASSERT_GE(broken.size(), 15u);
  for (std::size_t i = 0; i < broken.size(); ++i)
    tree.add("fmt/broken-" + std::to_string(i), "model." + broken[i].format, broken[i].bytes);
  Daemon d(local_models(tree.root, kValidator));
  d.wait_plugin("files");
  d.wait_plugin("validate");
  auto ok = d.client().pull("fmt/valid");
  EXPECT_EQ(ok["files"].size(), 4u);
  std::set<std::string> rules_seen;
  for (std::size_t i = 0; i < broken.size(); ++i) {
    const auto& b = broken[i];
    SCOPED_TRACE(b.label);
    std::string model = "fmt/broken-" + std::to_string(i);
    auto e = pull_error(d, model);
    EXPECT_EQ(e.code(), bus::ErrorCode::rejected) << e.what();
    // "<format> rule <n>" for the rule id "<format>.<n>"
    std::string rule = b.format + " rule " + b.rule.substr(b.rule.find('.') + 1) + ":";
    EXPECT_NE(std::string(e.what()).find("model." + b.format + ": " + rule), std::string::npos) << e.what();
    expect_nothing_cached(d, model);
    rules_seen.insert(b.rule);
  }
  // Every rule of the reference is exercised through the daemon.
  for (auto r : {"safetensors.1", "safetensors.2", "safetensors.3", "safetensors.4", "safetensors.5", "safetensors.6",
                 "gguf.1", "gguf.2", "gguf.3", "gguf.4", "gguf.5", "onnx.1", "onnx.2", "onnx.3", "onnx.4"})
    EXPECT_TRUE(rules_seen.count(r)) << r;
}

TEST(BuiltinExtensions, OnnxExternalDataMustBeAFileOfTheModelAndFit) {
  ModelTree tree;
  tree.add("onnx/external", "model.onnx", onnx_with_external_data("weights.bin", 0, 4096));
  tree.add("onnx/external", "weights.bin", std::string(4096, '\1'));
  tree.add("onnx/short", "model.onnx", onnx_with_external_data("weights.bin", 1024, 4096));
  tree.add("onnx/short", "weights.bin", std::string(4096, '\1'));
  tree.add("onnx/missing", "model.onnx", onnx_with_external_data("elsewhere.bin", 0, 16));
  Daemon d(local_models(tree.root, kValidator));
  d.wait_plugin("files");
  d.wait_plugin("validate");
  EXPECT_EQ(d.client().pull("onnx/external")["files"].size(), 2u);
  for (auto m : {"onnx/short", "onnx/missing"}) {
    auto e = pull_error(d, m);
    EXPECT_EQ(e.code(), bus::ErrorCode::rejected) << e.what();
    EXPECT_NE(std::string(e.what()).find("onnx rule 4"), std::string::npos) << e.what();
  }
}

TEST(BuiltinExtensions, EncryptedModelsAreDecryptedIntoTheCacheAndTamperingIsRejected) {
  ModelTree tree;
  fs::path keys = tree.root / "keys";
  fs::create_directories(keys);
  auto key = codec::generate_key(), other = codec::generate_key();
  codec::write_key_file(keys / "k1", key);
  codec::write_key_file(keys / "k2", other);
  std::string plain = valid_safetensors();
  fs::path plain_file = keys / "model.safetensors";
  write_file(plain_file, plain);
  for (auto m : {"enc/good", "enc/tampered", "enc/wrong-key"}) {
    fs::create_directories(tree.file(m, "x").parent_path());
    codec::encrypt_file(plain_file, tree.file(m, "model.safetensors.enc"), std::string(m) == "enc/wrong-key" ? other : key);
  }
  {  // flip one byte in the middle of the ciphertext
    std::fstream f(tree.file("enc/tampered", "model.safetensors.enc"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c;
    f.read(&c, 1);
    f.seekp(100);
    c = static_cast<char>(c ^ 0x20);
    f.write(&c, 1);
  }
  Daemon d(local_models(tree.root, decrypt_with({keys / "k1"}) + kValidator));
  for (auto n : {"files", "decrypt", "validate"}) d.wait_plugin(n);
  auto reply = d.client().pull("enc/good");
  ASSERT_EQ(reply["files"].size(), 1u);
  EXPECT_EQ(reply["files"][0]["name"], "model.safetensors");
  EXPECT_EQ(reply["files"][0]["sha256"], sha_of(plain));
  EXPECT_EQ(read_text(reply["files"][0]["path"].get<std::string>()), plain);
  // The ciphertext does not stay in the cache beside the plain file.
  EXPECT_EQ(count_files(d.cache_dir() / "blobs"), 1u);

  auto tampered = pull_error(d, "enc/tampered");
  EXPECT_EQ(tampered.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(tampered.what()).find("model.safetensors.enc: "), std::string::npos) << tampered.what();
  EXPECT_NE(std::string(tampered.what()).find("tampered"), std::string::npos) << tampered.what();
  expect_nothing_cached(d, "enc/tampered");

  auto wrong = pull_error(d, "enc/wrong-key");
  EXPECT_EQ(wrong.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(wrong.what()).find(other.id), std::string::npos) << wrong.what();
  expect_nothing_cached(d, "enc/wrong-key");
  EXPECT_EQ(count_files(d.cache_dir() / "blobs"), 1u) << "a rejected download stays in the cache";
}

TEST(BuiltinExtensions, CompressedModelsAreStoredUnderTheirPlainNamesAndHashes) {
  ModelTree tree;
  std::string gguf = valid_gguf();
  fs::path plain_file = tree.root / "model.gguf";
  write_file(plain_file, gguf);
  fs::create_directories(tree.file("zst/good", "x").parent_path());
  codec::compress_file(plain_file, tree.file("zst/good", "model.gguf.zst"));
  tree.add("zst/good", "LICENSE", "MIT\n");
  tree.add("zst/corrupt", "model.gguf.zst", std::string("\x28\xb5\x2f\xfd", 4) + std::string(64, '\x7f'));
  Daemon d(local_models(tree.root, std::string(kDecompress) + kValidator));
  for (auto n : {"files", "decompress", "validate"}) d.wait_plugin(n);
  auto reply = d.client().pull("zst/good");
  ASSERT_EQ(reply["files"].size(), 2u);
  std::map<std::string, nlohmann::json> by_name;
  for (const auto& f : reply["files"]) by_name[f["name"]] = f;
  ASSERT_TRUE(by_name.count("model.gguf")) << reply.dump();
  EXPECT_EQ(by_name["model.gguf"]["sha256"], sha_of(gguf));
  EXPECT_EQ(by_name["model.gguf"]["size"], gguf.size());
  EXPECT_EQ(read_text(by_name["model.gguf"]["path"].get<std::string>()), gguf);
  EXPECT_EQ(d.client().pull("zst/good")["cached"], true);

  auto e = pull_error(d, "zst/corrupt");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected) << e.what();
  EXPECT_NE(std::string(e.what()).find("model.gguf.zst: "), std::string::npos) << e.what();
  expect_nothing_cached(d, "zst/corrupt");
}

TEST(BuiltinExtensions, DecryptThenDecompressThenValidateInOrder) {
  ModelTree tree;
  fs::path work = tree.root / "work";
  fs::create_directories(work);
  auto key = codec::generate_key();
  codec::write_key_file(work / "key", key);
  // A valid model and a broken one (rule safetensors.6: a byte too many), each compressed
  // then encrypted: only the validator, running last, can tell them apart.
  std::string broken = valid_safetensors() + "x";
  for (auto [model, bytes] : {std::pair<std::string, std::string>{"chain/good", valid_safetensors()}, {"chain/bad", broken}}) {
    write_file(work / "m.safetensors", bytes);
    codec::compress_file(work / "m.safetensors", work / "m.safetensors.zst");
    fs::create_directories(tree.file(model, "x").parent_path());
    codec::encrypt_file(work / "m.safetensors.zst", tree.file(model, "model.safetensors.zst.enc"), key);
    fs::remove(work / "m.safetensors.zst");
  }
  Daemon d(local_models(tree.root, std::string(kValidator) + kDecompress + decrypt_with({work / "key"})));
  for (auto n : {"files", "decompress", "validate", "decrypt"}) d.wait_plugin(n);
  EventSubscriber sub(d.runtime_dir().string(), {"extension.hook"});
  auto reply = d.client().pull("chain/good");
  ASSERT_EQ(reply["files"].size(), 1u);
  EXPECT_EQ(reply["files"][0]["name"], "model.safetensors");
  EXPECT_EQ(reply["files"][0]["sha256"], sha_of(valid_safetensors()));
  std::vector<std::string> order;
  while (auto e = sub.next(500ms)) order.push_back(e->body["extension"].get<std::string>() + ":" + e->body["outcome"].get<std::string>());
  EXPECT_EQ(order, (std::vector<std::string>{"decrypt:replace", "decompress:replace", "validate:continue"}));
  auto manifest = nlohmann::json::parse(read_text(d.cache_dir() / "manifests/chain/good/1.0.0.json"));
  EXPECT_EQ(manifest["derived"]["source_files"][0]["name"], "model.safetensors.zst.enc");

  auto e = pull_error(d, "chain/bad");
  EXPECT_EQ(e.code(), bus::ErrorCode::rejected);
  EXPECT_NE(std::string(e.what()).find("extension 'validate' rejected"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("safetensors rule 6"), std::string::npos) << e.what();
  expect_nothing_cached(d, "chain/bad");
}

}  // namespace
}  // namespace modelzoo::testing
