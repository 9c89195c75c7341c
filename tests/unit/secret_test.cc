// modelzoo_codec secret.h: encrypted configuration values, and the rule that no error message
// ever contains a plaintext or a ciphertext.
#include "modelzoo/codec/secret.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modelzoo/codec/crypt.h"

namespace modelzoo::codec {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* kAuthFailed = "cannot decrypt: authentication failed (wrong key or tampered value)";
const std::string kSecret = "hunter2-Sup3r$ecret";  // distinctive: searched for in messages

std::vector<unsigned char> b64_decode(const std::string& b64) {
  std::vector<unsigned char> out(b64.size());
  std::size_t size = 0;
  EXPECT_EQ(sodium_base642bin(out.data(), out.size(), b64.data(), b64.size(), nullptr, &size, nullptr,
                              sodium_base64_VARIANT_ORIGINAL),
            0);
  out.resize(size);
  return out;
}

std::string b64_encode(const std::vector<unsigned char>& bytes) {
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes.data(), bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.find('\0'));
  return out;
}

// The pieces of a value: "enc:v1:<id>:" and the decoded data.
struct Parts {
  std::string prefix;
  std::vector<unsigned char> data;
  std::string join() const { return prefix + b64_encode(data); }
};
Parts split(const std::string& value) {
  const auto colon = value.rfind(':');
  return {value.substr(0, colon + 1), b64_decode(value.substr(colon + 1))};
}

// The message of the CodecError `f` throws ("" and a failure when it throws nothing).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const CodecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no CodecError thrown";
  return "";
}

// A message must not contain the secret nor any part of the value after the key id.
void expect_no_leak(const std::string& message, const std::string& value) {
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
  EXPECT_THAT(message, Not(HasSubstr(kSecret.substr(0, 7))));
  const auto data = value.substr(value.rfind(':') + 1);
  if (data.size() >= 8) {
    EXPECT_THAT(message, Not(HasSubstr(data.substr(0, 8))));
    EXPECT_THAT(message, Not(HasSubstr(data.substr(data.size() / 2, 8))));
  }
}

class Secret : public ::testing::Test {
 protected:
  void SetUp() override {
    key_ = generate_key();
    other_ = generate_key();
  }
  std::vector<Key> keys() const { return {copy(key_)}; }
  static Key copy(const Key& k) {
    Key c;
    c.bytes = k.bytes;
    c.id = k.id;
    return c;
  }
  std::string decrypt_error(const std::string& value) const {
    const std::string message = error_of([&] { decrypt_secret(value, keys()); });
    expect_no_leak(message, value);
    return message;
  }

  Key key_;
  Key other_;
};

TEST_F(Secret, RoundTrips) {
  const std::string value = encrypt_secret(kSecret, key_);
  EXPECT_THAT(value, StartsWith("enc:v1:" + key_.id + ":"));
  EXPECT_THAT(value, Not(HasSubstr(kSecret)));
  EXPECT_TRUE(is_encrypted_secret(value));
  EXPECT_EQ(decrypt_secret(value, keys()), kSecret);
  // nonce 24 + plaintext + tag 16
  EXPECT_EQ(split(value).data.size(), 24 + kSecret.size() + 16);
  // A fresh nonce every time.
  EXPECT_NE(encrypt_secret(kSecret, key_), value);
}

TEST_F(Secret, RoundTripsUnicodeMultilineAndLongSecrets) {
  for (const std::string& plain :
       {std::string("x"), std::string("pässwörd ✓ 🔑"), std::string("-----BEGIN KEY-----\nabc\n-----END KEY-----\n"),
        std::string(kMaxSecretSize, 'a')}) {
    EXPECT_EQ(decrypt_secret(encrypt_secret(plain, key_), keys()), plain);
  }
}

TEST_F(Secret, EmptyPlaintextRoundTrips) { EXPECT_EQ(decrypt_secret(encrypt_secret("", key_), keys()), ""); }

TEST_F(Secret, FindsItsKeyAmongSeveral) {
  std::vector<Key> both;
  both.push_back(copy(other_));
  both.push_back(copy(key_));
  EXPECT_EQ(decrypt_secret(encrypt_secret(kSecret, key_), both), kSecret);
}

TEST_F(Secret, KeyIdComesFromTheKeyBytes) {
  Key unnamed;
  unnamed.bytes = key_.bytes;  // no id
  const std::string value = encrypt_secret(kSecret, unnamed);
  EXPECT_THAT(value, StartsWith("enc:v1:" + key_.id + ":"));
  std::vector<Key> unnamed_keys;
  unnamed_keys.push_back(copy(unnamed));
  EXPECT_EQ(decrypt_secret(value, unnamed_keys), kSecret);
}

