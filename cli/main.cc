// `modelzoo`: the command-line client of modelzood.
//
// Exit codes: 0 success, 1 the daemon answered with an error (or anything else failed, or
// `cache verify` found a corrupt blob), 2 usage error, 3 daemon unavailable. With --json
// every reply goes to stdout as JSON, and errors too, as {"error":{"code":..,"message":..}}
// (besides the line on stderr).
//
// The `cache` commands do not go through the daemon: they run core/cache_admin.h here, on
// the cache directory (the daemon is asked only where that is). Nor do `encrypt` and
// `decrypt` (crypt_cmd.h), for publishers of encrypted models, nor `secret` (secret_cmd.h).

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "crypt_cmd.h"
#include "plugin_scaffold_cmd.h"
#include "plugin_test_cmd.h"
#include "keys_cmd.h"
#include "secret_cmd.h"
#include "format.h"
#include "modelzoo/bus/curve.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/client.h"
#include "modelzoo/codec/crypt.h"
#include "modelzoo/core/cache_admin.h"
#include "oci/push.h"
#include "views.h"

#ifndef MODELZOO_VERSION
#define MODELZOO_VERSION "unknown"
#endif

namespace {

using nlohmann::json;
using namespace modelzoo::cli;

enum ExitCode : int { kOk = 0, kFailed = 1, kUsage = 2, kDaemonUnavailable = 3 };

struct Options {
  bool json = false;
  std::string runtime_dir;  // as given; resolved by runtime_dir()
  std::string ref;          // show, pull, load, cache rm: NAME[:VERSION]
  std::string plugin_name;  // plugins reset
  std::vector<std::string> prefixes;         // events
  std::optional<std::uint64_t> event_count;  // events --count
  std::optional<double> event_timeout_s;     // events --timeout
  std::string cache_dir;                     // cache --cache-dir
  bool remove_corrupt = false;               // cache verify --remove-corrupt
  bool prune_all = false;                    // cache prune --all
  std::string push_target;                   // push oci://HOST[:PORT]/REPO[:TAG]
  bool plain_http = false;                   // push --plain-http
  std::string push_user;                     // push --user (password: $MODELZOO_OCI_PASSWORD)
  std::uint64_t push_chunk_mib = 64;         // push --chunk-mib
  CryptOptions crypt;                        // encrypt, decrypt
  SecretOptions secret;                      // secret keygen, secret encrypt
  KeysOptions keys;                          // keys generate, list, show
  PluginTestOptions plugin_test;             // plugin test
  PluginNewOptions plugin_new;               // plugin new
  PluginValidateOptions plugin_validate;     // plugin validate

  // A daemon on another host (--connect etc., else MODELZOO_CONNECT etc.).
  modelzoo::RemoteDaemon remote;

  // --runtime-dir wins; else default_runtime_dir() ($MODELZOO_RUNTIME_DIR, XDG, /tmp).
  std::string resolved_runtime_dir() const {
    return runtime_dir.empty() ? modelzoo::default_runtime_dir() : runtime_dir;
  }
  // The remote daemon to talk to, if one is named; --runtime-dir given on the command line
  // wins over MODELZOO_CONNECT from the environment.
  std::optional<modelzoo::RemoteDaemon> resolved_remote() const {
    if (!remote.endpoint.empty()) return remote;
    if (!runtime_dir.empty()) return std::nullopt;
    return modelzoo::remote_daemon_from_environment();
  }
  std::unique_ptr<modelzoo::Client> connect() const {
    if (auto r = resolved_remote()) return std::make_unique<modelzoo::Client>(*r);
    return std::make_unique<modelzoo::Client>(resolved_runtime_dir());
  }
};

// ---- output --------------------------------------------------------------------------

// Error messages must stay on one line: scripts and tests read stderr line by line.
std::string one_line(std::string text) {
  std::replace(text.begin(), text.end(), '\n', ' ');
  std::replace(text.begin(), text.end(), '\r', ' ');
  return text;
}

void print_json(const json& value) { std::cout << dump_json(value, 2) << '\n' << std::flush; }

// Reports a failure on stderr ("modelzoo: [code: ]message") and, in JSON mode, as an
// error object on stdout.
enum class ShowCode : bool { no, yes };
int report_error(const Options& options, std::string_view code, const std::string& message, int exit_code,
                 ShowCode show_code = ShowCode::no) {
  std::cerr << "modelzoo: " << (show_code == ShowCode::yes ? std::string(code) + ": " : std::string())
            << one_line(message) << '\n';
  if (options.json) print_json({{"error", {{"code", code}, {"message", message}}}});
  return exit_code;
}

// Prints a reply: as JSON with --json, else through its human view.
void print_reply(const Options& options, const json& reply, const std::function<std::string(const json&)>& view) {
  if (options.json) {
    print_json(reply);
  } else {
    std::cout << view(reply) << std::flush;
  }
}

// Columns of the terminal on stderr, for the progress line.
std::size_t terminal_width() {
  winsize size{};
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

// The pull progress line on stderr, redrawn in place. Cleared when destroyed, so an
// error message after a failed pull starts on a clean line.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  ~ProgressBar() { clear(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(const json& progress_message) {
    if (!enabled_ || !throttle_.due(RedrawThrottle::Clock::now())) return;
    draw(pull_progress_from_json(progress_message));
  }

