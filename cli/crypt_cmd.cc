#include "crypt_cmd.h"

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "modelzoo/codec/crypt.h"

namespace modelzoo::cli {

namespace fs = std::filesystem;
using nlohmann::json;
namespace codec = modelzoo::codec;

namespace {

bool ends_with_enc(const std::string& path) {
  const std::string_view suffix = codec::kEncryptedSuffix;
  // "x.enc", not ".enc" alone nor "dir/.enc": something must remain.
  const std::string name = fs::path(path).filename().string();
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Refuses to replace an existing OUT (even a dangling symlink) unless --force.
void check_output(const fs::path& out, bool force) {
  std::error_code ec;
  if (!force && fs::symlink_status(out, ec).type() != fs::file_type::not_found) {
    throw codec::CodecError(out.string() + " already exists; use --force to replace it");
  }
}

std::uint64_t size_of(const fs::path& p) {
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  return ec ? 0 : size;
}

json result(const fs::path& in, const fs::path& out, const std::string& key_id, std::uint64_t input_bytes) {
  return {{"input", in.string()},
          {"output", out.string()},
          {"key_id", key_id},
          {"input_bytes", input_bytes},
          {"bytes", size_of(out)}};
}

}  // namespace

CLI::App* add_encrypt_command(CLI::App& app, CryptOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "encrypt", "Encrypt a model file for publishing (IN -> IN.enc), or create a key (works without a daemon)");
  CLI::Option* generate = cmd->add_option("--generate-key", options.generate_key,
                                          "Create a new key file (mode 0600, never overwritten) and print its id")
                              ->type_name("KEYFILE");
  CLI::Option* key = cmd->add_option("--key", options.key_file, "The key file")->type_name("KEYFILE");
  CLI::Option* in = cmd->add_option("IN", options.input, "The file to encrypt");
  CLI::Option* out = cmd->add_option("-o,--output", options.output, "The encrypted file (default: IN.enc)")
                         ->type_name("OUT");
  CLI::Option* force = cmd->add_flag("--force", options.force, "Replace OUT if it exists");
  generate->excludes(key)->excludes(in)->excludes(out)->excludes(force);
  key->needs(in);
  in->needs(key);
  cmd->callback([generate, key] {
    if (generate->count() == 0 && key->count() == 0) {
      throw CLI::RequiredError("--key KEYFILE (or --generate-key KEYFILE)");
    }
  });
  return cmd;
}

CLI::App* add_decrypt_command(CLI::App& app, CryptOptions& options) {
  CLI::App* cmd = app.add_subcommand(
      "decrypt", "Decrypt an encrypted model file (IN.enc -> IN), to check it (works without a daemon)");
  cmd->add_option("--key", options.key_file, "The key file")->type_name("KEYFILE")->required();
  cmd->add_option("IN", options.input, "The encrypted file")->required();
  CLI::Option* out = cmd->add_option("-o,--output", options.output, "The decrypted file (default: IN without .enc)")
                         ->type_name("OUT");
  cmd->add_flag("--force", options.force, "Replace OUT if it exists");
  cmd->callback([&options, out] {
    if (out->count() == 0 && !ends_with_enc(options.input)) {
      throw CLI::ValidationError(options.input + " does not end in " + std::string(codec::kEncryptedSuffix) +
                                 "; name the output with -o OUT");
    }
  });
  return cmd;
}

json run_encrypt(const CryptOptions& options) {
  if (!options.generate_key.empty()) {
    const codec::Key key = codec::generate_key();
    codec::write_key_file(options.generate_key, key);
    return {{"key_id", key.id}, {"key_file", options.generate_key}};
  }
  const codec::Key key = codec::read_key_file(options.key_file);
  const fs::path in = options.input;
  const fs::path out = options.output.empty() ? fs::path(options.input + std::string(codec::kEncryptedSuffix))
                                              : fs::path(options.output);
  check_output(out, options.force);
  const std::uint64_t input_bytes = size_of(in);
  codec::encrypt_file(in, out, key);
  return result(in, out, key.id, input_bytes);
}

json run_decrypt(const CryptOptions& options) {
  const codec::Key key = codec::read_key_file(options.key_file);
  const fs::path in = options.input;
  fs::path out = options.output;
  if (out.empty()) {
    if (!ends_with_enc(options.input)) {
      throw codec::CodecError(options.input + " does not end in " + std::string(codec::kEncryptedSuffix) +
                              "; name the output with -o OUT");
    }
    out = options.input.substr(0, options.input.size() - codec::kEncryptedSuffix.size());
  }
  check_output(out, options.force);
  const std::uint64_t input_bytes = size_of(in);
  codec::decrypt_file(in, out, {key});
  return result(in, out, key.id, input_bytes);
}

std::string render_crypt(const json& result) {
  const auto text = [&](const char* field) {
    const auto it = result.find(field);
    return it != result.end() && it->is_string() ? it->get<std::string>() : std::string("-");
  };
  if (result.contains("key_file")) return "key " + text("key_id") + " written to " + text("key_file") + "\n";
  const auto bytes = result.find("bytes");
  const std::string size = bytes != result.end() && bytes->is_number_unsigned()
                               ? std::to_string(bytes->get<std::uint64_t>())
                               : std::string("-");
  return text("input") + " -> " + text("output") + " (key " + text("key_id") + ", " + size + " bytes)\n";
}

}  // namespace modelzoo::cli
