// bus/hello.h: every rule of a hello, in the daemon's order, with the daemon's texts
// (docs/protocol.md, "Checks, in order, and rejection reasons"), and the vocabulary.
#include <gtest/gtest.h>

#include "modelzoo/bus/hello.h"
#include "modelzoo/bus/message.h"

namespace modelzoo::bus {
namespace {
using nlohmann::json;

json registry_hello() {
  return {{"protocol", {1}}, {"plugin_id", "p.1"}, {"token", "t"},         {"name", "reg"},
          {"version", "1.0.0"}, {"pid", 42},       {"kind", "registry"}, {"priority", 5},
          {"handles", {"a/*"}}};
}

json extension_hello() {
  json h = registry_hello();
  h.erase("priority");
  h["kind"] = "extension";
  h["points"] = {"post-download"};
  h["formats"] = {"GGUF", "zst"};
  h["order"] = 3;
  return h;
}

std::optional<std::string> why(const json& h, const HelloRules& rules = {}) {
  Hello out;
  return parse_hello(h, out, rules);
}

TEST(Hello, ARegistryHelloIsReadWithItsDefaults) {
  Hello h;
  ASSERT_EQ(parse_hello(registry_hello(), h), std::nullopt);
  EXPECT_EQ(h.protocol, std::vector<std::int64_t>{1});
  EXPECT_EQ(h.plugin_id, "p.1");
  EXPECT_EQ(h.token, "t");
  EXPECT_EQ(h.name, "reg");
  EXPECT_EQ(h.version, "1.0.0");
  EXPECT_EQ(h.pid, 42);
  EXPECT_EQ(h.kind, "registry");
  EXPECT_EQ(h.priority, 5);
  EXPECT_EQ(h.handles, std::vector<std::string>{"a/*"});
  EXPECT_EQ(h.capabilities, (std::vector<std::string>{"metadata", "exists", "list", "download"}));

  json bare = {{"protocol", {1}}, {"name", "reg"}, {"version", "1.0.0"}};
  ASSERT_EQ(parse_hello(bare, h), std::nullopt);
  EXPECT_EQ(h.kind, "registry");
  EXPECT_EQ(h.handles, std::vector<std::string>{"*"});
  EXPECT_EQ(h.pid, std::nullopt);
  EXPECT_EQ(h.priority, 0);
}

TEST(Hello, AnExtensionHelloIsReadWithItsFormatsLowercased) {
  Hello h;
  ASSERT_EQ(parse_hello(extension_hello(), h), std::nullopt);
  EXPECT_EQ(h.kind, "extension");
  EXPECT_EQ(h.points, std::vector<std::string>{"post-download"});
  EXPECT_EQ(h.formats, (std::vector<std::string>{"gguf", "zst"}));
  EXPECT_EQ(h.order, 3);
  EXPECT_EQ(h.capabilities, std::vector<std::string>{"hook"});
}

TEST(Hello, EveryFieldIsTypeCheckedFirst) {
  const std::pair<const char*, json> wrong[] = {
      {"protocol", "1"},      {"plugin_id", 1},     {"token", nullptr}, {"name", json::array()},
      {"version", 1.5},       {"pid", "42"},        {"kind", true},     {"capabilities", {1}},
      {"points", "pre-load"}, {"formats", {nullptr}}, {"order", 1.0},   {"priority", "high"},
      {"handles", {"*", 2}}};
  for (const auto& [key, value] : wrong) {
    json h = extension_hello();
    h[key] = value;
    h["protocol"] = key == std::string("protocol") ? value : json{7};  // a later rule broken too
    auto w = why(h);
    ASSERT_TRUE(w) << key;
    EXPECT_EQ(w->rfind("hello: '" + std::string(key) + "' must be ", 0), 0u) << *w;
    EXPECT_EQ(hello_type_error(h), w);
  }
  json h = registry_hello();
  h["pid"] = "x";
  EXPECT_EQ(why(h), "hello: 'pid' must be an integer, not a string");
  h = registry_hello();
  h["handles"] = {"*", 2};
  EXPECT_EQ(why(h), "hello: 'handles' must be a list of strings, not an array holding an integer");
  EXPECT_EQ(hello_type_error(registry_hello()), std::nullopt);
}

TEST(Hello, NeedsACommonProtocolVersion) {
  const std::string no = "no common protocol version (daemon speaks 1)";
  for (json p : {json::array(), json{2, 3}, json{-1}, json{4294967297LL}, json{18446744073709551615ULL}}) {
    json h = registry_hello();
    h["protocol"] = p;
    EXPECT_EQ(why(h), no) << p;
  }
  json h = registry_hello();
  h.erase("protocol");
  EXPECT_EQ(why(h), no);
  h["protocol"] = {2, 1};
  EXPECT_EQ(why(h), std::nullopt);
  EXPECT_EQ(why(json::array()), no);  // not a map: nothing in it
  EXPECT_EQ(why(json("hello")), no);
}

TEST(Hello, KindIsRegistryOrExtensionAndTheConfiguredOne) {
  json h = registry_hello();
  h["kind"] = "";
  EXPECT_EQ(why(h), "unsupported plugin kind ''");
  h["kind"] = std::string(100, 'k');
  EXPECT_EQ(why(h), "unsupported plugin kind '" + std::string(64, 'k') + "'");
  h.erase("kind");
  EXPECT_EQ(why(h, {"registry", true}), std::nullopt);
  EXPECT_EQ(why(h, {"extension", true}), "plugin kind 'registry' differs from the configured kind 'extension'");
  EXPECT_EQ(why(extension_hello(), {"registry", true}),
            "plugin kind 'extension' differs from the configured kind 'registry'");
  EXPECT_EQ(why(extension_hello(), {"extension", true}), std::nullopt);
}

TEST(Hello, AnExtensionDeclaresOneToFourKnownPoints) {
  const std::string count = "hello: an extension must declare 1 to 4 points (pre-download, post-download, pre-load, post-load)";
  json h = extension_hello();
  h.erase("points");
  EXPECT_EQ(why(h), count);
  h["points"] = json::array();
  EXPECT_EQ(why(h), count);
  h["points"] = {"pre-load", "pre-load", "post-load", "pre-download", "post-download"};
  EXPECT_EQ(why(h), count);
  h["points"] = {"pre-load", "pre-load"};  // a repeat is allowed
  EXPECT_EQ(why(h), std::nullopt);
  h["points"] = {"pre-load", "after-load"};
  EXPECT_EQ(why(h), "hello: 'after-load' is not an extension point");
  h["points"] = {std::string(100, 'x')};
  EXPECT_EQ(why(h), "hello: '" + std::string(64, 'x') + "' is not an extension point");
  h["points"] = {"PRE-LOAD"};
  EXPECT_EQ(why(h), "hello: 'PRE-LOAD' is not an extension point");
  // A registry's points are not read.
  json r = registry_hello();
  r["points"] = {"nowhere"};
  EXPECT_EQ(why(r), std::nullopt);
}

TEST(Hello, AnExtensionsFormatsAreShortSuffixes) {
  json h = extension_hello();
  h["formats"] = json::array();
  EXPECT_EQ(why(h), std::nullopt);
  h["formats"] = json(std::vector<std::string>(100, "a"));
  EXPECT_EQ(why(h), std::nullopt);
  h["formats"] = json(std::vector<std::string>(101, "a"));
  EXPECT_EQ(why(h), "hello: formats must be a list of at most 100 strings");
  for (const std::string& f : {std::string(), std::string(33, 'f')}) {
    h["formats"] = {"gguf", f};
    EXPECT_EQ(why(h), "hello: formats must be a list of file suffixes of 1 to 32 characters");
  }
  h["formats"] = {std::string(32, 'F')};
  Hello out;
  EXPECT_EQ(parse_hello(h, out), std::nullopt);
  EXPECT_EQ(out.formats, std::vector<std::string>{std::string(32, 'f')});
}

TEST(Hello, NameAndVersionFollowTheGrammars) {
  json h = registry_hello();
  h["name"] = "Bad Name";
  auto w = why(h);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->rfind("hello: plugin name", 0), 0u) << *w;
  h.erase("name");
  w = why(h);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->rfind("hello: ", 0), 0u) << *w;
  h = registry_hello();
  h["version"] = "1.0";
  w = why(h);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->rfind("hello: version '1.0' is not a semantic version", 0), 0u) << *w;
  h.erase("version");
  EXPECT_TRUE(why(h));
}

