// Internal to the SDK's HTTP base (not installed): the small text helpers its files share.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "modelzoo/http/clock.h"

namespace modelzoo::sdk::http::detail {

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

inline bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

// RFC 9110 token characters (header names).
inline bool is_token(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("!#$%&'*+-.^_`|~", c))) return false;
  return true;
}

// Keeps a server's text printable and short before it goes into a message.
inline std::string printable(std::string_view s, std::size_t limit = 300) {
  std::string out;
  for (char c : s) {
    if (out.size() >= limit) {
      out += "...";
      break;
    }
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  }
  return std::string(trim(out));
}

inline std::string ms_string(milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace modelzoo::sdk::http::detail
