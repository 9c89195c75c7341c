#include "modelzoo/codec/zstd.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
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

// Writes decoded blocks to an AtomicOutput on a thread of its own, so that decoding (one core:
// libzstd 1.5 decodes a frame on the calling thread only; ZSTD_c_nbWorkers exists for
// compression alone) and the writes into the page cache run at once. `depth` buffers of
// `block` bytes circulate: the decoder fills one while the writer writes the others.
class PipelinedOutput {
 public:
  PipelinedOutput(AtomicOutput& out, std::size_t block, std::size_t depth) : out_(out), block_(block) {
    for (std::size_t i = 0; i < depth; ++i) free_.push_back(std::make_unique<unsigned char[]>(block));
    current_ = take_free();
    writer_ = std::thread([this] { run(); });
  }
  // Stops the writer; what it has not written yet is dropped (the output is discarded then).
  ~PipelinedOutput() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    writer_.join();
  }
  PipelinedOutput(const PipelinedOutput&) = delete;
  PipelinedOutput& operator=(const PipelinedOutput&) = delete;

  std::size_t block() const { return block_; }
  unsigned char* buffer() const { return current_.get(); }
  // Hands the current buffer's first `n` bytes to the writer and makes another one current;
  // waits while every buffer is queued. Rethrows the writer's error.
  void filled(std::size_t n) {
    std::unique_lock lk(mu_);
    queue_.push_back({std::move(current_), n});
    cv_.notify_all();
    cv_.wait(lk, [&] { return !free_.empty() || error_; });
    if (error_) std::rethrow_exception(error_);
    current_ = std::move(free_.back());
    free_.pop_back();
  }
  // Waits until everything handed over is written; rethrows the writer's error.
  void finish() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return (queue_.empty() && !writing_) || error_; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct Filled {
    std::unique_ptr<unsigned char[]> data;
    std::size_t size;
  };
  std::unique_ptr<unsigned char[]> take_free() {
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void run() {
    std::unique_lock lk(mu_);
    while (true) {
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_ || error_) return;
      Filled f = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      lk.unlock();
      std::exception_ptr error;
      try {
        out_.write(f.data.get(), f.size);
      } catch (...) {
        error = std::current_exception();
      }
      lk.lock();
      writing_ = false;
      free_.push_back(std::move(f.data));
      if (error) error_ = error;
      cv_.notify_all();
    }
  }

  AtomicOutput& out_;  // written by the writer thread only, until finish() has returned
  const std::size_t block_;
  std::unique_ptr<unsigned char[]> current_;  // the decoder's
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<unsigned char[]>> free_;  // guarded by mu_
  std::deque<Filled> queue_;                            // guarded by mu_
  bool writing_ = false, stop_ = false;                 // guarded by mu_
  std::exception_ptr error_;                            // guarded by mu_
  std::thread writer_;  // last: starts after everything it uses
};

// Decoded output per hand-over to the writer, and buffers in circulation (2 MiB in all:
// small enough to stay in cache between decoding and writing; 2 MiB x 4 measured slower).
constexpr std::size_t kOutputBlock = 256u << 10;
constexpr std::size_t kOutputBlocks = 8;

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

  std::size_t in_size = input.read_full(in_buf.data(), in_buf.size());
  if (in_size == 0) fail(in, "empty file: not a zstd stream");
  if (!zstd_magic(in_buf.data(), in_size)) fail(in, "not a zstd file (bad magic)");

  std::unique_ptr<ZSTD_DCtx, DCtxFree> dctx(ZSTD_createDCtx());
  if (!dctx) fail(in, "cannot allocate a zstd decompression context");
  const std::size_t set = ZSTD_DCtx_setParameter(dctx.get(), ZSTD_d_windowLogMax, kWindowLogMax);
  if (ZSTD_isError(set)) fail(in, std::string("cannot configure zstd: ") + ZSTD_getErrorName(set));

  AtomicOutput output(out);
  PipelinedOutput pipe(output, kOutputBlock, kOutputBlocks);
  std::uint64_t consumed = 0;     // input bytes before in_buf
  std::uint64_t produced = 0;     // output bytes decoded
  std::size_t fill = 0;           // bytes in pipe.buffer()
  std::size_t pending = 1;        // ZSTD_decompressStream's last result: 0 = at a frame boundary
  bool completed_frame = false;   // at least one frame was decoded whole

  // Runs the decoder on `input_buffer` (empty: only flush) into the current output buffer,
  // hands it to the writer when full, and returns the number of bytes produced.
  auto step = [&](ZSTD_inBuffer& input_buffer) -> std::size_t {
    ZSTD_outBuffer out_buffer{pipe.buffer(), pipe.block(), fill};
    const std::size_t ret = ZSTD_decompressStream(dctx.get(), &out_buffer, &input_buffer);
    if (ZSTD_isError(ret)) fail(in, describe(ret, consumed + input_buffer.pos, completed_frame));
    const std::size_t got = out_buffer.pos - fill;
    if (max_output_bytes != 0 && got > max_output_bytes - produced) {
      fail(in, "decompressed data exceeds the limit of " + std::to_string(max_output_bytes) + " bytes");
    }
    produced += got;
    fill = out_buffer.pos;
    if (fill == pipe.block()) {
      pipe.filled(fill);
      fill = 0;
    }
    pending = ret;
    if (ret == 0) completed_frame = true;
    return got;
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
  if (fill > 0) pipe.filled(fill);
  pipe.finish();
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
