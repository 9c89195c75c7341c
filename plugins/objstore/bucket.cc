#include "objstore/bucket.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "common/version_file.h"
#include "modelzoo/bus/names.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::objstore {

using nlohmann::json;
using sdk::Error;
using sdk::ErrorCode;

namespace {

constexpr std::size_t kMaxMetadataFile = 1u << 20;
constexpr std::size_t kMaxSidecar = 4096;

bool is_size(const json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<std::int64_t>() >= 0); }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t at = 0;
  while (true) {
    auto next = s.find(sep, at);
    out.push_back(s.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) return out;
    at = next + 1;
  }
}

// The sha256 a sidecar states: its first word, as `sha256sum` writes it ("<hex>  <file>").
std::string sidecar_hash(const std::string& text) {
  auto end = text.find_first_of(" \t\r\n");
  std::string hex = text.substr(0, end);
  std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return bus::is_sha256_hex(hex) ? hex : std::string();
}

std::string file_name_of(const std::string& rel) {
  auto slash = rel.rfind('/');
  return slash == std::string::npos ? rel : rel.substr(slash + 1);
}

}  // namespace

Layout take_layout(json& config, const std::string& plugin) {
  Layout l;
  if (!config.is_object()) return l;
  auto bad = [&](const std::string& key, const std::string& why) {
    throw Error(ErrorCode::bad_request, plugin + ": setting '" + key + "' " + why);
  };
  auto str = [&](const char* key, std::string& out) {
    auto it = config.find(key);
    if (it == config.end() || it->is_null()) return;
    if (!it->is_string()) bad(key, "must be a string");
    out = it->get<std::string>();
  };
  str("prefix", l.prefix);
  while (!l.prefix.empty() && l.prefix.front() == '/') l.prefix.erase(0, 1);
  if (!l.prefix.empty() && l.prefix.back() != '/') l.prefix += '/';
  if (l.prefix.find("//") != std::string::npos) bad("prefix", "holds an empty segment ('//')");
  str("metadata_file", l.metadata_file);
  if (auto why = bus::check_file_name(l.metadata_file)) bad("metadata_file", "is not a file name: " + *why);
  std::string record;
  str("record", record);
  if (record == "metadata") l.record = Record::metadata;
  else if (record == "none") l.record = Record::none;
  else if (!record.empty() && record != "sidecar") bad("record", "must be sidecar, metadata or none");
  if (auto it = config.find("max_hash_bytes"); it != config.end()) {
    if (!is_size(*it)) bad("max_hash_bytes", "must be a non-negative integer");
    l.max_hash_bytes = it->get<std::uint64_t>();
  }
  if (auto it = config.find("page_size"); it != config.end()) {
    if (!is_size(*it) || it->get<std::uint64_t>() < 1 || it->get<std::uint64_t>() > 1000)
      bad("page_size", "must be an integer between 1 and 1000");
    l.page_size = it->get<std::size_t>();
  }
  if (auto it = config.find("head_objects"); it != config.end()) {
    if (!it->is_boolean()) bad("head_objects", "must be true or false");
    l.head_objects = it->get<bool>();
  }
  for (const char* k : {"prefix", "metadata_file", "record", "max_hash_bytes", "page_size", "head_objects"}) config.erase(k);
  return l;
}

void BucketRegistry::set_store(std::unique_ptr<Store> store, Layout layout, std::string plugin) {
  store_ = std::move(store);
  layout_ = std::move(layout);
  plugin_ = std::move(plugin);
}

Store& BucketRegistry::store() {
  if (!store_) throw Error(ErrorCode::internal, plugin_ + ": not configured");
  return *store_;
}

std::uint64_t BucketRegistry::hashes_computed() const {
  std::lock_guard lk(mu_);
  return computed_;
}

std::string BucketRegistry::version_dir(const std::string& name, const std::string& version) const {
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, *why);
  if (auto why = bus::check_version(version)) throw Error(ErrorCode::bad_request, *why);
  return layout_.prefix + name + "/" + version + "/";
}

std::string BucketRegistry::file_path(const std::string& name, const std::string& version, const std::string& file) {
  if (auto why = bus::check_file_name(file)) throw Error(ErrorCode::bad_request, *why);
  return store().object_path(version_dir(name, version) + file);
}

void BucketRegistry::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) {
  const std::string key = version_dir(req.name, req.version) + req.file;
  try {
    HttpRegistry::download(req, sink);
  } catch (const Error& e) {
    throw Error(e.code(), plugin_ + ": " + store().describe(key) + ": " + e.what());
  }
}

