#include "memory/models.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cctype>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::memory {
namespace {

using nlohmann::json;
using sdk::Error;
using sdk::ErrorCode;

constexpr std::size_t kHashBlock = 1u << 20;

std::uint64_t splitmix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// Word k of the stream (bytes 8k .. 8k+7, little-endian); `base` is the mixed seed.
inline std::uint64_t word_at(std::uint64_t base, std::uint64_t k) { return splitmix64(base + (k + 1) * kGolden); }

inline void store_le(unsigned char* p, std::uint64_t w) {
  if constexpr (std::endian::native == std::endian::big) w = __builtin_bswap64(w);
  std::memcpy(p, &w, 8);
}

[[noreturn]] void bad(const std::string& msg) { throw Error(ErrorCode::bad_request, "memory: " + msg); }

std::string describe_type(const json& j) { return j.type_name(); }

// Optional string field; throws when present with another type.
std::optional<std::string> opt_string(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) bad(where + ": '" + key + "' must be a string, not " + describe_type(*it));
  return it->get<std::string>();
}

// Optional non-negative integer field.
std::optional<std::uint64_t> opt_uint(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) return it->get<std::uint64_t>();
  if (it->is_number_integer() && it->get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(it->get<std::int64_t>());
  bad(where + ": '" + key + "' must be a non-negative integer, not " +
      (it->is_number_integer() ? std::string("a negative number") : describe_type(*it)));
}

std::optional<bool> opt_bool(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) bad(where + ": '" + key + "' must be a boolean, not " + describe_type(*it));
  return it->get<bool>();
}

void check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& where) {
  for (const auto& [k, v] : obj.items())
    if (!allowed.count(k)) bad(where + ": unknown field '" + k + "'");
}

File parse_file(const json& j, const std::string& where_model, std::size_t index) {
  std::string where = where_model + " file #" + std::to_string(index + 1);
  if (!j.is_object()) bad(where + " is not a map");
  File f;
  auto name = opt_string(j, "name", where);
  if (!name) bad(where + " lacks 'name'");
  if (auto why = bus::check_file_name(*name)) bad(where + ": invalid 'name': " + *why);
  f.name = *name;
  where = where_model + " file '" + f.name + "'";
  check_keys(j, {"name", "content", "size", "seed", "declared_sha256", "serve_size"}, where);
  f.serve_size = opt_uint(j, "serve_size", where);

  auto content = opt_string(j, "content", where);
  auto size = opt_uint(j, "size", where);
  auto seed = opt_uint(j, "seed", where);
  if (content && size) bad(where + " has both 'content' and 'size'");
  if (!content && !size) bad(where + " has neither 'content' nor 'size'");
  if (content && seed) bad(where + " has 'seed', which goes with 'size', not 'content'");
  if (content) {
    f.generated = false;
    f.content = std::move(*content);
    f.size = f.content.size();
    f.sha256 = bus::Sha256::of(f.content);
  } else {
    f.generated = true;
    f.size = *size;
    f.seed = seed.value_or(0);  // hashed later, by hash_generated()
  }
  if (auto declared = opt_string(j, "declared_sha256", where)) {
    std::string d = *declared;
    std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!bus::is_sha256_hex(d)) bad(where + ": 'declared_sha256' is not 64 hex digits");
    f.advertised = d;
  }
  return f;
}

std::string hash_generated(std::uint64_t seed, std::uint64_t size) {
  bus::Sha256 h;
  std::unique_ptr<unsigned char[]> buf(new unsigned char[kHashBlock]);
  for (std::uint64_t off = 0; off < size;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kHashBlock, size - off));
    generate(seed, off, buf.get(), n);
    h.update(buf.get(), n);
    off += n;
  }
  return h.hex_digest();
}

// Hashes every generated file, several at once (configure() runs before the plugin serves,
// and files may be large), then fills in the metadata file lists.
void finish(std::vector<Model>& models) {
  std::vector<File*> jobs;
  for (auto& m : models)
    for (auto& f : m.files)
      if (f.generated) jobs.push_back(&f);
  std::sort(jobs.begin(), jobs.end(), [](File* a, File* b) { return a->size > b->size; });  // largest first
  std::size_t workers = std::min<std::size_t>(jobs.size(), std::max(1u, std::min(8u, std::thread::hardware_concurrency())));
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  std::exception_ptr failure;
  auto work = [&] {
    try {
      for (std::size_t i; (i = next.fetch_add(1)) < jobs.size();)
        jobs[i]->sha256 = hash_generated(jobs[i]->seed, jobs[i]->size);
    } catch (...) {
      std::lock_guard lk(mu);
      if (!failure) failure = std::current_exception();
      next = jobs.size();
    }
  };
  if (workers <= 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < workers; ++i) threads.emplace_back(work);
    for (auto& t : threads) t.join();
  }
  if (failure) std::rethrow_exception(failure);
  for (auto& m : models)
    for (auto& f : m.files) {
      if (f.advertised.empty()) f.advertised = f.sha256;
      m.meta.files.push_back({f.name, f.size, f.advertised});
    }
}

