// The SDK's HTTP base (modelzoo/http.h), its pure logic: retry delays, Retry-After,
// redaction, auth headers, the token file, the custom auth command's cache, the response
// cache, path encoding and the shared configuration. Requests themselves are exercised
// against a real server in tests/integration/remote_registry_test.cc.
#include "modelzoo/http.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "http_response.h"

namespace modelzoo::sdk::http {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

// A clock the test moves by hand.
struct FakeClock {
  Clock::time_point now = Clock::time_point(1000h);
  ClockFn fn() {
    return [this] { return now; };
  }
};

// A private temporary directory, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/modelzoo-http-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

void write_file(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary | std::ios::trunc) << s; }

std::string header_value(const Credentials& c, const std::string& name) {
  for (const auto& [n, v] : c.headers)
    if (n == name) return v;
  return "<absent>";
}

// ---- Link headers (paged listings)

TEST(NextLink, TheRelNextEntryOfALinkHeaderIsFound) {
  using detail::next_link;
  EXPECT_EQ(next_link("<https://h/api/models?cursor=abc>; rel=\"next\""), "https://h/api/models?cursor=abc");
  EXPECT_EQ(next_link("<https://h/p1>; rel=\"prev\", <https://h/p3>; rel=\"next\""), "https://h/p3");
  EXPECT_EQ(next_link("<https://h/p3>; title=\"a, b\"; REL=next"), "https://h/p3");  // comma in quotes, unquoted rel
  EXPECT_EQ(next_link("</v2/_catalog?n=2&last=b>; rel=\"first next\""), "/v2/_catalog?n=2&last=b");
  EXPECT_EQ(next_link("<https://h/p1>; rel=\"prev\""), "");
  EXPECT_EQ(next_link("<https://h/p1>; rel=\"nextpage\""), "");
  EXPECT_EQ(next_link(""), "");
  EXPECT_EQ(next_link("<unterminated; rel=next"), "");
  EXPECT_EQ(next_link("garbage, , ;;"), "");
}

// ---- retries

TEST(RetryPolicy, BackoffCapDoublesUpToTheMaximum) {
  RetryPolicy p{.max_attempts = 10, .initial_delay = 100ms, .max_delay = 1000ms};
  EXPECT_EQ(p.backoff_cap(1), 100ms);
  EXPECT_EQ(p.backoff_cap(2), 200ms);
  EXPECT_EQ(p.backoff_cap(3), 400ms);
  EXPECT_EQ(p.backoff_cap(4), 800ms);
  EXPECT_EQ(p.backoff_cap(5), 1000ms);
  EXPECT_EQ(p.backoff_cap(60), 1000ms);  // no overflow on large retry numbers
}

TEST(RetryPolicy, FullJitterStaysWithinZeroAndTheCap) {
  RetryPolicy p{.max_attempts = 10, .initial_delay = 100ms, .max_delay = 1000ms};
  EXPECT_EQ(p.delay(1, std::nullopt, 0.0), 0ms);
  EXPECT_EQ(p.delay(3, std::nullopt, 0.5), 200ms);
  EXPECT_LE(p.delay(3, std::nullopt, 0.999999), 400ms);
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int retry = 1; retry <= 8; ++retry) {
    milliseconds lo = 1h, hi = 0ms;
    for (int i = 0; i < 2000; ++i) {
      auto d = p.delay(retry, std::nullopt, u(rng));
      ASSERT_GE(d, 0ms);
      ASSERT_LE(d, p.backoff_cap(retry));
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Spread over the whole range, not stuck at one end.
    EXPECT_LT(lo, p.backoff_cap(retry) / 4) << "retry " << retry;
    EXPECT_GT(hi, p.backoff_cap(retry) * 3 / 4) << "retry " << retry;
  }
}

TEST(RetryPolicy, RetryAfterWinsButIsCappedByTheMaximum) {
  RetryPolicy p{.max_attempts = 4, .initial_delay = 100ms, .max_delay = 5000ms};
  EXPECT_EQ(p.delay(1, 2000ms, 0.9), 2000ms);
  EXPECT_EQ(p.delay(1, 0ms, 0.9), 0ms);
  EXPECT_EQ(p.delay(1, 3600000ms, 0.9), 5000ms);
}

