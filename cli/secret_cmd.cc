#include "secret_cmd.h"

#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>
#include <vector>

#include "modelzoo/codec/crypt.h"
#include "modelzoo/codec/secret.h"

namespace modelzoo::cli {

namespace fs = std::filesystem;
using nlohmann::json;
namespace codec = modelzoo::codec;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}


// The secret as read: a fixed buffer (never reallocated, so never copied), wiped when it goes.
class SecretBuffer {
 public:
  SecretBuffer() : bytes_(codec::kMaxSecretSize + 2) {}  // room for one too many, and a newline
  ~SecretBuffer() { sodium_memzero(bytes_.data(), bytes_.size()); }
  SecretBuffer(const SecretBuffer&) = delete;
  SecretBuffer& operator=(const SecretBuffer&) = delete;

  char* data() { return bytes_.data(); }
  std::size_t capacity() const { return bytes_.size(); }
  std::size_t size = 0;
  std::string_view view() const { return {bytes_.data(), size}; }

 private:
  std::vector<char> bytes_;
};

// ---- reading without echo ---------------------------------------------------------------

// The terminal's settings while echo is off, restored by the signal handlers below too.
termios g_saved_termios{};
volatile std::sig_atomic_t g_echo_off = 0;
constexpr int kRestoreSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

extern "C" void restore_echo_and_die(int sig) {
  if (g_echo_off) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Echo off on the terminal on stdin while it lives; restored when it goes, or on a signal.
class NoEcho {
 public:
  NoEcho() {
    if (::tcgetattr(STDIN_FILENO, &g_saved_termios) != 0) return;  // not a terminal after all
    struct sigaction action {};
    action.sa_handler = restore_echo_and_die;
    sigemptyset(&action.sa_mask);
    for (std::size_t i = 0; i < std::size(kRestoreSignals); ++i) {
      ::sigaction(kRestoreSignals[i], &action, &previous_[i]);
    }
    termios quiet = g_saved_termios;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL);
    g_echo_off = 1;
    if (::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) != 0) g_echo_off = 0;
    active_ = true;
  }
  ~NoEcho() {
    if (!active_) return;
    if (g_echo_off) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &g_saved_termios);
    g_echo_off = 0;
    for (std::size_t i = 0; i < std::size(kRestoreSignals); ++i)
      ::sigaction(kRestoreSignals[i], &previous_[i], nullptr);
  }
  NoEcho(const NoEcho&) = delete;
  NoEcho& operator=(const NoEcho&) = delete;

 private:
  bool active_ = false;
  struct sigaction previous_[std::size(kRestoreSignals)]{};
};

void write_stderr(std::string_view text) {
  while (!text.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

[[noreturn]] void too_long() {
  throw codec::CodecError("the secret is longer than " + std::to_string(codec::kMaxSecretSize) + " bytes");
}

// Reads into `buffer` until the end of input or, with `line` (a terminal), a newline.
void read_stdin(SecretBuffer& buffer, bool line) {
  while (true) {
    if (buffer.size == buffer.capacity()) too_long();
    const ssize_t n = ::read(STDIN_FILENO, buffer.data() + buffer.size, line ? 1 : buffer.capacity() - buffer.size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw codec::CodecError(std::string("cannot read the secret from standard input: ") + std::strerror(errno));
    }
    if (n == 0) return;
    buffer.size += static_cast<std::size_t>(n);
    if (line && buffer.data()[buffer.size - 1] == '\n') return;
  }
}

// The secret from stdin, less one trailing newline ("\n" or "\r\n").
void read_secret(SecretBuffer& buffer) {
  if (::isatty(STDIN_FILENO)) {
    write_stderr("secret: ");
    {
      NoEcho no_echo;
      read_stdin(buffer, true);
    }
    write_stderr("\n");  // the newline the user typed was not echoed
  } else {
    read_stdin(buffer, false);
  }
  if (buffer.size > 0 && buffer.data()[buffer.size - 1] == '\n') {
    --buffer.size;
    if (buffer.size > 0 && buffer.data()[buffer.size - 1] == '\r') --buffer.size;
  }
  if (buffer.size > codec::kMaxSecretSize) too_long();
  if (buffer.size == 0) throw codec::CodecError("the secret is empty: give it on standard input");
}

}  // namespace

CLI::App* add_secret_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "secret", "Encrypted credentials for the daemon's configuration file (works without a daemon)");
  cmd->require_subcommand(1);
  cmd->footer(
      "The key file defaults to $MODELZOO_SECRET_KEY_FILE, else <data dir>/secret.key, the data dir being\n"
      "$MODELZOO_DATA_DIR, else $XDG_DATA_HOME/modelzoo, else ~/.local/share/modelzoo. It must be readable\n"
      "by the daemon's user only (mode 0600).");
  return cmd;
}

