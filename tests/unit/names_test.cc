// Unit tests of names, versions, model references and glob patterns
// (bus/include/modelzoo/bus/names.h).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"

namespace {

using modelzoo::bus::check_file_name;
using modelzoo::bus::check_model_name;
using modelzoo::bus::check_plugin_name;
using modelzoo::bus::check_version;
using modelzoo::bus::Error;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::glob_match;
using modelzoo::bus::parse_model_ref;
using modelzoo::bus::SemVer;
using modelzoo::bus::tag_of_version;
using modelzoo::bus::version_of_tag;
using namespace std::string_literals;
using testing::HasSubstr;

// n segments "s0/s1/..." each `seg_len` characters long.
std::string segments(int n, std::size_t seg_len = 1) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    if (i) out += '/';
    out += std::string(seg_len, static_cast<char>('a' + i % 26));
  }
  return out;
}

// ---- model names ----------------------------------------------------------------------------

TEST(ModelName, Valid) {
  for (std::string n : {"a", "A", "0", "org/model-1.0_x", "a.b", "a-", "a_", "a/b/c", "x..y", "m.", "Org/Model.V2"}) {
    EXPECT_EQ(check_model_name(n), std::nullopt) << n;
  }
  EXPECT_EQ(check_model_name(std::string(64, 'a')), std::nullopt);  // longest segment
  EXPECT_EQ(check_model_name(segments(8)), std::nullopt);            // most segments
  // 200 characters: 3 segments of 64 and one of 5, joined by 3 slashes.
  std::string longest = std::string(64, 'a') + "/" + std::string(64, 'b') + "/" + std::string(64, 'c') + "/" +
                        std::string(5, 'd');
  ASSERT_EQ(longest.size(), 200u);
  EXPECT_EQ(check_model_name(longest), std::nullopt);
}

TEST(ModelName, Invalid) {
  struct Case {
    std::string name, reason;
  };
  std::string too_long = std::string(64, 'a') + "/" + std::string(64, 'b') + "/" + std::string(64, 'c') + "/" +
                         std::string(6, 'd');
  ASSERT_EQ(too_long.size(), 201u);
  for (const auto& c : std::vector<Case>{
           {"", "empty"},
           {"..", "'..' segment"},
           {".", "'.' segment"},
           {"a/../b", "'..' segment"},
           {"a/./b", "'.' segment"},
           {"/abs", "empty path segment"},
           {"a//b", "empty path segment"},
           {"a/", "empty path segment"},
           {".hidden", "starting with '.'"},
           {"org/.hidden", "starting with '.'"},
           {"-x", "starting with '-'"},
           {"a b", "character '\\x20'"},
           {" a", "character"},
           {"a\0b"s, "character '\\x00'"},
           {"a\nb", "character '\\x0a'"},
           {"%2e%2e", "character '%'"},
           {"a\\b", "character '\\'"},
           {"a:b", "character ':'"},
           {"caf\xc3\xa9", "character '\\xc3'"},
           {"\xe2\x80\xae", "character"},
           {too_long, "longer than 200"},
           {std::string(201, 'a'), "longer than 200"},
           {segments(9), "more than 8 segments"},
           {std::string(65, 'a'), "longer than 64"},
           {"org/" + std::string(65, 'a'), "longer than 64"},
       }) {
    auto why = check_model_name(c.name);
    ASSERT_TRUE(why.has_value()) << "accepted '" << c.name << "'";
    EXPECT_THAT(*why, HasSubstr("model name")) << c.name;
    EXPECT_THAT(*why, HasSubstr(c.reason)) << c.name;
  }
}

// ---- file names -----------------------------------------------------------------------------

TEST(FileName, Valid) {
  for (std::string n : {"a", "weights.bin", "README.md", "sub/dir/model.safetensors", "x..y", "tokenizer-v2_0.json"})
    EXPECT_EQ(check_file_name(n), std::nullopt) << n;
  EXPECT_EQ(check_file_name(segments(16)), std::nullopt);
  std::string longest = std::string(64, 'a');
  // append, not '"/" + std::string': GCC 12 at -O3 misreports that under -Wrestrict (PR105651)
  for (int i = 0; i < 2; ++i) longest.append("/").append(64, 'b');
  longest.append("/");
  longest.append(255 - longest.size(), 'c');
  ASSERT_EQ(longest.size(), 255u);
  EXPECT_EQ(check_file_name(longest), std::nullopt);
}