  // For progress computed here (cache verify); `force` draws even when not due (the end).
  void update(const PullProgress& progress, bool force = false) {
    if (!enabled_ || !(throttle_.due(RedrawThrottle::Clock::now()) || force)) return;
    draw(progress);
  }

  void clear() {
    if (!drawn_) return;
    write("\r\x1b[K");
    drawn_ = false;
  }

 private:
  void draw(const PullProgress& progress) {
    // "\x1b[K" erases what a longer previous line left to the right.
    write("\r" + render_progress_line(progress, terminal_width()) + "\x1b[K");
    drawn_ = true;
  }

  // One write per redraw: stderr is unbuffered and partial lines would flicker.
  static void write(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  }

  bool enabled_;
  bool drawn_ = false;
  RedrawThrottle throttle_{std::chrono::milliseconds(100)};  // at most ~10 redraws a second
};

// ---- commands ------------------------------------------------------------------------

int run_status(const Options& options) {
  auto connection = options.connect();
  modelzoo::Client& client = *connection;
  print_reply(options, client.status(), render_status);
  return kOk;
}

int run_plugins(const Options& options) {
  auto connection = options.connect();
  modelzoo::Client& client = *connection;
  print_reply(options, client.plugins(), render_plugins);
  return kOk;
}

int run_plugin_reset(const Options& options) {
  auto connection = options.connect();
  modelzoo::Client& client = *connection;
  print_reply(options, client.reset_plugin(options.plugin_name), render_plugin_reset);
  return kOk;
}

int run_models(const Options& options) {
  auto connection = options.connect();
  modelzoo::Client& client = *connection;
  const json reply = client.models();
  // Plugins that failed to answer are worth a warning, not a failure: the others answered.
  for (const std::string& warning : model_warnings(reply)) {
    std::cerr << "modelzoo: warning: " << one_line(warning) << '\n';
  }
  print_reply(options, reply, render_models);
  return kOk;
}

int run_show(const Options& options) {
  auto connection = options.connect();
  modelzoo::Client& client = *connection;
  print_reply(options, client.show(options.ref), render_show);
  return kOk;
}

// pull and load: a progress bar on a terminal, the summary on stderr, the path on stdout.
int run_transfer(const Options& options, bool load) {
  auto connection = options.connect();
  modelzoo::Client& client = *connection;
  const bool draw_bar = !options.json && isatty(STDERR_FILENO) == 1;
  json reply;
  {
    ProgressBar bar(draw_bar);
    auto on_progress = [&bar](const json& progress) { bar.update(progress); };
    reply = load ? client.load(options.ref, on_progress) : client.pull(options.ref, on_progress);
  }
  if (options.json) {
    print_json(reply);
    return kOk;
  }
  // Only the path goes to stdout, so that `dir=$(modelzoo pull x)` works.
  std::cerr << (load ? render_load_summary(reply) : render_pull_summary(reply));
  const json& path = reply.is_object() && reply.contains("path") ? reply["path"] : json();
  std::cout << (path.is_string() ? path.get<std::string>() : dump_json(path)) << '\n' << std::flush;
  return kOk;
}

