// Where the S3 plugin's credentials and region come from: the chain users know from the AWS
// tools, in this order (the first that gives a key wins):
//   1. the source's configuration: access_key_id, secret_access_key [, session_token]
//      (each may be an enc:v1: secret, decrypted by the daemon before the plugin sees it)
//   2. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [, AWS_SESSION_TOKEN]
//   3. the profile (config `profile`, else AWS_PROFILE, else AWS_DEFAULT_PROFILE, else
//      "default") in the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else
//      ~/.aws/credentials), then in the config file (AWS_CONFIG_FILE, else ~/.aws/config,
//      where it is "[profile NAME]" except for "[default]")
//   4. web identity (AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or the profile's
//      web_identity_token_file / role_arn), exchanged with STS by the plugin
//   5. the instance metadata service (IMDSv2), by the plugin
// Steps 1-3 and the inputs of 4 are read here (pure logic, unit-tested); 4 and 5 talk HTTP.
// Region: the configuration's `region`, else AWS_REGION, else AWS_DEFAULT_REGION, else the
// profile's `region`, else us-east-1.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "s3/sigv4.h"

namespace modelzoo::plugins::s3 {

// getenv by default; tests give their own.
using EnvFn = std::function<const char*(const char*)>;

// An INI file as the AWS tools read it: [section] headers, key = value lines, '#' and ';'
// comments, keys lower-cased. Lines it cannot read are skipped (as the AWS CLI does).
using Ini = std::map<std::string, std::map<std::string, std::string>>;
Ini parse_ini(const std::string& text);

struct Found {
  Credentials credentials;
  std::string from;  // "the source's configuration", "the environment (AWS_ACCESS_KEY_ID)", "profile 'x' in /root/.aws/credentials"
};

struct WebIdentity {
  std::string token_file, role_arn, session_name;
  std::string from;
};

struct Chain {
  std::optional<Found> found;             // steps 1-3
  std::optional<WebIdentity> web_identity;  // step 4's inputs, when 1-3 found nothing
  std::string region;
  std::string profile;                    // the profile the chain looked at
};

// Reads steps 1-3 and 4's inputs. Throws sdk::Error(bad_request or unauthorized) naming the
// setting, variable or file, never a secret: a key without its secret (or the reverse) in
// any step, a profile named explicitly (config or AWS_PROFILE) that no file has (when the
// configuration and the environment gave no key).
Chain resolve_chain(const nlohmann::json& config, const EnvFn& env = {});

}  // namespace modelzoo::plugins::s3
