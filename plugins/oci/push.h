// Publishing a model as an OCI artifact (`modelzoo push`, docs/sources.md "OCI registries"):
// the ORAS-compatible layout -- an empty config (application/vnd.oci.empty.v1+json), the
// manifest's artifactType application/vnd.modelzoo.model.v1, one layer per file
// (application/vnd.oci.image.layer.v1.tar, as `oras push` gives files) titled with its name
// by org.opencontainers.image.title, so `oras pull` and the oci plugin both read it back.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/oci.h"

namespace modelzoo::plugins::oci {

// "oci://HOST[:PORT]/REPO[:TAG]" split; the scheme of the HTTP requests: http for --plain-http
// or a loopback host (127.0.0.1, localhost, [::1]), else https. Throws Error(bad_request).
struct PushTarget {
  std::string url;   // "http[s]://host[:port]"
  std::string repository;
  std::string tag;
};
PushTarget parse_push_target(const std::string& ref, const std::string& default_tag, bool plain_http);

struct PushFile {
  std::string name;
  std::uint64_t size = 0;
  std::string sha256;
  std::filesystem::path path;  // where its bytes are (the cache's blob)
};

struct PushProgress {
  std::string file;
  std::uint64_t bytes = 0, total_bytes = 0;
};

// Uploads every file not already there (HEAD first), the config, then PUTs the manifest.
// Blobs up to `chunk` bytes go in one PUT; larger ones in PATCHes of `chunk` bytes.
// Returns {"repository","tag","digest","url","blobs_uploaded","blobs_skipped","bytes_uploaded",
// "chunks_uploaded"} (chunks: the PATCH requests).
nlohmann::json push(Client& client, const PushTarget& target, const std::vector<PushFile>& files,
                    const std::function<void(const PushProgress&)>& on_progress = nullptr,
                    std::uint64_t chunk = 64u << 20);

// The manifest push() writes (exposed for the tests).
std::string artifact_manifest(const std::vector<PushFile>& files);

}  // namespace modelzoo::plugins::oci
