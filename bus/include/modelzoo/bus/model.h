// Model metadata as it travels on the bus (docs/protocol.md, "Model metadata").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::bus {

class MsgpackWriter;  // message.h

struct FileInfo {
  FileInfo() = default;
  FileInfo(std::string n, std::uint64_t sz, std::string sha, std::string local = {})
      : name(std::move(n)), size(sz), sha256(std::move(sha)), local_path(std::move(local)) {}

  std::string name;    // relative path inside the model, checked by check_file_name
  std::uint64_t size = 0;
  std::string sha256;  // 64 lowercase hex digits
  // Optional: an absolute path where the file can be read on the daemon's host. The daemon
  // may copy from it instead of streaming, but only inside directories its configuration
  // trusts for that source, and it verifies size and sha256 either way.
  std::string local_path;
};

struct ModelMetadata {
  std::string name;
  std::string version;  // semantic version
  std::string description;
  std::string author;
  std::string license;
  std::string format;   // e.g. "safetensors", "gguf", "onnx", "raw"
  std::vector<std::string> tags;
  std::vector<FileInfo> files;

  std::uint64_t total_size() const;
  nlohmann::json to_json() const;
  // Validates every field (names, semver, sha256 shape, duplicate files) and throws
  // bus::Error(bad_request) naming the first problem.
  static ModelMetadata from_json(const nlohmann::json& j);
  // The same, read straight from the msgpack bytes of one map (a body kept raw, see
  // Message::raw_body), with no JSON tree: the bytes are checked as any body is (UTF-8,
  // unique string keys, no extension types, nesting), and a problem there is
  // Error(bad_request) "metadata is not valid msgpack: ...". Every field rule, and every
  // message, is from_json()'s.
  static ModelMetadata from_msgpack(const void* data, std::size_t size);
  // to_json() as msgpack, byte for byte what encoding to_json() gives (keys in the same
  // order), written without a JSON tree.
  void write_msgpack(MsgpackWriter& w) const;
  std::string to_msgpack() const;
};

// A model as listed by `list`: its name and the versions a source has.
struct ModelSummary {
  std::string name;
  std::vector<std::string> versions;  // newest first
  std::string description;

  nlohmann::json to_json() const;
  static ModelSummary from_json(const nlohmann::json& j);
};

bool is_sha256_hex(const std::string& s);

}  // namespace modelzoo::bus
