// `modelzoo secret`: encrypted credentials for the daemon's configuration
// (codec/, format in modelzoo/codec/secret.h). Local files only, without a daemon.
//
//   modelzoo secret keygen [--key-file F]    new secrets key, mode 0600; never overwrites
//   modelzoo secret encrypt [--key-file F]   the secret on stdin -> "enc:v1:..." on stdout
//
// F defaults to default_secret_key_file(): $MODELZOO_SECRET_KEY_FILE, else <data dir>/secret.key,
// the data dir being the daemon's default one: $MODELZOO_DATA_DIR, else $XDG_DATA_HOME/modelzoo,
// else $HOME/.local/share/modelzoo (a data_dir set in the daemon's configuration file is not
// seen here: give --key-file then).
//
// The secret is read from standard input, never from the command line (where shell history and
// `ps` would see it): from a terminal, one line after a "secret: " prompt on stderr, without
// echo; else everything up to the end of input, less one trailing newline. It must not be empty,
// must be UTF-8 text of at most 64 KiB. There is deliberately no `secret decrypt`.
// Failures throw modelzoo::codec::CodecError; their messages never contain the secret.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace modelzoo::cli {

struct SecretOptions {
  std::string key_file;            // --key-file F (empty: the default)
  std::vector<std::string> extra;  // stray arguments to encrypt: refused (maybe a secret)
};

// `secret`, to which the two below are added (it requires one of them).
CLI::App* add_secret_command(CLI::App& app);
CLI::App* add_secret_keygen_command(CLI::App& secret, SecretOptions& options);
CLI::App* add_secret_encrypt_command(CLI::App& secret, SecretOptions& options);

// The daemon's default data directory: $MODELZOO_DATA_DIR, else $XDG_DATA_HOME/modelzoo, else
// $HOME/.local/share/modelzoo (as config/src/config.cc computes it without a data_dir).
std::filesystem::path default_data_dir();

// The key file used: options.key_file, else the default above.
std::string secret_key_file(const SecretOptions& options);

// Run them. The result, as printed with --json:
//   keygen:  {"key_id", "key_file"}
//   encrypt: {"value", "key_id"}
nlohmann::json run_secret_keygen(const SecretOptions& options);
nlohmann::json run_secret_encrypt(const SecretOptions& options);

// The human view of those results: "secrets key <id> written to F", or the value alone; one line.
std::string render_secret(const nlohmann::json& result);

}  // namespace modelzoo::cli
