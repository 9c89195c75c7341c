// Text formatting for the `modelzoo` CLI: human sizes and durations, tables, the pull
// progress line and event lines. Everything here is a pure function of its arguments so
// the unit tests (tests/unit/cli_format_test.cc) can pin the exact output.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::cli {

// Sizes in binary units with one decimal: "0 B", "512 B", "1.0 KiB", "120.0 MiB", "1.5 GiB".
std::string human_size(std::uint64_t bytes);

// A transfer rate: human_size of the rate plus "/s" ("85.3 MiB/s"). Negative or NaN → "0 B/s".
std::string human_rate(double bytes_per_second);

// Durations: "850ms", "12.3s", "3m12s", "2h5m", "3d4h". Negative → "0ms".
std::string human_duration(std::int64_t milliseconds);

// Number of terminal columns `text` takes: UTF-8 code points, not bytes (good enough for
// the names and descriptions we print; we do not handle wide or combining characters).
std::size_t display_width(std::string_view text);

// Left-aligned columns separated by two spaces, one row per line, each line ending in
// '\n'. No trailing blanks (the last column is not padded). An empty `header` means no
// header line. Rows shorter than the widest row are padded with empty cells.
using Row = std::vector<std::string>;
std::string render_table(const Row& header, const std::vector<Row>& rows);

// Prefixes every line of `text` with `indent`.
std::string indent_lines(std::string_view text, std::string_view indent);

// The state of a pull, as reported by its progress messages.
struct PullProgress {
  std::uint64_t bytes = 0;        // downloaded so far, all files
  std::uint64_t total_bytes = 0;  // 0 when unknown
  double bytes_per_second = 0;
  std::string file;               // the file being downloaded
};

// Reads a progress message body ({file, bytes, total_bytes, bytes_per_second, ...});
// missing or mistyped fields are left at their defaults.
PullProgress pull_progress_from_json(const nlohmann::json& body);

// One progress line at most `width - 1` columns wide (a line filling the last column
// would wrap on some terminals and break the '\r' redraw):
//   [#######.......]  45%  120.0 MiB / 266.0 MiB  85.3 MiB/s  weights.bin
// With an unknown total the bar and percentage are left out.
std::string render_progress_line(const PullProgress& progress, std::size_t width);

// Decides when to redraw the progress line: the first time, then at most once per
// `interval`. Pure apart from remembering the last draw; the caller passes the clock.
class RedrawThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RedrawThrottle(Clock::duration interval) : interval_(interval) {}
  // True (and the draw is recorded) when a redraw is due at `now`.
  bool due(Clock::time_point now);

 private:
  Clock::duration interval_;
  bool drawn_ = false;
  Clock::time_point last_{};
};

// "HH:MM:SS.mmm" for a time in milliseconds since the Unix epoch, in UTC or local time.
std::string format_clock_time(std::int64_t ms_since_epoch, bool utc);

// An event's "time" field for display: numbers are milliseconds since the epoch (or
// seconds, when too small to be milliseconds of this century) shown as format_clock_time;
// strings are shown as they are; anything else as "-".
std::string format_event_time(const nlohmann::json& time, bool utc);

// A value in `key=value` form: strings bare unless they would be ambiguous (empty,
// containing blanks, '=', quotes or control characters), then JSON-quoted; everything
// else as compact JSON.
std::string format_field_value(const nlohmann::json& value);

// One human-readable event line: `TIME  TOPIC  key=value key=value…` with the body's
// fields other than topic and time, sorted by key (nlohmann::json keeps keys sorted).
std::string format_event_line(const nlohmann::json& body, bool utc = false);

// JSON text that never throws on invalid UTF-8 (bad bytes are replaced with U+FFFD).
// `indent` < 0 gives compact output, as nlohmann::json::dump.
std::string dump_json(const nlohmann::json& value, int indent = -1);

}  // namespace modelzoo::cli
