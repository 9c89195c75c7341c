#include "gcs/gcs.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace modelzoo::plugins::gcs {

using nlohmann::json;
using sdk::http::encode_segment;
using sdk::Error;
using sdk::ErrorCode;
namespace http = sdk::http;

namespace {

constexpr auto kRenewBefore = std::chrono::minutes(5);

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(const std::string& s) {
  auto a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return {};
  return s.substr(a, s.find_last_not_of(" \t\r\n") - a + 1);
}

// "https://host:port" and "/path" of an absolute URL.
std::pair<std::string, std::string> split_origin(const std::string& url) {
  auto scheme = url.find("://");
  auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (slash == std::string::npos) return {url, "/"};
  return {url.substr(0, slash), url.substr(slash)};
}

// An OAuth access token, fetched when needed and renewed before it expires. Thread-safe.
class TokenSource {
 public:
  struct Token {
    std::string value;
    std::chrono::system_clock::time_point expires;
  };
  TokenSource(std::function<Token()> fetch, std::string from) : fetch_(std::move(fetch)), from_(std::move(from)) {}
  std::string get() {
    std::lock_guard lk(mu_);
    auto now = std::chrono::system_clock::now();
    if (!current_.value.empty() && now + kRenewBefore < current_.expires) return current_.value;
    try {
      current_ = fetch_();
    } catch (const Error& e) {
      if (current_.value.empty() || now >= current_.expires) throw;
      sdk::log("warn", "gcs: renewing the access token from " + from_ + " failed (" + e.what() + "); the current one stays until it expires");
    }
    return current_.value;
  }

 private:
  std::function<Token()> fetch_;
  std::string from_;
  std::mutex mu_;
  Token current_;
};

// A token endpoint's answer {"access_token", "expires_in"}.
TokenSource::Token token_of(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("access_token") || !j["access_token"].is_string() || j["access_token"].get<std::string>().empty())
    throw Error(ErrorCode::unauthorized, "gcs: " + where + " answered without an access_token");
  std::int64_t ttl = j.contains("expires_in") && j["expires_in"].is_number_integer() ? j["expires_in"].get<std::int64_t>() : 3600;
  return {j["access_token"].get<std::string>(), std::chrono::system_clock::now() + std::chrono::seconds(ttl)};
}

// POSTs `form` to `url` (a token endpoint) and reads the token.
std::function<TokenSource::Token()> form_exchange(const std::string& url, std::function<std::string()> form,
                                                  const http::ClientOptions& base, const std::string& what) {
  auto [origin, path] = split_origin(url);
  auto client = objstore::credential_client(base, origin, false);
  std::string p = path;
  return [client, p, form = std::move(form), what] {
    std::string body;
    try {
      body = client->send({"POST", p, {{"Content-Type", "application/x-www-form-urlencoded"}}, form(), 1u << 20}).body;
    } catch (const Error& e) {
      throw Error(ErrorCode::unauthorized, "gcs: " + what + ": " + e.what());
    }
    json j;
    try {
      j = json::parse(body);
    } catch (const json::exception&) {
      throw Error(ErrorCode::unauthorized, "gcs: " + what + ": the answer is not JSON");
    }
    return token_of(j, what);
  };
}

class GcsStore final : public objstore::HttpStore {
 public:
  GcsStore(http::HttpClient& client, std::string bucket) : HttpStore(client, "gcs", ""), bucket_(std::move(bucket)) {}