int run_pull(const Options& options) { return run_transfer(options, false); }
int run_load(const Options& options) { return run_transfer(options, true); }

// ---- cache ---------------------------------------------------------------------------
// Run here, in this process, on the cache directory: a long verify never blocks the daemon,
// and they work while no daemon runs.

// --cache-dir wins; else the running daemon's cache_dir (from `status`); else the daemon's
// default ($MODELZOO_CACHE_DIR, $XDG_CACHE_HOME/modelzoo, ~/.cache/modelzoo).
std::filesystem::path resolve_cache_dir(const Options& options) {
  if (!options.cache_dir.empty()) return options.cache_dir;
  try {
    auto connection = options.connect();
  modelzoo::Client& client = *connection;
    const json status = client.call("status", json::object(), std::chrono::seconds(5));
    if (const auto it = status.find("cache_dir"); it != status.end() && it->is_string() && !it->empty()) {
      return it->get<std::string>();
    }
  } catch (const modelzoo::DaemonUnavailable&) {
    // No daemon: its default directory.
  } catch (const modelzoo::bus::Error& e) {
    // A daemon that does not answer may use another directory than the default: do not guess.
    std::string message = "cannot ask the daemon for its cache directory (";
    message.append(e.what()).append("); name it with --cache-dir DIR");
    throw modelzoo::bus::Error(e.code(), message);
  }
  return modelzoo::core::default_cache_dir();
}

int run_cache_ls(const Options& options) {
  const auto root = resolve_cache_dir(options);
  print_reply(options, modelzoo::core::to_json(modelzoo::core::list_cache(root)), render_cache_list);
  return kOk;
}

int run_cache_verify(const Options& options) {
  const auto root = resolve_cache_dir(options);
  modelzoo::core::VerifyOptions verify_options;
  verify_options.remove_corrupt = options.remove_corrupt;
  const bool draw_bar = !options.json && isatty(STDERR_FILENO) == 1;
  modelzoo::core::VerifyReport report;
  {
    ProgressBar bar(draw_bar);
    const auto started = std::chrono::steady_clock::now();
    verify_options.on_progress = [&](std::uint64_t done, std::uint64_t total) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      PullProgress progress;
      progress.bytes = done;
      progress.total_bytes = total;
      progress.bytes_per_second = seconds > 0 ? static_cast<double>(done) / seconds : 0;
      progress.file = "verifying";
      bar.update(progress);
    };
    report = modelzoo::core::verify_cache(root, verify_options);
  }
  print_reply(options, modelzoo::core::to_json(report), render_cache_verify);
  return report.ok() ? kOk : kFailed;
}

int run_cache_rm(const Options& options) {
  const auto ref = modelzoo::bus::parse_model_ref(options.ref);  // bad_request on a bad name
  const auto root = resolve_cache_dir(options);
  print_reply(options, modelzoo::core::to_json(modelzoo::core::remove_cached(root, ref.name, ref.version)),
              render_cache_remove);
  return kOk;
}

int run_cache_prune(const Options& options) {
  const auto root = resolve_cache_dir(options);
  modelzoo::core::PruneOptions prune_options;
  if (options.prune_all) prune_options.partial_age = std::chrono::seconds(0);
  print_reply(options, modelzoo::core::to_json(modelzoo::core::prune_cache(root, prune_options)),
              render_cache_prune);
  return kOk;
}

// ---- push (plugins/oci/push.h) ------------------------------------------------------
// Reads the model straight from the cache directory (as the cache commands do: --cache-dir,
// else the running daemon's, else the default), read-only; the daemon is not involved, so a
// push never competes with pulls for the daemon's threads. The version must be complete.