TEST_F(Secret, EncryptRefusesNonUtf8AndTooLong) {
  EXPECT_EQ(error_of([&] { encrypt_secret(std::string("ab\xff", 3), key_); }), "the secret is not valid UTF-8 text");
  EXPECT_EQ(error_of([&] { encrypt_secret(std::string("\xc0\xaf"), key_); }), "the secret is not valid UTF-8 text");
  EXPECT_EQ(error_of([&] { encrypt_secret(std::string("\xed\xa0\x80"), key_); }),
            "the secret is not valid UTF-8 text");  // a surrogate
  EXPECT_THAT(error_of([&] { encrypt_secret(std::string(kMaxSecretSize + 1, 'a'), key_); }),
              HasSubstr("more than the 65536 allowed"));
}

TEST_F(Secret, IsEncryptedSecretIsAPrefixCheck) {
  EXPECT_TRUE(is_encrypted_secret("enc:"));
  EXPECT_TRUE(is_encrypted_secret("enc:v2:whatever"));
  EXPECT_FALSE(is_encrypted_secret(""));
  EXPECT_FALSE(is_encrypted_secret("enc"));
  EXPECT_FALSE(is_encrypted_secret("ENC:v1:"));
  EXPECT_FALSE(is_encrypted_secret(" enc:v1:"));
  EXPECT_FALSE(is_encrypted_secret("https://example.com"));
}

TEST_F(Secret, AnotherKeyIsNamed) {
  const std::string value = encrypt_secret(kSecret, other_);
  EXPECT_EQ(decrypt_error(value),
            "cannot decrypt: made with key " + other_.id + ", which is not the configured key (" + key_.id + ")");

  const Key third = generate_key();
  std::vector<Key> two;
  two.push_back(copy(key_));
  two.push_back(copy(third));
  EXPECT_EQ(error_of([&] { decrypt_secret(value, two); }), "cannot decrypt: made with key " + other_.id +
                                                               ", which is not one of the configured keys (" + key_.id +
                                                               ", " + third.id + ")");
  EXPECT_EQ(error_of([&] { decrypt_secret(value, {}); }),
            "cannot decrypt: made with key " + other_.id + ", and no key is configured");
}

TEST_F(Secret, ForgedKeyIdFailsAuthentication) {
  // Made with another key, but claiming ours: the id matches, the key does not.
  Parts parts = split(encrypt_secret(kSecret, other_));
  parts.prefix = "enc:v1:" + key_.id + ":";
  EXPECT_EQ(decrypt_error(parts.join()), kAuthFailed);
}

TEST_F(Secret, TamperedKeyIdFailsAuthenticationWhenThatKeyIsConfiguredToo) {
  // The key id is authenticated (it is in the additional data): re-labelled values fail even
  // when the key they now name is configured and the right key is too.
  Parts parts = split(encrypt_secret(kSecret, key_));
  parts.prefix = "enc:v1:" + other_.id + ":";
  std::vector<Key> both;
  both.push_back(copy(key_));
  both.push_back(copy(other_));
  const std::string value = parts.join();
  const std::string message = error_of([&] { decrypt_secret(value, both); });
  EXPECT_EQ(message, kAuthFailed);
  expect_no_leak(message, value);
}

TEST_F(Secret, TamperedNonceCiphertextOrTagFailAuthentication) {
  const Parts original = split(encrypt_secret(kSecret, key_));
  for (std::size_t at :
       {std::size_t{0}, std::size_t{23}, std::size_t{24}, std::size_t{24 + 5}, original.data.size() - 1}) {
    Parts parts = original;
    parts.data[at] ^= 0x01;
    EXPECT_EQ(decrypt_error(parts.join()), kAuthFailed) << "byte " << at;
  }
  // One byte fewer, one byte more (still long enough to hold a nonce and a tag).
  Parts shorter = original;
  shorter.data.pop_back();
  EXPECT_EQ(decrypt_error(shorter.join()), kAuthFailed);
  Parts longer = original;
  longer.data.push_back(0);
  EXPECT_EQ(decrypt_error(longer.join()), kAuthFailed);
}

TEST_F(Secret, TamperedBase64) {
  const std::string value = encrypt_secret(kSecret, key_);
  const std::size_t data_at = value.rfind(':') + 1;
  // A changed character that is still base64: the bytes change, authentication fails.
  std::string changed = value;
  changed[data_at + 10] = changed[data_at + 10] == 'A' ? 'B' : 'A';
  EXPECT_EQ(decrypt_error(changed), kAuthFailed);
  // Not base64 any more.
  for (const char bad : {'*', ' ', '-', '_', '\n'}) {
    std::string broken = value;
    broken[data_at + 10] = bad;
    EXPECT_EQ(decrypt_error(broken), "cannot decrypt: malformed encrypted value (the data is not valid base64)");
  }
  EXPECT_EQ(decrypt_error(value + "="), "cannot decrypt: malformed encrypted value (the data is not valid base64)");
  EXPECT_EQ(decrypt_error(value.substr(0, value.size() - 1)),
            "cannot decrypt: malformed encrypted value (the data is not valid base64)");
}

