// Unit tests of the local-file plugin's logic (plugins/local-file/store.h): no processes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "local-file/store.h"
#include "vector_sink.h"

namespace {

namespace fs = std::filesystem;
namespace lf = modelzoo::plugins::local_file;
using modelzoo::sdk::Error;
using modelzoo::sdk::ErrorCode;
using nlohmann::json;

const std::string kAbcSha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
const std::string kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

class LocalFileStore : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-local-file-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "root";
    outside_ = base_ / "outside";
    fs::create_directories(root_);
    fs::create_directories(outside_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base_, ec);
  }

  static void put(const fs::path& p, const std::string& content) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
  }

  lf::Store store(const fs::path& root) {
    lf::Options o;
    o.root = root;
    o.log = [this](const char* level, const std::string& msg) {
      std::lock_guard lk(mu_);
      logs_.push_back(std::string(level) + " " + msg);
    };
    return lf::Store(o);
  }
  lf::Store store() { return store(root_); }

  bool logged(const std::string& needle) {
    std::lock_guard lk(mu_);
    for (const auto& l : logs_)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }

  static std::vector<std::string> file_names(const modelzoo::sdk::ModelMetadata& m) {
    std::vector<std::string> out;
    for (const auto& f : m.files) out.push_back(f.name);
    return out;
  }

  static ErrorCode code_of(const std::function<void()>& f, std::string* what = nullptr) {
    try {
      f();
    } catch (const Error& e) {
      if (what) *what = e.what();
      return e.code();
    }
    ADD_FAILURE() << "no error thrown";
    return ErrorCode::internal;
  }

  fs::path base_, root_, outside_;
  std::mutex mu_;
  std::vector<std::string> logs_;
};