std::vector<std::string> BucketRegistry::versions(const std::string& name) {
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, *why);
  const std::string dir = layout_.prefix + name + "/";
  std::vector<std::string> out;
  std::string token;
  do {
    Page p = store().list(dir, "/", token, layout_.page_size);
    for (const auto& pre : p.prefixes) {
      if (pre.size() <= dir.size() + 1 || pre.compare(0, dir.size(), dir) != 0) continue;
      std::string v = pre.substr(dir.size(), pre.size() - dir.size() - 1);
      if (bus::SemVer::parse(v) && !bus::check_version(v)) out.push_back(v);
    }
    token = std::move(p.next);
  } while (!token.empty());
  return out;
}

bool BucketRegistry::exists(const std::string& name, const std::string& version) {
  if (version.empty()) return !versions(name).empty();
  return !store().list(version_dir(name, version), "", "", 1).objects.empty();
}

std::vector<sdk::ModelSummary> BucketRegistry::list() {
  // One walk of every key under the prefix (pages of page_size, each dropped once read): the
  // first semver segment with a file below it splits a key into model name and version.
  std::map<std::string, std::set<std::string>> found;
  std::string token;
  do {
    Page p = store().list(layout_.prefix, "", token, layout_.page_size);
    for (const auto& o : p.objects) {
      if (o.key.compare(0, layout_.prefix.size(), layout_.prefix) != 0) continue;
      auto segs = split(o.key.substr(layout_.prefix.size()), '/');
      for (std::size_t i = 1; i + 1 < segs.size(); ++i) {
        if (!bus::SemVer::parse(segs[i]) || bus::check_version(segs[i])) continue;
        std::string name;
        for (std::size_t k = 0; k < i; ++k) name += (k ? "/" : "") + segs[k];
        if (!bus::check_model_name(name) && !segs.back().empty()) found[name].insert(segs[i]);
        break;
      }
    }
    token = std::move(p.next);
  } while (!token.empty());
  std::vector<sdk::ModelSummary> out;
  for (auto& [name, vs] : found) {
    std::vector<std::pair<bus::SemVer, std::string>> sorted;
    for (const auto& v : vs) sorted.emplace_back(*bus::SemVer::parse(v), v);
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first.compare(b.first) > 0; });
    sdk::ModelSummary s;
    s.name = name;
    for (auto& [_, v] : sorted) s.versions.push_back(v);
    out.push_back(std::move(s));
  }
  return out;
}

