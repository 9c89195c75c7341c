#include "format.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>

namespace modelzoo::cli {

namespace {

// printf into a std::string; our formats are short and fixed, so a small buffer is enough.
template <typename... Args>
std::string printf_string(const char* format, Args... args) {
  std::array<char, 64> buffer{};
  const int n = std::snprintf(buffer.data(), buffer.size(), format, args...);
  if (n < 0) return {};
  return std::string(buffer.data(), std::min<std::size_t>(static_cast<std::size_t>(n), buffer.size() - 1));
}

// A value scaled to the largest binary unit it reaches, with one decimal.
std::string scaled_binary(double value) {
  static constexpr std::array<const char*, 5> kUnits{"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (value < 1024) return printf_string("%.0f B", std::floor(value));
  std::size_t unit = 0;
  value /= 1024;
  // Step up when the value would print as "1024.0" after rounding to one decimal.
  while (value >= 1023.95 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  return printf_string("%.1f %s", value, kUnits[unit]);
}

std::string repeat(char c, std::size_t n) { return std::string(n, c); }

// Pads `text` with blanks to `width` display columns.
std::string pad_right(const std::string& text, std::size_t width) {
  const std::size_t w = display_width(text);
  return w >= width ? text : text + repeat(' ', width - w);
}

// Cuts `text` to at most `width` display columns without splitting a UTF-8 sequence.
std::string truncate_to_width(const std::string& text, std::size_t width) {
  std::size_t columns = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool starts_code_point = (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    if (starts_code_point) {
      if (columns == width) return text.substr(0, i);
      ++columns;
    }
  }
  return text;
}

// The number of milliseconds a JSON time value stands for, or nullopt.
std::optional<std::int64_t> time_to_ms(const nlohmann::json& time) {
  if (!time.is_number()) return std::nullopt;
  const double value = time.get<double>();
  if (!std::isfinite(value) || value < 0) return std::nullopt;
  // Milliseconds since 1970 passed 1e11 in 1973; seconds will not reach it for millennia.
  constexpr double kSecondsBelow = 1e11;
  const double ms = value < kSecondsBelow ? value * 1000.0 : value;
  if (ms > 9e15) return std::nullopt;  // out of any sensible range; avoid overflow
  return static_cast<std::int64_t>(ms);
}

bool is_ambiguous_bare(const std::string& s) {
  if (s.empty()) return true;
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= ' ' || u == 0x7F || c == '=' || c == '"' || c == '\'' || c == '\\';
  });
}

}  // namespace

std::string human_size(std::uint64_t bytes) { return scaled_binary(static_cast<double>(bytes)); }

std::string human_rate(double bytes_per_second) {
  if (!(bytes_per_second > 0)) return "0 B/s";  // also catches NaN
  return scaled_binary(bytes_per_second) + "/s";
}

std::string human_duration(std::int64_t milliseconds) {
  if (milliseconds < 0) milliseconds = 0;
  if (milliseconds < 1000) return printf_string("%lldms", static_cast<long long>(milliseconds));
  // Round to tenths first so 59.96 s becomes "1m0s" rather than "60.0s".
  const long long tenths = (milliseconds + 50) / 100;
  if (tenths < 600) return printf_string("%lld.%llds", tenths / 10, tenths % 10);
  // At least a minute here, even when the rounding above is what brought us here.
  const long long seconds = std::max<long long>(60, milliseconds / 1000);
  if (seconds < 3600) return printf_string("%lldm%llds", seconds / 60, seconds % 60);
  const long long minutes = seconds / 60;
  if (minutes < 24 * 60) return printf_string("%lldh%lldm", minutes / 60, minutes % 60);
  const long long hours = minutes / 60;
  return printf_string("%lldd%lldh", hours / 24, hours % 24);
}

std::size_t display_width(std::string_view text) {
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;  // not a continuation byte
  }));
}

std::string render_table(const Row& header, const std::vector<Row>& rows) {
  std::size_t columns = header.size();
  for (const Row& row : rows) columns = std::max(columns, row.size());
  std::vector<std::size_t> widths(columns, 0);
  auto measure = [&](const Row& row) {
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  };
  measure(header);
  for (const Row& row : rows) measure(row);

  std::string out;
  auto emit = [&](const Row& row) {
    std::string line;
    for (std::size_t i = 0; i < columns; ++i) {
      const std::string cell = i < row.size() ? row[i] : std::string();
      const bool last = i + 1 == columns;
      line += last ? cell : pad_right(cell, widths[i]) + "  ";
    }
    // Trailing empty cells would leave blanks behind.
    line.erase(line.find_last_not_of(' ') + 1);
    out += line;
    out += '\n';
  };
  if (!header.empty()) emit(header);
  for (const Row& row : rows) emit(row);
  return out;
}