CLI::App* add_secret_keygen_command(CLI::App& secret, SecretOptions& options) {
  CLI::App* cmd = secret.add_subcommand("keygen", "Create the secrets key file (mode 0600, never overwritten)");
  cmd->add_option("--key-file", options.key_file, "The key file to create (default: see `modelzoo secret --help`)")
      ->type_name("F");
  return cmd;
}

CLI::App* add_secret_encrypt_command(CLI::App& secret, SecretOptions& options) {
  CLI::App* cmd = secret.add_subcommand(
      "encrypt",
      "Read a secret from standard input (prompting, without echo, on a terminal) and print the encrypted "
      "value to paste in the configuration file");
  cmd->add_option("--key-file", options.key_file, "The key file (default: see `modelzoo secret --help`)")
      ->type_name("F");
  // Anything else may be a secret given on the command line by mistake: refused without being
  // repeated (CLI11's own message would quote it). Stray positionals land in `extra`; unknown
  // options fall through to the parents, whose leftovers are looked at too, as soon as this
  // subcommand's arguments are parsed (before CLI11 complains about leftovers).
  cmd->add_option("ARGS", options.extra)->group("");
  cmd->parse_complete_callback([cmd, &options] {
    bool unexpected = !options.extra.empty();
    for (const CLI::App* a = cmd; a != nullptr; a = a->get_parent()) unexpected = unexpected || a->remaining_size() > 0;
    if (unexpected) {
      throw CLI::ValidationError(
          "unexpected arguments (not shown: they may be a secret); `secret encrypt` reads the secret from standard "
          "input, e.g. `modelzoo secret encrypt < file`");
    }
  });
  return cmd;
}

// The daemon's default data directory, as config/src/config.cc parse_config() computes it
// when its configuration file sets no data_dir.
fs::path default_data_dir() {
  if (auto dir = env("MODELZOO_DATA_DIR"); !dir.empty()) return dir;
  const std::string home = env("HOME");
  const std::string xdg_data = env("XDG_DATA_HOME");
  return (xdg_data.empty() ? (home.empty() ? fs::path("/tmp") : fs::path(home)) / ".local" / "share"
                           : fs::path(xdg_data)) /
         "modelzoo";
}

std::string secret_key_file(const SecretOptions& options) {
  if (!options.key_file.empty()) return options.key_file;
  return codec::default_secret_key_file(default_data_dir()).string();
}

json run_secret_keygen(const SecretOptions& options) {
  const fs::path file = secret_key_file(options);
  if (file.has_parent_path()) {
    std::error_code ec;
    fs::create_directories(file.parent_path(), ec);
    if (ec) {
      throw codec::CodecError("cannot create the directory " + file.parent_path().string() + ": " + ec.message());
    }
  }
  const codec::Key key = codec::generate_key();
  codec::write_key_file(file, key);
  return {{"key_id", key.id}, {"key_file", file.string()}};
}

json run_secret_encrypt(const SecretOptions& options) {
  const fs::path file = secret_key_file(options);
  std::error_code ec;
  if (fs::symlink_status(file, ec).type() == fs::file_type::not_found) {
    throw codec::CodecError("key file " + file.string() +
                            " does not exist; create it with `modelzoo secret keygen` (or name it with --key-file)");
  }
  // The key first: a bad key file is reported before the secret is asked for.
  const codec::Key key = codec::read_key_file(file);
  SecretBuffer secret;
  read_secret(secret);
  return {{"value", codec::encrypt_secret(secret.view(), key)}, {"key_id", key.id}};
}

std::string render_secret(const json& result) {
  const auto text = [&](const char* field) {
    const auto it = result.find(field);
    return it != result.end() && it->is_string() ? it->get<std::string>() : std::string("-");
  };
  if (result.contains("key_file")) return "secrets key " + text("key_id") + " written to " + text("key_file") + "\n";
  return text("value") + "\n";
}

}  // namespace modelzoo::cli