  objstore::Page list(const std::string& prefix, const std::string& delimiter, const std::string& token, std::size_t max) override {
    std::string path = "/storage/v1/b/" + encode_segment(bucket_) + "/o?maxResults=" + std::to_string(max) +
                       "&prefix=" + encode_segment(prefix);
    if (!delimiter.empty()) path += "&delimiter=" + encode_segment(delimiter);
    if (!token.empty()) path += "&pageToken=" + encode_segment(token);
    json body = named(describe(prefix), [&] { return client_.get_json(path, false); });
    try {
      return parse_list(body);
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorCode::internal, "gcs: listing " + describe(prefix) + ": " + e.what());
    }
  }

  std::string user_metadata(const std::string& key, const std::string& name) override {
    json r = named(describe(key), [&] { return client_.get_json(resource_path(key), false); });
    if (r.is_object() && r.contains("metadata") && r["metadata"].is_object() && r["metadata"].contains(name) &&
        r["metadata"][name].is_string())
      return r["metadata"][name].get<std::string>();
    return {};
  }

  void put(const std::string& key, const std::string& body) override {
    send(describe(key), {"POST", "/upload/storage/v1/b/" + encode_segment(bucket_) + "/o?uploadType=media&name=" +
                                     encode_segment(key),
                         {{"Content-Type", "text/plain; charset=utf-8"}}, body, 1u << 20});
  }

  void set_user_metadata(const std::string& key, const std::string& name, const std::string& value) override {
    // PATCH merges metadata keys (the others stay); ifMetagenerationMatch: not a changed object.
    json r = named(describe(key), [&] { return client_.get_json(resource_path(key), false); });
    std::string path = resource_path(key);
    if (r.is_object() && r.contains("metageneration") && r["metageneration"].is_string())
      path += "?ifMetagenerationMatch=" + r["metageneration"].get<std::string>();
    send(describe(key), {"PATCH", path, {{"Content-Type", "application/json"}}, json{{"metadata", {{name, value}}}}.dump(), 1u << 20});
  }

  std::string object_path(const std::string& key) const override {
    return std::string("/download/storage/v1/b/")
        .append(encode_segment(bucket_))
        .append("/o/")
        .append(encode_segment(key))
        .append("?alt=media");
  }
  std::string describe(const std::string& key) const override { return std::string("gs://").append(bucket_).append("/").append(key); }

 private:
  std::string resource_path(const std::string& key) const {
    return std::string("/storage/v1/b/").append(encode_segment(bucket_)).append("/o/").append(encode_segment(key));
  }
  std::string bucket_;
};

}  // namespace

std::string base64url(std::string_view data) {
  std::string s = http::base64(data);
  for (auto& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

std::string service_account_jwt(const json& credentials, const std::string& scope, std::int64_t now) {
  auto field = [&](const char* k) {
    if (!credentials.contains(k) || !credentials[k].is_string() || credentials[k].get<std::string>().empty())
      throw Error(ErrorCode::unauthorized, std::string("gcs: the service account credentials have no '") + k + "'");
    return credentials[k].get<std::string>();
  };
  json header = {{"alg", "RS256"}, {"typ", "JWT"}};
  if (credentials.contains("private_key_id") && credentials["private_key_id"].is_string()) header["kid"] = credentials["private_key_id"];
  json claims = {{"iss", field("client_email")}, {"scope", scope}, {"aud", field("token_uri")}, {"iat", now}, {"exp", now + 3600}};
  std::string input = base64url(header.dump()) + "." + base64url(claims.dump());
  std::string pem = field("private_key");
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr,
                                                          &EVP_PKEY_free);
  if (!key) throw Error(ErrorCode::unauthorized, "gcs: the service account's private_key is not a PEM private key");
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  std::size_t len = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1)
    throw Error(ErrorCode::unauthorized, "gcs: cannot sign with the service account's private_key (not an RSA key?)");
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) != 1)
    throw Error(ErrorCode::unauthorized, "gcs: cannot sign with the service account's private_key");
  sig.resize(len);
  return input + "." + base64url(sig);
}

objstore::Page parse_list(const json& body) {
  if (!body.is_object() || (body.contains("kind") && body["kind"] != "storage#objects"))
    throw std::invalid_argument("the answer is not an objects list");
  objstore::Page page;
  if (auto it = body.find("items"); it != body.end()) {
    if (!it->is_array()) throw std::invalid_argument("'items' is not a list");
    for (const auto& o : *it) {
      if (!o.is_object() || !o.contains("name") || !o["name"].is_string()) throw std::invalid_argument("an object has no name");
      objstore::Object x;
      x.key = o["name"].get<std::string>();
      // The JSON API gives sizes as decimal strings (int64).
      if (o.contains("size")) x.size = objstore::parse_size(o["size"].is_string() ? o["size"].get<std::string>() : o["size"].dump(), "an object's size");
      if (o.contains("etag") && o["etag"].is_string()) x.etag = o["etag"].get<std::string>();
      page.objects.push_back(std::move(x));
    }
  }
  if (auto it = body.find("prefixes"); it != body.end() && it->is_array())
    for (const auto& p : *it)
      if (p.is_string()) page.prefixes.push_back(p.get<std::string>());
  if (auto it = body.find("nextPageToken"); it != body.end() && it->is_string()) page.next = it->get<std::string>();
  return page;
}

