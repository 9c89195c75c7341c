#include "s3/credentials.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "modelzoo/plugin.h"

namespace modelzoo::plugins::s3 {
namespace {

using sdk::Error;
using sdk::ErrorCode;

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A key and its secret, both or neither; `what` names where they were looked for.
std::optional<Credentials> pair_of(const std::string& key, const std::string& secret, const std::string& token,
                                   const std::string& what, const std::string& key_name, const std::string& secret_name) {
  if (key.empty() && secret.empty()) return std::nullopt;
  if (key.empty() || secret.empty())
    throw Error(ErrorCode::bad_request, "s3: " + what + " gives " + (key.empty() ? secret_name : key_name) + " without " +
                                            (key.empty() ? key_name : secret_name));
  return Credentials{key, secret, token};
}

}  // namespace

Ini parse_ini(const std::string& text) {
  Ini out;
  std::string section;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      auto close = t.find(']');
      section = close == std::string::npos ? "" : trim(t.substr(1, close - 1));
      continue;
    }
    auto eq = t.find('=');
    if (eq == std::string::npos || section.empty()) continue;
    out[section][lower(trim(t.substr(0, eq)))] = trim(t.substr(eq + 1));
  }
  return out;
}

Chain resolve_chain(const nlohmann::json& config, const EnvFn& env_in) {
  EnvFn env = env_in ? env_in : EnvFn([](const char* n) { return std::getenv(n); });
  auto var = [&](const char* n) {
    const char* v = env(n);
    return std::string(v ? v : "");
  };
  auto setting = [&](const char* k) {
    if (!config.is_object() || !config.contains(k)) return std::string();
    if (!config[k].is_string()) throw Error(ErrorCode::bad_request, std::string("s3: '") + k + "' must be a string");
    return config[k].get<std::string>();
  };
  Chain c;
  std::string home = var("HOME");
  std::string cred_file = !var("AWS_SHARED_CREDENTIALS_FILE").empty() ? var("AWS_SHARED_CREDENTIALS_FILE") : home + "/.aws/credentials";
  std::string conf_file = !var("AWS_CONFIG_FILE").empty() ? var("AWS_CONFIG_FILE") : home + "/.aws/config";
  bool named = true;
  c.profile = setting("profile");
  if (c.profile.empty()) c.profile = var("AWS_PROFILE");
  if (c.profile.empty()) c.profile = var("AWS_DEFAULT_PROFILE");
  if (c.profile.empty()) {
    c.profile = "default";
    named = false;
  }
  Ini creds = parse_ini(read_text(cred_file).value_or(""));
  Ini conf = parse_ini(read_text(conf_file).value_or(""));
  const std::string conf_section = c.profile == "default" ? "default" : "profile " + c.profile;
  const auto* in_creds = creds.count(c.profile) ? &creds[c.profile] : nullptr;
  const auto* in_conf = conf.count(conf_section) ? &conf[conf_section] : nullptr;
  auto get = [](const std::map<std::string, std::string>* m, const char* k) {
    if (!m) return std::string();
    auto it = m->find(k);
    return it == m->end() ? std::string() : it->second;
  };

  // 1. the configuration
  if (auto p = pair_of(setting("access_key_id"), setting("secret_access_key"), setting("session_token"),
                       "the source's configuration", "access_key_id", "secret_access_key"))
    c.found = Found{*p, "the source's configuration"};
  // 2. the environment
  if (!c.found)
    if (auto p = pair_of(var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"), var("AWS_SESSION_TOKEN"), "the environment",
                         "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))
      c.found = Found{*p, "the environment (AWS_ACCESS_KEY_ID)"};
  // 3. the profile: the credentials file, then the config file
  if (!c.found && named && !in_creds && !in_conf)
    throw Error(ErrorCode::bad_request, "s3: the profile '" + c.profile + "' is in neither " + cred_file + " nor " + conf_file);
  if (!c.found)
    for (auto [m, file] : {std::pair{in_creds, cred_file}, std::pair{in_conf, conf_file}}) {
      std::string where = "profile '" + c.profile + "' in " + file;
      if (auto p = pair_of(get(m, "aws_access_key_id"), get(m, "aws_secret_access_key"), get(m, "aws_session_token"), where,
                           "aws_access_key_id", "aws_secret_access_key")) {
        c.found = Found{*p, where};
        break;
      }
    }
  // 4. web identity's inputs
  if (!c.found) {
    std::string token_file = var("AWS_WEB_IDENTITY_TOKEN_FILE"), role = var("AWS_ROLE_ARN"), from = "the environment";
    if (token_file.empty() && role.empty()) {
      token_file = get(in_conf, "web_identity_token_file");
      role = get(in_conf, "role_arn");
      from = "profile '" + c.profile + "' in " + conf_file;
    }
    if (!token_file.empty() || !role.empty()) {
      if (token_file.empty() || role.empty())
        throw Error(ErrorCode::bad_request, "s3: web identity in " + from + " needs both a token file and a role ARN");
      std::string session = var("AWS_ROLE_SESSION_NAME");
      if (session.empty()) session = get(in_conf, "role_session_name");
      c.web_identity = WebIdentity{token_file, role, session.empty() ? "modelzoo" : session, from};
    }
  }
  // the region
  c.region = setting("region");
  if (c.region.empty()) c.region = var("AWS_REGION");
  if (c.region.empty()) c.region = var("AWS_DEFAULT_REGION");
  if (c.region.empty()) c.region = get(in_conf, "region");
  if (c.region.empty()) c.region = "us-east-1";
  return c;
}

}  // namespace modelzoo::plugins::s3
