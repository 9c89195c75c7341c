// run_hooks and hooks_for (supervisor/src/hooks.h) against a fake ExtensionDirectory, the
// real PluginCalls with a send function that records each `hook` request, and a recording
// EventSink. The extensions' verdicts go in through PluginCalls::on_answer (docs/extensions.md).
#include <gtest/gtest.h>

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hooks.h"
#include "plugin_calls.h"

namespace {
namespace fs = std::filesystem;
using namespace modelzoo;
using namespace modelzoo::supervisor;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;
using namespace std::chrono_literals;

ExtensionView ext(const std::string& name, std::vector<std::string> points, int order = 0,
                  std::vector<std::string> handles = {"*"}) {
  ExtensionView x;
  x.name = name;
  x.ready = true;
  x.state = "running";
  x.order = order;
  x.points = std::move(points);
  x.handles = std::move(handles);
  return x;
}

std::vector<std::string> names(const std::vector<ExtensionView>& xs) {
  std::vector<std::string> out;
  for (const auto& x : xs) out.push_back(x.name);
  return out;
}

class FakeDirectory : public ExtensionDirectory {
 public:
  std::vector<ExtensionView> exts;
  std::vector<std::pair<std::string, std::string>> restarted;
  std::vector<ExtensionView> extensions() override { return exts; }
  void restart_plugin(const std::string& name, const std::string& why) override { restarted.emplace_back(name, why); }
};

class RecordingEvents : public core::EventSink {
 public:
  std::vector<json> hooks;
  void publish(const std::string& topic, json body) override {
    if (topic == core::topic::kExtensionHook) hooks.push_back(std::move(body));
  }
};

struct Sent {
  std::string source;
  MessageType type;
  std::uint64_t id;
  std::string method;
  std::uint32_t timeout_ms;
  json body;
};

class HooksTest : public ::testing::Test {
 protected:
  FakeDirectory dir;
  RecordingEvents events;
  std::vector<Sent> sent;
  PluginCalls calls{[this](const std::string& source, Message& m) -> std::optional<bus::Error> {
    sent.push_back({source, m.type, m.id, m.method, m.timeout_ms, m.body});
    return std::nullopt;
  }};
  std::optional<HookOutcome> outcome;
  int done_calls = 0;
  fs::path tmp;

  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "hooks_test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    tmp = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(tmp, ec);
  }

  void run(HookStep step) {
    run_hooks(dir, calls, events, std::move(step), [this](HookOutcome o) {
      ++done_calls;
      outcome = std::move(o);
    });
  }
  HookStep pre_download(const std::string& name = "acme/tiny", const std::string& version = "1.0.0") {
    return HookStep{"pre-download", {name, version}, nullptr, {}, {}};
  }
  // A post-download step with one file on disk.
  HookStep post_download() {
    fs::path in = tmp / "in.bin";
    std::ofstream(in, std::ios::binary) << "input bytes";
    fs::create_directories(tmp / "staging");
    return HookStep{"post-download", {"acme/tiny", "1.0.0"}, json{{"name", "acme/tiny"}, {"version", "1.0.0"}},
                    {{"in.bin", in, 11, std::string(64, 'a')}}, tmp / "staging"};
  }
  std::vector<Sent> hook_requests() const {
    std::vector<Sent> out;
    for (const auto& s : sent)
      if (s.type == MessageType::request) out.push_back(s);
    return out;
  }
  void answer(const Sent& req, json body) {
    Message m = Message::make_reply(req.id, std::move(body));
    calls.on_answer(req.source, m);
  }
};

