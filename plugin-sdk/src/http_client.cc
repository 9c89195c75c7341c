// The HTTP client of the SDK's HTTP base (modelzoo/http/client.h), on libcurl's easy
// interface. Every request runs on an easy handle from a small pool; the handles share one
// CURLSH holding the connection cache, the DNS cache and TLS sessions, so keep-alive
// connections are reused across requests and threads. Proxies: CURLOPT_PROXY is set only
// when the configuration names one, so libcurl's own handling of http_proxy / https_proxy /
// ALL_PROXY / no_proxy stays in force. Redirects are followed here, not by libcurl, so that
// credentials go only to the registry's own origin.
#include "modelzoo/http/client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "http_response.h"
#include "modelzoo/http/redact.h"
#include "modelzoo/http/url.h"
#include "modelzoo/plugin.h"

#include "http_text.h"

namespace modelzoo::sdk::http {

using nlohmann::json;
using detail::lower;
using detail::ms_string;
using detail::printable;

namespace {

constexpr std::size_t kMaxPooledHandles = 16;
constexpr int kMaxRedirects = 5;

std::string reason_phrase(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 410: return "Gone";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return {};
  }
}

std::string status_text(long status) {
  std::string r = reason_phrase(status);
  return "HTTP " + std::to_string(status) + (r.empty() ? "" : " " + r);
}

double uniform01() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

namespace {

using detail::Attempt;
using detail::on_body;
using detail::on_header;

bool transient_curl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PROXY:
      return true;
    default:
      return false;
  }
}

// scheme://host:port of an absolute URL (lower case), empty when it cannot be parsed.
std::string origin_of(const std::string& url) {
  CURLU* u = curl_url();
  std::string out;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char *scheme = nullptr, *host = nullptr, *port = nullptr;
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (scheme && host) out = lower(std::string(scheme) + "://" + host + ":" + (port ? port : ""));
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return out;
}

struct CurlList {
  curl_slist* list = nullptr;
  ~CurlList() { curl_slist_free_all(list); }
  void add(const std::string& s) { list = curl_slist_append(list, s.c_str()); }
};

// What one attempt (redirects included) came to.
struct Outcome {
  bool ok = false;
  ErrorCode code = ErrorCode::internal;
  bool transient = false;
  bool auth_failed = false;
  std::string reason;  // redacted
  std::optional<milliseconds> retry_after;
  Credentials used;
};

// A part of a file to stream, and what its answer told of the file.
struct Range {
  std::uint64_t first = 0;
  std::optional<std::uint64_t> last;  // inclusive; none: to the end
  bool whole = false;                 // out: the server answered 200, the whole file
  std::optional<std::uint64_t> total; // out: the file's size, from a 206
  std::string etag;                   // in/out: the file's ETag, once known
};

}  // namespace

struct HttpClient::Impl {
  ClientOptions opt;
  std::string base;  // base_url without a trailing '/'
  std::string origin;
  Authenticator auth;
  Redactor redactor;
  ResponseCache cache;
  CURLSH* share = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_locks;
  std::mutex pool_mu;
  std::vector<CURL*> pool;