int run_push(const Options& options) {
  const auto ref = modelzoo::bus::parse_model_ref(options.ref);
  const auto root = resolve_cache_dir(options);
  const auto listing = modelzoo::core::list_cache(root);
  const modelzoo::core::CachedVersion* found = nullptr;
  for (const auto& v : listing.models)  // newest version first
    if (v.name == ref.name && (ref.version.empty() || v.version == ref.version)) {
      found = &v;
      break;
    }
  if (!found) throw modelzoo::bus::Error(modelzoo::bus::ErrorCode::not_found, ref.str() + " is not in the cache at " + root.string() + "; pull it first");
  if (!found->complete)
    throw modelzoo::bus::Error(modelzoo::bus::ErrorCode::not_found, ref.str() + " is not complete in the cache (a blob is missing); pull it again");
  namespace oci = modelzoo::plugins::oci;
  const auto target = oci::parse_push_target(options.push_target, found->version, options.plain_http);
  json config = {{"url", target.url}};
  if (!options.push_user.empty()) {
    const char* pw = std::getenv("MODELZOO_OCI_PASSWORD");
    if (!pw) throw modelzoo::bus::Error(modelzoo::bus::ErrorCode::bad_request, "push --user: set the password in MODELZOO_OCI_PASSWORD");
    config["auth"] = {{"user", options.push_user}, {"password", pw}};
  }
  oci::Client client(oci::parse_config(config), "push");
  std::vector<oci::PushFile> files;
  std::uint64_t total = 0;
  for (const auto& f : found->files) {
    files.push_back({f.name, f.size, f.sha256, root / "blobs" / "sha256" / f.sha256});
    total += f.size;
  }
  json reply;
  {
    ProgressBar bar(!options.json && isatty(STDERR_FILENO) == 1);
    std::uint64_t done_before = 0, last_total = 0;
    std::string last_file;
    const auto started = std::chrono::steady_clock::now();
    reply = oci::push(client, target, files, [&](const oci::PushProgress& p) {
      if (p.file != last_file) done_before += last_total, last_file = p.file;
      last_total = p.total_bytes;
      PullProgress progress;
      progress.bytes = done_before + p.bytes;
      progress.total_bytes = total;
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      progress.bytes_per_second = seconds > 0 ? static_cast<double>(progress.bytes) / seconds : 0;
      progress.file = p.file;
      bar.update(progress);
    }, options.push_chunk_mib << 20);
  }
  reply["name"] = found->name;
  reply["version"] = found->version;
  reply["reference"] = options.push_target;
  print_reply(options, reply, [](const json& r) {
    return "pushed " + r["name"].get<std::string>() + ":" + r["version"].get<std::string>() + " to " + r["url"].get<std::string>() +
           "/" + r["repository"].get<std::string>() + ":" + r["tag"].get<std::string>() + " (" + r["digest"].get<std::string>() +
           "), " + std::to_string(r["blobs_uploaded"].get<std::uint64_t>()) + " blob(s) uploaded, " +
           std::to_string(r["blobs_skipped"].get<std::uint64_t>()) + " already there\n";
  });
  return kOk;
}

// ---- encrypt, decrypt (crypt_cmd.h) --------------------------------------------------

int run_encrypt_command(const Options& options) {
  print_reply(options, run_encrypt(options.crypt), render_crypt);
  return kOk;
}

int run_decrypt_command(const Options& options) {
  print_reply(options, run_decrypt(options.crypt), render_crypt);
  return kOk;
}

// ---- secret keygen, encrypt (secret_cmd.h) ----------------------------------------------

int run_secret_keygen_command(const Options& options) {
  print_reply(options, run_secret_keygen(options.secret), render_secret);
  return kOk;
}

int run_secret_encrypt_command(const Options& options) {
  print_reply(options, run_secret_encrypt(options.secret), render_secret);
  return kOk;
}

// ---- keys generate, list, show (keys_cmd.h) ---------------------------------------------

int run_keys_generate_command(const Options& options) {
  print_reply(options, run_keys_generate(options.keys), render_keys);
  return kOk;
}
int run_keys_list_command(const Options& options) {
  print_reply(options, run_keys_list(options.keys), render_keys);
  return kOk;
}
int run_keys_show_command(const Options& options) {
  print_reply(options, run_keys_show(options.keys), render_keys);
  return kOk;
}

// ---- plugin test, new, validate (plugin_test_cmd.h, plugin_scaffold_cmd.h) ------------------

int run_plugin_test_command(const Options& options) { return run_plugin_test(options.plugin_test, options.json); }
int run_plugin_new_command(const Options& options) { return run_plugin_new(options.plugin_new, options.json); }
int run_plugin_validate_command(const Options& options) {
  return run_plugin_validate(options.plugin_validate, options.json);
}