Model parse_model(const json& j, std::size_t index) {
  std::string where = "model #" + std::to_string(index + 1);
  if (!j.is_object()) bad(where + " is not a map");
  Model m;
  auto name = opt_string(j, "name", where);
  if (!name) bad(where + " lacks 'name'");
  if (auto why = bus::check_model_name(*name)) bad(where + ": invalid 'name': " + *why);
  where = "model '" + *name + "'";
  auto version = opt_string(j, "version", where);
  if (!version) bad(where + " lacks 'version'");
  if (auto why = bus::check_version(*version)) bad(where + ": invalid 'version': " + *why);
  where = "model '" + *name + "' version '" + *version + "'";
  check_keys(j, {"name", "version", "description", "author", "license", "format", "tags", "files"}, where);

  m.meta.name = *name;
  m.meta.version = *version;
  m.meta.description = opt_string(j, "description", where).value_or("");
  m.meta.author = opt_string(j, "author", where).value_or("");
  m.meta.license = opt_string(j, "license", where).value_or("");
  m.meta.format = opt_string(j, "format", where).value_or("");
  if (auto it = j.find("tags"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) bad(where + ": 'tags' must be a list of strings, not " + describe_type(*it));
    for (const auto& t : *it) {
      if (!t.is_string()) bad(where + ": every tag must be a string, found " + describe_type(t));
      m.meta.tags.push_back(t.get<std::string>());
    }
  }
  auto files = j.find("files");
  if (files != j.end() && !files->is_null()) {
    if (!files->is_array()) bad(where + ": 'files' must be a list, not " + describe_type(*files));
    std::set<std::string> seen;
    for (std::size_t i = 0; i < files->size(); ++i) {
      File f = parse_file((*files)[i], where, i);
      if (!seen.insert(f.name).second) bad(where + " lists file '" + f.name + "' twice");
      m.files.push_back(std::move(f));
    }
  }
  return m;
}

// Newest first; equal precedence (differing build metadata) ordered by string, descending.
bool newer(const std::string& a, const std::string& b) {
  auto sa = bus::SemVer::parse(a), sb = bus::SemVer::parse(b);
  int c = sa->compare(*sb);
  return c != 0 ? c > 0 : a > b;
}

}  // namespace

void generate(std::uint64_t seed, std::uint64_t offset, void* out, std::size_t size) {
  auto* p = static_cast<unsigned char*>(out);
  const std::uint64_t base = splitmix64(seed ^ 0x6d656d6f72797a6fULL);  // "memoryzo"
  std::uint64_t k = offset / 8;
  unsigned skip = static_cast<unsigned>(offset % 8);
  if (skip && size) {
    unsigned char w[8];
    store_le(w, word_at(base, k++));
    std::size_t n = std::min<std::size_t>(8 - skip, size);
    std::memcpy(p, w + skip, n);
    p += n;
    size -= n;
  }
  while (size >= 8) {
    store_le(p, word_at(base, k++));
    p += 8;
    size -= 8;
  }
  if (size) {
    unsigned char w[8];
    store_le(w, word_at(base, k));
    std::memcpy(p, w, size);
  }
}

void File::read(std::uint64_t offset, void* out, std::size_t n) const {
  if (generated)
    generate(seed, offset, out, n);
  else
    std::memcpy(out, content.data() + offset, n);
}