std::pair<GcsConfig, objstore::Layout> parse_config(const json& config, http::ClientOptions& http_options, const objstore::EnvFn& env) {
  objstore::Settings set(config, "gcs", env, "bucket and endpoint", "token, token_file or credentials_file");
  GcsConfig c;
  c.bucket = set.str("bucket");
  if (c.bucket.empty()) set.bad("bucket", "is required");
  if (c.bucket.find('/') != std::string::npos) set.bad("bucket", "is not a bucket name");
  objstore::Layout layout = objstore::take_layout(set.rest(), "gcs");
  if (auto e = set.str("endpoint"); !e.empty()) c.endpoint = e;
  if (auto e = set.var("STORAGE_EMULATOR_HOST"); !e.empty() && set.str("endpoint").empty())
    c.endpoint = e.rfind("http", 0) == 0 ? e : "http://" + e;
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  if (c.endpoint.rfind("http://", 0) != 0 && c.endpoint.rfind("https://", 0) != 0) set.bad("endpoint", "must start with http:// or https://");
  if (auto s = set.str("scope"); !s.empty()) c.scope = s;
  c.token = set.str("token");
  c.token_file = set.str("token_file");
  std::string file = set.str("credentials_file");
  const bool anonymous = set.boolean("anonymous").value_or(false);
  const bool metadata = set.boolean("metadata_server").value_or(true);
  c.metadata_host = set.str("metadata_host");
  if (c.metadata_host.empty()) c.metadata_host = set.var("GCE_METADATA_HOST");
  if (c.metadata_host.empty()) c.metadata_host = "metadata.google.internal";
  int given = !c.token.empty() + !c.token_file.empty() + !file.empty() + anonymous;
  if (given > 1) set.bad("token", "and token_file, credentials_file, anonymous: give one of them");
  if (!c.token.empty()) {
    c.auth = AuthKind::token;
    c.auth_from = "the configured token";
  } else if (!c.token_file.empty()) {
    c.auth = AuthKind::token;
    c.auth_from = "token file '" + c.token_file + "'";
  } else if (anonymous) {
    c.auth = AuthKind::anonymous;
    c.auth_from = "anonymous";
  } else {
    std::string from = "credentials_file";
    if (file.empty()) {
      file = set.var("GOOGLE_APPLICATION_CREDENTIALS");
      from = "GOOGLE_APPLICATION_CREDENTIALS";
    }
    if (file.empty() && !set.var("HOME").empty()) {
      std::string adc = set.var("HOME") + "/.config/gcloud/application_default_credentials.json";
      if (std::ifstream(adc)) {
        file = adc;
        from = "gcloud's application default credentials";
      }
    }
    if (!file.empty()) {
      std::string text = read_file(file);
      if (text.empty()) throw Error(ErrorCode::unauthorized, "gcs: cannot read the credentials file '" + file + "' (" + from + ")");
      try {
        c.credentials = json::parse(text);
      } catch (const json::exception&) {
        throw Error(ErrorCode::unauthorized, "gcs: the credentials file '" + file + "' (" + from + ") is not JSON");
      }
      std::string type = c.credentials.is_object() && c.credentials.contains("type") && c.credentials["type"].is_string()
                             ? c.credentials["type"].get<std::string>()
                             : "";
      if (type == "service_account") c.auth = AuthKind::service_account;
      else if (type == "authorized_user") c.auth = AuthKind::authorized_user;
      else
        throw Error(ErrorCode::unauthorized, "gcs: the credentials file '" + file + "' is of type '" + type +
                                                 "'; service_account and authorized_user are supported");
      c.auth_from = type + " credentials in '" + file + "' (" + from + ")";
    } else if (metadata) {
      c.auth = AuthKind::metadata_server;
      c.auth_from = "the metadata server at " + c.metadata_host;
    } else {
      throw Error(ErrorCode::unauthorized, "gcs: no credentials for bucket '" + c.bucket +
                                               "': give token, token_file or credentials_file (or GOOGLE_APPLICATION_CREDENTIALS), "
                                               "or anonymous: true for a public bucket; the metadata server is turned off");
    }
  }
  for (const char* k : {"bucket", "endpoint", "scope", "token", "token_file", "credentials_file", "anonymous", "metadata_server",
                        "metadata_host"})
    set.rest().erase(k);
  set.rest()["url"] = c.endpoint;
  http_options = http::options_from_config(set.rest());
  if (http_options.user_agent.empty()) http_options.user_agent = std::string("modelzoo-plugin-gcs/") + MODELZOO_VERSION;
  return {std::move(c), std::move(layout)};
}

