#include "huggingface/hub.h"

#include <fnmatch.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <set>

#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::huggingface {

using nlohmann::json;
using sdk::Error;
using sdk::ErrorCode;

namespace {

[[noreturn]] void bad_setting(const std::string& key, const std::string& why) {
  throw Error(ErrorCode::bad_request, "huggingface: setting '" + key + "' " + why);
}

std::vector<std::string> string_list(const json& j, const char* key) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (it->is_string()) return {it->get<std::string>()};
  if (!it->is_array()) bad_setting(key, "must be a list of strings");
  for (const auto& v : *it) {
    if (!v.is_string() || v.get<std::string>().empty()) bad_setting(key, "must be a list of non-empty strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : "";
}

// A non-negative integer of a JSON answer (parsed answers hold unsigned ones, literals signed).
bool is_size(const json& j) { return j.is_number_unsigned() || (j.is_number_integer() && j.get<std::int64_t>() >= 0); }

bool is_hex(const std::string& s, std::size_t n) {
  if (s.size() != n) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

std::pair<HubConfig, sdk::http::ClientOptions> parse_config(const json& config) {
  if (!config.is_null() && !config.is_object()) throw Error(ErrorCode::bad_request, "huggingface: the configuration is not a map");
  json rest = config.is_object() ? config : json::object();
  HubConfig c;
  auto take_str = [&](const char* key) -> std::string {
    auto it = rest.find(key);
    if (it == rest.end() || it->is_null()) return {};
    if (!it->is_string()) bad_setting(key, "must be a string");
    return it->get<std::string>();
  };
  for (const char* k : {"url", "auth"})
    if (rest.contains(k)) bad_setting(k, std::string("is not a setting of this plugin (use ") + (k[0] == 'u' ? "endpoint" : "token or token_file") + ")");
  c.endpoint = take_str("endpoint");
  if (c.endpoint.empty()) c.endpoint = env("HF_ENDPOINT");
  if (c.endpoint.empty()) c.endpoint = "https://huggingface.co";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  c.prefix = take_str("prefix");
  if (auto r = take_str("revision"); !r.empty()) c.revision = r;
  c.author = take_str("author");
  c.allow_patterns = string_list(rest, "allow_patterns");
  c.ignore_patterns = string_list(rest, "ignore_patterns");
  c.models = string_list(rest, "models");
  if (auto it = rest.find("max_git_file_bytes"); it != rest.end()) {
    if (!is_size(*it)) bad_setting("max_git_file_bytes", "must be a non-negative integer");
    c.max_git_file_bytes = it->get<std::uint64_t>();
  }
  if (auto it = rest.find("list_limit"); it != rest.end()) {
    if (!is_size(*it) || it->get<std::uint64_t>() < 1 || it->get<std::uint64_t>() > 1000)
      bad_setting("list_limit", "must be an integer between 1 and 1000");
    c.list_limit = it->get<std::size_t>();
  }
  std::string token = take_str("token"), token_file = take_str("token_file");
  if (!token.empty() && !token_file.empty()) bad_setting("token", "and 'token_file' are both given; give one");
  json auth = {{"kind", "bearer"}};
  if (!token.empty()) {
    auth["token"] = token;
    c.token_source = "the configured token";
  } else if (!token_file.empty()) {
    auth["token_file"] = token_file;
    c.token_source = "token file '" + token_file + "'";
  } else if (auto t = env("HF_TOKEN"); !t.empty()) {
    auth["token"] = t;
    c.token_source = "HF_TOKEN";
  } else {
    // ~/.cache/huggingface/token is not read on its own: the plugin's sandbox opens only the
    // files its configuration names (token_file: it).
    auth = {{"kind", "none"}};
    c.token_source = "none";
  }
  for (const char* k : {"endpoint", "prefix", "revision", "author", "allow_patterns", "ignore_patterns", "models",
                        "max_git_file_bytes", "list_limit", "token", "token_file"})
    rest.erase(k);
  rest["url"] = c.endpoint;
  rest["auth"] = auth;
  auto o = sdk::http::options_from_config(rest);
  if (o.user_agent.empty()) o.user_agent = std::string("modelzoo-plugin-huggingface/") + MODELZOO_VERSION;
  return {std::move(c), std::move(o)};
}

bool selected(const HubConfig& c, const std::string& file) {
  auto any = [&](const std::vector<std::string>& pats) {
    for (const auto& p : pats)
      if (::fnmatch(p.c_str(), file.c_str(), 0) == 0) return true;
    return false;
  };
  if (!c.allow_patterns.empty() && !any(c.allow_patterns)) return false;
  return !any(c.ignore_patterns);
}

std::string git_blob_id(const std::string& data) {
  std::string head = "blob " + std::to_string(data.size());
  head.push_back('\0');
  unsigned char md[20];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha1(), nullptr);
  EVP_DigestUpdate(ctx, head.data(), head.size());
  EVP_DigestUpdate(ctx, data.data(), data.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : md) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

std::string version_of_commit(const std::string& sha) { return "0.0.0+" + sha; }

std::string commit_of_version(const std::string& version) {
  if (version.rfind("0.0.0+", 0) == 0 && is_hex(version.substr(6), 40)) return version.substr(6);
  return {};
}

void HubRegistry::configure(const json& config) {
  auto [c, o] = parse_config(config);
  cfg_ = std::move(c);
  std::string summary = "huggingface: hub " + sdk::http::redact_url(cfg_.endpoint) + ", token: " + cfg_.token_source +
                        (cfg_.prefix.empty() ? "" : ", prefix '" + cfg_.prefix + "'") + ", revision '" + cfg_.revision + "'";
  set_options(std::move(o));
  sdk::log("info", summary);
}

std::string HubRegistry::repo_of(const std::string& name) const {
  if (name.rfind(cfg_.prefix, 0) != 0)
    throw Error(ErrorCode::not_found, "model '" + name + "' is not of this source (its names start with '" + cfg_.prefix + "')");
  std::string repo = name.substr(cfg_.prefix.size());
  auto slash = repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size() || repo.find('/', slash + 1) != std::string::npos)
    throw Error(ErrorCode::not_found, "model '" + name + "' does not name a hub repo '" + cfg_.prefix + "<org>/<name>'");
  return repo;
}

std::string HubRegistry::revision_of(const std::string& version) const {
  if (version.empty() || version == "latest") return cfg_.revision;
  if (auto sha = commit_of_version(version); !sha.empty()) return sha;
  return version;  // a tag
}

void HubRegistry::rethrow_for(const std::string& repo, const Error& e) const {
  std::string m = e.what();
  if (e.code() == ErrorCode::unauthorized)
    m += " -- repo '" + repo + "' is private or gated, or does not exist: if it is gated, accept its terms at " +
         sdk::http::redact_url(cfg_.endpoint) + "/" + repo + " with your account; then give a token with read access "
         "(setting token: or token_file:, or HF_TOKEN; now: " + cfg_.token_source + ")";
  else if (e.code() == ErrorCode::not_found)
    m += " -- repo '" + repo + "' or its revision is not on the hub";
  throw Error(e.code(), m);
}

std::string HubRegistry::file_path(const std::string& name, const std::string& version, const std::string& file) {
  return "/" + sdk::http::encode_path(repo_of(name)) + "/resolve/" + sdk::http::encode_segment(revision_of(version)) + "/" +
         sdk::http::encode_path(file);
}

std::string HubRegistry::hash_git_file(const std::string& repo, const std::string& sha, const std::string& file,
                                       const std::string& blob_id, std::uint64_t size) {
  std::string key = repo + "@" + sha + "/" + file;
  {
    std::lock_guard lk(mu_);
    if (auto it = git_sha256_.find(key); it != git_sha256_.end()) return it->second;
  }
  if (size > cfg_.max_git_file_bytes)
    throw Error(ErrorCode::rejected, "huggingface: '" + file + "' of repo '" + repo + "' is a git file of " + std::to_string(size) +
                                         " bytes with no LFS sha256; above max_git_file_bytes (" +
                                         std::to_string(cfg_.max_git_file_bytes) +
                                         ") it is not fetched to hash it: raise the setting or leave the file out with ignore_patterns");
  std::string data;
  std::string path = "/" + sdk::http::encode_path(repo) + "/resolve/" + sha + "/" + sdk::http::encode_path(file);
  client().stream(path, 0, [&](const char* p, std::size_t n) {
    if (data.size() + n > size) throw Error(ErrorCode::internal, "huggingface: '" + file + "' is longer than the hub's size " + std::to_string(size));
    data.append(p, n);
  });
  if (data.size() != size)
    throw Error(ErrorCode::internal, "huggingface: '" + file + "' has " + std::to_string(data.size()) + " bytes, the hub says " + std::to_string(size));
  if (git_blob_id(data) != blob_id)
    throw Error(ErrorCode::internal, "huggingface: '" + file + "' of repo '" + repo + "' at " + sha +
                                         " does not match its git blob id " + blob_id + " (the bytes served are not the commit's)");
  bus::Sha256 h;
  h.update(data.data(), data.size());
  std::string digest = h.hex_digest();
  std::lock_guard lk(mu_);
  git_sha256_[key] = digest;
  return digest;
}

sdk::ModelMetadata HubRegistry::parse_revision(
    const std::string& name, const json& body,
    const std::function<std::string(const std::string&, const std::string&, std::uint64_t)>& hash_git) const {
  if (!body.is_object()) throw Error(ErrorCode::internal, "the model info is not a map");
  auto sha = body.value("sha", std::string());
  if (!is_hex(sha, 40)) throw Error(ErrorCode::internal, "the model info has no commit 'sha' of 40 hex digits");
  auto sib = body.find("siblings");
  if (sib == body.end() || !sib->is_array()) throw Error(ErrorCode::internal, "the model info has no list 'siblings'");
  sdk::ModelMetadata md;
  md.name = name;
  md.version = version_of_commit(sha);
  md.author = body.value("author", std::string());
  if (auto t = body.find("tags"); t != body.end() && t->is_array())
    for (const auto& v : *t)
      if (v.is_string() && md.tags.size() < 64) {
        auto s = v.get<std::string>();
        if (s.rfind("license:", 0) == 0) md.license = s.substr(8);
        md.tags.push_back(s);
      }
  std::size_t lfs = 0, git = 0;
  bool safetensors = false, gguf = false;
  for (const auto& s : *sib) {
    if (!s.is_object() || !s.contains("rfilename") || !s["rfilename"].is_string())
      throw Error(ErrorCode::internal, "a sibling has no 'rfilename'");
    auto file = s["rfilename"].get<std::string>();
    if (!selected(cfg_, file)) continue;
    sdk::FileInfo f;
    f.name = file;
    auto l = s.find("lfs");
    if (l != s.end() && l->is_object()) {
      f.sha256 = l->value("sha256", std::string());
      if (!is_hex(f.sha256, 64)) throw Error(ErrorCode::internal, "'" + file + "' has no lfs.sha256 of 64 hex digits");
      if (!l->contains("size") || !is_size((*l)["size"])) throw Error(ErrorCode::internal, "'" + file + "' has no lfs.size");
      f.size = (*l)["size"].get<std::uint64_t>();
      ++lfs;
    } else {
      if (!s.contains("size") || !is_size(s["size"]))
        throw Error(ErrorCode::internal, "'" + file + "' has no size (the answer lacks blobs=true data)");
      f.size = s["size"].get<std::uint64_t>();
      auto blob = s.value("blobId", std::string());
      if (!is_hex(blob, 40)) throw Error(ErrorCode::internal, "'" + file + "' has neither lfs.sha256 nor a git blobId");
      f.sha256 = hash_git(file, blob, f.size);
      ++git;
    }
    if (file.size() > 12 && file.ends_with(".safetensors")) safetensors = true;
    if (file.ends_with(".gguf")) gguf = true;
    md.files.push_back(std::move(f));
  }
  if (md.files.empty())
    throw Error(ErrorCode::not_found, "no file of '" + name + "' at " + sha + " passes allow_patterns / ignore_patterns");
  md.format = safetensors ? "safetensors" : gguf ? "gguf" : "raw";
  md.description = "Hugging Face repo at commit " + sha + "; verification: " + std::to_string(lfs) +
                   " LFS file(s) by the hub's lfs.sha256, " + std::to_string(git) +
                   " git file(s) by their git blob id (sha256 computed by the plugin from the checked bytes)";
  return md;
}

sdk::ModelMetadata HubRegistry::metadata(const std::string& name, const std::string& version) {
  std::string repo = repo_of(name);
  std::string rev = revision_of(version);
  std::string path = "/api/models/" + sdk::http::encode_path(repo) + "/revision/" + sdk::http::encode_segment(rev) + "?blobs=true";
  try {
    auto body = client().get_json(path, commit_of_version(version).size() == 40);  // a moving revision is asked each time
    auto md = parse_revision(name, body, [&](const std::string& file, const std::string& blob, std::uint64_t size) {
      return hash_git_file(repo, body["sha"].get<std::string>(), file, blob, size);
    });
    if (auto pinned = commit_of_version(version); !pinned.empty() && md.version != version)
      throw Error(ErrorCode::internal, "GET " + client().redact(cfg_.endpoint + path) + ": answered for commit " +
                                           md.version + " when asked for " + version);
    return md;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::unauthorized || e.code() == ErrorCode::not_found) rethrow_for(repo, e);
    if (e.code() == ErrorCode::internal && std::string(e.what()).find("GET ") != 0)
      throw Error(ErrorCode::internal, "GET " + client().redact(cfg_.endpoint + path) + ": unusable answer: " + e.what());
    throw;
  }
}

bool HubRegistry::exists(const std::string& name, const std::string& version) {
  return sdk::Registry::exists(name, version);  // by its metadata, not HttpRegistry's request of its own
}

std::vector<sdk::ModelSummary> HubRegistry::list() {
  std::vector<sdk::ModelSummary> out;
  if (!cfg_.models.empty()) {
    for (const auto& m : cfg_.models) out.push_back({cfg_.prefix + m, {}, "Hugging Face repo " + m});
    return out;
  }
  // Paged and bounded: a hub holds millions of repos; the pages (the hub's Link cursor) are
  // followed until list_limit repos, one page in memory at a time.
  constexpr std::size_t kMaxPages = 1000;  // a hub answering the same cursor forever
  std::string path = "/api/models?limit=" + std::to_string(cfg_.list_limit);
  if (!cfg_.author.empty()) path += "&author=" + sdk::http::encode_segment(cfg_.author);
  for (std::size_t pages = 0; !path.empty() && out.size() < cfg_.list_limit && pages < kMaxPages; ++pages) {
    auto page = client().get_json_page(path);
    if (!page.body.is_array())
      throw Error(ErrorCode::internal, "GET " + client().redact(cfg_.endpoint + path) + ": not a list of models");
    for (const auto& m : page.body) {
      if (out.size() >= cfg_.list_limit) break;
      std::string id = m.is_object() ? m.value("id", m.value("modelId", std::string())) : std::string();
      if (id.empty()) continue;
      sdk::ModelSummary s{cfg_.prefix + id, {}, "Hugging Face repo " + id};
      if (m.contains("sha") && m["sha"].is_string() && is_hex(m["sha"].get<std::string>(), 40))
        s.versions.push_back(version_of_commit(m["sha"].get<std::string>()));
      out.push_back(std::move(s));
    }
    path = page.next == path ? std::string() : page.next;
  }
  return out;
}

void HubRegistry::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) {
  std::string repo = repo_of(req.name);
  try {
    HttpRegistry::download(req, sink);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::unauthorized || e.code() == ErrorCode::not_found) rethrow_for(repo, e);
    throw;
  }
}

}  // namespace modelzoo::plugins::huggingface
