// CURVE keys for the bus over TCP (docs/security.md, "Remote peers over TCP").
//
// A key is 32 bytes, written as 40 characters of Z85 (ZeroMQ RFC 32). A key pair lives in
// one file, private to its owner:
//
//   # modelzoo CURVE key pair "<name>"; keep this file private
//   public-key = <40 Z85 characters>
//   secret-key = <40 Z85 characters>
//
// and its public half in a second file, `<name>.pub`, holding `public-key = ...` only.
// Both are read by the daemon, the plugin SDKs, the client library and `modelzoo keys`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

namespace modelzoo::bus {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters; empty for a public key only
};

// Thrown when a key or key file cannot be used; what() names the file and the problem
// (never the secret).
class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// True when the build of libzmq in use supports CURVE.
bool curve_available();

// A new random key pair (libzmq's zmq_curve_keypair). Throws KeyError without CURVE.
CurveKeyPair generate_key_pair();

// The reason `key` is not a valid Z85 key of 32 bytes, if it is not.
std::optional<std::string> check_z85_key(const std::string& key);

// Reads a key file: a pair (public-key and secret-key) or a public key alone (a `.pub`
// file, or a line holding just the 40 characters). A secret key whose file is readable by
// others than its owner is refused, as ssh does.
CurveKeyPair read_key_file(const std::filesystem::path& file);

// An allow-list of public keys, one per line: "<40 Z85 characters> [name]", or
// "public-key = <key>" as in a .pub file (so `cat alice.pub >> authorized_clients` works).
// A word starting with '#' that is not a key starts a comment (Z85 itself uses '#' and '='). A
// key without a name is named by its first 8 characters.
struct AllowedKey {
  std::string public_key;
  std::string name;
};
struct AllowList {
  std::vector<AllowedKey> keys;
  std::vector<std::string> problems;  // "<file>:<line>: <why>", for lines that were skipped
};
AllowList parse_allow_list(const std::string& text, const std::string& origin);

// Writes `pair` to `<dir>/<name>.key` (mode 0600, never over an existing file) and its
// public half to `<dir>/<name>.pub` (0644). Creates `dir` (0700) if needed. Returns the
// path of the `.key` file.
std::filesystem::path write_key_pair(const std::filesystem::path& dir, const std::string& name,
                                     const CurveKeyPair& pair);

// Makes `s` a CURVE client of the server whose public key is `server_public`, using `own`.
// Call before connect().
void make_curve_client(zmq::socket_t& s, const std::string& server_public, const CurveKeyPair& own);

// Makes `s` a CURVE server with `own` whose connections are checked by the ZAP handler of
// the socket's context under `zap_domain`. Call before bind(): libzmq takes a socket's
// options when an endpoint is bound, so endpoints bound earlier keep their mechanism.
void make_curve_server(zmq::socket_t& s, const CurveKeyPair& own, const std::string& zap_domain);

// The ZAP "User-Id" of the peer that sent `frame`: the name the daemon's ZAP handler gave
// the key it admitted. Empty for peers that were not authenticated (ipc, NULL mechanism).
std::string peer_user_id(zmq::message_t& frame);

}  // namespace modelzoo::bus