TEST(FileName, Invalid) {
  struct Case {
    std::string name, reason;
  };
  std::string too_long = std::string(64, 'a');
  for (int i = 0; i < 2; ++i) too_long.append("/").append(64, 'b');
  too_long.append("/");
  too_long.append(256 - too_long.size(), 'c');
  ASSERT_EQ(too_long.size(), 256u);
  for (const auto& c : std::vector<Case>{
           {"", "empty"},
           {"/etc/passwd", "absolute"},
           {"/", "absolute"},
           {"..", "'..' segment"},
           {"../x", "'..' segment"},
           {"a/../../x", "'..' segment"},
           {"a/./x", "'.' segment"},
           {"a//x", "empty path segment"},
           {"dir/", "empty path segment"},
           {".git/config", "starting with '.'"},
           {"a\0b"s, "character"},
           {"a b", "character '\\x20'"},
           {"a\\..\\b", "character '\\'"},
           {too_long, "longer than 255"},
           {segments(17), "more than 16 segments"},
           {std::string(65, 'f'), "longer than 64"},
       }) {
    auto why = check_file_name(c.name);
    ASSERT_TRUE(why.has_value()) << "accepted '" << c.name << "'";
    EXPECT_THAT(*why, HasSubstr("file name")) << c.name;
    EXPECT_THAT(*why, HasSubstr(c.reason)) << c.name;
  }
}

// ---- plugin names ---------------------------------------------------------------------------

TEST(PluginName, ValidAndInvalid) {
  for (std::string n : std::vector<std::string>{"a", "memory", "local-file", "hf_mirror", "0day", std::string(64, 'p')})
    EXPECT_EQ(check_plugin_name(n), std::nullopt) << n;
  struct Case {
    std::string name, reason;
  };
  for (const auto& c : std::vector<Case>{
           {"", "1 to 64"},
           {std::string(65, 'p'), "1 to 64"},
           {"Memory", "only a-z"},
           {"a.b", "only a-z"},
           {"a/b", "only a-z"},
           {"a b", "only a-z"},
           {"caf\xc3\xa9", "only a-z"},
           {"-x", "start with a letter or digit"},
           {"_x", "start with a letter or digit"},
       }) {
    auto why = check_plugin_name(c.name);
    ASSERT_TRUE(why.has_value()) << "accepted '" << c.name << "'";
    EXPECT_THAT(*why, HasSubstr(c.reason)) << c.name;
  }
}

// ---- versions -------------------------------------------------------------------------------

TEST(Version, Valid) {
  for (std::string v : {"0.0.0", "1.2.3", "10.20.30", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7",
                        "1.0.0-x.7.z.92", "1.0.0-x-y-z.--", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
                        "1.0.0+21AF26D3----117B344092BD", "1.0.0-0a", "18446744073709551615.0.0"})
    EXPECT_EQ(check_version(v), std::nullopt) << v;
}

TEST(Version, Invalid) {
  for (std::string v : {"", "1", "1.2", "1.2.3.4", "v1.2.3", "01.2.3", "1.02.3", "1.2.03", "1.2.3-01", "1.2.3-",
                        "1.2.3+", "1.2.3-a..b", "1.2.3+a..b", "1.2.3-a_b", "1.2.3 ", " 1.2.3", "1.2.-3", "-1.2.3",
                        "a.b.c", "1..3", "latest", "18446744073709551616.0.0", "1.2.3-\xc3\xa9"}) {
    auto why = check_version(v);
    EXPECT_TRUE(why.has_value()) << "accepted '" << v << "'";
  }
  EXPECT_THAT(*check_version("1.2"), HasSubstr("not a semantic version"));
  std::string long_version = "1.0.0-" + std::string(59, 'a');
  ASSERT_EQ(long_version.size(), 65u);
  EXPECT_THAT(check_version(long_version).value_or(""), HasSubstr("longer than 64"));
  EXPECT_EQ(check_version(long_version.substr(0, 64)), std::nullopt);
}

TEST(SemVerParse, Fields) {
  auto v = SemVer::parse("1.22.333-rc.1+build.7");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(v->major, 1u);
  EXPECT_EQ(v->minor, 22u);
  EXPECT_EQ(v->patch, 333u);
  EXPECT_EQ(v->prerelease, "rc.1");
  EXPECT_EQ(v->build, "build.7");
  auto plain = SemVer::parse("4.5.6");
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->prerelease, "");
  EXPECT_EQ(plain->build, "");
  // A '-' inside build metadata is not a pre-release separator.
  auto b = SemVer::parse("1.0.0+build-1");
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->prerelease, "");
  EXPECT_EQ(b->build, "build-1");
}