TEST_F(LocalFileStore, ParsesConfig) {
  auto o = lf::parse_config({{"root", "/srv/models"}});
  EXPECT_EQ(o.root, fs::path("/srv/models"));
  EXPECT_EQ(o.metadata_file, "modelzoo.yaml");
  EXPECT_EQ(lf::parse_config({{"root", "/x"}, {"metadata_file", "meta.yml"}}).metadata_file, "meta.yml");
  EXPECT_TRUE(lf::parse_config({{"root", "rel"}}).root.is_absolute());
  EXPECT_EQ(code_of([] { lf::parse_config(json::object()); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([] { lf::parse_config({{"root", 5}}); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([] { lf::parse_config({{"root", ""}}); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([] { lf::parse_config({{"root", "/x"}, {"metadata_file", "../m.yaml"}}); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([] { lf::parse_config({{"root", "/x"}, {"metadata_file", 1}}); }), ErrorCode::bad_request);
}

TEST_F(LocalFileStore, ListsNestedModelsWithVersionsNewestFirst) {
  put(root_ / "acme/llama/1.0.0/weights.bin", "w1");
  put(root_ / "acme/llama/1.2.0/weights.bin", "w2");
  put(root_ / "acme/llama/1.10.0/weights.bin", "w3");
  put(root_ / "acme/llama/extra/2.0.0/x", "x");  // a model nested under another model's name
  put(root_ / "acme/llama/notes/readme", "n");    // no version dirs: not a model
  put(root_ / "tiny/0.1.0/a.txt", "a");
  put(root_ / "tiny/not-a-version/b.txt", "b");
  put(root_ / "tiny/1.0/c.txt", "c");  // not semver
  put(root_ / ".hidden/1.0.0/f", "f");
  put(root_ / "empty/README", "r");
  auto s = store();
  auto list = s.list();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "acme/llama");
  EXPECT_EQ(list[0].versions, (std::vector<std::string>{"1.10.0", "1.2.0", "1.0.0"}));
  EXPECT_EQ(list[1].name, "acme/llama/extra");
  EXPECT_EQ(list[1].versions, (std::vector<std::string>{"2.0.0"}));
  EXPECT_EQ(list[2].name, "tiny");
  EXPECT_EQ(list[2].versions, (std::vector<std::string>{"0.1.0"}));
  EXPECT_TRUE(s.exists("acme/llama", ""));
  EXPECT_TRUE(s.exists("acme/llama", "1.2.0"));
  EXPECT_FALSE(s.exists("acme/llama", "9.9.9"));
  EXPECT_FALSE(s.exists("acme", ""));
  EXPECT_FALSE(s.exists("empty", ""));
  EXPECT_FALSE(s.exists("acme/llama/notes", ""));
}

TEST_F(LocalFileStore, LatestIsTheHighestSemVer) {
  put(root_ / "m/1.2.0/f", "a");
  put(root_ / "m/1.10.0-rc.1/f", "b");
  put(root_ / "m/1.10.0/f", "c");
  put(root_ / "m/1.9.0/f", "d");
  auto s = store();
  EXPECT_EQ(s.metadata("m", "").version, "1.10.0");
  EXPECT_EQ(s.metadata("m", "1.10.0-rc.1").version, "1.10.0-rc.1");
  EXPECT_EQ(s.list().at(0).versions, (std::vector<std::string>{"1.10.0", "1.10.0-rc.1", "1.9.0", "1.2.0"}));
}

TEST_F(LocalFileStore, LatestIsAReleaseBeforeANewerPreRelease) {
  put(root_ / "m/1.9.0/f", "a");
  put(root_ / "m/2.0.0-rc.1/f", "b");
  put(root_ / "p/1.0.0-beta/f", "c");
  put(root_ / "p/1.0.0-alpha/f", "d");
  auto s = store();
  EXPECT_EQ(s.metadata("m", "").version, "1.9.0");
  EXPECT_EQ(s.metadata("m", "2.0.0-rc.1").version, "2.0.0-rc.1");
  EXPECT_EQ(s.metadata("p", "").version, "1.0.0-beta") << "only pre-releases: the newest of them";
}

TEST_F(LocalFileStore, MetadataFileAndFiles) {
  put(root_ / "acme/llama/1.0.0/modelzoo.yaml",
      "description: A llama\nauthor: ACME\nlicense: Apache-2.0\nformat: gguf\ntags: [chat, small]\n");
  put(root_ / "acme/llama/1.0.0/weights.bin", "abc");
  put(root_ / "acme/llama/1.0.0/sub/deeper/b.txt", "");
  put(root_ / "acme/llama/1.0.0/a.json", "{}");
  put(root_ / "acme/llama/1.0.0/a.z", "z");
  put(root_ / "acme/llama/1.0.0/.gitattributes", "x");  // not a valid file name: skipped
  put(root_ / "acme/llama/1.0.0/.git/config", "x");
  auto s = store();
  auto m = s.metadata("acme/llama", "1.0.0");
  EXPECT_EQ(m.name, "acme/llama");
  EXPECT_EQ(m.version, "1.0.0");
  EXPECT_EQ(m.description, "A llama");
  EXPECT_EQ(m.author, "ACME");
  EXPECT_EQ(m.license, "Apache-2.0");
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.tags, (std::vector<std::string>{"chat", "small"}));
  EXPECT_EQ(file_names(m), (std::vector<std::string>{"a.json", "a.z", "sub/deeper/b.txt", "weights.bin"}));
  EXPECT_EQ(m.files[3].size, 3u);
  EXPECT_EQ(m.files[3].sha256, kAbcSha);
  EXPECT_EQ(m.files[2].size, 0u);
  EXPECT_EQ(m.files[2].sha256, kEmptySha);
  EXPECT_TRUE(logged(".gitattributes"));
  EXPECT_NO_THROW(modelzoo::bus::ModelMetadata::from_json(m.to_json()));
  EXPECT_EQ(s.list().at(0).description, "A llama");
  // The metadata file is not a model file.
  VectorSink sink;
  EXPECT_EQ(code_of([&] { s.download({"acme/llama", "1.0.0", "modelzoo.yaml", 0}, sink); }), ErrorCode::not_found);
}

TEST_F(LocalFileStore, BadMetadataFileIsIgnored) {
  put(root_ / "m/1.0.0/modelzoo.yaml", "description: [unclosed\n");
  put(root_ / "m/1.0.0/f", "x");
  put(root_ / "n/1.0.0/modelzoo.yaml", "description: {a: 1}\ntags: 5\n");
  put(root_ / "n/1.0.0/f", "x");
  auto s = store();
  auto m = s.metadata("m", "");
  EXPECT_EQ(m.description, "");
  EXPECT_EQ(file_names(m), (std::vector<std::string>{"f"}));
  auto n = s.metadata("n", "");
  EXPECT_EQ(n.description, "");
  EXPECT_TRUE(n.tags.empty());
  EXPECT_TRUE(logged("'tags'"));
}

TEST_F(LocalFileStore, CustomMetadataFileName) {
  put(root_ / "m/1.0.0/meta.yml", "description: custom\n");
  put(root_ / "m/1.0.0/modelzoo.yaml", "description: default\n");
  lf::Options o;
  o.root = root_;
  o.metadata_file = "meta.yml";
  o.log = [](const char*, const std::string&) {};
  lf::Store s(o);
  auto m = s.metadata("m", "1.0.0");
  EXPECT_EQ(m.description, "custom");
  EXPECT_EQ(file_names(m), (std::vector<std::string>{"modelzoo.yaml"}));
}

TEST_F(LocalFileStore, RejectsHostileNames) {
  put(root_ / "m/1.0.0/f", "x");
  put(base_ / "secret", "s");
  auto s = store();
  VectorSink sink;
  for (std::string name : std::vector<std::string>{"..", "../root/m", "/etc", "m/..", "a/%2e%2e/b", "%2e%2e", std::string("m\0x", 3), "m/./x", "", "a//b"}) {
    EXPECT_EQ(code_of([&] { s.metadata(name, ""); }), ErrorCode::bad_request) << name;
    EXPECT_EQ(code_of([&] { s.exists(name, ""); }), ErrorCode::bad_request) << name;
    EXPECT_EQ(code_of([&] { s.download({name, "1.0.0", "f", 0}, sink); }), ErrorCode::bad_request) << name;
  }
  for (std::string version : std::vector<std::string>{"../1.0.0", "1.0.0/..", "1.0", std::string("1.0.0\0", 6), "latest"}) {
    EXPECT_EQ(code_of([&] { s.metadata("m", version); }), ErrorCode::bad_request) << version;
    EXPECT_EQ(code_of([&] { s.download({"m", version, "f", 0}, sink); }), ErrorCode::bad_request) << version;
  }
  for (std::string file : std::vector<std::string>{"../../../secret", "/etc/passwd", "sub/../f", "..", "%2e%2e/secret", std::string("f\0", 2),
                           "./f", ".hidden", ""}) {
    EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", file, 0}, sink); }), ErrorCode::bad_request) << file;
  }
  EXPECT_TRUE(sink.bytes.empty());
}

TEST_F(LocalFileStore, SymlinkedFileOutsideTheRootIsRefused) {
  put(root_ / "m/1.0.0/ok.bin", "ok");
  put(outside_ / "secret.txt", "secret");
  fs::create_symlink(outside_ / "secret.txt", root_ / "m/1.0.0/leak.txt");
  fs::create_symlink("../../../outside/secret.txt", root_ / "m/1.0.0/rel-leak.txt");
  auto s = store();
  auto m = s.metadata("m", "1.0.0");
  EXPECT_EQ(file_names(m), (std::vector<std::string>{"ok.bin"}));
  EXPECT_TRUE(logged("escapes the root"));
  VectorSink sink;
  std::string what;
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "leak.txt", 0}, sink); }, &what), ErrorCode::bad_request);
  EXPECT_NE(what.find("escapes the root"), std::string::npos) << what;
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "rel-leak.txt", 0}, sink); }), ErrorCode::bad_request);
  EXPECT_TRUE(sink.bytes.empty());
}

