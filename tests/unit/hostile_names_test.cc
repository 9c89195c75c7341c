// Hostile names and paths, everywhere a name from outside becomes a path or a URL: model
// names, versions, file names inside a model, plugin/source names. One shared table of hostile
// inputs goes through the name checks (bus/names.h) and through the real path builders that
// rely on them: model references, metadata from a plugin, `modelzoo cache remove`, the
// local-file store, the remote plugin's URL encoding, configuration source and manifest names.
// Every refusal is a clear error naming the problem, and nothing is created or removed outside
// the directory under test (a sentinel beside it stays untouched).
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <functional>
#include <set>
#include <fstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "modelzoo/config/config.h"
#include "local-file/store.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/model.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/core/cache.h"
#include "modelzoo/core/cache_admin.h"
#include "modelzoo/http.h"
#include "vector_sink.h"

namespace fs = std::filesystem;
namespace bus = modelzoo::bus;
namespace core = modelzoo::core;
namespace lf = modelzoo::plugins::local_file;
namespace sv = modelzoo::supervisor;
using bus::ErrorCode;

namespace {

struct Hostile {
  std::string label;
  std::string value;
};

// The shared table. Each of these must be refused as a model name, a version, a file name and
// a plugin/source name.
const std::vector<Hostile>& hostile_inputs() {
  static const std::vector<Hostile> table = {
      {"dot-dot", ".."},
      {"dot-dot-slash", "../x"},
      {"deep escape", "../../../../../../etc/passwd"},
      {"absolute", "/abs"},
      {"absolute etc", "/etc/passwd"},
      {"middle escape", "a/../../b"},
      {"dot segment", "a/./b"},
      {"trailing dot-dot", "a/.."},
      {"empty segment", "a//b"},
      {"trailing slash", "a/"},
      {"NUL inside", std::string("ok\0/../x", 8)},
      {"NUL at end", std::string("ok\0", 3)},
      {"backslash", "a\\..\\b"},
      {"backslash escape", "..\\..\\x"},
      {"very long", std::string(4097, 'a')},
      {"very long path", [] {
         std::string s;
         for (int i = 0; i < 600; ++i) s += "abcdefg/";
         return s + "z";
       }()},
      {"fullwidth solidus", "a\xef\xbc\x8f..\xef\xbc\x8f" "b"},  // U+FF0F
      {"division slash", "a\xe2\x88\x95" "b"},                    // U+2215
      {"one dot leader", "\xe2\x80\xa4\xe2\x80\xa4/x"},           // U+2024 twice
      {"RTL override", "model\xe2\x80\xaegpj.exe"},               // U+202E
      {"zero-width space", "mo\xe2\x80\x8b" "del"},               // U+200B
      {"cyrillic lookalike", "\xd0\xbe" "rg/model"},              // U+043E
      {"newline", "a\nb"},
      {"carriage return", "a\rb"},
      {"tab", "a\tb"},
      {"escape sequence", "\x1b[31mred"},
      {"DEL", "a\x7f" "b"},
      {"leading dash", "-rf"},
      {"leading dash segment", "org/-rf"},
      {"leading dot", ".hidden"},
      {"trailing space", "model "},
      {"leading space", " model"},
      {"empty", ""},
      {"dot", "."},
      {"tilde", "~"},
      {"tilde home", "~/x"},
      {"percent dot-dot", "%2e%2e"},
      {"percent slash", "a%2fb"},
      {"percent dot-dot path", "%2e%2e/%2e%2e/x"},
      {"overlong slash", "a\xc0\xaf" "b"},        // overlong UTF-8 for '/'
      {"overlong dot-dot", "\xc0\xae\xc0\xae"},   // overlong UTF-8 for ".."
      {"invalid UTF-8", "\xff\xfe"},
      {"colon", "a:b"},
      {"glob", "a*"},
      {"question", "a?"},
      {"shell", "$(reboot)"},
      {"backtick", "`id`"},
      {"semicolon", "a;rm"},
      {"pipe", "a|b"},
      {"quote", "a'b"},
      {"double quote", "a\"b"},
      {"space inside", "a b"},
      {"symlink-ish proc", "/proc/self/root/etc"},
      {"symlink-ish dev", "/dev/stdin"},
  };
  return table;
}

// Names harmless on Linux that look odd elsewhere: accepted, and they stay inside.
const std::vector<std::string>& odd_but_valid_model_names() {
  static const std::vector<std::string> names = {"con", "aux", "nul", "prn", "com1", "lpt1", "model.", "a.", "a..b",
                                                 "org/model.v1", "x_", "UPPER/lower"};
  return names;
}

std::string show(const std::string& s) {
  std::string out;
  for (unsigned char c : s.substr(0, 40)) {
    if (c >= 0x20 && c < 0x7f) out += static_cast<char>(c);
    else {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      out += b;
    }
  }
  return out;
}

// True when `p`, taken lexically, stays under `root`.
bool lexically_inside(const fs::path& root, const fs::path& p) {
  auto rel = p.lexically_normal().lexically_relative(root.lexically_normal());
  return !rel.empty() && *rel.begin() != ".." && !rel.is_absolute();
}

class HostileNames : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/modelzoo-hostile-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    base_ = tmpl;
    root_ = base_ / "root";
    fs::create_directories(root_);
    sentinel_ = base_ / "sentinel";
    std::ofstream(sentinel_) << "must survive";
    fs::create_directories(base_ / "x");
    std::ofstream(base_ / "x" / "secret") << "outside";
  }
  void TearDown() override {
    // Nothing outside the root was created, changed or removed.
    std::set<std::string> outside;
    for (const auto& e : fs::directory_iterator(base_)) outside.insert(e.path().filename().string());
    EXPECT_EQ(outside, (std::set<std::string>{"root", "sentinel", "x"}));
    std::ifstream in(sentinel_);
    std::string s;
    std::getline(in, s);
    EXPECT_EQ(s, "must survive");
    fs::remove_all(base_);
  }
  fs::path base_, root_, sentinel_;
};

