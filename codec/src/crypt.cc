#include "modelzoo/codec/crypt.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <sodium.h>

#include "file_io.h"

namespace modelzoo::codec {

namespace fs = std::filesystem;
using detail::AtomicOutput;
using detail::ensure_sodium;
using detail::errno_text;
using detail::fail;
using detail::InputFile;

namespace {

constexpr unsigned char kMagic[] = {'M', 'Z', 'E', 'N', 'C', 0, 0, 1};
constexpr std::size_t kMagicSize = sizeof kMagic;
constexpr unsigned char kVersion = kMagic[kMagicSize - 1];
constexpr std::size_t kKeyIdSize = 8;
constexpr std::size_t kAdSize = kMagicSize + kKeyIdSize;  // magic | key id: the ad of every chunk
constexpr std::size_t kStreamHeaderSize = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr std::size_t kABytes = crypto_secretstream_xchacha20poly1305_ABYTES;
constexpr std::size_t kLengthSize = 8;                          // the plaintext length, little-endian
constexpr std::size_t kLengthRecordSize = kLengthSize + kABytes;  // ... encrypted: "chunk 0"
constexpr std::size_t kHeaderSize = kAdSize + kStreamHeaderSize + kLengthRecordSize;
constexpr std::size_t kChunkSize = std::size_t{1} << 20;  // plaintext bytes per chunk
constexpr unsigned char kTagMessage = crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
constexpr unsigned char kTagFinal = crypto_secretstream_xchacha20poly1305_TAG_FINAL;

// The format (crypt.h) spells these out; they must not change under us.
static_assert(kStreamHeaderSize == 24);
static_assert(kABytes == 17);
static_assert(kHeaderSize == 65);
static_assert(crypto_secretstream_xchacha20poly1305_KEYBYTES == 32);
static_assert(kTagMessage == 0 && kTagFinal == 3);
static_assert(crypto_generichash_BYTES == 32);

constexpr std::string_view kKeyFilePrefix = "modelzoo-key-v1 ";
constexpr std::size_t kKeyFileMaxSize = 1024;  // a valid one is 61 bytes

using KeyBytes = std::array<unsigned char, 32>;
using KeyIdBytes = std::array<unsigned char, kKeyIdSize>;

KeyIdBytes key_id_bytes(const KeyBytes& key) {
  ensure_sodium();
  unsigned char digest[crypto_generichash_BYTES];
  crypto_generichash(digest, sizeof digest, key.data(), key.size(), nullptr, 0);
  KeyIdBytes id{};
  std::copy_n(digest, id.size(), id.begin());
  sodium_memzero(digest, sizeof digest);
  return id;
}

std::string to_hex(const unsigned char* bytes, std::size_t size) {
  std::string hex(2 * size + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), bytes, size);
  hex.pop_back();
  return hex;
}

// The secretstream state holds a key: wiped when it goes.
struct StreamState {
  crypto_secretstream_xchacha20poly1305_state state;
  StreamState() = default;
  StreamState(const StreamState&) = delete;
  StreamState& operator=(const StreamState&) = delete;
  ~StreamState() { sodium_memzero(&state, sizeof state); }
};

// Checks the magic and version of a header prefix of `size` bytes (fewer than 8 when the file
// is that short).
void check_magic(const fs::path& in, const unsigned char* header, std::size_t size) {
  if (size < kMagicSize || std::memcmp(header, kMagic, kMagicSize - 1) != 0) {
    fail(in, "not a modelzoo encrypted file (bad magic)");
  }
  if (header[kMagicSize - 1] != kVersion) {
    fail(in, "unsupported modelzoo encrypted file version " + std::to_string(header[kMagicSize - 1]) +
                 " (this build reads version " + std::to_string(kVersion) + ")");
  }
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

[[noreturn]] void key_file_fail(const fs::path& p, const std::string& message) {
  throw CodecError("key file " + p.string() + " " + message);
}

// Closes a file descriptor when it goes.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

Key::~Key() { sodium_memzero(bytes.data(), bytes.size()); }

std::string key_id(const std::array<unsigned char, 32>& bytes) {
  const KeyIdBytes id = key_id_bytes(bytes);
  return to_hex(id.data(), id.size());
}

Key generate_key() {
  ensure_sodium();
  Key k;
  crypto_secretstream_xchacha20poly1305_keygen(k.bytes.data());
  k.id = key_id(k.bytes);
  return k;
}

// ---- key files -----------------------------------------------------------------------

void write_key_file(const fs::path& p, const Key& k) {
  ensure_sodium();
  char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, k.bytes.data(), k.bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  std::string line(kKeyFilePrefix);
  line.append(b64).push_back('\n');
  sodium_memzero(b64, sizeof b64);

  Fd file(::open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (file.fd < 0) {
    const int err = errno;
    sodium_memzero(line.data(), line.size());
    if (err == EEXIST) key_file_fail(p, "already exists; refusing to overwrite it");
    key_file_fail(p, "cannot be created: " + errno_text(err));
  }
  std::size_t done = 0;
  int err = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(file.fd, line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    done += static_cast<std::size_t>(n);
  }
  sodium_memzero(line.data(), line.size());
  if (err == 0 && ::fsync(file.fd) != 0) err = errno;
  const int fd = file.fd;
  file.fd = -1;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(p.c_str());
    key_file_fail(p, "cannot be written: " + errno_text(err));
  }
}

Key read_key_file(const fs::path& p) {
  ensure_sodium();
  Fd file(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.fd < 0) {
    const int err = errno;
    if (err == ENOENT) key_file_fail(p, "does not exist");
    key_file_fail(p, "cannot be opened: " + errno_text(err));
  }
  struct stat st {};
  if (::fstat(file.fd, &st) != 0) key_file_fail(p, "cannot be read: " + errno_text(errno));
  if (!S_ISREG(st.st_mode)) key_file_fail(p, "is not a regular file");
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    key_file_fail(p, "is readable by other users (mode " + mode_text(st.st_mode) + "); chmod 600 it");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    key_file_fail(p, "is writable by other users (mode " + mode_text(st.st_mode) + "); chmod 600 it");
  }

  char text[kKeyFileMaxSize + 1];
  std::size_t size = 0;
  while (size < sizeof text) {
    const ssize_t n = ::read(file.fd, text + size, sizeof text - size);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      sodium_memzero(text, sizeof text);
      key_file_fail(p, "cannot be read: " + errno_text(err));
    }
    if (n == 0) break;
    size += static_cast<std::size_t>(n);
  }