TEST_F(LocalFileStore, SymlinkedDirectoriesOutsideTheRootAreRefused) {
  put(root_ / "m/1.0.0/f", "x");
  put(outside_ / "ver/f", "secret");
  put(outside_ / "model/1.0.0/f", "secret");
  put(outside_ / "sub/g", "secret");
  fs::create_symlink(outside_ / "ver", root_ / "m/2.0.0");         // a version dir
  fs::create_symlink(outside_ / "model", root_ / "evil");          // a model dir
  fs::create_symlink(outside_ / "sub", root_ / "m/1.0.0/subdir");  // a dir among the files
  fs::create_symlink(outside_, root_ / "org");                     // an intermediate dir
  auto s = store();
  auto list = s.list();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].name, "m");
  EXPECT_EQ(list[0].versions, (std::vector<std::string>{"1.0.0"}));
  EXPECT_EQ(s.metadata("m", "").version, "1.0.0");  // 2.0.0 is skipped
  EXPECT_EQ(file_names(s.metadata("m", "1.0.0")), (std::vector<std::string>{"f"}));
  VectorSink sink;
  std::string what;
  EXPECT_EQ(code_of([&] { s.metadata("m", "2.0.0"); }, &what), ErrorCode::bad_request);
  EXPECT_NE(what.find("escapes the root"), std::string::npos) << what;
  EXPECT_EQ(code_of([&] { s.download({"m", "2.0.0", "f", 0}, sink); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([&] { s.metadata("evil", ""); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([&] { s.exists("evil", "1.0.0"); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([&] { s.metadata("org/model", "1.0.0"); }), ErrorCode::bad_request);
  EXPECT_EQ(code_of([&] { s.metadata("org/nothing", "1.0.0"); }), ErrorCode::bad_request);  // no probing outside
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "subdir/g", 0}, sink); }), ErrorCode::bad_request);
  EXPECT_TRUE(sink.bytes.empty());
}

