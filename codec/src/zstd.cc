#include "modelzoo/codec/zstd.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <memory>
#include <string>
#include <vector>

#include "file_io.h"

namespace modelzoo::codec {

namespace fs = std::filesystem;
using detail::AtomicOutput;
using detail::fail;
using detail::InputFile;

namespace {

// The decoder's window is capped at 128 MiB (zstd's own default limit, set explicitly).
constexpr int kWindowLogMax = 27;

struct DCtxFree {
  void operator()(ZSTD_DCtx* ctx) const { ZSTD_freeDCtx(ctx); }
};
struct CCtxFree {
  void operator()(ZSTD_CCtx* ctx) const { ZSTD_freeCCtx(ctx); }
};

std::uint32_t read_le32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

bool zstd_magic(const unsigned char* p, std::size_t size) {
  if (size < 4) return false;
  const std::uint32_t magic = read_le32(p);
  return magic == ZSTD_MAGICNUMBER || (magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

// The message for an error returned by ZSTD_decompressStream; `offset` is where in the input
// the decoder had got to.
std::string describe(std::size_t code, std::uint64_t offset, bool after_a_frame) {
  switch (ZSTD_getErrorCode(code)) {
    case ZSTD_error_prefix_unknown:
      if (after_a_frame) {
        return "data after the last zstd frame is not a zstd frame (at input offset " + std::to_string(offset) + ")";
      }
      return "not a zstd file (bad magic)";
    case ZSTD_error_frameParameter_windowTooLarge:
      return "a zstd frame needs a window larger than 128 MiB (made with zstd --long=28 or above?); refused to bound "
             "memory use";
    default:
      return "corrupt zstd data near input offset " + std::to_string(offset) + ": " + ZSTD_getErrorName(code);
  }
}

}  // namespace

void decompress_file(const fs::path& in, const fs::path& out, std::uint64_t max_output_bytes) {
  InputFile input(in);
  std::vector<unsigned char> in_buf(ZSTD_DStreamInSize());
  std::vector<unsigned char> out_buf(ZSTD_DStreamOutSize());

  std::size_t in_size = input.read_full(in_buf.data(), in_buf.size());
  if (in_size == 0) fail(in, "empty file: not a zstd stream");
  if (!zstd_magic(in_buf.data(), in_size)) fail(in, "not a zstd file (bad magic)");

  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (!dctx) fail(in, "cannot allocate a zstd decompression context");
  const std::size_t set = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kWindowLogMax);
  if (ZSTD_isError(set)) fail(in, std::string("cannot configure zstd: ") + ZSTD_getErrorName(set));

  AtomicOutput output(out);
  std::uint64_t consumed = 0;     // input bytes before in_buf
  std::size_t pending = 1;        // ZSTD_decompressStream's last result: 0 = at a frame boundary
  bool completed_frame = false;   // at least one frame was decoded whole

  // Runs the decoder on `input_buffer` (empty: only flush), writes what it produces, and
  // returns the number of bytes produced.
  auto step = [&](ZSTD_inBuffer& input_buffer) -> std::size_t {
    ZSTD_outBuffer out_buffer{out_buf.data(), out_buf.size(), 0};
    const std::size_t ret = ZSTD_decompressStream(dctx.get(), &out_buffer, &input_buffer);
    if (ZSTD_isError(ret)) fail(in, describe(ret, consumed + input_buffer.pos, completed_frame));
    if (max_output_bytes != 0 && out_buffer.pos > max_output_bytes - output.bytes_written()) {
      fail(in, "decompressed data exceeds the limit of " + std::to_string(max_output_bytes) + " bytes");
    }
    output.write(out_buf.data(), out_buffer.pos);
    pending = ret;
    if (ret == 0) completed_frame = true;
    return out_buffer.pos;
  };

  while (in_size > 0) {
    ZSTD_inBuffer input_buffer{in_buf.data(), in_size, 0};
    while (input_buffer.pos < input_buffer.size) step(input_buffer);
    consumed += in_size;
    in_size = input.read_full(in_buf.data(), in_buf.size());
  }
  // The input is all consumed; the decoder may still hold output of the last frame.
  while (pending != 0) {
    ZSTD_inBuffer empty{nullptr, 0, 0};
    if (step(empty) == 0 && pending != 0) fail(in, "truncated: the input ends inside a zstd frame");
  }
  output.commit();
}

void compress_file(const fs::path& in, const fs::path& out, int level) {
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
    throw CodecError("zstd compression level " + std::to_string(level) + " is out of range (" +
                     std::to_string(ZSTD_minCLevel()) + " to " + std::to_string(ZSTD_maxCLevel()) + ")");
  }
  InputFile input(in);
  std::unique_ptr<ZSTD_CCtx, CCtxFree> cctx(ZSTD_createCCtx());
  if (!cctx) fail(in, "cannot allocate a zstd compression context");
  for (const auto& [param, value] : {std::pair{ZSTD_c_compressionLevel, level}, std::pair{ZSTD_c_checksumFlag, 1}}) {
    const std::size_t set = ZSTD_CCtx_setParameter(cctx.get(), param, value);
    if (ZSTD_isError(set)) fail(in, std::string("cannot configure zstd: ") + ZSTD_getErrorName(set));
  }

  AtomicOutput output(out);
  std::vector<unsigned char> in_buf(ZSTD_CStreamInSize());
  std::vector<unsigned char> out_buf(ZSTD_CStreamOutSize());
  for (;;) {
    const std::size_t n = input.read_full(in_buf.data(), in_buf.size());
    const bool last = n < in_buf.size();
    const ZSTD_EndDirective mode = last ? ZSTD_e_end : ZSTD_e_continue;
    ZSTD_inBuffer input_buffer{in_buf.data(), n, 0};
    bool done = false;
    while (!done) {
      ZSTD_outBuffer out_buffer{out_buf.data(), out_buf.size(), 0};
      const std::size_t remaining = ZSTD_compressStream2(cctx.get(), &out_buffer, &input_buffer, mode);
      if (ZSTD_isError(remaining)) fail(in, std::string("zstd compression failed: ") + ZSTD_getErrorName(remaining));
      output.write(out_buf.data(), out_buffer.pos);
      // With ZSTD_e_end the frame is complete when nothing remains to flush; otherwise go on
      // as soon as this input is consumed.
      done = last ? remaining == 0 : input_buffer.pos == input_buffer.size;
    }
    if (last) break;
  }
  output.commit();
}

}  // namespace modelzoo::codec