  explicit Impl(ClientOptions o)
      : opt(std::move(o)), auth(opt.auth), cache(opt.cache_ttl, opt.cache_entries) {
    base = opt.base_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
      throw Error(ErrorCode::bad_request, "the registry URL must start with http:// or https://");
    origin = origin_of(base);
    if (origin.empty()) throw Error(ErrorCode::bad_request, "the registry URL '" + redact_url(base) + "' is not a valid URL");
    if (opt.source.empty()) {
      const char* inst = std::getenv("MODELZOO_INSTANCE");
      opt.source = inst && *inst ? inst : "http";
    }
    if (opt.user_agent.empty())
      opt.user_agent = std::string("modelzoo-plugin/") + MODELZOO_SDK_VERSION + " libcurl/" + curl_version_info(CURLVERSION_NOW)->version;
    for (auto& s : auth.secrets()) redactor.add(s);
    global_init();
    share = curl_share_init();
    if (!share) throw Error(ErrorCode::internal, "curl_share_init failed");
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock);
    curl_share_setopt(share, CURLSHOPT_USERDATA, this);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }

  ~Impl() {
    for (CURL* h : pool) curl_easy_cleanup(h);
    curl_share_cleanup(share);
  }

  static void lock(CURL*, curl_lock_data d, curl_lock_access, void* p) {
    static_cast<Impl*>(p)->share_locks[static_cast<std::size_t>(d) % CURL_LOCK_DATA_LAST].lock();
  }
  static void unlock(CURL*, curl_lock_data d, void* p) {
    static_cast<Impl*>(p)->share_locks[static_cast<std::size_t>(d) % CURL_LOCK_DATA_LAST].unlock();
  }

  CURL* acquire() {
    {
      std::lock_guard lk(pool_mu);
      if (!pool.empty()) {
        CURL* h = pool.back();
        pool.pop_back();
        return h;
      }
    }
    CURL* h = curl_easy_init();
    if (!h) throw Error(ErrorCode::internal, "curl_easy_init failed");
    return h;
  }
  void release(CURL* h) {
    curl_easy_reset(h);  // drops every pointer into this attempt; connections stay in the share
    std::lock_guard lk(pool_mu);
    if (pool.size() < kMaxPooledHandles) pool.push_back(h);
    else curl_easy_cleanup(h);
  }

  std::string redact(std::string_view s) {
    for (auto& secret : auth.secrets()) redactor.add(secret);
    std::vector<std::string> extra;
    if (!opt.auth.query.empty()) extra.push_back(opt.auth.query);
    return redactor(redact_url(s, extra));
  }

  std::string where(const std::string& path, const std::string& method = "GET") { return method + " " + redact(base + path); }

  // One HTTP exchange on `url`; fills `a`. Returns libcurl's result and, for a 3xx, where it points.
  CURLcode perform(const std::string& url, const Credentials* creds, Attempt& a, std::string& redirect, std::string& curl_error) {
    std::string full = url;
    CurlList headers;
    headers.add(a.streaming || a.request_headers ? "Accept: */*" : "Accept: application/json");
    if (a.request_headers)
      for (const auto& [name, value] : *a.request_headers) headers.add(name + ": " + value);
    if (creds) {
      for (const auto& [name, value] : creds->query) {
        full += full.find('?') == std::string::npos ? '?' : '&';
        full += encode_segment(name) + "=" + encode_segment(value);
      }
      for (const auto& [name, value] : creds->headers) headers.add(name + ": " + value);
    }
    char errbuf[CURL_ERROR_SIZE] = {};
    std::string range = std::to_string(a.offset) + "-" + (a.last ? std::to_string(*a.last) : std::string());
    const bool ranged = a.streaming && (a.offset > 0 || a.last);
    if (creds && auth.auth().kind == Auth::Kind::signer && auth.auth().signer)
      for (const auto& [name, value] :
           auth.auth().signer({a.method, full, ranged ? "bytes=" + range : std::string(),
                               a.request_headers ? *a.request_headers : std::vector<std::pair<std::string, std::string>>{},
                               a.request_body ? std::string_view(*a.request_body) : std::string_view()}))
        headers.add(name + ": " + value);
    CURL* h = acquire();
    curl_easy_setopt(h, CURLOPT_SHARE, share);
    curl_easy_setopt(h, CURLOPT_URL, full.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, opt.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (!opt.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, opt.ca_file.c_str());
    if (!opt.proxy.empty()) curl_easy_setopt(h, CURLOPT_PROXY, opt.proxy.c_str());  // else the environment's
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.list);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    if (a.streaming) {
      // No limit on the whole transfer, only on silence.
      long secs = std::max<long>(1, static_cast<long>((opt.timeout.count() + 999) / 1000));
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, secs);
      curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
      if (ranged) curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
    } else {
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(opt.timeout.count()));
      curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    }
    if (a.method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (a.method != "GET") {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, a.method.c_str());
      if (a.request_body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, a.request_body->data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(a.request_body->size()));
      }
    }
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK && !a.started) a.check();  // an empty body
    char* location = nullptr;
    if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location) redirect = location;
    curl_error = errbuf;
    release(h);
    return rc;
  }

  // One attempt: the request and the redirects it leads to.
  Outcome exchange(const std::string& path, Attempt& a, int number) {
    Outcome o;
    try {
      o.used = auth.credentials();
    } catch (const Error& e) {
      throw Error(e.code(), "source '" + opt.source + "' (" + redact(base) + "): " + e.what());
    }
    for (auto& s : auth.secrets()) redactor.add(s);
    std::string url = base + path;
    bool own_origin = true;
    for (int hop = 0;; ++hop) {
      a.reset_response();
      std::string redirect, curl_error;
      auto t0 = Clock::now();
      CURLcode rc = perform(url, own_origin ? &o.used : nullptr, a, redirect, curl_error);
      auto ms = std::chrono::duration_cast<milliseconds>(Clock::now() - t0).count();
      std::string shown = own_origin ? redact(url.substr(base.size())) : redact(url);
      if (a.sink_error) std::rethrow_exception(a.sink_error);  // the sink's own failure: not ours to retry
      if (rc != CURLE_OK) {
        if (!a.protocol_error.empty()) {
          log("debug", opt.source + ": " + a.method + " " + shown + " -> " + std::to_string(a.status) + " in " + std::to_string(ms) +
                           " ms (attempt " + std::to_string(number) + "): " + a.protocol_error);
          o.code = ErrorCode::internal;
          o.reason = redact(a.protocol_error);
          return o;
        }
        std::string detail = curl_error.empty() ? curl_easy_strerror(rc) : curl_error;
        o.transient = transient_curl(rc);
        o.code = ErrorCode::unavailable;
        o.reason = redact(detail) + (a.delivered ? " after " + std::to_string(a.delivered) + " bytes" : "");
        log("debug", opt.source + ": " + a.method + " " + shown + " -> failed in " + std::to_string(ms) + " ms (attempt " +
                         std::to_string(number) + "): " + o.reason);
        return o;
      }
      log("debug", opt.source + ": " + a.method + " " + shown + " -> " + std::to_string(a.status) + " in " + std::to_string(ms) +
                       " ms (attempt " + std::to_string(number) + ")");
      if (a.status >= 300 && a.status <= 399 && a.status != 304 && !redirect.empty()) {
        if (hop >= kMaxRedirects) {
          o.reason = "more than " + std::to_string(kMaxRedirects) + " redirects";
          return o;
        }
        if (redirect.rfind("http://", 0) != 0 && redirect.rfind("https://", 0) != 0) {
          o.reason = "redirected to a URL that is not http(s)";
          return o;
        }
        url = redirect;
        own_origin = origin_of(url) == origin && url.rfind(base, 0) == 0;  // credentials stay home
        continue;
      }
      return classify(a);
    }
  }

  Outcome classify(Attempt& a) {
    Outcome o;
    long s = a.status;
    if (s >= 200 && s <= 299) {
      if (a.streaming) {
        if (a.skip > 0) {
          o.reason = "the file is shorter than the offset " + std::to_string(a.offset);
          return o;
        }
        if (a.end && a.offset + a.delivered < *a.end) {
          o.transient = true;
          o.code = ErrorCode::unavailable;
          o.reason = "the connection ended after " + std::to_string(a.offset + a.delivered) + " of " +
                     std::to_string(*a.end) + " bytes";
          return o;
        }
      }
      o.ok = true;
      return o;
    }
    std::string server = redact(printable(detail::server_message(a.body)));
    std::string said = server.empty() ? "" : ": " + server;
    if (s == 416 && a.streaming) {
      // Asked from the very end of the file: nothing left to send.
      if (detail::unsatisfied_range_total(a.header("content-range")) == a.offset) {
        o.ok = true;
        return o;
      }
      // Beyond the end: the request's offset is wrong (protocol.md: bad_request).
      o.code = ErrorCode::bad_request;
      o.reason = status_text(s) + " from byte " + std::to_string(a.offset) + said;
      return o;
    }
    if (s == 404 || s == 410) {
      o.code = ErrorCode::not_found;
      o.reason = status_text(s) + said;
    } else if (s == 401 || s == 403) {
      o.code = ErrorCode::unauthorized;
      o.auth_failed = true;
      o.reason = status_text(s) + ": the registry refused source '" + opt.source + "' (" +
                 (opt.auth.kind == Auth::Kind::none ? std::string("no credentials configured") : opt.auth.describe()) +
                 ")" + said;
    } else if (s == 407) {
      o.code = ErrorCode::unauthorized;
      o.reason = status_text(s) + ": the proxy wants credentials (give them in the proxy URL)";
    } else if (s == 400 || s == 422) {
      o.code = ErrorCode::bad_request;
      o.reason = status_text(s) + said;
    } else if (RetryPolicy::retryable_status(s)) {
      o.code = ErrorCode::unavailable;
      o.transient = true;
      o.reason = status_text(s) + said;
      if (auto ra = a.header("retry-after"); !ra.empty()) o.retry_after = parse_retry_after(ra);
    } else {
      o.code = ErrorCode::internal;
      o.reason = "unexpected " + status_text(s) + said;
    }
    return o;
  }

  // Runs attempts of `path` until one succeeds or the failure is final. `prepare` sets up
  // each attempt; `after` sees each finished attempt (streams count their bytes there).
  void run(const std::string& path, const std::function<void(Attempt&)>& prepare,
           const std::function<void(const Attempt&)>& after) {
    int attempt = 0;    // attempts without progress
    int number = 0;     // all attempts
    bool reauthed = false;
    while (true) {
      ++attempt;
      ++number;
      Attempt a;
      prepare(a);
      Outcome o = exchange(path, a, number);
      after(a);
      if (o.ok) return;
      if (o.auth_failed && !reauthed && auth.invalidate()) {
        reauthed = true;
        Credentials fresh;
        try {
          fresh = auth.credentials();
        } catch (const Error&) {
        }
        if (fresh.headers != o.used.headers || fresh.query != o.used.query) {
          log("info", opt.source + ": " + where(path, a.method) + ": " + status_text(a.status) + "; trying again with fresh credentials");
          --attempt;
          continue;
        }
      }
      if (!o.transient) throw Error(o.code, where(path, a.method) + ": " + o.reason);
      if (a.delivered > 0) attempt = 1;  // progress: the budget starts again
      if (attempt >= opt.retry.max_attempts)
        throw Error(ErrorCode::unavailable, where(path, a.method) + ": " + o.reason + " (gave up after " + std::to_string(number) +
                                                (number == 1 ? " attempt)" : " attempts)"));
      auto wait = opt.retry.delay(attempt, o.retry_after, uniform01());
      log("warn", opt.source + ": " + where(path, a.method) + ": " + o.reason + "; retrying in " + ms_string(wait) +
                      (o.retry_after ? " (Retry-After)" : "") + " (attempt " + std::to_string(number + 1) + ")");
      std::this_thread::sleep_for(wait);
    }
  }

  // Bytes r.first..r.last (to the end without r.last) into on_data, retried from the first
  // byte not yet delivered. Learns the file's ETag (kept for later ranges) and, from a 206,
  // its size; `r.whole` is set when the server answered 200 (it ignores ranges).
  std::uint64_t stream_range(const std::string& path, Range& r, const std::function<void(const char*, std::size_t)>& on_data,
                             bool require_partial = false) {
    std::uint64_t delivered = 0;
    run(
        path,
        [&](Attempt& a) {
          a.streaming = true;
          a.offset = r.first + delivered;
          a.last = r.last;
          a.require_partial = require_partial;
          a.on_data = &on_data;
          a.expected_etag = r.etag;
        },
        [&](const Attempt& a) {
          delivered += a.delivered;
          if (a.status >= 200 && a.status <= 299) {
            if (r.etag.empty()) r.etag = a.header("etag");
            if (a.total) r.total = a.total;
            if (a.status == 200) r.whole = true;
          }
        });
    return delivered;
  }

  std::uint64_t stream_parallel(const std::string& path, std::uint64_t offset,
                                const std::function<void(const char*, std::size_t)>& on_data);
};