TEST(SemVerParse, LeadingZerosRejected) {
  for (const char* v : {"00.1.1", "1.00.1", "1.1.00", "01.0.0", "0.01.0", "0.0.01", "1.0.0-alpha.01", "1.0.0-00"})
    EXPECT_FALSE(SemVer::parse(v).has_value()) << v;
  EXPECT_TRUE(SemVer::parse("0.0.0").has_value());
  EXPECT_TRUE(SemVer::parse("1.0.0-0").has_value());
  EXPECT_TRUE(SemVer::parse("1.0.0-0alpha").has_value());  // alphanumeric: leading zero allowed
  EXPECT_TRUE(SemVer::parse("1.0.0+001").has_value());     // build metadata: allowed
}

int cmp(const char* a, const char* b) {
  auto va = SemVer::parse(a), vb = SemVer::parse(b);
  EXPECT_TRUE(va.has_value()) << a;
  EXPECT_TRUE(vb.has_value()) << b;
  if (!va || !vb) return 99;
  return va->compare(*vb);
}

TEST(SemVerCompare, SemverOrgPrecedenceChain) {
  const std::vector<const char*> chain = {"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
                                          "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",      "1.0.0"};
  for (std::size_t i = 0; i < chain.size(); ++i) {
    for (std::size_t j = 0; j < chain.size(); ++j) {
      int expected = i < j ? -1 : (i > j ? 1 : 0);
      EXPECT_EQ(cmp(chain[i], chain[j]), expected) << chain[i] << " vs " << chain[j];
    }
  }
}

TEST(SemVerCompare, NumericFieldsAndBuildMetadata) {
  EXPECT_EQ(cmp("1.0.0", "2.0.0"), -1);
  EXPECT_EQ(cmp("2.0.0", "2.1.0"), -1);
  EXPECT_EQ(cmp("2.1.0", "2.1.1"), -1);
  EXPECT_EQ(cmp("1.10.0", "1.9.0"), 1);  // numeric, not lexical
  EXPECT_EQ(cmp("1.0.10", "1.0.9"), 1);
  EXPECT_EQ(cmp("10.0.0", "9.99.99"), 1);
  EXPECT_EQ(cmp("1.0.0+a", "1.0.0+b"), 0);  // build metadata ignored
  EXPECT_EQ(cmp("1.0.0-rc.1+a", "1.0.0-rc.1"), 0);
  EXPECT_EQ(cmp("1.0.0-rc.1", "1.0.0-rc.1"), 0);
  EXPECT_EQ(cmp("1.0.0-alpha", "0.9.9"), 1);  // a pre-release is still above lower releases
  EXPECT_EQ(cmp("1.0.0-1", "1.0.0-a"), -1);   // numeric identifiers sort below alphanumeric
  EXPECT_EQ(cmp("1.0.0-a.10", "1.0.0-a.9"), 1);
  EXPECT_EQ(cmp("1.0.0-B", "1.0.0-a"), -1);  // ASCII order
  EXPECT_EQ(cmp("18446744073709551615.0.0", "18446744073709551614.0.0"), 1);
}

// ---- model references -----------------------------------------------------------------------

TEST(ModelRef, NameAndVersion) {
  auto r = parse_model_ref("org/model:1.2.3");
  EXPECT_EQ(r.name, "org/model");
  EXPECT_EQ(r.version, "1.2.3");
  EXPECT_EQ(r.str(), "org/model:1.2.3");
  auto a = parse_model_ref("a:1.2.3-rc.1+b");
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.version, "1.2.3-rc.1+b");
}

TEST(ModelRef, NameOnlyMeansLatest) {
  auto r = parse_model_ref("a");
  EXPECT_EQ(r.name, "a");
  EXPECT_EQ(r.version, "");
  EXPECT_EQ(r.str(), "a");
}

void expect_bad_ref(const std::string& ref, const std::string& reason) {
  try {
    parse_model_ref(ref);
    ADD_FAILURE() << "accepted '" << ref << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::bad_request) << ref;
    EXPECT_THAT(e.what(), HasSubstr(reason)) << ref;
  }
}

TEST(ModelRef, Invalid) {
  expect_bad_ref("a:", "names no version");
  expect_bad_ref("a:latest", "not a semantic version");
  expect_bad_ref("a:1.2", "not a semantic version");
  expect_bad_ref(":1.2.3", "model name is empty");
  expect_bad_ref("", "model name is empty");
  expect_bad_ref("../x:1.0.0", "'..' segment");
  expect_bad_ref("a:b:1.0.0", "character ':'");
  expect_bad_ref("a b", "character '\\x20'");
}

