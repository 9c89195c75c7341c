#include "s3/exchange.h"

#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "objstore/http_store.h"
#include "objstore/xml.h"
#include "s3/sigv4.h"

namespace modelzoo::plugins::s3 {

using sdk::Error;
using sdk::ErrorCode;
namespace http = sdk::http;

namespace {
constexpr auto kRefreshBefore = std::chrono::minutes(5);
}

std::optional<SystemTime> parse_iso8601(const std::string& s) {
  std::tm tm{};
  int y, mo, d, h, mi, sec;
  char tail = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &sec) != 6) return std::nullopt;
  auto rest = s.substr(19);
  if (!rest.empty() && rest[0] == '.') {
    std::size_t k = 1;
    while (k < rest.size() && std::isdigit(static_cast<unsigned char>(rest[k]))) ++k;
    rest = rest.substr(k);
  }
  if (rest != "Z" && rest != "+00:00") return std::nullopt;
  (void)tail;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

Temporary parse_sts(const std::string& xml) {
  Temporary t;
  std::string expiration;
  const std::string at = "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/";
  objstore::walk_xml(xml, [&](const std::string& path, const std::string& text) {
    if (path.compare(0, at.size(), at) != 0) return;
    std::string field = path.substr(at.size());
    if (field == "AccessKeyId") t.credentials.access_key = text;
    else if (field == "SecretAccessKey") t.credentials.secret_key = text;
    else if (field == "SessionToken") t.credentials.session_token = text;
    else if (field == "Expiration") expiration = text;
  });
  if (t.credentials.access_key.empty() || t.credentials.secret_key.empty())
    throw std::invalid_argument("the answer holds no AssumeRoleWithWebIdentityResult credentials");
  auto when = parse_iso8601(expiration);
  if (!when) throw std::invalid_argument("the credentials' Expiration is not a time");
  t.expires = *when;
  return t;
}

Temporary parse_imds(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("the credentials document is not JSON");
  }
  auto str = [&](const char* k) {
    if (!j.is_object() || !j.contains(k) || !j[k].is_string()) throw std::invalid_argument(std::string("the credentials document has no ") + k);
    return j[k].get<std::string>();
  };
  if (j.is_object() && j.contains("Code") && j["Code"].is_string() && j["Code"] != "Success")
    throw std::invalid_argument("the instance metadata service says " + j["Code"].get<std::string>());
  Temporary t;
  t.credentials = {str("AccessKeyId"), str("SecretAccessKey"), str("Token")};
  auto when = parse_iso8601(str("Expiration"));
  if (!when) throw std::invalid_argument("the credentials' Expiration is not a time");
  t.expires = *when;
  return t;
}

CredentialSource::CredentialSource(Credentials fixed, std::string from) : from_(std::move(from)) {
  current_.credentials = std::move(fixed);
}

CredentialSource::CredentialSource(Fetch fetch, std::string from, std::function<SystemTime()> now)
    : fetch_(std::move(fetch)), from_(std::move(from)), now_(std::move(now)), expires_(true) {
  current_ = fetch_();
}

Credentials CredentialSource::get() {
  std::lock_guard lk(mu_);
  if (!expires_ || now_() + kRefreshBefore < current_.expires) return current_.credentials;
  try {
    current_ = fetch_();
  } catch (const Error& e) {
    if (now_() >= current_.expires)
      throw Error(ErrorCode::unauthorized, "s3: the credentials from " + from_ + " expired and could not be renewed: " + e.what());
    sdk::log("warn", "s3: renewing the credentials from " + from_ + " failed (" + e.what() + "); the current ones stay until they expire");
  }
  return current_.credentials;
}

CredentialSource::Fetch web_identity_fetch(const WebIdentity& w, const std::string& sts_endpoint, const http::ClientOptions& base) {
  auto client = objstore::credential_client(base, sts_endpoint, false);
  return [client, w] {
    std::ifstream in(w.token_file);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token = ss.str();
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (!in || token.empty())
      throw Error(ErrorCode::unauthorized, "s3: cannot read the web identity token file '" + w.token_file + "' (from " + w.from + ")");
    // POSTed as a form (as botocore does): the token is in no URL, so in no log line.
    std::string form = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" + uri_encode(w.role_arn, false) +
                       "&RoleSessionName=" + uri_encode(w.session_name, false) + "&WebIdentityToken=" + uri_encode(token, false);
    std::string body;
    try {
      body = client->send({"POST", "/", {{"Content-Type", "application/x-www-form-urlencoded"}}, form, 1u << 20}).body;
    } catch (const Error& e) {
      throw Error(e.code() == ErrorCode::not_found ? ErrorCode::unauthorized : e.code(),
                  "s3: STS AssumeRoleWithWebIdentity for role '" + w.role_arn + "' (from " + w.from + "): " + e.what());
    }
    try {
      return parse_sts(body);
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorCode::unauthorized, "s3: STS AssumeRoleWithWebIdentity for role '" + w.role_arn + "': " + e.what());
    }
  };
}

CredentialSource::Fetch imds_fetch(const std::string& endpoint, const http::ClientOptions& base) {
  auto client = objstore::credential_client(base, endpoint, true);
  return [client, endpoint] {
    try {
      std::string token =
          client->send({"PUT", "/latest/api/token", {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}}, {}, 4096}).body;
      const std::vector<std::pair<std::string, std::string>> with = {{"X-aws-ec2-metadata-token", token}};
      std::string roles = client->send({"GET", "/latest/meta-data/iam/security-credentials/", with, {}, 4096}).body;
      std::string role = roles.substr(0, roles.find('\n'));
      if (role.empty()) throw Error(ErrorCode::unauthorized, "the instance has no IAM role");
      std::string doc = client->send({"GET", "/latest/meta-data/iam/security-credentials/" + uri_encode(role, false), with, {}, 1u << 16}).body;
      return parse_imds(doc);
    } catch (const Error& e) {
      throw Error(ErrorCode::unauthorized, "s3: the instance metadata service at " + endpoint + ": " + e.what());
    } catch (const std::invalid_argument& e) {
      throw Error(ErrorCode::unauthorized, "s3: the instance metadata service at " + endpoint + ": " + e.what());
    }
  };
}

}  // namespace modelzoo::plugins::s3
