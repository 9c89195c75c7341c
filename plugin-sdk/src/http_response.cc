// Reading one HTTP answer as libcurl hands it over (http_response.h): status, headers, body
// delivery and the checks of a stream's ranges and ETag.
#include "http_response.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string_view>

#include "http_text.h"

namespace modelzoo::sdk::http {

using nlohmann::json;

namespace detail {

void Attempt::reset_response() {
  status = 0;
  headers.clear();
  body.clear();
  started = deliver = false;
  skip = 0;
  end.reset();
  total.reset();
}

std::string Attempt::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

void Attempt::check() {
  started = true;
  if (!streaming || status < 200 || status > 299) return;
  std::string etag = header("etag");
  if (!expected_etag.empty() && !etag.empty() && etag != expected_etag) {
    protocol_error = "the file changed during the download (ETag " + printable(expected_etag, 80) + ", now " +
                     printable(etag, 80) + ")";
    return;
  }
  if (status == 206) {
    // Content-Range: bytes FIRST-LAST/TOTAL
    std::string cr = header("content-range");
    unsigned long long from = 0, to = 0;
    char unit[16] = {};
    if (std::sscanf(cr.c_str(), "%15s %llu-%llu", unit, &from, &to) != 3 || std::string(unit) != "bytes" ||
        to < from || to == std::numeric_limits<std::uint64_t>::max()) {
      protocol_error = "answered 206 without a usable Content-Range ('" + printable(cr, 80) + "')";
      return;
    }
    if (from != offset) {
      protocol_error = "answered 206 from byte " + std::to_string(from) + " when asked from byte " + std::to_string(offset);
      return;
    }
    if (last && to > *last) {
      protocol_error = "answered 206 up to byte " + std::to_string(to) + " when asked up to byte " + std::to_string(*last);
      return;
    }
    end = to + 1;
    if (auto slash = cr.find('/'); slash != std::string::npos) {
      std::string_view t(cr);
      t.remove_prefix(slash + 1);
      std::uint64_t size = 0;
      auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), size);
      if (ec == std::errc() && ptr == t.data() + t.size()) {
        if (size < *end) {
          protocol_error = "answered 206 with a range past the file's size ('" + printable(cr, 80) + "')";
          return;
        }
        total = size;
      }
    }
  } else {
    if (require_partial) {
      protocol_error = "answered " + std::to_string(status) + " to a request for bytes " + std::to_string(offset) + "-" +
                       std::to_string(last.value_or(0)) + " of a file it had served in ranges";
      return;
    }
    if (!header("content-range").empty()) {
      protocol_error = "answered " + std::to_string(status) + " with a Content-Range";
      return;
    }
    skip = offset;  // a 200 to a Range request: the whole file; drop what we have
    std::string cl = header("content-length");
    if (!cl.empty() && std::all_of(cl.begin(), cl.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      // Not std::stoull: its out_of_range (21 digits) would escape through libcurl's callback.
      std::uint64_t length = 0;
      auto [ptr, ec] = std::from_chars(cl.data(), cl.data() + cl.size(), length);
      if (ec != std::errc() || ptr != cl.data() + cl.size()) {
        protocol_error = "answered with a Content-Length too large to use ('" + printable(cl, 80) + "')";
        return;
      }
      end = length;
      if (*end < offset) {
        protocol_error = "the file has " + cl + " bytes, fewer than the offset " + std::to_string(offset);
        return;
      }
    }
  }
  deliver = true;
}

size_t on_header(char* buf, size_t size, size_t n, void* ud) {
  auto* a = static_cast<Attempt*>(ud);
  std::string_view line(buf, size * n);
  line = trim(line);
  if (line.rfind("HTTP/", 0) == 0) {
    // A new response (after 100 Continue, a proxy's CONNECT, a redirect): start over.
    a->reset_response();
    auto sp = line.find(' ');
    if (sp != std::string_view::npos) a->status = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
  } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
    a->headers[lower(trim(line.substr(0, colon)))] = std::string(trim(line.substr(colon + 1)));
  }
  return size * n;
}

size_t on_body(char* buf, size_t size, size_t n, void* ud) {
  auto* a = static_cast<Attempt*>(ud);
  std::size_t len = size * n;
  if (!a->started) a->check();
  if (!a->protocol_error.empty()) return CURL_WRITEFUNC_ERROR;
  if (a->deliver) {
    const char* p = buf;
    std::size_t m = len;
    if (a->skip) {
      auto s = static_cast<std::size_t>(std::min<std::uint64_t>(a->skip, m));
      p += s;
      m -= s;
      a->skip -= s;
    }
    if (m) {
      try {
        (*a->on_data)(p, m);
      } catch (...) {
        a->sink_error = std::current_exception();
        return CURL_WRITEFUNC_ERROR;
      }
      a->delivered += m;
    }
    return len;
  }
  bool success = a->status >= 200 && a->status <= 299;
  if (a->body.size() + len > a->body_limit) {
    if (success) {
      a->protocol_error = "answered with more than " + std::to_string(a->body_limit) + " bytes";
      return CURL_WRITEFUNC_ERROR;
    }
    a->body.append(buf, a->body_limit - std::min(a->body_limit, a->body.size()));  // an error body: keep its start
    return len;
  }
  a->body.append(buf, len);
  return len;
}