TEST_F(LocalFileStore, SymlinksInsideTheRootAreAllowed) {
  put(root_ / "blobs/abc", "abc");
  put(root_ / "m/1.0.0/real.txt", "real");
  fs::create_symlink(root_ / "blobs/abc", root_ / "m/1.0.0/linked.bin");
  fs::create_symlink("1.0.0", root_ / "m/1.1.0");           // a version dir aliasing another
  fs::create_symlink(root_ / "blobs", root_ / "m/1.0.0/dir");  // a directory among the files
  fs::create_symlink(".", root_ / "m/1.0.0/loop");             // a cycle: skipped, no hang
  auto s = store();
  auto m = s.metadata("m", "1.0.0");
  EXPECT_EQ(file_names(m), (std::vector<std::string>{"dir/abc", "linked.bin", "real.txt"}));
  EXPECT_EQ(m.files[1].sha256, kAbcSha);
  EXPECT_EQ(s.metadata("m", "").version, "1.1.0");
  EXPECT_EQ(file_names(s.metadata("m", "1.1.0")), (std::vector<std::string>{"dir/abc", "linked.bin", "real.txt"}));
  VectorSink sink;
  s.download({"m", "1.1.0", "linked.bin", 0}, sink);
  EXPECT_EQ(sink.bytes, "abc");
}

TEST_F(LocalFileStore, DanglingSymlinkIsSkipped) {
  put(root_ / "m/1.0.0/f", "x");
  fs::create_symlink(root_ / "nowhere", root_ / "m/1.0.0/dangling");
  auto s = store();
  EXPECT_EQ(file_names(s.metadata("m", "1.0.0")), (std::vector<std::string>{"f"}));
  VectorSink sink;
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "dangling", 0}, sink); }), ErrorCode::not_found);
}

TEST_F(LocalFileStore, MissingRootServesNothing) {
  auto s = store(base_ / "does-not-exist");
  EXPECT_FALSE(s.root_available());
  EXPECT_TRUE(s.list().empty());
  EXPECT_FALSE(s.exists("m", ""));
  EXPECT_EQ(code_of([&] { s.metadata("m", ""); }), ErrorCode::not_found);
  // A root that appears later is picked up.
  put(base_ / "does-not-exist/m/1.0.0/f", "x");
  EXPECT_TRUE(s.root_available());
  EXPECT_EQ(s.list().size(), 1u);
  // A root that is a file serves nothing either.
  put(base_ / "file-root", "x");
  auto f = store(base_ / "file-root");
  EXPECT_FALSE(f.root_available());
  EXPECT_TRUE(f.list().empty());
}

