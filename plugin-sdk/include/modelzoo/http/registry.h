// HttpRegistry, the registry base over an HTTP API (part of the SDK's HTTP base,
// modelzoo/http.h; the spec's CustomModelRegistry).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/http/client.h"
#include "modelzoo/plugin.h"

namespace modelzoo::sdk::http {

// A Registry over an HTTP API. The defaults speak modelzoo's HTTP registry protocol
// (docs/http-registry.md):
//   GET /v1/models                                          -> {"models": [summary...]}
//   GET /v1/models/<name>/-/versions                        -> {"name", "versions": [...]}
//   GET /v1/models/<name>/-/versions/<version>              -> metadata
//   GET /v1/models/<name>/-/versions/<version>/files/<file> -> bytes (Range supported)
// A registry with another API overrides the paths and parsers it needs; requests, retries,
// auth, caching, errors and the download loop stay here.
class HttpRegistry : public Registry {
 public:
  // Reads options_from_config(config) and calls set_options.
  void configure(const nlohmann::json& config) override;

  // Empty `version`: latest_version(versions) from versions_path. Checks that the answer is
  // for the model and version asked.
  ModelMetadata metadata(const std::string& name, const std::string& version) override;
  bool exists(const std::string& name, const std::string& version) override;
  std::vector<ModelSummary> list() override;
  // Streams file_path(...) into the sink in chunks of sink.chunk_size() (flushed at least
  // every 250 ms when the upstream is slow).
  void download(const DownloadRequest& req, ChunkSink& sink) override;

 protected:
  // Creates the client; call from configure() (before any request).
  void set_options(ClientOptions options);
  // Throws Error(internal) when configure() has not set it up.
  HttpClient& client();

  // The mapping. Paths start with '/' and are percent-encoded (encode_path, encode_segment).
  virtual std::string list_path();
  virtual std::string versions_path(const std::string& name);
  virtual std::string metadata_path(const std::string& name, const std::string& version);
  virtual std::string file_path(const std::string& name, const std::string& version, const std::string& file);
  // Parsers of the JSON answers; throw on anything unusable (reported as `internal`).
  virtual std::vector<ModelSummary> parse_list(const nlohmann::json& body);
  virtual std::vector<std::string> parse_versions(const nlohmann::json& body);
  virtual ModelMetadata parse_metadata(const nlohmann::json& body);
  // The version "latest" means: the highest release by semver precedence, else the highest
  // pre-release; strings that are not versions are ignored. Empty when there is none.
  virtual std::string latest_version(const std::vector<std::string>& versions);

 private:
  std::unique_ptr<HttpClient> client_;
};

}  // namespace modelzoo::sdk::http