// A file in pieces over several connections (ClientOptions::streams). The first piece (1 MiB)
// is asked for on the calling thread and delivered as it arrives; its 206 tells the file's
// size (a 200 means the server ignores ranges, and that one answer is the whole file). The
// rest is cut into pieces of at most piece_bytes that `streams` worker threads fetch, each with the retries of
// a single stream and the ETag of the first answer; the calling thread hands them to on_data
// strictly in order, so on_data sees the same bytes as from one stream. At most `streams`
// pieces past the one being delivered are held in memory. On a failure the pieces before it
// are delivered and the error propagates: the daemon resumes at that offset.
std::uint64_t HttpClient::Impl::stream_parallel(const std::string& path, std::uint64_t offset,
                                                const std::function<void(const char*, std::size_t)>& on_data) {
  // The first answer only has to tell the size: a small first piece lets the others start
  // early. The rest is cut so that every stream has work (a file of a few pieces still goes
  // over all of them), in pieces of at most piece_bytes.
  const std::uint64_t max_piece = std::max<std::uint64_t>(opt.piece_bytes, 64 * 1024);
  const std::uint64_t first_piece = std::min<std::uint64_t>(max_piece, 1u << 20);
  Range head{offset, offset + first_piece - 1, false, std::nullopt, {}};
  std::uint64_t delivered = stream_range(path, head, on_data);
  if (head.whole || !head.total || offset + delivered >= *head.total) return delivered;
  const std::uint64_t total = *head.total;
  const std::uint64_t rest = total - offset - delivered;
  const std::uint64_t piece = std::clamp<std::uint64_t>((rest + opt.streams - 1) / opt.streams, first_piece, max_piece);

  struct Piece {
    std::uint64_t first = 0, size = 0;
    std::string data;
    bool done = false;
  };
  std::vector<Piece> pieces;
  for (std::uint64_t at = offset + delivered; at < total; at += piece) pieces.push_back({at, std::min(piece, total - at), {}, false});

  std::mutex mu;
  std::condition_variable cv;
  std::size_t claimed = 0, next = 0;  // next: the piece the calling thread delivers next
  // The first piece that failed: the pieces before it are still fetched and delivered (the
  // daemon resumes after them), the ones after it are dropped.
  constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();
  std::atomic<std::size_t> failed_at{kNone};
  std::exception_ptr failure;
  std::atomic<bool> stop{false};  // the calling thread is done: every piece is dropped
  const std::size_t window = opt.streams;
  struct Dropped {};

  auto worker = [&] {
    while (true) {
      std::size_t i;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stop || claimed >= std::min(pieces.size(), failed_at.load()) || claimed < next + window; });
        if (stop || claimed >= std::min(pieces.size(), failed_at.load())) return;
        i = claimed++;
      }
      Piece& p = pieces[i];
      std::string data;
      try {
        data.reserve(p.size);
        std::function<void(const char*, std::size_t)> keep = [&](const char* b, std::size_t n) {
          if (stop || i > failed_at) throw Dropped{};
          data.append(b, n);
        };
        while (data.size() < p.size) {
          Range r{p.first + data.size(), p.first + p.size - 1, false, std::nullopt, head.etag};
          if (stream_range(path, r, keep, true) == 0)
            throw Error(ErrorCode::unavailable, where(path) + ": the server sent nothing for bytes " +
                                                    std::to_string(r.first) + "-" + std::to_string(*r.last));
        }
      } catch (const Dropped&) {
        return;
      } catch (...) {
        std::lock_guard lk(mu);
        if (i < failed_at) {
          failed_at = i;
          failure = std::current_exception();
        }
        cv.notify_all();
        return;
      }
      std::lock_guard lk(mu);
      p.data = std::move(data);
      p.done = true;
      cv.notify_all();
    }
  };

  std::vector<std::thread> threads;
  auto finish = [&] {
    {
      std::lock_guard lk(mu);
      stop = true;
      cv.notify_all();
    }
    for (auto& t : threads) t.join();
    threads.clear();
  };
  const std::size_t n = std::min<std::size_t>(opt.streams, pieces.size());
  try {
    for (std::size_t t = 0; t < n; ++t) threads.emplace_back(worker);
  } catch (...) {
    finish();
    throw;
  }
  while (next < pieces.size()) {
    std::string data;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return pieces[next].done || next >= failed_at; });
      if (!pieces[next].done) break;
      data = std::move(pieces[next].data);
      ++next;
      cv.notify_all();
    }
    try {
      on_data(data.data(), data.size());
    } catch (...) {
      finish();
      throw;
    }
    delivered += data.size();
  }
  finish();
  if (next < pieces.size() && failure) std::rethrow_exception(failure);
  return delivered;
}

