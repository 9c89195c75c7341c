// Encrypted credentials in the daemon's configuration: `modelzoo secret encrypt` turns a secret
// into a value to paste in the file, and the daemon decrypts every such value when it loads it.
//
// ENCRYPTED VALUE FORMAT, version 1 (one line of ASCII, no spaces):
//
//   enc:v1:<key id>:<data>
//
//   key id  the 16 lowercase hex digits of the key's id (Key::id, see crypt.h: the first 8 bytes
//           of BLAKE2b-256 of the key bytes)
//   data    standard base64 (RFC 4648 alphabet "A-Za-z0-9+/", with "=" padding, no line breaks;
//           sodium_base64_VARIANT_ORIGINAL) of  nonce (24 bytes) | ciphertext (plaintext + 16 bytes)
//
//   The ciphertext is crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, ad, nonce, key)
//   (XChaCha20-Poly1305, IETF variant) with a random nonce and, as additional data, the value's
//   ASCII prefix up to and including the third colon: ad = "enc:v1:<key id>:" (24 bytes). So a
//   changed version or key id fails authentication like a changed nonce or ciphertext.
//   The plaintext is the secret's bytes (UTF-8 text; the CLI refuses anything else).
//
//   In Python with PyNaCl:
//     ad    = b"enc:v1:" + key_id.encode() + b":"
//     nonce = nacl.utils.random(24)
//     ct    = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, ad, nonce, key)
//     value = ad.decode() + base64.b64encode(nonce + ct).decode()
//
// The key is an ordinary key file (crypt.h: "modelzoo-key-v1 <base64>", mode 0600, refused when
// group- or other-readable), created by `modelzoo secret keygen`; see default_secret_key_file().
//
// No error message of this library ever contains a plaintext or a ciphertext (nor any part of
// the value after "enc:"), only what is wrong and, at most, the key ids involved.
// All functions are safe to call from several threads at once.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "modelzoo/codec/crypt.h"

namespace modelzoo::codec {

// Every encrypted value starts with this. A string with this prefix is always treated as an
// encrypted value: "enc:v2:..." or "enc:garbage" fail to decrypt, they are never passed through.
inline constexpr std::string_view kEncryptedSecretPrefix = "enc:";

// The name of the secrets key file in the daemon's data directory.
inline constexpr std::string_view kSecretKeyFileName = "secret.key";

// The environment variable that names the secrets key file, overriding the default.
inline constexpr std::string_view kSecretKeyFileEnv = "MODELZOO_SECRET_KEY_FILE";

// The longest plaintext encrypt_secret() accepts (a PEM private key is a few KiB).
inline constexpr std::size_t kMaxSecretSize = 64 * 1024;

// Where the secrets key file is: $MODELZOO_SECRET_KEY_FILE when set and not empty, else
// `data_dir` / "secret.key" (the daemon passes its configured data_dir).
std::filesystem::path default_secret_key_file(const std::filesystem::path& data_dir);

// Encrypts `plaintext` with `key` into an "enc:v1:..." value (format above), with a fresh
// random nonce: encrypting the same secret twice gives two different values. Throws CodecError
// when `plaintext` is not valid UTF-8 (a configuration value is text) or longer than
// kMaxSecretSize; the message does not contain it.
std::string encrypt_secret(std::string_view plaintext, const Key& key);

// Whether `value` starts with "enc:" (nothing more is checked: see kEncryptedSecretPrefix).
bool is_encrypted_secret(std::string_view value);

// The plaintext of an encrypted value, decrypted with the key of `keys` whose id the value names.
// Throws CodecError, whose message never contains the plaintext nor the value's data:
//   "cannot decrypt: malformed encrypted value (<what is wrong>)"  e.g. not "enc:v1:<16 hex>:<base64>",
//       bad base64, data shorter than nonce + tag;
//   "cannot decrypt: unsupported encrypted value version vN (this build reads v1)";
//   "cannot decrypt: made with key <id>, which is not the configured key (<id>)"
//       (or "... not one of the configured keys (<id>, <id>)", "... and no key is configured");
//   "cannot decrypt: authentication failed (wrong key or tampered value)".
std::string decrypt_secret(std::string_view value, const std::vector<Key>& keys);

// Walks `value` recursively (objects and arrays; object keys are not decrypted) and replaces
// every string for which is_encrypted_secret() holds with its plaintext. Returns how many were
// replaced. All or nothing: on failure `value` is left unchanged and CodecError is thrown, its
// message prefixed with the setting's path: `where`, then ".key" per object member and "[i]" per
// array element (no leading "." when `where` is empty; no prefix at all when the path is empty):
//   "sources[2].config.auth.token: cannot decrypt: authentication failed (wrong key or tampered value)"
// A plaintext that is not valid UTF-8 cannot be a JSON string: "<path>: cannot decrypt: the
// decrypted value is not valid UTF-8 text".
std::size_t decrypt_secrets_in(nlohmann::json& value, const std::vector<Key>& keys, const std::string& where);

}  // namespace modelzoo::codec
