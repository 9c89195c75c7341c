// SHA-256 as used for every file hash on the bus (docs/protocol.md, "Model metadata"):
// OpenSSL EVP, which uses the CPU's SHA extensions where present (~7x a portable one).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace modelzoo::bus {

// Incremental SHA-256. Throws std::runtime_error if OpenSSL cannot initialise.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  // Finishes and returns 64 lowercase hex digits. Call once.
  std::string hex_digest();

  static std::string of(std::string_view data);

 private:
  void* ctx_;  // EVP_MD_CTX, kept out of this header
};

}  // namespace modelzoo::bus