TEST_F(Secret, MalformedValues) {
  const std::string shape = "expected enc:v1:<16 hex digit key id>:<base64>";
  const std::string id_problem =
      "cannot decrypt: malformed encrypted value (the key id is not 16 lowercase hex digits; " + shape + ")";
  const std::string good = encrypt_secret(kSecret, key_);
  const std::string data = good.substr(good.rfind(':') + 1);
  std::string upper_id = key_.id;
  for (auto& c : upper_id) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper_id == key_.id) upper_id[0] = 'G';

  EXPECT_EQ(decrypt_error("plain"), "cannot decrypt: malformed encrypted value (it does not start with enc:)");
  EXPECT_EQ(decrypt_error("enc:"), "cannot decrypt: malformed encrypted value (" + shape + ")");
  EXPECT_EQ(decrypt_error("enc:v1"), "cannot decrypt: malformed encrypted value (" + shape + ")");
  EXPECT_EQ(decrypt_error("enc:" + kSecret), "cannot decrypt: malformed encrypted value (" + shape + ")");
  EXPECT_EQ(decrypt_error("enc:" + kSecret + ":" + data), "cannot decrypt: malformed encrypted value (" + shape + ")");
  EXPECT_EQ(decrypt_error("enc:v1:"), id_problem);
  EXPECT_EQ(decrypt_error("enc:v1:" + key_.id), id_problem);
  EXPECT_EQ(decrypt_error("enc:v1:" + key_.id.substr(1) + ":" + data), id_problem);
  EXPECT_EQ(decrypt_error("enc:v1:" + key_.id + "0:" + data), id_problem);
  EXPECT_EQ(decrypt_error("enc:v1:" + upper_id + ":" + data), id_problem);
  EXPECT_EQ(decrypt_error("enc:v1:" + key_.id + ":"),
            "cannot decrypt: malformed encrypted value (no data after the key id)");
  EXPECT_EQ(decrypt_error("enc:v1:" + key_.id + ":AAAA"),
            "cannot decrypt: malformed encrypted value (the data is 3 bytes, fewer than the 40 of a nonce and an "
            "authentication tag)");
  EXPECT_EQ(decrypt_error("enc:v1:" + key_.id + ":" + std::string(200000, 'A')),
            "cannot decrypt: malformed encrypted value (the data is longer than any encrypted secret)");
  EXPECT_EQ(decrypt_error("enc:v2:" + key_.id + ":" + data),
            "cannot decrypt: unsupported encrypted value version v2 (this build reads v1)");
  EXPECT_EQ(decrypt_error("enc:v10:" + key_.id + ":" + data),
            "cannot decrypt: unsupported encrypted value version v10 (this build reads v1)");
  // Not trimmed: a value with a leading space is not one.
  EXPECT_EQ(decrypt_error(" " + good), "cannot decrypt: malformed encrypted value (it does not start with enc:)");
}

TEST_F(Secret, DefaultKeyFile) {
  const char* saved = std::getenv("MODELZOO_SECRET_KEY_FILE");
  const std::string saved_value = saved ? saved : "";
  ::unsetenv("MODELZOO_SECRET_KEY_FILE");
  EXPECT_EQ(default_secret_key_file("/var/lib/modelzoo"), std::filesystem::path("/var/lib/modelzoo/secret.key"));
  ::setenv("MODELZOO_SECRET_KEY_FILE", "", 1);
  EXPECT_EQ(default_secret_key_file("/d"), std::filesystem::path("/d/secret.key"));
  ::setenv("MODELZOO_SECRET_KEY_FILE", "/etc/modelzoo/k", 1);
  EXPECT_EQ(default_secret_key_file("/d"), std::filesystem::path("/etc/modelzoo/k"));
  if (saved) {
    ::setenv("MODELZOO_SECRET_KEY_FILE", saved_value.c_str(), 1);
  } else {
    ::unsetenv("MODELZOO_SECRET_KEY_FILE");
  }
}

// ---- decrypt_secrets_in ----------------------------------------------------------------

TEST_F(Secret, DecryptsEveryEncryptedStringInNestedValues) {
  json config = {
      {"runtime_dir", "/run/x"},
      {"sources",
       json::array({
           {{"name", "a"}, {"config", {{"token", encrypt_secret("tok-a", key_)}, {"port", 8080}}}},
           {{"name", "b"}, {"config", {{"auth", {{"user", "bob"}, {"password", encrypt_secret("pw-b", key_)}}}}}},
           {{"name", "c"},
            {"config",
             {{"headers", json::array({"X-Plain: 1", encrypt_secret("Authorization: Bearer z", key_)})},
              {"flag", true},
              {"none", nullptr},
              {"ratio", 0.5}}}},
       })},
  };
  json expected = config;
  expected["sources"][0]["config"]["token"] = "tok-a";
  expected["sources"][1]["config"]["auth"]["password"] = "pw-b";
  expected["sources"][2]["config"]["headers"][1] = "Authorization: Bearer z";

  EXPECT_EQ(decrypt_secrets_in(config, keys(), ""), 3u);
  EXPECT_EQ(config, expected);
  // Nothing left to decrypt.
  EXPECT_EQ(decrypt_secrets_in(config, keys(), ""), 0u);
  EXPECT_EQ(config, expected);
}