TEST_F(HostileNames, EveryNameCheckRefusesThemWithAReason) {
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label + ": '" + show(h.value) + "'");
    auto model = bus::check_model_name(h.value);
    auto version = bus::check_version(h.value);
    auto file = bus::check_file_name(h.value);
    auto plugin = bus::check_plugin_name(h.value);
    ASSERT_TRUE(model.has_value());
    ASSERT_TRUE(version.has_value());
    ASSERT_TRUE(file.has_value());
    ASSERT_TRUE(plugin.has_value());
    EXPECT_THAT(*model, ::testing::HasSubstr("model name"));
    EXPECT_THAT(*file, ::testing::HasSubstr("file name"));
    EXPECT_THAT(*plugin, ::testing::HasSubstr("plugin name"));
    // A reason never carries raw control characters back to a terminal.
    for (const std::string* why : {&*model, &*file})
      for (unsigned char c : *why) EXPECT_TRUE(c >= 0x20 && c != 0x7f) << "control character in: " << show(*why);
  }
}

TEST_F(HostileNames, ModelReferencesAreRefusedAsBadRequests) {
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label);
    for (const std::string& ref : {h.value, h.value + ":1.0.0", "org/model:" + h.value}) {
      try {
        bus::parse_model_ref(ref);
        ADD_FAILURE() << "accepted '" << show(ref) << "'";
      } catch (const bus::Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::bad_request);
      }
    }
  }
}

TEST_F(HostileNames, MetadataFromAPluginWithAHostileNameVersionOrFileIsRefused) {
  nlohmann::json good = {{"name", "org/model"},
                         {"version", "1.0.0"},
                         {"files", {{{"name", "w.bin"}, {"size", 1}, {"sha256", std::string(64, 'a')}}}}};
  ASSERT_NO_THROW(bus::ModelMetadata::from_json(good));
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label);
    for (int field = 0; field < 3; ++field) {
      nlohmann::json j = good;
      if (field == 0) j["name"] = h.value;
      if (field == 1) j["version"] = h.value;
      if (field == 2) j["files"][0]["name"] = h.value;
      EXPECT_THROW(bus::ModelMetadata::from_json(j), bus::Error) << "field " << field;
    }
  }
}

TEST_F(HostileNames, CachePathsOfValidNamesStayInsideTheCache) {
  core::ContentStore store(root_);
  for (const auto& n : odd_but_valid_model_names()) {
    ASSERT_FALSE(bus::check_model_name(n).has_value()) << n;
    EXPECT_TRUE(lexically_inside(root_ / "models", store.view_dir(n, "1.0.0-rc.1+b"))) << n;
  }
  // The pull engine builds cache paths only from names that passed the checks (a request's
  // reference and the plugin's ModelMetadata, both refused above), so a hostile name never
  // reaches view_dir or the manifests.
}

TEST_F(HostileNames, CacheRemoveRefusesHostileNamesAndVersionsAndDeletesNothing) {
  core::ContentStore store(root_);  // a cache layout
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label);
    try {
      core::remove_cached(root_, h.value, "");
      ADD_FAILURE() << "accepted name";
    } catch (const bus::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request);
    }
    try {
      core::remove_cached(root_, "org/model", h.value);
      ADD_FAILURE() << "accepted version";
    } catch (const bus::Error& e) {
      // An empty version means "every version": then not_found (nothing cached).
      EXPECT_EQ(e.code(), h.value.empty() ? ErrorCode::not_found : ErrorCode::bad_request);
    }
  }
  EXPECT_TRUE(fs::exists(base_ / "x" / "secret"));
}