TEST(Hello, HandlesAreOneToAHundredPatternsOfOneToTwoHundredCharacters) {
  const std::string count = "hello must declare 1 to 100 handles patterns";
  const std::string size = "hello has a handles pattern that is empty or over 200 characters";
  json h = registry_hello();
  h["handles"] = json::array();
  EXPECT_EQ(why(h), count);
  h["handles"] = json(std::vector<std::string>(101, "*"));
  EXPECT_EQ(why(h), count);
  h["handles"] = json(std::vector<std::string>(100, std::string(200, 'a')));
  EXPECT_EQ(why(h), std::nullopt);
  h["handles"] = {"a", ""};
  EXPECT_EQ(why(h), size);
  h["handles"] = {std::string(201, 'a')};
  EXPECT_EQ(why(h), size);
  // Handles the configuration sets replace the hello's, which are then not checked.
  EXPECT_EQ(why(h, {"", false}), std::nullopt);
}

TEST(Hello, RulesApplyInTheDaemonsOrder) {
  json h = extension_hello();
  h["protocol"] = {9};
  h["kind"] = "plugin";
  h["name"] = "BAD";
  h["handles"] = json::array();
  EXPECT_EQ(why(h), "no common protocol version (daemon speaks 1)");
  h["protocol"] = {1};
  EXPECT_EQ(why(h), "unsupported plugin kind 'plugin'");
  h["kind"] = "extension";
  h["points"] = {"x"};
  EXPECT_EQ(why(h, {"registry", true}), "plugin kind 'extension' differs from the configured kind 'registry'");
  EXPECT_EQ(why(h), "hello: 'x' is not an extension point");
  h["points"] = {"pre-load"};
  EXPECT_NE(why(h)->find("plugin name"), std::string::npos);
  h["name"] = "ok";
  EXPECT_EQ(why(h), "hello must declare 1 to 100 handles patterns");
}