std::string BucketRegistry::hash_of(const Object& o, const std::string& file, const std::map<std::string, std::string>& from_file,
                                    const std::map<std::string, std::string>& sidecars, HashFrom& from) {
  if (auto it = from_file.find(file); it != from_file.end()) {
    from = HashFrom::metadata_file;
    return it->second;
  }
  if (auto it = sidecars.find(file); it != sidecars.end()) {
    std::string hex = sidecar_hash(store().get(it->second, kMaxSidecar));
    if (!hex.empty()) {
      from = HashFrom::sidecar;
      return hex;
    }
    sdk::log("warn", plugin_ + ": " + store().describe(it->second) + " does not start with a sha256; hashing the file instead");
  }
  if (layout_.head_objects) {
    std::string hex = store().user_metadata(o.key, "sha256");
    std::transform(hex.begin(), hex.end(), hex.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (bus::is_sha256_hex(hex)) {
      from = HashFrom::object_metadata;
      return hex;
    }
  }
  // Hashed by this process before (its record refused or not asked for).
  const std::string memo = o.key + "\n" + o.etag + "\n" + std::to_string(o.size);
  {
    std::lock_guard lk(mu_);
    if (auto it = known_.find(memo); it != known_.end()) {
      from = HashFrom::remembered;
      return it->second;
    }
  }
  if (o.size > layout_.max_hash_bytes)
    throw Error(ErrorCode::unavailable,
                plugin_ + ": " + store().describe(o.key) + " (" + std::to_string(o.size) +
                    " bytes) has no sha256 stored with it and is larger than max_hash_bytes (" +
                    std::to_string(layout_.max_hash_bytes) + "): give it one in " + layout_.metadata_file +
                    ", a '" + file + ".sha256' sidecar or the object's metadata 'sha256', or raise max_hash_bytes");
  bus::Sha256 h;
  std::uint64_t seen = 0;
  store().read(o.key, [&](const char* p, std::size_t n) {
    h.update(p, n);
    seen += n;
  });
  if (seen != o.size)
    throw Error(ErrorCode::unavailable, plugin_ + ": " + store().describe(o.key) + " changed while it was hashed (listed with " +
                                            std::to_string(o.size) + " bytes, read " + std::to_string(seen) + ")");
  std::string hex = h.hex_digest();
  {
    std::lock_guard lk(mu_);
    ++computed_;
    known_[memo] = hex;
  }
  from = HashFrom::computed_unrecorded;
  if (layout_.record == Record::none) return hex;
  try {
    if (layout_.record == Record::sidecar) store().put(o.key + ".sha256", hex + "  " + file_name_of(file) + "\n");
    else store().set_user_metadata(o.key, "sha256", hex);
    from = HashFrom::computed_recorded;
  } catch (const Error& e) {
    std::lock_guard lk(mu_);
    if (!warned_record_)
      sdk::log("warn", plugin_ + ": cannot record the sha256 computed for " + store().describe(o.key) + " (" + e.what() +
                           "); the plugin keeps it in memory while it runs and hashes such files again after a restart");
    warned_record_ = true;
  }
  return hex;
}

sdk::ModelMetadata BucketRegistry::metadata(const std::string& name, const std::string& version) {
  std::string v = version;
  if (v.empty()) {
    v = latest_version(versions(name));
    if (v.empty())
      throw Error(ErrorCode::not_found, plugin_ + ": no model '" + name + "' at " + store().describe(layout_.prefix + name + "/"));
  }
  const std::string dir = version_dir(name, v);
  std::vector<std::pair<std::string, Object>> files;  // name in the model -> object
  std::set<std::string> listed;
  bool has_metadata_file = false;
  std::string token;
  do {
    Page p = store().list(dir, "", token, layout_.page_size);
    for (auto& o : p.objects) {
      if (o.key.size() <= dir.size() || o.key.compare(0, dir.size(), dir) != 0 || o.key.back() == '/') continue;
      std::string rel = o.key.substr(dir.size());
      if (rel == layout_.metadata_file) {
        has_metadata_file = true;
        continue;
      }
      listed.insert(rel);
      files.emplace_back(std::move(rel), std::move(o));
    }
    token = std::move(p.next);
  } while (!token.empty());
  // A sidecar "<file>.sha256" of a listed file is no file of the model.
  std::map<std::string, std::string> sidecars;  // file -> sidecar key
  std::vector<std::pair<std::string, Object>> kept;
  for (auto& [rel, o] : files) {
    if (rel.size() > 7 && rel.compare(rel.size() - 7, 7, ".sha256") == 0 && listed.count(rel.substr(0, rel.size() - 7))) {
      sidecars[rel.substr(0, rel.size() - 7)] = o.key;
      continue;
    }
    if (auto why = bus::check_file_name(rel)) {
      sdk::log("info", plugin_ + ": skipping " + store().describe(o.key) + ": " + *why);
      continue;
    }
    kept.emplace_back(std::move(rel), std::move(o));
  }
  if (kept.empty())
    throw Error(ErrorCode::not_found, plugin_ + ": no version '" + v + "' of model '" + name + "' at " + store().describe(dir));

  sdk::ModelMetadata m;
  m.name = name;
  m.version = v;
  std::map<std::string, std::string> from_file;
  if (has_metadata_file) {
    const std::string key = dir + layout_.metadata_file;
    VersionFile vf = apply_version_file(store().get(key, kMaxMetadataFile), store().describe(key), m);
    for (const auto& w : vf.warnings) sdk::log("warn", plugin_ + ": " + w);
    from_file = std::move(vf.sha256);
  }
  std::map<HashFrom, std::size_t> counts;
  for (auto& [rel, o] : kept) {
    HashFrom from{};
    std::string hex = hash_of(o, rel, from_file, sidecars, from);
    counts[from]++;
    m.files.push_back({rel, o.size, hex});
  }
  static const std::pair<HashFrom, const char*> said[] = {
      {HashFrom::metadata_file, "from the metadata file"},
      {HashFrom::sidecar, "from .sha256 sidecars"},
      {HashFrom::object_metadata, "from object metadata"},
      {HashFrom::computed_recorded, "computed by the plugin and recorded"},
      {HashFrom::computed_unrecorded, "computed by the plugin (not recorded in the store)"},
      {HashFrom::remembered, "computed by the plugin earlier (kept in memory)"}};
  std::string how;
  for (const auto& [from, text] : said)
    if (auto it = counts.find(from); it != counts.end())
      how.append(how.empty() ? "" : ", ")
          .append(std::to_string(it->second))
          .append(" ")
          .append(from == HashFrom::metadata_file ? "from " + layout_.metadata_file : std::string(text));
  std::string where = "sha256: " + how;
  m.description = m.description.empty() ? where : m.description + " (" + where + ")";
  return m;
}

}  // namespace modelzoo::plugins::objstore