// ---- glob patterns --------------------------------------------------------------------------

TEST(Glob, Matches) {
  EXPECT_TRUE(glob_match("*", "anything"));
  EXPECT_TRUE(glob_match("*", "org/deep/model"));  // '*' crosses '/'
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("org/*", "org/model"));
  EXPECT_TRUE(glob_match("org/*", "org/"));
  EXPECT_TRUE(glob_match("org/*", "org/a/b"));
  EXPECT_TRUE(glob_match("?", "x"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_TRUE(glob_match("a?c", "a/c"));
  EXPECT_TRUE(glob_match("a*b*c", "abc"));
  EXPECT_TRUE(glob_match("a*b*c", "a123b456c"));
  EXPECT_TRUE(glob_match("a*b*c", "abbbcbc"));
  EXPECT_TRUE(glob_match("exact/name", "exact/name"));
  EXPECT_TRUE(glob_match("**", "x"));
  EXPECT_TRUE(glob_match("*model", "org/model"));
  EXPECT_TRUE(glob_match("", ""));
}

TEST(Glob, DoesNotMatch) {
  EXPECT_FALSE(glob_match("org/*", "other/model"));
  EXPECT_FALSE(glob_match("org/*", "org"));
  EXPECT_FALSE(glob_match("org/*", "organisation/model"));
  EXPECT_FALSE(glob_match("?", ""));
  EXPECT_FALSE(glob_match("?", "ab"));
  EXPECT_FALSE(glob_match("a*b*c", "acb"));
  EXPECT_FALSE(glob_match("a*b*c", "abcd"));
  EXPECT_FALSE(glob_match("a*b*c", "xabc"));
  EXPECT_FALSE(glob_match("exact", "exact2"));
  EXPECT_FALSE(glob_match("exact", "Exact"));
  EXPECT_FALSE(glob_match("", "a"));
  EXPECT_FALSE(glob_match("a", ""));
  EXPECT_FALSE(glob_match("[a]", "a"));  // no character classes: '[' is literal
  EXPECT_TRUE(glob_match("[a]", "[a]"));
}

TEST(Glob, PathologicalPatternFinishesQuickly) {
  const std::string name(20000, 'a');
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(glob_match("a*a*a*a*b", name));
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*a*b", name));
  EXPECT_TRUE(glob_match("a*a*a*a*a", name));
  auto elapsed = std::chrono::steady_clock::now() - start;
  // A backtracking matcher would take exponential time; this one is O(pattern x name).
  EXPECT_LT(elapsed, std::chrono::seconds(2));
}

TEST(RegistryTags, TagsThatAreNoVersionMapBothWays) {
  EXPECT_EQ(version_of_tag("8b"), "0.0.0+8b");
  EXPECT_EQ(version_of_tag("8b-instruct-q4_K_M"), "0.0.0+8b-instruct-q4--K--M");
  EXPECT_EQ(version_of_tag("3.1"), "0.0.0+3.1");
  EXPECT_EQ(version_of_tag(""), std::nullopt);
  EXPECT_EQ(version_of_tag("a..b"), std::nullopt);   // an empty build identifier
  EXPECT_EQ(version_of_tag(".a"), std::nullopt);
  EXPECT_EQ(version_of_tag("a/b"), std::nullopt);
  EXPECT_EQ(version_of_tag(std::string(80, 'x')), std::nullopt);  // over 64 characters
  EXPECT_EQ(tag_of_version("0.0.0+8b-instruct-q4--K--M"), "8b-instruct-q4_K_M");
  EXPECT_EQ(tag_of_version("0.0.0+latest"), "latest");
  EXPECT_EQ(version_of_tag("a_-b"), std::nullopt);  // '_' next to '-' could not be read back
  EXPECT_EQ(version_of_tag("a-_b"), std::nullopt);
  EXPECT_EQ(tag_of_version("1.0.0+x"), std::nullopt);
  EXPECT_EQ(tag_of_version("0.0.0"), std::nullopt);
  EXPECT_EQ(tag_of_version("0.0.0+"), std::nullopt);
  for (const char* t : {"q4_0", "latest", "8b-text-fp16", "x_y_z", "a-b_c"})
    EXPECT_EQ(tag_of_version(*version_of_tag(t)), t) << t;
}

}  // namespace
