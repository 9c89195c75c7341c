#include "remote_access.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "modelzoo/bus/socket.h"

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";  // fixed by ZeroMQ RFC 27

std::string zap_domain(RemoteAccess::Domain d) { return std::string("modelzoo.") + to_string(d); }

std::string z85(const std::string& raw) {
  if (raw.size() != 32) return {};
  char out[41];
  return zmq_z85_encode(out, reinterpret_cast<const std::uint8_t*>(raw.data()), 32) ? std::string(out) : std::string();
}

bus::CurveKeyPair load_or_create_server_key(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    auto kp = bus::generate_key_pair();
    std::string name = file.stem().string();
    if (file.extension() != ".key")
      throw std::runtime_error(file.string() + ": server_key_file must end in .key (its public half goes beside it in .pub)");
    bus::write_key_pair(file.parent_path(), name, kp);
    spdlog::info("created the server key {} (public key {})", file.string(), kp.public_key);
    return kp;
  }
  auto kp = bus::read_key_file(file);
  if (kp.secret_key.empty()) throw std::runtime_error(file.string() + ": the server key file needs its secret-key");
  return kp;
}

}  // namespace

const char* to_string(RemoteAccess::Domain d) {
  switch (d) {
    case RemoteAccess::Domain::plugins: return "plugins";
    case RemoteAccess::Domain::clients: return "clients";
    case RemoteAccess::Domain::events: return "events";
  }
  return "?";
}

std::string RemoteAccess::source_of_user(const std::string& user_id) {
  return user_id.rfind("source:", 0) == 0 ? user_id.substr(7) : std::string();
}

RemoteAccess::RemoteAccess(zmq::context_t& ctx, const ListenSettings& settings, Publish publish)
    : ctx_(ctx), settings_(settings), publish_(std::move(publish)), zap_(ctx, zmq::socket_type::rep) {
  if (!bus::curve_available()) throw std::runtime_error("listen: this libzmq has no CURVE support; TCP needs it");
  try {
    server_ = load_or_create_server_key(settings_.server_key_file);
  } catch (const bus::KeyError& e) {
    throw std::runtime_error(std::string("listen.server_key_file: ") + e.what());
  }
  zap_.set(zmq::sockopt::linger, 0);
  // The handler is bound before any CURVE endpoint exists, and lives as long as they do:
  // there is never a moment when libzmq would admit a key unchecked.
  zap_.bind(kZapEndpoint);
}

RemoteAccess::~RemoteAccess() {
  for (auto& m : monitors_) m.pair.reset();
}

std::string RemoteAccess::listen(zmq::socket_t& sock, const std::string& endpoint, Domain domain) {
  if (endpoint.rfind("tcp://", 0) != 0)
    throw std::runtime_error("listen." + std::string(to_string(domain)) + ": '" + endpoint + "' is not a tcp:// endpoint");
  bus::make_curve_server(sock, server_, zap_domain(domain));
  sock.bind(endpoint);
  std::string bound = sock.get(zmq::sockopt::last_endpoint);
  Monitor m{domain, bound, std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::pair)};
  std::string addr = "inproc://modelzoo.monitor." + std::string(to_string(domain));
  if (zmq_socket_monitor(sock.handle(), addr.c_str(),
                         ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0)
    throw std::runtime_error(std::string("cannot monitor ") + bound + ": " + zmq_strerror(zmq_errno()));
  m.pair->set(zmq::sockopt::linger, 0);
  m.pair->connect(addr);
  monitors_.push_back(std::move(m));
  bound_[domain] = bound;
  spdlog::info("listening for {} on {} (CURVE, server key {})", to_string(domain), bound, server_.public_key);
  return bound;
}

std::vector<zmq::socket_t*> RemoteAccess::sockets() {
  std::vector<zmq::socket_t*> out{&zap_};
  for (auto& m : monitors_) out.push_back(m.pair.get());
  return out;
}

void RemoteAccess::on_readable(std::size_t i) {
  if (i == 0) return answer_zap();
  if (i - 1 < monitors_.size()) read_monitor(monitors_[i - 1]);
}

