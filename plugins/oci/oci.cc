#include "oci/oci.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "modelzoo/bus/names.h"
#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::oci {

using sdk::Error;
using sdk::ErrorCode;

const char* const kManifestAccept =
    "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, "
    "application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string base64_decode(const std::string& in) {
  static const std::string chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (char c : in) {
    auto p = chars.find(c);
    if (p == std::string::npos) break;  // '=' or junk ends it
    val = (val << 6) + static_cast<int>(p);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

// "host[:port]" of a URL.
std::string host_of(const std::string& url) {
  auto s = url.find("://");
  auto rest = s == std::string::npos ? url : url.substr(s + 3);
  auto slash = rest.find('/');
  return slash == std::string::npos ? rest : rest.substr(0, slash);
}

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

bool is_sha256_digest(const std::string& d) { return d.rfind("sha256:", 0) == 0 && bus::is_sha256_hex(d.substr(7)); }

}  // namespace

Config parse_config(const nlohmann::json& j) {
  if (!j.is_object()) throw Error(ErrorCode::bad_request, "oci: the configuration must be a map");
  static const std::vector<std::string> known = {"url", "repository_prefix", "versions", "auth", "docker_config",
                                                 "timeout_ms", "connect_timeout_ms", "page_size", "max_repositories",
                                                 "ca_file", "retry", "streams", "piece_bytes"};
  for (auto& [k, v] : j.items())
    if (std::find(known.begin(), known.end(), k) == known.end())
      throw Error(ErrorCode::bad_request, "oci: unknown setting '" + k + "'");
  Config c;
  if (!j.contains("url") || !j["url"].is_string()) throw Error(ErrorCode::bad_request, "oci: 'url' (http[s]://host[:port]) is required");
  c.url = j["url"].get<std::string>();
  while (!c.url.empty() && c.url.back() == '/') c.url.pop_back();
  if (c.url.rfind("http://", 0) != 0 && c.url.rfind("https://", 0) != 0)
    throw Error(ErrorCode::bad_request, "oci: 'url' must start with http:// or https://");
  auto str = [&](const char* k, std::string& out) {
    if (!j.contains(k)) return;
    if (!j[k].is_string()) throw Error(ErrorCode::bad_request, std::string("oci: '") + k + "' must be a string");
    out = j[k].get<std::string>();
  };
  auto num = [&](const char* k, auto& out) {
    if (!j.contains(k)) return;
    if (!j[k].is_number_unsigned() || j[k].get<long long>() <= 0)
      throw Error(ErrorCode::bad_request, std::string("oci: '") + k + "' must be a positive integer");
    out = j[k].get<std::remove_reference_t<decltype(out)>>();
  };
  str("repository_prefix", c.repository_prefix);
  str("docker_config", c.docker_config);
  str("ca_file", c.ca_file);
  num("timeout_ms", c.timeout_ms);
  num("connect_timeout_ms", c.connect_timeout_ms);
  num("page_size", c.page_size);
  num("max_repositories", c.max_repositories);
  if (j.contains("versions")) {
    if (!j["versions"].is_object()) throw Error(ErrorCode::bad_request, "oci: 'versions' must map versions to tags");
    for (auto& [v, t] : j["versions"].items()) {
      if (bus::check_version(v)) throw Error(ErrorCode::bad_request, "oci: 'versions': '" + v + "' is not a semantic version");
      if (!t.is_string() || t.get<std::string>().empty())
        throw Error(ErrorCode::bad_request, "oci: 'versions': the tag of '" + v + "' must be a string");
      c.versions[v] = t.get<std::string>();
    }
  }
  if (j.contains("auth")) {
    const auto& a = j["auth"];
    if (!a.is_object() || !a.contains("user") || !a.contains("password") || !a["user"].is_string() ||
        !a["password"].is_string())
      throw Error(ErrorCode::bad_request, "oci: 'auth' must be {user: ..., password: ...}");
    c.user = a["user"].get<std::string>();
    c.password = a["password"].get<std::string>();
  }
  {
    nlohmann::json t = nlohmann::json::object();
    for (const char* k : {"url", "timeout_ms", "connect_timeout_ms", "retry", "streams", "piece_bytes", "ca_file"})
      if (j.contains(k)) t[k] = j[k];
    try {
      c.transfer = sdk::http::options_from_config(t);
    } catch (const Error& e) {
      throw Error(ErrorCode::bad_request, std::string("oci: ") + e.what());
    }
    c.transfer.cache_ttl = sdk::http::milliseconds(0);
    c.transfer.user_agent = "modelzoo-plugin-oci/" MODELZOO_VERSION;
  }
  if (c.docker_config.empty() && c.user.empty()) {
    const char* home = std::getenv("HOME");
    const char* dc = std::getenv("DOCKER_CONFIG");
    std::filesystem::path p = dc ? std::filesystem::path(dc) / "config.json"
                                 : (home ? std::filesystem::path(home) / ".docker" / "config.json" : std::filesystem::path());
    if (!p.empty() && std::filesystem::exists(p)) c.docker_config = p.string();
  }
  return c;
}

