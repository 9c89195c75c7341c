#include "caches/hf_cache.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>

#include "modelzoo/bus/names.h"

namespace modelzoo::plugins::hf_cache {
namespace {

namespace fs = std::filesystem;
using sdk::Error;
using sdk::ErrorCode;

const std::string kPlugin = "hf-cache";
constexpr int kMaxDepth = 16;
constexpr std::size_t kMaxFiles = 100000;

// The first line of a small file (refs/<branch>), at most 256 bytes.
std::string read_small(const fs::path& p) {
  std::ifstream in(p);
  std::string s;
  if (!in) return s;
  std::getline(in, s);
  if (s.size() > 256) s.clear();
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Options parse_config(const nlohmann::json& config, const std::function<const char*(const char*)>& env_in) {
  auto env = env_in ? env_in : [](const char* k) -> const char* { return std::getenv(k); };
  if (!config.is_object() && !config.is_null()) throw Error(ErrorCode::bad_request, kPlugin + ": configuration is not a map");
  nlohmann::json c = config.is_null() ? nlohmann::json::object() : config;
  Options o;
  auto str = [&](const char* key) -> std::string {
    auto it = c.find(key);
    if (it == c.end() || it->is_null()) return {};
    if (!it->is_string()) throw Error(ErrorCode::bad_request, kPlugin + ": '" + key + "' must be a string");
    return it->get<std::string>();
  };
  auto nonempty = [](const char* v) { return v && *v; };
  if (auto p = str("path"); !p.empty()) {
    o.root = p, o.root_source = "path:";
  } else if (nonempty(env("HF_HUB_CACHE"))) {
    o.root = env("HF_HUB_CACHE"), o.root_source = "HF_HUB_CACHE";
  } else if (nonempty(env("HF_HOME"))) {
    o.root = fs::path(env("HF_HOME")) / "hub", o.root_source = "HF_HOME";
  } else if (nonempty(env("HOME"))) {
    o.root = fs::path(env("HOME")) / ".cache/huggingface/hub", o.root_source = "default";
  } else {
    throw Error(ErrorCode::bad_request, kPlugin + ": no 'path' configured and neither HF_HUB_CACHE, HF_HOME nor HOME is set");
  }
  std::error_code ec;
  if (auto a = fs::absolute(o.root, ec); !ec) o.root = a;
  o.prefix = str("prefix");
  if (!o.prefix.empty() && o.prefix.back() != '/') o.prefix += '/';
  if (auto r = str("revision"); !r.empty()) {
    if (r.find('/') != std::string::npos || r.find("..") != std::string::npos || r[0] == '.')
      throw Error(ErrorCode::bad_request, kPlugin + ": 'revision' must be a branch name without '/' or '..'");
    o.revision = r;
  }
  o.allow_patterns = caches::string_list(c, "allow_patterns", kPlugin);
  o.ignore_patterns = caches::string_list(c, "ignore_patterns", kPlugin);
  if (auto it = c.find("max_hash_bytes"); it != c.end() && !it->is_null()) {
    if (!it->is_number_unsigned()) throw Error(ErrorCode::bad_request, kPlugin + ": 'max_hash_bytes' must be a non-negative integer");
    o.max_hash_bytes = it->get<std::uint64_t>();
  }
  return o;
}

std::string version_of_commit(const std::string& sha) { return "0.0.0+" + sha; }

std::string commit_of_version(const std::string& version) {
  if (version.rfind("0.0.0+", 0) == 0 && caches::is_hex(version.substr(6), 40)) return version.substr(6);
  return {};
}

Store::Store(Options o) : opt_(std::move(o)) {
  if (!opt_.log) opt_.log = [](const char* level, const std::string& m) { sdk::log(level, m); };
}

bool Store::wanted(const std::string& file) const {
  if (!opt_.allow_patterns.empty() &&
      std::none_of(opt_.allow_patterns.begin(), opt_.allow_patterns.end(), [&](const auto& p) { return caches::glob_match(p, file); }))
    return false;
  return std::none_of(opt_.ignore_patterns.begin(), opt_.ignore_patterns.end(),
                      [&](const auto& p) { return caches::glob_match(p, file); });
}

std::string Store::repo_dir_name(const std::string& name) const {
  if (auto why = bus::check_model_name(name)) throw Error(ErrorCode::bad_request, kPlugin + ": " + *why);
  Error none(ErrorCode::not_found, kPlugin + ": no model '" + name + "' in " + opt_.root.string());
  if (name.compare(0, opt_.prefix.size(), opt_.prefix) != 0) throw none;
  std::string repo = name.substr(opt_.prefix.size());
  auto slash = repo.find('/');
  if (repo.empty() || (slash != std::string::npos && repo.find('/', slash + 1) != std::string::npos)) throw none;
  if (repo.find("--") != std::string::npos)
    throw Error(ErrorCode::bad_request, kPlugin + ": '" + name + "': '--' cannot appear in a Hugging Face repo name");
  std::string dir = "models--" + repo;
  if (slash != std::string::npos) dir.replace(8 + slash, 1, "--");
  return dir;
}

std::vector<std::string> Store::commits(const fs::path& repo) const {
  std::vector<std::string> out;
  std::string head = read_small(repo / "refs" / opt_.revision);
  std::error_code ec;
  for (fs::directory_iterator it(repo / "snapshots", ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().native();
    if (caches::is_hex(n, 40) && it->is_directory(ec)) out.push_back(n);
    if (out.size() >= 4096) break;
  }
  std::sort(out.begin(), out.end());
  auto h = std::find(out.begin(), out.end(), head);
  if (h != out.end()) std::rotate(out.begin(), h, h + 1);
  return out;
}

Store::Repo Store::resolve(const std::string& name, const std::string& version) const {
  std::string dir = repo_dir_name(name);
  auto root = caches::real_path(opt_.root);
  Error none(ErrorCode::not_found, kPlugin + ": no model '" + name + "' in " + opt_.root.string());
  if (!root) throw none;
  auto repo = caches::real_path(*root / dir);
  if (!repo || !fs::is_directory(*repo)) throw none;
  if (!caches::inside(*repo, *root)) throw Error(ErrorCode::bad_request, kPlugin + ": '" + dir + "' leads outside the cache");
  Repo r{*repo, {}};
  if (version.empty()) {
    r.commit = read_small(*repo / "refs" / opt_.revision);
    if (!caches::is_hex(r.commit, 40))
      throw Error(ErrorCode::not_found, kPlugin + ": model '" + name + "' has no refs/" + opt_.revision +
                                            " in the cache; name a version 0.0.0+<commit>");
  } else {
    if (auto why = bus::check_version(version)) throw Error(ErrorCode::bad_request, kPlugin + ": " + *why);
    r.commit = commit_of_version(version);
    if (r.commit.empty())
      throw Error(ErrorCode::not_found, kPlugin + ": version '" + version + "' of '" + name +
                                            "' is not a commit (versions here are 0.0.0+<40-hex commit sha>)");
  }
  std::error_code ec;
  if (!fs::is_directory(*repo / "snapshots" / r.commit, ec))
    throw Error(ErrorCode::not_found, kPlugin + ": model '" + name + "' has no snapshot of commit " + r.commit + " in the cache");
  return r;
}

std::vector<Store::File> Store::files(const Repo& r, const std::string& name) const {
  std::vector<File> out;
  fs::path snap = r.dir / "snapshots" / r.commit;
  struct Dir {
    fs::path path;
    std::string prefix;
    int depth;
  };
  std::vector<Dir> todo{{snap, "", 0}};
  while (!todo.empty()) {
    Dir d = std::move(todo.back());
    todo.pop_back();
    std::vector<std::string> names;
    std::error_code ec;
    for (fs::directory_iterator it(d.path, ec), end; !ec && it != end; it.increment(ec))
      names.push_back(it->path().filename().native());
    if (ec) throw Error(ErrorCode::unavailable, kPlugin + ": cannot read a snapshot of '" + name + "': " + ec.message());
    for (const auto& n : names) {
      std::string rel = d.prefix.empty() ? n : d.prefix + "/" + n;
      std::string what = name + "@" + r.commit.substr(0, 12) + ": " + rel;
      fs::path p = d.path / n;
      struct stat lst {};
      if (::lstat(p.c_str(), &lst) != 0) continue;
      if (S_ISDIR(lst.st_mode)) {
        if (d.depth + 1 < kMaxDepth) todo.push_back({p, rel, d.depth + 1});
        else log("warn", kPlugin + ": skipping '" + what + "': nested too deep");
        continue;
      }
      if (auto why = bus::check_file_name(rel)) {
        log("info", kPlugin + ": skipping '" + what + "': " + *why);
        continue;
      }
      auto c = caches::real_path(p);
      if (!c) {
        log("warn", kPlugin + ": skipping '" + what + "': a dangling symlink (its blob is not in the cache: an interrupted download?)");
        continue;
      }
      if (!caches::inside(*c, r.dir)) throw Error(ErrorCode::bad_request, kPlugin + ": '" + what + "' leads outside " + r.dir.string());
      std::string blob = c->filename().native();
      if (blob.size() > 11 && blob.compare(blob.size() - 11, 11, ".incomplete") == 0) {
        log("warn", kPlugin + ": skipping '" + what + "': its blob is still downloading (" + blob + ")");
        continue;
      }
      struct stat st {};
      if (::stat(c->c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
        if (S_ISDIR(st.st_mode) && d.depth + 1 < kMaxDepth) todo.push_back({p, rel, d.depth + 1});
        continue;
      }
      if (!wanted(rel)) continue;
      if (out.size() >= kMaxFiles) throw Error(ErrorCode::unavailable, kPlugin + ": '" + name + "' has too many files");
      bool lfs = S_ISLNK(lst.st_mode) && c->parent_path().filename() == "blobs" && caches::is_hex(blob, 64);
      out.push_back({rel, *c, static_cast<std::uint64_t>(st.st_size), lfs ? blob : std::string()});
    }
  }
  std::sort(out.begin(), out.end(), [](const File& a, const File& b) { return a.name < b.name; });
  return out;
}

sdk::ModelMetadata Store::metadata(const std::string& name, const std::string& version) {
  Repo r = resolve(name, version);
  sdk::ModelMetadata m;
  m.name = name;
  m.version = version_of_commit(r.commit);
  m.description = "from the Hugging Face cache " + opt_.root.string();
  for (auto& f : files(r, name)) {
    std::string what = name + "@" + r.commit.substr(0, 12) + ": " + f.name;
    std::string sha = f.sha256.empty() ? hashes_.sha256(f.blob, r.dir, opt_.max_hash_bytes, kPlugin, what) : f.sha256;
    m.files.push_back({f.name, f.size, std::move(sha), f.blob.string()});
  }
  if (m.files.empty()) throw Error(ErrorCode::not_found, kPlugin + ": model '" + name + "' has no complete file in the cache");
  return m;
}

bool Store::exists(const std::string& name, const std::string& version) {
  return caches::found([&] { resolve(name, version); });
}

std::vector<sdk::ModelSummary> Store::list() {
  std::vector<sdk::ModelSummary> out;
  auto root = caches::real_path(opt_.root);
  if (!root) return out;
  std::error_code ec;
  for (fs::directory_iterator it(*root, ec), end; !ec && it != end; it.increment(ec)) {
    std::string d = it->path().filename().native();
    if (d.rfind("models--", 0) != 0) continue;  // datasets--, spaces--, .locks
    if (out.size() >= opt_.max_models) {
      log("warn", kPlugin + ": more than " + std::to_string(opt_.max_models) + " models in " + root->string() + "; listing the first");
      break;
    }
    std::string repo = d.substr(8);
    auto sep = repo.find("--");
    if (sep != std::string::npos) repo.replace(sep, 2, "/");
    std::string name = opt_.prefix + repo;
    if (bus::check_model_name(name) || repo.find("--") != std::string::npos) continue;
    auto dir = caches::real_path(it->path());
    if (!dir || !caches::inside(*dir, *root)) {
      log("warn", kPlugin + ": skipping '" + d + "': it leads outside the cache");
      continue;
    }
    std::vector<std::string> versions;
    for (auto& c : commits(*dir)) versions.push_back(version_of_commit(c));
    if (!versions.empty()) out.push_back({name, std::move(versions), {}});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

void Store::download(const sdk::DownloadRequest& req, sdk::ChunkSink& sink) {
  if (auto why = bus::check_file_name(req.file)) throw Error(ErrorCode::bad_request, kPlugin + ": " + *why);
  Repo r = resolve(req.name, req.version);
  for (auto& f : files(r, req.name))
    if (f.name == req.file) return caches::stream_file(f.blob, r.dir, req.offset, sink, kPlugin, req.name + ": " + f.name);
  throw Error(ErrorCode::not_found, kPlugin + ": model '" + req.name + "' has no file '" + req.file + "' at commit " + r.commit);
}

}  // namespace modelzoo::plugins::hf_cache