TEST_F(HostileNames, LocalFileStoreRefusesHostileNamesVersionsAndFiles) {
  // A real model, and an escape hatch beside it: a version directory that is a symlink out of
  // the root, and a file that is a symlink to a file outside.
  fs::create_directories(root_ / "org" / "model" / "1.0.0");
  std::ofstream(root_ / "org" / "model" / "1.0.0" / "w.bin") << "weights";
  fs::create_directory_symlink(base_ / "x", root_ / "org" / "model" / "2.0.0");
  fs::create_directories(root_ / "org" / "link" / "1.0.0");
  fs::create_symlink(base_ / "x" / "secret", root_ / "org" / "link" / "1.0.0" / "secret");
  lf::Options o;
  o.root = root_;
  o.log = [](const char*, const std::string&) {};
  lf::Store store(o);
  ASSERT_NO_THROW(store.metadata("org/model", "1.0.0"));
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label);
    auto expect_bad = [&](const std::function<void()>& f, const char* what) {
      try {
        f();
        ADD_FAILURE() << what << " accepted";
      } catch (const bus::Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::bad_request || (h.value.empty() && e.code() == ErrorCode::not_found))
            << what << ": " << e.what();
      }
    };
    expect_bad([&] { store.metadata(h.value, "1.0.0"); }, "name");
    if (!h.value.empty()) expect_bad([&] { store.metadata("org/model", h.value); }, "version");
    VectorSink sink;
    expect_bad([&] { store.download({"org/model", "1.0.0", h.value, 0}, sink); }, "file");
    EXPECT_TRUE(sink.bytes.empty());
  }
  // The symlinked version directory leads outside the root: refused, never served.
  try {
    auto md = store.metadata("org/model", "2.0.0");
    ADD_FAILURE() << "served a version outside the root";
  } catch (const bus::Error& e) {
    EXPECT_TRUE(e.code() == ErrorCode::bad_request || e.code() == ErrorCode::not_found) << e.what();
  }
  // A file symlinked to outside the root is neither listed nor downloaded.
  try {
    auto md = store.metadata("org/link", "1.0.0");
    for (const auto& f : md.files) EXPECT_NE(f.name, "secret");
  } catch (const bus::Error&) {
  }
  VectorSink sink;
  EXPECT_THROW(store.download({"org/link", "1.0.0", "secret", 0}, sink), bus::Error);
  EXPECT_EQ(sink.bytes.find("outside"), std::string::npos);
}

TEST_F(HostileNames, RemoteUrlsOfValidNamesHaveNoDotSegmentsAndEncodeTheRest) {
  namespace http = modelzoo::sdk::http;
  for (const auto& n : odd_but_valid_model_names()) {
    std::string p = http::encode_path(n);
    EXPECT_EQ(p.find("/../"), std::string::npos);
    EXPECT_NE(p.substr(0, 3), "../");
  }
  // Whatever a segment holds, its encoding has no '/', '\', '?', '#', '%' unescaped, space or
  // control character: it cannot leave its place in the URL (the SDK refuses hostile names
  // before a registry builds a URL; this is the second line).
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label);
    std::string e = http::encode_segment(h.value);
    for (std::size_t i = 0; i < e.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(e[i]);
      EXPECT_TRUE(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '%') << show(e);
      if (c == '%') {
        EXPECT_TRUE(i + 2 < e.size() && std::isxdigit(static_cast<unsigned char>(e[i + 1])) &&
                    std::isxdigit(static_cast<unsigned char>(e[i + 2])))
            << show(e);
      }
    }
  }
}

TEST_F(HostileNames, ConfigurationRefusesHostileSourceAndManifestNames) {
  for (const auto& h : hostile_inputs()) {
    SCOPED_TRACE(h.label);
    if (h.value.find('\0') != std::string::npos) continue;  // not expressible in YAML text
    nlohmann::json name = h.value;
    std::string quoted = name.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    std::string yaml = "sources:\n  - name: " + quoted + "\n    plugin: memory\n";
    try {
      sv::parse_config(yaml, "hostile.yaml", base_ / "bin");
      ADD_FAILURE() << "source name accepted";
    } catch (const sv::ConfigError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("name"));
    }
    fs::path manifest = root_ / "plugin.yaml";
    std::ofstream(manifest) << "name: " << quoted << "\ncommand: [run]\n";
    try {
      sv::load_manifest(manifest);
      ADD_FAILURE() << "manifest name accepted";
    } catch (const sv::ConfigError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr("manifest.name"));
    }
  }
}

}  // namespace