std::optional<std::pair<std::string, std::string>> docker_credentials(const std::string& config_json,
                                                                     const std::string& url) {
  auto j = nlohmann::json::parse(config_json, nullptr, false);
  if (!j.is_object() || !j.contains("auths") || !j["auths"].is_object()) return std::nullopt;
  std::string host = host_of(url);
  for (auto& [k, v] : j["auths"].items()) {
    if (host_of(k) != host || !v.is_object()) continue;
    if (v.contains("auth") && v["auth"].is_string()) {
      auto up = base64_decode(v["auth"].get<std::string>());
      auto colon = up.find(':');
      if (colon != std::string::npos) return std::make_pair(up.substr(0, colon), up.substr(colon + 1));
    }
    if (v.contains("username") && v.contains("password") && v["username"].is_string() && v["password"].is_string())
      return std::make_pair(v["username"].get<std::string>(), v["password"].get<std::string>());
  }
  return std::nullopt;
}

std::optional<Challenge> parse_challenge(const std::string& header) {
  std::size_t i = 0;
  while (i < header.size() && header[i] == ' ') ++i;
  std::size_t s = i;
  while (i < header.size() && header[i] != ' ') ++i;
  if (i == s) return std::nullopt;
  Challenge c;
  c.scheme = lower(header.substr(s, i - s));
  while (i < header.size()) {
    while (i < header.size() && (header[i] == ' ' || header[i] == ',')) ++i;
    std::size_t ks = i;
    while (i < header.size() && header[i] != '=') ++i;
    if (i >= header.size()) break;
    std::string key = lower(header.substr(ks, i - ks));
    ++i;
    std::string val;
    if (i < header.size() && header[i] == '"') {
      ++i;
      while (i < header.size() && header[i] != '"') {
        if (header[i] == '\\' && i + 1 < header.size()) ++i;
        val.push_back(header[i++]);
      }
      ++i;
    } else {
      while (i < header.size() && header[i] != ',') val.push_back(header[i++]);
    }
    c.params[key] = val;
  }
  return c;
}

std::string layer_file_name(const nlohmann::json& layer) {
  if (layer.contains("annotations") && layer["annotations"].is_object()) {
    const auto& a = layer["annotations"];
    if (a.contains("org.opencontainers.image.title") && a["org.opencontainers.image.title"].is_string())
      return a["org.opencontainers.image.title"].get<std::string>();
  }
  std::string mt = layer.value("mediaType", "");
  const std::string ollama = "application/vnd.ollama.image.";
  if (mt.rfind(ollama, 0) == 0) {
    std::string kind = mt.substr(ollama.size());
    if (kind == "model") return "model.gguf";
    if (kind == "projector") return "projector.gguf";
    if (kind == "adapter") return "adapter.gguf";
    if (kind == "params") return "params.json";
    if (kind == "messages") return "messages.json";
    return kind;  // template, system, license
  }
  std::string d = layer.value("digest", "");
  return "sha256/" + (d.size() > 7 ? d.substr(7) : d);  // a segment may hold 64 characters
}

