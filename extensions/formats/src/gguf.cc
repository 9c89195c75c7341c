// GGUF: rules 1-5 of docs/extensions.md. Reads the header, the key/values and the tensor infos (through a
// window of 64 KiB), never the tensor data. Little-endian files only: a byte-swapped file is
// reported under rule 1 as not supported.
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "modelzoo/formats/formats.h"

namespace modelzoo::formats {
namespace {

Violation gguf_violation(int rule, std::string message) {
  return Violation{"gguf", "gguf." + std::to_string(rule), std::move(message)};
}

// Value types of key/values (rule 3).
enum ValueType : std::uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};
constexpr std::uint32_t kValueTypeCount = 13;
constexpr const char* kValueTypeNames[kValueTypeCount] = {
    "UINT8", "INT8",   "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64", "FLOAT64"};

// Encoded size of a fixed-size value, 0 for STRING and ARRAY.
std::uint64_t fixed_size(std::uint32_t type) {
  switch (type) {
    case kUint8: case kInt8: case kBool: return 1;
    case kUint16: case kInt16: return 2;
    case kUint32: case kInt32: case kFloat32: return 4;
    case kUint64: case kInt64: case kFloat64: return 8;
    default: return 0;
  }
}

// The least bytes a value of `type` takes: what bounds an array's element count.
std::uint64_t min_size(std::uint32_t type) {
  if (type == kString) return 8;      // u64 length
  if (type == kArray) return 4 + 8;   // u32 element type, u64 count
  return fixed_size(type);
}

// ggml tensor types accepted by rule 5 ("known type"): ids 0-39 of ggml.h except those removed
// from ggml and refused in GGUF files by current readers: 4 and 5 (Q4_2, Q4_3), 31-33
// (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8) and 36-38 (IQ4_NL_4_4, IQ4_NL_4_8, IQ4_NL_8_8). So:
// 0-3, 6-30, 34, 35, 39. For the types below with a block/type size, a tensor's byte size is
// exact and the running padded total is checked exactly; for the others (the IQ* types 16-23 and
// 29, TQ1_0/TQ2_0 34-35, MXFP4 39) offsets need only be aligned, increasing and inside the file.
struct GgmlType {
  const char* name;
  std::uint32_t block;  // elements per block; 0 = size not checked
  std::uint32_t bytes;  // bytes per block
};
constexpr std::uint32_t kGgmlTypeCount = 40;
constexpr GgmlType kGgmlTypes[kGgmlTypeCount] = {
    {"F32", 1, 4},       {"F16", 1, 2},      {"Q4_0", 32, 18},   {"Q4_1", 32, 20},
    {nullptr, 0, 0},     {nullptr, 0, 0},    {"Q5_0", 32, 22},   {"Q5_1", 32, 24},
    {"Q8_0", 32, 34},    {"Q8_1", 32, 36},   {"Q2_K", 256, 84},  {"Q3_K", 256, 110},
    {"Q4_K", 256, 144},  {"Q5_K", 256, 176}, {"Q6_K", 256, 210}, {"Q8_K", 256, 292},
    {"IQ2_XXS", 0, 0},   {"IQ2_XS", 0, 0},   {"IQ3_XXS", 0, 0},  {"IQ1_S", 0, 0},
    {"IQ4_NL", 0, 0},    {"IQ3_S", 0, 0},    {"IQ2_S", 0, 0},    {"IQ4_XS", 0, 0},
    {"I8", 1, 1},        {"I16", 1, 2},      {"I32", 1, 4},      {"I64", 1, 8},
    {"F64", 1, 8},       {"IQ1_M", 0, 0},    {"BF16", 1, 2},     {nullptr, 0, 0},
    {nullptr, 0, 0},     {nullptr, 0, 0},    {"TQ1_0", 0, 0},    {"TQ2_0", 0, 0},
    {nullptr, 0, 0},     {nullptr, 0, 0},    {nullptr, 0, 0},    {"MXFP4", 0, 0},
};

constexpr std::uint32_t kDefaultAlignment = 32;
constexpr std::uint64_t kMinKvSize = 8 + 4 + 1;          // empty key, type, one-byte value
constexpr std::uint64_t kMinTensorInfoSize = 8 + 4 + 4 + 8;  // empty name, n_dims 0, type, offset

// Sequential reading of little-endian fields.
class Cursor {
 public:
  explicit Cursor(Reader& reader) : reader_(reader), size_(reader.size()) {}

  std::uint64_t pos() const { return pos_; }
  std::uint64_t size() const { return size_; }
  std::uint64_t remaining() const { return size_ - pos_; }

