// The oci plugin's pure logic (plugins/oci): manifests to metadata (ORAS titles, Ollama media
// types, digests), WWW-Authenticate challenges, docker config.json credentials, configuration,
// push targets and the pushed manifest.
#include <gtest/gtest.h>

#include "oci/oci.h"
#include "oci/push.h"

namespace modelzoo::plugins::oci {
namespace {

const std::string kA = std::string(64, 'a'), kB = std::string(64, 'b'), kC = std::string(64, 'c');

TEST(OciManifest, OllamaMediaTypesGiveFileNamesAndTheGgufFormat) {
  auto m = nlohmann::json::parse(R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:)" + kC + R"(","size":10},
    "layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:)" + kA + R"(","size":100},
              {"mediaType":"application/vnd.ollama.image.license","digest":"sha256:)" + kB + R"(","size":5},
              {"mediaType":"application/vnd.ollama.image.license","digest":"sha256:)" + kC + R"(","size":6},
              {"mediaType":"application/vnd.ollama.image.params","digest":"sha256:)" + kB + R"(","size":7}]})");
  auto f = files_from_manifest(m, "library/llama3", "8.0.0", "sha256:" + kC);
  ASSERT_EQ(f.metadata.files.size(), 4u);
  EXPECT_EQ(f.metadata.files[0].name, "model.gguf");
  EXPECT_EQ(f.metadata.files[0].sha256, kA);
  EXPECT_EQ(f.metadata.files[0].size, 100u);
  EXPECT_EQ(f.metadata.files[1].name, "license");
  EXPECT_EQ(f.metadata.files[2].name, "license-2");
  EXPECT_EQ(f.metadata.files[3].name, "params.json");
  EXPECT_EQ(f.metadata.format, "gguf");
  EXPECT_EQ(f.digest_of["model.gguf"], "sha256:" + kA);
  EXPECT_NE(f.metadata.description.find("sha256:" + kC), std::string::npos);
  ASSERT_NO_THROW(bus::ModelMetadata::from_json(f.metadata.to_json()));
}

TEST(OciManifest, TitlesNameFilesAndNonSha256DigestsAreRefused) {
  auto m = nlohmann::json::parse(R"({"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:)" + kA +
                                 R"(","size":3,"annotations":{"org.opencontainers.image.title":"weights/w.bin"}},
                                 {"mediaType":"x","digest":"sha256:)" + kB + R"(","size":4}]})");
  auto f = files_from_manifest(m, "acme/llm", "1.0.0", "sha256:" + kC);
  EXPECT_EQ(f.metadata.files[0].name, "weights/w.bin");
  EXPECT_EQ(f.metadata.files[1].name, "sha256/" + kB);
  m["layers"][0]["digest"] = "sha512:" + kA + kA;
  EXPECT_THROW(files_from_manifest(m, "acme/llm", "1.0.0", "sha256:" + kC), sdk::Error);
  m["layers"][0]["digest"] = "sha256:" + kA;
  m["layers"][0]["annotations"]["org.opencontainers.image.title"] = "../escape";
  EXPECT_THROW(files_from_manifest(m, "acme/llm", "1.0.0", "sha256:" + kC), sdk::Error);
}

TEST(OciAuth, ChallengesAndDockerConfigCredentials) {
  auto c = parse_challenge(R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example/token");
  EXPECT_EQ(c->params["service"], "registry.example");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull");
  EXPECT_EQ(parse_challenge(R"(Basic realm="x")")->scheme, "basic");
  EXPECT_FALSE(parse_challenge(""));
  std::string dc = R"({"auths":{"https://registry.example":{"auth":"YWxpY2U6cHc6d2l0aDpjb2xvbnM="},"other:5000":{"username":"u","password":"p"}}})";
  auto a = docker_credentials(dc, "https://registry.example");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "alice");
  EXPECT_EQ(a->second, "pw:with:colons");
  EXPECT_EQ(docker_credentials(dc, "http://other:5000")->first, "u");
  EXPECT_FALSE(docker_credentials(dc, "https://third.example"));
  EXPECT_FALSE(docker_credentials("not json", "https://registry.example"));
}

TEST(OciConfig, BadSettingsAreNamed) {
  EXPECT_THROW(parse_config(nlohmann::json::object()), sdk::Error);
  EXPECT_THROW(parse_config({{"url", "ftp://x"}}), sdk::Error);
  EXPECT_THROW(parse_config({{"url", "http://x"}, {"bogus", 1}}), sdk::Error);
  EXPECT_THROW(parse_config({{"url", "http://x"}, {"versions", {{"8b", "8b"}}}}), sdk::Error);
  auto c = parse_config({{"url", "http://x:5000/"}, {"versions", {{"8.0.0", "8b"}}}, {"docker_config", "/none"}});
  EXPECT_EQ(c.url, "http://x:5000");
  EXPECT_EQ(c.versions["8.0.0"], "8b");
}

TEST(OciPush, TargetsAndTheArtifactManifest) {
  auto t = parse_push_target("oci://127.0.0.1:5000/acme/llm:v1", "1.0.0", false);
  EXPECT_EQ(t.url, "http://127.0.0.1:5000");
  EXPECT_EQ(t.repository, "acme/llm");
  EXPECT_EQ(t.tag, "v1");
  t = parse_push_target("oci://registry.example/acme/llm", "1.0.0+b1", false);
  EXPECT_EQ(t.url, "https://registry.example");
  EXPECT_EQ(t.tag, "1.0.0_b1");
  EXPECT_EQ(parse_push_target("oci://registry.example/a", "1.0.0", true).url, "http://registry.example");
  EXPECT_THROW(parse_push_target("docker://x/a", "1.0.0", false), sdk::Error);
  EXPECT_THROW(parse_push_target("oci://x", "1.0.0", false), sdk::Error);
  EXPECT_THROW(parse_push_target("oci://x/Upper", "1.0.0", false), sdk::Error);
  auto m = nlohmann::json::parse(artifact_manifest({{"w.bin", 3, kA, "/dev/null"}}));
  EXPECT_EQ(m["artifactType"], "application/vnd.modelzoo.model.v1");
  EXPECT_EQ(m["layers"][0]["annotations"]["org.opencontainers.image.title"], "w.bin");
  // and the plugin reads back what push writes
  auto f = files_from_manifest(m, "acme/llm", "1.0.0", "sha256:" + kC);
  EXPECT_EQ(f.metadata.files[0].name, "w.bin");
  EXPECT_EQ(f.metadata.files[0].sha256, kA);
}

}  // namespace
}  // namespace modelzoo::plugins::oci
