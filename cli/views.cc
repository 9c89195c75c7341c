#include "views.h"

#include <cstdint>

#include "format.h"

namespace modelzoo::cli {

namespace {

using nlohmann::json;

const json& null_json() {
  static const json kNull;
  return kNull;
}

const json& empty_array() {
  static const json kEmpty = json::array();
  return kEmpty;
}

// obj[key], or null when `obj` is not an object or has no such key.
const json& field(const json& obj, const char* key) {
  if (!obj.is_object()) return null_json();
  const auto it = obj.find(key);
  return it == obj.end() ? null_json() : *it;
}

// A field as display text: strings as they are, other scalars as JSON, null as `fallback`.
std::string text(const json& obj, const char* key, const std::string& fallback = "-") {
  const json& value = field(obj, key);
  if (value.is_null()) return fallback;
  if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    return s.empty() ? fallback : s;
  }
  return dump_json(value);
}

// A numeric field as a non-negative integer, 0 when absent or not a number.
std::uint64_t count(const json& obj, const char* key) {
  const json& value = field(obj, key);
  if (!value.is_number() || value.get<double>() < 0) return 0;
  return value.get<std::uint64_t>();
}

const json& array_field(const json& obj, const char* key) {
  const json& value = field(obj, key);
  return value.is_array() ? value : empty_array();
}

// Array elements (strings as they are, others as JSON) joined with `separator`.
std::string join(const json& array, const std::string& separator, const std::string& fallback = "-") {
  std::string out;
  for (const json& item : array) {
    if (!out.empty()) out += separator;
    out += item.is_string() ? item.get<std::string>() : dump_json(item);
  }
  return out.empty() ? fallback : out;
}

// "code: message" of an {code, message} error object.
std::string error_text(const json& error) {
  const std::string code = text(error, "code", "error");
  const std::string message = text(error, "message", "");
  return message.empty() ? code : code + ": " + message;
}

std::string plugin_uptime(const json& plugin) {
  if (count(plugin, "pid") == 0 || field(plugin, "uptime_ms").is_null()) return "-";
  return human_duration(static_cast<std::int64_t>(count(plugin, "uptime_ms")));
}

// "name: last_error (last_exit)" for a failed plugin.
std::string failure_line(const json& plugin) {
  std::string line = text(plugin, "name") + ": " + text(plugin, "last_error", "failed");
  const std::string last_exit = text(plugin, "last_exit", "");
  if (!last_exit.empty()) line += " (" + last_exit + ")";
  return line;
}

std::string render_files(const json& files) {
  std::vector<Row> rows;
  for (const json& file : files) {
    rows.push_back({text(file, "name"), human_size(count(file, "size")), text(file, "sha256")});
  }
  return indent_lines(render_table({}, rows), "  ");
}

std::string render_sources(const json& sources) {
  std::vector<Row> rows;
  for (const json& source : sources) {
    const bool ok = field(source, "ok").is_boolean() && field(source, "ok").get<bool>();
    const json& error = field(source, "error");
    const std::string status = ok ? "ok" : error.is_object() ? error_text(error) : "no";
    rows.push_back({text(source, "plugin"), "priority " + text(source, "priority", "0"),
                    ok ? text(source, "version") : "-", status});
  }
  return indent_lines(render_table({}, rows), "  ");
}

}  // namespace

std::string render_status(const json& reply) {
  const json& plugins = field(reply, "plugins");
  std::vector<Row> rows = {
      {"version:", text(reply, "version")},
      {"pid:", text(reply, "pid")},
      {"uptime:", field(reply, "uptime_ms").is_number()
                      ? human_duration(static_cast<std::int64_t>(count(reply, "uptime_ms")))
                      : "-"},
      {"runtime dir:", text(reply, "runtime_dir")},
      {"cache dir:", text(reply, "cache_dir")},
  };
  if (const json& offline = field(reply, "offline"); offline.is_boolean()) {
    rows.push_back({"offline:", offline.get<bool>() ? "yes" : "no"});
  }
  rows.push_back({"plugins:", std::to_string(count(plugins, "total")) + " total, " +
                                  std::to_string(count(plugins, "ready")) + " ready, " +
                                  std::to_string(count(plugins, "failed")) + " failed"});
  return render_table({}, rows);
}

std::string render_plugins(const json& reply) {
  const json& plugins = array_field(reply, "plugins");
  std::vector<Row> rows;
  std::string failures;
  for (const json& plugin : plugins) {
    const std::uint64_t pid = count(plugin, "pid");
    rows.push_back({text(plugin, "name"), text(plugin, "state"), pid == 0 ? "-" : std::to_string(pid),
                    std::to_string(count(plugin, "restarts")), plugin_uptime(plugin),
                    text(plugin, "priority", "0")});
    if (text(plugin, "state") == "failed") failures += failure_line(plugin) + "\n";
  }
  if (rows.empty()) return "no plugins\n";
  std::string out = render_table({"NAME", "STATE", "PID", "RESTARTS", "UPTIME", "PRIORITY"}, rows);
  if (!failures.empty()) out += "\n" + failures;
  return out;
}

std::string render_plugin_reset(const json& reply) {
  return text(reply, "name") + ": " + text(reply, "state") + "\n";
}

std::string render_models(const json& reply) {
  std::vector<Row> rows;
  for (const json& model : array_field(reply, "models")) {
    rows.push_back({text(model, "name"), join(array_field(model, "versions"), ","),
                    join(array_field(model, "sources"), ","), text(model, "description", "")});
  }
  if (rows.empty()) return "no models\n";
  return render_table({"NAME", "VERSIONS", "SOURCES", "DESCRIPTION"}, rows);
}

std::vector<std::string> model_warnings(const json& reply) {
  std::vector<std::string> warnings;
  for (const json& error : array_field(reply, "errors")) {
    warnings.push_back(text(error, "plugin") + ": " + error_text(error));
  }
  return warnings;
}

std::string render_show(const json& reply) {
  const json& metadata = field(reply, "metadata");
  std::string out;
  if (metadata.is_object()) {
    out += render_table({}, {
                                {"name:", text(metadata, "name")},
                                {"version:", text(metadata, "version")},
                                {"description:", text(metadata, "description")},
                                {"author:", text(metadata, "author")},
                                {"license:", text(metadata, "license")},
                                {"format:", text(metadata, "format")},
                                {"tags:", join(array_field(metadata, "tags"), ", ")},
                            });
    const json& files = array_field(metadata, "files");
    std::uint64_t total = 0;
    for (const json& file : files) total += count(file, "size");
    out += "files: " + std::to_string(files.size()) + " (" + human_size(total) + ")\n";
    out += render_files(files);
  } else {
    out += text(reply, "model") + ": no source has this model\n";
  }
  out += "best source: " + text(reply, "best") + "\n";
  out += "sources:\n" + render_sources(array_field(reply, "sources"));
  return out;
}

std::string render_pull_summary(const json& reply) {
  std::string line = "pulled " + text(reply, "name") + ":" + text(reply, "version") + " from " +
                     text(reply, "source");
  const std::size_t files = array_field(reply, "files").size();
  line += ": " + std::to_string(files) + (files == 1 ? " file" : " files");
  const json& cached = field(reply, "cached");
  if (cached.is_boolean() && cached.get<bool>()) {
    line += ", already cached";
  } else {
    line += ", " + human_size(count(reply, "bytes_downloaded")) + " in " +
            human_duration(static_cast<std::int64_t>(count(reply, "duration_ms")));
  }
  return line + "\n";
}

}  // namespace modelzoo::cli