  bool u32(std::uint32_t& v) { return little_endian(v); }
  bool u64(std::uint64_t& v) { return little_endian(v); }
  bool bytes(std::uint64_t n, std::string& out) {
    if (n > remaining()) return false;
    out.resize(static_cast<std::size_t>(n));
    if (!reader_.read(pos_, out.data(), out.size())) return false;
    pos_ += n;
    return true;
  }
  bool skip(std::uint64_t n) {
    if (n > remaining()) return false;
    pos_ += n;
    return true;
  }

 private:
  template <typename T>
  bool little_endian(T& v) {
    unsigned char b[sizeof(T)];
    if (!reader_.read(pos_, b, sizeof b)) return false;
    v = 0;
    for (std::size_t i = sizeof(T); i-- > 0;) v = static_cast<T>((v << 8) | b[i]);
    pos_ += sizeof(T);
    return true;
  }

  Reader& reader_;
  std::uint64_t size_;
  std::uint64_t pos_ = 0;
};

std::string ends_at(const Cursor& c) {
  return "the file ends at byte " + std::to_string(c.size());
}

// Skips one value of `type` (already known to be < kValueTypeCount). Returns what is wrong, or
// an empty string.
std::string skip_value(Cursor& c, std::uint32_t type, int depth) {
  if (type == kString) {
    std::uint64_t len = 0;
    if (!c.u64(len)) return "a string length runs past the end (" + ends_at(c) + ")";
    if (!c.skip(len)) {
      return "a string of " + std::to_string(len) + " bytes at byte " + std::to_string(c.pos()) +
             " runs past the end (" + ends_at(c) + ")";
    }
    return {};
  }
  if (type != kArray) {
    if (!c.skip(fixed_size(type))) {
      return std::string("a ") + kValueTypeNames[type] + " value runs past the end (" + ends_at(c) +
             ")";
    }
    return {};
  }
  if (depth >= kGgufMaxArrayDepth) {
    return "arrays nest deeper than " + std::to_string(kGgufMaxArrayDepth) + " levels";
  }
  std::uint32_t elem = 0;
  std::uint64_t count = 0;
  const std::uint64_t at = c.pos();
  if (!c.u32(elem) || !c.u64(count)) {
    return "an array header at byte " + std::to_string(at) + " runs past the end (" + ends_at(c) +
           ")";
  }
  if (elem >= kValueTypeCount) {
    return "an array at byte " + std::to_string(at) + " has the element type " +
           std::to_string(elem) + ", not 0-12";
  }
  const std::uint64_t least = min_size(elem);
  if (count > c.remaining() / least) {
    return "an array at byte " + std::to_string(at) + " declares " + std::to_string(count) + " " +
           kValueTypeNames[elem] + " elements of at least " + std::to_string(least) +
           " bytes each, but only " + std::to_string(c.remaining()) + " bytes remain";
  }
  if (elem != kString && elem != kArray) {
    c.skip(count * least);  // fits: checked above
    return {};
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    if (auto err = skip_value(c, elem, depth + 1); !err.empty()) return err;
  }
  return {};
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) {
  // x is at most a file size, a at most 2^31: no overflow.
  return (x + a - 1) / a * a;
}

}  // namespace

