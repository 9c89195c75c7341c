// SHA-256 for the built-in plugins, on OpenSSL EVP (SHA-NI where the CPU has it).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <openssl/evp.h>

namespace modelzoo::plugins {

// Incremental SHA-256. Throws std::runtime_error if OpenSSL fails.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t size);
  // Returns the digest as 64 lowercase hex digits. Call once.
  std::string final_hex();

  static std::string of(std::string_view data);

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace modelzoo::plugins
