// The logic of the `oci` plugin: models stored as OCI artifacts in an OCI distribution
// registry (docker-registry/distribution, Harbor, ORAS-pushed artifacts, Ollama-style
// registries). See docs/sources.md, "OCI registries".
//
// A model NAME:VERSION is the manifest <repository_prefix><NAME>:<tag>, the tag being
// VERSION or what `versions` maps it to. Its files are the manifest's layers, named by
// their org.opencontainers.image.title annotation (as ORAS writes them), or by their Ollama
// media type (application/vnd.ollama.image.model -> "model.gguf", ...), else "sha256/<hex>".
// A layer digest is a sha256, so the metadata states every file's sha256 and the daemon
// verifies every byte. The tag is resolved to the manifest digest once per metadata call;
// downloads fetch blobs by digest, so a tag moved later cannot change the bytes of a pull.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/http.h"
#include "modelzoo/plugin.h"

namespace modelzoo::plugins::oci {

struct Config {
  std::string url;                // "http://127.0.0.1:5000" or "https://registry.example"
  std::string repository_prefix;  // prepended to the model name to form the repository
  std::map<std::string, std::string> versions;  // modelzoo version -> tag (e.g. "8.0.0" -> "8b")
  std::string user, password;     // basic credentials (also used for the token realm)
  std::string docker_config;      // a docker config.json whose `auths` give credentials
  long timeout_ms = 30000, connect_timeout_ms = 10000;
  std::size_t page_size = 100;    // n= of /v2/_catalog and tags/list
  std::size_t max_repositories = 1000;  // list() stops there
  std::string ca_file;
  // Blob downloads: the SDK's HTTP client (parallel ranged pieces, retries with back-off and
  // Retry-After, resume) from the settings url, timeout_ms, connect_timeout_ms, retry,
  // streams, piece_bytes and ca_file; its auth is the plugin's own (Client::authorization).
  sdk::http::ClientOptions transfer;
};

// Reads and checks the plugin configuration; throws Error(bad_request) naming the setting.
Config parse_config(const nlohmann::json& config);

// The host[:port] key of a docker config.json `auths` entry for `url`, and the credentials
// found there ("auth": base64(user:password), or "username"/"password"). nullopt if none.
std::optional<std::pair<std::string, std::string>> docker_credentials(const std::string& config_json,
                                                                     const std::string& url);

// A parsed WWW-Authenticate challenge: scheme ("bearer", "basic") and its parameters.
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::optional<Challenge> parse_challenge(const std::string& header);

// Metadata from a manifest (OCI image manifest or Docker v2 schema 2). Throws
// Error(internal) naming the problem when the manifest is unusable.
struct ManifestFiles {
  sdk::ModelMetadata metadata;
  std::map<std::string, std::string> digest_of;  // file name -> "sha256:<hex>"
};
ManifestFiles files_from_manifest(const nlohmann::json& manifest, const std::string& name,
                                  const std::string& version, const std::string& manifest_digest);

// The file name a layer gets (see the top of this file); `index` disambiguates.
std::string layer_file_name(const nlohmann::json& layer);

// One HTTP exchange with the registry (libcurl), with the challenge flow.
struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

class Client {
 public:
  explicit Client(Config config, std::string source);
  ~Client();
  // GET url+path with `accept`, answering 401 Bearer/Basic challenges; `repo` names the
  // repository in errors. on_data (when set) receives a 2xx body instead of Response::body.
  // Errors (typed): 401/403 unauthorized, 404 not_found, 429/5xx/connection unavailable.
  // `offset` > 0 sends Range: bytes=offset- and, when a 200 answers it, skips the first
  // `offset` bytes, so on_data always starts at `offset`.
  Response get(const std::string& path, const std::string& repo, const std::vector<std::string>& headers = {},
               const std::function<void(const char*, std::size_t)>& on_data = nullptr, std::uint64_t offset = 0);
  // Any method, for push: same auth, no error mapping (the caller reads the status).
  Response request(const std::string& method, const std::string& path, const std::string& scope,
                   const std::vector<std::string>& headers, const std::string& body,
                   const std::function<void(const char*, std::size_t)>& on_data = nullptr,
                   std::uint64_t offset = 0);
  // The Authorization header value for `scope` ("" when the registry wants none): the one
  // kept from an earlier challenge, or, with `refresh` or none kept, the one a GET /v2/
  // challenge leads to (token realm, basic). For the SDK client's provider auth.
  std::string authorization(const std::string& scope, bool refresh);
  const Config& config() const { return config_; }
  std::string redact(const std::string& s) const { return redactor_(s); }

 private:
  Response once(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                const std::string& body, const std::function<void(const char*, std::size_t)>& on_data,
                std::uint64_t offset = 0);
  std::string fetch_token(const Challenge& c, const std::string& scope);
  Config config_;
  std::string source_;
  std::optional<std::pair<std::string, std::string>> basic_;
  sdk::http::Redactor redactor_;
  std::mutex mu_;
  std::map<std::string, std::string> tokens_;  // scope -> "Bearer ..." / "Basic ..."
};

class OciRegistry final : public sdk::Registry {
 public:
  void configure(const nlohmann::json& config) override;
  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) override;
  std::vector<sdk::ModelSummary> list() override;
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override;

  // "<prefix><name>" and the tag of a version.
  std::string repository(const std::string& name) const;
  std::string tag(const std::string& version) const;

 private:
  ManifestFiles resolve(const std::string& name, const std::string& version);
  // The repository's tags that are (or map to) semantic versions, newest first; tags/list
  // paged by n= and the Link header.
  std::vector<std::string> list_versions_of(const std::string& name);
  static std::string next_page(const Response& r);
  std::unique_ptr<Client> client_;
  std::mutex mu_;
  std::map<std::string, std::map<std::string, std::string>> pinned_;  // "name:version" -> file -> digest
};

// Accept header for manifests and indexes.
extern const char* const kManifestAccept;

}  // namespace modelzoo::plugins::oci
