#include "modelzoo/bus/names.h"

#include <charconv>

#include "modelzoo/bus/message.h"

namespace modelzoo::bus {
namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// Checks '/'-separated segments. Returns the reason or nullopt.
std::optional<std::string> check_segments(std::string_view what, std::string_view s, std::size_t max_len,
                                          std::size_t max_segments, bool strict_start) {
  if (s.empty()) return std::string(what) + " is empty";
  if (s.size() > max_len) return std::string(what) + " is longer than " + std::to_string(max_len) + " characters";
  std::size_t segments = 0;
  std::size_t start = 0;
  while (true) {
    std::size_t end = s.find('/', start);
    std::string_view seg = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    ++segments;
    if (seg.empty()) return std::string(what) + " has an empty path segment";
    if (seg == "." || seg == "..") return std::string(what) + " has a '" + std::string(seg) + "' segment";
    if (seg.size() > 64 && strict_start) return std::string(what) + " has a segment longer than 64 characters";
    if (strict_start && (seg[0] == '.' || seg[0] == '-'))
      return std::string(what) + " has a segment starting with '" + seg[0] + "'";
    for (char c : seg)
      if (!name_char(c)) {
        std::string shown = (c >= 0x21 && c < 0x7f) ? std::string(1, c) : "\\x" + [c] {
          char b[3];
          std::snprintf(b, sizeof b, "%02x", static_cast<unsigned char>(c));
          return std::string(b);
        }();
        return std::string(what) + " contains the character '" + shown + "'";
      }
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (segments > max_segments) return std::string(what) + " has more than " + std::to_string(max_segments) + " segments";
  return std::nullopt;
}

bool numeric_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

bool valid_identifiers(std::string_view s, bool no_leading_zero) {
  if (s.empty()) return false;
  std::size_t start = 0;
  while (true) {
    std::size_t end = s.find('.', start);
    std::string_view id = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (id.empty()) return false;
    for (char c : id)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')) return false;
    if (no_leading_zero && numeric_identifier(id) && id.size() > 1 && id[0] == '0') return false;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
}

bool parse_number(std::string_view s, unsigned long long& out) {
  if (!numeric_identifier(s) || (s.size() > 1 && s[0] == '0')) return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

std::optional<std::string> check_model_name(std::string_view name) {
  return check_segments("model name", name, 200, 8, true);
}

std::optional<std::string> check_version(std::string_view version) {
  if (version.size() > 64) return "version is longer than 64 characters";
  if (!SemVer::parse(version)) return "version '" + std::string(version) + "' is not a semantic version (MAJOR.MINOR.PATCH)";
  return std::nullopt;
}

std::optional<std::string> check_file_name(std::string_view name) {
  if (!name.empty() && name[0] == '/') return "file name is an absolute path";
  return check_segments("file name", name, 255, 16, true);
}

std::optional<std::string> check_plugin_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return "plugin name must have 1 to 64 characters";
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return "plugin name '" + std::string(name.substr(0, 64)) + "' may contain only a-z, 0-9, '-' and '_'";
  if (name[0] == '-' || name[0] == '_') return "plugin name must start with a letter or digit";
  return std::nullopt;
}

ModelRef parse_model_ref(std::string_view ref) {
  ModelRef r;
  auto colon = ref.rfind(':');
  if (colon == std::string_view::npos) {
    r.name = std::string(ref);
  } else {
    r.name = std::string(ref.substr(0, colon));
    r.version = std::string(ref.substr(colon + 1));
    if (r.version.empty()) throw Error(ErrorCode::bad_request, "model reference ends with ':' but names no version");
    if (auto why = check_version(r.version)) throw Error(ErrorCode::bad_request, *why);
  }
  if (auto why = check_model_name(r.name)) throw Error(ErrorCode::bad_request, *why);
  return r;
}

std::optional<std::string> version_of_tag(std::string_view tag) {
  std::string v = "0.0.0+";
  for (std::size_t i = 0; i + 1 < tag.size(); ++i)
    if ((tag[i] == '_' && tag[i + 1] == '-') || (tag[i] == '-' && tag[i + 1] == '_')) return std::nullopt;
  for (char c : tag) {
    if (c == '_') v += "--";
    else v.push_back(c);
  }
  if (tag.empty() || check_version(v)) return std::nullopt;
  return v;
}

std::optional<std::string> tag_of_version(std::string_view version) {
  constexpr std::string_view head = "0.0.0+";
  if (version.substr(0, head.size()) != head || version.size() == head.size() || check_version(version)) return std::nullopt;
  std::string t;
  auto rest = version.substr(head.size());
  for (std::size_t i = 0; i < rest.size(); ++i) {
    if (rest[i] == '-' && i + 1 < rest.size() && rest[i + 1] == '-') {
      t.push_back('_');
      ++i;
    } else {
      t.push_back(rest[i]);
    }
  }
  return t;
}

bool glob_match(std::string_view p, std::string_view s) {
  // Iterative matcher with single-star backtracking: linear in practice, no recursion.
  std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

std::optional<SemVer> SemVer::parse(std::string_view s) {
  SemVer v;
  if (auto plus = s.find('+'); plus != std::string_view::npos) {
    v.build = std::string(s.substr(plus + 1));
    if (!valid_identifiers(v.build, false)) return std::nullopt;
    s = s.substr(0, plus);
  }
  if (auto dash = s.find('-'); dash != std::string_view::npos) {
    v.prerelease = std::string(s.substr(dash + 1));
    if (!valid_identifiers(v.prerelease, true)) return std::nullopt;
    s = s.substr(0, dash);
  }
  auto d1 = s.find('.');
  if (d1 == std::string_view::npos) return std::nullopt;
  auto d2 = s.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return std::nullopt;
  if (!parse_number(s.substr(0, d1), v.major) || !parse_number(s.substr(d1 + 1, d2 - d1 - 1), v.minor) ||
      !parse_number(s.substr(d2 + 1), v.patch))
    return std::nullopt;
  return v;
}

int SemVer::compare(const SemVer& o) const {
  if (major != o.major) return major < o.major ? -1 : 1;
  if (minor != o.minor) return minor < o.minor ? -1 : 1;
  if (patch != o.patch) return patch < o.patch ? -1 : 1;
  if (prerelease.empty() || o.prerelease.empty()) {
    if (prerelease.empty() && o.prerelease.empty()) return 0;
    return prerelease.empty() ? 1 : -1;
  }
  std::string_view a = prerelease, b = o.prerelease;
  while (true) {
    auto ea = a.find('.'), eb = b.find('.');
    std::string_view ia = a.substr(0, ea), ib = b.substr(0, eb);
    bool na = numeric_identifier(ia), nb = numeric_identifier(ib);
    if (na && nb) {
      if (ia.size() != ib.size()) return ia.size() < ib.size() ? -1 : 1;
      if (int c = ia.compare(ib)) return c < 0 ? -1 : 1;
    } else if (na != nb) {
      return na ? -1 : 1;
    } else if (int c = ia.compare(ib)) {
      return c < 0 ? -1 : 1;
    }
    bool enda = ea == std::string_view::npos, endb = eb == std::string_view::npos;
    if (enda || endb) return enda && endb ? 0 : (enda ? -1 : 1);
    a = a.substr(ea + 1);
    b = b.substr(eb + 1);
  }
}

}  // namespace modelzoo::bus
