// `modelzoo encrypt` and `modelzoo decrypt`: for publishers of encrypted models
// (codec/, format in modelzoo/codec/crypt.h). They work on local files only, without
// a daemon.
//
//   modelzoo encrypt --generate-key KEYFILE          new key, mode 0600; never overwrites
//   modelzoo encrypt --key KEYFILE IN [-o OUT] [--force]   OUT defaults to IN.enc
//   modelzoo decrypt --key KEYFILE IN [-o OUT] [--force]   OUT defaults to IN less .enc
//
// An existing OUT is replaced only with --force. Failures throw modelzoo::codec::CodecError;
// wrong combinations of arguments throw CLI11 errors while parsing (a usage error).
#pragma once

#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace modelzoo::cli {

struct CryptOptions {
  std::string generate_key;  // encrypt --generate-key KEYFILE
  std::string key_file;      // --key KEYFILE
  std::string input;         // IN
  std::string output;        // -o OUT
  bool force = false;        // --force
};

// Add the subcommands to `app`, filling `options` when parsed.
CLI::App* add_encrypt_command(CLI::App& app, CryptOptions& options);
CLI::App* add_decrypt_command(CLI::App& app, CryptOptions& options);

// Run them. The result, as printed with --json:
//   --generate-key: {"key_id", "key_file"}
//   encrypt, decrypt: {"input", "output", "key_id", "input_bytes", "bytes"} (bytes: of OUT)
nlohmann::json run_encrypt(const CryptOptions& options);
nlohmann::json run_decrypt(const CryptOptions& options);

// The human view of those results, one line: "key <id> written to KEYFILE" or
// "IN -> OUT (key <id>, N bytes)".
std::string render_crypt(const nlohmann::json& result);

}  // namespace modelzoo::cli
