// HttpRegistry (modelzoo/http/registry.h): a Registry over an HTTP API, modelzoo's HTTP
// registry protocol by default (docs/http-registry.md).
#include "modelzoo/http/registry.h"

#include <algorithm>
#include <optional>

#include "modelzoo/http/options.h"
#include "modelzoo/http/url.h"


namespace modelzoo::sdk::http {

using nlohmann::json;

void HttpRegistry::configure(const json& config) { set_options(options_from_config(config)); }

void HttpRegistry::set_options(ClientOptions options) { client_ = std::make_unique<HttpClient>(std::move(options)); }

HttpClient& HttpRegistry::client() {
  if (!client_) throw Error(ErrorCode::internal, "the HTTP registry has no client: configure() did not set one");
  return *client_;
}

std::string HttpRegistry::list_path() { return "/v1/models"; }
std::string HttpRegistry::versions_path(const std::string& name) { return "/v1/models/" + encode_path(name) + "/-/versions"; }
std::string HttpRegistry::metadata_path(const std::string& name, const std::string& version) {
  return versions_path(name) + "/" + encode_segment(version);
}
std::string HttpRegistry::file_path(const std::string& name, const std::string& version, const std::string& file) {
  return metadata_path(name, version) + "/files/" + encode_path(file);
}

std::vector<ModelSummary> HttpRegistry::parse_list(const json& body) {
  if (!body.is_object() || !body.contains("models") || !body["models"].is_array())
    throw Error(ErrorCode::internal, "the model list is not a map with a list 'models'");
  std::vector<ModelSummary> out;
  for (const auto& m : body["models"]) {
    try {
      out.push_back(ModelSummary::from_json(m));
    } catch (const std::exception& e) {
      log("warn", client().options().source + ": skipped an entry of the model list: " + e.what());
    }
  }
  return out;
}

std::vector<std::string> HttpRegistry::parse_versions(const json& body) {
  if (!body.is_object() || !body.contains("versions") || !body["versions"].is_array())
    throw Error(ErrorCode::internal, "the version list is not a map with a list 'versions'");
  std::vector<std::string> out;
  for (const auto& v : body["versions"])
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

ModelMetadata HttpRegistry::parse_metadata(const json& body) { return ModelMetadata::from_json(body); }

std::string HttpRegistry::latest_version(const std::vector<std::string>& versions) {
  std::optional<bus::SemVer> best;
  std::string best_s;
  for (const auto& v : versions) {
    auto sv = bus::SemVer::parse(v);
    if (!sv) continue;
    bool better = !best;
    if (best) {
      bool rel = sv->prerelease.empty(), best_rel = best->prerelease.empty();
      better = rel != best_rel ? rel : sv->compare(*best) > 0;
    }
    if (better) {
      best = std::move(*sv);
      best_s = v;
    }
  }
  return best_s;
}

namespace {
// Runs a parser; whatever it throws becomes `internal` naming the request.
template <typename F>
auto parsed(HttpClient& c, const std::string& path, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    throw Error(ErrorCode::internal, "GET " + c.redact(c.options().base_url + path) + ": unusable answer: " + e.what());
  }
}
}  // namespace

ModelMetadata HttpRegistry::metadata(const std::string& name, const std::string& version) {
  std::string v = version;
  if (v.empty()) {
    auto path = versions_path(name);
    auto body = client().get_json(path);
    auto versions = parsed(client(), path, [&] { return parse_versions(body); });
    v = latest_version(versions);
    if (v.empty()) throw Error(ErrorCode::not_found, "model '" + name + "' has no versions at " + client().options().source);
  }
  auto path = metadata_path(name, v);
  auto body = client().get_json(path);
  auto md = parsed(client(), path, [&] { return parse_metadata(body); });
  if (md.name != name || md.version != v)
    throw Error(ErrorCode::internal, "GET " + client().redact(client().options().base_url + path) + ": answered for '" +
                                         md.name + ":" + md.version + "' when asked for '" + name + ":" + v + "'");
  return md;
}

bool HttpRegistry::exists(const std::string& name, const std::string& version) {
  try {
    if (version.empty()) {
      auto path = versions_path(name);
      auto body = client().get_json(path);
      return !latest_version(parsed(client(), path, [&] { return parse_versions(body); })).empty();
    }
    metadata(name, version);
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::not_found) return false;
    throw;
  }
}

std::vector<ModelSummary> HttpRegistry::list() {
  auto path = list_path();
  auto body = client().get_json(path);
  auto models = parsed(client(), path, [&] { return parse_list(body); });
  for (auto& m : models) {
    // newest first, as the protocol wants; strings that are not versions last
    std::stable_sort(m.versions.begin(), m.versions.end(), [](const std::string& a, const std::string& b) {
      auto sa = bus::SemVer::parse(a), sb = bus::SemVer::parse(b);
      if (sa && sb) return sa->compare(*sb) > 0;
      return sa.has_value() && !sb.has_value();
    });
  }
  return models;
}

void HttpRegistry::download(const DownloadRequest& req, ChunkSink& sink) {
  const std::size_t chunk = std::max<std::size_t>(sink.chunk_size(), 1);
  constexpr auto kFlushEvery = milliseconds(250);
  std::string buf;
  buf.reserve(chunk);
  auto last_flush = Clock::now();
  bool sink_failed = false;  // the sink threw: it must not be written to again
  auto flush = [&] {
    if (!buf.empty()) {
      sink_failed = true;
      sink.write(buf.data(), buf.size());
      sink_failed = false;
    }
    buf.clear();
    last_flush = Clock::now();
  };
  try {
    client().stream(file_path(req.name, req.version, req.file), req.offset, [&](const char* p, std::size_t n) {
      while (n > 0) {
        std::size_t take = std::min(n, chunk - buf.size());
        buf.append(p, take);
        p += take;
        n -= take;
        if (buf.size() >= chunk || Clock::now() - last_flush >= kFlushEvery) flush();
      }
    });
    flush();
  } catch (...) {
    // Hand over what arrived before the failure, so the daemon resumes after it.
    if (!sink_failed) {
      try {
        flush();
      } catch (...) {
      }
    }
    throw;
  }
}

}  // namespace modelzoo::sdk::http
