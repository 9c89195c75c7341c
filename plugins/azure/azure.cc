#include "azure/azure.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "objstore/http_store.h"
#include "objstore/xml.h"

namespace modelzoo::plugins::azure {

using nlohmann::json;
using sdk::Error;
using sdk::ErrorCode;
namespace http = sdk::http;

namespace {

constexpr const char* kVersion = "2021-08-06";

[[noreturn]] void bad_setting(const std::string& key, const std::string& why) {
  throw Error(ErrorCode::bad_request, "azure-blob: setting '" + key + "' " + why);
}

using objstore::lower;

std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

std::string base64_decode(const std::string& in) {
  std::string s;
  for (char c : in)
    if (!std::isspace(static_cast<unsigned char>(c))) s += c;
  if (s.empty() || s.size() % 4 != 0) throw std::invalid_argument("not base64");
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  if (n < 0) throw std::invalid_argument("not base64");
  std::size_t pad = s.size() >= 2 && s[s.size() - 1] == '=' ? (s[s.size() - 2] == '=' ? 2 : 1) : 0;
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

// Connection string "Key=Value;Key=Value" (values may hold '=').
std::map<std::string, std::string> parse_connection_string(const std::string& s) {
  std::map<std::string, std::string> out;
  std::stringstream ss(s);
  for (std::string part; std::getline(ss, part, ';');) {
    auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    out[trim(part.substr(0, eq))] = trim(part.substr(eq + 1));
  }
  return out;
}

class AzureStore final : public objstore::HttpStore {
 public:
  AzureStore(http::HttpClient& client, std::string account, std::string container, std::string sas)
      : HttpStore(client, "azure-blob", "x-ms-meta-"), account_(std::move(account)), container_(std::move(container)), sas_(std::move(sas)) {}

  objstore::Page list(const std::string& prefix, const std::string& delimiter, const std::string& token, std::size_t max) override {
    std::string path = "?restype=container&comp=list&maxresults=" + std::to_string(max) + "&prefix=" + http::encode_segment(prefix);
    if (!delimiter.empty()) path += "&delimiter=" + http::encode_segment(delimiter);
    if (!token.empty()) path += "&marker=" + http::encode_segment(token);
    std::string body = send(describe(prefix), {"GET", with_sas(path), {}, {}, 16u << 20}).body;
    try {
      return parse_list(body);
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorCode::internal, "azure-blob: listing " + describe(prefix) + ": " + e.what());
    }
  }

  void put(const std::string& key, const std::string& body) override {
    send(describe(key), {"PUT", object_path(key), {{"x-ms-blob-type", "BlockBlob"}, {"Content-Type", "text/plain; charset=utf-8"}},
                         body, 64 * 1024});
  }

  void set_user_metadata(const std::string& key, const std::string& name, const std::string& value) override {
    // Set Blob Metadata replaces all of it: the others are sent again; If-Match: not a newer blob.
    auto h = head(key);
    Pairs headers = {{"Content-Type", "text/plain"}};
    for (const auto& [n, v] : h.headers)
      if (n.rfind("x-ms-meta-", 0) == 0 && n != "x-ms-meta-" + lower(name)) headers.emplace_back(n, v);
    headers.emplace_back("x-ms-meta-" + lower(name), value);
    if (auto etag = h.headers.find("etag"); etag != h.headers.end()) headers.emplace_back("If-Match", etag->second);
    std::string path = object_path(key);
    path += path.find('?') == std::string::npos ? "?comp=metadata" : "&comp=metadata";
    send(describe(key), {"PUT", path, headers, {}, 1u << 20});
  }

  std::string object_path(const std::string& key) const override { return with_sas(std::string("/").append(http::encode_path(key))); }
  std::string describe(const std::string& key) const override {
    return std::string("azure://").append(account_).append("/").append(container_).append("/").append(key);
  }

 private:
  std::string with_sas(std::string path) const {
    if (sas_.empty()) return path;
    return path.append(path.find('?') == std::string::npos ? "?" : "&").append(sas_);
  }

  std::string account_, container_, sas_;
};

}  // namespace

std::string rfc1123_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string string_to_sign(const std::string& account, const std::string& method, const std::string& url,
                           const Pairs& headers) {
  std::map<std::string, std::string> h;
  for (const auto& [k, v] : headers) h[lower(k)] = trim(v);
  auto get = [&](const char* k) {
    auto it = h.find(k);
    return it == h.end() ? std::string() : it->second;
  };
  std::string length = get("content-length");
  if (length == "0") length.clear();
  std::string out = method + "\n" + get("content-encoding") + "\n" + get("content-language") + "\n" + length + "\n" +
                    get("content-md5") + "\n" + get("content-type") + "\n" + get("date") + "\n" + get("if-modified-since") +
                    "\n" + get("if-match") + "\n" + get("if-none-match") + "\n" + get("if-unmodified-since") + "\n" +
                    get("range") + "\n";
  for (const auto& [k, v] : h)
    if (k.rfind("x-ms-", 0) == 0) out += k + ":" + v + "\n";
  // The resource: the account, then the path as sent, then the query's parameters.
  auto scheme = url.find("://");
  auto path_at = url.find_first_of("/?", scheme == std::string::npos ? 0 : scheme + 3);
  std::string path = "/", query;
  if (path_at != std::string::npos) {
    auto q = url.find('?', path_at);
    path = url.substr(path_at, q == std::string::npos ? std::string::npos : q - path_at);
    if (path.empty()) path = "/";
    if (q != std::string::npos) query = url.substr(q + 1);
  }
  out += "/" + account + path;
  std::map<std::string, std::vector<std::string>> params;
  std::stringstream qs(query);
  for (std::string pair; std::getline(qs, pair, '&');) {
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    params[lower(objstore::percent_decode(pair.substr(0, eq)))].push_back(
        eq == std::string::npos ? std::string() : objstore::percent_decode(pair.substr(eq + 1)));
  }
  for (auto& [k, vs] : params) {
    std::sort(vs.begin(), vs.end());
    out += "\n" + k + ":";
    for (std::size_t i = 0; i < vs.size(); ++i) out += (i ? "," : "") + vs[i];
  }
  return out;
}

std::string shared_key_authorization(const std::string& account, const std::string& key_base64, const std::string& to_sign) {
  std::string key;
  try {
    key = base64_decode(key_base64);
  } catch (const std::invalid_argument&) {
    throw Error(ErrorCode::bad_request, "azure-blob: the account key is not base64 (copy it whole from the storage account's Access keys)");
  }
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(to_sign.data()), to_sign.size(),
       mac, &len);
  return "SharedKey " + account + ":" + http::base64(std::string_view(reinterpret_cast<const char*>(mac), len));
}