std::optional<Violation> check_gguf(Reader& reader) {
  BufferedReader buffered(reader);
  Cursor c(buffered);

  // Rule 1.
  std::string magic;
  std::uint32_t version = 0;
  if (!c.bytes(4, magic) || !c.u32(version)) {
    return gguf_violation(1, "the file is " + std::to_string(c.size()) +
                                 " bytes, too short for the magic and version (8 bytes)");
  }
  if (magic != "GGUF") {
    return gguf_violation(1, "the file begins with " + quote_name(magic) + ", not 'GGUF'");
  }
  if (version != 0 && (version & 0xFFFF) == 0) {
    return gguf_violation(1, "the version reads as " + std::to_string(version) +
                                 ": a byte-swapped (big-endian) GGUF file, which is not supported");
  }
  if (version != 2 && version != 3) {
    return gguf_violation(1, "version " + std::to_string(version) + " is not supported (2 or 3)");
  }

  // Rule 2.
  std::uint64_t tensor_count = 0, kv_count = 0;
  if (!c.u64(tensor_count) || !c.u64(kv_count)) {
    return gguf_violation(2, "the file is " + std::to_string(c.size()) +
                                 " bytes, too short for tensor_count and kv_count (24 bytes)");
  }
  const std::uint64_t rest = c.remaining();
  if (tensor_count > rest / kMinTensorInfoSize) {
    return gguf_violation(2, "tensor_count " + std::to_string(tensor_count) +
                                 " is implausible: each tensor info takes at least " +
                                 std::to_string(kMinTensorInfoSize) + " bytes and only " +
                                 std::to_string(rest) + " bytes follow the header");
  }
  if (kv_count > rest / kMinKvSize) {
    return gguf_violation(2, "kv_count " + std::to_string(kv_count) +
                                 " is implausible: each key/value takes at least " +
                                 std::to_string(kMinKvSize) + " bytes and only " +
                                 std::to_string(rest) + " bytes follow the header");
  }
  if (tensor_count * kMinTensorInfoSize + kv_count * kMinKvSize > rest) {
    return gguf_violation(2, std::to_string(tensor_count) + " tensor infos and " +
                                 std::to_string(kv_count) +
                                 " key/values are implausible: they take at least " +
                                 std::to_string(tensor_count * kMinTensorInfoSize +
                                                kv_count * kMinKvSize) +
                                 " bytes and only " + std::to_string(rest) +
                                 " bytes follow the header");
  }

  // Rules 3 and 4.
  std::uint64_t alignment = kDefaultAlignment;
  std::string key;
  for (std::uint64_t i = 0; i < kv_count; ++i) {
    const std::string which = "key/value #" + std::to_string(i);
    std::uint64_t key_len = 0;
    if (!c.u64(key_len)) {
      return gguf_violation(3, which + ": its key length runs past the end (" + ends_at(c) + ")");
    }
    if (key_len > kGgufMaxKeyLength) {
      return gguf_violation(3, which + " has a key of " + std::to_string(key_len) +
                                   " bytes, over the limit of " +
                                   std::to_string(kGgufMaxKeyLength));
    }
    if (!c.bytes(key_len, key)) {
      return gguf_violation(3, which + ": its key of " + std::to_string(key_len) +
                                   " bytes runs past the end (" + ends_at(c) + ")");
    }
    const std::string named = which + " (" + quote_name(key) + ")";
    std::uint32_t type = 0;
    if (!c.u32(type)) {
      return gguf_violation(3, named + ": its value type runs past the end (" + ends_at(c) + ")");
    }
    if (type >= kValueTypeCount) {
      return gguf_violation(3, named + " has the value type " + std::to_string(type) +
                                   ", not 0-12");
    }
    const std::uint64_t value_at = c.pos();
    if (auto err = skip_value(c, type, 0); !err.empty()) {
      return gguf_violation(3, named + ": " + err);
    }
    if (key == "general.alignment") {
      if (type != kUint32) {
        return gguf_violation(4, std::string("general.alignment has the value type ") +
                                     kValueTypeNames[type] + " (" + std::to_string(type) +
                                     "), not UINT32 (4)");
      }
      unsigned char b[4];
      if (!buffered.read(value_at, b, 4)) {
        return gguf_violation(3, named + ": its value runs past the end");
      }
      const std::uint32_t value = static_cast<std::uint32_t>(b[0]) |
                                  static_cast<std::uint32_t>(b[1]) << 8 |
                                  static_cast<std::uint32_t>(b[2]) << 16 |
                                  static_cast<std::uint32_t>(b[3]) << 24;
      if (value == 0 || (value & (value - 1)) != 0) {
        return gguf_violation(4, "general.alignment is " + std::to_string(value) +
                                     ", not a power of two");
      }
      alignment = value;
    }
  }

  // Rule 5: the tensor infos. Offsets are checked as they come; since they must increase, the
  // last tensor is the one whose end must fit in the file.
  std::uint64_t next = 0;       // where the next tensor must begin (exactly, when `exact`)
  bool exact = true;            // false after a tensor whose byte size is not computed
  std::string last_name;
  std::uint64_t last_offset = 0, last_size = 0;
  bool last_sized = false;
  std::string name;
  for (std::uint64_t i = 0; i < tensor_count; ++i) {
    const std::string which = "tensor info #" + std::to_string(i);
    std::uint64_t name_len = 0;
    if (!c.u64(name_len)) {
      return gguf_violation(5, which + ": its name length runs past the end (" + ends_at(c) + ")");
    }
    if (name_len > kGgufMaxTensorName) {
      return gguf_violation(5, which + " has a name of " + std::to_string(name_len) +
                                   " bytes, over the limit of " +
                                   std::to_string(kGgufMaxTensorName));
    }
    if (!c.bytes(name_len, name)) {
      return gguf_violation(5, which + ": its name runs past the end (" + ends_at(c) + ")");
    }
    const std::string named = "tensor " + quote_name(name);
    std::uint32_t n_dims = 0;
    if (!c.u32(n_dims)) {
      return gguf_violation(5, named + ": n_dims runs past the end (" + ends_at(c) + ")");
    }
    if (n_dims > kGgufMaxDims) {
      return gguf_violation(5, named + " has " + std::to_string(n_dims) +
                                   " dimensions, over the limit of " +
                                   std::to_string(kGgufMaxDims));
    }
    std::uint64_t elements = 1, ne0 = 1;
    bool overflow = false;
    for (std::uint32_t d = 0; d < n_dims; ++d) {
      std::uint64_t dim = 0;
      if (!c.u64(dim)) {
        return gguf_violation(5, named + ": its dimensions run past the end (" + ends_at(c) + ")");
      }
      if (dim == 0) {
        return gguf_violation(5, named + " has dimension " + std::to_string(d) +
                                     " of size 0; dimensions must be at least 1");
      }
      if (d == 0) ne0 = dim;
      if (__builtin_mul_overflow(elements, dim, &elements) ||
          elements > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        overflow = true;
      }
    }
    if (overflow) {
      return gguf_violation(5, named + ": the product of its dimensions overflows 63 bits");
    }
    std::uint32_t type = 0;
    std::uint64_t offset = 0;
    if (!c.u32(type) || !c.u64(offset)) {
      return gguf_violation(5, named + ": its type and offset run past the end (" + ends_at(c) +
                                   ")");
    }
    if (type >= kGgmlTypeCount || kGgmlTypes[type].name == nullptr) {
      return gguf_violation(5, named + " has the type " + std::to_string(type) +
                                   ", not a ggml tensor type (removed or unknown)");
    }
    const GgmlType& t = kGgmlTypes[type];
    if (offset % alignment != 0) {
      return gguf_violation(5, named + " is at offset " + std::to_string(offset) +
                                   " of the data section, not a multiple of the alignment " +
                                   std::to_string(alignment));
    }
    if (exact && offset != next && i == 0) {
      return gguf_violation(5, named + " is at offset " + std::to_string(offset) +
                                   " of the data section; the first tensor must be at 0");
    }
    if (exact && offset != next) {
      return gguf_violation(5, named + " is at offset " + std::to_string(offset) +
                                   " of the data section but the tensors before it end at " +
                                   std::to_string(next) + " (padded to " +
                                   std::to_string(alignment) + ")");
    }
    if (!exact && offset < next) {
      return gguf_violation(5, named + " is at offset " + std::to_string(offset) +
                                   " of the data section, before the end of the tensor before it"
                                   " (at least " + std::to_string(next) + ")");
    }
    std::uint64_t bytes = 0;
    if (t.block != 0) {
      if (ne0 % t.block != 0) {
        return gguf_violation(5, named + " of type " + t.name + " has " + std::to_string(ne0) +
                                     " elements in its first dimension, not a multiple of the"
                                     " block size " + std::to_string(t.block));
      }
      std::uint64_t end = 0;
      if (__builtin_mul_overflow(elements / t.block, static_cast<std::uint64_t>(t.bytes), &bytes) ||
          __builtin_add_overflow(offset, bytes, &end) || end > c.size()) {
        return gguf_violation(5, named + " of type " + t.name + " with " +
                                     std::to_string(elements) + " elements at offset " +
                                     std::to_string(offset) + " ends past the end of the file (" +
                                     std::to_string(c.size()) + " bytes)");
      }
      next = align_up(end, alignment);
      exact = true;
    } else {
      if (offset >= c.size()) {
        return gguf_violation(5, named + " is at offset " + std::to_string(offset) +
                                     " of the data section, past the end of the file (" +
                                     std::to_string(c.size()) + " bytes)");
      }
      next = align_up(offset + 1, alignment);
      exact = false;
    }
    last_name = named;
    last_offset = offset;
    last_size = bytes;
    last_sized = t.block != 0;
  }

  // Rule 5: the data section.
  if (tensor_count == 0) return std::nullopt;
  const std::uint64_t data_start = align_up(c.pos(), alignment);
  if (data_start > c.size()) {
    return gguf_violation(5, "the data section starts at byte " + std::to_string(data_start) +
                                 " (the end of the tensor infos, " + std::to_string(c.pos()) +
                                 ", padded to " + std::to_string(alignment) +
                                 ") but the file is " + std::to_string(c.size()) + " bytes");
  }
  const std::uint64_t data_size = c.size() - data_start;
  if (last_sized && (last_offset > data_size || last_size > data_size - last_offset)) {
    return gguf_violation(5, last_name + " ends at byte " +
                                 std::to_string(data_start + last_offset + last_size) +
                                 " of the file (data section at " + std::to_string(data_start) +
                                 ", offset " + std::to_string(last_offset) + ", " +
                                 std::to_string(last_size) + " bytes) but the file is " +
                                 std::to_string(c.size()) + " bytes");
  }
  if (!last_sized && last_offset >= data_size) {
    return gguf_violation(5, last_name + " begins at byte " +
                                 std::to_string(data_start + last_offset) +
                                 " of the file (data section at " + std::to_string(data_start) +
                                 ", offset " + std::to_string(last_offset) +
                                 ") but the file is " + std::to_string(c.size()) + " bytes");
  }
  return std::nullopt;
}

}  // namespace modelzoo::formats
