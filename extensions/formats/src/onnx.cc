// ONNX: rules 1-4 of docs/extensions.md, by walking the protobuf wire format by hand. Reads the keys and
// lengths of the top-level fields, of the graph's fields and of its initializers (through a
// window of 8 KiB), and the external_data entries; every other payload (raw_data, nodes) is
// skipped by its length, never read.
//
// Pass 1 walks the top-level fields (rules 2 and 1) and then checks rule 3; pass 2 walks each
// graph's initializers (rule 4; a malformed nested message there is a rule 2 violation).
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>

#include "modelzoo/formats/formats.h"

namespace modelzoo::formats {
namespace {

Violation onnx_violation(int rule, std::string message) {
  return Violation{"onnx", "onnx." + std::to_string(rule), std::move(message)};
}

constexpr std::uint32_t kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5;

// The wire type each ModelProto field has (rule 1), or -1 for a field ModelProto does not have.
int model_field_wire_type(std::uint32_t number) {
  switch (number) {
    case 1:  // ir_version
    case 5:  // model_version
      return kVarint;
    case 2: case 3: case 4: case 6:  // producer_name, producer_version, domain, doc_string
    case 7:                          // graph
    case 8:                          // opset_import
    case 14:                         // metadata_props
    case 20:                         // training_info
    case 25:                         // functions
    case 26:                         // configuration
      return kLen;
    default:
      return -1;
  }
}

const char* model_field_name(std::uint32_t number) {
  switch (number) {
    case 1: return "ir_version";
    case 2: return "producer_name";
    case 3: return "producer_version";
    case 4: return "domain";
    case 5: return "model_version";
    case 6: return "doc_string";
    case 7: return "graph";
    case 8: return "opset_import";
    case 14: return "metadata_props";
    case 20: return "training_info";
    case 25: return "functions";
    case 26: return "configuration";
    default: return "?";
  }
}

// Field numbers used below.
constexpr std::uint32_t kModelIrVersion = 1, kModelGraph = 7, kModelOpsetImport = 8;
constexpr std::uint32_t kGraphInitializer = 5;
constexpr std::uint32_t kTensorName = 8, kTensorExternalData = 13, kTensorDataLocation = 14;
constexpr std::uint32_t kEntryKey = 1, kEntryValue = 2;
constexpr std::uint64_t kDataLocationExternal = 1;
constexpr std::uint64_t kMaxLocation = 4096;  // PATH_MAX

struct Field {
  std::uint64_t at = 0;  // offset of the key
  std::uint32_t number = 0;
  std::uint32_t wire = 0;
  std::uint64_t value = 0;  // wire type 0
  std::uint64_t begin = 0;  // wire type 2: the payload [begin, end)
  std::uint64_t end = 0;
};

class Walker {
 public:
  explicit Walker(Reader& reader) : reader_(reader) {}

  // Reads the field at `pos` of a message ending at `limit` (`where` names that message in
  // errors) and moves `pos` past it. Returns what is wrong (rule 2), or an empty string.
  std::string next(std::uint64_t& pos, std::uint64_t limit, const char* where, Field& f) {
    f = Field{};
    f.at = pos;
    std::uint64_t key = 0;
    if (auto err = varint(pos, limit, where, key); !err.empty()) return err;
    if (key > 0xFFFFFFFFu) {
      return "the field key at byte " + std::to_string(f.at) + " is " + std::to_string(key) +
             ", beyond 32 bits";
    }
    f.number = static_cast<std::uint32_t>(key >> 3);
    f.wire = static_cast<std::uint32_t>(key & 7);
    auto field = [&f] { return "field " + std::to_string(f.number) + " at byte " +
                               std::to_string(f.at); };
    if (f.number == 0) return "the field at byte " + std::to_string(f.at) + " has number 0";
    switch (f.wire) {
      case kVarint:
        return varint(pos, limit, where, f.value);
      case kFixed64:
      case kFixed32: {
        const std::uint64_t n = f.wire == kFixed64 ? 8 : 4;
        if (limit - pos < n) {
          return field() + " has a " + std::to_string(n) + "-byte value that runs past the end of " +
                 where + " (byte " + std::to_string(limit) + ")";
        }
        pos += n;
        return {};
      }
      case kLen: {
        std::uint64_t len = 0;
        if (auto err = varint(pos, limit, where, len); !err.empty()) return err;
        if (len > limit - pos) {
          return field() + " has length " + std::to_string(len) + ", past the end of " + where +
                 " (its payload starts at byte " + std::to_string(pos) + ", " + where +
                 " ends at byte " + std::to_string(limit) + ")";
        }
        f.begin = pos;
        f.end = pos + len;
        pos = f.end;
        return {};
      }
      case 3:
      case 4:
        return field() + " has wire type " + std::to_string(f.wire) +
               " (a group), which ONNX files do not use";
      default:
        return field() + " has wire type " + std::to_string(f.wire) +
               ", which protobuf does not define";
    }
  }