ManifestFiles files_from_manifest(const nlohmann::json& m, const std::string& name, const std::string& version,
                                  const std::string& manifest_digest) {
  if (!m.is_object() || !m.contains("layers") || !m["layers"].is_array())
    throw Error(ErrorCode::internal, "oci: the manifest of " + name + ":" + version + " has no layers");
  ManifestFiles out;
  out.metadata.name = name;
  out.metadata.version = version;
  out.metadata.format = "raw";
  bool ollama = false;
  std::map<std::string, int> seen;
  for (const auto& l : m["layers"]) {
    std::string digest = l.value("digest", "");
    if (!is_sha256_digest(digest))
      throw Error(ErrorCode::internal, "oci: a layer of " + name + ":" + version + " has digest '" + digest +
                                           "', not sha256:<64 hex>; only sha256 layers can be verified");
    if (!l.contains("size") || !l["size"].is_number_unsigned())
      throw Error(ErrorCode::internal, "oci: a layer of " + name + ":" + version + " has no size");
    std::string mt = l.value("mediaType", "");
    if (mt.rfind("application/vnd.ollama.image.", 0) == 0) ollama = true;
    std::string file = layer_file_name(l);
    if (int n = ++seen[file]; n > 1) file += "-" + std::to_string(n);
    if (auto bad = bus::check_file_name(file))
      throw Error(ErrorCode::internal, "oci: layer " + digest + " of " + name + ":" + version + " has an unusable file name: " + *bad);
    out.metadata.files.emplace_back(file, l["size"].get<std::uint64_t>(), digest.substr(7));
    out.digest_of[file] = digest;
  }
  if (ollama) out.metadata.format = "gguf";
  out.metadata.description = "OCI manifest " + manifest_digest;
  if (m.contains("annotations") && m["annotations"].is_object()) {
    const auto& a = m["annotations"];
    if (a.contains("org.opencontainers.image.description") && a["org.opencontainers.image.description"].is_string())
      out.metadata.description = a["org.opencontainers.image.description"].get<std::string>() + " (OCI manifest " +
                                 manifest_digest + ")";
    if (a.contains("org.opencontainers.image.authors") && a["org.opencontainers.image.authors"].is_string())
      out.metadata.author = a["org.opencontainers.image.authors"].get<std::string>();
    if (a.contains("org.opencontainers.image.licenses") && a["org.opencontainers.image.licenses"].is_string())
      out.metadata.license = a["org.opencontainers.image.licenses"].get<std::string>();
  }
  out.metadata.tags.push_back("oci-digest=" + manifest_digest);
  return out;
}

// ---- Client

Client::Client(Config config, std::string source) : config_(std::move(config)), source_(std::move(source)) {
  if (!config_.user.empty()) {
    basic_ = std::make_pair(config_.user, config_.password);
  } else if (!config_.docker_config.empty()) {
    std::ifstream in(config_.docker_config);
    std::stringstream ss;
    ss << in.rdbuf();
    basic_ = docker_credentials(ss.str(), config_.url);
  }
  if (basic_) {
    redactor_.add(basic_->second);
    redactor_.add(sdk::http::base64(basic_->first + ":" + basic_->second));
  }
}
Client::~Client() = default;