Config parse_config(const json& config) {
  Config c;
  if (config.is_null()) return c;
  if (!config.is_object()) bad("configuration is not a map");
  const std::string where = "configuration";
  c.fail_download_after_bytes = opt_uint(config, "fail_download_after_bytes", where);
  c.crash_on_download = opt_bool(config, "crash_on_download", where).value_or(false);
  c.metadata_delay_ms = opt_uint(config, "metadata_delay_ms", where).value_or(0);
  c.throttle_bytes_per_second = opt_uint(config, "throttle_bytes_per_second", where);
  if (c.throttle_bytes_per_second == 0u) bad(where + ": 'throttle_bytes_per_second' must be positive");
  auto models = config.find("models");
  if (models == config.end() || models->is_null()) return c;
  if (!models->is_array()) bad("'models' must be a list, not " + describe_type(*models));
  std::set<std::pair<std::string, std::string>> seen;
  for (std::size_t i = 0; i < models->size(); ++i) {
    Model m = parse_model((*models)[i], i);
    if (!seen.insert({m.meta.name, m.meta.version}).second)
      bad("model '" + m.meta.name + "' version '" + m.meta.version + "' is defined twice");
    c.models.push_back(std::move(m));
  }
  finish(c.models);
  return c;
}

Models::Models(Config config) : config_(std::move(config)) {
  for (std::size_t i = 0; i < config_.models.size(); ++i) by_name_[config_.models[i].meta.name].push_back(i);
  for (auto& [name, idx] : by_name_)
    std::sort(idx.begin(), idx.end(), [this](std::size_t a, std::size_t b) {
      return newer(config_.models[a].meta.version, config_.models[b].meta.version);
    });
}

const Model& Models::find(const std::string& name, const std::string& version) const {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) throw Error(ErrorCode::not_found, "memory: no model '" + name + "'");
  if (version.empty()) return config_.models[it->second.front()];
  for (std::size_t i : it->second)
    if (config_.models[i].meta.version == version) return config_.models[i];
  throw Error(ErrorCode::not_found, "memory: no version '" + version + "' of model '" + name + "'");
}

sdk::ModelMetadata Models::metadata(const std::string& name, const std::string& version) const {
  return find(name, version).meta;
}

std::vector<sdk::ModelSummary> Models::list() const {
  std::vector<sdk::ModelSummary> out;
  for (const auto& [name, idx] : by_name_) {
    sdk::ModelSummary s;
    s.name = name;
    s.description = config_.models[idx.front()].meta.description;
    for (std::size_t i : idx) s.versions.push_back(config_.models[i].meta.version);
    out.push_back(std::move(s));
  }
  return out;
}

void Models::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) const {
  const Model& m = find(req.name, req.version);
  const File* f = nullptr;
  for (const auto& x : m.files)
    if (x.name == req.file) f = &x;
  if (!f)
    throw Error(ErrorCode::not_found, "memory: model '" + req.name + "' version '" + m.meta.version +
                                          "' has no file '" + req.file + "'");
  const std::uint64_t served = f->serve_size.value_or(f->size);  // the serve_size knob lies about it
  if (req.offset > served)
    throw Error(ErrorCode::bad_request, "memory: offset " + std::to_string(req.offset) + " is past the end of '" +
                                            req.file + "' (" + std::to_string(served) + " bytes)");
  std::uint64_t end = served;
  bool fail = false;
  if (config_.fail_download_after_bytes && *config_.fail_download_after_bytes < served - req.offset) {
    end = req.offset + *config_.fail_download_after_bytes;
    fail = true;
  }
  std::size_t chunk = sink.chunk_size();
  if (chunk == 0) chunk = 1u << 20;
  std::size_t buf_size = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, end - req.offset));
  std::unique_ptr<unsigned char[]> buf(new unsigned char[std::max<std::size_t>(buf_size, 1)]);
  auto started = std::chrono::steady_clock::now();
  for (std::uint64_t off = req.offset; off < end;) {
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk, end - off));
    if (f->generated) {
      generate(f->seed, off, buf.get(), n);  // also past `size` when serve_size says so
      sink.write(buf.get(), n);
    } else if (off + n <= f->content.size()) {
      sink.write(f->content.data() + off, n);
    } else {  // serve_size beyond the content: zeros
      std::memset(buf.get(), 0, n);
      std::size_t have = off < f->content.size() ? f->content.size() - off : 0;
      std::memcpy(buf.get(), f->content.data() + off, have);
      sink.write(buf.get(), n);
    }
    off += n;
    if (config_.throttle_bytes_per_second) {
      auto due = started + std::chrono::microseconds((off - req.offset) * 1000000 / *config_.throttle_bytes_per_second);
      std::this_thread::sleep_until(due);
    }
  }
  if (fail)
    throw Error(ErrorCode::unavailable,
                "memory: simulated failure after " + std::to_string(*config_.fail_download_after_bytes) + " bytes");
}

}  // namespace modelzoo::plugins::memory