std::string indent_lines(std::string_view text, std::string_view indent) {
  std::string out;
  bool at_line_start = true;
  for (char c : text) {
    if (at_line_start && c != '\n') out += indent;
    out += c;
    at_line_start = c == '\n';
  }
  return out;
}

PullProgress pull_progress_from_json(const nlohmann::json& body) {
  PullProgress p;
  if (!body.is_object()) return p;
  auto unsigned_field = [&](const char* key) -> std::uint64_t {
    const auto it = body.find(key);
    if (it == body.end() || !it->is_number() || it->get<double>() < 0) return 0;
    return it->get<std::uint64_t>();
  };
  p.bytes = unsigned_field("bytes");
  p.total_bytes = unsigned_field("total_bytes");
  if (const auto it = body.find("bytes_per_second"); it != body.end() && it->is_number()) {
    p.bytes_per_second = it->get<double>();
  }
  if (const auto it = body.find("file"); it != body.end() && it->is_string()) p.file = it->get<std::string>();
  return p;
}

std::string render_progress_line(const PullProgress& progress, std::size_t width) {
  const bool total_known = progress.total_bytes > 0;
  std::string counts = human_size(progress.bytes);
  std::string percent;
  double fraction = 0;
  if (total_known) {
    fraction = std::min(1.0, static_cast<double>(progress.bytes) / static_cast<double>(progress.total_bytes));
    percent = printf_string("%d%%", static_cast<int>(std::floor(fraction * 100)));
    counts += " / " + human_size(progress.total_bytes);
  }
  std::string tail = counts + "  " + human_rate(progress.bytes_per_second);
  if (!progress.file.empty()) tail += "  " + progress.file;

  const std::size_t usable = width > 0 ? width - 1 : 0;
  std::string line;
  if (total_known) {
    // The bar's width depends on the terminal only, not on the text after it, so it does
    // not jitter as the numbers grow; a long line loses the end of its file name instead.
    constexpr std::size_t kMinBar = 10, kMaxBar = 30;
    const std::size_t bar = std::clamp(usable / 4, kMinBar, kMaxBar);
    const auto filled = static_cast<std::size_t>(std::floor(fraction * static_cast<double>(bar)));
    // Built with append: GCC 12 -O3 misreports `"[" + std::string` under -Wrestrict (PR105651).
    line.assign(1, '[');
    line.append(repeat('#', filled)).append(repeat('.', bar - filled)).append("]  ").append(percent).append("  ").append(tail);
  } else {
    line = tail;
  }
  line = truncate_to_width(line, usable);
  line.erase(line.find_last_not_of(' ') + 1);  // a cut may end between two fields
  return line;
}

bool RedrawThrottle::due(Clock::time_point now) {
  if (drawn_ && now - last_ < interval_) return false;
  drawn_ = true;
  last_ = now;
  return true;
}

std::string format_clock_time(std::int64_t ms_since_epoch, bool utc) {
  const std::time_t seconds = static_cast<std::time_t>(ms_since_epoch / 1000);
  std::tm parts{};
  if ((utc ? gmtime_r(&seconds, &parts) : localtime_r(&seconds, &parts)) == nullptr) return "-";
  return printf_string("%02d:%02d:%02d.%03d", parts.tm_hour, parts.tm_min, parts.tm_sec,
                       static_cast<int>(ms_since_epoch % 1000));
}

std::string format_event_time(const nlohmann::json& time, bool utc) {
  if (time.is_string()) return time.get<std::string>();
  if (const auto ms = time_to_ms(time)) return format_clock_time(*ms, utc);
  return "-";
}

std::string format_field_value(const nlohmann::json& value) {
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    return is_ambiguous_bare(s) ? dump_json(value) : s;
  }
  return dump_json(value);
}

std::string format_event_line(const nlohmann::json& body, bool utc) {
  if (!body.is_object()) return dump_json(body);
  const auto topic = body.find("topic");
  const auto time = body.find("time");
  std::string line = format_event_time(time == body.end() ? nlohmann::json() : *time, utc);
  line += "  ";
  line += topic != body.end() && topic->is_string() ? topic->get<std::string>() : std::string("-");
  bool first = true;
  for (const auto& [key, value] : body.items()) {
    if (key == "topic" || key == "time") continue;
    line += first ? "  " : " ";
    first = false;
    line += key + "=" + format_field_value(value);
  }
  return line;
}

std::string dump_json(const nlohmann::json& value, int indent) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace modelzoo::cli