  // Reads [begin, end) if at most `max` bytes.
  bool string(const Field& f, std::uint64_t max, std::string& out) {
    if (f.end - f.begin > max) return false;
    out.resize(static_cast<std::size_t>(f.end - f.begin));
    return reader_.read(f.begin, out.data(), out.size());
  }

 private:
  std::string varint(std::uint64_t& pos, std::uint64_t limit, const char* where,
                     std::uint64_t& out) {
    const std::uint64_t start = pos;
    out = 0;
    for (int i = 0; i < 10; ++i) {
      unsigned char b = 0;
      if (pos >= limit || !reader_.read(pos, &b, 1)) {
        return "a varint at byte " + std::to_string(start) + " runs past the end of " + where +
               " (byte " + std::to_string(limit) + ")";
      }
      ++pos;
      if (i == 9 && b > 1) {
        return "a varint at byte " + std::to_string(start) + " overflows 64 bits";
      }
      out |= static_cast<std::uint64_t>(b & 0x7f) << (7 * i);
      if ((b & 0x80) == 0) return {};
    }
    return "a varint at byte " + std::to_string(start) + " is longer than 10 bytes";
  }

  Reader& reader_;
};

// A strict unsigned decimal: digits only, no sign, no overflow.
bool parse_decimal(const std::string& s, std::uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    if (__builtin_mul_overflow(out, 10u, &out) ||
        __builtin_add_overflow(out, static_cast<std::uint64_t>(c - '0'), &out)) {
      return false;
    }
  }
  return true;
}

// Why `location` may not be used as a path inside the model's directory, or "".
std::string unsafe_location(const std::string& location) {
  if (location.empty()) return "is empty";
  if (location.find('\0') != std::string::npos) return "contains a NUL byte";
  if (location.size() > kMaxLocation) {
    return "is " + std::to_string(location.size()) + " bytes long, over " +
           std::to_string(kMaxLocation);
  }
  if (location.front() == '/' || location.front() == '\\' ||
      (location.size() >= 2 && location[1] == ':')) {
    return "is an absolute path; external data must be inside the model's directory";
  }
  std::size_t start = 0;
  while (start <= location.size()) {
    std::size_t sep = location.find_first_of("/\\", start);
    if (sep == std::string::npos) sep = location.size();
    if (location.compare(start, sep - start, "..") == 0) {
      return "has a '..' component; external data must be inside the model's directory";
    }
    start = sep + 1;
  }
  return {};
}

struct Initializer {
  std::string name;
  std::uint64_t data_location = 0;
  bool has_external_data = false;
  std::optional<std::string> location, offset, length;
  std::string bad_entry;  // an entry too long to read
};

class OnnxChecker {
 public:
  OnnxChecker(Reader& reader, const ModelFileLookup& lookup)
      : size_(reader.size()), buffered_(reader, 8 * 1024), walker_(buffered_), lookup_(lookup) {}

