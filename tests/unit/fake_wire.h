// A fake of the daemon's send function for unit tests of what drives PluginCalls
// (supervisor/src/plugin_calls.h): it records what went out, and refuses the sources named in
// `down` as the daemon refuses a source whose plugin is not running.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "plugin_calls.h"

namespace modelzoo::supervisor::fakes {

struct Sent {
  std::string source;
  bus::MessageType type;
  std::uint64_t id;
  std::string method;
  nlohmann::json body;
};

struct Wire {
  std::vector<Sent> sent;          // what reached a running plugin, in order
  std::vector<std::string> down;   // sources whose plugin is not running: sends fail
  std::vector<Sent> refused;       // what was sent to one of those
  PluginCalls::Send send() {
    return [this](const std::string& source, bus::Message& m) -> std::optional<bus::Error> {
      for (const auto& d : down)
        if (d == source) {
          refused.push_back({source, m.type, m.id, m.method, m.body});
          return bus::Error(bus::ErrorCode::unavailable, "plugin '" + source + "' is not running");
        }
      sent.push_back({source, m.type, m.id, m.method, m.body});
      return std::nullopt;
    };
  }
};

}  // namespace modelzoo::supervisor::fakes
