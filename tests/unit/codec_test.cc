// modelzoo_codec: encrypted (.enc) and zstd (.zst) model files, key files, and the rule that a
// failure never leaves an output or a temporary file behind.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sodium.h>

#include "modelzoo/codec/crypt.h"
#include "modelzoo/codec/zstd.h"

namespace modelzoo::codec {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr std::size_t kMiB = 1 << 20;
constexpr std::size_t kHeader = 65;  // magic 8 + key id 8 + secretstream header 24 + length record 8+17
constexpr std::size_t kABytes = 17;  // per chunk
constexpr std::size_t kFullChunk = kMiB + kABytes;

std::string random_bytes(std::size_t size, unsigned seed = 1) {
  std::mt19937 gen(seed);
  std::string s(size, '\0');
  for (auto& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write(const fs::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

// Calls f and returns the CodecError message it throws ("" and a failure when it throws none).
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const CodecError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no CodecError thrown";
  return {};
}

class CodecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/codec-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path path(const std::string& name) const { return dir_ / name; }

  // The names in the test directory.
  std::set<std::string> listing() const {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.insert(e.path().filename().string());
    return names;
  }

  // Runs a decryption or decompression expected to fail into "out": checks the message, that
  // "out" does not appear and that no temporary file is left.
  std::string expect_failure_leaves_nothing(const std::function<void(const fs::path&)>& f) {
    const auto before = listing();
    const std::string message = error_of([&] { f(path("out")); });
    EXPECT_FALSE(fs::exists(path("out")));
    EXPECT_EQ(listing(), before) << "a failure left files behind";
    return message;
  }

  // Encrypts `plain` with `key` into "plain.enc" and returns the encrypted bytes.
  std::string encrypt(const std::string& plain, const Key& key) {
    write(path("plain"), plain);
    encrypt_file(path("plain"), path("plain.enc"), key);
    return read(path("plain.enc"));
  }

  // Decrypting `encrypted` (written to "bad.enc") with `keys` fails; returns the message.
  std::string decrypt_fails(const std::string& encrypted, const std::vector<Key>& keys) {
    write(path("bad.enc"), encrypted);
    return expect_failure_leaves_nothing([&](const fs::path& out) { decrypt_file(path("bad.enc"), out, keys); });
  }

  fs::path dir_;
};

// ---- keys ----------------------------------------------------------------------------

TEST_F(CodecTest, GeneratedKeysAreRandomAndIdentifiedByAHexId) {
  const Key a = generate_key();
  const Key b = generate_key();
  EXPECT_NE(a.bytes, b.bytes);
  EXPECT_EQ(a.id.size(), 16u);
  EXPECT_TRUE(std::all_of(a.id.begin(), a.id.end(), [](char c) { return std::isxdigit(c) && !std::isupper(c); }));
  EXPECT_NE(a.id, b.id);
  EXPECT_EQ(key_id(a.bytes), a.id);
}

TEST_F(CodecTest, KeyIdIsTheStartOfBlake2bOfTheKey) {
  // BLAKE2b with a 32-byte digest of 32 zero bytes (RFC 7693 parameters: digest length 32, no key).
  const std::array<unsigned char, 32> zeros{};
  EXPECT_EQ(key_id(zeros), "89eb0d6a8a691dae");
}

TEST_F(CodecTest, KeyFileRoundTripsWithMode0600) {
  const Key k = generate_key();
  write_key_file(path("k"), k);
  EXPECT_EQ(fs::status(path("k")).permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  const std::string text = read(path("k"));
  EXPECT_EQ(text.rfind("modelzoo-key-v1 ", 0), 0u) << text;
  EXPECT_EQ(text.size(), 16u + 44u + 1u);
  EXPECT_EQ(text.back(), '\n');
  const Key back = read_key_file(path("k"));
  EXPECT_EQ(back.bytes, k.bytes);
  EXPECT_EQ(back.id, k.id);
}

TEST_F(CodecTest, KeyFileIsNeverOverwritten) {
  write(path("k"), "precious");
  EXPECT_THAT(error_of([&] { write_key_file(path("k"), generate_key()); }), HasSubstr("already exists"));
  EXPECT_EQ(read(path("k")), "precious");
}

TEST_F(CodecTest, KeyFileReadableOrWritableByOthersIsRefused) {
  write_key_file(path("k"), generate_key());
  fs::permissions(path("k"), fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                                 fs::perms::others_read);
  const std::string readable = error_of([&] { read_key_file(path("k")); });
  EXPECT_THAT(readable, HasSubstr(path("k").string()));
  EXPECT_THAT(readable, HasSubstr("is readable by other users (mode 0644); chmod 600 it"));

  fs::permissions(path("k"), fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_THAT(error_of([&] { read_key_file(path("k")); }), HasSubstr("(mode 0640)"));

  fs::permissions(path("k"), fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_write);
  EXPECT_THAT(error_of([&] { read_key_file(path("k")); }), HasSubstr("is writable by other users (mode 0602)"));

  fs::permissions(path("k"), fs::perms::owner_read);
  EXPECT_NO_THROW(read_key_file(path("k")));
}

TEST_F(CodecTest, MissingOrMalformedKeyFileIsNamed) {
  EXPECT_THAT(error_of([&] { read_key_file(path("none")); }), HasSubstr(path("none").string() + " does not exist"));

  const std::string valid = "modelzoo-key-v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
  for (const std::string& text : {
           std::string(),                                                    // empty
           std::string("modelzoo-key-v2 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),  // other version
           std::string("modelzoo-key-v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\n"),  // 31 bytes
           std::string("modelzoo-key-v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n"),  // 34 bytes
           std::string("modelzoo-key-v1 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!=\n"),  // not base64
           std::string("modelzoo-key-v1 \n"),                                                 // no key
           valid + "more\n",                                                                  // two lines
           std::string(" ") + valid,
           std::string(5000, 'x'),
       }) {
    write(path("bad"), text);
    fs::permissions(path("bad"), fs::perms::owner_read | fs::perms::owner_write);
    const std::string message = error_of([&] { read_key_file(path("bad")); });
    EXPECT_THAT(message, HasSubstr(path("bad").string())) << text;
    EXPECT_THAT(message, HasSubstr("is malformed")) << text;
  }

  write(path("good"), valid);
  fs::permissions(path("good"), fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(read_key_file(path("good")).bytes, (std::array<unsigned char, 32>{}));
  write(path("good"), valid.substr(0, valid.size() - 1));  // the final newline is optional
  EXPECT_NO_THROW(read_key_file(path("good")));
}

TEST_F(CodecTest, KeyFileMustBeARegularFile) {
  fs::create_directory(path("d"));
  fs::permissions(path("d"), fs::perms::owner_all);
  EXPECT_THAT(error_of([&] { read_key_file(path("d")); }), HasSubstr("is not a regular file"));
}

// ---- encryption round trips ------------------------------------------------------------

TEST_F(CodecTest, EncryptDecryptRoundTrips) {
  const Key key = generate_key();
  const Key other = generate_key();
  struct Case {
    std::size_t size;
    std::size_t encrypted_size;
  };
  for (const Case& c : {Case{0, kHeader + kABytes}, Case{1, kHeader + 1 + kABytes},
                        Case{kMiB - 1, kHeader + kMiB - 1 + kABytes}, Case{kMiB, kHeader + kFullChunk + kABytes},
                        Case{kMiB + 1, kHeader + kFullChunk + 1 + kABytes},
                        Case{3 * kMiB + 12345, kHeader + 3 * kFullChunk + 12345 + kABytes}}) {
    SCOPED_TRACE(c.size);
    const std::string plain = random_bytes(c.size, static_cast<unsigned>(c.size));
    const std::string encrypted = encrypt(plain, key);
    EXPECT_EQ(encrypted.size(), c.encrypted_size);
    EXPECT_EQ(encrypted.substr(0, 8), std::string("MZENC\0\0\1", 8));
    EXPECT_EQ(encrypted_key_id(path("plain.enc")), key.id);
    if (c.size >= 64) {
      EXPECT_EQ(encrypted.find(plain.substr(0, 64)), std::string::npos);
    }

    decrypt_file(path("plain.enc"), path("plain.out"), {other, key});  // picks the key by id
    EXPECT_EQ(read(path("plain.out")), plain);
    EXPECT_EQ(listing(), (std::set<std::string>{"plain", "plain.enc", "plain.out"}));
  }
}

TEST_F(CodecTest, EncryptingTwiceGivesDifferentFiles) {
  const Key key = generate_key();
  const std::string a = encrypt("same", key);
  const std::string b = encrypt("same", key);
  EXPECT_NE(a, b);  // a fresh secretstream header each time
  EXPECT_EQ(a.substr(0, 16), b.substr(0, 16));
}

TEST_F(CodecTest, OutputReplacesAnExistingFileOnlyOnSuccess) {
  const Key key = generate_key();
  encrypt("new contents", key);
  write(path("out"), "old");
  decrypt_file(path("plain.enc"), path("out"), {key});
  EXPECT_EQ(read(path("out")), "new contents");

  write(path("out"), "old");
  write(path("bad.enc"), read(path("plain.enc")) + "x");
  EXPECT_THROW(decrypt_file(path("bad.enc"), path("out"), {key}), CodecError);
  EXPECT_EQ(read(path("out")), "old");
}

TEST_F(CodecTest, KeyIdComesFromTheKeyBytesNotTheGivenId) {
  Key key = generate_key();
  const std::string real_id = key.id;
  key.id = "not the id";
  encrypt("data", key);
  EXPECT_EQ(encrypted_key_id(path("plain.enc")), real_id);
  Key bare;
  bare.bytes = key.bytes;
  decrypt_file(path("plain.enc"), path("plain.out"), {bare});
  EXPECT_EQ(read(path("plain.out")), "data");
}

TEST_F(CodecTest, MissingInputOrOutputDirectoryIsAnError) {
  const Key key = generate_key();
  EXPECT_THAT(error_of([&] { encrypt_file(path("none"), path("out"), key); }), HasSubstr("cannot open"));
  write(path("plain"), "x");
  EXPECT_THAT(error_of([&] { encrypt_file(path("plain"), path("nodir/out"), key); }),
              HasSubstr("cannot create a temporary file"));
  EXPECT_THAT(error_of([&] { encrypt_file(dir_, path("out"), key); }), HasSubstr("cannot read"));
  EXPECT_EQ(listing(), (std::set<std::string>{"plain"}));
}

// ---- encryption failures ---------------------------------------------------------------

TEST_F(CodecTest, NoKeyWithTheFilesIdIsNamed) {
  const Key key = generate_key();
  const Key other = generate_key();
  const std::string encrypted = encrypt("secret", key);
  const std::string message = decrypt_fails(encrypted, {other});
  EXPECT_THAT(message, HasSubstr(path("bad.enc").string()));
  EXPECT_THAT(message, HasSubstr("encrypted with key " + key.id + ", and no configured key has that id"));
  EXPECT_THAT(message, HasSubstr(other.id));
  EXPECT_THAT(decrypt_fails(encrypted, {}), HasSubstr("no configured key has that id (configured: none)"));
}

TEST_F(CodecTest, ForgedKeyIdWithAnotherKeyFailsAuthentication) {
  // A file made with `attacker` but claiming `key`'s id.
  const Key key = generate_key();
  const Key attacker = generate_key();
  std::string forged = encrypt("evil", attacker);
  const std::string id_bytes = [&] {
    std::string raw;
    for (std::size_t i = 0; i < key.id.size(); i += 2) {
      raw.push_back(static_cast<char>(std::stoi(key.id.substr(i, 2), nullptr, 16)));
    }
    return raw;
  }();
  forged.replace(8, 8, id_bytes);
  write(path("forged.enc"), forged);
  EXPECT_EQ(encrypted_key_id(path("forged.enc")), key.id);
  const std::string message = decrypt_fails(forged, {key});
  EXPECT_THAT(message, HasSubstr("authentication failed at chunk 0 (the length record): wrong key or tampered file"));
}

TEST_F(CodecTest, TamperingAnyRegionIsDetected) {
  const Key key = generate_key();
  const std::string plain = random_bytes(2 * kMiB + 100);  // chunks: full, full, final of 100 bytes
  const std::string encrypted = encrypt(plain, key);
  ASSERT_EQ(encrypted.size(), kHeader + 2 * kFullChunk + 100 + kABytes);
  struct Case {
    std::size_t offset;
    const char* expected;
  };
  for (const Case& c : {
           Case{0, "not a modelzoo encrypted file (bad magic)"},
           Case{4, "not a modelzoo encrypted file (bad magic)"},
           Case{7, "unsupported modelzoo encrypted file version"},
           Case{8, "no configured key has that id"},       // key id
           Case{15, "no configured key has that id"},
           Case{16, "authentication failed at chunk 0 (the length record): wrong key or tampered file"},  // ss header
           Case{39, "authentication failed at chunk 0 (the length record): wrong key or tampered file"},
           Case{40, "authentication failed at chunk 0 (the length record): wrong key or tampered file"},  // length
           Case{64, "authentication failed at chunk 0 (the length record): wrong key or tampered file"},
           Case{kHeader, "authentication failed at chunk 1 of 3: wrong key or tampered file"},  // first chunk: tag
           Case{kHeader + 1000, "authentication failed at chunk 1 of 3: wrong key or tampered file"},
           Case{kHeader + kFullChunk - 1, "authentication failed at chunk 1 of 3: wrong key or tampered file"},  // MAC
           Case{kHeader + kFullChunk + 5, "authentication failed at chunk 2 of 3: wrong key or tampered file"},
           Case{kHeader + 2 * kFullChunk, "authentication failed at chunk 3 of 3: wrong key or tampered file"},  // last
           Case{encrypted.size() - 1, "authentication failed at chunk 3 of 3: wrong key or tampered file"},
       }) {
    SCOPED_TRACE(c.offset);
    std::string tampered = encrypted;
    tampered[c.offset] = static_cast<char>(tampered[c.offset] ^ 0x01);
    EXPECT_THAT(decrypt_fails(tampered, {key}), HasSubstr(c.expected));
  }
}

TEST_F(CodecTest, SwappedChunksAreDetected) {
  const Key key = generate_key();
  const std::string encrypted = encrypt(random_bytes(2 * kMiB + 10), key);
  std::string swapped = encrypted.substr(0, kHeader) + encrypted.substr(kHeader + kFullChunk, kFullChunk) +
                        encrypted.substr(kHeader, kFullChunk) + encrypted.substr(kHeader + 2 * kFullChunk);
  EXPECT_THAT(decrypt_fails(swapped, {key}), HasSubstr("authentication failed at chunk 1 of 3"));
}

TEST_F(CodecTest, TruncationIsDetectedAnywhere) {
  const Key key = generate_key();
  const std::string encrypted = encrypt(random_bytes(2 * kMiB + 100), key);
  struct Case {
    std::size_t size;
    const char* expected;
  };
  for (const Case& c : {
           Case{0, "not a modelzoo encrypted file (bad magic)"},
           Case{5, "not a modelzoo encrypted file (bad magic)"},
           Case{12, "truncated: the file ends inside its 65-byte header"},
           Case{40, "truncated: the file ends inside its 65-byte header"},
           Case{64, "truncated: the file ends inside its 65-byte header"},
           Case{kHeader, "truncated: the file ends after its header, before chunk 1 of 3"},
           Case{kHeader + 10, "truncated: the file ends inside chunk 1 of 3"},
           Case{kHeader + 5000, "truncated: the file ends inside chunk 1 of 3"},
           Case{kHeader + kFullChunk - 1, "truncated: the file ends inside chunk 1 of 3"},
           Case{kHeader + kFullChunk, "truncated: the file ends after chunk 1 of 3, before the final chunk"},
           Case{kHeader + kFullChunk + 1, "truncated: the file ends inside chunk 2 of 3"},
           Case{kHeader + 2 * kFullChunk, "truncated: the file ends after chunk 2 of 3, before the final chunk"},
           Case{encrypted.size() - 1, "truncated: the file ends inside chunk 3 of 3"},
       }) {
    SCOPED_TRACE(c.size);
    EXPECT_THAT(decrypt_fails(encrypted.substr(0, c.size), {key}), HasSubstr(c.expected));
  }
}

TEST_F(CodecTest, TruncationOfAnExactMultipleDropsTheEmptyFinalChunk) {
  const Key key = generate_key();
  const std::string encrypted = encrypt(random_bytes(kMiB), key);
  ASSERT_EQ(encrypted.size(), kHeader + kFullChunk + kABytes);
  EXPECT_THAT(decrypt_fails(encrypted.substr(0, kHeader + kFullChunk), {key}),
              HasSubstr("truncated: the file ends after chunk 1 of 2, before the final chunk"));
}

TEST_F(CodecTest, TrailingBytesAreRejected) {
  const Key key = generate_key();
  for (const std::string& plain : {std::string(), std::string("x"), random_bytes(kMiB)}) {
    const std::string encrypted = encrypt(plain, key);
    EXPECT_THAT(decrypt_fails(encrypted + "x", {key}),
                HasSubstr("trailing bytes after the final chunk: the file has " + std::to_string(encrypted.size() + 1) +
                          " bytes, its header says " + std::to_string(encrypted.size())));
    EXPECT_THAT(decrypt_fails(encrypted + encrypted, {key}), HasSubstr("trailing bytes after the final chunk"));
  }
}

// Builds an encrypted file straight from the format described in crypt.h, with libsodium only:
// `tags` gives each data chunk's tag (default: MESSAGE..., FINAL).
std::string build_by_the_book(const Key& key, const std::string& plain, std::vector<unsigned char> tags = {}) {
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest, key.bytes.data(), key.bytes.size(), nullptr, 0);
  std::string ad("MZENC\0\0\1", 8);
  ad.append(reinterpret_cast<const char*>(digest), 8);
  crypto_secretstream_xchacha20poly1305_state state;
  unsigned char header[24];
  crypto_secretstream_xchacha20poly1305_init_push(&state, header, key.bytes.data());
  std::string out = ad + std::string(reinterpret_cast<const char*>(header), sizeof header);
  auto push = [&](const std::string& m, unsigned char tag) {
    std::string c(m.size() + 17, '\0');
    crypto_secretstream_xchacha20poly1305_push(&state, reinterpret_cast<unsigned char*>(c.data()), nullptr,
                                               reinterpret_cast<const unsigned char*>(m.data()), m.size(),
                                               reinterpret_cast<const unsigned char*>(ad.data()), ad.size(), tag);
    out += c;
  };
  std::string length(8, '\0');
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>(static_cast<std::uint64_t>(plain.size()) >> (8 * i));
  push(length, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
  const std::size_t n = plain.size() / kMiB + 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char tag = i < tags.size() ? tags[i]
                              : i + 1 == n   ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                                             : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    push(plain.substr(i * kMiB, kMiB), tag);
  }
  return out;
}

TEST_F(CodecTest, AFileBuiltFromTheDocumentedFormatDecrypts) {
  const Key key = generate_key();
  for (std::size_t size : {std::size_t{0}, std::size_t{5}, kMiB, 2 * kMiB + 3}) {
    SCOPED_TRACE(size);
    const std::string plain = random_bytes(size, 9);
    const std::string built = build_by_the_book(key, plain);
    EXPECT_EQ(built.size(), encrypt(plain, key).size());
    write(path("built.enc"), built);
    decrypt_file(path("built.enc"), path("built"), {key});
    EXPECT_EQ(read(path("built")), plain);
  }
}

TEST_F(CodecTest, ChunkTagsMustBeMessagesThenOneFinal) {
  const Key key = generate_key();
  const unsigned char message = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
  const unsigned char final = crypto_secretstream_xchacha20poly1305_TAG_FINAL;
  const unsigned char push = crypto_secretstream_xchacha20poly1305_TAG_PUSH;
  const std::string plain = random_bytes(kMiB + 10);
  EXPECT_THAT(decrypt_fails(build_by_the_book(key, plain, {message, message}), {key}),
              HasSubstr("unexpected secretstream tag 0 at chunk 2 of 2"));
  EXPECT_THAT(decrypt_fails(build_by_the_book(key, plain, {final, final}), {key}),
              HasSubstr("unexpected secretstream tag 3 at chunk 1 of 2"));
  EXPECT_THAT(decrypt_fails(build_by_the_book(key, plain, {push, final}), {key}),
              HasSubstr("unexpected secretstream tag 1 at chunk 1 of 2"));
}

TEST_F(CodecTest, EncryptedKeyIdRejectsOtherFiles) {
  write(path("plain"), "just some model weights");
  EXPECT_THAT(error_of([&] { encrypted_key_id(path("plain")); }),
              HasSubstr(path("plain").string() + ": not a modelzoo encrypted file"));
  write(path("short"), std::string("MZENC\0\0\1abc", 11));
  EXPECT_THAT(error_of([&] { encrypted_key_id(path("short")); }), HasSubstr("truncated"));
  EXPECT_THAT(error_of([&] { encrypted_key_id(path("none")); }), HasSubstr("cannot open"));
}

// ---- zstd ----------------------------------------------------------------------------------

TEST_F(CodecTest, ZstdRoundTrips) {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{1000}, 3 * kMiB + 7}) {
    SCOPED_TRACE(size);
    // Half random, half repetitive: some of it compresses.
    std::string plain = random_bytes(size / 2, 7) + std::string(size - size / 2, 'z');
    write(path("plain"), plain);
    compress_file(path("plain"), path("plain.zst"));
    const std::string compressed = read(path("plain.zst"));
    EXPECT_EQ(compressed.substr(0, 4), "\x28\xb5\x2f\xfd");
    if (size > 1000) {
      EXPECT_LT(compressed.size(), plain.size());
    }
    decompress_file(path("plain.zst"), path("plain.out"), 0);
    EXPECT_EQ(read(path("plain.out")), plain);
    decompress_file(path("plain.zst"), path("plain.out"), size);  // a limit of exactly the size is enough
    EXPECT_EQ(read(path("plain.out")), plain);
    EXPECT_EQ(listing(), (std::set<std::string>{"plain", "plain.zst", "plain.out"}));
  }
}

TEST_F(CodecTest, ZstdConcatenatedFramesAndSkippableFramesAreDecoded) {
  write(path("a"), "first frame, ");
  write(path("b"), random_bytes(300000, 3));
  compress_file(path("a"), path("a.zst"), 1);
  compress_file(path("b"), path("b.zst"), 19);
  // A skippable frame: magic 0x184D2A53, length 4, 4 bytes.
  const std::string skippable("\x53\x2a\x4d\x18\x04\x00\x00\x00skip", 12);
  write(path("ab.zst"), read(path("a.zst")) + skippable + read(path("b.zst")) + read(path("a.zst")));
  decompress_file(path("ab.zst"), path("ab"), 0);
  EXPECT_EQ(read(path("ab")), read(path("a")) + read(path("b")) + read(path("a")));
}

TEST_F(CodecTest, ZstdErrorsAreNamedAndLeaveNothing) {
  write(path("plain"), random_bytes(500000, 5) + std::string(500000, 'a'));
  compress_file(path("plain"), path("plain.zst"));
  const std::string good = read(path("plain.zst"));
  auto decompress_fails = [&](const std::string& data, std::uint64_t limit = 0) {
    write(path("bad.zst"), data);
    return expect_failure_leaves_nothing([&](const fs::path& out) { decompress_file(path("bad.zst"), out, limit); });
  };

  EXPECT_THAT(decompress_fails(""), HasSubstr("empty file: not a zstd stream"));
  EXPECT_THAT(decompress_fails("PK\x03\x04 a zip file"), HasSubstr("not a zstd file (bad magic)"));
  EXPECT_THAT(decompress_fails("\x28\xb5"), HasSubstr("not a zstd file (bad magic)"));
  EXPECT_THAT(decompress_fails(good.substr(0, 4)), HasSubstr("truncated: the input ends inside a zstd frame"));
  EXPECT_THAT(decompress_fails(good.substr(0, good.size() / 2)), HasSubstr("truncated"));
  EXPECT_THAT(decompress_fails(good.substr(0, good.size() - 1)), HasSubstr("truncated"));
  EXPECT_THAT(decompress_fails(good + "garbage after"),
              HasSubstr("data after the last zstd frame is not a zstd frame"));

  // A flipped byte in the middle: a corrupt block, or at least a wrong checksum.
  std::string corrupt = good;
  corrupt[corrupt.size() / 2] = static_cast<char>(corrupt[corrupt.size() / 2] ^ 0x40);
  const std::string message = decompress_fails(corrupt);
  EXPECT_THAT(message, HasSubstr(path("bad.zst").string() + ": corrupt zstd data near input offset "));
  // The checksum alone (the frame's last 4 bytes).
  corrupt = good;
  corrupt.back() = static_cast<char>(corrupt.back() ^ 0x01);
  EXPECT_THAT(decompress_fails(corrupt), HasSubstr("checksum"));

  EXPECT_THAT(decompress_fails(good, 1000), HasSubstr("decompressed data exceeds the limit of 1000 bytes"));
}

TEST_F(CodecTest, ZstdBombIsStoppedAtTheLimit) {
  write(path("zeros"), std::string(10 * kMiB, '\0'));
  compress_file(path("zeros"), path("zeros.zst"), 19);
  EXPECT_LT(fs::file_size(path("zeros.zst")), 4096u);
  fs::remove(path("zeros"));
  const std::string message = expect_failure_leaves_nothing(
      [&](const fs::path& out) { decompress_file(path("zeros.zst"), out, kMiB); });
  EXPECT_THAT(message, HasSubstr("decompressed data exceeds the limit of 1048576 bytes"));
  decompress_file(path("zeros.zst"), path("zeros"), 10 * kMiB);
  EXPECT_EQ(fs::file_size(path("zeros")), 10 * kMiB);
}

TEST_F(CodecTest, ZstdCompressionLevelIsChecked) {
  write(path("plain"), "x");
  EXPECT_THAT(error_of([&] { compress_file(path("plain"), path("plain.zst"), 1000); }), HasSubstr("out of range"));
  EXPECT_FALSE(fs::exists(path("plain.zst")));
}

}  // namespace
}  // namespace modelzoo::codec