objstore::Page parse_list(const std::string& xml) {
  objstore::Page page;
  objstore::Object current;
  bool root_seen = false;
  objstore::walk_xml(
      xml,
      [&](const std::string& path, const std::string& text) {
        if (path == "EnumerationResults/Blobs/Blob/Name") current.key = text;
        else if (path == "EnumerationResults/Blobs/Blob/Properties/Content-Length") {
          current.size = objstore::parse_size(text, "a blob's Content-Length");
        } else if (path == "EnumerationResults/Blobs/Blob/Properties/Etag") current.etag = text;
        else if (path == "EnumerationResults/Blobs/BlobPrefix/Name") page.prefixes.push_back(text);
        else if (path == "EnumerationResults/NextMarker") page.next = text;
      },
      [&](const std::string& path) {
        if (path == "EnumerationResults") root_seen = true;
        if (path == "EnumerationResults/Blobs/Blob") {
          if (current.key.empty()) throw std::invalid_argument("a blob has no Name");
          page.objects.push_back(std::move(current));
          current = {};
        }
      });
  if (!root_seen) throw std::invalid_argument("the answer is not an EnumerationResults");
  return page;
}

std::pair<AzureConfig, objstore::Layout> parse_config(const json& config, http::ClientOptions& http_options, const EnvFn& env_in) {
  objstore::Settings set(config, "azure-blob", env_in, "account, container and endpoint",
                         "account_key, sas_token, token or token_file");
  auto str = [&](const char* key) { return set.str(key); };
  auto var = [&](const char* name) { return set.var(name); };
  json& rest = set.rest();
  AzureConfig c;
  auto cs = parse_connection_string(var("AZURE_STORAGE_CONNECTION_STRING"));
  auto from_cs = [&](const char* k) {
    auto it = cs.find(k);
    return it == cs.end() ? std::string() : it->second;
  };
  c.account = str("account");
  if (c.account.empty()) c.account = var("AZURE_STORAGE_ACCOUNT");
  if (c.account.empty()) c.account = from_cs("AccountName");
  if (c.account.empty()) bad_setting("account", "is required (or AZURE_STORAGE_ACCOUNT, or AZURE_STORAGE_CONNECTION_STRING)");
  for (char ch : c.account)
    if (!std::isalnum(static_cast<unsigned char>(ch))) bad_setting("account", "is not a storage account name (letters and digits)");
  c.container = str("container");
  if (c.container.empty()) bad_setting("container", "is required");
  if (c.container.find('/') != std::string::npos || std::any_of(c.container.begin(), c.container.end(), [](unsigned char ch) { return ch < 0x21; }))
    bad_setting("container", "is not a container name");
  objstore::Layout layout = objstore::take_layout(rest, "azure-blob");
  c.endpoint = str("endpoint");
  if (c.endpoint.empty()) c.endpoint = from_cs("BlobEndpoint");
  if (c.endpoint.empty()) c.endpoint = "https://" + c.account + ".blob.core.windows.net";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  if (c.endpoint.rfind("http://", 0) != 0 && c.endpoint.rfind("https://", 0) != 0)
    bad_setting("endpoint", "must start with http:// or https://");
  c.base_url = c.endpoint + "/" + http::encode_segment(c.container);

  bool anonymous = set.boolean("anonymous").value_or(false);
  std::string key = str("account_key"), sas = str("sas_token"), token = str("token"), token_file = str("token_file");
  int given = !key.empty() + !sas.empty() + !token.empty() + !token_file.empty() + anonymous;
  if (given > 1) bad_setting("account_key", "and sas_token, token, token_file, anonymous: give one of them");
  if (!key.empty()) {
    c.auth = AuthKind::shared_key;
    c.key = key;
    c.auth_from = "account_key in the source's configuration";
  } else if (!sas.empty()) {
    c.auth = AuthKind::sas;
    c.sas = sas;
    c.auth_from = "sas_token in the source's configuration";
  } else if (!token.empty() || !token_file.empty()) {
    c.auth = AuthKind::bearer;
    c.token = token;
    c.token_file = token_file;
    c.auth_from = token.empty() ? "token_file '" + token_file + "'" : "token in the source's configuration";
  } else if (anonymous) {
    c.auth = AuthKind::anonymous;
    c.auth_from = "anonymous";
  } else if (!var("AZURE_STORAGE_KEY").empty()) {
    c.auth = AuthKind::shared_key;
    c.key = var("AZURE_STORAGE_KEY");
    c.auth_from = "AZURE_STORAGE_KEY";
  } else if (!var("AZURE_STORAGE_SAS_TOKEN").empty()) {
    c.auth = AuthKind::sas;
    c.sas = var("AZURE_STORAGE_SAS_TOKEN");
    c.auth_from = "AZURE_STORAGE_SAS_TOKEN";
  } else if (!from_cs("AccountKey").empty()) {
    c.auth = AuthKind::shared_key;
    c.key = from_cs("AccountKey");
    c.auth_from = "AZURE_STORAGE_CONNECTION_STRING";
  } else if (!from_cs("SharedAccessSignature").empty()) {
    c.auth = AuthKind::sas;
    c.sas = from_cs("SharedAccessSignature");
    c.auth_from = "AZURE_STORAGE_CONNECTION_STRING";
  } else {
    throw Error(ErrorCode::unauthorized, "azure-blob: no credentials for container '" + c.container + "' of account '" + c.account +
                                             "': give account_key, sas_token, token or token_file (or AZURE_STORAGE_KEY, "
                                             "AZURE_STORAGE_SAS_TOKEN, AZURE_STORAGE_CONNECTION_STRING), or anonymous: true "
                                             "for a container with public access");
  }
  while (!c.sas.empty() && c.sas.front() == '?') c.sas.erase(0, 1);
  if (c.auth == AuthKind::shared_key) {
    try {
      base64_decode(c.key);
    } catch (const std::invalid_argument&) {
      bad_setting(c.auth_from == "AZURE_STORAGE_KEY" ? "AZURE_STORAGE_KEY" : "account_key", "is not base64");
    }
  }
  for (const char* k : {"account", "container", "endpoint", "anonymous", "account_key", "sas_token", "token", "token_file"}) rest.erase(k);
  rest["url"] = c.base_url;
  http_options = http::options_from_config(rest);
  if (http_options.user_agent.empty()) http_options.user_agent = std::string("modelzoo-plugin-azure-blob/") + MODELZOO_VERSION;
  return {std::move(c), std::move(layout)};
}

