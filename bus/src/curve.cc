#include "modelzoo/bus/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace modelzoo::bus {
namespace fs = std::filesystem;

namespace {

std::string trim(std::string s) {
  auto b = s.find_first_not_of(" \t\r");
  auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

void write_private(const fs::path& file, const std::string& text, mode_t mode) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw KeyError(file.string() + ": cannot create: " + std::strerror(errno));
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ::close(fd);
  if (!ok) {
    ::unlink(file.c_str());
    throw KeyError(file.string() + ": cannot write");
  }
}

}  // namespace

bool curve_available() { return zmq_has("curve") == 1; }

CurveKeyPair generate_key_pair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0)
    throw KeyError(std::string("cannot generate a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                   " (libzmq built without CURVE?)");
  return {pub, sec};
}

std::optional<std::string> check_z85_key(const std::string& key) {
  if (key.size() != 40) return "a CURVE key is 40 Z85 characters, not " + std::to_string(key.size());
  std::uint8_t raw[32];
  if (!zmq_z85_decode(raw, key.c_str())) return "not a Z85-encoded key (characters outside the Z85 alphabet)";
  return std::nullopt;
}

CurveKeyPair read_key_file(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw KeyError(file.string() + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw KeyError(file.string() + ": not a regular file");
  if (st.st_size > 4096) throw KeyError(file.string() + ": too large for a key file");
  std::ifstream in(file);
  if (!in) throw KeyError(file.string() + ": cannot be read");
  CurveKeyPair kp;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    line = trim(line);
    std::string key, value;
    // Z85 uses '=' and '#' too: a line that is a key is a key (a bare public key, as
    // `modelzoo keys show` prints it) before it is anything else.
    if (!check_z85_key(line)) {
      key = "public-key";
      value = line;
    } else if (line.empty() || line[0] == '#') {
      continue;
    } else {
      auto eq = line.find('=');
      key = trim(line.substr(0, eq));
      value = eq == std::string::npos ? std::string() : trim(line.substr(eq + 1));
    }
    std::string where = file.string() + ":" + std::to_string(n);
    if (key != "public-key" && key != "secret-key") throw KeyError(where + ": unknown setting '" + key.substr(0, 40) + "'");
    if (auto why = check_z85_key(value)) throw KeyError(where + ": " + key + ": " + *why);
    (key == "public-key" ? kp.public_key : kp.secret_key) = value;
  }
  if (kp.public_key.empty()) throw KeyError(file.string() + ": no public-key");
  if (!kp.secret_key.empty()) {
    if (st.st_mode & 077)
      throw KeyError(file.string() + ": holds a secret key but is readable by others (mode " +
                     [&] {
                       char b[8];
                       std::snprintf(b, sizeof b, "%03o", st.st_mode & 0777);
                       return std::string(b);
                     }() +
                     "); chmod 600 it");
    char derived[41];
    if (zmq_curve_public(derived, kp.secret_key.c_str()) != 0 || kp.public_key != derived)
      throw KeyError(file.string() + ": public-key does not belong to secret-key");
  }
  return kp;
}

AllowList parse_allow_list(const std::string& text, const std::string& origin) {
  AllowList out;
  std::istringstream lines(text);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    std::istringstream words(line);
    std::string key, name;
    words >> key;
    // '#' is a Z85 character: only a word that is not a key starts a comment.
    if (key.empty() || (key[0] == '#' && check_z85_key(key))) continue;
    if (key == "public-key") {
      std::string eq;
      words >> eq >> key;
      if (eq != "=") key.clear();
    }
    std::getline(words >> std::ws, name);
    if (auto h = name.find(" #"); h != std::string::npos) name.erase(h);
    if (!name.empty() && name[0] == '#') name.clear();
    if (auto why = check_z85_key(key)) {
      out.problems.push_back(origin + ":" + std::to_string(n) + ": " + *why);
      continue;
    }
    name = trim(name);
    out.keys.push_back({key, name.empty() ? key.substr(0, 8) : name.substr(0, 64)});
  }
  return out;
}

fs::path write_key_pair(const fs::path& dir, const std::string& name, const CurveKeyPair& pair) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw KeyError(dir.string() + ": cannot create: " + ec.message());
    ::chmod(dir.c_str(), 0700);
  }
  fs::path key = dir / (name + ".key"), pub = dir / (name + ".pub");
  if (fs::exists(key, ec) || fs::exists(pub, ec))
    throw KeyError(key.string() + " or its .pub already exists; not overwritten (remove it first)");
  std::string head = "# modelzoo CURVE key pair \"" + name + "\"";
  write_private(key, head + "; keep this file private\npublic-key = " + pair.public_key + "\nsecret-key = " +
                         pair.secret_key + "\n",
                0600);
  write_private(pub, head + ", public half\npublic-key = " + pair.public_key + "\n", 0644);
  return key;
}

void make_curve_client(zmq::socket_t& s, const std::string& server_public, const CurveKeyPair& own) {
  if (auto why = check_z85_key(server_public)) throw KeyError("server key: " + *why);
  if (own.secret_key.empty()) throw KeyError("a CURVE client needs its own secret key");
  s.set(zmq::sockopt::curve_serverkey, server_public);
  s.set(zmq::sockopt::curve_publickey, own.public_key);
  s.set(zmq::sockopt::curve_secretkey, own.secret_key);
}

void make_curve_server(zmq::socket_t& s, const CurveKeyPair& own, const std::string& zap_domain) {
  if (own.secret_key.empty()) throw KeyError("a CURVE server needs its secret key");
  s.set(zmq::sockopt::curve_server, true);
  s.set(zmq::sockopt::curve_secretkey, own.secret_key);
  s.set(zmq::sockopt::zap_domain, zap_domain);
}

std::string peer_user_id(zmq::message_t& frame) {
  const char* v = zmq_msg_gets(frame.handle(), "User-Id");
  return v ? std::string(v) : std::string();
}

}  // namespace modelzoo::bus