const std::map<std::string, std::string>& RemoteAccess::client_keys() {
  struct stat st {};
  bool exists = ::stat(settings_.client_keys_file.c_str(), &st) == 0;
  // Same modification time, size and inode: unchanged (an editor's rename changes the inode).
  if (client_keys_loaded_ && exists && st.st_mtim.tv_sec == client_keys_stat_.st_mtim.tv_sec &&
      st.st_mtim.tv_nsec == client_keys_stat_.st_mtim.tv_nsec && st.st_size == client_keys_stat_.st_size &&
      st.st_ino == client_keys_stat_.st_ino)
    return client_keys_;
  client_keys_loaded_ = true;
  client_keys_stat_ = st;
  client_keys_.clear();
  if (!exists) {
    spdlog::warn("listen.client_keys_file {} does not exist: no client is admitted over TCP",
                 settings_.client_keys_file.string());
    return client_keys_;
  }
  std::ifstream in(settings_.client_keys_file);
  std::stringstream text;
  text << in.rdbuf();
  auto list = bus::parse_allow_list(text.str(), settings_.client_keys_file.string());
  for (const auto& p : list.problems) spdlog::warn("{}: skipped", p);
  for (const auto& k : list.keys) client_keys_[k.public_key] = k.name;
  spdlog::info("{}: {} client key(s) admitted", settings_.client_keys_file.string(), client_keys_.size());
  return client_keys_;
}

void RemoteAccess::refuse(Domain d, const std::string& address, const std::string& key, const std::string& why) {
  ++refused_;
  spdlog::warn("refused a {} connection from {}: {}{}", d == Domain::plugins ? "plugin" : "client", address, why,
               key.empty() ? "" : " (key " + key + ")");
  json body = {{"reason", why}, {"address", address}, {"transport", "tcp"}};
  if (!key.empty()) body["key"] = key;
  publish_(d == Domain::plugins ? "plugin.rejected" : "client.rejected", body);
}

void RemoteAccess::answer_zap() {
  for (int round = 0; round < 64; ++round) {
    std::vector<zmq::message_t> frames;
    while (true) {
      zmq::message_t f;
      if (!zap_.recv(f, frames.empty() ? zmq::recv_flags::dontwait : zmq::recv_flags::none)) return;
      bool more = f.more();
      if (frames.size() < 16) frames.push_back(std::move(f));
      if (!more) break;
    }
    // RFC 27: version, request id, domain, address, identity, mechanism, credentials...
    auto frame = [&](std::size_t i) { return i < frames.size() ? frames[i].to_string() : std::string(); };
    std::string version = frame(0), request_id = frame(1), domain = frame(2), address = frame(3),
                mechanism = frame(5), key = z85(frame(6));
    std::string status = "400", text, user;
    Domain d = domain == zap_domain(Domain::plugins) ? Domain::plugins
               : domain == zap_domain(Domain::events) ? Domain::events
                                                       : Domain::clients;
    if (version != "1.0") {
      text = "unsupported ZAP version";
    } else if (mechanism != "CURVE" || key.empty()) {
      text = "only CURVE peers are admitted over TCP";
    } else if (domain == zap_domain(Domain::plugins)) {
      if (auto it = plugin_keys_.find(key); it != plugin_keys_.end()) {
        status = "200";
        user = plugin_user(it->second);
      } else {
        text = "key is not the remote_key of any source";
      }
    } else if (domain == zap_domain(Domain::clients) || domain == zap_domain(Domain::events)) {
      const auto& keys = client_keys();
      if (auto it = keys.find(key); it != keys.end()) {
        status = "200";
        user = "client:" + it->second;
      } else {
        text = "key is not in " + settings_.client_keys_file.string();
      }
    } else {
      text = "unknown ZAP domain";
    }
    if (status == "200") {
      ++admitted_;
      spdlog::info("admitted {} over TCP from {} as {}", to_string(d), address, user);
    } else {
      refuse(d, address, key, text);
    }
    std::vector<std::string> reply = {"1.0", request_id, status, status == "200" ? "OK" : text, user, ""};
    for (std::size_t i = 0; i < reply.size(); ++i)
      zap_.send(zmq::buffer(reply[i]), i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

void RemoteAccess::read_monitor(Monitor& m) {
  for (int round = 0; round < 64; ++round) {
    auto e = bus::read_monitor_event(*m.pair);
    if (!e) return;
    auto [event, value] = *e;
    if (event == 0) continue;
    // An authentication failure was reported by the ZAP handler itself, with the key.
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) continue;
    std::string why = event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                          ? "handshake failed (ZMTP protocol error " + std::to_string(value) +
                                "; a peer without CURVE, or with the wrong server key)"
                          : "handshake failed (" + std::string(zmq_strerror(static_cast<int>(value))) + ")";
    refuse(m.domain, m.endpoint, "", why);
  }
}

json RemoteAccess::status() const {
  json listen = json::object();
  for (const auto& [d, e] : bound_) listen[to_string(d)] = e;
  return {{"endpoints", listen},
          {"server_key", server_.public_key},
          {"client_keys_file", settings_.client_keys_file.string()},
          {"admitted", admitted_},
          {"refused", refused_}};
}

}  // namespace modelzoo::supervisor
