#include "s3/s3.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <stdexcept>

#include "modelzoo/bus/sha256.h"
#include "objstore/http_store.h"
#include "objstore/xml.h"

namespace modelzoo::plugins::s3 {

using nlohmann::json;
using sdk::Error;
using sdk::ErrorCode;
namespace http = sdk::http;

namespace {

[[noreturn]] void bad_setting(const std::string& key, const std::string& why) {
  throw Error(ErrorCode::bad_request, "s3: setting '" + key + "' " + why);
}

using objstore::lower;

// S3's rules for a bucket name that can be a host name: 3-63 of [a-z0-9.-], starting and
// ending with a letter or digit, no "..". With TLS a '.' breaks the wildcard certificate.
bool dns_compatible(const std::string& b, bool tls) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
      return false;
  if (!std::isalnum(static_cast<unsigned char>(b.front())) || !std::isalnum(static_cast<unsigned char>(b.back()))) return false;
  if (b.find("..") != std::string::npos) return false;
  return !(tls && b.find('.') != std::string::npos);
}

// The store of one bucket, over the registry's HTTP client.
class S3Store final : public objstore::HttpStore {
 public:
  S3Store(http::HttpClient& client, std::string bucket) : HttpStore(client, "s3", "x-amz-meta-"), bucket_(std::move(bucket)) {}

  objstore::Page list(const std::string& prefix, const std::string& delimiter, const std::string& token, std::size_t max) override {
    std::string path = "?list-type=2&max-keys=" + std::to_string(max) + "&prefix=" + uri_encode(prefix, false);
    if (!delimiter.empty()) path += "&delimiter=" + uri_encode(delimiter, false);
    if (!token.empty()) path += "&continuation-token=" + uri_encode(token, false);
    std::string body = send(describe(prefix), {"GET", path, {}, {}, 16u << 20}).body;
    try {
      return parse_list(body);
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorCode::internal, "s3: listing " + describe(prefix) + ": " + e.what());
    }
  }

  void put(const std::string& key, const std::string& body) override {
    send(describe(key), {"PUT", object_path(key), {{"Content-Type", "text/plain; charset=utf-8"}}, body, 64 * 1024});
  }

  void set_user_metadata(const std::string& key, const std::string& name, const std::string& value) override {
    // CopyObject onto itself with REPLACE: every header that REPLACE would drop is sent again.
    auto h = head(key);
    std::vector<std::pair<std::string, std::string>> headers = {
        {"x-amz-copy-source", "/" + uri_encode(bucket_, false) + "/" + uri_encode(key, true)},
        {"x-amz-metadata-directive", "REPLACE"}};
    for (const auto& [n, v] : h.headers)
      if ((n.rfind("x-amz-meta-", 0) == 0 && n != "x-amz-meta-" + lower(name)) || n == "content-type" ||
          n == "content-encoding" || n == "content-disposition" || n == "cache-control" || n == "content-language")
        headers.emplace_back(n, v);
    headers.emplace_back("x-amz-meta-" + lower(name), value);
    if (!h.headers.count("content-type")) headers.emplace_back("Content-Type", "binary/octet-stream");  // S3's default, not curl's
    if (auto etag = h.headers.find("etag"); etag != h.headers.end())
      headers.emplace_back("x-amz-copy-source-if-match", etag->second);  // not a newer object
    send(describe(key), {"PUT", object_path(key), headers, {}, 1u << 20});
  }

  // (Built with append: GCC 12 -O3 misreports `"lit" + std::string` under -Wrestrict, PR105651.)
  std::string object_path(const std::string& key) const override { return std::string("/").append(uri_encode(key, true)); }
  std::string describe(const std::string& key) const override {
    return std::string("s3://").append(bucket_).append("/").append(key);
  }

 private:
  std::string bucket_;
};

}  // namespace