  std::optional<Violation> run() {
    // Pass 1: rules 2 and 1, then 3.
    bool has_ir_version = false, has_graph = false, has_opset = false;
    std::uint64_t ir_version = 0;
    Field f;
    for (std::uint64_t pos = 0; pos < size_;) {
      if (auto err = walker_.next(pos, size_, "the file", f); !err.empty()) {
        return onnx_violation(2, err);
      }
      const int want = model_field_wire_type(f.number);
      if (want < 0) {
        return onnx_violation(1, "field " + std::to_string(f.number) + " at byte " +
                                     std::to_string(f.at) +
                                     " is not a field of ModelProto (1-8, 14, 20, 25, 26)");
      }
      if (static_cast<std::uint32_t>(want) != f.wire) {
        return onnx_violation(1, "field " + std::to_string(f.number) + " (" +
                                     model_field_name(f.number) + ") at byte " +
                                     std::to_string(f.at) + " has wire type " +
                                     std::to_string(f.wire) + ", not " + std::to_string(want) +
                                     (want == kVarint ? " (varint)" : " (length-delimited)"));
      }
      if (f.number == kModelIrVersion) {
        has_ir_version = true;
        ir_version = f.value;
      }
      if (f.number == kModelGraph) has_graph = true;
      if (f.number == kModelOpsetImport) has_opset = true;
    }
    if (!has_ir_version) {
      return onnx_violation(3, "ir_version (field 1) is missing; it must be " +
                                   std::to_string(kOnnxMinIrVersion) + "-" +
                                   std::to_string(kOnnxMaxIrVersion));
    }
    if (ir_version < kOnnxMinIrVersion || ir_version > kOnnxMaxIrVersion) {
      return onnx_violation(3, "ir_version " + std::to_string(ir_version) + " is not in " +
                                   std::to_string(kOnnxMinIrVersion) + "-" +
                                   std::to_string(kOnnxMaxIrVersion));
    }
    if (!has_graph) return onnx_violation(3, "the model has no graph (field 7)");
    if (ir_version >= 3 && !has_opset) {
      return onnx_violation(3, "ir_version " + std::to_string(ir_version) +
                                   " requires an opset_import (field 8) and the model has none");
    }

    // Pass 2: rule 4 in each graph's initializers.
    for (std::uint64_t pos = 0; pos < size_;) {
      walker_.next(pos, size_, "the file", f);  // valid: pass 1 read it
      if (f.number != kModelGraph) continue;
      if (auto v = graph(f.begin, f.end)) return v;
    }
    return std::nullopt;
  }

 private:
  std::optional<Violation> graph(std::uint64_t pos, std::uint64_t limit) {
    Field f;
    while (pos < limit) {
      if (auto err = walker_.next(pos, limit, "the graph", f); !err.empty()) {
        return onnx_violation(2, "in the graph: " + err);
      }
      if (f.number != kGraphInitializer) continue;
      if (f.wire != kLen) {
        return onnx_violation(2, "in the graph: field 5 (initializer) at byte " +
                                     std::to_string(f.at) + " has wire type " +
                                     std::to_string(f.wire) + ", not 2 (length-delimited)");
      }
      if (auto v = initializer(f.begin, f.end)) return v;
    }
    return std::nullopt;
  }

  std::optional<Violation> initializer(std::uint64_t pos, std::uint64_t limit) {
    const std::uint64_t at = pos;
    Initializer t;
    Field f;
    while (pos < limit) {
      if (auto err = walker_.next(pos, limit, "an initializer", f); !err.empty()) {
        return onnx_violation(2, "in the initializer at byte " + std::to_string(at) + ": " + err);
      }
      const char* want_name = nullptr;
      std::uint32_t want = kLen;
      if (f.number == kTensorName) want_name = "name";
      if (f.number == kTensorExternalData) want_name = "external_data";
      if (f.number == kTensorDataLocation) {
        want_name = "data_location";
        want = kVarint;
      }
      if (want_name == nullptr) continue;
      if (f.wire != want) {
        return onnx_violation(2, "in the initializer at byte " + std::to_string(at) + ": field " +
                                     std::to_string(f.number) + " (" + want_name + ") at byte " +
                                     std::to_string(f.at) + " has wire type " +
                                     std::to_string(f.wire) + ", not " + std::to_string(want));
      }
      if (f.number == kTensorName) {
        if (!walker_.string(f, 256, t.name)) t.name = "(a name over 256 bytes)";
      } else if (f.number == kTensorDataLocation) {
        t.data_location = f.value;
      } else if (auto v = entry(f.begin, f.end, at, t)) {
        return v;
      }
    }
    if (t.data_location != kDataLocationExternal && !t.has_external_data) return std::nullopt;
    return external(t);
  }