TEST(Hello, PriorityAndOrderAreClamped) {
  json h = extension_hello();
  h["order"] = 1LL << 40;
  h["priority"] = -(1LL << 40);
  Hello out;
  ASSERT_EQ(parse_hello(h, out), std::nullopt);
  EXPECT_EQ(out.order, 1000000);
  EXPECT_EQ(out.priority, -1000000);
  h["order"] = 18446744073709551615ULL;  // beyond int64: read as absent
  ASSERT_EQ(parse_hello(h, out), std::nullopt);
  EXPECT_EQ(out.order, 0);
}

TEST(Hello, AFailedParseKeepsWhatCouldBeRead) {
  json h = extension_hello();
  h["protocol"] = {2};
  h["handles"] = {"m/*"};
  Hello out;
  ASSERT_TRUE(parse_hello(h, out));
  EXPECT_EQ(out.kind, "extension");
  EXPECT_EQ(out.points, std::vector<std::string>{"post-download"});
  EXPECT_EQ(out.formats, (std::vector<std::string>{"gguf", "zst"}));
  EXPECT_EQ(out.handles, std::vector<std::string>{"m/*"});
  ASSERT_TRUE(parse_hello(json(), out));  // null: every default
  EXPECT_TRUE(out.points.empty());
  EXPECT_EQ(out.handles, std::vector<std::string>{"*"});
  EXPECT_EQ(out.order, 0);
}

TEST(Hello, ToJsonSendsTheFieldsOfItsKindAndParsesBack) {
  Hello r;
  r.protocol = {kProtocolVersion};
  r.name = "reg";
  r.version = "2.0.0";
  r.pid = 7;
  r.priority = 3;
  json j = r.to_json();
  EXPECT_EQ(j, json::parse(R"({"protocol":[1],"plugin_id":"","token":"","name":"reg","version":"2.0.0","pid":7,
      "kind":"registry","capabilities":["metadata","exists","list","download"],"priority":3,"handles":["*"]})"));
  Hello back;
  ASSERT_EQ(parse_hello(j, back), std::nullopt);
  EXPECT_EQ(back.priority, 3);

  Hello x;
  x.protocol = {kProtocolVersion};
  x.name = "ext";
  x.version = "1.0.0";
  x.kind = kExtensionKind;
  x.points = {kPreLoad};
  x.formats = {"onnx"};
  x.order = -2;
  j = x.to_json();
  EXPECT_FALSE(j.contains("priority"));
  EXPECT_FALSE(j.contains("pid"));
  EXPECT_EQ(j["capabilities"], json{"hook"});
  EXPECT_EQ(j["points"], json{"pre-load"});
  EXPECT_EQ(j["order"], -2);
  ASSERT_EQ(parse_hello(j, back), std::nullopt);
  EXPECT_EQ(back.points, x.points);
}

TEST(Vocabulary, KindsPointsCapabilities) {
  EXPECT_TRUE(is_plugin_kind("registry"));
  EXPECT_TRUE(is_plugin_kind("extension"));
  EXPECT_FALSE(is_plugin_kind("Registry"));
  EXPECT_FALSE(is_plugin_kind(""));
  for (const char* p : {"pre-download", "post-download", "pre-load", "post-load"}) EXPECT_TRUE(is_extension_point(p)) << p;
  for (const char* p : {"", "load", "pre-download ", "Post-Load"}) EXPECT_FALSE(is_extension_point(p)) << p;
  EXPECT_EQ(extension_point_list(), "pre-download, post-download, pre-load, post-load");
  EXPECT_EQ(default_capabilities("extension"), std::vector<std::string>{"hook"});
  EXPECT_EQ(default_capabilities("registry"), (std::vector<std::string>{"metadata", "exists", "list", "download"}));
}

TEST(Vocabulary, FileFormatIsTheLowercaseSuffixOfTheLastSegment) {
  EXPECT_EQ(file_format("model.GGUF"), "gguf");
  EXPECT_EQ(file_format("weights.tar.zst"), "zst");
  EXPECT_EQ(file_format("dir.v2/model.Safetensors"), "safetensors");
  EXPECT_EQ(file_format("dir.v2/README"), "");
  EXPECT_EQ(file_format(".hidden"), "");
  EXPECT_EQ(file_format("a/.hidden"), "");
  EXPECT_EQ(file_format("trailing."), "");
  EXPECT_EQ(file_format(""), "");
  EXPECT_EQ(file_format("a/"), "");
  EXPECT_EQ(file_format(std::string("x.\xC3\x89T", 5)), std::string("\xC3\x89t", 3));  // bytes >= 0x80 untouched
}

}  // namespace
}  // namespace modelzoo::bus
