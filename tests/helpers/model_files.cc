// Minimal valid and deliberately broken model files (model_files.h).
#include "model_files.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace modelzoo::testing {
namespace {

std::string json_string(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;  // other bytes as they are, valid UTF-8 or not
    }
  }
  return out + "\"";
}

std::uint64_t align_up(std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; }

// Value type ids of GGUF key/values.
constexpr std::uint32_t kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6,
                        kBool = 7, kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12;
// ggml tensor types used here.
constexpr std::uint32_t kTypeF32 = 0, kTypeF16 = 1, kTypeQ4_0 = 2, kTypeQ8_0 = 8, kTypeI8 = 24,
                        kTypeI32 = 26, kTypeBF16 = 30;

std::string f32_bytes(float f) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &f, sizeof bits);
  return le32(bits);
}

std::string f64_bytes(double d) {
  std::uint64_t bits = 0;
  std::memcpy(&bits, &d, sizeof bits);
  return le64(bits);
}

// ONNX field numbers.
namespace onnx {
constexpr std::uint32_t kModelIrVersion = 1, kModelProducerName = 2, kModelGraph = 7,
                        kModelOpsetImport = 8;
constexpr std::uint32_t kOpsetDomain = 1, kOpsetVersion = 2;
constexpr std::uint32_t kGraphNode = 1, kGraphName = 2, kGraphInitializer = 5, kGraphInput = 11,
                        kGraphOutput = 12;
constexpr std::uint32_t kNodeInput = 1, kNodeOutput = 2, kNodeName = 3, kNodeOpType = 4;
constexpr std::uint32_t kTensorDims = 1, kTensorDataType = 2, kTensorName = 8, kTensorRawData = 9,
                        kTensorExternalData = 13, kTensorDataLocation = 14;
constexpr std::uint32_t kEntryKey = 1, kEntryValue = 2;
constexpr std::uint32_t kValueInfoName = 1, kValueInfoType = 2;
constexpr std::uint32_t kTypeTensorType = 1, kTensorTypeElemType = 1, kTensorTypeShape = 2;
constexpr std::uint32_t kShapeDim = 1, kDimValue = 1;
constexpr std::uint64_t kFloat = 1, kExternal = 1;
}  // namespace onnx

