// Fuzz target: names and versions from outside (bus/src/names.cc): model names, versions, file
// names, plugin names, model references, semantic-version ordering and `handles` globs. Three
// parts (fuzz_util.h split_parts). Beyond "no crash", it checks the promises that keep names
// from escaping a directory: an accepted model or file name has no empty, "." or ".." segment,
// is relative and holds only [A-Za-z0-9._-/]; and that version ordering is a consistent order.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"

namespace bus = modelzoo::bus;

namespace {

void check_path_safe(std::string_view s) {
  FUZZ_ASSERT(!s.empty() && s.front() != '/' && s.back() != '/');
  for (char c : s)
    FUZZ_ASSERT((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                c == '-' || c == '/');
  std::size_t start = 0;
  while (true) {
    auto end = s.find('/', start);
    auto seg = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    FUZZ_ASSERT(!seg.empty() && seg != "." && seg != "..");
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
}

// A version is one path component: no '/', never "." or "..", only [A-Za-z0-9.+-].
void check_version_safe(std::string_view s) {
  FUZZ_ASSERT(!s.empty() && s != "." && s != "..");
  for (char c : s)
    FUZZ_ASSERT((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '+' ||
                c == '-');
}

int sign(int v) { return (v > 0) - (v < 0); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parts = modelzoo::fuzz::split_parts(data, size, 3);
  for (auto p : parts) {
    if (!bus::check_model_name(p)) check_path_safe(p);
    if (!bus::check_file_name(p)) check_path_safe(p);
    if (!bus::check_plugin_name(p)) check_path_safe(p);
    if (!bus::check_version(p)) {
      check_version_safe(p);
      FUZZ_ASSERT(bus::SemVer::parse(p).has_value());
    }
    try {
      auto ref = bus::parse_model_ref(p);
      check_path_safe(ref.name);
      if (!ref.version.empty()) check_version_safe(ref.version);
      FUZZ_ASSERT(bus::parse_model_ref(ref.str()).str() == ref.str());
    } catch (const bus::Error& e) {
      FUZZ_ASSERT(e.code() == bus::ErrorCode::bad_request);
    }
  }
  // Ordering of versions: antisymmetric and transitive (std::sort relies on it).
  std::optional<bus::SemVer> v[3];
  for (std::size_t i = 0; i < parts.size() && i < 3; ++i) v[i] = bus::SemVer::parse(parts[i]);
  if (v[0] && v[1]) {
    FUZZ_ASSERT(sign(v[0]->compare(*v[1])) == -sign(v[1]->compare(*v[0])));
    FUZZ_ASSERT(v[0]->compare(*v[0]) == 0);
    if (v[2]) {
      int ab = sign(v[0]->compare(*v[1])), bc = sign(v[1]->compare(*v[2])), ac = sign(v[0]->compare(*v[2]));
      if (ab <= 0 && bc <= 0) FUZZ_ASSERT(ac <= 0);
      if (ab == 0 && bc == 0) FUZZ_ASSERT(ac == 0);
    }
  }
  if (parts.size() >= 2 && parts[0].size() <= 256 && parts[1].size() <= 256) {
    bool m = bus::glob_match(parts[0], parts[1]);
    if (parts[0] == parts[1] && parts[0].find_first_of("*?") == std::string_view::npos) FUZZ_ASSERT(m);
    (void)bus::glob_match("*", parts[1]);
  }
  return 0;
}