  Key key;
  const std::string_view view(text, size);
  std::string_view b64;
  bool ok = size <= kKeyFileMaxSize && view.substr(0, kKeyFilePrefix.size()) == kKeyFilePrefix;
  if (ok) {
    b64 = view.substr(kKeyFilePrefix.size());
    if (!b64.empty() && b64.back() == '\n') b64.remove_suffix(1);  // the newline is optional
    std::size_t decoded = 0;
    const char* end = nullptr;
    ok = !b64.empty() &&
         sodium_base642bin(key.bytes.data(), key.bytes.size(), b64.data(), b64.size(), nullptr, &decoded, &end,
                           sodium_base64_VARIANT_ORIGINAL) == 0 &&
         decoded == key.bytes.size() && end == b64.data() + b64.size();
  }
  sodium_memzero(text, sizeof text);
  if (!ok) {
    key_file_fail(p, "is malformed: expected one line \"" + std::string(kKeyFilePrefix) +
                         "<base64 of 32 bytes>\"");
  }
  key.id = key_id(key.bytes);
  return key;
}

// ---- encrypted files -----------------------------------------------------------------

namespace {

// Where the pieces of a file with `length` bytes of plaintext are.
struct Layout {
  std::uint64_t length = 0;  // plaintext bytes
  std::uint64_t chunks = 0;  // data chunks, the final one included