void GcsRegistry::configure(const json& config) {
  http::ClientOptions options;
  auto [c, layout] = parse_config(config, options);
  cfg_ = std::move(c);
  std::shared_ptr<TokenSource> tokens;
  const GcsConfig cfg = cfg_;
  if (cfg.auth == AuthKind::token) {
    tokens = std::make_shared<TokenSource>(
        [cfg] {
          std::string t = cfg.token.empty() ? trim(read_file(cfg.token_file)) : cfg.token;
          if (t.empty()) throw Error(ErrorCode::unauthorized, "gcs: cannot read the token file '" + cfg.token_file + "'");
          // Re-read after a minute: the file may be rotated.
          return TokenSource::Token{t, std::chrono::system_clock::now() + (cfg.token.empty() ? std::chrono::minutes(6) : std::chrono::hours(24 * 365))};
        },
        cfg.auth_from);
  } else if (cfg.auth == AuthKind::service_account) {
    std::string scope = cfg.scope;
    json creds = cfg.credentials;
    tokens = std::make_shared<TokenSource>(
        form_exchange(creds.value("token_uri", std::string("https://oauth2.googleapis.com/token")),
                      [creds, scope] {
                        return "grant_type=" + encode_segment("urn:ietf:params:oauth:grant-type:jwt-bearer") +
                               "&assertion=" + service_account_jwt(creds, scope, std::time(nullptr));
                      },
                      options, "the token endpoint of " + cfg.auth_from),
        cfg.auth_from);
  } else if (cfg.auth == AuthKind::authorized_user) {
    json creds = cfg.credentials;
    auto field = [&](const char* k) { return creds.contains(k) && creds[k].is_string() ? creds[k].get<std::string>() : std::string(); };
    std::string form = "grant_type=refresh_token&client_id=" + encode_segment(field("client_id")) +
                       "&client_secret=" + encode_segment(field("client_secret")) +
                       "&refresh_token=" + encode_segment(field("refresh_token"));
    tokens = std::make_shared<TokenSource>(
        form_exchange(creds.value("token_uri", std::string("https://oauth2.googleapis.com/token")), [form] { return form; }, options,
                      "the token endpoint of " + cfg.auth_from),
        cfg.auth_from);
  } else if (cfg.auth == AuthKind::metadata_server) {
    auto client = objstore::credential_client(options, "http://" + cfg.metadata_host, true);
    tokens = std::make_shared<TokenSource>(
        [client, cfg] {
          http::HttpClient::Response r;
          try {
            r = client->send({"GET", "/computeMetadata/v1/instance/service-accounts/default/token", {{"Metadata-Flavor", "Google"}}, {}, 1u << 16});
          } catch (const Error& e) {
            throw Error(ErrorCode::unauthorized, "gcs: no credentials for bucket '" + cfg.bucket +
                                                     "' (no token, token_file, credentials_file or GOOGLE_APPLICATION_CREDENTIALS, "
                                                     "and the metadata server at " + cfg.metadata_host + " did not answer: " + e.what() +
                                                     "); for a public bucket set anonymous: true");
          }
          try {
            return token_of(json::parse(r.body), "the metadata server");
          } catch (const json::exception&) {
            throw Error(ErrorCode::unauthorized, "gcs: the metadata server's token is not JSON");
          }
        },
        cfg.auth_from);
  }
  if (tokens) {
    tokens->get();  // fails the source now, naming what is wrong, rather than its first pull
    options.auth.kind = http::Auth::Kind::signer;
    options.auth.provider_name = "OAuth access token from " + cfg.auth_from;
    options.auth.signer = [tokens](const http::Auth::SignInput&) {
      return std::vector<std::pair<std::string, std::string>>{{"Authorization", "Bearer " + tokens->get()}};
    };
  }
  set_options(std::move(options));
  set_store(std::make_unique<GcsStore>(client(), cfg_.bucket), std::move(layout), "gcs");
}

}  // namespace modelzoo::plugins::gcs