void AzureRegistry::configure(const json& config) {
  http::ClientOptions options;
  auto [c, layout] = parse_config(config, options);
  cfg_ = std::move(c);
  const AzureConfig cfg = cfg_;
  options.auth.kind = http::Auth::Kind::signer;
  options.auth.provider_name = "Azure " +
                               std::string(cfg.auth == AuthKind::shared_key ? "Shared Key"
                                           : cfg.auth == AuthKind::sas      ? "SAS"
                                           : cfg.auth == AuthKind::bearer   ? "bearer token"
                                                                            : "anonymous access") +
                               " (" + cfg.auth_from + ")";
  // Every request carries x-ms-version (and x-ms-date); Shared Key signs it, bearer adds its token.
  options.auth.signer = [cfg](const http::Auth::SignInput& in) {
    Pairs out = {{"x-ms-version", kVersion}, {"x-ms-date", rfc1123_now()}};
    if (cfg.auth == AuthKind::shared_key) {
      Pairs all = in.headers;
      all.insert(all.end(), out.begin(), out.end());
      if (!in.range.empty()) all.emplace_back("Range", in.range);
      if (in.method == "PUT" || in.method == "POST") all.emplace_back("Content-Length", std::to_string(in.body.size()));
      out.emplace_back("Authorization", shared_key_authorization(cfg.account, cfg.key, string_to_sign(cfg.account, in.method, in.url, all)));
    } else if (cfg.auth == AuthKind::bearer) {
      std::string token = cfg.token;
      if (token.empty()) {
        std::ifstream f(cfg.token_file);
        std::stringstream ss;
        ss << f.rdbuf();
        token = trim(ss.str());
        if (!f || token.empty())
          throw Error(ErrorCode::unauthorized, "azure-blob: cannot read the token file '" + cfg.token_file + "'");
      }
      out.emplace_back("Authorization", "Bearer " + token);
    }
    return out;
  };
  set_options(std::move(options));
  set_store(std::make_unique<AzureStore>(client(), cfg_.account, cfg_.container, cfg_.sas), std::move(layout), "azure-blob");
}

}  // namespace modelzoo::plugins::azure