TEST(HooksFor, FiltersByPointAndHandlesAndSortsByOrderThenName) {
  std::vector<ExtensionView> all = {
      ext("zeta", {"pre-download"}, 1),
      ext("alpha", {"pre-download"}, 1),
      ext("first", {"pre-download", "post-download"}, -5),
      ext("other-point", {"post-download"}, 0),
      ext("other-model", {"pre-download"}, 0, {"other/*"}),
      ext("no-handles", {"pre-download"}, 0, {}),
      ext("every-point", {}, 2),  // points not known yet: fail closed, it serves every point
  };
  EXPECT_EQ(names(hooks_for(all, "pre-download", "acme/tiny")),
            (std::vector<std::string>{"first", "alpha", "zeta", "every-point"}));
  EXPECT_EQ(names(hooks_for(all, "post-download", "acme/tiny")),
            (std::vector<std::string>{"first", "other-point", "every-point"}));
  EXPECT_EQ(names(hooks_for(all, "pre-download", "other/x")),
            (std::vector<std::string>{"first", "other-model", "alpha", "zeta", "every-point"}));
  EXPECT_TRUE(hooks_for(all, "pre-load", "acme/tiny").size() == 1);  // every-point only
}

TEST_F(HooksTest, NoExtensionIsDoneAtOnceWithTheFilesUnchanged) {
  dir.exts = {ext("elsewhere", {"pre-load"}), ext("other-model", {"post-download"}, 0, {"other/*"})};
  auto step = post_download();
  auto files = step.files;
  run(step);
  ASSERT_EQ(done_calls, 1);  // before run_hooks returned
  EXPECT_FALSE(outcome->error);
  ASSERT_EQ(outcome->files.size(), files.size());
  EXPECT_EQ(outcome->files[0].name, files[0].name);
  EXPECT_EQ(outcome->files[0].path, files[0].path);
  EXPECT_EQ(outcome->files[0].sha256, files[0].sha256);
  EXPECT_FALSE(outcome->changed_files);
  EXPECT_TRUE(outcome->applied.empty());
  EXPECT_EQ(outcome->ref.str(), "acme/tiny:1.0.0");
  EXPECT_TRUE(sent.empty());
  EXPECT_TRUE(events.hooks.empty());
}

TEST_F(HooksTest, ContinueIsAppliedAndTheRequestCarriesTheStep) {
  auto x = ext("guard", {"pre-download"});
  x.timeout = 1234ms;
  dir.exts = {x};
  run(pre_download());
  EXPECT_EQ(done_calls, 0);
  auto reqs = hook_requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].source, "guard");
  EXPECT_EQ(reqs[0].method, "hook");
  EXPECT_EQ(reqs[0].timeout_ms, 1234u);
  EXPECT_EQ(reqs[0].body.value("point", ""), "pre-download");
  EXPECT_EQ(reqs[0].body.value("name", ""), "acme/tiny");
  EXPECT_EQ(reqs[0].body.value("version", ""), "1.0.0");
  EXPECT_FALSE(reqs[0].body.contains("output_dir"));

  answer(reqs[0], {{"action", "continue"}, {"message", "looks fine"}});
  ASSERT_EQ(done_calls, 1);
  EXPECT_FALSE(outcome->error);
  EXPECT_EQ(outcome->ref.str(), "acme/tiny:1.0.0");
  ASSERT_EQ(outcome->applied.size(), 1u);
  EXPECT_EQ(outcome->applied[0], (json{{"extension", "guard"}, {"point", "pre-download"}, {"action", "continue"}}));
  ASSERT_EQ(events.hooks.size(), 1u);
  EXPECT_EQ(events.hooks[0].value("outcome", ""), "continue");
  EXPECT_EQ(events.hooks[0].value("message", ""), "looks fine");
}

TEST_F(HooksTest, RejectFailsTheStepWithCodeRejectedAndTheReason) {
  dir.exts = {ext("licence-check", {"pre-download"}), ext("later", {"pre-download"}, 10)};
  run(pre_download());
  ASSERT_EQ(hook_requests().size(), 1u);
  answer(hook_requests()[0], {{"action", "reject"}, {"reason", "licence not allowed"}});
  ASSERT_EQ(done_calls, 1);
  ASSERT_TRUE(outcome->error);
  EXPECT_EQ(outcome->error->code(), ErrorCode::rejected);
  EXPECT_EQ(std::string(outcome->error->what()),
            "extension 'licence-check' rejected 'acme/tiny:1.0.0' at pre-download: licence not allowed");
  EXPECT_EQ(hook_requests().size(), 1u);  // the later extension is not asked
  ASSERT_EQ(events.hooks.size(), 1u);
  EXPECT_EQ(events.hooks[0].value("outcome", ""), "rejected");
}