namespace {
struct Exchange {
  Response* r;
  const std::function<void(const char*, std::size_t)>* on_data;
  std::uint64_t skip;  // bytes of a 200 to drop (it answered a ranged request from the start)
  std::exception_ptr error;
};
std::size_t on_body(char* p, std::size_t, std::size_t n, void* u) {
  auto* x = static_cast<Exchange*>(u);
  try {
    if (x->on_data && *x->on_data && x->r->status / 100 == 2) {
      std::size_t drop = x->r->status == 200 ? static_cast<std::size_t>(std::min<std::uint64_t>(x->skip, n)) : 0;
      x->skip -= drop;
      if (n > drop) (*x->on_data)(p + drop, n - drop);
    }
    else if (x->r->body.size() < (64u << 20))
      x->r->body.append(p, n);
  } catch (...) {
    x->error = std::current_exception();
    return 0;
  }
  return n;
}
std::size_t on_header(char* p, std::size_t, std::size_t n, void* u) {
  auto* x = static_cast<Exchange*>(u);
  std::string line(p, n);
  if (line.rfind("HTTP/", 0) == 0) {
    x->r->headers.clear();
    auto sp = line.find(' ');
    if (sp != std::string::npos) x->r->status = std::atol(line.c_str() + sp + 1);
    return n;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return n;
  std::string v = line.substr(colon + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
  x->r->headers[lower(line.substr(0, colon))] = v;
  return n;
}
}  // namespace

Response Client::once(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                      const std::string& body, const std::function<void(const char*, std::size_t)>& on_data,
                      std::uint64_t offset) {
  CURL* h = curl_easy_init();
  if (!h) throw Error(ErrorCode::internal, "oci: cannot create a curl handle");
  Response r;
  Exchange x{&r, &on_data, offset, nullptr};
  curl_slist* hl = nullptr;
  for (const auto& hd : headers) hl = curl_slist_append(hl, hd.c_str());
  std::string range = "Range: bytes=" + std::to_string(offset) + "-";
  if (offset > 0) hl = curl_slist_append(hl, range.c_str());
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  // Redirects are followed (blob storage behind the registry); libcurl does not send the
  // Authorization header to another host.
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, config_.connect_timeout_ms);
  // A stall of timeout_ms (no byte) ends a transfer; a long one is fine.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, std::max(1L, config_.timeout_ms / 1000));
  curl_easy_setopt(h, CURLOPT_USERAGENT, "modelzoo-plugin-oci/" MODELZOO_VERSION);
  if (!config_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
  if (method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hl);
  curl_easy_cleanup(h);
  if (x.error) std::rethrow_exception(x.error);
  if (rc != CURLE_OK)
    throw Error(ErrorCode::unavailable, "oci source " + source_ + ": " + redactor_(sdk::http::redact_url(url)) + ": " +
                                            curl_easy_strerror(rc) + "; is the registry up?");
  return r;
}

std::string Client::fetch_token(const Challenge& c, const std::string& scope) {
  auto realm = c.params.count("realm") ? c.params.at("realm") : "";
  if (realm.empty()) throw Error(ErrorCode::unauthorized, "oci source " + source_ + ": a Bearer challenge without a realm");
  std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
  if (c.params.count("service")) url += "service=" + url_escape(c.params.at("service")) + "&";
  std::string sc = c.params.count("scope") ? c.params.at("scope") : scope;
  if (!sc.empty()) url += "scope=" + url_escape(sc);
  std::vector<std::string> hd;
  if (basic_) hd.push_back("Authorization: " + sdk::http::basic_auth_value(basic_->first, basic_->second));
  auto r = once("GET", url, hd, "", nullptr);
  if (r.status == 401 || r.status == 403)
    throw Error(ErrorCode::unauthorized, "oci source " + source_ + ": the token service " + sdk::http::redact_url(realm) +
                                             " refused " + (basic_ ? "the configured credentials" : "an anonymous token") +
                                             " (HTTP " + std::to_string(r.status) +
                                             "); set auth {user, password} or a docker config.json entry for " +
                                             host_of(config_.url));
  if (r.status / 100 != 2)
    throw Error(ErrorCode::unavailable, "oci source " + source_ + ": the token service " + sdk::http::redact_url(realm) +
                                            " answered HTTP " + std::to_string(r.status));
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  std::string tok = j.is_object() ? j.value("token", j.value("access_token", "")) : "";
  if (tok.empty()) throw Error(ErrorCode::unavailable, "oci source " + source_ + ": the token service gave no token");
  redactor_.add(tok);
  return "Bearer " + tok;
}

Response Client::request(const std::string& method, const std::string& path, const std::string& scope,
                         const std::vector<std::string>& headers, const std::string& body,
                         const std::function<void(const char*, std::size_t)>& on_data, std::uint64_t offset) {
  std::string url = path.rfind("http", 0) == 0 ? path : config_.url + path;
  std::string authz;
  {
    std::lock_guard lk(mu_);
    if (auto it = tokens_.find(scope); it != tokens_.end()) authz = it->second;
  }
  for (int attempt = 0;; ++attempt) {
    auto hd = headers;
    if (!authz.empty()) hd.push_back("Authorization: " + authz);
    // A 401 carries no body we want: do not hand it to on_data (on_body checks the status).
    auto r = once(method, url, hd, body, on_data, offset);
    if (r.status != 401 || attempt > 0) return r;
    auto www = r.headers.count("www-authenticate") ? r.headers["www-authenticate"] : "";
    auto ch = parse_challenge(www);
    if (!ch) return r;
    if (ch->scheme == "bearer") {
      authz = fetch_token(*ch, scope);
    } else if (ch->scheme == "basic" && basic_) {
      authz = sdk::http::basic_auth_value(basic_->first, basic_->second);
    } else {
      return r;
    }
    std::lock_guard lk(mu_);
    tokens_[scope] = authz;
  }
}

std::string Client::authorization(const std::string& scope, bool refresh) {
  {
    std::lock_guard lk(mu_);
    if (refresh) tokens_.erase(scope);
    else if (auto it = tokens_.find(scope); it != tokens_.end()) return it->second;
  }
  auto r = request("GET", "/v2/", scope, {}, "");
  if (r.status == 401 && !basic_)
    throw Error(ErrorCode::unauthorized, "oci source " + source_ + ": registry " + host_of(config_.url) +
                                             " wants credentials; set auth {user, password} in the source's config or "
                                             "log in (docker config.json auths entry for " + host_of(config_.url) + ")");
  std::lock_guard lk(mu_);
  auto it = tokens_.find(scope);
  return it == tokens_.end() ? std::string() : it->second;
}

Response Client::get(const std::string& path, const std::string& repo, const std::vector<std::string>& headers,
                     const std::function<void(const char*, std::size_t)>& on_data, std::uint64_t offset) {
  std::string scope = repo.empty() ? "registry:catalog:*" : "repository:" + repo + ":pull";
  auto r = request("GET", path, scope, headers, "", on_data, offset);
  if (r.status / 100 == 2) return r;
  std::string where = "oci source " + source_ + ": registry " + host_of(config_.url) +
                      (repo.empty() ? "" : ", repository " + repo) + ", GET " + sdk::http::redact_url(path) +
                      ": HTTP " + std::to_string(r.status);
  if (r.status == 401 || r.status == 403)
    throw Error(ErrorCode::unauthorized,
                where + (basic_ ? " with the configured credentials; check the user, the password and their access to "
                                  "the repository"
                                : " without credentials; set auth {user, password} in the source's config or log in "
                                  "(docker config.json auths entry for " +
                                      host_of(config_.url) + ")"));
  if (r.status == 404) throw Error(ErrorCode::not_found, where + " (no such repository, tag or blob)");
  if (r.status == 429) {
    std::string ra = r.headers.count("retry-after") ? r.headers["retry-after"] : "";
    throw Error(ErrorCode::unavailable, where + " (rate limited" + (ra.empty() ? "" : ", Retry-After " + ra + " s") + ")");
  }
  if (r.status >= 500) throw Error(ErrorCode::unavailable, where + " (registry failure; another source is tried)");
  throw Error(ErrorCode::internal, where);
}

// ---- OciRegistry

void OciRegistry::configure(const nlohmann::json& config) {
  auto c = parse_config(config);
  const char* inst = std::getenv("MODELZOO_INSTANCE");
  std::string summary = "oci: registry " + sdk::http::redact_url(c.url) + ", repository prefix '" + c.repository_prefix +
                        "', auth: " + (!c.user.empty() ? "basic (configured user)" : !c.docker_config.empty() ? "docker config " + c.docker_config : "anonymous");
  client_ = std::make_unique<Client>(std::move(c), inst ? inst : "oci");
  sdk::log("info", summary);
}

std::string OciRegistry::repository(const std::string& name) const { return client_->config().repository_prefix + name; }

std::string OciRegistry::tag(const std::string& version) const {
  const auto& v = client_->config().versions;
  auto it = v.find(version);
  return it == v.end() ? version : it->second;
}

ManifestFiles OciRegistry::resolve(const std::string& name, const std::string& version_in) {
  std::string version = version_in;
  if (version.empty()) {
    auto all = list_versions_of(name);
    if (all.empty()) throw Error(ErrorCode::not_found, "oci source: repository " + repository(name) + " has no version tag");
    version = all.front();
    // Only tags that are no semantic version (Ollama's): its "latest" if it has one
    if (version.rfind("0.0.0+", 0) == 0 && std::find(all.begin(), all.end(), "0.0.0+latest") != all.end())
      version = "0.0.0+latest";
  }
  std::string repo = repository(name);
  // Tags: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}; '+' (semver build) is not a tag character.
  // The candidates, in order: the mapped tag, or the version with '+' as '_' (what
  // `modelzoo push` writes); for 0.0.0+X also the registry's own tag X ('--' read as '_'),
  // and X as it is.
  std::vector<std::string> candidates;
  std::string t = tag(version);
  if (t == version) std::replace(t.begin(), t.end(), '+', '_');
  candidates.push_back(t);
  if (!client_->config().versions.count(version))
    if (auto own = bus::tag_of_version(version)) {
      candidates.push_back(*own);
      candidates.push_back(version.substr(6));
    }
  for (std::size_t i = 1; i < candidates.size();)
    if (std::find(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(i), candidates[i]) !=
        candidates.begin() + static_cast<std::ptrdiff_t>(i))
      candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(i));
    else
      ++i;
  Response r;
  for (std::size_t i = 0;; ++i) {
    t = candidates[i];
    try {
      r = client_->get("/v2/" + repo + "/manifests/" + t, repo, {kManifestAccept});
      break;
    } catch (const Error& e) {
      if (e.code() != ErrorCode::not_found || i + 1 == candidates.size()) throw;
    }
  }
  std::string digest = r.headers.count("docker-content-digest") ? r.headers["docker-content-digest"] : "";
  auto m = nlohmann::json::parse(r.body, nullptr, false);
  if (!m.is_object()) throw Error(ErrorCode::internal, "oci: the manifest of " + repo + ":" + t + " is not JSON");
  bus::Sha256 h;
  h.update(r.body.data(), r.body.size());
  std::string computed = "sha256:" + h.hex_digest();
  if (!digest.empty() && digest != computed)
    throw Error(ErrorCode::internal, "oci: the manifest of " + repo + ":" + t + " does not match its digest " + digest);
  digest = computed;
  std::string mt = m.value("mediaType", "");
  if (m.contains("manifests") && m["manifests"].is_array()) {  // an index: the first manifest
    if (m["manifests"].empty()) throw Error(ErrorCode::not_found, "oci: the index " + repo + ":" + t + " is empty");
    std::string child = m["manifests"][0].value("digest", "");
    if (!is_sha256_digest(child)) throw Error(ErrorCode::internal, "oci: the index " + repo + ":" + t + " names a non-sha256 manifest");
    r = client_->get("/v2/" + repo + "/manifests/" + child, repo, {kManifestAccept});
    bus::Sha256 h2;
    h2.update(r.body.data(), r.body.size());
    if ("sha256:" + h2.hex_digest() != child)
      throw Error(ErrorCode::internal, "oci: manifest " + child + " of " + repo + " does not match its digest");
    m = nlohmann::json::parse(r.body, nullptr, false);
    digest = child;
  }
  auto files = files_from_manifest(m, name, version, digest);
  std::lock_guard lk(mu_);
  pinned_[name + ":" + version] = files.digest_of;
  return files;
}

sdk::ModelMetadata OciRegistry::metadata(const std::string& name, const std::string& version) {
  return resolve(name, version).metadata;
}

std::vector<std::string> OciRegistry::list_versions_of(const std::string& name) {
  std::string repo = repository(name);
  std::vector<bus::SemVer> parsed;
  std::map<std::string, std::string> by_tag;  // tag -> version
  for (auto& [v, t] : client_->config().versions) by_tag[t] = v;
  std::vector<std::string> out;
  std::string path = "/v2/" + repo + "/tags/list?n=" + std::to_string(client_->config().page_size);
  for (std::size_t pages = 0; !path.empty() && pages < 1000; ++pages) {
    auto r = client_->get(path, repo);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("tags") && j["tags"].is_array())
      for (const auto& t : j["tags"]) {
        if (!t.is_string()) continue;
        std::string tg = t.get<std::string>();
        std::string v = by_tag.count(tg) ? by_tag[tg] : tg;
        if (!by_tag.count(tg) && bus::check_version(v)) {
          std::string plus = tg;  // "1.0.0_b7" as `modelzoo push` writes "1.0.0+b7"
          if (auto u = plus.find('_'); u != std::string::npos) plus[u] = '+';
          v = !bus::check_version(plus) ? plus : bus::version_of_tag(tg).value_or("");
        }
        if (!v.empty() && !bus::check_version(v) && std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
      }
    path = next_page(r);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    auto c = bus::SemVer::parse(a)->compare(*bus::SemVer::parse(b));
    return c != 0 ? c > 0 : a < b;  // 0.0.0+<tag> versions have one precedence: by tag
  });
  return out;
}

