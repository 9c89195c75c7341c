// Unit tests of the example HTTP registry server's protocol logic
// (plugins/example-http-registry/protocol.h): paths, ranges, credentials, redaction.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "example-http-registry/protocol.h"

namespace {

namespace hr = modelzoo::plugins::http_registry;
using Kind = hr::Route::Kind;

// The HTTP status parse_route throws for `target`, 0 when it does not throw.
int route_status(const std::string& target) {
  try {
    hr::parse_route(target);
    return 0;
  } catch (const hr::HttpError& e) {
    return e.status();
  }
}

TEST(HttpRegistryPercent, DecodesEscapesAndRefusesMalformedOnes) {
  EXPECT_EQ(hr::percent_decode("a%2Fb%2e%2E"), "a/b..");
  EXPECT_EQ(hr::percent_decode("1.0.0+build"), "1.0.0+build");  // '+' is not a space in a path
  EXPECT_EQ(hr::percent_decode("%00"), std::string(1, '\0'));
  EXPECT_EQ(hr::percent_decode(""), "");
  EXPECT_FALSE(hr::percent_decode("%"));
  EXPECT_FALSE(hr::percent_decode("%2"));
  EXPECT_FALSE(hr::percent_decode("ab%zz"));
  EXPECT_EQ(hr::percent_encode("a b/c+d~"), "a%20b%2Fc%2Bd~");
  EXPECT_EQ(hr::percent_encode("a b/c", true), "a%20b/c");
  EXPECT_EQ(hr::percent_decode(hr::percent_encode("x/\x01\xff", false)), "x/\x01\xff");
}

TEST(HttpRegistryRoute, ParsesEveryEndpoint) {
  EXPECT_EQ(hr::parse_route("/v1/models").kind, Kind::list);
  EXPECT_EQ(hr::parse_route("/v1/models/").kind, Kind::list);
  EXPECT_EQ(hr::parse_route("/v1/models?page=2").kind, Kind::list);

  auto v = hr::parse_route("/v1/models/acme/llm/-/versions");
  EXPECT_EQ(v.kind, Kind::versions);
  EXPECT_EQ(v.name, "acme/llm");

  auto m = hr::parse_route("/v1/models/acme/llm/-/versions/1.2.3-rc.1%2Bbuild.5");
  EXPECT_EQ(m.kind, Kind::metadata);
  EXPECT_EQ(m.name, "acme/llm");
  EXPECT_EQ(m.version, "1.2.3-rc.1+build.5");

  auto f = hr::parse_route("/v1/models/single/-/versions/1.0.0/files/dir/sub/weights.bin?x=1");
  EXPECT_EQ(f.kind, Kind::file);
  EXPECT_EQ(f.name, "single");
  EXPECT_EQ(f.version, "1.0.0");
  EXPECT_EQ(f.file, "dir/sub/weights.bin");

  // Segments are decoded one by one; an encoded '/' inside a file name is a separator too.
  auto enc = hr::parse_route("/v1/models/%61cme%2Fllm/-/versions/1.0.0/files/dir%2Fw.bin");
  EXPECT_EQ(enc.name, "acme/llm");
  EXPECT_EQ(enc.file, "dir/w.bin");
}

TEST(HttpRegistryRoute, UnknownPathsAreNotFound) {
  for (const char* t : {"/", "", "v1/models", "/v2/models", "/v1/model", "/v1/models/acme/llm",
                        "/v1/models/acme/llm/-", "/v1/models/acme/llm/-/tags", "/v1/models/acme/-/versions/1.0.0/x",
                        "/v1/models/acme/-/versions/1.0.0/files", "/v1/models/acme/-/versions/1.0.0/blobs/a"})
    EXPECT_EQ(route_status(t), 404) << t;
}

TEST(HttpRegistryRoute, HostileNamesAreBadRequests) {
  for (const char* t : {
           "/v1/models/../etc/-/versions",
           "/v1/models/%2e%2e/etc/-/versions",
           "/v1/models/acme/%2E%2E/-/versions",
           "/v1/models//etc/passwd/-/versions",           // absolute: an empty segment
           "/v1/models/%2Fetc%2Fpasswd/-/versions",       // absolute, encoded
           "/v1/models/acme%00/-/versions",               // NUL
           "/v1/models/acme/llm/-/versions/1.0/",          // not semver
           "/v1/models/acme/llm/-/versions/..",
           "/v1/models/acme/llm/-/versions/1.0.0/files/../../../etc/passwd",
           "/v1/models/acme/llm/-/versions/1.0.0/files/%2e%2e/x",
           "/v1/models/acme/llm/-/versions/1.0.0/files//etc/passwd",
           "/v1/models/acme/llm/-/versions/1.0.0/files/%2Fetc%2Fpasswd",
           "/v1/models/acme/llm/-/versions/1.0.0/files/a%00b",
           "/v1/models/acme/llm/-/versions/1.0.0/files/.hidden",
           "/v1/models/acme/llm/-/versions/1.0.0/files/dir/",
           "/v1/models/ac%zzme/-/versions",               // malformed escape
           "/v1/models/-/versions",                       // no name
       })
    EXPECT_EQ(route_status(t), 400) << t;
}

TEST(HttpRegistryRange, ParsesSingleRanges) {
  using K = hr::RangeRequest::Kind;
  auto r = hr::parse_range("bytes=5-", 10);
  ASSERT_EQ(r.kind, K::satisfiable);
  EXPECT_EQ(r.range.first, 5u);
  EXPECT_EQ(r.range.last, 9u);
  EXPECT_EQ(r.range.length(), 5u);
  EXPECT_EQ(hr::content_range(r.range, 10), "bytes 5-9/10");

  r = hr::parse_range("bytes=2-4", 10);
  EXPECT_EQ(r.kind, K::satisfiable);
  EXPECT_EQ(r.range.first, 2u);
  EXPECT_EQ(r.range.last, 4u);

  r = hr::parse_range("bytes=0-1000", 10);  // clamped
  EXPECT_EQ(r.range.last, 9u);
  r = hr::parse_range("bytes=-3", 10);  // suffix
  EXPECT_EQ(r.range.first, 7u);
  EXPECT_EQ(r.range.last, 9u);
  r = hr::parse_range("bytes=-30", 10);
  EXPECT_EQ(r.range.first, 0u);
  r = hr::parse_range(" BYTES=9-9 ", 10);
  EXPECT_EQ(r.kind, K::satisfiable);
  EXPECT_EQ(r.range.length(), 1u);
  r = hr::parse_range("bytes=18446744073709551614-", 18446744073709551615ull);
  EXPECT_EQ(r.kind, K::satisfiable);
  EXPECT_EQ(r.range.length(), 1u);
}

TEST(HttpRegistryRange, UnsatisfiableAndIgnoredRanges) {
  using K = hr::RangeRequest::Kind;
  EXPECT_EQ(hr::parse_range("bytes=10-", 10).kind, K::unsatisfiable);  // at the end
  EXPECT_EQ(hr::parse_range("bytes=11-20", 10).kind, K::unsatisfiable);
  EXPECT_EQ(hr::parse_range("bytes=-0", 10).kind, K::unsatisfiable);
  EXPECT_EQ(hr::parse_range("bytes=0-", 0).kind, K::unsatisfiable);  // an empty file has no byte 0
  for (const char* h : {"", "bytes=", "bytes=-", "items=0-1", "bytes=5-2", "bytes=a-", "bytes=0-1,3-4",
                        "bytes=99999999999999999999-", "bytes=+1-"})
    EXPECT_EQ(hr::parse_range(h, 10).kind, K::none) << h;
}

TEST(HttpRegistryAuth, Base64RoundTripsAndRefusesGarbage) {
  EXPECT_EQ(hr::base64_encode("user:pass word"), "dXNlcjpwYXNzIHdvcmQ=");
  EXPECT_EQ(hr::base64_decode("dXNlcjpwYXNzIHdvcmQ="), "user:pass word");
  EXPECT_EQ(hr::base64_decode(""), "");
  for (std::string s : {"a", "ab", "abc", "abcd", "\xff\x00\x01"}) EXPECT_EQ(hr::base64_decode(hr::base64_encode(s)), s);
  EXPECT_FALSE(hr::base64_decode("abc"));
  EXPECT_FALSE(hr::base64_decode("ab=c"));
  EXPECT_FALSE(hr::base64_decode("a==="));
  EXPECT_FALSE(hr::base64_decode("ab!="));
  EXPECT_TRUE(hr::constant_time_equal("secret", "secret"));
  EXPECT_FALSE(hr::constant_time_equal("secret", "secreT"));
  EXPECT_FALSE(hr::constant_time_equal("secret", "secret1"));
  EXPECT_FALSE(hr::constant_time_equal("", "x"));
}

struct Req {
  std::map<std::string, std::string> headers, query;
  hr::Lookup header() const {
    return [this](const std::string& n) -> std::optional<std::string> {
      auto it = headers.find(n);
      if (it == headers.end()) return std::nullopt;
      return it->second;
    };
  }
  hr::Lookup params() const {
    return [this](const std::string& n) -> std::optional<std::string> {
      auto it = query.find(n);
      if (it == query.end()) return std::nullopt;
      return it->second;
    };
  }
};

hr::AuthResult check(const hr::AuthConfig& a, const Req& r, const std::string& token = "") {
  return hr::check_auth(a, token, r.header(), r.params());
}

TEST(HttpRegistryAuth, ApiKeyInHeaderOrQuery) {
  hr::AuthConfig a;
  a.kind = hr::AuthConfig::Kind::api_key;
  a.api_key = "k3y";
  EXPECT_EQ(check(a, {}), hr::AuthResult::missing);
  EXPECT_EQ(check(a, {{{"X-API-Key", "k3y"}}, {}}), hr::AuthResult::ok);
  EXPECT_EQ(check(a, {{{"X-API-Key", "nope"}}, {}}), hr::AuthResult::wrong);
  EXPECT_EQ(check(a, {{}, {{"api_key", "k3y"}}}), hr::AuthResult::missing) << "no query parameter unless configured";
  a.api_key_query = "api_key";
  a.api_key_header = "X-Key";
  EXPECT_EQ(check(a, {{}, {{"api_key", "k3y"}}}), hr::AuthResult::ok);
  EXPECT_EQ(check(a, {{}, {{"api_key", "bad"}}}), hr::AuthResult::wrong);
  EXPECT_EQ(check(a, {{{"X-Key", "k3y"}}, {}}), hr::AuthResult::ok);
  EXPECT_EQ(check(a, {{{"X-Key", "bad"}}, {{"api_key", "k3y"}}}), hr::AuthResult::wrong);
  EXPECT_EQ(hr::www_authenticate(a), "ApiKey realm=\"modelzoo\", header=\"X-Key\", query=\"api_key\"");
}

TEST(HttpRegistryAuth, BearerToken) {
  hr::AuthConfig a;
  a.kind = hr::AuthConfig::Kind::bearer;
  EXPECT_EQ(check(a, {}, "t0k"), hr::AuthResult::missing);
  EXPECT_EQ(check(a, {{{"Authorization", "Bearer t0k"}}, {}}, "t0k"), hr::AuthResult::ok);
  EXPECT_EQ(check(a, {{{"Authorization", "bearer   t0k "}}, {}}, "t0k"), hr::AuthResult::ok);
  EXPECT_EQ(check(a, {{{"Authorization", "Bearer t0K"}}, {}}, "t0k"), hr::AuthResult::wrong);
  EXPECT_EQ(check(a, {{{"Authorization", "Basic dDpr"}}, {}}, "t0k"), hr::AuthResult::missing);
  EXPECT_EQ(check(a, {{{"Authorization", "Bearer"}}, {}}, "t0k"), hr::AuthResult::missing);
  EXPECT_EQ(check(a, {{{"Authorization", "Bearer x"}}, {}}, ""), hr::AuthResult::wrong) << "no token: nothing passes";
  EXPECT_EQ(hr::www_authenticate(a), "Bearer realm=\"modelzoo\"");
}

TEST(HttpRegistryAuth, BasicAndRequiredHeader) {
  hr::AuthConfig a;
  a.kind = hr::AuthConfig::Kind::basic;
  a.basic_user = "alice";
  a.basic_password = "pa:ss";
  EXPECT_EQ(check(a, {}), hr::AuthResult::missing);
  EXPECT_EQ(check(a, {{{"Authorization", "Basic " + hr::base64_encode("alice:pa:ss")}}, {}}), hr::AuthResult::ok);
  EXPECT_EQ(check(a, {{{"Authorization", "Basic " + hr::base64_encode("alice:pa")}}, {}}), hr::AuthResult::wrong);
  EXPECT_EQ(check(a, {{{"Authorization", "Basic !!!"}}, {}}), hr::AuthResult::wrong);
  EXPECT_EQ(hr::www_authenticate(a), "Basic realm=\"modelzoo\", charset=\"UTF-8\"");

  hr::AuthConfig h;
  h.kind = hr::AuthConfig::Kind::header;
  h.header_name = "X-Team";
  h.header_value = "blue";
  EXPECT_EQ(check(h, {}), hr::AuthResult::missing);
  EXPECT_EQ(check(h, {{{"X-Team", "blue"}}, {}}), hr::AuthResult::ok);
  EXPECT_EQ(check(h, {{{"X-Team", "red"}}, {}}), hr::AuthResult::wrong);

  auto p = hr::split_pair("X-Team: blue sky ", true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, "X-Team");
  EXPECT_EQ(p->second, "blue sky");
  p = hr::split_pair("bob:a:b", false);
  EXPECT_EQ(p->second, "a:b");
  EXPECT_FALSE(hr::split_pair(":x", false));
  EXPECT_FALSE(hr::split_pair("nocolon", false));

  hr::AuthConfig none;
  EXPECT_EQ(check(none, {}), hr::AuthResult::ok);
}

TEST(HttpRegistryLog, RedactsEveryQueryValue) {
  EXPECT_EQ(hr::redact_target("/v1/models"), "/v1/models");
  EXPECT_EQ(hr::redact_target("/v1/models?api_key=s3cret&x=1&flag"), "/v1/models?api_key=REDACTED&x=REDACTED&flag");
  EXPECT_EQ(hr::redact_target("/a?k=v=w"), "/a?k=REDACTED");
  hr::AuthConfig basic;
  basic.kind = hr::AuthConfig::Kind::basic;
  basic.basic_user = "u5er";
  basic.basic_password = "pw";
  EXPECT_EQ(hr::describe(basic).find("pw"), std::string::npos);
  EXPECT_EQ(hr::describe(basic).find("u5er"), std::string::npos);
}

TEST(HttpRegistryEtag, MatchesListsWeakTagsAndStar) {
  EXPECT_TRUE(hr::etag_matches("\"abc\"", "\"abc\""));
  EXPECT_TRUE(hr::etag_matches("\"x\", W/\"abc\"", "\"abc\""));
  EXPECT_TRUE(hr::etag_matches("*", "\"abc\""));
  EXPECT_FALSE(hr::etag_matches("\"abd\"", "\"abc\""));
  EXPECT_FALSE(hr::etag_matches("", "\"abc\""));
  EXPECT_TRUE(hr::etag_matches("W/\"abc\"", "W/\"abc\""));
  EXPECT_TRUE(hr::etag_matches("\"abc\"", "W/\"abc\""));
}

TEST(HttpRegistryListen, ParsesAddresses) {
  auto a = hr::parse_listen("127.0.0.1:8080");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 8080);
  a = hr::parse_listen("[::1]:0");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 0);
  a = hr::parse_listen(":9000");
  EXPECT_EQ(a.host, "127.0.0.1");
  a = hr::parse_listen("0.0.0.0:65535");
  EXPECT_EQ(a.port, 65535);
  for (const char* bad : {"8080", "host:", "host:65536", "host:-1", "::1:80", "[::1]80", "[::1", "h:8o"})
    EXPECT_THROW(hr::parse_listen(bad), std::invalid_argument) << bad;
}

