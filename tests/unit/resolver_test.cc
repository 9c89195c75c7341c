// Unit tests of resolution across sources and failover (core/include/modelzoo/core/resolver.h),
// driven by a fake PluginCaller whose answers the test delivers, in any order.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/core/resolver.h"

namespace {

using modelzoo::bus::Error;
using modelzoo::bus::ErrorCode;
using modelzoo::bus::ModelMetadata;
using modelzoo::bus::ModelRef;
using modelzoo::core::CallResult;
using modelzoo::core::FailoverOutcome;
using modelzoo::core::PluginCaller;
using modelzoo::core::PluginManager;
using modelzoo::core::PluginRecord;
using modelzoo::core::Resolution;
using modelzoo::core::SourceAnswer;
using nlohmann::json;
using testing::HasSubstr;
using Names = std::vector<std::string>;

const std::string kAbcSha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

// Records every call; the test answers them later, in any order. Never calls `done` from
// inside call(), as the PluginCaller contract requires.
class FakeCaller : public PluginCaller {
 public:
  struct Call {
    std::string plugin, method;
    json body;
    std::uint32_t timeout_ms = 0;
    std::function<void(CallResult)> done;
    bool answered = false;
  };

  void call(const std::string& plugin, const std::string& method, json body, std::uint32_t timeout_ms,
            std::function<void(CallResult)> done) override {
    calls.push_back({plugin, method, std::move(body), timeout_ms, std::move(done), false});
  }

  Call& find(const std::string& plugin) {
    for (auto& c : calls)
      if (c.plugin == plugin && !c.answered) return c;
    ADD_FAILURE() << "no unanswered call to " << plugin;
    static Call none;
    none = Call{};
    none.done = [](CallResult) {};
    return none;
  }
  void answer(const std::string& plugin, CallResult r) {
    Call& c = find(plugin);
    c.answered = true;
    auto done = std::move(c.done);  // `calls` may change while done runs
    done(std::move(r));
  }
  void reply(const std::string& plugin, json body) { answer(plugin, CallResult{std::move(body), std::nullopt}); }
  void fail(const std::string& plugin, ErrorCode code, const std::string& message) {
    answer(plugin, CallResult{json(), Error(code, message)});
  }
  std::size_t unanswered() const {
    std::size_t n = 0;
    for (const auto& c : calls) n += c.answered ? 0 : 1;
    return n;
  }
  Names plugins_called() const {
    Names out;
    for (const auto& c : calls) out.push_back(c.plugin);
    return out;
  }

