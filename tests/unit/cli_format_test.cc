// Unit tests of the `modelzoo` CLI's text formatting (cli/format.h, cli/views.h).
// Links: modelzoo_cli_format, GTest::gtest_main.

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "format.h"
#include "views.h"

namespace modelzoo::cli {
namespace {

using nlohmann::json;

constexpr std::uint64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;

// ---- sizes and durations -----------------------------------------------------------------

TEST(HumanSize, BytesHaveNoDecimals) {
  EXPECT_EQ(human_size(0), "0 B");
  EXPECT_EQ(human_size(1), "1 B");
  EXPECT_EQ(human_size(1023), "1023 B");
}

TEST(HumanSize, LargerSizesUseBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(human_size(KiB), "1.0 KiB");
  EXPECT_EQ(human_size(1536), "1.5 KiB");
  EXPECT_EQ(human_size(120 * MiB), "120.0 MiB");
  EXPECT_EQ(human_size(266 * MiB), "266.0 MiB");
  EXPECT_EQ(human_size(3 * GiB / 2), "1.5 GiB");
  EXPECT_EQ(human_size(2048 * GiB), "2.0 TiB");
}

TEST(HumanSize, RoundingUpMovesToTheNextUnit) {
  EXPECT_EQ(human_size(MiB - 1), "1.0 MiB");  // not "1024.0 KiB"
  EXPECT_EQ(human_size(GiB - 1), "1.0 GiB");
}

TEST(HumanRate, AppendsPerSecond) {
  EXPECT_EQ(human_rate(85.3 * MiB), "85.3 MiB/s");
  EXPECT_EQ(human_rate(500), "500 B/s");
  EXPECT_EQ(human_rate(0), "0 B/s");
  EXPECT_EQ(human_rate(-5), "0 B/s");
  EXPECT_EQ(human_rate(std::nan("")), "0 B/s");
}

TEST(HumanDuration, Milliseconds) {
  EXPECT_EQ(human_duration(0), "0ms");
  EXPECT_EQ(human_duration(850), "850ms");
  EXPECT_EQ(human_duration(999), "999ms");
  EXPECT_EQ(human_duration(-3), "0ms");
}

TEST(HumanDuration, SecondsWithOneDecimal) {
  EXPECT_EQ(human_duration(1000), "1.0s");
  EXPECT_EQ(human_duration(12'345), "12.3s");
  EXPECT_EQ(human_duration(59'900), "59.9s");
}

TEST(HumanDuration, SecondsThatRoundToAMinuteShowAsMinutes) { EXPECT_EQ(human_duration(59'960), "1m0s"); }

TEST(HumanDuration, MinutesHoursDays) {
  EXPECT_EQ(human_duration(60'000), "1m0s");
  EXPECT_EQ(human_duration((3 * 60 + 12) * 1000), "3m12s");
  EXPECT_EQ(human_duration((2 * 3600 + 5 * 60 + 59) * 1000LL), "2h5m");
  EXPECT_EQ(human_duration((3 * 86400 + 4 * 3600) * 1000LL), "3d4h");
}

// ---- tables ------------------------------------------------------------------------------

TEST(DisplayWidth, CountsCodePointsNotBytes) {
  EXPECT_EQ(display_width(""), 0u);
  EXPECT_EQ(display_width("abc"), 3u);
  EXPECT_EQ(display_width("h\xC3\xA9llo"), 5u);  // "héllo"
}

TEST(RenderTable, AlignsColumnsWithTwoSpacesAndNoTrailingBlanks) {
  const std::string table = render_table({"NAME", "STATE", "PID"}, {{"memory", "ready", "42"}, {"x", "failed", "-"}});
  EXPECT_EQ(table,
            "NAME    STATE   PID\n"
            "memory  ready   42\n"
            "x       failed  -\n");
}

TEST(RenderTable, WithoutHeaderAndWithShortRows) {
  EXPECT_EQ(render_table({}, {{"a", "b", "c"}, {"long"}}),
            "a     b  c\n"
            "long\n");
}

TEST(RenderTable, EmptyTable) {
  EXPECT_EQ(render_table({}, {}), "");
  EXPECT_EQ(render_table({"A", "B"}, {}), "A  B\n");
}

TEST(RenderTable, PadsByDisplayWidth) {
  EXPECT_EQ(render_table({}, {{"h\xC3\xA9", "x"}, {"abc", "y"}}),
            "h\xC3\xA9   x\n"
            "abc  y\n");
}

TEST(IndentLines, IndentsEveryNonEmptyLine) {
  EXPECT_EQ(indent_lines("a\nb\n", "  "), "  a\n  b\n");
  EXPECT_EQ(indent_lines("a\n\nb", "> "), "> a\n\n> b");
  EXPECT_EQ(indent_lines("", "  "), "");
}

// ---- progress ----------------------------------------------------------------------------

TEST(PullProgress, ReadsAProgressMessage) {
  const PullProgress p = pull_progress_from_json({{"file", "weights.bin"},
                                                  {"file_bytes", 10},
                                                  {"file_size", 20},
                                                  {"bytes", 120 * MiB},
                                                  {"total_bytes", 266 * MiB},
                                                  {"bytes_per_second", 1234.5},
                                                  {"source", "memory"}});
  EXPECT_EQ(p.bytes, 120 * MiB);
  EXPECT_EQ(p.total_bytes, 266 * MiB);
  EXPECT_DOUBLE_EQ(p.bytes_per_second, 1234.5);
  EXPECT_EQ(p.file, "weights.bin");
}

TEST(PullProgress, ToleratesMissingAndMistypedFields) {
  const PullProgress p = pull_progress_from_json({{"bytes", "many"}, {"total_bytes", -4}, {"file", 7}});
  EXPECT_EQ(p.bytes, 0u);
  EXPECT_EQ(p.total_bytes, 0u);
  EXPECT_EQ(p.bytes_per_second, 0);
  EXPECT_EQ(p.file, "");
  EXPECT_EQ(pull_progress_from_json(json::array()).bytes, 0u);
}

TEST(ProgressLine, HasBarPercentCountsRateAndFile) {
  const PullProgress p{120 * MiB, 266 * MiB, 85.3 * MiB, "weights.bin"};
  const std::string line = render_progress_line(p, 200);
  // 120/266 = 45.1%: 13 of 30 cells filled.
  EXPECT_EQ(line, "[#############.................]  45%  120.0 MiB / 266.0 MiB  85.3 MiB/s  weights.bin");
}

TEST(ProgressLine, FullAndEmpty) {
  EXPECT_EQ(render_progress_line({0, 100, 0, ""}, 200), "[..............................]  0%  0 B / 100 B  0 B/s");
  EXPECT_EQ(render_progress_line({100, 100, 0, "f"}, 200),
            "[##############################]  100%  100 B / 100 B  0 B/s  f");
  // More bytes than announced must not overflow the bar.
  EXPECT_EQ(render_progress_line({150, 100, 0, ""}, 200), "[##############################]  100%  150 B / 100 B  0 B/s");
}

TEST(ProgressLine, NeverReachesTheLastColumn) {
  const PullProgress p{120 * MiB, 266 * MiB, 85.3 * MiB, "a-rather-long-file-name-for-a-narrow-terminal.safetensors"};
  for (std::size_t width : {1u, 20u, 40u, 60u, 80u, 100u, 120u}) {
    EXPECT_LE(display_width(render_progress_line(p, width)), width - 1) << "width " << width;
  }
  EXPECT_EQ(render_progress_line(p, 0), "");
}

TEST(ProgressLine, BarWidthDependsOnTheTerminalOnly) {
  // A quarter of the usable columns, between 10 and 30 cells.
  EXPECT_EQ(render_progress_line({50, 100, 0, "f"}, 81), "[##########..........]  50%  50 B / 100 B  0 B/s  f");
  EXPECT_EQ(render_progress_line({50, 100, 0, "a-longer-name"}, 81),
            "[##########..........]  50%  50 B / 100 B  0 B/s  a-longer-name");
  EXPECT_EQ(render_progress_line({50, 100, 0, "f"}, 121), "[###############...............]  50%  50 B / 100 B  0 B/s  f");
  EXPECT_EQ(render_progress_line({50, 100, 0, "f"}, 500), "[###############...............]  50%  50 B / 100 B  0 B/s  f");
  // 41 columns fit exactly in 42; one fewer cuts the file name and the blanks before it.
  EXPECT_EQ(render_progress_line({50, 100, 0, "f"}, 42), "[#####.....]  50%  50 B / 100 B  0 B/s  f");
  EXPECT_EQ(render_progress_line({50, 100, 0, "f"}, 41), "[#####.....]  50%  50 B / 100 B  0 B/s");
  // Narrow: the text is cut, not the bar.
  EXPECT_EQ(render_progress_line({50, 100, 0, "f"}, 30), "[#####.....]  50%  50 B / 100");
}

TEST(ProgressLine, UnknownTotalShowsCountsOnly) {
  EXPECT_EQ(render_progress_line({2 * KiB, 0, 512, "x.bin"}, 80), "2.0 KiB  512 B/s  x.bin");
}

TEST(RedrawThrottle, FirstDrawThenAtMostOncePerInterval) {
  using namespace std::chrono_literals;
  RedrawThrottle throttle(100ms);
  const RedrawThrottle::Clock::time_point t0{};
  EXPECT_TRUE(throttle.due(t0 + 5s));
  EXPECT_FALSE(throttle.due(t0 + 5s + 50ms));
  EXPECT_FALSE(throttle.due(t0 + 5s + 99ms));
  EXPECT_TRUE(throttle.due(t0 + 5s + 100ms));
  EXPECT_FALSE(throttle.due(t0 + 5s + 150ms));
  EXPECT_TRUE(throttle.due(t0 + 6s));
}

// ---- events ------------------------------------------------------------------------------

TEST(ClockTime, FormatsUtc) {
  // 2024-05-01T12:03:04.123Z
  EXPECT_EQ(format_clock_time(1714564984123, true), "12:03:04.123");
  EXPECT_EQ(format_clock_time(0, true), "00:00:00.000");
}

TEST(EventTime, NumbersAreMillisecondsOrSeconds) {
  EXPECT_EQ(format_event_time(1714564984123, true), "12:03:04.123");
  EXPECT_EQ(format_event_time(1714564984, true), "12:03:04.000");
  EXPECT_EQ(format_event_time(1714564984.5, true), "12:03:04.500");
  EXPECT_EQ(format_event_time("2024-05-01T12:03:04Z", true), "2024-05-01T12:03:04Z");
  EXPECT_EQ(format_event_time(json(), true), "-");
  EXPECT_EQ(format_event_time(-1, true), "-");
}

TEST(FieldValue, BareWhenUnambiguous) {
  EXPECT_EQ(format_field_value("memory"), "memory");
  EXPECT_EQ(format_field_value("exit 1"), "\"exit 1\"");
  EXPECT_EQ(format_field_value(""), "\"\"");
  EXPECT_EQ(format_field_value("a=b"), "\"a=b\"");
  EXPECT_EQ(format_field_value("line\nbreak"), "\"line\\nbreak\"");
  EXPECT_EQ(format_field_value(42), "42");
  EXPECT_EQ(format_field_value(true), "true");
  EXPECT_EQ(format_field_value(json()), "null");
  EXPECT_EQ(format_field_value(json::array({1, "x"})), "[1,\"x\"]");
}

TEST(EventLine, TimeTopicThenTheOtherFields) {
  const json body = {{"topic", "plugin.state"},
                     {"time", 1714564984123},
                     {"source", "daemon"},
                     {"name", "memory"},
                     {"state", "ready"},
                     {"last_exit", "exit 1"}};
  EXPECT_EQ(format_event_line(body, true),
            "12:03:04.123  plugin.state  last_exit=\"exit 1\" name=memory source=daemon state=ready");
}

TEST(EventLine, MinimalAndOddBodies) {
  EXPECT_EQ(format_event_line({{"topic", "t"}}, true), "-  t");
  EXPECT_EQ(format_event_line(json::object(), true), "-  -");
  EXPECT_EQ(format_event_line(json::array({1}), true), "[1]");
}

TEST(DumpJson, ReplacesInvalidUtf8InsteadOfThrowing) {
  const json value = std::string("a\xFF");
  EXPECT_EQ(dump_json(value), "\"a\xEF\xBF\xBD\"");
  EXPECT_EQ(dump_json({{"a", 1}}, 2), "{\n  \"a\": 1\n}");
}

// ---- reply views -------------------------------------------------------------------------

TEST(StatusView, KeyValueLines) {
  const json reply = {{"version", "0.1.0"},     {"pid", 1234},
                      {"uptime_ms", 192'000},   {"runtime_dir", "/run/user/1000/modelzoo"},
                      {"cache_dir", "/c"},      {"offline", true},
                      {"plugins", {{"total", 3}, {"ready", 2}, {"failed", 1}}}};
  EXPECT_EQ(render_status(reply),
            "version:      0.1.0\n"
            "pid:          1234\n"
            "uptime:       3m12s\n"
            "runtime dir:  /run/user/1000/modelzoo\n"
            "cache dir:    /c\n"
            "offline:      yes\n"
            "plugins:      3 total, 2 ready, 1 failed\n");
}

TEST(StatusView, OfflineLeftOutWhenAbsent) {
  const std::string text = render_status({{"version", "0.1.0"}});
  EXPECT_EQ(text.find("offline"), std::string::npos);
  EXPECT_NE(text.find("plugins:      0 total, 0 ready, 0 failed\n"), std::string::npos);
  EXPECT_NE(text.find("uptime:       -\n"), std::string::npos);
}

json plugin(const std::string& name, const std::string& state, int pid, int restarts, std::int64_t uptime_ms,
            int priority, const std::string& last_exit = "", const std::string& last_error = "") {
  return {{"name", name},           {"plugin", name},      {"kind", "registry"},    {"version", "1"},
          {"state", state},         {"pid", pid},          {"restarts", restarts},  {"uptime_ms", uptime_ms},
          {"priority", priority},   {"handles", json::array()}, {"last_exit", last_exit},
          {"last_error", last_error}};
}

TEST(PluginsView, TableAndFailures) {
  const json reply = {{"plugins",
                       {plugin("memory", "ready", 4242, 0, 192'000, 10),
                        plugin("broken", "failed", 0, 5, 0, 0, "exit 1", "cannot read config"),
                        plugin("slow", "backoff", 0, 2, 0, -1, "signal 9", "")}}};
  EXPECT_EQ(render_plugins(reply),
            "NAME    STATE    PID   RESTARTS  UPTIME  PRIORITY\n"
            "memory  ready    4242  0         3m12s   10\n"
            "broken  failed   -     5         -       0\n"
            "slow    backoff  -     2         -       -1\n"
            "\n"
            "broken: cannot read config (exit 1)\n");
}

TEST(PluginsView, ExtensionsAreListedWithTheirPoints) {
  json ext = plugin("validate", "ready", 7, 0, 1000, 0);
  ext["kind"] = "extension";
  ext["points"] = {"post-download"};
  ext["formats"] = {"gguf", "onnx"};
  ext["order"] = 100;
  const std::string out = render_plugins({{"plugins", {plugin("memory", "ready", 4242, 0, 1000, 10), ext}}});
  EXPECT_NE(out.find("\nextensions:\nvalidate: post-download, order 100, formats gguf,onnx\n"), std::string::npos) << out;
}

TEST(PluginsView, LimitsSandboxAndTheLimitThatEndedAPlugin) {
  json burner = plugin("burner", "failed", 0, 1, 0, 0, "signal 24 (SIGXCPU)", "");
  burner["last_limit"] = "CPU time limit of 2 s exceeded";
  burner["limits"] = {{"address_space", 268435456}, {"cpu_seconds", 2}, {"open_files", nullptr},
                      {"file_size", "unlimited"}, {"core_dumps", false}};
  burner["sandbox"] = "off";
  json boxed = plugin("boxed", "ready", 7, 0, 1000, 0);
  boxed["limits"] = {{"address_space", nullptr}, {"cpu_seconds", nullptr}, {"open_files", nullptr},
                     {"file_size", nullptr}, {"core_dumps", false}};
  boxed["sandbox"] = "landlock (ABI 7)";
  json plain = plugin("plain", "ready", 8, 0, 1000, 0);  // defaults only: not listed
  plain["limits"] = boxed["limits"];
  plain["sandbox"] = "off";
  const std::string out = render_plugins({{"plugins", {burner, boxed, plain}}});
  EXPECT_NE(out.find("\nisolation:\nburner: cpu 2 s, address space 256 MiB, file size unlimited, core dumps off\n"
                     "boxed: core dumps off; sandbox landlock (ABI 7)\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("plain:"), std::string::npos) << out;
  EXPECT_NE(out.find("burner: failed (signal 24 (SIGXCPU); CPU time limit of 2 s exceeded)\n"), std::string::npos) << out;
}

TEST(PluginsView, ASpawnWithoutHelloShowsHowLongItHasBeenStarting) {
  json frozen = plugin("frozen", "starting", 77, 0, 0, 0);
  frozen["starting_for_ms"] = 7400;
  frozen["hello_timeout_ms"] = 10000;
  json quick = plugin("quick", "starting", 78, 0, 0, 0);
  quick["starting_for_ms"] = 0;  // not running yet, or just spawned: nothing to say
  json half = plugin("half", "starting", 79, 0, 0, 0);
  half["starting_for_ms"] = 1200;
  half["hello_timeout_ms"] = 1500;
  const std::string out = render_plugins({{"plugins", {frozen, quick, half, plugin("memory", "ready", 4242, 0, 1000, 10)}}});
  EXPECT_NE(out.find("\nfrozen: starting for 7 s, no hello yet (hello timeout 10 s)\nhalf: starting for 1 s, no hello yet "
                     "(hello timeout 1.5 s)\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("quick:"), std::string::npos) << out;
  EXPECT_EQ(out.find("memory:"), std::string::npos) << out;
}

TEST(PluginsView, EmptyList) { EXPECT_EQ(render_plugins({{"plugins", json::array()}}), "no plugins\n"); }

TEST(PluginsView, FailedWithoutDetails) {
  const json reply = {{"plugins", {plugin("x", "failed", 0, 1, 0, 0)}}};
  EXPECT_NE(render_plugins(reply).find("\nx: failed\n"), std::string::npos);
}

TEST(PluginResetView, NameAndState) {
  EXPECT_EQ(render_plugin_reset({{"name", "memory"}, {"state", "starting"}}), "memory: starting\n");
}

TEST(ModelsView, Table) {
  const json reply = {
      {"models",
       {{{"name", "tiny"}, {"versions", {"1.0", "2.0"}}, {"description", "A tiny model"}, {"sources", {"memory", "local-file"}}},
        {{"name", "bare"}, {"versions", json::array()}, {"description", ""}, {"sources", {"memory"}}}}},
      {"errors", json::array()}};
  EXPECT_EQ(render_models(reply),
            "NAME  VERSIONS  SOURCES            DESCRIPTION\n"
            "tiny  1.0,2.0   memory,local-file  A tiny model\n"
            "bare  -         memory\n");
  EXPECT_TRUE(model_warnings(reply).empty());
}

TEST(ModelsView, EmptyAndWarnings) {
  const json reply = {{"models", json::array()},
                      {"errors", {{{"plugin", "hub"}, {"code", "timeout"}, {"message", "no answer in 5s"}}}}};
  EXPECT_EQ(render_models(reply), "no models\n");
  ASSERT_EQ(model_warnings(reply).size(), 1u);
  EXPECT_EQ(model_warnings(reply)[0], "hub: timeout: no answer in 5s");
}

TEST(ShowView, MetadataFilesAndSources) {
  const std::string sha(64, 'a');
  const json reply = {
      {"model", "tiny:1.0"},
      {"best", "memory"},
      {"metadata",
       {{"name", "tiny"},
        {"version", "1.0"},
        {"description", "A tiny model"},
        {"author", "Ada"},
        {"license", "MIT"},
        {"format", "gguf"},
        {"tags", {"text", "small"}},
        {"files", {{{"name", "weights.bin"}, {"size", 266 * MiB}, {"sha256", sha}}, {{"name", "config.json"}, {"size", 512}, {"sha256", sha}}}}}},
      {"sources",
       {{{"plugin", "memory"}, {"priority", 10}, {"ok", true}, {"version", "1.0"}, {"error", nullptr}},
        {{"plugin", "local-file"},
         {"priority", 0},
         {"ok", false},
         {"version", nullptr},
         {"error", {{"code", "not_found"}, {"message", "no such model"}}}}}}};
  EXPECT_EQ(render_show(reply),
            "name:         tiny\n"
            "version:      1.0\n"
            "description:  A tiny model\n"
            "author:       Ada\n"
            "license:      MIT\n"
            "format:       gguf\n"
            "tags:         text, small\n"
            "files: 2 (266.0 MiB)\n"
            "  weights.bin  266.0 MiB  " + sha + "\n"
            "  config.json  512 B      " + sha + "\n"
            "best source: memory\n"
            "sources:\n"
            "  memory      priority 10  1.0  ok\n"
            "  local-file  priority 0   -    not_found: no such model\n");
}

TEST(ShowView, NoSourceHasIt) {
  const json reply = {{"model", "ghost"},
                      {"best", nullptr},
                      {"metadata", nullptr},
                      {"sources", {{{"plugin", "memory"}, {"priority", 0}, {"ok", false}, {"error", {{"code", "not_found"}}}}}}};
  EXPECT_EQ(render_show(reply),
            "ghost: no source has this model\n"
            "best source: -\n"
            "sources:\n"
            "  memory  priority 0  -  not_found\n");
}

TEST(PullSummary, DownloadedAndCached) {
  const json files = json::array({{{"name", "a"}}, {{"name", "b"}}});
  EXPECT_EQ(render_pull_summary({{"name", "tiny"},
                                 {"version", "1.0"},
                                 {"source", "memory"},
                                 {"path", "/c/tiny/1.0"},
                                 {"files", files},
                                 {"bytes_downloaded", 3 * MiB},
                                 {"cached", false},
                                 {"duration_ms", 1500}}),
            "pulled tiny:1.0 from memory: 2 files, 3.0 MiB in 1.5s\n");
  EXPECT_EQ(render_pull_summary({{"name", "tiny"},
                                 {"version", "1.0"},
                                 {"source", "memory"},
                                 {"files", json::array({{{"name", "a"}}})},
                                 {"cached", true}}),
            "pulled tiny:1.0 from memory: 1 file, already cached\n");
}

TEST(Views, NeverThrowOnOddReplies) {
  for (const json& reply : {json(), json::array(), json("x"), json::object(), json{{"plugins", 5}, {"models", "x"}}}) {
    EXPECT_NO_THROW(render_status(reply));
    EXPECT_NO_THROW(render_plugins(reply));
    EXPECT_NO_THROW(render_plugin_reset(reply));
    EXPECT_NO_THROW(render_models(reply));
    EXPECT_NO_THROW(model_warnings(reply));
    EXPECT_NO_THROW(render_show(reply));
    EXPECT_NO_THROW(render_pull_summary(reply));
  }
}

}  // namespace
}  // namespace modelzoo::cli
