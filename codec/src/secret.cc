#include "modelzoo/codec/secret.h"

#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "file_io.h"

namespace modelzoo::codec {

namespace fs = std::filesystem;
using detail::ensure_sodium;
using nlohmann::json;

namespace {

constexpr std::string_view kVersion = "v1";
constexpr std::size_t kKeyIdHexSize = 16;
constexpr std::size_t kNonceSize = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagSize = crypto_aead_xchacha20poly1305_ietf_ABYTES;
// "enc:v1:<16 hex>:": the additional data of every value, and the prefix of its text.
constexpr std::size_t kAdSize = 4 + 2 + 1 + kKeyIdHexSize + 1;
constexpr std::size_t kMaxDataSize = kNonceSize + kMaxSecretSize + kTagSize;  // decoded

// The format (secret.h) spells these out; they must not change under us.
static_assert(kNonceSize == 24);
static_assert(kTagSize == 16);
static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == 32);
static_assert(kAdSize == 24);

[[noreturn]] void cannot(const std::string& problem) { throw CodecError("cannot decrypt: " + problem); }

[[noreturn]] void malformed(const std::string& what) { cannot("malformed encrypted value (" + what + ")"); }

bool is_lower_hex(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    const unsigned char c = *p;
    std::size_t extra = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c < 0x80) {
      ++p;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      extra = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      extra = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      extra = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (static_cast<std::size_t>(end - p) <= extra) return false;
    if (p[1] < lo || p[1] > hi) return false;
    for (std::size_t i = 2; i <= extra; ++i) {
      if (p[i] < 0x80 || p[i] > 0xBF) return false;
    }
    p += extra + 1;
  }
  return true;
}

// Wipes a string's bytes (those before size(): the only ones we may touch).
void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
}

}  // namespace

fs::path default_secret_key_file(const fs::path& data_dir) {
  const std::string env_name(kSecretKeyFileEnv);
  if (const char* file = std::getenv(env_name.c_str()); file != nullptr && *file != '\0') return file;
  return data_dir / kSecretKeyFileName;
}

bool is_encrypted_secret(std::string_view value) {
  return value.substr(0, kEncryptedSecretPrefix.size()) == kEncryptedSecretPrefix;
}

std::string encrypt_secret(std::string_view plaintext, const Key& key) {
  ensure_sodium();
  if (plaintext.size() > kMaxSecretSize) {
    throw CodecError("the secret is " + std::to_string(plaintext.size()) + " bytes long, more than the " +
                     std::to_string(kMaxSecretSize) + " allowed");
  }
  if (!valid_utf8(plaintext)) throw CodecError("the secret is not valid UTF-8 text");

  std::string value(kEncryptedSecretPrefix);
  value.append(kVersion).append(":").append(key_id(key.bytes)).append(":");  // = the additional data

  std::vector<unsigned char> data(kNonceSize + plaintext.size() + kTagSize);
  randombytes_buf(data.data(), kNonceSize);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      data.data() + kNonceSize, &clen, reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(),
      reinterpret_cast<const unsigned char*>(value.data()), value.size(), nullptr, data.data(), key.bytes.data());

  const std::size_t b64_size = sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string b64(b64_size, '\0');
  sodium_bin2base64(b64.data(), b64.size(), data.data(), data.size(), sodium_base64_VARIANT_ORIGINAL);
  b64.resize(std::strlen(b64.c_str()));
  value += b64;
  return value;
}

