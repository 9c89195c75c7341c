// Daemon configuration and plugin manifests (docs/configuration.md): library modelzoo_config
// (config/), read by modelzood, by the CLI (`plugin validate`, `plugin new`) and by the
// conformance kit. The types keep the namespace modelzoo::supervisor: they are the settings
// the supervisor runs with.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::supervisor {

using std::chrono::milliseconds;

// When and how fast a plugin is restarted (docs/configuration.md, "Restart policy").
struct RestartPolicy {
  enum class Mode { always, on_failure, never };
  Mode mode = Mode::always;
  milliseconds backoff_initial{100};  // delay after the first failed run
  milliseconds backoff_max{30000};    // the delay doubles per failure up to this
  milliseconds stable_after{5000};    // a run this long (after hello) is stable: restart at once
  int max_failures = 5;               // this many failed runs in a row: state `failed`
  milliseconds hello_timeout{10000};  // a start without hello in this time is a failure
};

// How an extension is hooked in (docs/extensions.md). Unset values come from the
// extension's hello; an extension that has not said hello yet is assumed to serve every
// point and format (it fails closed: a step it may guard fails while it is down).
struct ExtensionSettings {
  std::optional<int> order;                              // ascending; ties by source name
  std::optional<std::vector<std::string>> points;        // pre-download, post-download, pre-load, post-load
  std::optional<std::vector<std::string>> formats;       // file suffixes; empty list: any
  milliseconds hook_timeout{300000};                     // deadline of one hook call
};

// Resource limits of a plugin process (docs/security.md, "Resource limits"), set with
// setrlimit(2) between fork and exec. An unset field is inherited from the daemon.
struct ResourceLimits {
  static constexpr std::uint64_t kUnlimited = ~std::uint64_t{0};
  std::optional<std::uint64_t> address_space;  // bytes of virtual memory (RLIMIT_AS)
  std::optional<std::uint64_t> cpu_seconds;    // CPU time (RLIMIT_CPU)
  std::optional<std::uint64_t> open_files;     // file descriptors (RLIMIT_NOFILE)
  std::optional<std::uint64_t> file_size;      // bytes of the largest file it may write (RLIMIT_FSIZE)
  std::optional<bool> core_dumps;              // false: RLIMIT_CORE 0 (the effective default)
  // Replaces each field that `over` sets.
  void overlay(const ResourceLimits& over);
  bool operator==(const ResourceLimits&) const = default;
};

// Whether a plugin runs in a Landlock filesystem sandbox (docs/security.md, "Filesystem
// sandbox (Landlock)"). `landlock` runs it unconfined when the kernel lacks Landlock;
// `require` refuses to start it then.
enum class SandboxMode { off, landlock, require };

// A plugin as described by its manifest (plugin.yaml) or built in.
struct Manifest {
  std::string name;
  std::string version = "0.0.0";
  std::string kind = "registry";   // or "extension" (docs/extensions.md)
  std::vector<std::string> command;  // argv; a relative command[0] is resolved against `dir`
  std::filesystem::path dir;         // where the manifest lives
  std::optional<int> priority;
  std::optional<std::vector<std::string>> handles;
  RestartPolicy restart;
  nlohmann::json config = nlohmann::json::object();
  ExtensionSettings extension;       // kind "extension" only
  ResourceLimits limits;             // the manifest's `limits`
};

// A source: one running instance of a plugin, with its own name, priority and config.
struct Source {
  std::string name;      // instance name, unique
  Manifest manifest;     // resolved plugin
  std::optional<int> priority;
  std::optional<std::vector<std::string>> handles;
  nlohmann::json config = nlohmann::json::object();  // the manifest's config, overlaid
  RestartPolicy restart;
  ExtensionSettings extension;  // the manifest's, overlaid by the source's
  // Directories in which the daemon may read a file itself when this source names it in a
  // file's `local_path` (a local copy instead of a stream). Default: none, except the
  // `root` of a built-in local-file source.
  std::vector<std::filesystem::path> local_read;
  // Effective resource limits: the daemon's `limits`, then the manifest's, then the source's,
  // field by field; core_dumps is always set (default false).
  ResourceLimits limits;
  SandboxMode sandbox = SandboxMode::off;  // the source's `sandbox`, else the daemon's
  // Extra paths the sandboxed plugin may read (and execute), and read and write.
  std::vector<std::filesystem::path> sandbox_read, sandbox_write;
  bool from_command = false;  // started by the source's `command`, not from a manifest or built in
  // A plugin on another host (docs/security.md, "Remote peers over TCP"): not started by the
  // daemon; it connects over TCP with the CURVE key whose public half (Z85) this is. Empty
  // for the plugins the daemon spawns.
  std::string remote_key;
};

