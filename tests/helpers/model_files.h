// Minimal model files for tests: valid safetensors, GGUF and ONNX files and deliberately broken
// ones, one per rule violation of docs/extensions.md ("format-validator"). Built by small writers (a
// safetensors writer, a GGUF writer, a protobuf encoder), which tests may also use directly.
// No dependency on gtest.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace modelzoo::testing {

// Minimal valid files (a few small tensors each; the safetensors one has __metadata__).
std::string valid_safetensors();
std::string valid_gguf();
std::string valid_onnx();

// One broken file per case: every rule of docs/extensions.md is exercised by at least one case, most by
// several. `rule` is the id the checker must report ("gguf.3"); `label` names the case.
struct BrokenFile {
  std::string format;
  std::string rule;
  std::string label;
  std::string bytes;
};
std::vector<BrokenFile> broken_files();  // all formats

// ONNX with one external-data initializer pointing at `location` (offset/length given).
std::string onnx_with_external_data(const std::string& location, std::uint64_t offset,
                                    std::uint64_t length);

// Writes `bytes` to `p`, replacing it. Throws std::runtime_error on failure.
void write_file(const std::filesystem::path& p, std::string_view bytes);

// ---------------------------------------------------------------------------------------------
// Building blocks.

// Little-endian encodings.
std::string le32(std::uint32_t v);
std::string le64(std::uint64_t v);

// safetensors.
struct SafetensorsTensor {
  std::string name;
  std::string dtype;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};
// The JSON header: __metadata__ first (when not empty), then the tensors in the order given.
std::string safetensors_header(const std::vector<SafetensorsTensor>& tensors,
                               const std::vector<std::pair<std::string, std::string>>& metadata);
// The 8-byte length and the header, padded with spaces to a multiple of 8 bytes.
std::string safetensors_prefix(std::string_view header_json);
// The prefix followed by `data_size` bytes of data.
std::string safetensors_file(std::string_view header_json, std::uint64_t data_size);

// GGUF (little-endian). Value type ids of GGUF rule 3 (0 UINT8 ... 12 FLOAT64).
std::string gguf_string(std::string_view s);  // u64 length + bytes
// Bytes a tensor of ggml type `type` and dimensions `dims` takes, for F32, F16, BF16, Q4_0,
// Q8_0, I8, I32 (the types the tests use).
std::uint64_t ggml_nbytes(std::uint32_t type, const std::vector<std::uint64_t>& dims);

class GgufWriter {
 public:
  std::string magic = "GGUF";
  std::uint32_t version = 3;
  std::optional<std::uint64_t> tensor_count;  // written instead of the real counts when set
  std::optional<std::uint64_t> kv_count;
  std::uint64_t alignment = 32;               // the layout's; add general.alignment yourself

  // A key/value with its value already encoded.
  GgufWriter& kv(std::string_view key, std::uint32_t type, std::string value);
  GgufWriter& kv_u32(std::string_view key, std::uint32_t v);
  GgufWriter& kv_string(std::string_view key, std::string_view v);
  GgufWriter& kv_strings(std::string_view key, const std::vector<std::string>& v);
  // A tensor of `nbytes` bytes of data; `offset` replaces the computed one when set.
  GgufWriter& tensor(std::string_view name, std::vector<std::uint64_t> dims, std::uint32_t type,
                     std::uint64_t nbytes, std::optional<std::uint64_t> offset = std::nullopt);
  // Header, key/values, tensor infos, padding, data: the file ends where the last tensor ends
  // (without tensors, right after the key/values).
  std::string build() const;
  // Bytes before the padding of the data section: header, key/values, tensor infos.
  std::uint64_t head_size() const;
  // Where the data section begins in build()'s output.
  std::uint64_t data_start() const;

 private:
  std::string head() const;  // everything before the padding of the data section
  struct Tensor {
    std::string name;
    std::vector<std::uint64_t> dims;
    std::uint32_t type;
    std::uint64_t nbytes;
    std::optional<std::uint64_t> offset;
  };
  std::vector<std::string> kvs_;
  std::vector<Tensor> tensors_;
};

// Protobuf wire format.
class ProtoWriter {
 public:
  ProtoWriter& varint(std::uint32_t field, std::uint64_t v);
  ProtoWriter& bytes(std::uint32_t field, std::string_view b);
  ProtoWriter& message(std::uint32_t field, const ProtoWriter& m) { return bytes(field, m.str()); }
  ProtoWriter& fixed32(std::uint32_t field, std::uint32_t v);
  ProtoWriter& fixed64(std::uint32_t field, std::uint64_t v);
  ProtoWriter& key(std::uint32_t field, std::uint32_t wire_type);  // a bare key
  ProtoWriter& raw(std::string_view b);
  const std::string& str() const { return out_; }

  static std::string encode_varint(std::uint64_t v);

 private:
  std::string out_;
};

// ONNX pieces. A tiny model: Y = X + W, W a FLOAT[2] initializer.
ProtoWriter onnx_opset(std::uint64_t version);
ProtoWriter onnx_inline_initializer(std::string_view name);
// An initializer whose data is external, with these external_data entries (key, value) and
// data_location EXTERNAL.
ProtoWriter onnx_external_initializer(
    std::string_view name, const std::vector<std::pair<std::string, std::string>>& entries);
ProtoWriter onnx_graph(const std::vector<ProtoWriter>& initializers);
// ir_version, producer_name, opset_import (when `opset`), then the graph last.
std::string onnx_model(std::uint64_t ir_version, bool opset, const ProtoWriter& graph);

}  // namespace modelzoo::testing
