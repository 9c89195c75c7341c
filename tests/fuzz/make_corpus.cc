// Writes the seed corpus of every fuzz target (tests/fuzz/corpus/<target>/seed-*): small valid
// and near-valid inputs made with the project's own encoders, so that the fuzzers start from
// inputs that reach deep into each decoder. Run by tests/fuzz/make_corpus.sh; the output is
// checked in (the fuzz runs never add to it: scripts/fuzz.sh works on a copy).
//   modelzoo-fuzz-make-corpus OUTDIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fuzz_key.h"
#include "fuzz_util.h"
#include "model_files.h"
#include "modelzoo/bus/message.h"
#include "modelzoo/codec/secret.h"
#include "modelzoo/codec/zstd.h"

namespace fs = std::filesystem;
namespace bus = modelzoo::bus;
namespace codec = modelzoo::codec;
namespace mt = modelzoo::testing;
using modelzoo::fuzz::join_parts;
using nlohmann::json;

namespace {

fs::path out_dir;
std::map<std::string, int> counts;

void seed(const std::string& target, const std::string& bytes) {
  if (bytes.size() > 64 * 1024) return;  // keep the corpus small
  fs::path dir = out_dir / target;
  fs::create_directories(dir);
  char name[32];
  std::snprintf(name, sizeof name, "seed-%03d", counts[target]++);
  mt::write_file(dir / name, bytes);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

const json kMetadata = {{"name", "org/model"},
                        {"version", "1.2.3-rc.1+b5"},
                        {"description", "d"},
                        {"format", "safetensors"},
                        {"tags", {"a", "b"}},
                        {"files",
                         {{{"name", "model.safetensors"}, {"size", 12}, {"sha256", std::string(64, 'a')}},
                          {{"name", "sub/dir/w.bin"},
                           {"size", 0},
                           {"sha256", std::string(64, '0')},
                           {"local_path", "/srv/models/w.bin"}}}}};

void envelope_seeds() {
  std::vector<bus::Message> ms;
  ms.push_back(bus::Message::make(bus::MessageType::hello,
                                  {{"name", "local"}, {"plugin_id", "p1"}, {"token", "t0k"}, {"kind", "registry"},
                                   {"protocol", 1}, {"pid", 1234}, {"priority", -3}}));
  ms.push_back(bus::Message::make(bus::MessageType::welcome, {{"heartbeat_ms", 1000}, {"heartbeat_liveness", 3}}));
  ms.push_back(bus::Message::make_request(7, "metadata", {{"name", "org/model"}, {"version", "1.0.0"}}, 30000));
  ms.push_back(bus::Message::make_request(8, "pull", {{"model", "org/model:1.0.0"}}, 1000));
  ms.push_back(bus::Message::make_reply(7, kMetadata));
  ms.push_back(bus::Message::make_reply(9, {{"metadata", kMetadata}}));
  ms.push_back(bus::Message::make_reply(
      10, {{"models", {{{"name", "a/b"}, {"versions", {"1.0.0", "2.0.0-beta"}}, {"description", "x"}}}}}));
  ms.push_back(bus::Message::make_error(11, bus::ErrorCode::not_found, "no such model"));
  auto rej = bus::Message::make(bus::MessageType::reject);
  rej.error_code = bus::ErrorCode::unauthorized;
  rej.error_message = "bad token";
  ms.push_back(std::move(rej));
  auto credit = bus::Message::make(bus::MessageType::credit, {{"chunks", 8}});
  credit.id = 12;
  ms.push_back(std::move(credit));
  auto cancel = bus::Message::make(bus::MessageType::cancel);
  cancel.id = 13;
  ms.push_back(std::move(cancel));
  auto progress = bus::Message::make(bus::MessageType::progress, {{"offset", 4096}, {"size", 1.5}, {"bin", json::binary({1, 2, 3})}});
  progress.id = 14;
  ms.push_back(std::move(progress));
  ms.push_back(bus::Message::make(bus::MessageType::heartbeat));
  ms.push_back(bus::Message::make(bus::MessageType::goodbye, {{"reason", "stopping"}}));
  for (const auto& m : ms) seed("fuzz_envelope", join_parts({bus::encode_envelope(m)}, 3));
  auto chunk = bus::Message::make(bus::MessageType::chunk, {{"offset", 0}});
  chunk.id = 15;
  seed("fuzz_envelope", join_parts({bus::encode_envelope(chunk), "0123456789abcdef"}, 3));
  seed("fuzz_envelope", join_parts({bus::encode_envelope(chunk), "data", "extra"}, 3));
  // near-valid: a truncated envelope, a duplicate key, nesting
  std::string env = bus::encode_envelope(ms[2]);
  seed("fuzz_envelope", join_parts({env.substr(0, env.size() - 3)}, 3));
  seed("fuzz_envelope", join_parts({std::string("\x82\xa4type\xa5hello\xa4type\xa5hello", 24)}, 3));
  seed("fuzz_envelope", join_parts({bus::to_msgpack({{"type", "reply"}, {"id", 1}, {"body", {{"a", {{"b", {{"c", {1, {2, {3}}}}}}}}}}})}, 3));
}

void names_seeds() {
  seed("fuzz_names", join_parts({"org/model-1.0_b", "1.2.3-alpha.1+build.5", "1.2.3"}, 3));
  seed("fuzz_names", join_parts({"org/*", "org/model", "1.0.0-rc.1"}, 3));
  seed("fuzz_names", join_parts({"org/model:2.0.0", "local-file", "a/b/c.safetensors"}, 3));
  seed("fuzz_names", join_parts({"../x", "1.0.0-0.3.7", "1.0.0-x.7.z.92"}, 3));
  seed("fuzz_names", join_parts({"a/./b", "*/?odel*", "1.0.0-alpha.beta"}, 3));
}

void config_seeds() {
  seed("fuzz_manifest", "name: my-registry\nversion: 1.0.0\nkind: registry\nprotocol: \">=1, <3\"\ncommand: [./run.sh, --flag]\n"
                        "priority: 5\nhandles: [\"org/*\"]\nrestart: {policy: on-failure, max_failures: 3}\nconfig: {url: \"http://x\"}\n");
  seed("fuzz_manifest", "name: ext\nkind: extension\nprotocol: [1]\ncommand: [\"/usr/bin/python3\", \"ext.py\"]\norder: -5\n"
                        "points: [post-download]\nformats: [GGUF, onnx]\nhook_timeout_ms: 1000\n");
  seed("fuzz_manifest", "name: x\ncommand: run\nprotocol: 1\n");
  seed("fuzz_manifest", "name: &a x\ncommand: [*a]\nconfig: {a: [1, 2.5, -3, true, null, ~, \"s\", 'q']}\n");
  seed("fuzz_manifest", "{name: bad name, command: []}\n");
  const std::string cfg =
      "runtime_dir: /tmp/mz-run\ncache_dir: ${data_dir}/cache\nheartbeat_interval_ms: 500\noffline: 1\nlog_level: debug\n"
      "restart: {policy: always, backoff_initial_ms: 10}\npartial_retention_hours: 2\n"
      "sources:\n"
      "  - name: local\n    plugin: local-file\n    priority: 10\n    config: {root: \"${data_dir}/models\"}\n"
      "  - name: mem\n    plugin: memory\n    handles: [\"demo/*\"]\n    config: {models: [{name: demo/tiny, version: 1.0.0}]}\n"
      "  - name: custom\n    command: [/bin/true]\n    kind: extension\n    order: 3\n    points: [pre-load]\n"
      "  - name: off\n    plugin: memory\n    enabled: false\n"
      "  - name: remote\n    plugin: remote\n    local_read: [/srv]\n    config: {url: \"https://r\", auth: {kind: bearer, token: \"enc:v1:0011223344556677:AAAA\"}}\n";
  seed("fuzz_config", cfg);
  seed("fuzz_config", cfg + "\n#ENV\nMODELZOO_OFFLINE=true\nMODELZOO_SOURCE_LOCAL_PRIORITY=7\nMODELZOO_SOURCE_MEM_CONFIG_MODELS=[]\n"
                            "MODELZOO_RESTART_MAX_FAILURES=2\nSOURCE_REMOTE_CONFIG_URL={a: b}\n");
  seed("fuzz_config", "sources: []\n#ENV\nMODELZOO_LOG_LEVEL=[a\n");
  seed("fuzz_config", "a: &x [1, 2]\nb: [*x, *x]\n");
  seed("fuzz_config", "");
}

void http_seeds() {
  auto ctl = [](bool stream, std::uint64_t offset, const std::string& etag) {
    std::string c(1, static_cast<char>((stream ? 1 : 0) | (5 << 2)));
    for (int i = 0; i < 8; ++i) c += static_cast<char>(offset >> (8 * i));
    return c + etag;
  };
  seed("fuzz_http_response",
       join_parts({ctl(true, 100, "\"v1\""),
                   "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-199/200\r\nETag: \"v1\"\r\n\r\n",
                   std::string(100, 'x'), "Wed, 21 Oct 2015 07:28:00 GMT"}, 4));
  seed("fuzz_http_response",
       join_parts({ctl(true, 10, ""), "HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n", std::string(40, 'y'), "120"}, 4));
  seed("fuzz_http_response",
       join_parts({ctl(true, 200, ""), "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */200\r\n\r\n", "",
                   "https://user:pw@host/p?token=abc&x=1&sig2=z#frag"}, 4));
  seed("fuzz_http_response",
       join_parts({ctl(false, 0, ""), "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\n\r\n",
                   "{\"error\": {\"code\": \"unavailable\", \"message\": \"busy\"}}", "Authorization: Bearer abc"}, 4));
  seed("fuzz_http_response",
       join_parts({ctl(false, 0, ""), "HTTP/2 200\r\ncontent-type: application/json\r\n\r\n", "{\"models\": []}",
                   "X-Api-Key:  k3y  "}, 4));
  seed("fuzz_registry_json", json{{"models", {{{"name", "org/a"}, {"versions", {"1.0.0", "0.9.0", "x"}}}, {{"name", "../bad"}}}}}.dump());
  seed("fuzz_registry_json", json{{"name", "org/a"}, {"versions", {"1.0.0", "2.0.0-rc.1", "2.0.0", "1.10.0"}}}.dump());
  seed("fuzz_registry_json", kMetadata.dump());
  seed("fuzz_registry_json", "{\"error\": {\"code\": \"not_found\"}}");
}

void format_seeds() {
  seed("fuzz_safetensors", mt::valid_safetensors());
  seed("fuzz_gguf", mt::valid_gguf());
  seed("fuzz_onnx", mt::valid_onnx());
  seed("fuzz_onnx", mt::onnx_with_external_data("weights.bin", 0, 64));
  seed("fuzz_onnx", mt::onnx_with_external_data("sub/weights.bin", 16, 8));
  seed("fuzz_onnx", mt::onnx_with_external_data("../escape.bin", 0, 8));
  for (const auto& b : mt::broken_files()) seed("fuzz_" + b.format, b.bytes);
}

void codec_seeds(const fs::path& tmp) {
  auto key = modelzoo::fuzz::fixed_key();
  for (std::size_t n : {0, 1, 100, 5000}) {
    std::string plain;
    for (std::size_t i = 0; i < n; ++i) plain += static_cast<char>('a' + i % 7);
    mt::write_file(tmp / "plain", plain);
    codec::encrypt_file(tmp / "plain", tmp / "enc", key);
    seed("fuzz_encrypted", slurp(tmp / "enc"));
    codec::compress_file(tmp / "plain", tmp / "zst", n % 2 ? 1 : 19);
    seed("fuzz_zstd", slurp(tmp / "zst"));
  }
  std::string two = slurp(tmp / "zst");
  seed("fuzz_zstd", two + two);
  seed("fuzz_zstd", std::string("\x50\x2a\x4d\x18\x04\x00\x00\x00skip", 12) + two);  // a skippable frame first
  seed("fuzz_zstd", two.substr(0, two.size() / 2));
  std::string enc = slurp(tmp / "enc");
  seed("fuzz_encrypted", enc.substr(0, 70));
  std::string other = enc;
  other[10] ^= 1;  // another key id
  seed("fuzz_encrypted", other);
  codec::Key k2 = key;
  std::string key_file = "modelzoo-key-v1 QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=\n";
  for (const char* s : {"hunter2", "", "a longer secret with unicode \xc3\xa9"})
    seed("fuzz_secret", join_parts({codec::encrypt_secret(s, k2), key_file}, 2));
  seed("fuzz_secret", join_parts({"enc:v1:0011223344556677:AAAA", "modelzoo-key-v1 AAAA\n"}, 2));
  seed("fuzz_secret", join_parts({"enc:v2:x", key_file}, 2));
}

void cache_seeds() {
  json md = kMetadata;
  md["name"] = "org/m";
  md["version"] = "1.0.0";
  seed("fuzz_cache_manifest", json{{"metadata", md}, {"source", "local"}}.dump(2));
  seed("fuzz_cache_manifest",
       json{{"metadata", md}, {"source", "remote"}, {"derived", {{"source_files", {{{"name", "m.zst"}, {"sha256", std::string(64, 'b')}}}}, {"extensions", {"decompress"}}}}}.dump());
  seed("fuzz_cache_manifest", "{\"metadata\": {\"name\": \"org/m\"}}");
  md["name"] = "other/name";
  seed("fuzz_cache_manifest", json{{"metadata", md}, {"source", "local"}}.dump());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  out_dir = argv[1];
  fs::path tmp = fs::temp_directory_path() / ("modelzoo-make-corpus-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  envelope_seeds();
  names_seeds();
  config_seeds();
  http_seeds();
  format_seeds();
  codec_seeds(tmp);
  cache_seeds();
  fs::remove_all(tmp);
  for (const auto& [t, n] : counts) std::printf("%-22s %d seeds\n", t.c_str(), n);
  return 0;
}