// TCP endpoints (docs/security.md). Empty endpoints: ipc in the runtime directory only.
struct ListenSettings {
  std::string plugins;  // tcp://host:port for remote plugins
  std::string clients;  // tcp://host:port for remote clients
  std::string events;   // tcp://host:port for remote event subscribers
  std::filesystem::path server_key_file;   // default <data_dir>/keys/server.key, created if missing
  std::filesystem::path client_keys_file;  // default <data_dir>/keys/authorized_clients
  bool any() const { return !plugins.empty() || !clients.empty() || !events.empty(); }
};

struct DaemonConfig {
  std::filesystem::path runtime_dir;
  std::filesystem::path cache_dir;
  std::filesystem::path data_dir;
  std::vector<std::filesystem::path> plugin_dirs;
  milliseconds heartbeat_interval{1000};
  int heartbeat_liveness = 3;
  milliseconds request_timeout{30000};
  milliseconds download_stall_timeout{30000};
  milliseconds stop_timeout{3000};  // per stage of a graceful stop (ask, then SIGTERM)
  std::chrono::seconds partial_retention{7 * 24 * 3600};  // partials of interrupted pulls kept for resume
  std::uint64_t cache_max_size = 0;  // `cache.max_size`: blobs + partials at most this; 0: no limit
  std::uint64_t cache_min_free = 0;  // `cache.min_free`: leave this free on the cache's filesystem
  bool offline = false;  // serve from the cache only; never ask a source
  std::string log_level = "info";
  std::vector<Source> sources;
  ResourceLimits limits;                   // defaults for every plugin (`limits`)
  SandboxMode sandbox = SandboxMode::off;  // default of every source (`sandbox`)
  ListenSettings listen;
  std::vector<std::string> warnings;  // broken manifests and other skipped parts
  std::filesystem::path secret_key_file;  // decrypts enc:v1: values (default <data_dir>/secret.key)
  std::filesystem::path config_file;  // where it was read from; empty: the embedded default
  std::filesystem::path exe_dir;      // where the built-in plugins are
  std::vector<std::string> env_overrides;  // the MODELZOO_* variables that changed a setting (names only)
};

// Thrown for a configuration that cannot be used; what() names the file and the setting.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Loads the configuration: `path` if not empty, else the embedded default. Every setting can
// be overridden by an environment variable (docs/configuration.md, "Environment"):
// MODELZOO_<SETTING> at top level, MODELZOO_RESTART_<SETTING>, MODELZOO_SOURCE_<NAME>_<SETTING>
// and MODELZOO_SOURCE_<NAME>_CONFIG_<KEY> (names upper-cased, '-' as '_'); values are YAML.
// `exe_dir` is where the built-in plugin executables are.
DaemonConfig load_config(const std::filesystem::path& path, const std::filesystem::path& exe_dir);
DaemonConfig parse_config(const std::string& yaml_text, const std::string& origin,
                          const std::filesystem::path& exe_dir);

// Parses one manifest file. Throws ConfigError naming the file and field.
Manifest load_manifest(const std::filesystem::path& file, const RestartPolicy& defaults = {});

// The embedded default configuration (YAML), also printed by `modelzood --print-default-config`.
const std::string& default_config_yaml();

// Converts a YAML node to JSON (scalars become strings, numbers or booleans as they parse).
nlohmann::json yaml_to_json(const std::string& yaml_text);

// A manifest's `protocol` (the bus protocol versions a plugin speaks): an integer, a list of
// integers ([1]), or a range string (">=1", ">=1, <3": constraints separated by commas or
// blanks, each [>=|<=|>|<|=|==]N, all of which must hold). Returns why it is malformed or
// excludes `host` (the version this modelzoo speaks); nullopt when compatible. Shared by the
// manifest loader and `modelzoo plugin validate`.
std::optional<std::string> protocol_range_problem(const nlohmann::json& value, int host);

}  // namespace modelzoo::supervisor
