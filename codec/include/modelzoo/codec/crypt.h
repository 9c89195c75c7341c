// Models encrypted at rest: libsodium crypto_secretstream_xchacha20poly1305, one key per
// publisher, files named *.enc.
//
// ENCRYPTED FILE FORMAT, version 1 (sizes in bytes; integers little-endian; "|" concatenates)
//
//   offset  size  field
//   0       8     magic: "MZENC" 0x00 0x00 0x01  (4d 5a 45 4e 43 00 00 01; the last byte is the version)
//   8       8     key id: the first 8 bytes of BLAKE2b(key) with a 32-byte digest and no BLAKE2b key
//                 (crypto_generichash(out, 32, key, 32, NULL, 0)); Key::id is these 8 bytes in lowercase hex
//   16      24    secretstream header, from crypto_secretstream_xchacha20poly1305_init_push(state, header, key)
//   40      25    length record ("chunk 0"): the plaintext length L as an 8-byte unsigned integer, pushed
//                 with TAG_MESSAGE (8 + 17 bytes)
//   65      ...   data chunks 1..N, back to back, then the end of the file
//
//   Every push (and pull) uses ad = the file's first 16 bytes (magic | key id), so a changed
//   magic, version or key id fails authentication.
//   The plaintext is cut into N = floor(L / 1048576) + 1 chunks: N-1 chunks of exactly 1 MiB
//   (1048576 bytes), pushed with TAG_MESSAGE (0x00), then the final chunk, the remaining
//   L mod 1048576 bytes (possibly none: an empty plaintext, or a multiple of 1 MiB, still ends
//   with an empty final chunk), pushed with TAG_FINAL (0x03). A ciphertext chunk is its
//   plaintext + 17 bytes (crypto_secretstream_xchacha20poly1305_ABYTES), so the file is exactly
//   65 + L + 17 * N bytes.
//
//   The length record is what makes every failure precise: the authenticated length tells a
//   reader where each chunk ends, so a file cut short (even at a chunk boundary) or with bytes
//   after the final chunk is recognized as such before any decryption, and is never mistaken
//   for tampering.
//
//   A reader must reject: another magic or version; a key id it has no key for; a length record
//   or chunk that fails crypto_secretstream_xchacha20poly1305_pull (with the same 16-byte ad);
//   a length record that is not 8 bytes with TAG_MESSAGE; a file whose size is not
//   65 + L + 17 * N; chunk tags other than N-1 times TAG_MESSAGE and then TAG_FINAL.
//
//   In Python with PyNaCl (TAG_* and crypto_* from nacl.bindings, TAG_X meaning
//   crypto_secretstream_xchacha20poly1305_TAG_X):
//     key_id = nacl.hash.blake2b(key, digest_size=32, encoder=nacl.encoding.RawEncoder)[:8]
//     ad     = b"MZENC\0\0\x01" + key_id
//     state  = crypto_secretstream_xchacha20poly1305_state()
//     out    = ad + crypto_secretstream_xchacha20poly1305_init_push(state, key)
//     out   += crypto_secretstream_xchacha20poly1305_push(state, struct.pack("<Q", len(plain)), ad, TAG_MESSAGE)
//     chunks = [plain[i:i + 2**20] for i in range(0, len(plain) - len(plain) % 2**20 + 1, 2**20)]
//     for i, c in enumerate(chunks):  # the last, possibly empty, is the final one
//         tag = TAG_FINAL if i == len(chunks) - 1 else TAG_MESSAGE
//         out += crypto_secretstream_xchacha20poly1305_push(state, c, ad, tag)
//
// KEY FILE: one line, "modelzoo-key-v1 " followed by the standard base64 (with padding, 44
// characters) of the 32 key bytes, then "\n"; mode 0600.
//
// Every function that writes a file writes it whole or not at all: to a temporary file in the
// output's directory (created O_EXCL with a random suffix, mode 0644 less the umask), fsynced,
// then renamed over `out`; on any failure the temporary is removed, `out` is left as it was, and
// CodecError is thrown. Memory stays bounded (two ~1 MiB buffers) whatever the file size.
// All functions are safe to call from several threads at once.
#pragma once

#include <array>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace modelzoo::codec {

// Every failure of this library (and of zstd.h): what() names the file and the problem, in one line.
class CodecError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A 32-byte secretstream key. `id` (16 lowercase hex digits, see the format above) identifies
// the key without revealing it. The functions below derive the id from `bytes` themselves, so
// a Key built by hand with a wrong or empty id still works. Destroying a Key wipes its bytes.
struct Key {
  std::array<unsigned char, 32> bytes{};
  std::string id;
  ~Key();
};

// A new random key.
Key generate_key();

// The key id of `bytes` (16 lowercase hex digits).
std::string key_id(const std::array<unsigned char, 32>& bytes);

// Writes the key file (format above) with mode 0600, created with O_EXCL: throws CodecError if
// `p` already exists (never overwrites) or cannot be written (nothing is left behind then).
void write_key_file(const std::filesystem::path& p, const Key& k);

// Reads a key file. Throws CodecError naming the file when it is missing, not a regular file,
// malformed, or readable or writable by group or others
// ("key file K is readable by other users (mode 0644); chmod 600 it").
Key read_key_file(const std::filesystem::path& p);

// The suffix of encrypted files.
inline constexpr std::string_view kEncryptedSuffix = ".enc";

// The id of the key `in` was encrypted with, from its header. Throws CodecError when `in`
// cannot be read or is not a modelzoo encrypted file ("not a modelzoo encrypted file (bad magic)",
// unsupported version, truncated header).
std::string encrypted_key_id(const std::filesystem::path& in);

// Encrypts `in` into `out` (format above). `out` may already exist: it is replaced atomically.
void encrypt_file(const std::filesystem::path& in, const std::filesystem::path& out, const Key& key);

// Decrypts `in` into `out` with the key of `keys` whose id the header names. Throws CodecError
// with a message naming `in` and the problem:
//   - "not a modelzoo encrypted file (bad magic)", "unsupported ... version N",
//     "truncated: the file ends inside its 65-byte header";
//   - "encrypted with key <id>, and no configured key has that id (configured: <ids>)";
//   - "authentication failed at chunk N of M: wrong key or tampered file" (chunk 0 is the length
//     record: a wrong key or a changed header always fails there, before anything is written);
//   - "truncated: the file ends after chunk K of M, before the final chunk" (or "inside chunk K of M");
//   - "trailing bytes after the final chunk: the file has X bytes, its header says Y".
// Size problems are found from the file's size before decrypting anything.
// Never leaves `out` (or a temporary file) behind on failure; an existing `out` is untouched.
void decrypt_file(const std::filesystem::path& in, const std::filesystem::path& out, const std::vector<Key>& keys);

}  // namespace modelzoo::codec