TEST_F(HooksTest, RewriteAtPreDownloadChangesTheModel) {
  dir.exts = {ext("alias", {"pre-download"})};
  run(pre_download("acme/latest", ""));
  ASSERT_EQ(hook_requests().size(), 1u);
  answer(hook_requests()[0], {{"action", "rewrite"}, {"name", "acme/tiny"}, {"version", "2.0.0"}});
  ASSERT_EQ(done_calls, 1);
  ASSERT_FALSE(outcome->error) << outcome->error->what();
  EXPECT_EQ(outcome->ref.str(), "acme/tiny:2.0.0");
}

TEST_F(HooksTest, ReplaceAtPostDownloadTakesNewFilesAndPassesInputsOn) {
  dir.exts = {ext("convert", {"post-download"})};
  auto step = post_download();
  fs::path in = step.files[0].path;
  run(step);
  auto reqs = hook_requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].body.value("point", ""), "post-download");
  ASSERT_EQ(reqs[0].body.at("files").size(), 1u);
  EXPECT_EQ(reqs[0].body.at("files")[0].value("path", ""), in.string());
  EXPECT_EQ(reqs[0].body.at("metadata").value("name", ""), "acme/tiny");
  fs::path out_dir = reqs[0].body.value("output_dir", "");
  ASSERT_FALSE(out_dir.empty());
  ASSERT_TRUE(fs::is_directory(out_dir));
  EXPECT_EQ(fs::canonical(out_dir.parent_path()), fs::canonical(tmp / "staging"));
  std::ofstream(out_dir / "model.gguf", std::ios::binary) << "converted!";

  answer(reqs[0], {{"action", "replace"},
                   {"files", {{{"name", "model.gguf"}, {"path", (out_dir / "model.gguf").string()}},
                              {{"name", "original.bin"}, {"path", in.string()}}}}});
  ASSERT_EQ(done_calls, 1);
  ASSERT_FALSE(outcome->error) << outcome->error->what();
  EXPECT_TRUE(outcome->changed_files);
  ASSERT_EQ(outcome->files.size(), 2u);
  EXPECT_EQ(outcome->files[0].name, "model.gguf");
  EXPECT_EQ(outcome->files[0].size, 10u);
  EXPECT_TRUE(outcome->files[0].sha256.empty());  // hashed when committed
  EXPECT_EQ(outcome->files[1].name, "original.bin");
  EXPECT_EQ(outcome->files[1].path, in);
  EXPECT_EQ(outcome->files[1].sha256, std::string(64, 'a'));
  ASSERT_EQ(outcome->applied.size(), 1u);
  EXPECT_EQ(outcome->applied[0].value("action", ""), "replace");
}

TEST_F(HooksTest, ReplaceWithAFileOutsideTheOutputDirectoryFails) {
  dir.exts = {ext("convert", {"post-download"})};
  run(post_download());
  fs::path stray = tmp / "stray.bin";
  std::ofstream(stray, std::ios::binary) << "not yours";
  answer(hook_requests().at(0), {{"action", "replace"}, {"files", {{{"name", "x.bin"}, {"path", stray.string()}}}}});
  ASSERT_EQ(done_calls, 1);
  ASSERT_TRUE(outcome->error);
  EXPECT_EQ(outcome->error->code(), ErrorCode::internal);
  EXPECT_NE(std::string(outcome->error->what()).find("outside its output directory"), std::string::npos)
      << outcome->error->what();
}

TEST_F(HooksTest, ReplaceOutsidePostDownloadFails) {
  dir.exts = {ext("convert", {"pre-download"})};
  run(pre_download());
  answer(hook_requests().at(0), {{"action", "replace"}, {"files", json::array()}});
  ASSERT_EQ(done_calls, 1);
  ASSERT_TRUE(outcome->error);
  EXPECT_EQ(outcome->error->code(), ErrorCode::internal);
  EXPECT_NE(std::string(outcome->error->what()).find("only at post-download"), std::string::npos);
}

