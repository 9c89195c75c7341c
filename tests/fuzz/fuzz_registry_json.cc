// Fuzz target: the JSON answers of a remote HTTP registry (docs/http-registry.md) as the SDK's
// HttpRegistry reads them (plugin-sdk/src/http_registry.cc): the model list, a version list, a model's
// metadata, the choice of the latest version; and the response cache every JSON answer goes
// through. The input is the body of the answer, parsed as HttpClient::get_json parses it.
#include <cstdint>

#include "fuzz_util.h"
#include "http_response.h"
#include "modelzoo/http.h"

namespace http = modelzoo::sdk::http;
using nlohmann::json;

namespace {

class Registry final : public http::HttpRegistry {
 public:
  Registry() {
    http::ClientOptions o;
    o.base_url = "http://127.0.0.1:9/registry";
    o.source = "fuzz";
    set_options(std::move(o));
  }
  using HttpRegistry::latest_version;
  using HttpRegistry::parse_list;
  using HttpRegistry::parse_metadata;
  using HttpRegistry::parse_versions;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Registry registry;
  static http::ResponseCache cache(std::chrono::milliseconds(60000), 4);
  json body;
  try {
    body = modelzoo::sdk::http::detail::parse_json_answer(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const std::invalid_argument&) {
    return 0;
  }
  cache.put("/v1/models", body);
  (void)cache.get("/v1/models");
  try {
    for (const auto& m : registry.parse_list(body)) FUZZ_ASSERT(!m.name.empty());
  } catch (const modelzoo::bus::Error&) {
  }
  try {
    auto versions = registry.parse_versions(body);
    auto latest = registry.latest_version(versions);
    FUZZ_ASSERT(latest.empty() || modelzoo::bus::SemVer::parse(latest));
  } catch (const modelzoo::bus::Error&) {
  }
  try {
    auto md = registry.parse_metadata(body);
    (void)md.to_json().dump();
  } catch (const modelzoo::bus::Error&) {
  }
  return 0;
}
