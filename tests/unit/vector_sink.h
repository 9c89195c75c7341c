// A ChunkSink that keeps everything written to it, for unit tests of registries.
#pragma once

#include <string>
#include <vector>

#include "modelzoo/plugin.h"

class VectorSink : public modelzoo::sdk::ChunkSink {
 public:
  explicit VectorSink(std::size_t chunk = 4096) : chunk_(chunk) {}
  void write(const void* data, std::size_t size) override {
    bytes.append(static_cast<const char*>(data), size);
    writes.push_back(size);
  }
  std::size_t chunk_size() const override { return chunk_; }
  std::string bytes;
  std::vector<std::size_t> writes;

 private:
  std::size_t chunk_;
};