TEST_F(LocalFileStore, NotFound) {
  put(root_ / "m/1.0.0/f", "x");
  auto s = store();
  VectorSink sink;
  std::string what;
  EXPECT_EQ(code_of([&] { s.metadata("nope", ""); }, &what), ErrorCode::not_found);
  EXPECT_EQ(what, "local-file: no model 'nope'");
  EXPECT_EQ(code_of([&] { s.metadata("m", "2.0.0"); }, &what), ErrorCode::not_found);
  EXPECT_EQ(what, "local-file: no version '2.0.0' of model 'm'");
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "g", 0}, sink); }, &what), ErrorCode::not_found);
  EXPECT_NE(what.find("'g'"), std::string::npos);
  EXPECT_EQ(code_of([&] { s.download({"m", "2.0.0", "f", 0}, sink); }), ErrorCode::not_found);
  EXPECT_EQ(code_of([&] { s.download({"n", "1.0.0", "f", 0}, sink); }), ErrorCode::not_found);
  // A name that points inside a version is not a model.
  put(root_ / "m/1.0.0/sub/3.0.0/g", "x");
  EXPECT_EQ(code_of([&] { s.metadata("m/1.0.0/sub", "3.0.0"); }), ErrorCode::not_found);
  // A directory is not a file.
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "sub", 0}, sink); }), ErrorCode::not_found);
}

TEST_F(LocalFileStore, DownloadsFromAnOffsetInChunks) {
  std::string content;
  for (int i = 0; i < 10000; ++i) content.push_back(static_cast<char>(i * 31 + 7));
  put(root_ / "m/1.0.0/w.bin", content);
  auto s = store();
  for (std::uint64_t off : {0u, 1u, 4095u, 4096u, 9999u, 10000u}) {
    VectorSink sink(4096);
    s.download({"m", "1.0.0", "w.bin", off}, sink);
    EXPECT_EQ(sink.bytes, content.substr(off)) << off;
    for (auto n : sink.writes) EXPECT_LE(n, 4096u);
  }
  VectorSink small(3000);
  s.download({"m", "1.0.0", "w.bin", 0}, small);
  EXPECT_EQ(small.writes, (std::vector<std::size_t>{3000, 3000, 3000, 1000}));
  VectorSink past;
  EXPECT_EQ(code_of([&] { s.download({"m", "1.0.0", "w.bin", 10001}, past); }), ErrorCode::bad_request);
}

TEST_F(LocalFileStore, ChangedFileIsRehashed) {
  put(root_ / "m/1.0.0/f", "abc");
  auto s = store();
  EXPECT_EQ(s.metadata("m", "").files.at(0).sha256, kAbcSha);
  auto n = s.hash_computations();
  EXPECT_EQ(s.metadata("m", "").files.at(0).sha256, kAbcSha);
  EXPECT_EQ(s.hash_computations(), n);  // cached
  put(root_ / "m/1.0.0/f", "abcd");     // new size
  auto m = s.metadata("m", "");
  EXPECT_EQ(m.files.at(0).size, 4u);
  EXPECT_EQ(m.files.at(0).sha256, "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
  EXPECT_EQ(s.hash_computations(), n + 1);
  // Same size, new content and mtime.
  put(root_ / "m/1.0.0/f", "xyzw");
  fs::last_write_time(root_ / "m/1.0.0/f", fs::file_time_type::clock::now() + std::chrono::seconds(5));
  EXPECT_NE(s.metadata("m", "").files.at(0).sha256, m.files.at(0).sha256);
  EXPECT_EQ(s.hash_computations(), n + 2);
  // Replaced by another file (new inode).
  put(root_ / "m/1.0.0/g", "abc");
  fs::rename(root_ / "m/1.0.0/g", root_ / "m/1.0.0/f");
  EXPECT_EQ(s.metadata("m", "").files.at(0).sha256, kAbcSha);
}

TEST_F(LocalFileStore, ConcurrentMetadataIsConsistent) {
  for (int i = 0; i < 8; ++i) put(root_ / ("m/1.0.0/f" + std::to_string(i)), std::string(100000 + i, 'a' + i));
  auto s = store();
  auto expected = s.metadata("m", "1.0.0").to_json();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i)
        if (s.metadata("m", "1.0.0").to_json() != expected) ++bad;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
