#include "modelzoo/core/plugin_manager.h"

#include <algorithm>

#include "modelzoo/bus/names.h"

namespace modelzoo::core {

bool asked_before(const PluginRecord& a, const PluginRecord& b) {
  if (a.priority != b.priority) return a.priority > b.priority;
  return a.name < b.name;
}

void PluginManager::add(PluginRecord p) {
  std::string key = p.name;
  plugins_[key] = std::move(p);
}

bool PluginManager::remove(const std::string& name) { return plugins_.erase(name) > 0; }

const PluginRecord* PluginManager::get(const std::string& name) const {
  auto it = plugins_.find(name);
  return it == plugins_.end() ? nullptr : &it->second;
}

std::vector<PluginRecord> PluginManager::list() const {
  std::vector<PluginRecord> out;
  for (const auto& [_, p] : plugins_) out.push_back(p);
  std::sort(out.begin(), out.end(), asked_before);
  return out;
}

std::vector<PluginRecord> PluginManager::candidates(const std::string& model, const std::string& capability) const {
  std::vector<PluginRecord> out;
  for (const auto& [_, p] : plugins_) {
    if (std::find(p.capabilities.begin(), p.capabilities.end(), capability) == p.capabilities.end()) continue;
    for (const auto& pattern : p.handles) {
      if (bus::glob_match(pattern, model)) {
        out.push_back(p);
        break;
      }
    }
  }
  std::sort(out.begin(), out.end(), asked_before);
  return out;
}

}  // namespace modelzoo::core
