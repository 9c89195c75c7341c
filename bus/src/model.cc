#include "modelzoo/bus/model.h"

#include <optional>
#include <set>

#include "modelzoo/bus/message.h"
#include "modelzoo/bus/names.h"
#include "msgpack_value.h"

namespace modelzoo::bus {
namespace {

// The two forms metadata is read from, behind one interface, so that from_json() and
// from_msgpack() are one reader with one set of rules and messages.
struct JsonView {
  using Obj = nlohmann::json;
  static const Obj* find(const Obj& o, const char* key) {
    auto it = o.find(key);
    return it == o.end() ? nullptr : &*it;
  }
  static bool is_nil(const Obj& o) { return o.is_null(); }
  static bool is_map(const Obj& o) { return o.is_object(); }
  static bool is_array(const Obj& o) { return o.is_array(); }
  static bool is_str(const Obj& o) { return o.is_string(); }
  static std::string_view str(const Obj& o) { return o.get_ref<const std::string&>(); }
  static std::optional<std::uint64_t> non_negative(const Obj& o) {
    if (o.is_number_unsigned()) return o.get<std::uint64_t>();
    if (o.is_number_integer() && o.get<std::int64_t>() >= 0) return static_cast<std::uint64_t>(o.get<std::int64_t>());
    return std::nullopt;
  }
  static std::size_t size(const Obj& a) { return a.size(); }
  static const Obj& at(const Obj& a, std::size_t i) { return a[i]; }
};

struct MsgpackView {  // on a value unpack_checked() accepted
  using Obj = msgpack::object;
  static const Obj* find(const Obj& o, const char* key) { return detail::find_key(o, key); }
  static bool is_nil(const Obj& o) { return o.type == msgpack::type::NIL; }
  static bool is_map(const Obj& o) { return o.type == msgpack::type::MAP; }
  static bool is_array(const Obj& o) { return o.type == msgpack::type::ARRAY; }
  static bool is_str(const Obj& o) { return o.type == msgpack::type::STR; }
  static std::string_view str(const Obj& o) { return detail::as_string_view(o); }
  static std::optional<std::uint64_t> non_negative(const Obj& o) {
    if (o.type == msgpack::type::POSITIVE_INTEGER) return o.via.u64;
    return std::nullopt;  // msgpack-c reads every non-negative integer as POSITIVE_INTEGER
  }
  static std::size_t size(const Obj& a) { return a.via.array.size; }
  static const Obj& at(const Obj& a, std::size_t i) { return a.via.array.ptr[i]; }
};

template <class V>
std::string str_field(const typename V::Obj& j, const char* key, bool required) {
  const auto* v = V::find(j, key);
  if (!v || V::is_nil(*v)) {
    if (required) throw Error(ErrorCode::bad_request, std::string("metadata lacks '") + key + "'");
    return {};
  }
  if (!V::is_str(*v)) throw Error(ErrorCode::bad_request, std::string("metadata field '") + key + "' is not a string");
  return std::string(V::str(*v));
}

template <class V>
ModelMetadata read_metadata(const typename V::Obj& j) {
  if (!V::is_map(j)) throw Error(ErrorCode::bad_request, "metadata is not a map");
  ModelMetadata m;
  m.name = str_field<V>(j, "name", true);
  if (auto why = check_model_name(m.name)) throw Error(ErrorCode::bad_request, *why);
  m.version = str_field<V>(j, "version", true);
  if (auto why = check_version(m.version)) throw Error(ErrorCode::bad_request, *why);
  m.description = str_field<V>(j, "description", false);
  m.author = str_field<V>(j, "author", false);
  m.license = str_field<V>(j, "license", false);
  m.format = str_field<V>(j, "format", false);
  if (const auto* t = V::find(j, "tags"); t && !V::is_nil(*t)) {
    if (!V::is_array(*t)) throw Error(ErrorCode::bad_request, "metadata field 'tags' is not an array");
    m.tags.reserve(V::size(*t));
    for (std::size_t i = 0; i < V::size(*t); ++i) {
      if (!V::is_str(V::at(*t, i))) throw Error(ErrorCode::bad_request, "metadata tag is not a string");
      m.tags.emplace_back(V::str(V::at(*t, i)));
    }
  }
  const auto* files = V::find(j, "files");
  if (!files || !V::is_array(*files)) throw Error(ErrorCode::bad_request, "metadata lacks a 'files' array");
  const std::size_t n = V::size(*files);
  m.files.reserve(n);
  std::set<std::string> seen;  // past 16 files; fewer are compared one by one
  for (std::size_t i = 0; i < n; ++i) {
    const auto& f = V::at(*files, i);
    if (!V::is_map(f)) throw Error(ErrorCode::bad_request, "metadata file entry is not a map");
    FileInfo fi;
    fi.name = str_field<V>(f, "name", true);
    if (auto why = check_file_name(fi.name)) throw Error(ErrorCode::bad_request, *why);
    bool twice = false;
    if (n > 16) twice = !seen.insert(fi.name).second;
    else
      for (const auto& earlier : m.files) twice = twice || earlier.name == fi.name;
    if (twice) throw Error(ErrorCode::bad_request, "metadata lists file '" + fi.name + "' twice");
    const auto* size = V::find(f, "size");
    auto value = size ? V::non_negative(*size) : std::nullopt;
    if (!value) throw Error(ErrorCode::bad_request, "file '" + fi.name + "' lacks a non-negative integer 'size'");
    fi.size = *value;
    fi.sha256 = str_field<V>(f, "sha256", true);
    if (!is_sha256_hex(fi.sha256))
      throw Error(ErrorCode::bad_request, "file '" + fi.name + "' has a sha256 that is not 64 lowercase hex digits");
    fi.local_path = str_field<V>(f, "local_path", false);
    if (!fi.local_path.empty() &&
        (fi.local_path[0] != '/' || fi.local_path.size() > 4096 || fi.local_path.find('\0') != std::string::npos))
      throw Error(ErrorCode::bad_request, "file '" + fi.name + "' has a local_path that is not an absolute path");
    m.files.push_back(std::move(fi));
  }
  return m;
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

ModelMetadata ModelMetadata::from_json(const nlohmann::json& j) { return read_metadata<JsonView>(j); }

ModelMetadata ModelMetadata::from_msgpack(const void* data, std::size_t size) {
  msgpack::object_handle oh;
  try {
    oh = detail::unpack_checked(data, size);
  } catch (const ProtocolError& e) {
    throw Error(ErrorCode::bad_request, std::string("metadata is not valid msgpack: ") + e.what());
  }
  return read_metadata<MsgpackView>(oh.get());
}

void ModelMetadata::write_msgpack(MsgpackWriter& w) const {
  // The keys in to_json()'s order (nlohmann's objects are sorted by key).
  w.map(8);
  w.key("author");
  w.str(author);
  w.key("description");
  w.str(description);
  w.key("files");
  w.array(files.size());
  for (const auto& f : files) {
    w.map(f.local_path.empty() ? 3 : 4);
    if (!f.local_path.empty()) {
      w.key("local_path");
      w.str(f.local_path);
    }
    w.key("name");
    w.str(f.name);
    w.key("sha256");
    w.str(f.sha256);
    w.key("size");
    w.uint(f.size);
  }
  w.key("format");
  w.str(format);
  w.key("license");
  w.str(license);
  w.key("name");
  w.str(name);
  w.key("tags");
  w.array(tags.size());
  for (const auto& t : tags) w.str(t);
  w.key("version");
  w.str(version);
}

std::string ModelMetadata::to_msgpack() const {
  MsgpackWriter w;
  write_msgpack(w);
  return w.take();
}

nlohmann::json ModelSummary::to_json() const {
  return {{"name", name}, {"versions", versions}, {"description", description}};
}

ModelSummary ModelSummary::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw Error(ErrorCode::bad_request, "model summary is not a map");
  ModelSummary s;
  s.name = str_field<JsonView>(j, "name", true);
  if (auto why = check_model_name(s.name)) throw Error(ErrorCode::bad_request, *why);
  s.description = str_field<JsonView>(j, "description", false);
  if (auto it = j.find("versions"); it != j.end() && it->is_array())
    for (const auto& v : *it)
      if (v.is_string()) s.versions.push_back(v.get<std::string>());
  return s;
}

}  // namespace modelzoo::bus
