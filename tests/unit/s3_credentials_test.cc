// The S3 credential chain (plugins/s3/credentials.h): its order, the AWS files' formats,
// profiles, web identity's inputs, the region, and errors that name the place, not the secret.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "modelzoo/plugin.h"
#include "s3/credentials.h"

namespace {

using modelzoo::plugins::s3::parse_ini;
using modelzoo::plugins::s3::resolve_chain;
using nlohmann::json;
namespace fs = std::filesystem;

class S3Chain : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = fs::temp_directory_path() / ("modelzoo-s3chain-" + std::to_string(::getpid()));
    fs::create_directories(home_ / ".aws");
    vars_["HOME"] = home_.string();
  }
  void TearDown() override { fs::remove_all(home_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(home_ / ".aws" / name) << text; }
  modelzoo::plugins::s3::EnvFn env() {
    return [this](const char* n) -> const char* {
      auto it = vars_.find(n);
      return it == vars_.end() ? nullptr : it->second.c_str();
    };
  }
  std::string error_of(const json& config) {
    try {
      resolve_chain(config, env());
    } catch (const modelzoo::sdk::Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path home_;
  std::map<std::string, std::string> vars_;
};

TEST(S3Ini, SectionsKeysCommentsAndBlanks) {
  auto ini = parse_ini("# c\n[default]\naws_access_key_id = AK1\n  AWS_Secret_Access_Key=SK1  \n; c\n\n[profile x]\nregion= eu-west-1\n"
                       "junk line\n= no key\n");
  EXPECT_EQ(ini["default"]["aws_access_key_id"], "AK1");
  EXPECT_EQ(ini["default"]["aws_secret_access_key"], "SK1");
  EXPECT_EQ(ini["profile x"]["region"], "eu-west-1");
  EXPECT_EQ(ini.size(), 2u);
}

TEST_F(S3Chain, TheConfigurationComesFirstThenTheEnvironmentThenTheProfile) {
  write("credentials", "[default]\naws_access_key_id = AKFILE\naws_secret_access_key = SKFILE\n");
  vars_["AWS_ACCESS_KEY_ID"] = "AKENV";
  vars_["AWS_SECRET_ACCESS_KEY"] = "SKENV";
  vars_["AWS_SESSION_TOKEN"] = "TOKENV";
  auto c = resolve_chain({{"access_key_id", "AKCONF"}, {"secret_access_key", "SKCONF"}}, env());
  ASSERT_TRUE(c.found);
  EXPECT_EQ(c.found->credentials.access_key, "AKCONF");
  EXPECT_EQ(c.found->credentials.session_token, "");
  EXPECT_EQ(c.found->from, "the source's configuration");
  c = resolve_chain(json::object(), env());
  EXPECT_EQ(c.found->credentials.access_key, "AKENV");
  EXPECT_EQ(c.found->credentials.session_token, "TOKENV");
  vars_.erase("AWS_ACCESS_KEY_ID");
  vars_.erase("AWS_SECRET_ACCESS_KEY");
  c = resolve_chain(json::object(), env());
  EXPECT_EQ(c.found->credentials.access_key, "AKFILE");
  EXPECT_NE(c.found->from.find("profile 'default' in " + (home_ / ".aws/credentials").string()), std::string::npos) << c.found->from;
}

TEST_F(S3Chain, ANamedProfileFromTheCredentialsFileOrTheConfigFile) {
  write("credentials", "[default]\naws_access_key_id = AK0\naws_secret_access_key = SK0\n");
  write("config", "[profile team]\naws_access_key_id = AKT\naws_secret_access_key = SKT\naws_session_token = TT\nregion = eu-north-1\n");
  vars_["AWS_PROFILE"] = "team";
  auto c = resolve_chain(json::object(), env());
  EXPECT_EQ(c.profile, "team");
  EXPECT_EQ(c.found->credentials.access_key, "AKT");
  EXPECT_EQ(c.found->credentials.session_token, "TT");
  EXPECT_EQ(c.region, "eu-north-1");
  // the configuration's profile wins over AWS_PROFILE; [team] in credentials is not "[profile team]"
  write("credentials", "[default]\naws_access_key_id = AK0\naws_secret_access_key = SK0\n[ci]\naws_access_key_id = AKCI\n"
                       "aws_secret_access_key = SKCI\n");
  c = resolve_chain({{"profile", "ci"}}, env());
  EXPECT_EQ(c.found->credentials.access_key, "AKCI");
  EXPECT_EQ(c.region, "us-east-1");
}

TEST_F(S3Chain, FilesAndRegionFromTheirVariables) {
  fs::path other = home_ / "elsewhere";
  std::ofstream(other) << "[default]\naws_access_key_id = AKX\naws_secret_access_key = SKX\n";
  vars_["AWS_SHARED_CREDENTIALS_FILE"] = other.string();
  vars_["AWS_DEFAULT_REGION"] = "ap-south-1";
  auto c = resolve_chain(json::object(), env());
  EXPECT_EQ(c.found->credentials.access_key, "AKX");
  EXPECT_EQ(c.region, "ap-south-1");
  vars_["AWS_REGION"] = "sa-east-1";
  EXPECT_EQ(resolve_chain(json::object(), env()).region, "sa-east-1");
  EXPECT_EQ(resolve_chain({{"region", "auto"}}, env()).region, "auto");
}

TEST_F(S3Chain, WebIdentityInputsWhenNothingElseGivesAKey) {
  vars_["AWS_WEB_IDENTITY_TOKEN_FILE"] = "/var/run/secrets/eks.amazonaws.com/serviceaccount/token";
  vars_["AWS_ROLE_ARN"] = "arn:aws:iam::123456789012:role/models";
  auto c = resolve_chain(json::object(), env());
  EXPECT_FALSE(c.found);
  ASSERT_TRUE(c.web_identity);
  EXPECT_EQ(c.web_identity->role_arn, "arn:aws:iam::123456789012:role/models");
  EXPECT_EQ(c.web_identity->session_name, "modelzoo");
  vars_.erase("AWS_ROLE_ARN");
  EXPECT_NE(error_of(json::object()).find("needs both a token file and a role ARN"), std::string::npos);
}

TEST_F(S3Chain, NothingAtAllIsNoCredentialsYetNotAnError) {
  auto c = resolve_chain(json::object(), env());
  EXPECT_FALSE(c.found);
  EXPECT_FALSE(c.web_identity);  // the plugin then asks the instance metadata service
  EXPECT_EQ(c.region, "us-east-1");
}

TEST_F(S3Chain, HalfACredentialOrAMissingProfileIsAnErrorNamingThePlaceNotTheSecret) {
  auto e = error_of({{"secret_access_key", "SK-SECRET-1"}});
  EXPECT_NE(e.find("secret_access_key without access_key_id"), std::string::npos) << e;
  EXPECT_EQ(e.find("SK-SECRET-1"), std::string::npos) << e;
  vars_["AWS_ACCESS_KEY_ID"] = "AKENV";
  e = error_of(json::object());
  EXPECT_NE(e.find("AWS_ACCESS_KEY_ID without AWS_SECRET_ACCESS_KEY"), std::string::npos) << e;
  vars_.erase("AWS_ACCESS_KEY_ID");
  write("credentials", "[default]\naws_access_key_id = AK0\n");
  e = error_of(json::object());
  EXPECT_NE(e.find("profile 'default' in"), std::string::npos) << e;
  vars_["AWS_PROFILE"] = "nope";
  e = error_of(json::object());
  EXPECT_NE(e.find("the profile 'nope' is in neither"), std::string::npos) << e;
}

}  // namespace
