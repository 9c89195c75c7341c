// The TTL + LRU cache of JSON answers (part of the SDK's HTTP base, modelzoo/http.h).
#pragma once

#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "modelzoo/http/clock.h"

namespace modelzoo::sdk::http {

// JSON answers by key (the request path) for `ttl`, at most `max_entries` (least recently
// used dropped first). A ttl of 0 disables it. Thread-safe. `clock` is for tests.
class ResponseCache {
 public:
  explicit ResponseCache(milliseconds ttl, std::size_t max_entries = 1024, ClockFn clock = Clock::now);

  std::optional<nlohmann::json> get(const std::string& key);
  void put(const std::string& key, nlohmann::json value);
  void erase(const std::string& key);
  void clear();
  std::size_t size() const;
  milliseconds ttl() const { return ttl_; }

 private:
  struct Entry {
    std::string key;
    nlohmann::json value;
    Clock::time_point expires;
  };
  milliseconds ttl_;
  std::size_t max_entries_;
  ClockFn clock_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
};

}  // namespace modelzoo::sdk::http