TEST(HttpRegistryJson, ErrorBodyAndMetadataWithoutLocalPaths) {
  auto e = nlohmann::json::parse(hr::error_body("not_found", "no model 'x'"));
  EXPECT_EQ(e["error"]["code"], "not_found");
  EXPECT_EQ(e["error"]["message"], "no model 'x'");
  EXPECT_NO_THROW(nlohmann::json::parse(hr::error_body("bad_request", "bad \xff byte")));
  EXPECT_EQ(hr::error_code_for_status(401), "unauthorized");
  EXPECT_EQ(hr::error_code_for_status(403), "unauthorized");
  EXPECT_EQ(hr::error_code_for_status(404), "not_found");
  EXPECT_EQ(hr::error_code_for_status(416), "bad_request");
  EXPECT_EQ(hr::error_code_for_status(429), "unavailable");
  EXPECT_EQ(hr::error_code_for_status(503), "unavailable");
  EXPECT_EQ(hr::error_code_for_status(500), "internal");

  modelzoo::bus::ModelMetadata m;
  m.name = "acme/llm";
  m.version = "1.0.0";
  m.license = "MIT";
  m.files.push_back({"w.bin", 3, std::string(64, 'a'), "/srv/models/acme/llm/1.0.0/w.bin"});
  auto j = hr::metadata_json(m);
  EXPECT_EQ(j["license"], "MIT");
  EXPECT_FALSE(j.contains("description"));
  EXPECT_FALSE(j["files"][0].contains("local_path"));
  EXPECT_EQ(j["files"][0]["size"], 3);
  // What the client side validates.
  EXPECT_NO_THROW(modelzoo::bus::ModelMetadata::from_json(j));
}

}  // namespace
