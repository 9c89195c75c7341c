#include "client_front.h"

#include <algorithm>
#include <memory>
#include <vector>

#include <spdlog/spdlog.h>

#include "modelzoo/bus/model.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/bus/socket.h"

namespace modelzoo::supervisor {
using bus::Error;
using bus::ErrorCode;
using bus::Message;
using bus::MessageType;
using nlohmann::json;

ClientFront::ClientFront(const DaemonConfig& cfg, zmq::socket_t& client_sock, Sources& sources, PluginCalls& calls,
                         std::function<json()> daemon_status)
    : cfg_(cfg), sock_(client_sock), sources_(sources), calls_(calls), daemon_status_(std::move(daemon_status)) {}

void ClientFront::reply(const ClientWaiter& w, json body) {
  answered(w);
  Message m = Message::make_reply(w.id, std::move(body));
  bus::send_to(sock_, w.routing_id, m);
}

void ClientFront::reply_raw(const ClientWaiter& w, std::string raw_body) {
  answered(w);
  Message m = Message::make_raw_reply(w.id, std::move(raw_body));
  bus::send_to(sock_, w.routing_id, m);
}

void ClientFront::error(const ClientWaiter& w, const Error& e) {
  answered(w);
  Message m = Message::make_error(w.id, e.code(), e.what());
  bus::send_to(sock_, w.routing_id, m);
}

void ClientFront::progress(const ClientWaiter& w, const json& body) {
  Message m = Message::make(MessageType::progress, body);
  m.id = w.id;
  bus::send_to(sock_, w.routing_id, m);
}

// Counts a request in, or refuses it when its client or everyone has too many waiting.
bool ClientFront::admit(const ClientWaiter& w) {
  std::size_t& mine = inflight_by_client_[w.routing_id];
  std::string why;
  if (mine >= kMaxRequestsPerClient)
    why = "too many requests in flight from this client (limit " + std::to_string(kMaxRequestsPerClient) + ")";
  else if (inflight_total_ >= kMaxRequestsInFlight)
    why = "too many requests in flight (limit " + std::to_string(kMaxRequestsInFlight) + ")";
  if (!why.empty()) {
    if (mine == 0) inflight_by_client_.erase(w.routing_id);
    Message m = Message::make_error(w.id, ErrorCode::unavailable, why);
    bus::send_to(sock_, w.routing_id, m);
    return false;
  }
  ++mine;
  ++inflight_total_;
  ++inflight_[{w.routing_id, w.id}];
  return true;
}

void ClientFront::answered(const ClientWaiter& w) {
  auto it = inflight_.find({w.routing_id, w.id});
  if (it == inflight_.end()) return;
  if (--it->second == 0) inflight_.erase(it);
  --inflight_total_;
  if (auto c = inflight_by_client_.find(w.routing_id); c != inflight_by_client_.end() && --c->second == 0)
    inflight_by_client_.erase(c);
}

void ClientFront::read_socket() {
  for (int i = 0; i < 512; ++i) {
    std::string peer;
    std::optional<bus::Received> r;
    try {
      r = bus::receive(sock_, true, &peer);
    } catch (const bus::ProtocolError& e) {
      spdlog::warn("invalid message from a client: {}", e.what());
      Message err = Message::make_error(0, ErrorCode::bad_request, std::string("invalid message: ") + e.what());
      bus::send_to(sock_, peer, err);
      continue;
    }
    if (!r) return;
    Message& m = r->message;
    ClientWaiter w{r->routing_id, m.id};
    if (m.type == MessageType::heartbeat) continue;
    if (m.type != MessageType::request) {
      error({r->routing_id, m.id}, Error(ErrorCode::bad_request, std::string("clients send requests, not ") +
                                                                           std::string(bus::to_string(m.type))));
      continue;
    }
    if (!admit(w)) continue;
    try {
      on_request(w, m);
    } catch (const Error& e) {
      error(w, e);
    } catch (const std::exception& e) {
      spdlog::error("client request {} failed: {}", m.method, e.what());
      error(w, Error(ErrorCode::internal, e.what()));
    }
  }
}

std::uint32_t ClientFront::plugin_timeout(const Message& m) const {
  auto t = static_cast<std::uint32_t>(cfg_.request_timeout.count());
  if (m.timeout_ms) t = std::min(t, m.timeout_ms);
  return t;
}

// Every parameter is read strictly (docs/protocol.md, "Client protocol"): a mistyped one is
// `bad_request` naming it, never taken as absent.
void ClientFront::on_request(const ClientWaiter& w, Message& m) {
  const std::string& method = m.method;
  if (method == "status") {
    json status = daemon_status_();
    auto c = sources_.counts();
    status["config_reloads"] = sources_.reloads();
    status["requests_in_flight"] = inflight_total_;
    status["plugins"] = {{"total", c.total}, {"ready", c.ready}, {"failed", c.failed}};
    reply(w, std::move(status));
  } else if (method == "plugins") {
    reply(w, {{"plugins", sources_.plugins_view()}});
  } else if (method == "plugin.reset") {
    std::string name = bus::require_string_param(m.body, "name");
    std::string state = sources_.reset(name);
    reply(w, {{"name", name}, {"state", state}});
  } else if (method == "models") {
    list_models(w, plugin_timeout(m));
  } else if (method == "show") {
    auto ref = bus::parse_model_ref(bus::require_string_param(m.body, "model"));
    sources_.resolve(ref, plugin_timeout(m), [this, w](core::Resolution res) {
      if (!res.best()) return error(w, res.failure());
      reply_raw(w, core::show_reply_msgpack(res));  // written without a JSON tree
    });
  } else if (method == "pull" || method == "load") {
    auto ref = bus::parse_model_ref(bus::require_string_param(m.body, "model"));
    bool offline = bus::optional_bool_param(m.body, "offline").value_or(false);
    engine_->start(w, ref, method == "load", offline);
  } else if (method == "ping") {
    reply(w, {{"pong", true}});
  } else {
    throw Error(ErrorCode::bad_request, "unknown method '" + method.substr(0, 64) + "'");
  }
}

void ClientFront::list_models(const ClientWaiter& w, std::uint32_t timeout) {
  struct Gather {
    std::map<std::string, json> models;
    json errors = json::array();
    std::size_t outstanding = 0;
  };
  auto g = std::make_shared<Gather>();
  auto plugins = sources_.ready_plugins();
  auto finish = [this, g, w] {
    json list = json::array();
    for (auto& [_, v] : g->models) list.push_back(v);
    reply(w, {{"models", list}, {"errors", g->errors}});
  };
  for (const auto& p : plugins)
    if (std::find(p.capabilities.begin(), p.capabilities.end(), "list") != p.capabilities.end()) g->outstanding++;
  if (g->outstanding == 0) return finish();
  for (const auto& p : plugins) {
    if (std::find(p.capabilities.begin(), p.capabilities.end(), "list") == p.capabilities.end()) continue;
    calls_.call(p.name, "list", json::object(), timeout, [g, finish, name = p.name](core::CallResult r) {
      if (!r.ok()) {
        g->errors.push_back({{"plugin", name}, {"code", bus::to_string(r.error->code())}, {"message", r.error->what()}});
      } else if (auto it = r.body.find("models"); it != r.body.end() && it->is_array()) {
        for (const auto& mj : *it) {
          try {
            auto s = bus::ModelSummary::from_json(mj);
            auto& entry = g->models[s.name];
            if (entry.is_null()) entry = {{"name", s.name}, {"versions", json::array()}, {"description", s.description}, {"sources", json::array()}};
            for (const auto& v : s.versions)
              if (std::find(entry["versions"].begin(), entry["versions"].end(), v) == entry["versions"].end())
                entry["versions"].push_back(v);
            entry["sources"].push_back(name);
          } catch (const Error& e) {
            g->errors.push_back({{"plugin", name}, {"code", "internal"}, {"message", std::string("invalid model entry: ") + e.what()}});
          }
        }
      }
      if (--g->outstanding == 0) finish();
    });
  }
}

}  // namespace modelzoo::supervisor