std::string OciRegistry::next_page(const Response& r) {
  auto it = r.headers.find("link");
  if (it == r.headers.end()) return "";
  auto lt = it->second.find('<'), gt = it->second.find('>');
  if (lt == std::string::npos || gt == std::string::npos || gt < lt) return "";
  return it->second.substr(lt + 1, gt - lt - 1);
}

std::vector<sdk::ModelSummary> OciRegistry::list() {
  std::vector<sdk::ModelSummary> out;
  const auto& c = client_->config();
  std::string path = "/v2/_catalog?n=" + std::to_string(c.page_size);
  std::size_t seen = 0;
  while (!path.empty() && seen < c.max_repositories) {
    auto r = client_->get(path, "");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("repositories") || !j["repositories"].is_array()) break;
    for (const auto& repo : j["repositories"]) {
      if (!repo.is_string() || ++seen > c.max_repositories) break;
      std::string name = repo.get<std::string>();
      if (name.rfind(c.repository_prefix, 0) != 0) continue;
      name = name.substr(c.repository_prefix.size());
      if (bus::check_model_name(name)) continue;
      sdk::ModelSummary s;
      s.name = name;
      try {
        s.versions = list_versions_of(name);
      } catch (const Error&) {
        continue;  // a repository we may not read
      }
      if (!s.versions.empty()) out.push_back(std::move(s));
    }
    path = next_page(r);
  }
  if (seen > c.max_repositories)
    sdk::log("warn", "oci: the catalog has more than max_repositories (" + std::to_string(c.max_repositories) +
                         ") repositories; the list stops there");
  return out;
}