TEST(RetryPolicy, OnlyTransientStatusesAreRetried) {
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L, 599L}) EXPECT_TRUE(RetryPolicy::retryable_status(s)) << s;
  for (long s : {200L, 206L, 301L, 400L, 401L, 403L, 404L, 410L, 416L, 422L}) EXPECT_FALSE(RetryPolicy::retryable_status(s)) << s;
}

TEST(RetryAfter, ParsesSecondsAndHttpDates) {
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(parse_retry_after("0", now), 0ms);
  EXPECT_EQ(parse_retry_after("120", now), 120000ms);
  EXPECT_EQ(parse_retry_after("  7 ", now), 7000ms);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now), 30000ms);       // IMF-fixdate
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now), 10000ms);      // RFC 850
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:39 1994", now), 2000ms);             // asctime
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), 0ms);           // in the past
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("-1", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("1.5", now), std::nullopt);
  EXPECT_GT(parse_retry_after("99999999999999999999", now).value(), 1000000s);  // huge, no overflow
}

// ---- redaction

TEST(Redaction, UrlQueryCredentialsAndUserInfoAreRemoved) {
  EXPECT_EQ(redact_url("https://h.example/v1/models?api_key=s3cret&page=2"),
            "https://h.example/v1/models?api_key=<redacted>&page=2");
  EXPECT_EQ(redact_url("http://user:pw@h:8080/p?token=abc#frag"), "http://h:8080/p?token=<redacted>#frag");
  EXPECT_EQ(redact_url("https://b.s3/x?X-Amz-Signature=ff&X-Amz-Credential=AK%2F1&partNumber=3"),
            "https://b.s3/x?X-Amz-Signature=<redacted>&X-Amz-Credential=<redacted>&partNumber=3");
  EXPECT_EQ(redact_url("http://h/p?mykey=v&other=w", {"MyKey"}), "http://h/p?mykey=<redacted>&other=w");
  EXPECT_EQ(redact_url("/v1/models/acme/llm/-/versions"), "/v1/models/acme/llm/-/versions");
  EXPECT_EQ(redact_url("http://h/p?flag"), "http://h/p?flag");
}

TEST(Redaction, EveryOccurrenceOfEverySecretIsReplaced) {
  Redactor r;
  r.add("tok3n");
  r.add("tok3n-123");
  r.add("");
  r.add("b");  // too short to redact without garbling everything
  EXPECT_EQ(r("a tok3n-123 b tok3n c tok3n-123"), "a <redacted> b <redacted> c <redacted>");
  EXPECT_EQ(r("nothing here, by the way"), "nothing here, by the way");
}

// ---- auth

TEST(Auth, Base64MatchesRfc4648) {
  EXPECT_EQ(base64(""), "");
  EXPECT_EQ(base64("f"), "Zg==");
  EXPECT_EQ(base64("fo"), "Zm8=");
  EXPECT_EQ(base64("foo"), "Zm9v");
  EXPECT_EQ(base64("foob"), "Zm9vYg==");
  EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(basic_auth_value("Aladdin", "open sesame"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
}

TEST(Auth, HeadersAndQueryParametersPerKind) {
  EXPECT_TRUE(Authenticator(Auth{}).credentials().headers.empty());

  Auth key{.kind = Auth::Kind::api_key, .key = "k1"};
  EXPECT_EQ(header_value(Authenticator(key).credentials(), "X-API-Key"), "k1");
  key.header = "X-Registry-Key";
  EXPECT_EQ(header_value(Authenticator(key).credentials(), "X-Registry-Key"), "k1");
  key.header.clear();
  key.query = "api_key";
  auto q = Authenticator(key).credentials();
  EXPECT_TRUE(q.headers.empty());
  ASSERT_EQ(q.query.size(), 1u);
  EXPECT_EQ(q.query[0], std::make_pair(std::string("api_key"), std::string("k1")));

  Auth bearer{.kind = Auth::Kind::bearer, .token = "t0k"};
  EXPECT_EQ(header_value(Authenticator(bearer).credentials(), "Authorization"), "Bearer t0k");

  Auth basic{.kind = Auth::Kind::basic, .user = "Aladdin", .password = "open sesame"};
  Authenticator b(basic);
  EXPECT_EQ(header_value(b.credentials(), "Authorization"), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
  auto secrets = b.secrets();
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "open sesame"), secrets.end());
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), secrets.end());
}