ProtoWriter float2_value_info(std::string_view name) {
  ProtoWriter dim;
  dim.varint(onnx::kDimValue, 2);
  ProtoWriter shape;
  shape.message(onnx::kShapeDim, dim);
  ProtoWriter tensor_type;
  tensor_type.varint(onnx::kTensorTypeElemType, onnx::kFloat).message(onnx::kTensorTypeShape, shape);
  ProtoWriter type;
  type.message(onnx::kTypeTensorType, tensor_type);
  ProtoWriter info;
  info.bytes(onnx::kValueInfoName, name).message(onnx::kValueInfoType, type);
  return info;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Encoders.

std::string le32(std::uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::string le64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot create " + p.string());
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

// ---------------------------------------------------------------------------------------------
// safetensors.

std::string safetensors_header(const std::vector<SafetensorsTensor>& tensors,
                               const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::string out = "{";
  bool first = true;
  auto comma = [&] {
    if (!first) out += ",";
    first = false;
  };
  if (!metadata.empty()) {
    comma();
    out += "\"__metadata__\":{";
    for (std::size_t i = 0; i < metadata.size(); ++i) {
      if (i > 0) out += ",";
      out += json_string(metadata[i].first) + ":" + json_string(metadata[i].second);
    }
    out += "}";
  }
  for (const auto& t : tensors) {
    comma();
    out += json_string(t.name) + ":{\"dtype\":" + json_string(t.dtype) + ",\"shape\":[";
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
      if (i > 0) out += ",";
      out += std::to_string(t.shape[i]);
    }
    out += "],\"data_offsets\":[" + std::to_string(t.begin) + "," + std::to_string(t.end) + "]}";
  }
  return out + "}";
}

std::string safetensors_prefix(std::string_view header_json) {
  std::string header(header_json);
  header.append((8 - header.size() % 8) % 8, ' ');
  return le64(header.size()) + header;
}

std::string safetensors_file(std::string_view header_json, std::uint64_t data_size) {
  std::string out = safetensors_prefix(header_json);
  for (std::uint64_t i = 0; i < data_size; ++i) out += static_cast<char>((i * 37 + 11) & 0xff);
  return out;
}

std::string valid_safetensors() {
  // Keys deliberately not in offset order: the checker sorts by begin.
  const std::vector<SafetensorsTensor> tensors = {
      {"model.embed.weight", "F32", {2, 3}, 0, 24},
      {"model.packed", "F4", {2, 4}, 36, 40},  // 8 × 4 bits
      {"model.norm.weight", "F16", {3}, 24, 30},
      {"model.six", "F6_E2M3", {4}, 40, 43},   // 4 × 6 bits
      {"model.mask", "BOOL", {4}, 32, 36},
      {"model.scale", "BF16", {}, 30, 32},     // a scalar
      {"model.empty", "I64", {0, 5}, 43, 43},  // no elements
  };
  return safetensors_file(safetensors_header(tensors, {{"format", "pt"}, {"source", "tests"}}), 43);
}

// ---------------------------------------------------------------------------------------------
// GGUF.

std::string gguf_string(std::string_view s) { return le64(s.size()) + std::string(s); }

std::uint64_t ggml_nbytes(std::uint32_t type, const std::vector<std::uint64_t>& dims) {
  std::uint64_t block = 1, size = 0;
  switch (type) {
    case kTypeF32: size = 4; break;
    case kTypeF16: case kTypeBF16: size = 2; break;
    case kTypeQ4_0: block = 32; size = 18; break;
    case kTypeQ8_0: block = 32; size = 34; break;
    case kTypeI8: size = 1; break;
    case kTypeI32: size = 4; break;
    default: throw std::invalid_argument("ggml_nbytes: type " + std::to_string(type));
  }
  std::uint64_t n = 1;
  for (auto d : dims) n *= d;
  return n / block * size;
}

GgufWriter& GgufWriter::kv(std::string_view key, std::uint32_t type, std::string value) {
  kvs_.push_back(gguf_string(key) + le32(type) + value);
  return *this;
}

GgufWriter& GgufWriter::kv_u32(std::string_view key, std::uint32_t v) {
  return kv(key, kU32, le32(v));
}

GgufWriter& GgufWriter::kv_string(std::string_view key, std::string_view v) {
  return kv(key, kString, gguf_string(v));
}

GgufWriter& GgufWriter::kv_strings(std::string_view key, const std::vector<std::string>& v) {
  std::string value = le32(kString) + le64(v.size());
  for (const auto& s : v) value += gguf_string(s);
  return kv(key, kArray, value);
}

GgufWriter& GgufWriter::tensor(std::string_view name, std::vector<std::uint64_t> dims,
                               std::uint32_t type, std::uint64_t nbytes,
                               std::optional<std::uint64_t> offset) {
  tensors_.push_back(Tensor{std::string(name), std::move(dims), type, nbytes, offset});
  return *this;
}

std::string GgufWriter::head() const {
  std::string out = magic + le32(version) + le64(tensor_count.value_or(tensors_.size())) +
                    le64(kv_count.value_or(kvs_.size()));
  for (const auto& kv : kvs_) out += kv;
  std::uint64_t running = 0;
  for (const auto& t : tensors_) {
    const std::uint64_t offset = t.offset.value_or(align_up(running, alignment));
    out += gguf_string(t.name) + le32(static_cast<std::uint32_t>(t.dims.size()));
    for (auto d : t.dims) out += le64(d);
    out += le32(t.type) + le64(offset);
    running = offset + t.nbytes;
  }
  return out;
}

std::uint64_t GgufWriter::data_start() const { return align_up(head().size(), alignment); }

std::uint64_t GgufWriter::head_size() const { return head().size(); }

std::string GgufWriter::build() const {
  std::string out = head();
  if (tensors_.empty()) return out;  // no data section
  out.resize(align_up(out.size(), alignment), '\0');
  const std::size_t start = out.size();
  std::uint64_t running = 0, end = 0;
  for (const auto& t : tensors_) {
    const std::uint64_t offset = t.offset.value_or(align_up(running, alignment));
    running = offset + t.nbytes;
    end = std::max(end, running);
  }
  out.resize(start + end, '\0');
  for (std::uint64_t i = 0; i < end; ++i) out[start + i] = static_cast<char>((i * 13 + 5) & 0xff);
  return out;
}

std::string valid_gguf() {
  GgufWriter w;
  // A nested array: [[1, 2], ["x"]] (arrays of UINT8 and of STRING).
  const std::string nested = le32(kArray) + le64(2) + le32(kU8) + le64(2) + "\x01\x02" +
                             le32(kString) + le64(1) + gguf_string("x");
  w.kv_string("general.architecture", "llama")
      .kv_string("general.name", "tiny")
      .kv_u32("general.alignment", 32)
      .kv("llama.context_length", kU32, le32(128))
      .kv("general.file_type", kU64, le64(7))
      .kv("test.i8", kI8, "\xff")
      .kv("test.u16", kU16, std::string("\x01\x00", 2))
      .kv("test.i16", kI16, std::string("\xfe\xff", 2))
      .kv("test.i32", kI32, le32(static_cast<std::uint32_t>(-5)))
      .kv("test.f32", kF32, f32_bytes(0.5f))
      .kv("test.bool", kBool, "\x01")
      .kv("test.i64", kI64, le64(static_cast<std::uint64_t>(-9)))
      .kv("test.f64", kF64, f64_bytes(1.5))
      .kv_strings("tokenizer.ggml.tokens", {"<s>", "</s>", "a", ""})
      .kv("tokenizer.ggml.scores", kArray,
          le32(kF32) + le64(2) + f32_bytes(0.0f) + f32_bytes(-1.0f))
      .kv("test.nested", kArray, nested)
      .kv("test.empty_array", kArray, le32(kI32) + le64(0));
  w.tensor("token_embd.weight", {4, 3}, kTypeF32, ggml_nbytes(kTypeF32, {4, 3}))        // 48
      .tensor("blk.0.attn_q.weight", {32, 2}, kTypeQ8_0, ggml_nbytes(kTypeQ8_0, {32, 2}))  // 68
      .tensor("blk.0.ffn.weight", {64}, kTypeQ4_0, ggml_nbytes(kTypeQ4_0, {64}))           // 36
      .tensor("output_norm.weight", {4}, kTypeF16, ggml_nbytes(kTypeF16, {4}));            // 8
  return w.build();
}

// ---------------------------------------------------------------------------------------------
// Protobuf and ONNX.

std::string ProtoWriter::encode_varint(std::uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}

ProtoWriter& ProtoWriter::key(std::uint32_t field, std::uint32_t wire_type) {
  out_ += encode_varint((static_cast<std::uint64_t>(field) << 3) | wire_type);
  return *this;
}

ProtoWriter& ProtoWriter::varint(std::uint32_t field, std::uint64_t v) {
  key(field, 0);
  out_ += encode_varint(v);
  return *this;
}

ProtoWriter& ProtoWriter::bytes(std::uint32_t field, std::string_view b) {
  key(field, 2);
  out_ += encode_varint(b.size());
  out_ += b;
  return *this;
}

ProtoWriter& ProtoWriter::fixed32(std::uint32_t field, std::uint32_t v) {
  key(field, 5);
  out_ += le32(v);
  return *this;
}

ProtoWriter& ProtoWriter::fixed64(std::uint32_t field, std::uint64_t v) {
  key(field, 1);
  out_ += le64(v);
  return *this;
}

ProtoWriter& ProtoWriter::raw(std::string_view b) {
  out_ += b;
  return *this;
}

ProtoWriter onnx_opset(std::uint64_t version) {
  ProtoWriter opset;
  opset.bytes(onnx::kOpsetDomain, "").varint(onnx::kOpsetVersion, version);
  return opset;
}

ProtoWriter onnx_inline_initializer(std::string_view name) {
  ProtoWriter t;
  t.varint(onnx::kTensorDims, 2)
      .varint(onnx::kTensorDataType, onnx::kFloat)
      .bytes(onnx::kTensorName, name)
      .bytes(onnx::kTensorRawData, f32_bytes(1.0f) + f32_bytes(2.0f));
  return t;
}

ProtoWriter onnx_external_initializer(
    std::string_view name, const std::vector<std::pair<std::string, std::string>>& entries) {
  ProtoWriter t;
  t.varint(onnx::kTensorDims, 2)
      .varint(onnx::kTensorDataType, onnx::kFloat)
      .bytes(onnx::kTensorName, name);
  for (const auto& [k, v] : entries) {
    ProtoWriter entry;
    entry.bytes(onnx::kEntryKey, k).bytes(onnx::kEntryValue, v);
    t.message(onnx::kTensorExternalData, entry);
  }
  t.varint(onnx::kTensorDataLocation, onnx::kExternal);
  return t;
}

ProtoWriter onnx_graph(const std::vector<ProtoWriter>& initializers) {
  ProtoWriter node;
  node.bytes(onnx::kNodeInput, "X")
      .bytes(onnx::kNodeInput, "W")
      .bytes(onnx::kNodeOutput, "Y")
      .bytes(onnx::kNodeName, "add")
      .bytes(onnx::kNodeOpType, "Add");
  ProtoWriter graph;
  graph.message(onnx::kGraphNode, node).bytes(onnx::kGraphName, "tiny");
  for (const auto& init : initializers) graph.message(onnx::kGraphInitializer, init);
  graph.message(onnx::kGraphInput, float2_value_info("X"))
      .message(onnx::kGraphOutput, float2_value_info("Y"));
  return graph;
}

std::string onnx_model(std::uint64_t ir_version, bool opset, const ProtoWriter& graph) {
  ProtoWriter model;
  model.varint(onnx::kModelIrVersion, ir_version).bytes(onnx::kModelProducerName, "modelzoo-tests");
  if (opset) model.message(onnx::kModelOpsetImport, onnx_opset(17));
  model.message(onnx::kModelGraph, graph);
  return model.str();
}

std::string valid_onnx() { return onnx_model(9, true, onnx_graph({onnx_inline_initializer("W")})); }

std::string onnx_with_external_data(const std::string& location, std::uint64_t offset,
                                    std::uint64_t length) {
  return onnx_model(9, true,
                    onnx_graph({onnx_external_initializer(
                        "W", {{"location", location},
                              {"offset", std::to_string(offset)},
                              {"length", std::to_string(length)}})}));
}

// ---------------------------------------------------------------------------------------------
// Broken files.

namespace {

void safetensors_cases(std::vector<BrokenFile>& out) {
  auto add = [&](int rule, std::string label, std::string bytes) {
    out.push_back({"safetensors", "safetensors." + std::to_string(rule), std::move(label),
                   std::move(bytes)});
  };
  // Two F32[2] tensors, "a" then "b", as a valid base to vary.
  auto two = [](std::uint64_t a_begin, std::uint64_t a_end, std::uint64_t b_begin,
                std::uint64_t b_end) {
    return safetensors_header({{"a", "F32", {2}, a_begin, a_end}, {"b", "F32", {2}, b_begin, b_end}},
                              {});
  };
  auto one = [](std::string_view entry) { return std::string("{\"a\":") + std::string(entry) + "}"; };
  const std::string ok_entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  // Rule 1.
  add(1, "shorter_than_8_bytes", std::string("\x02\x00\x00\x00", 4));
  add(1, "empty_file", "");
  add(1, "header_length_over_limit", le64(100'000'001) + "{}      ");
  add(1, "header_length_max_u64", le64(~0ull) + "{}      ");
  add(1, "header_length_past_end", le64(4096) + one(ok_entry));

  // Rule 2.
  add(2, "empty_header", le64(0));
  add(2, "only_spaces", le64(8) + "        ");
  add(2, "invalid_utf8_byte",
      safetensors_file(safetensors_header({{"a\xff", "F32", {2}, 0, 8}}, {}), 8));
  add(2, "truncated_utf8_sequence",
      safetensors_file(safetensors_header({{"a\xc3", "F32", {2}, 0, 8}}, {}), 8));
  add(2, "overlong_utf8",
      safetensors_file(safetensors_header({{"a\xc0\xaf", "F32", {2}, 0, 8}}, {}), 8));
  add(2, "utf8_surrogate",
      safetensors_file(safetensors_header({{"a\xed\xa0\x80", "F32", {2}, 0, 8}}, {}), 8));
  add(2, "utf8_above_u10ffff",
      safetensors_file(safetensors_header({{"a\xf4\x90\x80\x80", "F32", {2}, 0, 8}}, {}), 8));
  add(2, "not_json", safetensors_file("{this is not json}", 0));
  add(2, "unterminated_object", safetensors_file(R"({"a":{"dtype":"F32")", 0));
  add(2, "top_level_array", safetensors_file("[1,2]", 0));
  add(2, "leading_space", safetensors_file(" " + one(ok_entry), 8));
  add(2, "duplicate_tensor_name",
      safetensors_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                       R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                       16));
  add(2, "duplicate_key_in_entry",
      safetensors_file(one(R"({"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]})"),
                       8));
  add(2, "duplicate_metadata_key",
      safetensors_file(R"({"__metadata__":{"k":"v","k":"w"},"a":)" + ok_entry + "}", 8));
  {
    std::string header = one(ok_entry) + std::string(3, '\0');
    header.append((8 - header.size() % 8) % 8, '\0');
    add(2, "nul_padding", le64(header.size()) + header + std::string(8, 'x'));
  }
  {
    std::string header = one(ok_entry) + "\n";
    header.append((8 - header.size() % 8) % 8, ' ');
    add(2, "newline_before_padding", le64(header.size()) + header + std::string(8, 'x'));
  }
  add(2, "trailing_garbage", safetensors_file(one(ok_entry) + " x", 8));
  add(2, "nested_100_deep",
      safetensors_file(R"({"x":)" + std::string(100, '[') + std::string(100, ']') + "}", 0));

  // Rule 3.
  add(3, "metadata_not_object", safetensors_file(R"({"__metadata__":"pt","a":)" + ok_entry + "}", 8));
  add(3, "metadata_number_value",
      safetensors_file(R"({"__metadata__":{"format":1},"a":)" + ok_entry + "}", 8));
  add(3, "metadata_null_value",
      safetensors_file(R"({"__metadata__":{"format":null},"a":)" + ok_entry + "}", 8));
  add(3, "metadata_nested_object",
      safetensors_file(R"({"a":)" + ok_entry + R"(,"__metadata__":{"x":{"y":"z"}}})", 8));
  add(3, "metadata_list_value", safetensors_file(R"({"__metadata__":{"x":["y"]}})", 0));

  // Rule 4.
  add(4, "unknown_dtype", safetensors_file(one(R"({"dtype":"F128","shape":[2],"data_offsets":[0,8]})"), 8));
  add(4, "lowercase_dtype", safetensors_file(one(R"({"dtype":"f32","shape":[2],"data_offsets":[0,8]})"), 8));
  add(4, "dtype_not_string", safetensors_file(one(R"({"dtype":32,"shape":[2],"data_offsets":[0,8]})"), 8));
  add(4, "negative_dimension", safetensors_file(one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), 8));
  add(4, "fractional_dimension", safetensors_file(one(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), 8));
  add(4, "string_dimension", safetensors_file(one(R"({"dtype":"F32","shape":["2"],"data_offsets":[0,8]})"), 8));
  add(4, "shape_not_list", safetensors_file(one(R"({"dtype":"F32","shape":2,"data_offsets":[0,8]})"), 8));
  add(4, "nested_shape", safetensors_file(one(R"({"dtype":"F32","shape":[[2]],"data_offsets":[0,8]})"), 8));
  add(4, "missing_dtype", safetensors_file(one(R"({"shape":[2],"data_offsets":[0,8]})"), 8));
  add(4, "missing_shape", safetensors_file(one(R"({"dtype":"F32","data_offsets":[0,8]})"), 8));
  add(4, "missing_data_offsets", safetensors_file(one(R"({"dtype":"F32","shape":[2]})"), 8));
  add(4, "one_data_offset", safetensors_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[8]})"), 8));
  add(4, "three_data_offsets", safetensors_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8,8]})"), 8));
  add(4, "negative_offset", safetensors_file(one(R"({"dtype":"F32","shape":[2],"data_offsets":[-8,0]})"), 8));
  add(4, "tensor_not_object", safetensors_file(R"({"a":[0,8]})", 8));
  add(4, "tensor_is_string", safetensors_file(R"({"a":"F32"})", 0));

  // Rule 5.
  add(5, "gap_between_tensors", safetensors_file(two(0, 8, 12, 20), 20));
  add(5, "overlapping_tensors", safetensors_file(two(0, 8, 4, 12), 12));
  add(5, "first_begin_not_zero", safetensors_file(two(4, 12, 12, 20), 20));
  add(5, "size_mismatch", safetensors_file(two(0, 8, 8, 20), 20));
  add(5, "begin_after_end", safetensors_file(two(0, 8, 16, 8), 16));
  add(5, "f4_odd_element_count",
      safetensors_file(safetensors_header({{"a", "F4", {3}, 0, 2}}, {}), 2));
  add(5, "f6_partial_byte",
      safetensors_file(safetensors_header({{"a", "F6_E3M2", {3}, 0, 3}}, {}), 3));
  add(5, "shape_product_overflow",
      safetensors_file(safetensors_header({{"a", "U8", {1ull << 32, 1ull << 32}, 0, 0}}, {}), 0));
  add(5, "size_in_bits_overflow",
      safetensors_file(safetensors_header({{"a", "F32", {1ull << 62}, 0, 0}}, {}), 0));

  // Rule 6.
  add(6, "one_byte_too_many", safetensors_file(two(0, 8, 8, 16), 17));
  add(6, "one_byte_missing", safetensors_file(two(0, 8, 8, 16), 15));
  add(6, "data_without_tensors", safetensors_file(R"({"__metadata__":{"a":"b"}})", 8));
}

