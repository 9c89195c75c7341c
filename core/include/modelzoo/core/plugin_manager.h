// The registry of connected plugins and the choice of sources for a model.
// Pure logic, no I/O: the daemon registers a plugin when its hello is accepted and
// unregisters it when it exits. Not thread-safe (the daemon's event loop owns it).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace modelzoo::core {

struct PluginRecord {
  std::string name;       // instance name, unique (a source in the configuration)
  std::string plugin;     // the plugin it runs (manifest name)
  std::string version;
  std::string kind = "registry";
  int priority = 0;       // higher is asked first
  std::vector<std::string> handles;       // glob patterns of model names
  std::vector<std::string> capabilities;  // methods it serves
};

class PluginManager {
 public:
  // Adds `p`, replacing any plugin of the same name.
  void add(PluginRecord p);
  // Removes the plugin `name`; returns false when there was none.
  bool remove(const std::string& name);
  // The plugin `name`, or nullptr. The pointer is valid until the next add/remove.
  const PluginRecord* get(const std::string& name) const;
  // All plugins, in source order (see below).
  std::vector<PluginRecord> list() const;
  // Plugins with `capability` one of whose patterns matches `model`, in source order:
  // priority descending, ties broken by name ascending (deterministic).
  std::vector<PluginRecord> candidates(const std::string& model, const std::string& capability = "metadata") const;
  std::size_t size() const { return plugins_.size(); }

 private:
  std::map<std::string, PluginRecord> plugins_;
};

// Source order: true when `a` is asked before `b`.
bool asked_before(const PluginRecord& a, const PluginRecord& b);

}  // namespace modelzoo::core