TEST(Auth, DescriptionsNeverHoldTheSecret) {
  std::vector<Auth> all = {
      {.kind = Auth::Kind::api_key, .key = "SECRET1", .header = "X-K"},
      {.kind = Auth::Kind::api_key, .key = "SECRET1", .query = "k"},
      {.kind = Auth::Kind::bearer, .token = "SECRET1"},
      {.kind = Auth::Kind::bearer, .token_file = "/run/tok"},
      {.kind = Auth::Kind::basic, .user = "u", .password = "SECRET1"},
      {.kind = Auth::Kind::custom, .command = {"/usr/bin/get-token", "SECRET1"}},
  };
  for (const auto& a : all) {
    auto d = a.describe();
    EXPECT_EQ(d.find("SECRET1"), std::string::npos) << d;
    EXPECT_FALSE(d.empty());
  }
  EXPECT_EQ(all[3].describe(), "bearer token from file '/run/tok'");
}

TEST(Auth, HeaderLinesAreParsedStrictly) {
  EXPECT_EQ(parse_header_line("Authorization: Bearer xyz\n"), std::make_pair(std::string("Authorization"), std::string("Bearer xyz")));
  EXPECT_EQ(parse_header_line("  X-Token:abc  "), std::make_pair(std::string("X-Token"), std::string("abc")));
  for (const char* bad : {"no colon here", "Bad Name: v", ": v", "X-Empty:   ", "X-Ctl: a\x01b"}) {
    try {
      parse_header_line(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::unauthorized);
      EXPECT_EQ(std::string(e.what()).find("abc"), std::string::npos);
    }
  }
}

TEST(Auth, TokenFileIsReadAgainWhenItChanges) {
  TempDir dir;
  fs::path file = dir.path / "token";
  write_file(file, "first-token\n");
  Authenticator a(Auth{.kind = Auth::Kind::bearer, .token_file = file.string()});
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer first-token");
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer first-token");

  write_file(file, "  second-token-longer \n");  // size changes
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer second-token-longer");

  // Same size, another modification time.
  write_file(file, "third--token-longer");
  fs::last_write_time(file, fs::last_write_time(file) + 5s);
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer third--token-longer");

  auto secrets = a.secrets();
  for (const char* t : {"first-token", "second-token-longer", "third--token-longer"})
    EXPECT_NE(std::find(secrets.begin(), secrets.end(), t), secrets.end()) << t;
  EXPECT_TRUE(a.invalidate());  // a 401 makes it read the file again
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer third--token-longer");
}

TEST(Auth, AnUnusableTokenFileIsUnauthorizedAndNamesTheFileNotTheToken) {
  TempDir dir;
  fs::path file = dir.path / "token";
  Authenticator a(Auth{.kind = Auth::Kind::bearer, .token_file = file.string()});
  try {
    a.credentials();
    ADD_FAILURE() << "a missing token file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unauthorized);
    EXPECT_NE(std::string(e.what()).find(file.string()), std::string::npos) << e.what();
  }
  write_file(file, "\n  \n");
  EXPECT_THROW(a.credentials(), Error);
  write_file(file, "line-one-secret\nline-two-secret\n");
  try {
    a.credentials();
    ADD_FAILURE() << "a two-line token file was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
  }
}

// The custom auth command runs a real (tiny) shell; the clock is injected.
TEST(AuthCustomCommand, OutputIsReusedForItsTtlAndAfterA401RunsAgain) {
  TempDir dir;
  fs::path counter = dir.path / "count";
  write_file(counter, "");
  // Prints "X-Token: run-<n>" where n counts the runs.
  std::string script = "echo x >> '" + counter.string() + "'; echo \"X-Token: run-$(wc -l < '" + counter.string() +
                       "' | tr -d ' ')\"";
  FakeClock clock;
  Authenticator a(Auth{.kind = Auth::Kind::custom, .command = {"/bin/sh", "-c", script}, .command_ttl = 1000ms},
                  clock.fn());
  EXPECT_EQ(header_value(a.credentials(), "X-Token"), "run-1");
  clock.now += 999ms;
  EXPECT_EQ(header_value(a.credentials(), "X-Token"), "run-1");
  clock.now += 1ms;
  EXPECT_EQ(header_value(a.credentials(), "X-Token"), "run-2");
  EXPECT_TRUE(a.invalidate());
  EXPECT_EQ(header_value(a.credentials(), "X-Token"), "run-3");
  auto secrets = a.secrets();
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "run-2"), secrets.end());
}

