// The cache of JSON answers (modelzoo/http/response_cache.h).
#include "modelzoo/http/response_cache.h"

#include <algorithm>


namespace modelzoo::sdk::http {

using nlohmann::json;

ResponseCache::ResponseCache(milliseconds ttl, std::size_t max_entries, ClockFn clock)
    : ttl_(ttl), max_entries_(std::max<std::size_t>(max_entries, 1)), clock_(std::move(clock)) {}

std::optional<json> ResponseCache::get(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = index_.find(key);
  if (it == index_.end()) return std::nullopt;
  if (clock_() >= it->second->expires) {
    lru_.erase(it->second);
    index_.erase(it);
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->value;
}

void ResponseCache::put(const std::string& key, json value) {
  if (ttl_.count() <= 0) return;
  std::lock_guard lk(mu_);
  auto now = clock_();
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
  lru_.push_front({key, std::move(value), now + ttl_});
  index_[key] = lru_.begin();
  // Expired entries go first, then the least recently used.
  for (auto it = lru_.begin(); it != lru_.end() && lru_.size() > max_entries_;) {
    if (now >= it->expires) {
      index_.erase(it->key);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  while (lru_.size() > max_entries_) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
}

void ResponseCache::erase(const std::string& key) {
  std::lock_guard lk(mu_);
  if (auto it = index_.find(key); it != index_.end()) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

void ResponseCache::clear() {
  std::lock_guard lk(mu_);
  lru_.clear();
  index_.clear();
}

std::size_t ResponseCache::size() const {
  std::lock_guard lk(mu_);
  return lru_.size();
}

}  // namespace modelzoo::sdk::http
