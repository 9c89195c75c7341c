// The layout every object-store registry shares (S3 and S3-compatible stores, Azure Blob,
// GCS; docs/sources.md, "Object stores"): a bucket (container) and a prefix holding models as
//
//   <prefix><model name>/<version>/<files...>        the local-file layout; a name may hold '/'
//   <prefix><model name>/<version>/modelzoo.yaml     optional: description, ..., sha256 of files
//   <prefix><model name>/<version>/<file>.sha256     optional sidecar: "<hex>  <file>" (sha256sum)
//
// Each file's sha256 comes, in this order, from modelzoo.yaml, from its sidecar, from the
// object's user metadata `sha256` (S3 x-amz-meta-sha256, Azure x-ms-meta-sha256, GCS
// x-goog-meta-sha256), else the plugin reads the object once, hashes it and records the hash
// (`record: sidecar` (default) | metadata | none); a store that refuses the write keeps it in
// the plugin's memory for as long as it runs, and says so. `show` tells where the hashes came
// from (the description). The daemon checks every byte against them either way.
//
// A store implements Store (listing pages, small reads and writes); the registry does the
// mapping, and downloads go through the SDK's HTTP client (parallel ranges, retries, resume).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/http.h"

namespace modelzoo::plugins::objstore {

struct Object {
  std::string key;
  std::uint64_t size = 0;
  std::string etag;  // as the store gives it (quotes included); "" when none
};

struct Page {
  std::vector<Object> objects;
  std::vector<std::string> prefixes;  // with a delimiter: the "directories" (full key prefixes)
  std::string next;                   // the continuation token / marker; "" on the last page
};

// One bucket or container, as the layout uses it. Keys are full object keys (no leading
// '/'). Errors: sdk::Error with the protocol's codes, naming the bucket and key.
class Store {
 public:
  virtual ~Store() = default;
  // One page (at most `max` entries) of the keys that start with `prefix`; with delimiter
  // "/", the keys holding a further '/' come once each as `prefixes`. `token` "" for the first.
  virtual Page list(const std::string& prefix, const std::string& delimiter, const std::string& token, std::size_t max) = 0;
  // A small object's bytes; one longer than `max` is an error (internal).
  virtual std::string get(const std::string& key, std::size_t max) = 0;
  // An object's bytes from the start, in order, to `on_data`.
  virtual void read(const std::string& key, const std::function<void(const char*, std::size_t)>& on_data) = 0;
  // The object's user metadata `name` ("" when it has none); throws not_found.
  virtual std::string user_metadata(const std::string& key, const std::string& name) = 0;
  virtual void put(const std::string& key, const std::string& body) = 0;
  // Sets the object's user metadata `name` to `value` in place, its bytes and its other
  // metadata unchanged.
  virtual void set_user_metadata(const std::string& key, const std::string& name, const std::string& value) = 0;
  // The request path (under the HTTP client's base URL, encoded) of the object's bytes.
  virtual std::string object_path(const std::string& key) const = 0;
  // "s3://bucket/key", for messages.
  virtual std::string describe(const std::string& key) const = 0;
};

enum class Record { sidecar, metadata, none };

struct Layout {
  std::string prefix;                       // "" or ending with '/', never starting with one
  std::string metadata_file = "modelzoo.yaml";
  Record record = Record::sidecar;
  std::uint64_t max_hash_bytes = 1ull << 30;  // larger objects with no stored sha256 are refused
  std::size_t page_size = 1000;             // keys asked per listing page
  bool head_objects = true;                 // look for the sha256 in each object's user metadata
};

// Reads and removes from `config` the layout's settings: prefix, metadata_file,
// record (sidecar|metadata|none), max_hash_bytes, page_size (1-1000), head_objects. Throws
// Error(bad_request) "<plugin>: setting '...' ..." naming the setting.
Layout take_layout(nlohmann::json& config, const std::string& plugin);

// Where the sha256 of one file came from.
enum class HashFrom { metadata_file, sidecar, object_metadata, computed_recorded, computed_unrecorded, remembered };

class BucketRegistry : public sdk::http::HttpRegistry {
 public:
  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) override;
  bool exists(const std::string& name, const std::string& version) override;
  std::vector<sdk::ModelSummary> list() override;
  // HttpRegistry's download (parallel ranges, retries, resume), its errors naming the object.
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override;

  // The versions of `name` (semver names of its "directories"), unordered.
  std::vector<std::string> versions(const std::string& name);
  const Layout& layout() const { return layout_; }
  // The number of objects this process read to hash them (for tests).
  std::uint64_t hashes_computed() const;

  // Sets the store and the layout; call from configure(). Public for the unit tests, which
  // give a Store of their own.
  void set_store(std::unique_ptr<Store> store, Layout layout, std::string plugin);

 protected:
  std::string file_path(const std::string& name, const std::string& version, const std::string& file) override;
  Store& store();

 private:
  std::string version_dir(const std::string& name, const std::string& version) const;
  std::string hash_of(const Object& o, const std::string& file, const std::map<std::string, std::string>& from_file,
                      const std::map<std::string, std::string>& sidecars, HashFrom& from);

  std::unique_ptr<Store> store_;
  Layout layout_;
  std::string plugin_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> known_;  // "<key>\n<etag>\n<size>" -> sha256 (computed here)
  std::uint64_t computed_ = 0;
  bool warned_record_ = false;
};

}  // namespace modelzoo::plugins::objstore
