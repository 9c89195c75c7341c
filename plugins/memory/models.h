// The logic of the `memory` plugin: models defined entirely by its configuration, with
// literal or deterministically generated file contents. Used by tests and demos.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/plugin.h"

namespace modelzoo::plugins::memory {

// Pseudo-random bytes: byte i depends only on (seed, i), so any range can be produced
// directly. Writes bytes [offset, offset + size) of the stream for `seed` into `out`.
void generate(std::uint64_t seed, std::uint64_t offset, void* out, std::size_t size);

struct File {
  std::string name;
  bool generated = false;
  std::string content;      // when !generated
  std::uint64_t size = 0;   // content.size() when !generated
  std::uint64_t seed = 0;   // when generated
  std::string sha256;       // real hash of the bytes
  std::string advertised;   // what metadata reports: declared_sha256 or sha256
  std::optional<std::uint64_t> serve_size;  // test knob: a download serves this many bytes

  // Copies bytes [offset, offset + n) into out. The range must lie inside the file.
  void read(std::uint64_t offset, void* out, std::size_t n) const;
};

struct Model {
  sdk::ModelMetadata meta;  // files carry the advertised hashes
  std::vector<File> files;
};

struct Config {
  std::vector<Model> models;
  std::optional<std::uint64_t> fail_download_after_bytes;
  bool crash_on_download = false;
  std::uint64_t metadata_delay_ms = 0;
  std::optional<std::uint64_t> throttle_bytes_per_second;  // test knob: slow downloads down
};

// Parses and checks the configuration and computes every file's sha256.
// Throws sdk::Error(bad_request) naming the model and field on any problem.
Config parse_config(const nlohmann::json& config);

// Immutable after construction, so safe to use from several threads.
class Models {
 public:
  Models() = default;
  explicit Models(Config config);

  const Config& config() const { return config_; }

  // `version` empty = the highest version. Throws Error(not_found).
  const Model& find(const std::string& name, const std::string& version) const;
  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) const;
  std::vector<sdk::ModelSummary> list() const;

  // Writes the file from req.offset to its end into `sink` in pieces of sink.chunk_size(),
  // honouring fail_download_after_bytes (not crash_on_download: the caller does that).
  // Throws not_found / bad_request / unavailable.
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) const;

 private:
  Config config_;
  // name -> indexes into config_.models, newest version first
  std::map<std::string, std::vector<std::size_t>> by_name_;
};

}  // namespace modelzoo::plugins::memory
