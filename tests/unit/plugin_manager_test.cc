// Unit tests of the plugin registry and source order (core/include/modelzoo/core/plugin_manager.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "modelzoo/core/plugin_manager.h"

namespace {

using modelzoo::core::asked_before;
using modelzoo::core::PluginManager;
using modelzoo::core::PluginRecord;

PluginRecord rec(std::string name, int priority, std::vector<std::string> handles = {"*"},
                 std::vector<std::string> capabilities = {"metadata", "list", "download"}) {
  PluginRecord p;
  p.name = std::move(name);
  p.plugin = "plugin-" + p.name;
  p.version = "1.0.0";
  p.priority = priority;
  p.handles = std::move(handles);
  p.capabilities = std::move(capabilities);
  return p;
}

std::vector<std::string> names(const std::vector<PluginRecord>& v) {
  std::vector<std::string> out;
  for (const auto& p : v) out.push_back(p.name);
  return out;
}
using Names = std::vector<std::string>;

TEST(PluginManager, StartsEmpty) {
  PluginManager m;
  EXPECT_EQ(m.size(), 0u);
  EXPECT_TRUE(m.list().empty());
  EXPECT_EQ(m.get("x"), nullptr);
  EXPECT_FALSE(m.remove("x"));
  EXPECT_TRUE(m.candidates("any/model").empty());
}

TEST(PluginManager, AddGetRemove) {
  PluginManager m;
  m.add(rec("local", 10));
  m.add(rec("memory", 0));
  EXPECT_EQ(m.size(), 2u);
  const PluginRecord* p = m.get("local");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "local");
  EXPECT_EQ(p->plugin, "plugin-local");
  EXPECT_EQ(p->priority, 10);
  EXPECT_EQ(p->kind, "registry");
  EXPECT_EQ(m.get("nope"), nullptr);

  EXPECT_TRUE(m.remove("local"));
  EXPECT_EQ(m.get("local"), nullptr);
  EXPECT_FALSE(m.remove("local"));
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(names(m.list()), Names({"memory"}));
}

TEST(PluginManager, AddReplacesSameName) {
  PluginManager m;
  m.add(rec("local", 10, {"org/*"}));
  m.add(rec("local", -5, {"other/*"}));
  EXPECT_EQ(m.size(), 1u);
  ASSERT_NE(m.get("local"), nullptr);
  EXPECT_EQ(m.get("local")->priority, -5);
  EXPECT_TRUE(m.candidates("org/x").empty());
  EXPECT_EQ(names(m.candidates("other/x")), Names({"local"}));
}

TEST(PluginManager, ListIsInSourceOrder) {
  PluginManager m;
  m.add(rec("zeta", 5));
  m.add(rec("alpha", 0));
  m.add(rec("mid", 5));
  m.add(rec("top", 100));
  m.add(rec("neg", -3));
  m.add(rec("beta", 5));
  EXPECT_EQ(names(m.list()), Names({"top", "beta", "mid", "zeta", "alpha", "neg"}));
}

TEST(PluginManager, CandidatesSortedByPriorityThenName) {
  PluginManager m;
  // Added in an order unrelated to the expected one.
  m.add(rec("c", 1));
  m.add(rec("b", 1));
  m.add(rec("z", 7));
  m.add(rec("a", 1));
  m.add(rec("low", -10));
  EXPECT_EQ(names(m.candidates("org/model")), Names({"z", "a", "b", "c", "low"}));
}

TEST(PluginManager, CandidatesFollowHandlesPatterns) {
  PluginManager m;
  m.add(rec("org-only", 10, {"org/*"}));
  m.add(rec("exact", 5, {"other/model"}));
  m.add(rec("multi", 3, {"x/*", "y/?"}));
  m.add(rec("everything", 0, {"*"}));
  m.add(rec("nothing", 50, {}));
  EXPECT_EQ(names(m.candidates("org/model")), Names({"org-only", "everything"}));
  EXPECT_EQ(names(m.candidates("org/deep/model")), Names({"org-only", "everything"}));
  EXPECT_EQ(names(m.candidates("other/model")), Names({"exact", "everything"}));
  EXPECT_EQ(names(m.candidates("other/model2")), Names({"everything"}));
  EXPECT_EQ(names(m.candidates("x/anything")), Names({"multi", "everything"}));
  EXPECT_EQ(names(m.candidates("y/a")), Names({"multi", "everything"}));
  EXPECT_EQ(names(m.candidates("y/ab")), Names({"everything"}));
  EXPECT_EQ(names(m.candidates("organisation/model")), Names({"everything"}));
}

TEST(PluginManager, CandidateListedOnceWhenSeveralPatternsMatch) {
  PluginManager m;
  m.add(rec("p", 0, {"*", "org/*", "org/model"}));
  EXPECT_EQ(names(m.candidates("org/model")), Names({"p"}));
}

TEST(PluginManager, CandidatesFilterByCapability) {
  PluginManager m;
  m.add(rec("full", 1, {"*"}, {"metadata", "download", "list"}));
  m.add(rec("meta-only", 2, {"*"}, {"metadata"}));
  m.add(rec("list-only", 3, {"*"}, {"list"}));
  m.add(rec("none", 4, {"*"}, {}));
  EXPECT_EQ(names(m.candidates("m")), Names({"meta-only", "full"}));  // default: metadata
  EXPECT_EQ(names(m.candidates("m", "metadata")), Names({"meta-only", "full"}));
  EXPECT_EQ(names(m.candidates("m", "download")), Names({"full"}));
  EXPECT_EQ(names(m.candidates("m", "list")), Names({"list-only", "full"}));
  EXPECT_TRUE(m.candidates("m", "search").empty());
  EXPECT_TRUE(m.candidates("m", "").empty());
}

TEST(PluginManager, CandidatesAreCopies) {
  PluginManager m;
  m.add(rec("p", 1));
  auto c = m.candidates("a");
  m.remove("p");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].name, "p");
  EXPECT_EQ(c[0].handles, std::vector<std::string>({"*"}));
}

TEST(AskedBefore, IsAStrictOrder) {
  auto hi = rec("b", 10), lo = rec("a", 1), tie_a = rec("a", 10), tie_b = rec("b", 10);
  EXPECT_TRUE(asked_before(hi, lo));
  EXPECT_FALSE(asked_before(lo, hi));
  EXPECT_TRUE(asked_before(tie_a, tie_b));
  EXPECT_FALSE(asked_before(tie_b, tie_a));
  EXPECT_FALSE(asked_before(tie_a, tie_a));  // irreflexive
  auto neg = rec("a", -1);
  EXPECT_TRUE(asked_before(lo, neg));
}

}  // namespace
