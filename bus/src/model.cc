#include "modelzoo/bus/model.h"

#include <set>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"

namespace modelzoo::bus {
namespace {

std::string str_field(const nlohmann::json& j, const char* key, bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) throw Error(ErrorCode::bad_request, std::string("metadata lacks '") + key + "'");
    return {};
  }
  if (!it->is_string()) throw Error(ErrorCode::bad_request, std::string("metadata field '") + key + "' is not a string");
  return it->get<std::string>();
}

}  // namespace

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::uint64_t ModelMetadata::total_size() const {
  std::uint64_t n = 0;
  for (const auto& f : files) n += f.size;
  return n;
}

nlohmann::json ModelMetadata::to_json() const {
  auto files_j = nlohmann::json::array();
  for (const auto& f : files) {
    nlohmann::json fj = {{"name", f.name}, {"size", f.size}, {"sha256", f.sha256}};
    if (!f.local_path.empty()) fj["local_path"] = f.local_path;
    files_j.push_back(std::move(fj));
  }
  return {{"name", name}, {"version", version}, {"description", description}, {"author", author},
          {"license", license}, {"format", format}, {"tags", tags}, {"files", files_j}};
}

ModelMetadata ModelMetadata::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error(ErrorCode::bad_request, "metadata is not a map");
  ModelMetadata m;
  m.name = str_field(j, "name", true);
  if (auto why = check_model_name(m.name)) throw Error(ErrorCode::bad_request, *why);
  m.version = str_field(j, "version", true);
  if (auto why = check_version(m.version)) throw Error(ErrorCode::bad_request, *why);
  m.description = str_field(j, "description", false);
  m.author = str_field(j, "author", false);
  m.license = str_field(j, "license", false);
  m.format = str_field(j, "format", false);
  if (auto it = j.find("tags"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) throw Error(ErrorCode::bad_request, "metadata field 'tags' is not an array");
    for (const auto& t : *it) {
      if (!t.is_string()) throw Error(ErrorCode::bad_request, "metadata tag is not a string");
      m.tags.push_back(t.get<std::string>());
    }
  }
  auto files = j.find("files");
  if (files == j.end() || !files->is_array()) throw Error(ErrorCode::bad_request, "metadata lacks a 'files' array");
  std::set<std::string> seen;
  for (const auto& f : *files) {
    if (!f.is_object()) throw Error(ErrorCode::bad_request, "metadata file entry is not a map");
    FileInfo fi;
    fi.name = str_field(f, "name", true);
    if (auto why = check_file_name(fi.name)) throw Error(ErrorCode::bad_request, *why);
    if (!seen.insert(fi.name).second) throw Error(ErrorCode::bad_request, "metadata lists file '" + fi.name + "' twice");
    auto size = f.find("size");
    if (size == f.end() || !size->is_number_integer() || (!size->is_number_unsigned() && size->get<std::int64_t>() < 0))
      throw Error(ErrorCode::bad_request, "file '" + fi.name + "' lacks a non-negative integer 'size'");
    fi.size = size->is_number_unsigned() ? size->get<std::uint64_t>() : static_cast<std::uint64_t>(size->get<std::int64_t>());
    fi.sha256 = str_field(f, "sha256", true);
    if (!is_sha256_hex(fi.sha256))
      throw Error(ErrorCode::bad_request, "file '" + fi.name + "' has a sha256 that is not 64 lowercase hex digits");
    fi.local_path = str_field(f, "local_path", false);
    if (!fi.local_path.empty() &&
        (fi.local_path[0] != '/' || fi.local_path.size() > 4096 || fi.local_path.find('\0') != std::string::npos))
      throw Error(ErrorCode::bad_request, "file '" + fi.name + "' has a local_path that is not an absolute path");
    m.files.push_back(std::move(fi));
  }
  return m;
}

nlohmann::json ModelSummary::to_json() const {
  return {{"name", name}, {"versions", versions}, {"description", description}};
}

ModelSummary ModelSummary::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error(ErrorCode::bad_request, "model summary is not a map");
  ModelSummary s;
  s.name = str_field(j, "name", true);
  if (auto why = check_model_name(s.name)) throw Error(ErrorCode::bad_request, *why);
  s.description = str_field(j, "description", false);
  if (auto it = j.find("versions"); it != j.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) s.versions.push_back(v.get<std::string>());
  return s;
}

}  // namespace modelzoo::bus
