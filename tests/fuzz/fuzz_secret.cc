// Fuzz target: encrypted configuration values "enc:v1:<key id>:<base64>" (codec,
// secret.h) as the daemon decrypts them when it loads its configuration, with a fixed key;
// the same value inside a configuration map (decrypt_secrets_in); and key files
// ("modelzoo-key-v1 <base64>") read back from disk. Input: two parts (fuzz_util.h), the value
// and a key file's contents. The contract: a plaintext, or CodecError whose message never
// holds the value's data.
#include <sys/stat.h>

#include <cstdint>
#include <fstream>

#include "fuzz_key.h"
#include "fuzz_util.h"
#include "modelzoo/codec/secret.h"

namespace codec = modelzoo::codec;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::vector<codec::Key> keys = [] {
    std::vector<codec::Key> k(1);
    k[0] = modelzoo::fuzz::fixed_key();
    return k;
  }();
  auto parts = modelzoo::fuzz::split_parts(data, size, 2);
  std::string value(parts[0]);
  try {
    auto plain = codec::decrypt_secret(value, keys);
    FUZZ_ASSERT(codec::is_encrypted_secret(value));
  } catch (const codec::CodecError& e) {
    // Never the data: the part after the third colon, when it is base64 long enough to be
    // told from the words of a message (a key id has 16 characters).
    auto third = value.find(':', value.find(':', value.find(':') + 1) + 1);
    if (third != std::string::npos && value.size() - third > 24) {
      std::string data = value.substr(third + 1);
      bool base64 = data.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
                    std::string::npos;
      if (base64) FUZZ_ASSERT(std::string(e.what()).find(data) == std::string::npos);
    }
  }
  nlohmann::json config = {{"auth", {{"token", value}, {"list", {value, "plain"}}}}, {"n", 1}};
  auto before = config;
  try {
    codec::decrypt_secrets_in(config, keys, "sources[x].config");
  } catch (const codec::CodecError&) {
    FUZZ_ASSERT(config == before);  // all or nothing
  }
  if (parts.size() > 1) {
    static const auto key_file = modelzoo::fuzz::scratch_dir() / "secret.key";
    {
      std::ofstream f(key_file, std::ios::binary | std::ios::trunc);
      f.write(parts[1].data(), static_cast<std::streamsize>(parts[1].size()));
    }
    ::chmod(key_file.c_str(), 0600);
    try {
      auto k = codec::read_key_file(key_file);
      FUZZ_ASSERT(k.id.size() == 16);
    } catch (const codec::CodecError&) {
    }
  }
  return 0;
}