volatile std::sig_atomic_t g_stop_requested = 0;

extern "C" void request_stop(int) { g_stop_requested = 1; }

// SIGINT/SIGTERM end `events` cleanly; no SA_RESTART so a blocking poll returns early.
void install_stop_handlers() {
  struct sigaction action {};
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int run_events(const Options& options) {
  const std::vector<std::string> prefixes = options.prefixes.empty() ? std::vector<std::string>{""} : options.prefixes;
  // Throws DaemonUnavailable itself when no daemon listens.
  auto remote = options.resolved_remote();
  auto subscriber_ptr = remote ? std::make_unique<modelzoo::EventSubscriber>(*remote, prefixes)
                               : std::make_unique<modelzoo::EventSubscriber>(options.resolved_runtime_dir(), prefixes);
  modelzoo::EventSubscriber& subscriber = *subscriber_ptr;
  install_stop_handlers();

  using Clock = std::chrono::steady_clock;
  std::optional<Clock::time_point> deadline;
  if (options.event_timeout_s) {
    // Capped at a year: a huge value would overflow the clock's duration type.
    const double seconds = std::min(*options.event_timeout_s, 365.0 * 24 * 3600);
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  }
  constexpr std::chrono::milliseconds kPollInterval(200);  // how soon a signal is noticed
  std::uint64_t seen = 0;
  while (!g_stop_requested) {
    auto wait = kPollInterval;
    if (deadline) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now());
      if (left <= std::chrono::milliseconds::zero()) break;
      wait = std::min(wait, left);
    }
    std::optional<modelzoo::Event> event;
    try {
      event = subscriber.next(wait);
    } catch (const std::exception&) {
      if (g_stop_requested) break;  // the signal interrupted the poll
      throw;
    }
    if (!event) continue;
    json body = event->body.is_object() ? event->body : json::object();
    if (!body.contains("topic")) body["topic"] = event->topic;
    // Flush every line: `modelzoo events | grep …` should see events as they happen.
    std::cout << (options.json ? dump_json(body) : format_event_line(body)) << '\n' << std::flush;
    if (options.event_count && ++seen >= *options.event_count) break;
  }
  return kOk;
}

// ---- command line --------------------------------------------------------------------

// Accepts numbers >= `minimum`. CLI11's own PositiveNumber prints the whole double range
// in its error message; this one says what is wrong in a few words.
CLI::Validator at_least(double minimum) {
  return CLI::Validator(
      [minimum](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value)) return "not a number: " + input;
        if (!(value >= minimum)) return "must be at least " + CLI::detail::to_string(minimum);
        return {};
      },
      "", "at least");
}

// CLI11 has already failed when we look, so --json may not have been parsed: look for it.
bool json_requested(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg == "--json") return true;
  }
  return false;
}

