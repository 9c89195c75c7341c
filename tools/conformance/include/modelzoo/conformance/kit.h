// The plugin conformance kit (docs/writing-plugins.md, "Testing your plugin: the conformance
// kit"). It starts a plugin executable the way modelzood does -- private runtime directory,
// ROUTER socket, the MODELZOO_* environment, its own process group -- plays the daemon's side
// of docs/protocol.md against it, and reports one result per check.
//
//   modelzoo::conformance::Options o;
//   o.command = {"./modelzoo-plugin-memory"};
//   o.config = {{"models", ...}};
//   auto report = modelzoo::conformance::run(o, [](const auto& c) { std::cout << c.name << "\n"; });
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::conformance {

struct Options {
  std::vector<std::string> command;  // the plugin's argv; argv[0] without '/' is looked up in PATH
  nlohmann::json config = nlohmann::json::object();  // sent as the welcome's `config`
  std::string model;       // NAME[:VERSION]: the model to query and download (default: the first listed)
  std::string kind;        // "registry" or "extension": the configured kind (default: what the hello says)
  std::uint32_t timeout_ms = 5000;           // how long to wait for each answer
  std::uint64_t max_bytes = 64ull << 20;     // download at most this many bytes in all (whole files)
};

enum class Result { pass, fail, skip };
const char* to_string(Result r);  // "pass", "fail", "skip"

struct Check {
  std::string name;    // e.g. "hello", "download.cancel"
  Result result = Result::pass;
  std::string reason;  // why it failed or was skipped; for a pass, what was verified
  std::vector<std::string> output;  // on failure: the last lines the plugin process wrote
};

struct Report {
  std::vector<Check> checks;
  nlohmann::json plugin = nlohmann::json::object();  // the hello's body, without the token
  std::vector<std::string> output;  // the main instance's last stderr/stdout lines
  std::chrono::milliseconds duration{0};
  int passed() const;
  int failed() const;
  int skipped() const;
  bool ok() const { return failed() == 0; }
  // {"checks": [{name, result, reason}], "passed", "failed", "skipped", "plugin", "duration_ms"}
  nlohmann::json to_json() const;
};

// Runs every check in order; `on_check` (optional) sees each result as soon as it is known.
// Never throws for problems of the plugin (they are failed checks); throws std::runtime_error
// when the kit itself cannot run (no temporary directory, empty command).
Report run(const Options& options, const std::function<void(const Check&)>& on_check = {});

// Thrown by run() after interrupt(): every process it started is gone and its directory removed.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

// Makes a running run() stop at once, clean up and throw Interrupted. Async-signal-safe: call
// it from a SIGINT or SIGTERM handler.
void interrupt();

// Reads a YAML or JSON file holding a map (the plugin's configuration, as under a source's
// `config:` in the daemon's configuration). Throws std::runtime_error naming the problem.
nlohmann::json load_config_file(const std::filesystem::path& path);

}  // namespace modelzoo::conformance