TEST(AuthProvider, TheAnswerIsKeptUntilARefusalThenAskedFreshOnce) {
  std::vector<bool> calls;
  Auth auth{.kind = Auth::Kind::provider};
  auth.provider = [&](bool refresh) {
    calls.push_back(refresh);
    return calls.size() == 1 ? std::string() : "Bearer tok-" + std::to_string(calls.size());
  };
  auth.provider_name = "the registry's token flow";
  Authenticator a(auth);
  EXPECT_TRUE(a.credentials().headers.empty()) << "an empty answer sends no header";
  EXPECT_TRUE(a.credentials().headers.empty());
  EXPECT_EQ(calls, (std::vector<bool>{false}));
  EXPECT_TRUE(a.invalidate()) << "a refusal is worth one retry with a fresh answer";
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer tok-2");
  EXPECT_EQ(header_value(a.credentials(), "Authorization"), "Bearer tok-2");
  EXPECT_EQ(calls, (std::vector<bool>{false, true}));
  auto secrets = a.secrets();
  EXPECT_NE(std::find(secrets.begin(), secrets.end(), "tok-2"), secrets.end()) << "redacted";
  EXPECT_EQ(auth.describe(), "the registry's token flow");
  EXPECT_THROW(options_from_config({{"url", "http://h"}, {"auth", {{"kind", "provider"}}}}), Error)
      << "code only, not a configuration kind";
}