void OciRegistry::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) {
  std::string digest;
  {
    std::lock_guard lk(mu_);
    auto it = pinned_.find(req.name + ":" + req.version);
    if (it != pinned_.end() && it->second.count(req.file)) digest = it->second.at(req.file);
  }
  if (digest.empty()) {  // a restarted plugin: resolve again (the daemon checks the sha256 it pinned)
    auto f = resolve(req.name, req.version);
    if (!f.digest_of.count(req.file))
      throw Error(ErrorCode::not_found, "oci: " + req.name + ":" + req.version + " has no file '" + req.file + "'");
    digest = f.digest_of.at(req.file);
  }
  std::string repo = repository(req.name);
  auto opt = client_->config().transfer;
  opt.base_url = client_->config().url + "/v2/" + repo;
  const std::string scope = "repository:" + repo + ":pull";
  Client* c = client_.get();
  opt.auth.kind = sdk::http::Auth::Kind::provider;
  opt.auth.provider_name = "the registry's own auth (anonymous, basic, or its token flow)";
  opt.auth.provider = [c, scope](bool refresh) { return c->authorization(scope, refresh); };
  sdk::http::HttpClient http(std::move(opt));
  std::string buf;
  const std::size_t chunk = sink.chunk_size();
  buf.reserve(chunk);
  try {
    http.stream("/blobs/" + digest, req.offset, [&](const char* p, std::size_t n) {
      while (n > 0) {
        std::size_t take = std::min(n, chunk - buf.size());
        buf.append(p, take);
        p += take;
        n -= take;
        if (buf.size() == chunk) {
          sink.write(buf.data(), buf.size());
          buf.clear();
        }
      }
    });
  } catch (...) {
    // A failure after some bytes: what arrived goes to the daemon first, which resumes there.
    if (!buf.empty()) {
      try {
        sink.write(buf.data(), buf.size());
      } catch (...) {
      }
    }
    throw;
  }
  if (!buf.empty()) sink.write(buf.data(), buf.size());
}

}  // namespace modelzoo::plugins::oci