  std::deque<Call> calls;
};

PluginRecord rec(std::string name, int priority, std::vector<std::string> handles = {"*"},
                 std::vector<std::string> capabilities = {"metadata", "download"}) {
  PluginRecord p;
  p.name = std::move(name);
  p.plugin = p.name;
  p.priority = priority;
  p.handles = std::move(handles);
  p.capabilities = std::move(capabilities);
  return p;
}

json metadata(const std::string& name, const std::string& version = "1.0.0", const std::string& description = "") {
  return {{"name", name},
          {"version", version},
          {"description", description},
          {"files", json::array({{{"name", "weights.bin"}, {"size", std::uint64_t{3}}, {"sha256", kAbcSha}}})}};
}

// Runs resolve() and captures its result.
struct Resolved {
  std::optional<Resolution> result;
  int calls = 0;
};
std::shared_ptr<Resolved> start(const PluginManager& pm, FakeCaller& caller, const std::string& ref,
                                std::uint32_t timeout_ms = 5000) {
  auto r = std::make_shared<Resolved>();
  modelzoo::core::resolve(pm, caller, modelzoo::bus::parse_model_ref(ref), timeout_ms, [r](Resolution res) {
    ++r->calls;
    r->result = std::move(res);
  });
  return r;
}

Names source_names(const Resolution& r) {
  Names out;
  for (const auto& s : r.sources) out.push_back(s.plugin.name);
  return out;
}
Names available_names(const Resolution& r) {
  Names out;
  for (const auto* s : r.available()) out.push_back(s->plugin.name);
  return out;
}

// ---- resolve --------------------------------------------------------------------------------

TEST(Resolve, NoPluginsFinishesAtOnceWithNotFound) {
  PluginManager pm;
  FakeCaller caller;
  auto r = start(pm, caller, "org/model");
  ASSERT_EQ(r->calls, 1);  // before resolve() returned
  EXPECT_TRUE(caller.calls.empty());
  const Resolution& res = *r->result;
  EXPECT_EQ(res.ref.name, "org/model");
  EXPECT_TRUE(res.sources.empty());
  EXPECT_EQ(res.best(), nullptr);
  EXPECT_TRUE(res.available().empty());
  Error e = res.failure();
  EXPECT_EQ(e.code(), ErrorCode::not_found);
  EXPECT_THAT(e.what(), HasSubstr("no source handles"));
  EXPECT_THAT(e.what(), HasSubstr("org/model"));
}

TEST(Resolve, NoCandidateWhenPatternsOrCapabilitiesDoNotFit) {
  PluginManager pm;
  pm.add(rec("other", 5, {"other/*"}));
  pm.add(rec("no-metadata", 5, {"*"}, {"download"}));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model");
  ASSERT_EQ(r->calls, 1);
  EXPECT_TRUE(caller.calls.empty());
  EXPECT_TRUE(r->result->sources.empty());
  EXPECT_THAT(r->result->failure().what(), HasSubstr("no source handles"));
}

TEST(Resolve, AsksEveryCandidateInParallelBeforeAnyAnswer) {
  PluginManager pm;
  pm.add(rec("low", 0));
  pm.add(rec("high", 10));
  pm.add(rec("mid", 5));
  pm.add(rec("unrelated", 99, {"x/*"}));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model:1.2.3", 1234);
  EXPECT_EQ(r->calls, 0);
  ASSERT_EQ(caller.calls.size(), 3u);
  EXPECT_EQ(caller.plugins_called(), Names({"high", "mid", "low"}));
  for (const auto& c : caller.calls) {
    EXPECT_EQ(c.method, "metadata");
    EXPECT_EQ(c.timeout_ms, 1234u);
    EXPECT_EQ(c.body, json({{"name", "org/model"}, {"version", "1.2.3"}}));
  }
  caller.reply("mid", metadata("org/model", "1.2.3"));
  EXPECT_EQ(r->calls, 0);
  caller.fail("high", ErrorCode::not_found, "no");
  EXPECT_EQ(r->calls, 0);
  caller.reply("low", metadata("org/model", "1.2.3"));
  ASSERT_EQ(r->calls, 1);
  EXPECT_EQ(caller.unanswered(), 0u);
  EXPECT_EQ(source_names(*r->result), Names({"high", "mid", "low"}));
}

TEST(Resolve, LatestRequestCarriesNoVersion) {
  PluginManager pm;
  pm.add(rec("p", 0));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model");
  ASSERT_EQ(caller.calls.size(), 1u);
  EXPECT_EQ(caller.calls[0].body, json({{"name", "org/model"}}));
  caller.reply("p", metadata("org/model", "3.1.4"));
  ASSERT_EQ(r->calls, 1);
  ASSERT_NE(r->result->best(), nullptr);
  EXPECT_EQ(r->result->best()->metadata->version, "3.1.4");  // any version answers "latest"
}

TEST(Resolve, BestIsHighestPriorityThatHasTheModel) {
  PluginManager pm;
  pm.add(rec("high", 10));
  pm.add(rec("mid", 5));
  pm.add(rec("low", 0));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model");
  caller.reply("low", metadata("org/model", "1.0.0", "from low"));
  caller.reply("mid", metadata("org/model", "1.0.0", "from mid"));
  caller.reply("high", metadata("org/model", "1.0.0", "from high"));
  ASSERT_EQ(r->calls, 1);
  const auto* best = r->result->best();
  ASSERT_NE(best, nullptr);
  EXPECT_EQ(best->plugin.name, "high");
  EXPECT_EQ(best->metadata->description, "from high");
  EXPECT_EQ(available_names(*r->result), Names({"high", "mid", "low"}));
}

TEST(Resolve, HigherPrioritySourcesWithoutTheModelAreSkipped) {
  PluginManager pm;
  pm.add(rec("p1-notfound", 60));
  pm.add(rec("p2-error", 50));
  pm.add(rec("p3-invalid", 40));
  pm.add(rec("p4-othermodel", 30));
  pm.add(rec("p5-notamap", 20));
  pm.add(rec("p6-good", 10));
  pm.add(rec("p7-good", 0));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model");
  caller.fail("p1-notfound", ErrorCode::not_found, "no such model");
  caller.fail("p2-error", ErrorCode::unavailable, "upstream down");
  json bad = metadata("org/model");
  bad["files"][0]["sha256"] = "nothex";
  caller.reply("p3-invalid", bad);
  caller.reply("p4-othermodel", metadata("org/other"));
  caller.reply("p5-notamap", json::array({1, 2}));
  caller.reply("p7-good", metadata("org/model", "1.0.0", "p7"));
  caller.reply("p6-good", metadata("org/model", "1.0.0", "p6"));
  ASSERT_EQ(r->calls, 1);
  const Resolution& res = *r->result;
  ASSERT_NE(res.best(), nullptr);
  EXPECT_EQ(res.best()->plugin.name, "p6-good");
  EXPECT_EQ(res.best()->metadata->description, "p6");
  EXPECT_EQ(available_names(res), Names({"p6-good", "p7-good"}));

  ASSERT_EQ(res.sources.size(), 7u);
  auto err = [&](std::size_t i) -> const Error& {
    EXPECT_FALSE(res.sources[i].metadata.has_value()) << i;
    EXPECT_TRUE(res.sources[i].error.has_value()) << i;
    return *res.sources[i].error;
  };
  EXPECT_EQ(err(0).code(), ErrorCode::not_found);
  EXPECT_EQ(err(1).code(), ErrorCode::unavailable);
  EXPECT_STREQ(err(1).what(), "upstream down");
  EXPECT_EQ(err(2).code(), ErrorCode::internal);
  EXPECT_THAT(err(2).what(), HasSubstr("invalid metadata"));
  EXPECT_THAT(err(2).what(), HasSubstr("sha256"));
  EXPECT_EQ(err(3).code(), ErrorCode::internal);
  EXPECT_THAT(err(3).what(), HasSubstr("org/other"));
  EXPECT_EQ(err(4).code(), ErrorCode::internal);
  EXPECT_THAT(err(4).what(), HasSubstr("not a map"));
  for (std::size_t i : {5u, 6u}) {
    EXPECT_TRUE(res.sources[i].metadata.has_value());
    EXPECT_FALSE(res.sources[i].error.has_value());
  }
}

TEST(Resolve, MetadataForAnotherVersionIsSkippedWhenAVersionWasAsked) {
  PluginManager pm;
  pm.add(rec("wrong", 10));
  pm.add(rec("right", 0));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model:2.0.0");
  caller.reply("wrong", metadata("org/model", "1.0.0"));
  caller.reply("right", metadata("org/model", "2.0.0"));
  ASSERT_EQ(r->calls, 1);
  ASSERT_NE(r->result->best(), nullptr);
  EXPECT_EQ(r->result->best()->plugin.name, "right");
  ASSERT_TRUE(r->result->sources[0].error.has_value());
  EXPECT_EQ(r->result->sources[0].error->code(), ErrorCode::internal);
  EXPECT_THAT(r->result->sources[0].error->what(), HasSubstr("org/model:1.0.0"));
}

TEST(Resolve, TiesAreBrokenByNameWhateverTheOrderOfAnswers) {
  for (bool reverse : {false, true}) {
    SCOPED_TRACE(reverse ? "reverse" : "forward");
    PluginManager pm;
    pm.add(rec("charlie", 5));
    pm.add(rec("alpha", 5));
    pm.add(rec("bravo", 5));
    FakeCaller caller;
    auto r = start(pm, caller, "m");
    EXPECT_EQ(caller.plugins_called(), Names({"alpha", "bravo", "charlie"}));
    Names order = {"alpha", "bravo", "charlie"};
    if (reverse) std::reverse(order.begin(), order.end());
    for (const auto& n : order) caller.reply(n, metadata("m", "1.0.0", n));
    ASSERT_EQ(r->calls, 1);
    ASSERT_NE(r->result->best(), nullptr);
    EXPECT_EQ(r->result->best()->plugin.name, "alpha");
    EXPECT_EQ(r->result->best()->metadata->description, "alpha");
    EXPECT_EQ(available_names(*r->result), Names({"alpha", "bravo", "charlie"}));
  }
}

TEST(Resolve, AnswersInReverseOrderLandOnTheirOwnSource) {
  // "p" + std::to_string(i) at -O3 trips GCC 12's false -Wrestrict (PR105651): appended instead.
  auto numbered = [](const char* prefix, int i) { return std::string(prefix).append(std::to_string(i)); };
  PluginManager pm;
  for (int i = 0; i < 6; ++i) pm.add(rec(numbered("p", i), 100 - i));
  FakeCaller caller;
  auto r = start(pm, caller, "m");
  ASSERT_EQ(caller.calls.size(), 6u);
  for (int i = 5; i >= 0; --i) {
    EXPECT_EQ(r->calls, 0);
    std::string n = numbered("p", i);
    if (i % 2) caller.fail(n, ErrorCode::timeout, std::string("slow ").append(n));
    else caller.reply(n, metadata("m", numbered("1.0.", i), n));
  }
  ASSERT_EQ(r->calls, 1);
  const Resolution& res = *r->result;
  EXPECT_EQ(source_names(res), Names({"p0", "p1", "p2", "p3", "p4", "p5"}));
  for (int i = 0; i < 6; ++i) {
    const auto& s = res.sources[static_cast<std::size_t>(i)];
    if (i % 2) {
      ASSERT_TRUE(s.error.has_value());
      EXPECT_EQ(std::string(s.error->what()), numbered("slow p", i));
    } else {
      ASSERT_TRUE(s.metadata.has_value());
      EXPECT_EQ(s.metadata->description, numbered("p", i));
      EXPECT_EQ(s.metadata->version, numbered("1.0.", i));
    }
  }
  EXPECT_EQ(res.best()->plugin.name, "p0");
  EXPECT_EQ(available_names(res), Names({"p0", "p2", "p4"}));
}

TEST(Resolve, ResultOutlivesTheCallerAndManager) {
  std::shared_ptr<Resolved> r;
  FakeCaller caller;
  {
    PluginManager pm;
    pm.add(rec("p", 0));
    r = start(pm, caller, "m");
  }  // manager gone, calls pending
  caller.reply("p", metadata("m"));
  ASSERT_EQ(r->calls, 1);
  EXPECT_EQ(r->result->best()->plugin.name, "p");
}

// ---- failure() ------------------------------------------------------------------------------

TEST(Failure, NotFoundWhenEverySourceSaidSo) {
  PluginManager pm;
  pm.add(rec("a", 1));
  pm.add(rec("b", 0));
  FakeCaller caller;
  auto r = start(pm, caller, "org/model:1.0.0");
  caller.fail("b", ErrorCode::not_found, "nope");
  caller.fail("a", ErrorCode::not_found, "nope");
  ASSERT_EQ(r->calls, 1);
  EXPECT_EQ(r->result->best(), nullptr);
  Error e = r->result->failure();
  EXPECT_EQ(e.code(), ErrorCode::not_found);
  EXPECT_THAT(e.what(), HasSubstr("org/model:1.0.0"));
  EXPECT_THAT(e.what(), HasSubstr("2 source(s)"));
}

TEST(Failure, OtherErrorWinsOverNotFound) {
  PluginManager pm;
  pm.add(rec("a-notfound", 9));
  pm.add(rec("b-timeout", 8));
  pm.add(rec("c-unavailable", 7));
  FakeCaller caller;
  auto r = start(pm, caller, "m");
  caller.fail("c-unavailable", ErrorCode::unavailable, "down");
  caller.fail("b-timeout", ErrorCode::timeout, "took too long");
  caller.fail("a-notfound", ErrorCode::not_found, "nope");
  ASSERT_EQ(r->calls, 1);
  Error e = r->result->failure();
  EXPECT_EQ(e.code(), ErrorCode::timeout);  // the first other error in source order
  EXPECT_THAT(e.what(), HasSubstr("b-timeout"));
  EXPECT_THAT(e.what(), HasSubstr("took too long"));
}

TEST(Failure, InvalidMetadataCountsAsInternalError) {
  PluginManager pm;
  pm.add(rec("a", 1));
  pm.add(rec("b", 0));
  FakeCaller caller;
  auto r = start(pm, caller, "m");
  caller.fail("a", ErrorCode::not_found, "nope");
  caller.reply("b", metadata("not-m"));
  ASSERT_EQ(r->calls, 1);
  Error e = r->result->failure();
  EXPECT_EQ(e.code(), ErrorCode::internal);
  EXPECT_THAT(e.what(), HasSubstr("b: "));
}

// ---- with_failover --------------------------------------------------------------------------

SourceAnswer have(const std::string& name, int priority) {
  SourceAnswer s;
  s.plugin = rec(name, priority);
  s.metadata = ModelMetadata::from_json(metadata("m", "1.0.0", name));
  return s;
}
SourceAnswer lack(const std::string& name, int priority, ErrorCode code = ErrorCode::not_found) {
  SourceAnswer s;
  s.plugin = rec(name, priority);
  s.error = Error(code, "lacks");
  return s;
}

// Records attempts; the test finishes them later.
struct Attempts {
  struct Pending {
    std::string plugin;
    std::function<void(std::optional<Error>)> finish;
  };
  std::vector<Pending> pending;
  Names tried;
  modelzoo::core::Attempt attempt() {
    return [this](const SourceAnswer& s, std::function<void(std::optional<Error>)> finish) {
      tried.push_back(s.plugin.name);
      pending.push_back({s.plugin.name, std::move(finish)});
    };
  }
  // Finishes the latest attempt.
  void finish(std::optional<Error> e) {
    ASSERT_FALSE(pending.empty());
    auto f = std::move(pending.back().finish);
    pending.pop_back();
    f(std::move(e));
  }
};

struct Outcome {
  int calls = 0;
  const SourceAnswer* source = nullptr;
  std::vector<std::pair<std::string, Error>> failures;
};
std::function<void(FailoverOutcome)> capture(Outcome& o) {
  return [&o](FailoverOutcome out) {
    ++o.calls;
    o.source = out.source;
    o.failures = std::move(out.failures);
  };
}

std::shared_ptr<const Resolution> resolution(std::vector<SourceAnswer> sources) {
  auto r = std::make_shared<Resolution>();
  r->ref = modelzoo::bus::parse_model_ref("m");
  r->sources = std::move(sources);
  return r;
}

TEST(Failover, BestFirstAndStopsAtFirstSuccess) {
  auto res = resolution({lack("x", 30), have("a", 20), have("b", 10), have("c", 0)});
  Attempts at;
  Outcome o;
  modelzoo::core::with_failover(res, at.attempt(), capture(o));
  EXPECT_EQ(at.tried, Names({"a"}));  // one attempt at a time
  EXPECT_EQ(o.calls, 0);
  at.finish(Error(ErrorCode::unavailable, "a broke"));
  EXPECT_EQ(at.tried, Names({"a", "b"}));
  EXPECT_EQ(o.calls, 0);
  at.finish(std::nullopt);
  ASSERT_EQ(o.calls, 1);
  EXPECT_EQ(at.tried, Names({"a", "b"}));  // c never tried
  ASSERT_NE(o.source, nullptr);
  EXPECT_EQ(o.source->plugin.name, "b");
  EXPECT_EQ(o.source, &res->sources[2]);  // points into the resolution
  ASSERT_EQ(o.failures.size(), 1u);
  EXPECT_EQ(o.failures[0].first, "a");
  EXPECT_EQ(o.failures[0].second.code(), ErrorCode::unavailable);
  EXPECT_STREQ(o.failures[0].second.what(), "a broke");
}

TEST(Failover, FirstSucceedsAtOnce) {
  auto res = resolution({have("a", 1), have("b", 0)});
  Attempts at;
  Outcome o;
  modelzoo::core::with_failover(res, at.attempt(), capture(o));
  at.finish(std::nullopt);
  ASSERT_EQ(o.calls, 1);
  EXPECT_EQ(o.source->plugin.name, "a");
  EXPECT_TRUE(o.failures.empty());
  EXPECT_EQ(at.tried, Names({"a"}));
}

TEST(Failover, AllFailingReportsEveryFailureInOrder) {
  auto res = resolution({have("a", 3), lack("skip", 2, ErrorCode::timeout), have("b", 1), have("c", 0)});
  Attempts at;
  Outcome o;
  modelzoo::core::with_failover(res, at.attempt(), capture(o));
  at.finish(Error(ErrorCode::timeout, "ta"));
  at.finish(Error(ErrorCode::internal, "tb"));
  EXPECT_EQ(o.calls, 0);
  at.finish(Error(ErrorCode::unavailable, "tc"));
  ASSERT_EQ(o.calls, 1);
  EXPECT_EQ(o.source, nullptr);
  EXPECT_EQ(at.tried, Names({"a", "b", "c"}));
  ASSERT_EQ(o.failures.size(), 3u);
  EXPECT_EQ(o.failures[0].first, "a");
  EXPECT_EQ(o.failures[0].second.code(), ErrorCode::timeout);
  EXPECT_EQ(o.failures[1].first, "b");
  EXPECT_EQ(o.failures[1].second.code(), ErrorCode::internal);
  EXPECT_EQ(o.failures[2].first, "c");
  EXPECT_EQ(o.failures[2].second.code(), ErrorCode::unavailable);
  EXPECT_STREQ(o.failures[2].second.what(), "tc");
}

TEST(Failover, NoAvailableSourceFinishesAtOnce) {
  for (auto sources : {std::vector<SourceAnswer>{}, std::vector<SourceAnswer>{lack("a", 1), lack("b", 0)}}) {
    auto res = resolution(sources);
    Attempts at;
    Outcome o;
    modelzoo::core::with_failover(res, at.attempt(), capture(o));
    ASSERT_EQ(o.calls, 1);
    EXPECT_EQ(o.source, nullptr);
    EXPECT_TRUE(o.failures.empty());
    EXPECT_TRUE(at.tried.empty());
  }
}

TEST(Failover, SynchronousAttemptsWork) {
  auto res = resolution({have("a", 2), have("b", 1), have("c", 0)});
  Names tried;
  Outcome o;
  modelzoo::core::with_failover(
      res,
      [&](const SourceAnswer& s, std::function<void(std::optional<Error>)> finish) {
        tried.push_back(s.plugin.name);
        if (s.plugin.name == "c") finish(std::nullopt);
        else finish(Error(ErrorCode::unavailable, s.plugin.name));
      },
      capture(o));
  ASSERT_EQ(o.calls, 1);
  EXPECT_EQ(tried, Names({"a", "b", "c"}));
  EXPECT_EQ(o.source->plugin.name, "c");
  EXPECT_EQ(o.failures.size(), 2u);
}

TEST(Failover, AfterResolve) {
  PluginManager pm;
  pm.add(rec("high", 10));
  pm.add(rec("low", 0));
  pm.add(rec("missing", 20));
  FakeCaller caller;
  auto r = start(pm, caller, "m");
  caller.reply("low", metadata("m"));
  caller.fail("missing", ErrorCode::not_found, "no");
  caller.reply("high", metadata("m"));
  ASSERT_EQ(r->calls, 1);
  auto res = std::make_shared<const Resolution>(std::move(*r->result));
  Attempts at;
  Outcome o;
  modelzoo::core::with_failover(res, at.attempt(), capture(o));
  at.finish(Error(ErrorCode::timeout, "stalled"));
  at.finish(std::nullopt);
  ASSERT_EQ(o.calls, 1);
  EXPECT_EQ(at.tried, Names({"high", "low"}));
  EXPECT_EQ(o.source->plugin.name, "low");
}

}  // namespace
