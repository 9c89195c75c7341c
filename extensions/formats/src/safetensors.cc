// safetensors: rules 1-6 of docs/extensions.md. Reads bytes [0, 8 + N) and nothing else.
//
// The JSON header is read by two SAX passes over nlohmann's parser, never into a DOM: the first
// checks the syntax, the nesting depth and duplicate keys (rule 2; nlohmann's DOM parser would
// silently keep the last of two equal keys), the second checks the structure (rules 3 and 4) and
// keeps only what rules 5 and 6 need: per tensor its name, dtype, element count and offsets.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/formats/formats.h"

namespace modelzoo::formats {
namespace {

using json = nlohmann::json;

// Deeper than any real header (3 levels: top, tensor, shape); bounds the parser's stacks.
constexpr std::size_t kMaxJsonDepth = 64;

Violation st_violation(int rule, std::string message) {
  return Violation{"safetensors", "safetensors." + std::to_string(rule), std::move(message)};
}

struct Dtype {
  const char* name;
  unsigned bits;
};
// Rule 4 (docs/extensions.md), with each type's width in bits (rule 5).
constexpr Dtype kDtypes[] = {
    {"BOOL", 8},        {"U8", 8},           {"I8", 8},           {"I16", 16},
    {"U16", 16},        {"F16", 16},         {"BF16", 16},        {"I32", 32},
    {"U32", 32},        {"F32", 32},         {"F64", 64},         {"I64", 64},
    {"U64", 64},        {"C64", 64},         {"F8_E5M2", 8},      {"F8_E4M3", 8},
    {"F8_E8M0", 8},     {"F8_E4M3FNUZ", 8},  {"F8_E5M2FNUZ", 8},  {"F4", 4},
    {"F6_E2M3", 6},     {"F6_E3M2", 6},
};

const Dtype* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

// Offset of the first byte that does not start a well-formed UTF-8 sequence (Unicode table 3-7:
// no overlong forms, no surrogates, nothing above U+10FFFF), or npos.
std::size_t invalid_utf8_at(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return i;
    }
    if (n - i < len) return i;
    auto c1 = static_cast<unsigned char>(s[i + 1]);
    if (c1 < lo || c1 > hi) return i;
    for (std::size_t k = 2; k < len; ++k) {
      auto ck = static_cast<unsigned char>(s[i + k]);
      if (ck < 0x80 || ck > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// nlohmann's error text without its "[json.exception...] " prefix, printable and short.
std::string parse_error_text(const nlohmann::detail::exception& ex) {
  std::string text = ex.what();
  if (auto p = text.find("] "); p != std::string::npos && text.rfind("[json.exception", 0) == 0) {
    text = text.substr(p + 2);
  }
  if (text.size() > 200) text = text.substr(0, 200) + "...";
  for (auto& c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return text;
}

// Pass 1: syntax, depth, duplicate keys (rule 2).
class SyntaxPass final : public nlohmann::json_sax<json> {
 public:
  std::optional<Violation> found;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    if (!enter()) return false;
    keys_.emplace_back();
    is_object_.push_back(true);
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) {
      found = st_violation(2, "the header has the key " + quote_name(k) + " twice in one object");
      return false;
    }
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    is_object_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (!enter()) return false;
    is_object_.push_back(false);
    return true;
  }
  bool end_array() override {
    is_object_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    found = st_violation(2, "the header is not valid JSON (near byte " + std::to_string(position) +
                                " of the header): " + parse_error_text(ex));
    return false;
  }

 private:
  bool enter() {
    if (is_object_.size() >= kMaxJsonDepth) {
      found = st_violation(2, "the header nests JSON values deeper than " +
                                   std::to_string(kMaxJsonDepth) + " levels");
      return false;
    }
    return true;
  }

  std::vector<std::unordered_set<std::string>> keys_;  // one per open object
  std::vector<bool> is_object_;                         // one per open container
};

struct Tensor {
  std::string name;
  const Dtype* dtype = nullptr;
  std::uint64_t elements = 1;
  bool elements_overflow = false;
  std::size_t rank = 0;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// Pass 2: structure (rules 3 and 4), collecting the tensors. Runs only on valid JSON.
class StructurePass final : public nlohmann::json_sax<json> {
 public:
  std::optional<Violation> found;
  std::vector<Tensor> tensors;

  bool null() override { return primitive("null"); }
  bool boolean(bool) override { return primitive("a boolean"); }
  bool number_integer(number_integer_t v) override {
    if (v >= 0) return unsigned_value(static_cast<std::uint64_t>(v));
    return primitive("a negative number (" + std::to_string(v) + ")");
  }
  bool number_unsigned(number_unsigned_t v) override { return unsigned_value(v); }
  bool number_float(number_float_t, const string_t& text) override {
    return primitive("a non-integer number (" + text.substr(0, 40) + ")");
  }
  bool string(string_t& s) override {
    switch (top()) {
      case In::Metadata:
        return true;
      case In::Tensor:
        if (key_ == "dtype") {
          have_dtype_ = true;
          current_.dtype = find_dtype(s);
          if (current_.dtype == nullptr) {
            return fail(4, "tensor " + quote_name(current_.name) + " has the unknown dtype " +
                               quote_name(s) + " (formats.md rule 4 lists the known ones)");
          }
          return true;
        }
        return primitive("a string");
      default:
        return primitive("a string");
    }
  }
  bool binary(binary_t&) override { return primitive("binary"); }

  bool start_object(std::size_t) override {
    switch (top()) {
      case In::None:
        stack_.push_back(In::Top);
        return true;
      case In::Top:
        if (key_ == "__metadata__") {
          stack_.push_back(In::Metadata);
          return true;
        }
        stack_.push_back(In::Tensor);
        current_ = Tensor{};
        current_.name = key_;
        have_dtype_ = have_shape_ = have_offsets_ = false;
        return true;
      case In::Skip:
        stack_.push_back(In::Skip);
        return true;
      default:
        return wrong("an object");
    }
  }
  bool key(string_t& k) override {
    if (top() == In::Top || top() == In::Metadata || top() == In::Tensor) key_ = k;
    return true;
  }
  bool end_object() override {
    In done = top();
    stack_.pop_back();
    if (done != In::Tensor) return true;
    const char* missing = !have_dtype_ ? "dtype" : !have_shape_ ? "shape"
                        : !have_offsets_ ? "data_offsets" : nullptr;
    if (missing != nullptr) {
      return fail(4, "tensor " + quote_name(current_.name) + " has no '" + missing + "'");
    }
    tensors.push_back(std::move(current_));
    return true;
  }
  bool start_array(std::size_t) override {
    switch (top()) {
      case In::Tensor:
        if (key_ == "shape") {
          stack_.push_back(In::Shape);
          have_shape_ = true;
          return true;
        }
        if (key_ == "data_offsets") {
          stack_.push_back(In::Offsets);
          offsets_seen_ = 0;
          have_offsets_ = true;
          return true;
        }
        return wrong("an array");
      case In::Skip:
        stack_.push_back(In::Skip);
        return true;
      default:
        return wrong("an array");
    }
  }
  bool end_array() override {
    In done = top();
    stack_.pop_back();
    if (done == In::Offsets && offsets_seen_ != 2) {
      return fail(4, "tensor " + quote_name(current_.name) + " has " + std::to_string(offsets_seen_) +
                         " data_offsets, not 2 ([begin, end])");
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // pass 1 saw valid JSON; nothing to add
  }

 private:
  enum class In { None, Top, Metadata, Tensor, Shape, Offsets, Skip };

  In top() const { return stack_.empty() ? In::None : stack_.back(); }

  bool fail(int rule, std::string message) {
    found = st_violation(rule, std::move(message));
    return false;
  }

  bool unsigned_value(std::uint64_t v) {
    switch (top()) {
      case In::Shape:
        ++current_.rank;
        if (!current_.elements_overflow) {
          std::uint64_t product = 0;
          if (__builtin_mul_overflow(current_.elements, v, &product)) {
            current_.elements_overflow = true;
          } else {
            current_.elements = product;
          }
        }
        return true;
      case In::Offsets:
        if (offsets_seen_ == 0) current_.begin = v;
        if (offsets_seen_ == 1) current_.end = v;
        if (++offsets_seen_ > 2) {
          return fail(4, "tensor " + quote_name(current_.name) +
                             " has more than 2 data_offsets ([begin, end])");
        }
        return true;
      default:
        return primitive("a number");
    }
  }

  // A value that is not a container, described by `what`, where the context wants something.
  bool primitive(const std::string& what) {
    if (top() == In::Skip) return true;
    if (top() == In::Tensor && key_ != "dtype" && key_ != "shape" && key_ != "data_offsets") {
      return true;  // other keys of a tensor entry are ignored, as by the reference parser
    }
    return wrong(what);
  }

  // `what` found where the context wants something else.
  bool wrong(const std::string& what) {
    switch (top()) {
      case In::Top:
        if (key_ == "__metadata__") return fail(3, "__metadata__ is " + what + ", not an object");
        return fail(4, "tensor " + quote_name(key_) + " is " + what + ", not an object");
      case In::Metadata:
        return fail(3, "__metadata__ maps " + quote_name(key_) + " to " + what +
                           "; its values must be strings");
      case In::Tensor:
        if (key_ == "dtype") {
          return fail(4, "tensor " + quote_name(current_.name) + " has a dtype that is " + what +
                             ", not a string");
        }
        if (key_ != "shape" && key_ != "data_offsets") {  // an ignored key holding a container
          stack_.push_back(In::Skip);
          return true;
        }
        return fail(4, "tensor " + quote_name(current_.name) + " has a " + key_ + " that is " + what +
                           ", not a list of integers");
      case In::Shape:
        return fail(4, "tensor " + quote_name(current_.name) + " has a shape dimension that is " +
                           what + ", not a non-negative integer");
      case In::Offsets:
        return fail(4, "tensor " + quote_name(current_.name) + " has a data_offsets entry that is " +
                           what + ", not a non-negative integer");
      default:
        return fail(2, "the header is " + what + ", not a JSON object");
    }
  }

  std::vector<In> stack_;
  std::string key_;
  Tensor current_;
  bool have_dtype_ = false, have_shape_ = false, have_offsets_ = false;
  int offsets_seen_ = 0;
};

}  // namespace

std::optional<Violation> check_safetensors(Reader& reader) {
  const std::uint64_t size = reader.size();

  // Rule 1.
  unsigned char prefix[8];
  if (!reader.read(0, prefix, sizeof prefix)) {
    return st_violation(1, "the file is " + std::to_string(size) +
                            " bytes, too short for the 8-byte header length");
  }
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[i];
  if (n > kSafetensorsMaxHeader) {
    return st_violation(1, "the header length is " + std::to_string(n) + " bytes, over the limit of " +
                            std::to_string(kSafetensorsMaxHeader));
  }
  if (8 + n > size) {
    return st_violation(1, "the header length is " + std::to_string(n) + " bytes but the file has " +
                            std::to_string(size - 8) + " bytes after the length");
  }

  // Rule 2.
  std::string header(static_cast<std::size_t>(n), '\0');
  if (!reader.read(8, header.data(), header.size())) {
    return st_violation(1, "the header [8, " + std::to_string(8 + n) + ") could not be read");
  }
  if (auto at = invalid_utf8_at(header); at != std::string_view::npos) {
    return st_violation(2, "the header is not valid UTF-8 at byte " + std::to_string(at) +
                            " of the header (file offset " + std::to_string(8 + at) + ")");
  }
  std::string_view text(header);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (text.empty()) {
    return st_violation(2, n == 0 ? "the header is empty (length 0), not a JSON object"
                               : "the header holds only spaces, not a JSON object");
  }
  if (text.front() != '{') {
    return st_violation(2, "the header does not begin with '{' (its first byte is " +
                            quote_name(text.substr(0, 1)) + ")");
  }
  SyntaxPass syntax;
  if (!json::sax_parse(text.begin(), text.end(), &syntax) || syntax.found) {
    if (syntax.found) return syntax.found;
    return st_violation(2, "the header is not valid JSON");
  }
  if (text.back() != '}') {
    return st_violation(2, "the header's JSON object is followed by whitespace other than spaces");
  }

  // Rules 3 and 4.
  StructurePass structure;
  if (!json::sax_parse(text.begin(), text.end(), &structure) || structure.found) {
    if (structure.found) return structure.found;
    return st_violation(2, "the header is not valid JSON");
  }

  // Rule 5.
  auto& tensors = structure.tensors;
  std::sort(tensors.begin(), tensors.end(), [](const Tensor& a, const Tensor& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    if (a.end != b.end) return a.end < b.end;
    return a.name < b.name;
  });
  std::uint64_t expected_begin = 0;
  const Tensor* previous = nullptr;
  for (const auto& t : tensors) {
    const std::string name = quote_name(t.name);
    if (t.begin > t.end) {
      return st_violation(5, "tensor " + name + " has data_offsets [" + std::to_string(t.begin) + ", " +
                              std::to_string(t.end) + "]: it begins after it ends");
    }
    if (t.begin != expected_begin) {
      if (previous == nullptr) {
        return st_violation(5, "the first tensor, " + name + ", begins at " +
                                std::to_string(t.begin) + ", not 0");
      }
      return st_violation(5, "tensor " + quote_name(previous->name) + " ends at " +
                              std::to_string(expected_begin) + " but the next, " + name +
                              ", begins at " + std::to_string(t.begin));
    }
    const std::string dtype = t.dtype->name;
    std::uint64_t bits = 0;
    if (t.elements_overflow || __builtin_mul_overflow(t.elements, t.dtype->bits, &bits)) {
      return st_violation(5, "tensor " + name + ": the size of its shape (" +
                              std::to_string(t.rank) + " dimensions) of " + dtype +
                              " overflows 64 bits");
    }
    if (bits % 8 != 0) {
      return st_violation(5, "tensor " + name + ": " + std::to_string(t.elements) + " elements of " +
                              dtype + " make " + std::to_string(bits) +
                              " bits, not a whole number of bytes");
    }
    const std::uint64_t want = bits / 8;
    if (t.end - t.begin != want) {
      return st_violation(5, "tensor " + name + " has data_offsets [" + std::to_string(t.begin) +
                              ", " + std::to_string(t.end) + "] (" +
                              std::to_string(t.end - t.begin) + " bytes) but " +
                              std::to_string(t.elements) + " elements of " + dtype + " take " +
                              std::to_string(want) + " bytes");
    }
    expected_begin = t.end;
    previous = &t;
  }

  // Rule 6.
  const std::uint64_t data = size - 8 - n;
  if (expected_begin != data) {
    return st_violation(6, "the tensors end at byte " + std::to_string(expected_begin) +
                            " of the data, so the file should be " +
                            (expected_begin > std::numeric_limits<std::uint64_t>::max() - 8 - n
                                 ? std::string("over 2^64")
                                 : std::to_string(8 + n + expected_begin)) +
                            " bytes, but it is " + std::to_string(size));
  }
  return std::nullopt;
}

}  // namespace modelzoo::formats