void gguf_cases(std::vector<BrokenFile>& out) {
  auto add = [&](int rule, std::string label, std::string bytes) {
    out.push_back({"gguf", "gguf." + std::to_string(rule), std::move(label), std::move(bytes)});
  };
  // One key/value, tensors "a" F32[4] (16 bytes, offset 0) and "b" F32[4,2] (32 bytes, at 32).
  auto base = [] {
    GgufWriter w;
    w.kv_string("general.architecture", "llama");
    return w;
  };
  auto with_tensors = [](GgufWriter w) {
    w.tensor("a", {4}, kTypeF32, 16).tensor("b", {4, 2}, kTypeF32, 32);
    return w;
  };
  const std::string valid = with_tensors(base()).build();

  // Rule 1.
  {
    auto w = with_tensors(base());
    w.magic = "GGML";
    add(1, "bad_magic", w.build());
  }
  add(1, "shorter_than_8_bytes", std::string("GGUF\x03\x00", 6));
  add(1, "magic_only", "GGUF");
  for (std::uint32_t version : {0u, 1u, 4u}) {
    auto w = with_tensors(base());
    w.version = version;
    add(1, "version_" + std::to_string(version), w.build());
  }
  {
    auto w = with_tensors(base());
    w.version = 0x03000000;  // 3, big-endian
    add(1, "big_endian", w.build());
  }

  // Rule 2.
  add(2, "counts_truncated", valid.substr(0, 16));
  add(2, "kv_count_truncated", valid.substr(0, 20));
  {
    auto w = with_tensors(base());
    w.tensor_count = 1ull << 40;
    add(2, "tensor_count_implausible", w.build());
  }
  {
    auto w = with_tensors(base());
    w.kv_count = ~0ull;
    add(2, "kv_count_implausible", w.build());
  }
  {
    auto w = with_tensors(base());
    const std::uint64_t rest = valid.size() - 24;
    w.tensor_count = rest / 24;
    w.kv_count = rest / 13;
    add(2, "counts_implausible_together", w.build());
  }

  // Rule 3.
  {
    auto w = base();
    w.kv(std::string(65536, 'k'), kU8, "\x01");
    add(3, "key_over_65535_bytes", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("test.x", 13, "\x01");
    add(3, "unknown_value_type", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("test.x", 0xFFFFFFFFu, "\x01");
    add(3, "value_type_max_u32", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("test.x", kArray, le32(13) + le64(1) + "\x01");
    add(3, "array_element_type_unknown", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("test.x", kArray, le32(kU32) + le64(1ull << 40));
    add(3, "array_count_past_end", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("test.x", kArray, le32(kString) + le64(1ull << 60));
    add(3, "string_array_count_implausible", with_tensors(w).build());
  }
  {
    std::string value = le32(kU8) + le64(1) + "\x01";  // the 9th level
    for (int level = 0; level < 8; ++level) value = le32(kArray) + le64(1) + value;
    auto w = base();
    w.kv("test.deep", kArray, value);
    add(3, "arrays_nested_9_deep", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("test.x", kString, le64(1ull << 20) + "abc");
    add(3, "string_value_past_end", with_tensors(w).build());
  }
  {
    // Cuts inside the second key/value, "general.architecture" = "llama", which begins at byte
    // 24 + 131 (after "test.filler", a string of 100 bytes): its key length (8), key (20),
    // type (4), then the value (8 + 5). The counts stay plausible for what remains.
    GgufWriter w;
    w.kv_string("test.filler", std::string(100, 'f')).kv_string("general.architecture", "llama");
    const std::string file = w.build();
    const std::size_t kv = 24 + 8 + 11 + 4 + 8 + 100;
    add(3, "cut_in_key_length", file.substr(0, kv + 5));
    add(3, "cut_in_key", file.substr(0, kv + 8 + 10));
    add(3, "cut_in_value_type", file.substr(0, kv + 8 + 20 + 2));
    add(3, "cut_in_value", file.substr(0, kv + 8 + 20 + 4 + 9));
  }
  {
    auto w = base();
    w.kv("test.x", kU64, le64(1));
    const std::string file = w.build();  // no tensors: ends with the value
    add(3, "u64_value_cut", file.substr(0, file.size() - 3));
  }

  // Rule 4.
  for (std::uint32_t a : {48u, 0u, 33u}) {
    auto w = base();
    w.kv_u32("general.alignment", a);
    add(4, "alignment_" + std::to_string(a), with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("general.alignment", kU64, le64(32));
    add(4, "alignment_as_u64", with_tensors(w).build());
  }
  {
    auto w = base();
    w.kv("general.alignment", kString, gguf_string("32"));
    add(4, "alignment_as_string", with_tensors(w).build());
  }

  // Rule 5.
  {
    auto w = base();
    w.tensor(std::string(65, 'n'), {4}, kTypeF32, 16);
    add(5, "tensor_name_over_64_bytes", w.build());
  }
  {
    auto w = base();
    w.tensor("a", {1, 1, 1, 1, 4}, kTypeF32, 16);
    add(5, "five_dimensions", w.build());
  }
  {
    auto w = base();
    w.tensor("a", {4, 0}, kTypeF32, 0);
    add(5, "zero_dimension", w.build());
  }
  {
    auto w = base();
    w.tensor("a", {1ull << 32, 1ull << 32}, kTypeF32, 0);
    add(5, "dimension_product_overflow", w.build());
  }
  for (std::uint32_t type : {4u, 5u, 31u, 33u, 36u, 38u, 40u, 1000u}) {
    auto w = base();
    w.tensor("a", {4}, type, 16);
    add(5, "tensor_type_" + std::to_string(type), w.build());
  }
  {
    auto w = base();
    w.tensor("a", {4}, kTypeF32, 16).tensor("b", {4, 2}, kTypeF32, 32, 24);
    add(5, "offset_not_aligned", w.build());
  }
  {
    auto w = base();
    w.tensor("a", {4}, kTypeF32, 16).tensor("b", {4, 2}, kTypeF32, 32, 64);
    add(5, "offset_gap", w.build());
  }
  {
    auto w = base();
    w.tensor("a", {4}, kTypeF32, 16).tensor("b", {4, 2}, kTypeF32, 32, 0);
    add(5, "offset_overlap", w.build());
  }
  {
    auto w = base();
    w.tensor("a", {4}, kTypeF32, 16, 32);
    add(5, "first_offset_not_zero", w.build());
  }
  {
    auto w = base();
    w.kv_u32("general.alignment", 64);
    add(5, "alignment_64_offsets_32", with_tensors(w).build());
  }
  {
    auto w = base();
    w.tensor("q", {31, 2}, kTypeQ8_0, 68);
    add(5, "block_size_mismatch", w.build());
  }
  add(5, "data_one_byte_short", valid.substr(0, valid.size() - 1));
  {
    auto w = with_tensors(base());
    add(5, "no_data_section", valid.substr(0, w.data_start()));
  }
  {
    auto w = with_tensors(base());
    add(5, "cut_in_tensor_infos", valid.substr(0, w.head_size() - 10));
  }
  {
    auto w = base();
    w.tensor("huge", {1ull << 40}, kTypeF32, 0);
    add(5, "tensor_past_end_of_file", w.build());
  }
}

void onnx_cases(std::vector<BrokenFile>& out) {
  auto add = [&](int rule, std::string label, std::string bytes) {
    out.push_back({"onnx", "onnx." + std::to_string(rule), std::move(label), std::move(bytes)});
  };
  const ProtoWriter graph = onnx_graph({onnx_inline_initializer("W")});
  auto model_then = [&](const ProtoWriter& extra) {
    return onnx_model(9, true, graph) + extra.str();
  };

  // Rule 1.
  add(1, "unknown_top_level_field", model_then(ProtoWriter().varint(10, 1)));
  add(1, "unknown_fixed32_field", model_then(ProtoWriter().fixed32(12, 1)));
  add(1, "ir_version_length_delimited",
      ProtoWriter().bytes(1, "9").message(8, onnx_opset(17)).message(7, graph).str());
  add(1, "graph_as_varint", ProtoWriter().varint(1, 9).message(8, onnx_opset(17)).varint(7, 1).str());
  add(1, "producer_name_as_fixed64", model_then(ProtoWriter().fixed64(2, 1)));
  add(1, "plain_text", "hello world");

  // Rule 2.
  add(2, "group_start_wire_type", model_then(ProtoWriter().key(7, 3)));
  add(2, "group_end_wire_type", model_then(ProtoWriter().key(7, 4)));
  add(2, "wire_type_6", model_then(ProtoWriter().key(7, 6)));
  add(2, "wire_type_7", model_then(ProtoWriter().key(2, 7)));
  add(2, "field_number_zero", model_then(ProtoWriter().raw(std::string("\x02\x00", 2))));
  add(2, "length_past_end", model_then(ProtoWriter().key(6, 2).raw(ProtoWriter::encode_varint(100)).raw("abc")));
  add(2, "huge_length", model_then(ProtoWriter().key(6, 2).raw(ProtoWriter::encode_varint(~0ull))));
  add(2, "varint_over_10_bytes",
      ProtoWriter().key(1, 0).raw(std::string(10, '\xff') + "\x01").str());
  add(2, "varint_truncated", model_then(ProtoWriter().key(1, 0).raw("\x80\x80")));
  add(2, "key_truncated", model_then(ProtoWriter().raw("\x80")));
  add(2, "key_over_32_bits", model_then(ProtoWriter().raw(ProtoWriter::encode_varint(1ull << 40))));
  {
    // The graph's last field claims more bytes than the graph has (the file is longer).
    ProtoWriter bad = graph;
    bad.key(5, 2).raw(ProtoWriter::encode_varint(50));
    add(2, "initializer_past_end_of_graph",
        ProtoWriter().varint(1, 9).message(8, onnx_opset(17)).message(7, bad).raw(std::string(60, '\x08')).str());
  }
  {
    ProtoWriter bad = graph;
    bad.key(9, 3);
    add(2, "group_inside_graph", onnx_model(9, true, bad));
  }
  {
    ProtoWriter bad = graph;
    bad.varint(5, 1);
    add(2, "initializer_as_varint", onnx_model(9, true, bad));
  }
  {
    ProtoWriter init;
    init.bytes(8, "W").key(13, 2).raw(ProtoWriter::encode_varint(9)).raw("ab");
    add(2, "external_data_past_end_of_initializer", onnx_model(9, true, onnx_graph({init})));
  }
  {
    ProtoWriter init;
    init.bytes(8, "W").bytes(14, "1");
    add(2, "data_location_length_delimited", onnx_model(9, true, onnx_graph({init})));
  }
  // Cut inside the graph.
  {
    const std::string valid = valid_onnx();
    add(2, "cut_inside_graph", valid.substr(0, valid.size() - 5));
  }

  // Rule 3.
  add(3, "empty_file", "");
  add(3, "ir_version_0", onnx_model(0, true, graph));
  add(3, "ir_version_15", onnx_model(15, true, graph));
  add(3, "ir_version_negative", onnx_model(static_cast<std::uint64_t>(-1), true, graph));
  add(3, "ir_version_missing", ProtoWriter().message(8, onnx_opset(17)).message(7, graph).str());
  add(3, "graph_missing", ProtoWriter().varint(1, 9).message(8, onnx_opset(17)).str());
  add(3, "no_opset_import_for_ir_3", onnx_model(3, false, graph));
  add(3, "no_opset_import_for_ir_9", onnx_model(9, false, graph));

  // Rule 4 (no lookup is given: no file is part of the model).
  add(4, "location_dotdot", onnx_with_external_data("../weights.bin", 0, 8));
  add(4, "location_inner_dotdot", onnx_with_external_data("data/../../weights.bin", 0, 8));
  add(4, "location_dotdot_backslash", onnx_with_external_data("..\\weights.bin", 0, 8));
  add(4, "location_absolute", onnx_with_external_data("/etc/passwd", 0, 8));
  add(4, "location_empty", onnx_with_external_data("", 0, 8));
  add(4, "location_with_nul", onnx_with_external_data(std::string("w\0.bin", 6), 0, 8));
  add(4, "location_not_in_model", onnx_with_external_data("weights.bin", 0, 8));
  add(4, "location_missing",
      onnx_model(9, true, onnx_graph({onnx_external_initializer("W", {{"offset", "0"}, {"length", "8"}})})));
  add(4, "offset_not_decimal",
      onnx_model(9, true, onnx_graph({onnx_external_initializer(
                              "W", {{"location", "w.bin"}, {"offset", "12ab"}})})));
  add(4, "length_negative",
      onnx_model(9, true, onnx_graph({onnx_external_initializer(
                              "W", {{"location", "w.bin"}, {"length", "-8"}})})));
  {
    // external_data entries without data_location: still external data.
    ProtoWriter init;
    ProtoWriter entry;
    entry.bytes(1, "location").bytes(2, "../w.bin");
    init.bytes(8, "W").message(13, entry);
    add(4, "external_data_without_data_location", onnx_model(9, true, onnx_graph({init})));
  }
  {
    ProtoWriter init;
    init.bytes(8, "W").varint(14, 1);
    add(4, "data_location_external_without_entries", onnx_model(9, true, onnx_graph({init})));
  }
}

}  // namespace

std::vector<BrokenFile> broken_files() {
  std::vector<BrokenFile> out;
  safetensors_cases(out);
  gguf_cases(out);
  onnx_cases(out);
  return out;
}

}  // namespace modelzoo::testing
