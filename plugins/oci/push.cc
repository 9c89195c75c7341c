#include "oci/push.h"

#include <algorithm>
#include <cctype>
#include <fstream>

#include "modelzoo/bus/sha256.h"

namespace modelzoo::plugins::oci {

using sdk::Error;
using sdk::ErrorCode;

namespace {
const char* const kEmptyConfig = "{}";
const char* const kEmptyConfigDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

std::string read_range(const std::filesystem::path& p, std::uint64_t off, std::uint64_t n) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(ErrorCode::internal, "push: cannot read " + p.string());
  in.seekg(static_cast<std::streamoff>(off));
  std::string s(n, '\0');
  in.read(s.data(), static_cast<std::streamsize>(n));
  if (static_cast<std::uint64_t>(in.gcount()) != n) throw Error(ErrorCode::internal, "push: " + p.string() + " is shorter than its size");
  return s;
}

std::string absolute(const Client& c, const std::string& location) {
  return location.rfind("http", 0) == 0 ? location : c.config().url + location;
}
std::string with_query(const std::string& url, const std::string& q) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + q;
}
}  // namespace

PushTarget parse_push_target(const std::string& ref, const std::string& default_tag, bool plain_http) {
  const std::string scheme = "oci://";
  if (ref.rfind(scheme, 0) != 0) throw Error(ErrorCode::bad_request, "push: the target must be oci://HOST[:PORT]/REPO[:TAG], not '" + ref + "'");
  std::string rest = ref.substr(scheme.size());
  auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= rest.size())
    throw Error(ErrorCode::bad_request, "push: '" + ref + "' names no repository (oci://HOST[:PORT]/REPO[:TAG])");
  std::string host = rest.substr(0, slash), repo = rest.substr(slash + 1), tag = default_tag;
  auto colon = repo.rfind(':');
  if (colon != std::string::npos && repo.find('/', colon) == std::string::npos) {
    tag = repo.substr(colon + 1);
    repo = repo.substr(0, colon);
  }
  for (char c : repo)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '/' || c == '.' ||
          c == '_' || c == '-'))
      throw Error(ErrorCode::bad_request, "push: repository '" + repo + "' may hold only a-z 0-9 . _ - /");
  std::replace(tag.begin(), tag.end(), '+', '_');
  if (tag.empty() || tag.size() > 128) throw Error(ErrorCode::bad_request, "push: bad tag '" + tag + "'");
  std::string h = host.substr(0, host.rfind(':') == std::string::npos || host.back() == ']' ? host.size() : host.rfind(':'));
  bool loopback = h == "127.0.0.1" || h == "localhost" || h == "[::1]";
  return {(plain_http || loopback ? "http://" : "https://") + host, repo, tag};
}

std::string artifact_manifest(const std::vector<PushFile>& files) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& f : files)
    layers.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar"},
                      {"digest", "sha256:" + f.sha256},
                      {"size", f.size},
                      {"annotations", {{"org.opencontainers.image.title", f.name}}}});
  nlohmann::json m = {{"schemaVersion", 2},
                      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                      {"artifactType", "application/vnd.modelzoo.model.v1"},
                      {"config", {{"mediaType", "application/vnd.oci.empty.v1+json"}, {"digest", kEmptyConfigDigest}, {"size", 2}}},
                      {"layers", layers}};
  return m.dump();
}

nlohmann::json push(Client& client, const PushTarget& t, const std::vector<PushFile>& files,
                    const std::function<void(const PushProgress&)>& on_progress, std::uint64_t chunk) {
  const std::string scope = "repository:" + t.repository + ":pull,push";
  const std::string base = "/v2/" + t.repository;
  auto fail = [&](const std::string& what, const Response& r) {
    std::string m = "push to " + t.url + "/" + t.repository + ": " + what + ": HTTP " + std::to_string(r.status);
    if (r.status == 401 || r.status == 403)
      throw Error(ErrorCode::unauthorized, m + "; give credentials with --user (password in MODELZOO_OCI_PASSWORD) or a docker config.json auths entry");
    if (r.status == 404) throw Error(ErrorCode::not_found, m);
    if (r.status == 429 || r.status >= 500) throw Error(ErrorCode::unavailable, m);
    throw Error(ErrorCode::internal, m + (r.body.empty() ? "" : ": " + client.redact(r.body.substr(0, 300))));
  };
  std::uint64_t uploaded = 0, skipped = 0, bytes = 0, chunks = 0;
  auto upload = [&](const std::string& digest, std::uint64_t size, const std::function<std::string(std::uint64_t, std::uint64_t)>& read,
                    const std::string& label) {
    auto h = client.request("HEAD", base + "/blobs/" + digest, scope, {}, "");
    if (h.status == 200) {
      ++skipped;
      return;
    }
    if (h.status != 404) fail("HEAD blob " + digest, h);
    auto r = client.request("POST", base + "/blobs/uploads/", scope, {}, "");
    if (r.status != 202 || !r.headers.count("location")) fail("starting the upload of " + label, r);
    std::string loc = absolute(client, r.headers["location"]);
    std::uint64_t off = 0;
    while (size > chunk && off < size) {  // chunked: PATCH pieces, then a PUT with no body
      std::uint64_t n = std::min(chunk, size - off);
      r = client.request("PATCH", loc, scope,
                         {"Content-Type: application/octet-stream",
                          "Content-Range: " + std::to_string(off) + "-" + std::to_string(off + n - 1)},
                         read(off, n));
      if (r.status != 202 || !r.headers.count("location")) fail("uploading " + label, r);
      loc = absolute(client, r.headers["location"]);
      off += n;
      bytes += n;
      ++chunks;
      if (on_progress) on_progress({label, off, size});
    }
    std::string body = off < size ? read(0, size) : std::string();
    r = client.request("PUT", with_query(loc, "digest=" + digest), scope, {"Content-Type: application/octet-stream"}, body);
    if (r.status != 201) fail("finishing the upload of " + label, r);
    bytes += body.size();
    ++uploaded;
    if (on_progress) on_progress({label, size, size});
  };
  for (const auto& f : files)
    upload("sha256:" + f.sha256, f.size, [&](std::uint64_t o, std::uint64_t n) { return read_range(f.path, o, n); }, f.name);
  upload(kEmptyConfigDigest, 2, [](std::uint64_t, std::uint64_t) { return std::string(kEmptyConfig); }, "config");
  std::string m = artifact_manifest(files);
  auto r = client.request("PUT", base + "/manifests/" + t.tag, scope, {"Content-Type: application/vnd.oci.image.manifest.v1+json"}, m);
  if (r.status != 201) fail("PUT manifest " + t.tag, r);
  bus::Sha256 h;
  h.update(m.data(), m.size());
  return {{"repository", t.repository}, {"tag", t.tag}, {"digest", "sha256:" + h.hex_digest()},
          {"url", t.url}, {"blobs_uploaded", uploaded}, {"blobs_skipped", skipped}, {"bytes_uploaded", bytes},
          {"chunks_uploaded", chunks}};
}

}  // namespace modelzoo::plugins::oci