TEST_F(Secret, DecryptsATopLevelStringAndLeavesOtherValuesAlone) {
  json value = encrypt_secret(kSecret, key_);
  EXPECT_EQ(decrypt_secrets_in(value, keys(), "token"), 1u);
  EXPECT_EQ(value, kSecret);
  for (json other : {json(nullptr), json(1), json("plain"), json::object(), json::array()}) {
    const json before = other;
    EXPECT_EQ(decrypt_secrets_in(other, keys(), "x"), 0u);
    EXPECT_EQ(other, before);
  }
}

TEST_F(Secret, ObjectKeysAreNotDecrypted) {
  json value = {{"enc:v1:0000000000000000:AAAA", 1}};
  const json before = value;
  EXPECT_EQ(decrypt_secrets_in(value, keys(), ""), 0u);
  EXPECT_EQ(value, before);
}

TEST_F(Secret, ErrorsNameTheSettingAndChangeNothing) {
  Parts tampered = split(encrypt_secret(kSecret, key_));
  tampered.data[30] ^= 0x80;
  const std::string bad = tampered.join();
  json config = {{"sources", json::array({
                                 {{"config", {{"token", encrypt_secret("first-ok", key_)}}}},
                                 {{"config", {{"token", "plain"}}}},
                                 {{"config", {{"auth", {{"token", bad}}}}}},
                             })}};
  const json before = config;
  std::string message = error_of([&] { decrypt_secrets_in(config, keys(), ""); });
  EXPECT_EQ(message, "sources[2].config.auth.token: " + std::string(kAuthFailed));
  expect_no_leak(message, bad);
  EXPECT_EQ(config, before);  // all or nothing: the first one was not replaced either

  // `where` names the part of the file the value came from.
  json source = before["sources"][2];
  message = error_of([&] { decrypt_secrets_in(source, keys(), "sources[2]"); });
  EXPECT_EQ(message, "sources[2].config.auth.token: " + std::string(kAuthFailed));
  json token = bad;
  EXPECT_EQ(error_of([&] { decrypt_secrets_in(token, keys(), "sources[2].config.auth.token"); }),
            "sources[2].config.auth.token: " + std::string(kAuthFailed));
  EXPECT_EQ(error_of([&] { decrypt_secrets_in(token, keys(), ""); }), kAuthFailed);
}

TEST_F(Secret, ErrorPathsThroughArraysOfArrays) {
  json value = {{"a", json::array({json::array({"x", encrypt_secret(kSecret, other_)})})}};
  const std::string message = error_of([&] { decrypt_secrets_in(value, keys(), "top"); });
  EXPECT_EQ(message, "top.a[0][1]: cannot decrypt: made with key " + other_.id + ", which is not the configured key (" +
                         key_.id + ")");
  json malformed = {{"x", json::array({"enc:" + kSecret})}};
  const std::string m2 = error_of([&] { decrypt_secrets_in(malformed, keys(), ""); });
  EXPECT_THAT(m2, StartsWith("x[0]: cannot decrypt: malformed encrypted value"));
  EXPECT_THAT(m2, Not(HasSubstr(kSecret)));
}

TEST_F(Secret, NonUtf8PlaintextIsRefusedByDecryptSecretsIn) {
  // Made outside encrypt_secret (which refuses it): the format, by hand.
  const std::string prefix = "enc:v1:" + key_.id + ":";
  const std::string plain = "\xff\xfe secret bytes";
  std::vector<unsigned char> data(24 + plain.size() + 16);
  randombytes_buf(data.data(), 24);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
      data.data() + 24, &clen, reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
      reinterpret_cast<const unsigned char*>(prefix.data()), prefix.size(), nullptr, data.data(), key_.bytes.data());
  const std::string value = prefix + b64_encode(data);
  EXPECT_EQ(decrypt_secret(value, keys()), plain);  // the documented format, independently implemented
  json config = {{"k", value}};
  EXPECT_EQ(error_of([&] { decrypt_secrets_in(config, keys(), "s"); }),
            "s.k: cannot decrypt: the decrypted value is not valid UTF-8 text");
  EXPECT_EQ(config["k"], value);
}

}  // namespace
}  // namespace modelzoo::codec