namespace {
// The text of the first <tag>...</tag> in `xml`, its five predefined entities decoded; "" when none.
std::string xml_element(const std::string& xml, const std::string& tag) {
  auto open = xml.find("<" + tag + ">");
  if (open == std::string::npos) return {};
  open += tag.size() + 2;
  auto close = xml.find("</" + tag + ">", open);
  if (close == std::string::npos) return {};
  std::string raw = xml.substr(open, std::min<std::size_t>(close - open, 1024)), out;
  static const std::pair<const char*, char> entities[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  for (std::size_t i = 0; i < raw.size();) {
    bool replaced = false;
    for (const auto& [name, c] : entities)
      if (raw.compare(i, std::strlen(name), name) == 0) {
        out += c;
        i += std::strlen(name);
        replaced = true;
        break;
      }
    if (!replaced) out += raw[i++];
  }
  return out;
}
}  // namespace

std::string server_message(const std::string& body) {
  // The XML error of S3, Azure Blob and GCS: <Error><Code>NoSuchKey</Code><Message>...</Message>.
  auto first = body.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && body[first] == '<') {
    std::string code = xml_element(body, "Code"), message = xml_element(body, "Message");
    if (code.empty()) return message;
    return message.empty() ? code : code + ": " + message;
  }
  std::string server;
  try {
    auto j = json::parse(body);
    // OAuth 2.0's error answer (RFC 6749 5.2): {"error": "invalid_grant", "error_description": "..."}.
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      server = j["error"].get<std::string>();
      if (j.contains("error_description") && j["error_description"].is_string())
        server += ": " + j["error_description"].get<std::string>();
    }
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
      const auto& e = j["error"];
      if (e.contains("message") && e["message"].is_string()) server = e["message"].get<std::string>();
      else if (e.contains("code") && e["code"].is_string()) server = e["code"].get<std::string>();
    }
  } catch (const std::exception&) {
  }
  return server;
}

json parse_json_answer(const std::string& body) {
  bool too_deep = false;
  json j;
  try {
    j = json::parse(body, [&](int depth, json::parse_event_t, json&) {
      too_deep = too_deep || depth > kMaxJsonDepth;
      return !too_deep;  // keep nothing more once too deep
    });
  } catch (const json::exception&) {  // parse_error, and out_of_range for a number like 1e999
    throw std::invalid_argument("the answer is not JSON");
  }
  if (too_deep) throw std::invalid_argument("the answer nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
  return j;
}

std::string next_link(const std::string& link) {
  std::size_t at = 0;
  while (at < link.size()) {
    auto open = link.find('<', at);
    if (open == std::string::npos) return {};
    auto close = link.find('>', open);
    if (close == std::string::npos) return {};
    std::string target = link.substr(open + 1, close - open - 1);
    // The parameters run to the next entry: a comma outside quotes.
    std::size_t end = close + 1;
    bool quoted = false;
    for (; end < link.size(); ++end) {
      if (link[end] == '"') quoted = !quoted;
      else if (link[end] == ',' && !quoted) break;
    }
    std::string params = lower(link.substr(close + 1, end - close - 1));
    for (std::size_t p = params.find("rel"); p != std::string::npos; p = params.find("rel", p + 3)) {
      std::size_t v = params.find_first_not_of(" \t", p + 3);
      if (v == std::string::npos || params[v] != '=') continue;
      v = params.find_first_not_of(" \t", v + 1);
      if (v == std::string::npos) break;
      std::string value;
      if (params[v] == '"') {
        auto q = params.find('"', v + 1);
        value = params.substr(v + 1, q == std::string::npos ? std::string::npos : q - v - 1);
      } else {
        value = params.substr(v, params.find_first_of(" \t;", v) - v);
      }
      std::size_t w = 0;
      while (w < value.size()) {
        auto sp = value.find(' ', w);
        if (value.substr(w, sp == std::string::npos ? std::string::npos : sp - w) == "next") return target;
        if (sp == std::string::npos) break;
        w = sp + 1;
      }
    }
    at = end + 1;
  }
  return {};
}

std::optional<unsigned long long> unsatisfied_range_total(const std::string& content_range) {
  unsigned long long total = 0;
  if (std::sscanf(content_range.c_str(), "bytes */%llu", &total) == 1) return total;
  return std::nullopt;
}

}  // namespace detail

}  // namespace modelzoo::sdk::http