  explicit Layout(std::uint64_t plaintext) : length(plaintext), chunks(plaintext / kChunkSize + 1) {}
  // Plaintext bytes of data chunk `i` (1-based).
  std::size_t plain_size(std::uint64_t i) const {
    return i < chunks ? kChunkSize : static_cast<std::size_t>(length % kChunkSize);
  }
  std::uint64_t file_size() const { return kHeaderSize + length + chunks * kABytes; }
};

// The longest plaintext accepted: far beyond any model, and file_size() cannot overflow.
constexpr std::uint64_t kMaxLength = std::uint64_t{1} << 60;

// What is wrong with an encrypted file of `size` bytes whose header describes `layout`.
std::string size_problem(const Layout& layout, std::uint64_t size) {
  const std::string of = " of " + std::to_string(layout.chunks);
  if (size > layout.file_size()) {
    return "trailing bytes after the final chunk: the file has " + std::to_string(size) + " bytes, its header says " +
           std::to_string(layout.file_size());
  }
  const std::uint64_t data = size - kHeaderSize;  // size >= kHeaderSize: the header was read
  const std::uint64_t whole = data / (kChunkSize + kABytes);  // complete full-size chunks present
  if (data % (kChunkSize + kABytes) == 0) {
    if (whole == 0) return "truncated: the file ends after its header, before chunk 1" + of;
    return "truncated: the file ends after chunk " + std::to_string(whole) + of + ", before the final chunk";
  }
  return "truncated: the file ends inside chunk " + std::to_string(whole + 1) + of;
}

std::string truncated_header() {
  return "truncated: the file ends inside its " + std::to_string(kHeaderSize) + "-byte header";
}

void store_le64(unsigned char* out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

std::uint64_t load_le64(const unsigned char* in) {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = value << 8 | in[i];
  return value;
}

}  // namespace

std::string encrypted_key_id(const fs::path& in) {
  InputFile input(in);
  unsigned char header[kAdSize];
  const std::size_t n = input.read_full(header, sizeof header);
  check_magic(in, header, n);
  if (n < kAdSize) fail(in, truncated_header());
  return to_hex(header + kMagicSize, kKeyIdSize);
}

void encrypt_file(const fs::path& in, const fs::path& out, const Key& key) {
  ensure_sodium();
  InputFile input(in);
  if (!input.regular()) fail(in, "not a regular file");
  const Layout layout(input.size());
  if (layout.length > kMaxLength) fail(in, "too large to encrypt");
  AtomicOutput output(out);

  // magic | key id | secretstream header | length record
  unsigned char header[kHeaderSize];
  std::memcpy(header, kMagic, kMagicSize);
  const KeyIdBytes id = key_id_bytes(key.bytes);
  std::memcpy(header + kMagicSize, id.data(), id.size());
  StreamState st;
  crypto_secretstream_xchacha20poly1305_init_push(&st.state, header + kAdSize, key.bytes.data());
  unsigned char length[kLengthSize];
  store_le64(length, layout.length);
  crypto_secretstream_xchacha20poly1305_push(&st.state, header + kAdSize + kStreamHeaderSize, nullptr, length,
                                             sizeof length, header, kAdSize, kTagMessage);
  output.write(header, sizeof header);

  std::vector<unsigned char> plain(kChunkSize);
  std::vector<unsigned char> cipher(kChunkSize + kABytes);
  for (std::uint64_t chunk = 1; chunk <= layout.chunks; ++chunk) {
    const std::size_t want = layout.plain_size(chunk);
    if (input.read_full(plain.data(), want) != want) fail(in, "changed while being encrypted (it shrank)");
    const unsigned char tag = chunk == layout.chunks ? kTagFinal : kTagMessage;
    unsigned long long clen = 0;
    crypto_secretstream_xchacha20poly1305_push(&st.state, cipher.data(), &clen, plain.data(), want, header, kAdSize,
                                               tag);
    output.write(cipher.data(), static_cast<std::size_t>(clen));
  }
  unsigned char extra = 0;
  if (input.read_full(&extra, 1) != 0) fail(in, "changed while being encrypted (it grew)");
  sodium_memzero(plain.data(), plain.size());
  output.commit();
}

void decrypt_file(const fs::path& in, const fs::path& out, const std::vector<Key>& keys) {
  ensure_sodium();
  InputFile input(in);

  unsigned char header[kHeaderSize];
  const std::size_t header_size = input.read_full(header, sizeof header);
  check_magic(in, header, header_size);
  if (header_size < kHeaderSize) fail(in, truncated_header());

  const Key* key = nullptr;
  std::string configured;
  for (const Key& candidate : keys) {
    const KeyIdBytes id = key_id_bytes(candidate.bytes);
    if (std::memcmp(id.data(), header + kMagicSize, kKeyIdSize) == 0) {
      key = &candidate;
      break;
    }
    configured += (configured.empty() ? "" : ", ") + to_hex(id.data(), id.size());
  }
  if (key == nullptr) {
    fail(in, "encrypted with key " + to_hex(header + kMagicSize, kKeyIdSize) +
                 ", and no configured key has that id (configured: " + (configured.empty() ? "none" : configured) +
                 ")");
  }

  StreamState st;
  if (crypto_secretstream_xchacha20poly1305_init_pull(&st.state, header + kAdSize, key->bytes.data()) != 0) {
    fail(in, "invalid secretstream header");
  }
  unsigned char length[kLengthSize];
  unsigned long long length_size = 0;
  unsigned char tag = 0;
  if (crypto_secretstream_xchacha20poly1305_pull(&st.state, length, &length_size, &tag,
                                                 header + kAdSize + kStreamHeaderSize, kLengthRecordSize, header,
                                                 kAdSize) != 0) {
    fail(in, "authentication failed at chunk 0 (the length record): wrong key or tampered file");
  }
  if (tag != kTagMessage || length_size != kLengthSize) fail(in, "unexpected tag in the length record");
  const Layout layout(load_le64(length));
  if (layout.length > kMaxLength) fail(in, "implausible plaintext length " + std::to_string(layout.length));
  // Checked before any work: a truncated download fails at once, with a precise message.
  if (input.regular() && input.size() != layout.file_size()) fail(in, size_problem(layout, input.size()));

  // Created only now: a file rejected by its header costs no temporary file.
  AtomicOutput output(out);
  std::vector<unsigned char> cipher(kChunkSize + kABytes);
  std::vector<unsigned char> plain(kChunkSize);
  for (std::uint64_t chunk = 1; chunk <= layout.chunks; ++chunk) {
    const std::size_t want = layout.plain_size(chunk) + kABytes;
    const std::size_t n = input.read_full(cipher.data(), want);
    if (n != want) fail(in, size_problem(layout, input.offset()));  // it shrank since we looked
    unsigned long long mlen = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&st.state, plain.data(), &mlen, &tag, cipher.data(), n, header,
                                                   kAdSize) != 0) {
      fail(in, "authentication failed at chunk " + std::to_string(chunk) + " of " + std::to_string(layout.chunks) +
                   ": wrong key or tampered file");
    }
    const unsigned char expected = chunk == layout.chunks ? kTagFinal : kTagMessage;
    if (tag != expected) {
      fail(in, "unexpected secretstream tag " + std::to_string(tag) + " at chunk " + std::to_string(chunk) + " of " +
                   std::to_string(layout.chunks));
    }
    output.write(plain.data(), static_cast<std::size_t>(mlen));
  }
  unsigned char extra = 0;
  if (input.read_full(&extra, 1) != 0) {
    fail(in, "trailing bytes after the final chunk (the file grew while being read)");
  }
  sodium_memzero(plain.data(), plain.size());
  output.commit();
}

}  // namespace modelzoo::codec