int run(int argc, char** argv) {
  Options options;
  CLI::App app{"modelzoo: query and drive the modelzood daemon", "modelzoo"};
  app.set_version_flag("--version", std::string("modelzoo ") + MODELZOO_VERSION);
  app.require_subcommand(1);
  app.footer(
      "--json and --runtime-dir may also follow the subcommand, --cache-dir the cache subcommand.\n"
      "Exit status: 0 success, 1 the daemon reported an error (or `cache verify` found a corrupt blob),\n"
      "2 usage error, 3 daemon not running.");
  // Subcommands created after this inherit it, so the global options may follow them
  // (`modelzoo status --json`).
  app.fallthrough();
  app.add_flag("--json", options.json, "Print replies (and errors) as JSON on stdout");
  app.add_option("--runtime-dir", options.runtime_dir,
                 "The daemon's runtime directory (default: $MODELZOO_RUNTIME_DIR, "
                 "else $XDG_RUNTIME_DIR/modelzoo, else /tmp/modelzoo-$UID)");
  app.add_option("--connect", options.remote.endpoint,
                 "A daemon on another host: its `listen.clients` endpoint, tcp://HOST:PORT (default $MODELZOO_CONNECT)")
      ->group("Remote daemon (TCP + CURVE)");
  app.add_option("--events-connect", options.remote.events_endpoint,
                 "Its `listen.events` endpoint, for `events` (default $MODELZOO_EVENTS_CONNECT)")
      ->group("Remote daemon (TCP + CURVE)");
  app.add_option("--server-key", options.remote.server_key,
                 "The daemon's public key, 40 Z85 characters (`modelzoo keys show server` on its host)")
      ->envname("MODELZOO_SERVER_KEY")
      ->group("Remote daemon (TCP + CURVE)");
  app.add_option("--key", options.remote.key_file, "This client's key pair (`modelzoo keys generate NAME`)")
      ->envname("MODELZOO_KEY_FILE")
      ->group("Remote daemon (TCP + CURVE)");

  // Which command ran is decided after parsing: CLI11 runs a subcommand's callback before
  // its parent's, so callbacks could not let `plugins reset` win over `plugins`.
  std::vector<std::pair<const CLI::App*, int (*)(const Options&)>> commands;  // innermost first

  CLI::App* status = app.add_subcommand("status", "Show the daemon's status");
  commands.emplace_back(status, run_status);

  CLI::App* plugins = app.add_subcommand("plugins", "List the registry plugins and their state");
  plugins->require_subcommand(0, 1);
  CLI::App* reset = plugins->add_subcommand("reset", "Restart a failed plugin and clear its backoff");
  reset->add_option("NAME", options.plugin_name, "Plugin name")->required();
  commands.emplace_back(reset, run_plugin_reset);
  commands.emplace_back(plugins, run_plugins);

  CLI::App* models = app.add_subcommand("models", "List the models every plugin offers");
  commands.emplace_back(models, run_models);

  CLI::App* show = app.add_subcommand("show", "Show a model's metadata and which sources have it");
  show->add_option("MODEL", options.ref, "NAME[:VERSION]")->required();
  commands.emplace_back(show, run_show);

  CLI::App* pull = app.add_subcommand("pull", "Download a model into the cache; prints its local path");
  pull->add_option("MODEL", options.ref, "NAME[:VERSION]")->required();
  commands.emplace_back(pull, run_pull);

  CLI::App* load = app.add_subcommand("load", "Pull a model if needed and record its use; prints its local path");
  load->add_option("MODEL", options.ref, "NAME[:VERSION]")->required();
  commands.emplace_back(load, run_load);

  CLI::App* cache = app.add_subcommand("cache", "Inspect and clean the model cache (works without a daemon)");
  cache->require_subcommand(1);
  cache->add_option("--cache-dir", options.cache_dir,
                    "The cache directory (default: the running daemon's, else $MODELZOO_CACHE_DIR, "
                    "else $XDG_CACHE_HOME/modelzoo, else ~/.cache/modelzoo)");
  CLI::App* cache_ls = cache->add_subcommand("ls", "List cached models, unreferenced blobs and partial downloads");
  commands.emplace_back(cache_ls, run_cache_ls);
  CLI::App* cache_verify =
      cache->add_subcommand("verify", "Re-hash every blob; exits 1 when any is corrupt, naming the models using it");
  cache_verify->add_flag("--remove-corrupt", options.remove_corrupt,
                         "Delete corrupt blobs so that the next pull fetches them again");
  commands.emplace_back(cache_verify, run_cache_verify);
  CLI::App* cache_rm =
      cache->add_subcommand("rm", "Remove a cached model (all versions unless one is given) and its unshared blobs");
  cache_rm->add_option("MODEL", options.ref, "NAME[:VERSION]")->required();
  commands.emplace_back(cache_rm, run_cache_rm);
  CLI::App* cache_prune = cache->add_subcommand(
      "prune", "Delete unreferenced blobs (older than 10 minutes), old idle partial downloads, empty directories");
  cache_prune->add_flag("--all", options.prune_all, "Delete idle partial downloads of any age (default: 7 days old)");
  commands.emplace_back(cache_prune, run_cache_prune);

  CLI::App* events = app.add_subcommand("events", "Follow the daemon's events until interrupted");
  events->add_option("PREFIX", options.prefixes, "Topic prefixes to follow (default: all)");
  events->add_option("--count", options.event_count, "Exit after N events")->check(at_least(1));
  events->add_option("--timeout", options.event_timeout_s, "Exit after SECONDS")->check(at_least(0));
  commands.emplace_back(events, run_events);

  CLI::App* push = app.add_subcommand("push", "Publish a cached model as an OCI artifact (ORAS layout) to an OCI registry");
  push->add_option("MODEL", options.ref, "NAME[:VERSION] (in the cache)")->required();
  push->add_option("TARGET", options.push_target, "oci://HOST[:PORT]/REPO[:TAG] (TAG defaults to the version)")->required();
  push->add_flag("--plain-http", options.plain_http, "Talk http, not https (implied for 127.0.0.1, localhost, [::1])");
  push->add_option("--user", options.push_user, "Basic/token credentials: the user; the password from $MODELZOO_OCI_PASSWORD "
                                                 "(default: ~/.docker/config.json auths)");
  push->add_option("--cache-dir", options.cache_dir, "The cache directory (as for `cache`)");
  push->add_option("--chunk-mib", options.push_chunk_mib,
                   "Files larger than this many MiB go up in PATCH chunks of this size (default 64; lower it for a "
                   "registry or proxy that limits request bodies)")
      ->check(CLI::Range(1, 4096));
  commands.emplace_back(push, run_push);

  commands.emplace_back(add_encrypt_command(app, options.crypt), run_encrypt_command);
  commands.emplace_back(add_decrypt_command(app, options.crypt), run_decrypt_command);
  CLI::App* secret = add_secret_command(app);
  commands.emplace_back(add_secret_keygen_command(*secret, options.secret), run_secret_keygen_command);
  commands.emplace_back(add_secret_encrypt_command(*secret, options.secret), run_secret_encrypt_command);
  CLI::App* keys = add_keys_command(app);
  commands.emplace_back(add_keys_generate_command(*keys, options.keys), run_keys_generate_command);
  commands.emplace_back(add_keys_list_command(*keys, options.keys), run_keys_list_command);
  commands.emplace_back(add_keys_show_command(*keys, options.keys), run_keys_show_command);

  CLI::App* plugin = app.add_subcommand("plugin", "For plugin authors: test a plugin, create one, check a manifest");
  plugin->require_subcommand(1);
  commands.emplace_back(add_plugin_test_command(*plugin, options.plugin_test), run_plugin_test_command);
  commands.emplace_back(add_plugin_new_command(*plugin, options.plugin_new), run_plugin_new_command);
  commands.emplace_back(add_plugin_validate_command(*plugin, options.plugin_validate), run_plugin_validate_command);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    options.json = json_requested(argc, argv);
    report_error(options, "bad_request", e.what(), kUsage);
    std::cerr << "Run with --help for more information.\n";
    return kUsage;
  }
  const auto chosen = std::find_if(commands.begin(), commands.end(),
                                   [](const auto& entry) { return entry.first->parsed(); });
  if (chosen == commands.end()) return kUsage;  // unreachable: require_subcommand(1)

  try {
    return chosen->second(options);
  } catch (const modelzoo::DaemonUnavailable& e) {
    const std::string what = e.what();
    const std::string message =
        what.empty() ? "daemon not running (no socket at " + options.resolved_runtime_dir() + ")" : what;
    return report_error(options, "unavailable", message, kDaemonUnavailable);
  } catch (const modelzoo::bus::Error& e) {
    const std::string code(modelzoo::bus::to_string(e.code()));
    return report_error(options, code, e.what(), kFailed, ShowCode::yes);
  } catch (const modelzoo::codec::CodecError& e) {
    return report_error(options, "failed", e.what(), kFailed);
  } catch (const modelzoo::bus::KeyError& e) {
    return report_error(options, "failed", e.what(), kFailed);
  } catch (const json::exception& e) {
    // nlohmann's what() starts with "[json.exception.type_error.302] "; users need not see it.
    std::string what = e.what();
    if (const auto end = what.find("] "); what.rfind("[json.", 0) == 0 && end != std::string::npos) {
      what.erase(0, end + 2);
    }
    return report_error(options, "internal", "unexpected reply from the daemon: " + what, kFailed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing may escape main: an uncaught exception would print its type via std::terminate.
  Options fallback;
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fallback.json = json_requested(argc, argv);
    return report_error(fallback, "internal", e.what(), kFailed);
  } catch (...) {
    fallback.json = json_requested(argc, argv);
    return report_error(fallback, "internal", "unexpected failure", kFailed);
  }
}