namespace {

// decrypt_secret(), into `plain` (empty; left empty on failure).
void decrypt_secret_into(std::string& plain, std::string_view value, const std::vector<Key>& keys) {
  ensure_sodium();
  const std::string shape = "expected enc:v1:<16 hex digit key id>:<base64>";
  if (!is_encrypted_secret(value)) malformed("it does not start with " + std::string(kEncryptedSecretPrefix));

  // The version: "v1", else named only when it looks like one (the text may be anything).
  std::string_view rest = value.substr(kEncryptedSecretPrefix.size());
  const std::size_t version_end = rest.find(':');
  const std::string_view version = rest.substr(0, version_end);
  if (version != kVersion) {
    if (version.size() >= 2 && version.size() <= 8 && version[0] == 'v' && is_digits(version.substr(1))) {
      cannot("unsupported encrypted value version " + std::string(version) + " (this build reads " +
             std::string(kVersion) + ")");
    }
    malformed(shape);
  }
  if (version_end == std::string_view::npos) malformed(shape);
  rest.remove_prefix(version_end + 1);

  const std::size_t id_end = rest.find(':');
  const std::string_view id = rest.substr(0, id_end);
  if (id_end == std::string_view::npos || id.size() != kKeyIdHexSize || !is_lower_hex(id)) {
    malformed("the key id is not 16 lowercase hex digits; " + shape);
  }
  const std::string_view b64 = rest.substr(id_end + 1);
  const std::string_view ad = value.substr(0, kAdSize);

  if (b64.empty()) malformed("no data after the key id");
  if (b64.size() > sodium_base64_ENCODED_LEN(kMaxDataSize, sodium_base64_VARIANT_ORIGINAL)) {
    malformed("the data is longer than any encrypted secret");
  }
  std::vector<unsigned char> data(b64.size() / 4 * 3 + 3);
  std::size_t size = 0;
  const char* b64_end = nullptr;
  if (sodium_base642bin(data.data(), data.size(), b64.data(), b64.size(), nullptr, &size, &b64_end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      b64_end != b64.data() + b64.size()) {
    malformed("the data is not valid base64");
  }
  if (size < kNonceSize + kTagSize) {
    malformed("the data is " + std::to_string(size) + " bytes, fewer than the " +
              std::to_string(kNonceSize + kTagSize) + " of a nonce and an authentication tag");
  }

  const Key* key = nullptr;
  std::vector<std::string> configured;
  for (const Key& candidate : keys) {
    std::string candidate_id = key_id(candidate.bytes);
    if (candidate_id == id) {
      key = &candidate;
      break;
    }
    configured.push_back(std::move(candidate_id));
  }
  if (key == nullptr) {
    const std::string made = "made with key " + std::string(id);
    if (configured.empty()) cannot(made + ", and no key is configured");
    if (configured.size() == 1) cannot(made + ", which is not the configured key (" + configured.front() + ")");
    std::string list;
    for (const auto& c : configured) list += (list.empty() ? "" : ", ") + c;
    cannot(made + ", which is not one of the configured keys (" + list + ")");
  }

  plain.assign(size - kNonceSize - kTagSize, '\0');
  unsigned long long plain_size = 0;
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(reinterpret_cast<unsigned char*>(plain.data()), &plain_size, nullptr,
                                                 data.data() + kNonceSize, size - kNonceSize,
                                                 reinterpret_cast<const unsigned char*>(ad.data()), ad.size(),
                                                 data.data(), key->bytes.data()) != 0) {
    wipe(plain);
    plain.clear();
    cannot("authentication failed (wrong key or tampered value)");
  }
  plain.resize(static_cast<std::size_t>(plain_size));  // the same size: clen - tag
}

// Plaintexts decrypted but not yet stored: wiped when they go, stored or not.
struct Pending {
  std::deque<std::pair<json*, std::string>> items;
  Pending() = default;
  Pending(const Pending&) = delete;
  Pending& operator=(const Pending&) = delete;
  ~Pending() {
    for (auto& item : items) wipe(item.second);
  }
};

void collect(json& node, const std::vector<Key>& keys, const std::string& path, Pending& pending) {
  if (node.is_object()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      collect(it.value(), keys, path.empty() ? it.key() : path + "." + it.key(), pending);
    }
  } else if (node.is_array()) {
    for (std::size_t i = 0; i < node.size(); ++i) {
      collect(node[i], keys, path + "[" + std::to_string(i) + "]", pending);
    }
  } else if (node.is_string()) {
    const auto& text = node.get_ref<const std::string&>();
    if (!is_encrypted_secret(text)) return;
    const std::string prefix = path.empty() ? std::string() : path + ": ";
    // Stored in place (the deque never moves its elements), so no stray copy is left unwiped.
    std::string& plain = pending.items.emplace_back(&node, std::string()).second;
    try {
      decrypt_secret_into(plain, text, keys);
    } catch (const CodecError& e) {
      throw CodecError(prefix + e.what());
    }
    if (!valid_utf8(plain)) throw CodecError(prefix + "cannot decrypt: the decrypted value is not valid UTF-8 text");
  }
}

}  // namespace

std::string decrypt_secret(std::string_view value, const std::vector<Key>& keys) {
  std::string plain;
  decrypt_secret_into(plain, value, keys);
  return plain;  // NRVO: no copy
}

std::size_t decrypt_secrets_in(json& value, const std::vector<Key>& keys, const std::string& where) {
  Pending pending;
  collect(value, keys, where, pending);
  // Everything decrypted: now store. A copy, so that the wiped buffers are exactly those we own.
  for (auto& [node, plain] : pending.items) {
    *node = json::string_t();
    node->get_ref<json::string_t&>().assign(plain);
  }
  return pending.items.size();
}

}  // namespace modelzoo::codec
