// `modelzoo keys`: CURVE key pairs for the bus over TCP (docs/security.md, "Remote peers
// over TCP"; file format in modelzoo/bus/curve.h). Local files only, without a daemon.
//
//   modelzoo keys generate NAME [--dir D]   D/NAME.key (0600, the pair) and D/NAME.pub
//   modelzoo keys list [--dir D]            the keys in D, and the client allow-list there
//   modelzoo keys show NAME|FILE [--dir D]  the public key, to paste into `remote_key` or
//                                           the client allow-list
//
// D defaults to $MODELZOO_KEYS_DIR, else <data dir>/keys: where the daemon looks for its
// server key (server.key) and its client allow-list (authorized_clients) by default.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

namespace modelzoo::cli {

struct KeysOptions {
  std::string dir;   // --dir D (empty: the default)
  std::string name;  // generate NAME, show NAME|FILE
};

CLI::App* add_keys_command(CLI::App& app);
CLI::App* add_keys_generate_command(CLI::App& keys, KeysOptions& options);
CLI::App* add_keys_list_command(CLI::App& keys, KeysOptions& options);
CLI::App* add_keys_show_command(CLI::App& keys, KeysOptions& options);

// The results, as printed with --json:
//   generate: {"name", "public_key", "key_file", "public_key_file"}
//   list:     {"dir", "keys": [{"name", "public_key", "secret", "file", "problem"?}],
//              "authorized_clients": [{"public_key", "name"}] (when D/authorized_clients exists)}
//   show:     {"name", "public_key", "file"}
// Failures throw modelzoo::bus::KeyError naming the file; never a secret key.
nlohmann::json run_keys_generate(const KeysOptions& options);
nlohmann::json run_keys_list(const KeysOptions& options);
nlohmann::json run_keys_show(const KeysOptions& options);

std::string render_keys(const nlohmann::json& result);

}  // namespace modelzoo::cli
