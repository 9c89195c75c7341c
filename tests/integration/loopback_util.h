// Helpers shared by the tests of HTTP-backed sources (remote_registry_test.cc,
// oci_registry_test.cc): a file's bytes, a free loopback port, a pull expected to fail.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "daemon_harness.h"

namespace modelzoo::testing {

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A loopback port on which nothing listens (bound, read, closed).
inline int dead_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The error of a pull that must fail (a failure of the test when it succeeds).
inline bus::Error pull_error(Daemon& d, const std::string& ref) {
  try {
    d.client().pull(ref);
  } catch (const bus::Error& e) {
    return e;
  }
  ADD_FAILURE() << "pull of " << ref << " succeeded";
  return bus::Error(bus::ErrorCode::internal, "pull succeeded");
}

}  // namespace modelzoo::testing
