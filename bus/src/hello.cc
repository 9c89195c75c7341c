#include "modelzoo/bus/hello.h"

#include <algorithm>
#include <utility>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"

namespace modelzoo::bus {
using nlohmann::json;

namespace {

std::string lowercase(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// 'text' (its first `n` characters). Built with append: GCC 12 -O3 misreports
// `"lit" + std::string` under -Wrestrict (PR105651).
std::string quoted(const std::string& text, std::size_t n) {
  std::string q = "'";
  q.append(text, 0, n).append("'");
  return q;
}

int clamp_rank(std::optional<std::int64_t> v) {
  return static_cast<int>(std::clamp<std::int64_t>(v.value_or(0), -kMaxRank, kMaxRank));
}

// `body[key]` when it is a string / a list of strings; nothing otherwise.
std::optional<std::string> string_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<std::vector<std::string>> strings_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || !it->is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& e : *it) {
    if (!e.is_string()) return std::nullopt;
    out.push_back(e.get<std::string>());
  }
  return out;
}

// Every field as far as it has the right type; the rest keep their defaults.
void read_fields(const json& h, Hello& out) {
  if (auto p = h.find("protocol"); p != h.end() && p->is_array())
    for (const auto& v : *p)
      // An unsigned integer beyond int64 is no version anyone speaks: left out.
      if (v.is_number_integer() && !(v.is_number_unsigned() && v.get<std::uint64_t>() > INT64_MAX))
        out.protocol.push_back(v.get<std::int64_t>());
  for (auto [key, field] : {std::pair{"plugin_id", &out.plugin_id}, std::pair{"token", &out.token},
                            std::pair{"name", &out.name}, std::pair{"version", &out.version},
                            std::pair{"kind", &out.kind}})
    if (auto s = string_field(h, key)) *field = std::move(*s);
  out.pid = get_int(h, "pid");
  out.priority = clamp_rank(get_int(h, "priority"));
  out.order = clamp_rank(get_int(h, "order"));
  out.capabilities = strings_field(h, "capabilities").value_or(default_capabilities(out.kind));
  if (auto v = strings_field(h, "handles")) out.handles = std::move(*v);
  if (auto v = strings_field(h, "points")) out.points = std::move(*v);
  if (auto v = strings_field(h, "formats"))
    for (auto& f : *v) out.formats.push_back(lowercase(std::move(f)));
}

// docs/protocol.md, "Extension hooks": the fields only an extension's hello must get right.
std::optional<std::string> extension_error(const json& h, const Hello& x) {
  if (!h.contains("points") || x.points.empty() || x.points.size() > kMaxPoints)
    return "an extension must declare 1 to " + std::to_string(kMaxPoints) + " points (" + extension_point_list() + ")";
  for (const auto& p : x.points)
    if (!is_extension_point(p)) return quoted(p, 64).append(" is not an extension point");
  if (x.formats.size() > kMaxFormats) return "formats must be a list of at most " + std::to_string(kMaxFormats) + " strings";
  for (const auto& f : x.formats)
    if (f.empty() || f.size() > kMaxFormatChars)
      return "formats must be a list of file suffixes of 1 to " + std::to_string(kMaxFormatChars) + " characters";
  return std::nullopt;
}

std::optional<std::string> handles_error(const Hello& x) {
  if (x.handles.empty() || x.handles.size() > kMaxHandles)
    return "hello must declare 1 to " + std::to_string(kMaxHandles) + " handles patterns";
  for (const auto& p : x.handles)
    if (p.empty() || p.size() > kMaxPatternChars)
      return "hello has a handles pattern that is empty or over " + std::to_string(kMaxPatternChars) + " characters";
  return std::nullopt;
}

}  // namespace

bool is_plugin_kind(std::string_view kind) { return kind == kRegistryKind || kind == kExtensionKind; }

bool is_extension_point(std::string_view point) {
  return std::find(kExtensionPoints.begin(), kExtensionPoints.end(), point) != kExtensionPoints.end();
}

std::string extension_point_list() {
  std::string out;
  for (auto p : kExtensionPoints) out.append(out.empty() ? "" : ", ").append(p);
  return out;
}

std::vector<std::string> default_capabilities(std::string_view kind) {
  if (kind == kExtensionKind) return {"hook"};
  return {"metadata", "exists", "list", "download"};
}

std::string file_format(std::string_view file_name) {
  auto slash = file_name.rfind('/');
  std::string_view base = slash == std::string_view::npos ? file_name : file_name.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == base.size()) return {};
  return lowercase(std::string(base.substr(dot + 1)));
}

std::optional<std::string> hello_type_error(const json& body) {
  static const std::pair<const char*, FieldType> fields[] = {
      {"protocol", FieldType::integer_list}, {"plugin_id", FieldType::string},    {"token", FieldType::string},
      {"name", FieldType::string},           {"version", FieldType::string},      {"pid", FieldType::integer},
      {"kind", FieldType::string},           {"capabilities", FieldType::string_list},
      {"points", FieldType::string_list},    {"formats", FieldType::string_list}, {"order", FieldType::integer},
      {"priority", FieldType::integer},      {"handles", FieldType::string_list}};
  for (const auto& [key, type] : fields)
    if (auto why = field_type_error(body, key, type)) return "hello: " + *why;
  return std::nullopt;
}

std::optional<std::string> parse_hello(const json& body, Hello& out, const HelloRules& rules) {
  out = Hello{};
  if (body.is_object()) read_fields(body, out);
  else out.capabilities = default_capabilities(out.kind);
  if (auto why = hello_type_error(body)) return why;
  if (std::find(out.protocol.begin(), out.protocol.end(), kProtocolVersion) == out.protocol.end())
    return "no common protocol version (daemon speaks " + std::to_string(kProtocolVersion) + ")";
  if (!is_plugin_kind(out.kind)) return std::string("unsupported plugin kind ").append(quoted(out.kind, 64));
  if (!rules.configured_kind.empty() && out.kind != rules.configured_kind)
    return "plugin kind '" + out.kind + "' differs from the configured kind '" + rules.configured_kind + "'";
  if (out.kind == kExtensionKind)
    if (auto why = extension_error(body, out)) return "hello: " + *why;
  if (auto why = check_plugin_name(out.name)) return "hello: " + *why;
  if (auto why = check_version(out.version)) return "hello: " + *why;
  if (rules.check_handles)
    if (auto why = handles_error(out)) return why;
  return std::nullopt;
}

json Hello::to_json() const {
  json j = {{"protocol", protocol}, {"plugin_id", plugin_id}, {"token", token}, {"name", name}, {"version", version}};
  if (pid) j["pid"] = *pid;
  j["kind"] = kind;
  j["capabilities"] = capabilities.empty() ? default_capabilities(kind) : capabilities;
  if (kind == kExtensionKind) {
    j["points"] = points;
    j["formats"] = formats;
    j["order"] = order;
  } else {
    j["priority"] = priority;
  }
  j["handles"] = handles;
  return j;
}

}  // namespace modelzoo::bus
