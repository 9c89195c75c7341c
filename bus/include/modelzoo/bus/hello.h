// The hello a plugin opens its session with, and the protocol's vocabulary (docs/protocol.md,
// "hello", "Checks, in order, and rejection reasons", "Extension hooks"). This header is the
// one place these rules live: the daemon refuses a hello with parse_hello's text, the
// conformance kit reports the same text, and the C++ SDK builds its hello with Hello.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::bus {

// ---- vocabulary

// The kinds of plugin.
inline constexpr const char* kRegistryKind = "registry";
inline constexpr const char* kExtensionKind = "extension";
bool is_plugin_kind(std::string_view kind);

// The four extension points, in the order a model meets them.
inline constexpr const char* kPreDownload = "pre-download";
inline constexpr const char* kPostDownload = "post-download";
inline constexpr const char* kPreLoad = "pre-load";
inline constexpr const char* kPostLoad = "post-load";
inline constexpr std::array<std::string_view, 4> kExtensionPoints = {kPreDownload, kPostDownload, kPreLoad, kPostLoad};
bool is_extension_point(std::string_view point);
// "pre-download, post-download, pre-load, post-load", for messages.
std::string extension_point_list();

// The methods a plugin of `kind` serves when its hello names no capabilities: metadata,
// exists, list and download for a registry, hook for an extension.
std::vector<std::string> default_capabilities(std::string_view kind);

// The format of a file name, as extensions' `formats` are matched against it: the suffix
// after the last '.' of its last '/'-segment, lowercase; "" when there is none (no '.', a
// leading '.' only, or a trailing '.').
std::string file_format(std::string_view file_name);

// ---- limits of a hello

inline constexpr std::size_t kMaxHandles = 100;         // patterns in `handles` (at least 1)
inline constexpr std::size_t kMaxPatternChars = 200;    // of one pattern (at least 1)
inline constexpr std::size_t kMaxPoints = 4;            // in `points` (at least 1)
inline constexpr std::size_t kMaxFormats = 100;         // in `formats`
inline constexpr std::size_t kMaxFormatChars = 32;      // of one format (at least 1)
inline constexpr std::int64_t kMaxRank = 1000000;       // `priority` and `order` are clamped to +-this

// ---- the hello

// A hello as read. After a successful parse_hello every field holds a valid value, with the
// defaults of docs/protocol.md for the absent ones.
struct Hello {
  std::vector<std::int64_t> protocol;     // the versions the plugin speaks
  std::string plugin_id;                  // MODELZOO_PLUGIN_ID (empty over TCP)
  std::string token;                      // MODELZOO_TOKEN
  std::string name;                       // plugin name
  std::string version;                    // semantic version
  std::optional<std::int64_t> pid;        // logged, never verified
  std::string kind = kRegistryKind;
  std::vector<std::string> capabilities;  // absent: default_capabilities(kind)
  int priority = 0;                       // clamped to +-kMaxRank
  std::vector<std::string> handles{"*"};  // absent: every model
  // Extensions only.
  std::vector<std::string> points;        // as sent (a point may repeat)
  std::vector<std::string> formats;       // lowercased; empty: any
  int order = 0;                          // clamped to +-kMaxRank

  // The hello body a plugin of this kind sends: every field above except, for a registry,
  // points, formats and order, and for an extension, priority; pid only when set.
  nlohmann::json to_json() const;
};

// What the receiver of a hello knows beyond the hello itself.
struct HelloRules {
  // The kind the configuration gives the source; empty: any kind.
  std::string configured_kind;
  // False when the configuration sets the source's handles: the hello's are then not used,
  // nor checked beyond their type.
  bool check_handles = true;
};

// The type of every field a hello may carry (docs/protocol.md, "hello"): the first mistyped
// one as the daemon refuses it ("hello: 'pid' must be an integer, not a string"), or nullopt.
// Msgpack nil is a wrong type, not an absent field.
std::optional<std::string> hello_type_error(const nlohmann::json& body);

// Reads `body` into `out` and checks it, in the daemon's order: types, protocol version,
// kind (and the configured kind), an extension's points and formats, name, version, handles.
// Returns nullopt when the hello is acceptable, else the daemon's rejection message for the
// first rule it breaks (every one of them is refused with bad_request). Who sent the hello
// (plugin_id, token, a CURVE key) is the receiver's to check. On failure `out` holds what
// could be read, the defaults elsewhere.
std::optional<std::string> parse_hello(const nlohmann::json& body, Hello& out, const HelloRules& rules = {});

}  // namespace modelzoo::bus