SplitUrl split_url(const std::string& url) {
  SplitUrl out;
  auto scheme = url.find("://");
  std::size_t host_at = scheme == std::string::npos ? 0 : scheme + 3;
  auto path_at = url.find_first_of("/?", host_at);
  out.host = lower(url.substr(host_at, path_at == std::string::npos ? std::string::npos : path_at - host_at));
  // curl leaves the default port out of the Host header.
  const bool tls = url.rfind("https://", 0) == 0;
  const std::string default_port = tls ? ":443" : ":80";
  if (out.host.size() > default_port.size() && out.host.compare(out.host.size() - default_port.size(), default_port.size(), default_port) == 0)
    out.host.resize(out.host.size() - default_port.size());
  if (path_at == std::string::npos) {
    out.path = "/";
    return out;
  }
  auto q = url.find('?', path_at);
  out.path = objstore::percent_decode(std::string_view(url).substr(path_at, q == std::string::npos ? std::string::npos : q - path_at));
  if (out.path.empty()) out.path = "/";
  if (q == std::string::npos) return out;
  std::string_view query = std::string_view(url).substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (!pair.empty())
      out.query.emplace_back(objstore::percent_decode(pair.substr(0, eq)),
                             eq == std::string_view::npos ? std::string() : objstore::percent_decode(pair.substr(eq + 1)));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

objstore::Page parse_list(const std::string& xml) {
  objstore::Page page;
  objstore::Object current;
  bool truncated = false, root_seen = false;
  std::string token;
  objstore::walk_xml(
      xml,
      [&](const std::string& path, const std::string& text) {
        if (path == "ListBucketResult/Contents/Key") current.key = text;
        else if (path == "ListBucketResult/Contents/Size") {
          current.size = objstore::parse_size(text, "an object's Size");
        } else if (path == "ListBucketResult/Contents/ETag") current.etag = text;
        else if (path == "ListBucketResult/CommonPrefixes/Prefix") page.prefixes.push_back(text);
        else if (path == "ListBucketResult/NextContinuationToken") token = text;
        else if (path == "ListBucketResult/IsTruncated") truncated = text == "true";
      },
      [&](const std::string& path) {
        if (path == "ListBucketResult") root_seen = true;
        if (path == "ListBucketResult/Contents") {
          if (current.key.empty()) throw std::invalid_argument("an object has no Key");
          page.objects.push_back(std::move(current));
          current = {};
        }
      });
  if (!root_seen) throw std::invalid_argument("the answer is not a ListBucketResult");
  if (truncated && token.empty()) throw std::invalid_argument("the listing is truncated but gives no NextContinuationToken");
  if (truncated) page.next = token;
  return page;
}

std::pair<S3Config, objstore::Layout> parse_config(const json& config, http::ClientOptions& http_options, const EnvFn& env_in) {
  objstore::Settings set(config, "s3", env_in, "bucket and endpoint",
                         "access_key_id/secret_access_key, profile or the AWS_* variables");
  auto str = [&](const char* key) { return set.str(key); };
  auto var = [&](const char* name) { return set.var(name); };
  json& rest = set.rest();
  const EnvFn& env = set.env();
  S3Config c;
  c.bucket = str("bucket");
  if (c.bucket.empty()) bad_setting("bucket", "is required");
  if (c.bucket.find('/') != std::string::npos || std::any_of(c.bucket.begin(), c.bucket.end(), [](unsigned char ch) { return ch < 0x21 || ch == 0x7f; }))
    bad_setting("bucket", "is not a bucket name (no '/', blanks or control characters)");
  objstore::Layout layout = objstore::take_layout(rest, "s3");
  c.anonymous = set.boolean("anonymous").value_or(false);
  Chain chain = resolve_chain(rest, env);
  c.region = chain.region;
  c.endpoint = str("endpoint");
  if (c.endpoint.empty()) c.endpoint = var("AWS_ENDPOINT_URL_S3");
  if (c.endpoint.empty()) c.endpoint = var("AWS_ENDPOINT_URL");
  const bool aws = c.endpoint.empty();
  if (aws) c.endpoint = "https://s3." + c.region + ".amazonaws.com";
  while (!c.endpoint.empty() && c.endpoint.back() == '/') c.endpoint.pop_back();
  if (c.endpoint.rfind("http://", 0) != 0 && c.endpoint.rfind("https://", 0) != 0)
    bad_setting("endpoint", "must start with http:// or https://");
  const bool tls = c.endpoint.rfind("https://", 0) == 0;
  std::string addressing = str("addressing");
  if (addressing.empty() || addressing == "auto")
    c.addressing = (aws || c.endpoint.find(".amazonaws.com") != std::string::npos) && dns_compatible(c.bucket, tls)
                       ? Addressing::virtual_hosted
                       : Addressing::path;
  else if (addressing == "path") c.addressing = Addressing::path;
  else if (addressing == "virtual") {
    if (!dns_compatible(c.bucket, tls))
      bad_setting("addressing", "is 'virtual' but bucket '" + c.bucket + "' cannot be a host name" +
                                    (tls ? " (with https a '.' in it breaks the certificate)" : "") + "; use 'path'");
    c.addressing = Addressing::virtual_hosted;
  } else {
    bad_setting("addressing", "must be auto, path or virtual");
  }
  if (c.addressing == Addressing::path) {
    c.base_url = c.endpoint + "/" + uri_encode(c.bucket, false);
  } else {
    auto host_at = c.endpoint.find("://") + 3;
    c.base_url = c.endpoint.substr(0, host_at) + c.bucket + "." + c.endpoint.substr(host_at);
  }
  c.profile = chain.profile;
  c.sts_endpoint = str("sts_endpoint");
  if (c.sts_endpoint.empty()) c.sts_endpoint = var("AWS_ENDPOINT_URL_STS");
  if (c.sts_endpoint.empty()) c.sts_endpoint = "https://sts." + c.region + ".amazonaws.com";
  c.imds_endpoint = str("imds_endpoint");
  if (c.imds_endpoint.empty()) c.imds_endpoint = var("AWS_EC2_METADATA_SERVICE_ENDPOINT");
  if (c.imds_endpoint.empty()) c.imds_endpoint = "http://169.254.169.254";
  bool imds = lower(var("AWS_EC2_METADATA_DISABLED")) != "true";
  imds = imds && set.boolean("imds").value_or(true);
  if (!imds) c.imds_endpoint.clear();
  while (!c.sts_endpoint.empty() && c.sts_endpoint.back() == '/') c.sts_endpoint.pop_back();
  while (!c.imds_endpoint.empty() && c.imds_endpoint.back() == '/') c.imds_endpoint.pop_back();
  if (!c.anonymous) {
    if (chain.found) c.credentials = chain.found;
    else if (chain.web_identity) c.web_identity = chain.web_identity;
    else if (c.imds_endpoint.empty())
      throw Error(ErrorCode::unauthorized,
                  "s3: no credentials for bucket '" + c.bucket +
                      "': none in the configuration (access_key_id, secret_access_key), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                      "profile '" + chain.profile + "' in the shared files, or web identity (AWS_WEB_IDENTITY_TOKEN_FILE with "
                      "AWS_ROLE_ARN), and the instance metadata service is turned off. For a public bucket set anonymous: true");
  }
  for (const char* k : {"bucket", "endpoint", "addressing", "anonymous", "region", "profile", "access_key_id",
                        "secret_access_key", "session_token", "role_arn", "role_session_name", "web_identity_token_file",
                        "sts_endpoint", "imds_endpoint", "imds"})
    rest.erase(k);
  rest["url"] = c.base_url;
  http_options = http::options_from_config(rest);
  if (http_options.user_agent.empty()) http_options.user_agent = std::string("modelzoo-plugin-s3/") + MODELZOO_VERSION;
  return {std::move(c), std::move(layout)};
}

void S3Registry::configure(const json& config) {
  http::ClientOptions options;
  auto [c, layout] = parse_config(config, options);
  cfg_ = std::move(c);
  if (cfg_.credentials) {
    credentials_ = std::make_shared<CredentialSource>(cfg_.credentials->credentials, cfg_.credentials->from);
  } else if (cfg_.web_identity) {
    credentials_ = std::make_shared<CredentialSource>(web_identity_fetch(*cfg_.web_identity, cfg_.sts_endpoint, options),
                                                      "web identity (" + cfg_.web_identity->from + ", role " +
                                                          cfg_.web_identity->role_arn + ")");
  } else if (!cfg_.anonymous) {
    try {
      credentials_ = std::make_shared<CredentialSource>(imds_fetch(cfg_.imds_endpoint, options),
                                                        "the instance metadata service (" + cfg_.imds_endpoint + ")");
    } catch (const Error& e) {
      throw Error(ErrorCode::unauthorized,
                  "s3: no credentials for bucket '" + cfg_.bucket +
                      "': none in the configuration (access_key_id, secret_access_key), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                      "profile '" + cfg_.profile + "' in the shared files or web identity, and " + e.what() +
                      ". For a public bucket set anonymous: true");
    }
  }
  if (credentials_) {
    std::shared_ptr<CredentialSource> source = credentials_;
    std::string region = cfg_.region;
    options.auth.kind = http::Auth::Kind::signer;
    options.auth.provider_name = "AWS Signature V4, credentials from " + source->from();
    options.auth.signer = [source, region](const http::Auth::SignInput& in) {
      SplitUrl u = split_url(in.url);
      Request r;
      r.method = in.method;
      r.host = u.host;
      r.path = u.path;
      r.query = u.query;
      r.region = region;
      if (!in.range.empty()) r.headers.emplace_back("range", in.range);
      for (const auto& [name, value] : in.headers)
        if (lower(name).rfind("x-amz-", 0) == 0) r.headers.emplace_back(name, value);
      if (!in.body.empty()) r.payload_sha256 = bus::Sha256::of(in.body);
      Signed s = sign(r, source->get());
      s.headers.emplace_back("Host", u.host);  // the one signed, whatever curl would write
      return s.headers;
    };
  }
  set_options(std::move(options));
  set_store(std::make_unique<S3Store>(client(), cfg_.bucket), std::move(layout), "s3");
}

}  // namespace modelzoo::plugins::s3
