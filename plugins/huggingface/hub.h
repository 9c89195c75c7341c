// The logic of the `huggingface` plugin: model repos of the Hugging Face Hub (or of a mirror or
// self-hosted hub speaking its API) as modelzoo models. HTTP (connection reuse, retries,
// Retry-After, redirects that never carry the token to another host, resume) is the SDK's
// HttpClient; this maps names, revisions and files (docs/sources.md, "Hugging Face Hub").
//
//   name     <prefix><org>/<repo>           (prefix configurable, e.g. "hf/")
//   version  0.0.0+<40-hex commit sha>      a commit, pinned; "latest" (no version) resolves the
//                                           configured revision (default "main") to its commit
//            any other semantic version     the tag of that name, resolved to its commit
//   files    the repo's siblings that pass allow_patterns / ignore_patterns
//   sha256   lfs.sha256 for LFS files; for small git files the plugin fetches the file, checks
//            its git blob id (sha1 of "blob <size>\0" + bytes) against the hub's blobId and
//            states the sha256 of those bytes. A git file larger than max_git_file_bytes has no
//            hash the daemon can check: the model is refused, naming the file.
#pragma once

#include <functional>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/http.h"

namespace modelzoo::plugins::huggingface {

struct HubConfig {
  std::string endpoint = "https://huggingface.co";
  std::string prefix;               // stripped from model names to get the repo
  std::string revision = "main";    // what "latest" means
  std::vector<std::string> allow_patterns;   // empty: every file
  std::vector<std::string> ignore_patterns;
  std::uint64_t max_git_file_bytes = 16u << 20;
  std::size_t list_limit = 100;     // models asked of /api/models for `list`
  std::string author;               // /api/models?author=...
  std::vector<std::string> models;  // listed as they are, without asking the hub
  std::string token_source;         // "token", "token_file '...'", "HF_TOKEN", "none" (never the token)
};

// Reads the configuration (docs/sources.md): endpoint (else $HF_ENDPOINT), token (may be an
// enc:v1: secret, decrypted by the daemon) / token_file (e.g. ~/.cache/huggingface/token)
// / else $HF_TOKEN, prefix,
// revision, allow_patterns, ignore_patterns, max_git_file_bytes, list_limit, author, models,
// and the SDK's HTTP settings (timeout_ms, connect_timeout_ms, retry, cache_ttl_ms, proxy,
// ca_file, user_agent). Throws sdk::Error(bad_request) naming the setting.
std::pair<HubConfig, sdk::http::ClientOptions> parse_config(const nlohmann::json& config);

// Whether `file` passes allow (any matches, or none given) and ignore (none matches); the
// patterns are fnmatch-style globs where '*' also matches '/', as the hub's clients use them.
bool selected(const HubConfig& c, const std::string& file);

// The git blob id of `data`: sha1("blob <size>\0" + data), 40 hex digits.
std::string git_blob_id(const std::string& data);

// "0.0.0+<sha>" <-> sha; sha is empty when the version does not pin a commit.
std::string version_of_commit(const std::string& sha);
std::string commit_of_version(const std::string& version);

class HubRegistry final : public sdk::http::HttpRegistry {
 public:
  void configure(const nlohmann::json& config) override;
  sdk::ModelMetadata metadata(const std::string& name, const std::string& version) override;
  bool exists(const std::string& name, const std::string& version) override;
  std::vector<sdk::ModelSummary> list() override;
  void download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) override;

  // The mapping, public for the unit tests.
  std::string repo_of(const std::string& name) const;  // throws not_found without the prefix
  sdk::ModelMetadata parse_revision(const std::string& name, const nlohmann::json& body,
                               const std::function<std::string(const std::string& file, const std::string& blob_id,
                                                               std::uint64_t size)>& hash_git_file) const;
  const HubConfig& config() const { return cfg_; }

 protected:
  std::string file_path(const std::string& name, const std::string& version, const std::string& file) override;

 private:
  std::string revision_of(const std::string& version) const;
  // Adds to an unauthorized error the repo and what to do.
  [[noreturn]] void rethrow_for(const std::string& repo, const sdk::Error& e) const;
  std::string hash_git_file(const std::string& repo, const std::string& sha, const std::string& file,
                            const std::string& blob_id, std::uint64_t size);

  HubConfig cfg_;
  std::mutex mu_;
  std::map<std::string, std::string> git_sha256_;  // "<repo>@<commit>/<file>" -> sha256 (immutable)
};

}  // namespace modelzoo::plugins::huggingface
