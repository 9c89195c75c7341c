// Percent-encoding of request paths (modelzoo/http/url.h).
#include "modelzoo/http/url.h"

#include <cctype>


namespace modelzoo::sdk::http {

std::string encode_segment(std::string_view segment) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : segment) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string encode_path(std::string_view name) {
  std::string out;
  while (true) {
    auto slash = name.find('/');
    out += encode_segment(name.substr(0, slash));
    if (slash == std::string_view::npos) break;
    out += '/';
    name.remove_prefix(slash + 1);
  }
  return out;
}

}  // namespace modelzoo::sdk::http