  // One StringStringEntryProto of external_data.
  std::optional<Violation> entry(std::uint64_t pos, std::uint64_t limit, std::uint64_t at,
                                 Initializer& t) {
    t.has_external_data = true;
    std::string key, value;
    bool has_value = false;
    Field f;
    while (pos < limit) {
      if (auto err = walker_.next(pos, limit, "an external_data entry", f); !err.empty()) {
        return onnx_violation(2, "in the initializer at byte " + std::to_string(at) + ": " + err);
      }
      if (f.number != kEntryKey && f.number != kEntryValue) continue;
      if (f.wire != kLen) {
        return onnx_violation(2, "in the initializer at byte " + std::to_string(at) +
                                     ": an external_data entry's field " +
                                     std::to_string(f.number) + " has wire type " +
                                     std::to_string(f.wire) + ", not 2");
      }
      std::string& out = f.number == kEntryKey ? key : value;
      if (!walker_.string(f, kMaxLocation + 1, out)) {
        out.clear();
        if (t.bad_entry.empty()) {
          t.bad_entry = "an external_data " + std::string(f.number == kEntryKey ? "key" : "value") +
                        " of " + std::to_string(f.end - f.begin) + " bytes";
        }
      }
      if (f.number == kEntryValue) has_value = true;
    }
    if (!has_value) value.clear();
    if (key == "location") t.location = value;
    if (key == "offset") t.offset = value;
    if (key == "length") t.length = value;
    return std::nullopt;
  }

  std::optional<Violation> external(const Initializer& t) {
    const std::string who = "initializer " + quote_name(t.name);
    if (!t.bad_entry.empty()) {
      return onnx_violation(4, who + " has " + t.bad_entry + ", too long for a location");
    }
    if (!t.location) {
      return onnx_violation(4, who + " keeps its data in an external file but names no location");
    }
    const std::string& location = *t.location;
    if (auto why = unsafe_location(location); !why.empty()) {
      return onnx_violation(4, who + ": the external data location " + quote_name(location, 256) +
                                   " " + why);
    }
    std::uint64_t offset = 0, length = 0;
    if (t.offset && !parse_decimal(*t.offset, offset)) {
      return onnx_violation(4, who + ": the external data offset " + quote_name(*t.offset) +
                                   " is not a decimal number");
    }
    if (t.length && !parse_decimal(*t.length, length)) {
      return onnx_violation(4, who + ": the external data length " + quote_name(*t.length) +
                                   " is not a decimal number");
    }
    const std::string file = "external data file " + quote_name(location, 256);
    auto it = files_.find(location);
    if (it == files_.end()) it = files_.emplace(location, examine(location)).first;
    const FileState& state = it->second;
    if (!state.problem.empty()) return onnx_violation(4, who + ": " + file + " " + state.problem);
    const std::uint64_t fsize = state.size;
    if (offset > fsize) {
      return onnx_violation(4, who + " reads " + file + " from offset " + std::to_string(offset) +
                                   " but the file is " + std::to_string(fsize) + " bytes");
    }
    if (t.length && length > fsize - offset) {
      return onnx_violation(4, who + " reads bytes [" + std::to_string(offset) + ", " +
                                   std::to_string(offset) + " + " + std::to_string(length) +
                                   ") of " + file + " but the file is " + std::to_string(fsize) +
                                   " bytes");
    }
    return std::nullopt;
  }

  struct FileState {
    std::string problem;  // why it cannot be used, or ""
    std::uint64_t size = 0;
  };

  FileState examine(const std::string& location) {
    std::optional<std::filesystem::path> path;
    if (lookup_) path = lookup_(location);
    if (!path) return {"is not part of the model", 0};
    struct stat st {};
    if (::stat(path->c_str(), &st) != 0) {
      int err = errno;
      return {"cannot be examined: " + std::string(std::strerror(err)), 0};
    }
    if (!S_ISREG(st.st_mode)) return {"is not a regular file", 0};
    return {"", static_cast<std::uint64_t>(st.st_size)};
  }

  std::uint64_t size_;
  BufferedReader buffered_;
  Walker walker_;
  const ModelFileLookup& lookup_;
  std::unordered_map<std::string, FileState> files_;
};

}  // namespace

std::optional<Violation> check_onnx(Reader& reader, const ModelFileLookup& lookup) {
  return OnnxChecker(reader, lookup).run();
}

}  // namespace modelzoo::formats
