#include "plugin_test_cmd.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>

#include "modelzoo/bus/message.h"
#include "modelzoo/conformance/kit.h"

namespace modelzoo::cli {
namespace {

namespace kit = modelzoo::conformance;

constexpr int kFailed = 1;
constexpr int kUsage = 2;
constexpr int kInterrupted = 130;

// Ctrl-C (or a SIGTERM) ends the run cleanly: the kit kills what it started and removes its
// temporary directory. A closed stdout (`| head`) must not kill the kit before it cleans up.
void on_stop_signal(int) { kit::interrupt(); }

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGHUP, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
}
constexpr std::size_t kOutputLines = 8;  // of the plugin's stderr under a failed check

const char* label(kit::Result r, bool color) {
  switch (r) {
    case kit::Result::pass: return color ? "\033[32mPASS\033[0m" : "PASS";
    case kit::Result::fail: return color ? "\033[31mFAIL\033[0m" : "FAIL";
    case kit::Result::skip: return color ? "\033[33mSKIP\033[0m" : "SKIP";
  }
  return "?";
}

void print_check(const kit::Check& c, bool verbose, bool color) {
  std::cout << label(c.result, color) << " " << c.name;
  if (c.result != kit::Result::pass || verbose)
    if (!c.reason.empty()) std::cout << ": " << c.reason;
  std::cout << "\n";
  if (c.result == kit::Result::fail && !c.output.empty()) {
    std::size_t from = c.output.size() > kOutputLines ? c.output.size() - kOutputLines : 0;
    std::cout << "     the plugin's last output:\n";
    for (std::size_t i = from; i < c.output.size(); ++i) std::cout << "     | " << c.output[i] << "\n";
  }
  std::cout.flush();
}

int usage_error(const std::string& message, bool json) {
  if (json)
    std::cout << nlohmann::json{{"error", {{"code", "bad_request"}, {"message", message}}}}.dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
              << "\n";
  std::cerr << "modelzoo: plugin test: " << message << "\n";
  return kUsage;
}

}  // namespace

CLI::App* add_plugin_test_command(CLI::App& plugin_group, PluginTestOptions& options) {
  CLI::App* test = plugin_group.add_subcommand(
      "test",
      "Run the conformance checks against a plugin executable: start it as modelzood would and take it through "
      "the protocol (handshake, heartbeats, every method, bad input, deadlines, downloads, shutdown)");
  test->add_option("--config", options.config_file,
                   "YAML or JSON file holding the plugin's configuration map (sent in the welcome, as a source's config:)");
  test->add_option("--model", options.model, "The model to query and download, NAME[:VERSION] (default: the first listed)");
  test->add_option("--kind", options.kind, "The kind the daemon's configuration would give it (default: what it says)")
      ->check(CLI::IsMember({"registry", "extension"}));
  test->add_option("--timeout-ms", options.timeout_ms, "How long to wait for each answer (default 5000)")
      ->check(CLI::Range(100u, 600000u));
  test->add_option("--max-bytes", options.max_bytes, "Download at most this many bytes in all (default 64 MiB)");
  test->add_flag("-v,--verbose", options.verbose, "Show what each passed check verified, and the plugin's output");
  // Also a global option; declared here so that `plugin test --help` lists it.
  test->add_flag("--json", options.json,
                 "Print the report as one JSON object on stdout: {checks: [{name, result, reason}], passed, failed, "
                 "skipped, plugin, duration_ms}");
  test->add_option("COMMAND", options.command, "The plugin's command line (put -- before it when it has options)")
      ->required();
  // Everything from the command on belongs to the plugin, options included.
  test->positionals_at_end();
  test->footer("Exit status: 0 every check passed (or was skipped), 1 a check failed, 2 usage error.");
  return test;
}

int run_plugin_test(const PluginTestOptions& options, bool global_json) {
  const bool json = global_json || options.json;
  kit::Options o;
  o.command = options.command;
  o.model = options.model;
  o.kind = options.kind;
  o.timeout_ms = options.timeout_ms;
  o.max_bytes = options.max_bytes;
  if (!options.config_file.empty()) {
    try {
      o.config = kit::load_config_file(options.config_file);
    } catch (const std::exception& e) {
      return usage_error(e.what(), json);
    }
  }
  const bool color = !json && ::isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR");
  if (!json) {
    std::cout << "modelzoo plugin test:";
    for (const auto& a : o.command) std::cout << " " << a;
    std::cout << "\n";
    std::cout.flush();
  }
  install_signal_handlers();
  kit::Report report;
  try {
    report = kit::run(o, [&](const kit::Check& c) {
      if (!json) print_check(c, options.verbose, color);
    });
  } catch (const kit::Interrupted&) {
    std::cerr << "modelzoo: plugin test: interrupted\n";
    return kInterrupted;
  } catch (const modelzoo::bus::Error& e) {
    return usage_error(std::string("--model: ") + e.what(), json);
  } catch (const std::exception& e) {
    return usage_error(e.what(), json);
  }
  if (json) {
    std::cout << report.to_json().dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    if (options.verbose && !report.output.empty()) {
      std::cout << "the plugin's output (main spawn):\n";
      for (const auto& line : report.output) std::cout << "  | " << line << "\n";
    }
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f", static_cast<double>(report.duration.count()) / 1000.0);
    std::cout << report.checks.size() << " checks: " << report.passed() << " passed, " << report.failed() << " failed, "
              << report.skipped() << " skipped (" << secs << " s)\n";
  }
  return report.ok() ? 0 : kFailed;
}

}  // namespace modelzoo::cli
