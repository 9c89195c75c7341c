#include "caches/ollama_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "modelzoo/bus/names.h"

namespace modelzoo::plugins::ollama_store {
namespace {

namespace fs = std::filesystem;
using sdk::Error;
using sdk::ErrorCode;
using nlohmann::json;

const std::string kPlugin = "ollama-store";
constexpr std::uint64_t kMaxManifest = 1u << 20;

bool tag_ok(const std::string& t) {
  if (t.empty() || t.size() > 58 || t.front() == '.' || t.back() == '.' || t.find("..") != std::string::npos) return false;
  return std::all_of(t.begin(), t.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_'; }) &&
         bus::version_of_tag(t);
}

std::string read_text(int fd, std::uint64_t size) {
  std::string s(static_cast<std::size_t>(size), '\0');
  std::size_t got = 0;
  while (got < s.size()) {
    ssize_t n = ::pread(fd, s.data() + got, s.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  s.resize(got);
  return s;
}

}  // namespace

Options parse_config(const json& config, const std::function<const char*(const char*)>& env_in) {
  auto env = env_in ? env_in : [](const char* k) -> const char* { return std::getenv(k); };
  if (!config.is_object() && !config.is_null()) throw Error(ErrorCode::bad_request, kPlugin + ": configuration is not a map");
  json c = config.is_null() ? json::object() : config;
  auto str = [&](const char* key) -> std::string {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return {};
    if (!it->is_string()) throw Error(ErrorCode::bad_request, kPlugin + ": '" + key + "' must be a string");
    return it->get<std::string>();
  };
  Options o;
  const char* om = env("OLLAMA_MODELS");
  const char* home = env("HOME");
  if (auto p = str("path"); !p.empty()) o.root = p, o.root_source = "path:";
  else if (om && *om) o.root = om, o.root_source = "OLLAMA_MODELS";
  else if (home && *home) o.root = fs::path(home) / ".ollama/models", o.root_source = "default";
  else throw Error(ErrorCode::bad_request, kPlugin + ": no 'path' configured and neither OLLAMA_MODELS nor HOME is set");
  std::error_code ec;
  if (auto a = fs::absolute(o.root, ec); !ec) o.root = a;
  o.prefix = str("prefix");
  if (!o.prefix.empty() && o.prefix.back() != '/') o.prefix += '/';
  return o;
}

std::string layer_file_name(const std::string& media_type, const std::vector<std::string>& taken) {
  const std::string pre = "application/vnd.ollama.image.";
  std::string kind = media_type.rfind(pre, 0) == 0 ? media_type.substr(pre.size()) : std::string();
  std::string base, ext;
  if (kind == "model" || kind == "adapter" || kind == "projector") base = kind, ext = ".gguf";
  else if (kind == "params" || kind == "messages") base = kind, ext = ".json";
  else if (!kind.empty() && !bus::check_file_name(kind) && kind.find('/') == std::string::npos) base = kind;
  else base = "layer";
  std::string n = base + ext;
  for (int i = 2; std::find(taken.begin(), taken.end(), n) != taken.end(); ++i) n = base + "-" + std::to_string(i) + ext;
  return n;
}

Store::Store(Options o) : opt_(std::move(o)) {
  if (!opt_.log) opt_.log = [](const char* level, const std::string& m) { sdk::log(level, m); };
}

fs::path Store::manifest_dir(const std::string& name) const {
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, kPlugin + ": " + *why);
  Error none(ErrorCode::not_found, kPlugin + ": no model '" + name + "' in " + opt_.root.string());
  if (name.compare(0, opt_.prefix.size(), opt_.prefix) != 0) throw none;
  std::string rest = name.substr(opt_.prefix.size());
  std::vector<std::string> seg;
  for (std::size_t s = 0;;) {
    auto e = rest.find('/', s);
    seg.push_back(rest.substr(s, e == std::string::npos ? std::string::npos : e - s));
    if (e == std::string::npos) break;
    s = e + 1;
  }
  if (seg.size() == 1) return fs::path(opt_.host) / "library" / seg[0];
  if (seg.size() == 2) return fs::path(opt_.host) / seg[0] / seg[1];
  if (seg.size() == 3) return fs::path(seg[0]) / seg[1] / seg[2];
  throw none;
}

Store::Manifest Store::resolve(const std::string& name, const std::string& version) const {
  fs::path rel = manifest_dir(name);
  std::string tag = "latest";
  if (!version.empty()) {
    if (auto why = bus::check_version(version)) throw Error(ErrorCode::bad_request, kPlugin + ": " + *why);
    auto underscored = bus::tag_of_version(version);
    if (!underscored)
      throw Error(ErrorCode::not_found, kPlugin + ": version '" + version + "' of '" + name +
                                            "' is not a tag (versions here are 0.0.0+<tag>, '_' written '--')");
    // The literal tag ("q4--0") if the store has one, else the one with '_' ("q4_0").
    tag = version.substr(6);
    std::error_code ec;
    if (tag != *underscored && !fs::exists(opt_.root / "manifests" / rel / tag, ec)) tag = *underscored;
  }
  Error none(ErrorCode::not_found, kPlugin + ": no model '" + name + "' with tag '" + tag + "' in " + opt_.root.string());
  auto root = caches::real_path(opt_.root);
  if (!root) throw none;
  auto path = caches::real_path(*root / "manifests" / rel / tag);
  if (!path) throw none;
  if (!caches::inside(*path, *root)) throw Error(ErrorCode::bad_request, kPlugin + ": the manifest of '" + name + "' leads outside " + root->string());
  return {*root, tag, *path};
}

sdk::ModelMetadata Store::read(const Manifest& mf, const std::string& name) const {
  std::string what = name + ":" + mf.tag;
  int fd = caches::open_inside(mf.path, mf.root, kPlugin, "manifest of " + what);
  std::uint64_t size = caches::fd_size(fd, kPlugin, what);
  std::string text = size <= kMaxManifest ? read_text(fd, size) : std::string();
  ::close(fd);
  if (size > kMaxManifest) throw Error(ErrorCode::unavailable, kPlugin + ": the manifest of '" + what + "' is larger than 1 MiB");
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("layers") || !j["layers"].is_array())
    throw Error(ErrorCode::unavailable, kPlugin + ": the manifest of '" + what + "' is not an Ollama manifest (no 'layers')");
  sdk::ModelMetadata m;
  m.name = name;
  m.version = bus::version_of_tag(mf.tag).value_or("0.0.0+" + mf.tag);
  m.format = "gguf";
  m.description = "from Ollama's store " + opt_.root.string();
  std::vector<std::string> taken;
  auto add = [&](const json& layer, const std::string& file) {
    std::string digest = layer.value("digest", std::string());
    if (digest.rfind("sha256:", 0) != 0 || !caches::is_hex(digest.substr(7), 64))
      throw Error(ErrorCode::unavailable, kPlugin + ": '" + what + "': layer '" + file + "' has no sha256 digest");
    std::string hex = digest.substr(7);
    fs::path blob = mf.root / "blobs" / ("sha256-" + hex);
    auto c = caches::real_path(blob);
    if (!c)
      throw Error(ErrorCode::unavailable, kPlugin + ": '" + what + "': blob sha256-" + hex + " (" + file +
                                              ") is missing from the store (an interrupted ollama pull? run it again)");
    if (!caches::inside(*c, mf.root)) throw Error(ErrorCode::bad_request, kPlugin + ": '" + what + "': blob of " + file + " leads outside " + mf.root.string());
    struct stat st {};
    if (::stat(c->c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      throw Error(ErrorCode::unavailable, kPlugin + ": '" + what + "': blob of " + file + " is not a regular file");
    auto want = layer.value("size", std::uint64_t{0});
    if (layer.contains("size") && static_cast<std::uint64_t>(st.st_size) != want)
      throw Error(ErrorCode::unavailable, kPlugin + ": '" + what + "': blob of " + file + " has " + std::to_string(st.st_size) +
                                              " bytes, the manifest says " + std::to_string(want) + " (incomplete?)");
    taken.push_back(file);
    m.files.push_back({file, static_cast<std::uint64_t>(st.st_size), hex, c->string()});
  };
  for (const auto& layer : j["layers"]) {
    if (!layer.is_object()) throw Error(ErrorCode::unavailable, kPlugin + ": '" + what + "': a layer is not a map");
    add(layer, layer_file_name(layer.value("mediaType", std::string()), taken));
  }
  if (j.contains("config") && j["config"].is_object() && j["config"].contains("digest")) add(j["config"], "config.json");
  std::sort(m.files.begin(), m.files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return m;
}

sdk::ModelMetadata Store::metadata(const std::string& name, const std::string& version) {
  return read(resolve(name, version), name);
}

bool Store::exists(const std::string& name, const std::string& version) {
  return caches::found([&] { resolve(name, version); });
}

std::vector<sdk::ModelSummary> Store::list() {
  std::vector<sdk::ModelSummary> out;
  auto root = caches::real_path(opt_.root);
  if (!root) return out;
  fs::path mroot = *root / "manifests";
  std::error_code ec;
  auto subdirs = [&](const fs::path& d) {
    std::vector<std::string> v;
    std::error_code e;
    for (fs::directory_iterator it(d, e), end; !e && it != end; it.increment(e))
      if (it->is_directory(e) && !it->is_symlink(e)) v.push_back(it->path().filename().native());
    std::sort(v.begin(), v.end());
    return v;
  };
  for (const auto& host : subdirs(mroot))
    for (const auto& ns : subdirs(mroot / host))
      for (const auto& model : subdirs(mroot / host / ns)) {
        if (out.size() >= opt_.max_models) {
          log("warn", kPlugin + ": more than " + std::to_string(opt_.max_models) + " models; listing the first");
          return out;
        }
        std::string name = opt_.prefix + (host == opt_.host ? (ns == "library" ? model : ns + "/" + model) : host + "/" + ns + "/" + model);
        if (bus::check_model_name(name)) {
          log("info", kPlugin + ": skipping '" + host + "/" + ns + "/" + model + "': not a valid model name");
          continue;
        }
        std::vector<std::string> versions;
        bool latest = false;
        for (fs::directory_iterator it(mroot / host / ns / model, ec), end; !ec && it != end; it.increment(ec)) {
          std::string t = it->path().filename().native();
          if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
          if (!tag_ok(t)) {
            log("info", kPlugin + ": skipping tag '" + t + "' of '" + name + "': only tags of [0-9A-Za-z._-] map to a version");
            continue;
          }
          if (t == "latest") latest = true;
          else versions.push_back(*bus::version_of_tag(t));
        }
        std::sort(versions.begin(), versions.end());
        // "a_b" and a literal "a--b" are one version (the literal tag wins when pulled)
        versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
        if (latest) versions.insert(versions.begin(), "0.0.0+latest");
        if (!versions.empty()) out.push_back({name, std::move(versions), {}});
      }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void Store::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) {
  if (auto why = bus::check_file_name(req.file)) throw Error(ErrorCode::bad_request, kPlugin + ": " + *why);
  Manifest mf = resolve(req.name, req.version);
  for (const auto& f : read(mf, req.name).files)
    if (f.name == req.file) return caches::stream_file(f.local_path, mf.root, req.offset, sink, kPlugin, req.name + ": " + f.name);
  throw Error(ErrorCode::not_found, kPlugin + ": model '" + req.name + "' tag '" + mf.tag + "' has no file '" + req.file + "'");
}

}  // namespace modelzoo::plugins::ollama_store
