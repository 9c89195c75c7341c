// Models published zstd-compressed, files named *.zst. Same atomic-output rule as crypt.h: the
// output is written to a temporary file in its directory, fsynced and renamed into place only
// after full success; on failure nothing is left behind and CodecError (crypt.h) is thrown.
// Memory stays bounded: 2 MiB of output buffers, a few hundred KiB of others, plus the decoder's
// window, which is capped at 128 MiB (frames needing more, e.g. made with `zstd --long=28` or
// above, are refused).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>

#include "modelzoo/codec/crypt.h"  // CodecError

namespace modelzoo::codec {

inline constexpr std::string_view kZstdSuffix = ".zst";

// Streaming decompression (ZSTD_decompressStream) of one or more concatenated zstd frames
// (skippable frames are skipped), on two threads: the caller's decodes (libzstd 1.5 decodes on
// the calling thread only: its workers, ZSTD_c_nbWorkers, are for compression) into 256 KiB
// buffers, and a thread of its own writes them to the output meanwhile (8 buffers in
// circulation). Throws CodecError naming `in` and the problem:
//   - "empty file: not a zstd stream" (an empty file is not a valid zstd stream, by decision:
//     an empty model file compresses to a frame of a few bytes, so an empty .zst is a broken upload);
//   - "not a zstd file (bad magic)"; "data after the last zstd frame is not a zstd frame";
//   - "corrupt zstd data near input offset N: <ZSTD_getErrorName>" (checksums are verified when present);
//   - "truncated: the input ends inside a zstd frame";
//   - "decompressed data exceeds the limit of N bytes" when the output would be larger than
//     `max_output_bytes` (a decompression-bomb guard; 0 = no limit). Checked as data is decoded,
//     so at most the limit is ever written (and the limit plus one 256 KiB buffer held).
// A file cut exactly between two frames cannot be told from a shorter stream.
void decompress_file(const std::filesystem::path& in, const std::filesystem::path& out, std::uint64_t max_output_bytes);

// Compresses `in` into one zstd frame with a content checksum, at `level` (ZSTD_minCLevel() to
// ZSTD_maxCLevel(); 3 is zstd's default). For publishers and tests.
void compress_file(const std::filesystem::path& in, const std::filesystem::path& out, int level = 3);

}  // namespace modelzoo::codec