HttpClient::HttpClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
HttpClient::~HttpClient() = default;

const ClientOptions& HttpClient::options() const { return impl_->opt; }
ResponseCache& HttpClient::cache() { return impl_->cache; }
std::string HttpClient::redact(std::string_view text) const { return impl_->redact(text); }

json HttpClient::get_json(const std::string& path, bool use_cache) {
  if (use_cache)
    if (auto hit = impl_->cache.get(path)) return *hit;
  std::string body;
  impl_->run(
      path, [&](Attempt& a) { a.body_limit = impl_->opt.max_json_bytes; }, [&](const Attempt& a) { body = a.body; });
  json j;
  try {
    j = detail::parse_json_answer(body);
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorCode::internal, impl_->where(path) + ": " + e.what());
  }
  if (use_cache) impl_->cache.put(path, j);
  return j;
}

HttpClient::JsonPage HttpClient::get_json_page(const std::string& path) {
  std::string body, link;
  impl_->run(
      path, [&](Attempt& a) { a.body_limit = impl_->opt.max_json_bytes; },
      [&](const Attempt& a) {
        body = a.body;
        link = a.header("link");
      });
  JsonPage page;
  try {
    page.body = detail::parse_json_answer(body);
  } catch (const std::invalid_argument& e) {
    throw Error(ErrorCode::internal, impl_->where(path) + ": " + e.what());
  }
  std::string next = detail::next_link(link);
  if (next.empty()) return page;
  const std::string& base = impl_->base;
  if (next.front() == '/') {
    // Relative to the origin: base_url's own path must lead it.
    auto scheme_end = base.find("://");
    auto path_start = base.find('/', scheme_end == std::string::npos ? 0 : scheme_end + 3);
    std::string prefix = path_start == std::string::npos ? std::string() : base.substr(path_start);
    if (next.rfind(prefix, 0) == 0 && next.size() > prefix.size() && next[prefix.size()] == '/')
      page.next = next.substr(prefix.size());
  } else if (next.rfind(base, 0) == 0 && next.size() > base.size() && next[base.size()] == '/') {
    page.next = next.substr(base.size());
  }
  if (page.next.empty())
    log("warn", impl_->opt.source + ": " + impl_->where(path) + ": the next page (" + impl_->redact(next) +
                    ") is not under " + impl_->redact(base) + "; the listing stops here");
  return page;
}

HttpClient::Response HttpClient::send(const Request& req) {
  Response out;
  impl_->run(
      req.path,
      [&](Attempt& a) {
        a.method = req.method;
        a.request_headers = &req.headers;
        a.request_body = &req.body;
        a.body_limit = req.max_body;
      },
      [&](const Attempt& a) {
        out.status = a.status;
        out.headers = a.headers;
        out.body = a.body;
      });
  return out;
}

std::uint64_t HttpClient::stream(const std::string& path, std::uint64_t offset,
                                 const std::function<void(const char*, std::size_t)>& on_data) {
  if (impl_->opt.streams <= 1) {
    Range r;
    r.first = offset;
    return impl_->stream_range(path, r, on_data);
  }
  return impl_->stream_parallel(path, offset, on_data);
}

}  // namespace modelzoo::sdk::http