TEST(AuthCustomCommand, FailuresAreUnauthorizedWithoutTheOutput) {
  auto fails_with = [](std::vector<std::string> cmd) {
    Authenticator a(Auth{.kind = Auth::Kind::custom, .command = std::move(cmd), .command_timeout = 2000ms});
    try {
      a.credentials();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::unauthorized);
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  auto m = fails_with({"/bin/sh", "-c", "echo 'X-Token: hush-hush'; exit 3"});
  EXPECT_NE(m.find("status 3"), std::string::npos) << m;
  EXPECT_EQ(m.find("hush-hush"), std::string::npos) << m;
  m = fails_with({"/bin/sh", "-c", "echo not-a-header-hush-hush"});
  EXPECT_NE(m.find("unusable header"), std::string::npos) << m;
  EXPECT_EQ(m.find("hush-hush"), std::string::npos) << m;
  m = fails_with({"/bin/sh", "-c", "true"});
  EXPECT_NE(m.find("printed nothing"), std::string::npos) << m;
  m = fails_with({"/nonexistent/get-token"});
  EXPECT_NE(m.find("/nonexistent/get-token"), std::string::npos) << m;
}

// ---- cache

TEST(ResponseCache, EntriesExpireAfterTheirTtl) {
  FakeClock clock;
  ResponseCache c(1000ms, 16, clock.fn());
  c.put("/a", json{{"v", 1}});
  EXPECT_EQ(c.get("/a").value()["v"], 1);
  clock.now += 999ms;
  EXPECT_TRUE(c.get("/a").has_value());
  clock.now += 1ms;
  EXPECT_FALSE(c.get("/a").has_value());
  EXPECT_EQ(c.size(), 0u);
  c.put("/a", json{{"v", 2}});  // a new answer starts a new TTL
  clock.now += 500ms;
  EXPECT_EQ(c.get("/a").value()["v"], 2);
}

TEST(ResponseCache, IsBoundedDroppingTheLeastRecentlyUsed) {
  FakeClock clock;
  ResponseCache c(60000ms, 3, clock.fn());
  c.put("/1", 1);
  c.put("/2", 2);
  c.put("/3", 3);
  EXPECT_TRUE(c.get("/1").has_value());  // now the most recently used
  c.put("/4", 4);
  EXPECT_EQ(c.size(), 3u);
  EXPECT_FALSE(c.get("/2").has_value());
  EXPECT_TRUE(c.get("/1").has_value());
  EXPECT_TRUE(c.get("/3").has_value());
  EXPECT_TRUE(c.get("/4").has_value());
  c.erase("/1");
  EXPECT_FALSE(c.get("/1").has_value());
  c.clear();
  EXPECT_EQ(c.size(), 0u);
}

TEST(ResponseCache, ExpiredEntriesAreDroppedBeforeLiveOnes) {
  FakeClock clock;
  ResponseCache c(1000ms, 2, clock.fn());
  c.put("/old", 1);
  clock.now += 600ms;
  c.put("/new", 2);
  EXPECT_TRUE(c.get("/old").has_value());  // most recently used, but...
  clock.now += 500ms;                      // ...expired now
  c.put("/newest", 3);
  EXPECT_TRUE(c.get("/new").has_value());
  EXPECT_TRUE(c.get("/newest").has_value());
}

TEST(ResponseCache, ZeroTtlCachesNothing) {
  ResponseCache c(0ms);
  c.put("/a", 1);
  EXPECT_FALSE(c.get("/a").has_value());
}

// ---- paths and configuration

TEST(Paths, SegmentsArePercentEncoded) {
  EXPECT_EQ(encode_segment("1.0.0+build.5"), "1.0.0%2Bbuild.5");
  EXPECT_EQ(encode_segment("a b/c"), "a%20b%2Fc");
  EXPECT_EQ(encode_path("acme/llm"), "acme/llm");
  EXPECT_EQ(encode_path("sub dir/w~1.bin"), "sub%20dir/w~1.bin");
}

TEST(Config, ReadsEverySetting) {
  auto o = options_from_config(json::parse(R"({
    "url": "https://registry.example/base/", "timeout_ms": 5000, "connect_timeout_ms": 1500,
    "retry": {"attempts": 6, "initial_ms": 50, "max_ms": 2000}, "cache_ttl_ms": 0, "user_agent": "ua/1",
    "proxy": "http://proxy:3128", "ca_file": "/etc/ca.pem",
    "auth": {"kind": "bearer", "token_file": "/run/tok"}})"));
  EXPECT_EQ(o.base_url, "https://registry.example/base/");
  EXPECT_EQ(o.timeout, 5000ms);
  EXPECT_EQ(o.connect_timeout, 1500ms);
  EXPECT_EQ(o.retry.max_attempts, 6);
  EXPECT_EQ(o.retry.initial_delay, 50ms);
  EXPECT_EQ(o.retry.max_delay, 2000ms);
  EXPECT_EQ(o.cache_ttl, 0ms);
  EXPECT_EQ(o.user_agent, "ua/1");
  EXPECT_EQ(o.proxy, "http://proxy:3128");
  EXPECT_EQ(o.ca_file, "/etc/ca.pem");
  EXPECT_EQ(o.auth.kind, Auth::Kind::bearer);
  EXPECT_EQ(o.auth.token_file, "/run/tok");

  auto d = options_from_config(json{{"url", "http://h"}});
  EXPECT_EQ(d.auth.kind, Auth::Kind::none);
  EXPECT_EQ(d.retry.max_attempts, 4);
  EXPECT_EQ(d.cache_ttl, 30000ms);

  auto custom = options_from_config(json::parse(R"({"url": "http://h", "auth": {"kind": "custom", "command": "get-token --x"}})"));
  EXPECT_EQ(custom.auth.command, (std::vector<std::string>{"/bin/sh", "-c", "get-token --x"}));
  auto key = options_from_config(json::parse(R"({"url": "http://h", "auth": {"kind": "api_key", "key": "k"}})"));
  EXPECT_EQ(key.auth.header, "X-API-Key");
}

TEST(Config, MistakesNameTheSettingAndNeverTheSecret) {
  struct Case {
    const char* config;
    const char* expect;
  };
  const Case cases[] = {
      {R"({})", "'url' is required"},
      {R"({"url": "ftp://h"})", "'url' must start with http"},
      {R"({"url": "http://me:SECRET9@h/"})", "must not hold credentials"},
      {R"({"url": "http://h", "colour": 1})", "'colour' is not a known setting"},
      {R"({"url": "http://h", "timeout_ms": -5})", "'timeout_ms' must be a non-negative integer"},
      {R"({"url": "http://h", "retry": {"attempts": 0}})", "'retry.attempts' must be between 1 and 100"},
      {R"({"url": "http://h", "retry": {"initial_ms": 500, "max_ms": 100}})", "'retry.max_ms' must not be below"},
      {R"({"url": "http://h", "auth": {"key": "SECRET9"}})", "'auth.kind' is required"},
      {R"({"url": "http://h", "auth": {"kind": "magic"}})", "is not one of"},
      {R"({"url": "http://h", "auth": {"kind": "api_key"}})", "'auth.key' is required"},
      {R"({"url": "http://h", "auth": {"kind": "api_key", "key": "SECRET9", "header": "X-K", "query": "k"}})", "not both"},
      {R"({"url": "http://h", "auth": {"kind": "bearer", "token": "SECRET9", "token_file": "/f"}})", "exactly one of"},
      {R"({"url": "http://h", "auth": {"kind": "bearer", "token": "SECRET9", "password": "SECRET9"}})",
       "'auth.password' is a setting of auth kind basic"},
      {R"({"url": "http://h", "auth": {"kind": "basic", "user": "u"}})", "'auth.password' is required"},
      {R"({"url": "http://h", "auth": {"kind": "basic", "user": "u:x", "password": "SECRET9"}})", "must not contain ':'"},
      {R"({"url": "http://h", "auth": {"kind": "bearer", "token": "SECRET9\nX-Evil: 1"}})", "control characters"},
      {R"({"url": "http://h", "auth": {"kind": "custom", "command": []}})", "'auth.command' must be a program"},
  };
  for (const auto& c : cases) {
    try {
      options_from_config(json::parse(c.config));
      ADD_FAILURE() << "accepted " << c.config;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::bad_request) << c.config;
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << c.config << " -> " << e.what();
      EXPECT_EQ(std::string(e.what()).find("SECRET9"), std::string::npos) << c.config << " -> " << e.what();
    }
  }
}

// ---- the registry base

struct ExposedRegistry : HttpRegistry {
  using HttpRegistry::file_path;
  using HttpRegistry::latest_version;
  using HttpRegistry::list_path;
  using HttpRegistry::metadata_path;
  using HttpRegistry::versions_path;
};

TEST(HttpRegistry, DefaultPathsFollowTheHttpRegistryProtocol) {
  ExposedRegistry r;
  EXPECT_EQ(r.list_path(), "/v1/models");
  EXPECT_EQ(r.versions_path("acme/llm"), "/v1/models/acme/llm/-/versions");
  EXPECT_EQ(r.metadata_path("acme/llm", "1.0.0+b"), "/v1/models/acme/llm/-/versions/1.0.0%2Bb");
  EXPECT_EQ(r.file_path("acme/llm", "1.0.0", "sub/w 1.bin"), "/v1/models/acme/llm/-/versions/1.0.0/files/sub/w%201.bin");
}

TEST(HttpRegistry, LatestIsTheHighestReleaseElseTheHighestPreRelease) {
  ExposedRegistry r;
  EXPECT_EQ(r.latest_version({"1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "not-a-version"}), "1.10.0");
  EXPECT_EQ(r.latest_version({"2.0.0-rc.1", "2.0.0-rc.2", "2.0.0-beta"}), "2.0.0-rc.2");
  EXPECT_EQ(r.latest_version({"1.0.0+build.1"}), "1.0.0+build.1");
  EXPECT_EQ(r.latest_version({}), "");
  EXPECT_EQ(r.latest_version({"x", "y"}), "");
}

TEST(HttpRegistry, RequestsBeforeConfigureAreInternalErrors) {
  ExposedRegistry r;
  try {
    r.list();
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::internal);
  }
}

}  // namespace
}  // namespace modelzoo::sdk::http

// What a server says in an error body, for the message: our protocol's {"error": {...}}, OAuth
// 2.0's {"error": "code", "error_description"} (token endpoints) and the object stores' XML.
TEST(ServerMessage, ReadsTheErrorBodiesOfOurProtocolOAuthAndTheObjectStores) {
  using modelzoo::sdk::http::detail::server_message;
  EXPECT_EQ(server_message(R"({"error": {"code": "not_found", "message": "no model"}})"), "no model");
  EXPECT_EQ(server_message(R"({"error": {"code": "not_found"}})"), "not_found");
  EXPECT_EQ(server_message(R"({"error": "invalid_grant", "error_description": "Invalid JWT Signature."})"),
            "invalid_grant: Invalid JWT Signature.");
  EXPECT_EQ(server_message(R"({"error": "unsupported_grant_type"})"), "unsupported_grant_type");
  EXPECT_EQ(server_message("<?xml version=\"1.0\"?>\n<Error><Code>NoSuchKey</Code><Message>The key &quot;a&amp;b&quot; does not "
                           "exist.</Message></Error>"),
            "NoSuchKey: The key \"a&b\" does not exist.");
  EXPECT_EQ(server_message("<Error><Code>AccessDenied</Code></Error>"), "AccessDenied");
  EXPECT_EQ(server_message("<html>oops</html>"), "");
  EXPECT_EQ(server_message("plain text"), "");
}