TEST_F(HooksTest, TimeoutRestartsThePluginAndFailsTheStep) {
  auto x = ext("slow", {"pre-download"});
  x.timeout = 50ms;
  dir.exts = {x};
  run(pre_download());
  ASSERT_EQ(hook_requests().size(), 1u);
  calls.expire(PluginCalls::Clock::now() + 1s);  // its deadline has passed
  ASSERT_EQ(done_calls, 1);
  ASSERT_TRUE(outcome->error);
  EXPECT_EQ(outcome->error->code(), ErrorCode::timeout);
  ASSERT_EQ(dir.restarted.size(), 1u);
  EXPECT_EQ(dir.restarted[0].first, "slow");
  EXPECT_NE(dir.restarted[0].second.find("50 ms"), std::string::npos) << dir.restarted[0].second;
  bool cancelled = false;
  for (const auto& s : sent) cancelled |= s.type == MessageType::cancel && s.source == "slow";
  EXPECT_TRUE(cancelled);
  ASSERT_EQ(events.hooks.size(), 1u);
  EXPECT_EQ(events.hooks[0].value("outcome", ""), "failed");
}

TEST_F(HooksTest, AnErrorOtherThanATimeoutRestartsNothing) {
  dir.exts = {ext("broken", {"pre-download"})};
  run(pre_download());
  Message m = Message::make_error(hook_requests().at(0).id, ErrorCode::rejected, "I refuse");
  calls.on_answer("broken", m);
  ASSERT_EQ(done_calls, 1);
  ASSERT_TRUE(outcome->error);
  // An extension's own error is its failure, never a verdict: not `rejected`.
  EXPECT_EQ(outcome->error->code(), ErrorCode::internal);
  EXPECT_TRUE(dir.restarted.empty());
}

TEST_F(HooksTest, HooksRunOneAfterAnotherInOrderAndOnlyThoseServingThePointAndModel) {
  dir.exts = {ext("b", {"pre-download"}, 1), ext("a", {"pre-download"}, 1), ext("c", {"pre-download"}, 0),
              ext("post-only", {"post-download"}, -1), ext("not-this-model", {"pre-download"}, -1, {"other/*"})};
  run(pre_download());
  std::vector<std::string> order;
  while (done_calls == 0) {
    auto reqs = hook_requests();
    ASSERT_EQ(reqs.size(), order.size() + 1) << "one hook at a time";
    order.push_back(reqs.back().source);
    answer(reqs.back(), {{"action", "continue"}});
  }
  EXPECT_EQ(order, (std::vector<std::string>{"c", "a", "b"}));
  ASSERT_FALSE(outcome->error);
  EXPECT_EQ(outcome->applied.size(), 3u);
}

TEST_F(HooksTest, ARewriteOutOfAnExtensionsPatternsSkipsIt) {
  dir.exts = {ext("alias", {"pre-download"}, 0), ext("acme-only", {"pre-download"}, 1, {"acme/*"})};
  run(pre_download());
  answer(hook_requests().at(0), {{"action", "rewrite"}, {"name", "other/tiny"}, {"version", "1.0.0"}});
  ASSERT_EQ(done_calls, 1);
  EXPECT_FALSE(outcome->error);
  EXPECT_EQ(hook_requests().size(), 1u);
  EXPECT_EQ(outcome->ref.str(), "other/tiny:1.0.0");
}

TEST_F(HooksTest, AnExtensionNotRunningFailsClosedWithoutACall) {
  auto x = ext("down", {"pre-download"});
  x.ready = false;
  x.state = "restarting";
  dir.exts = {x};
  run(pre_download());
  ASSERT_EQ(done_calls, 1);
  ASSERT_TRUE(outcome->error);
  EXPECT_EQ(outcome->error->code(), ErrorCode::unavailable);
  EXPECT_NE(std::string(outcome->error->what()).find("restarting"), std::string::npos);
  EXPECT_TRUE(sent.empty());
}

}  // namespace
