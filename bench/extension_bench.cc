// modelzoo-extension-bench: what the built-in extensions' work costs, each next to a baseline
// measured in the same run (the machine is small and noisy, so only the ratios mean much). Not a
// test: it prints a table and a final JSON line and exits 0 unless something broke (1) or the
// command line is wrong (2). See bench/README.md.
//
//   1. Format validation: formats::check_file on a valid safetensors file and a valid GGUF file
//      of N bytes of tensor data each (1 GiB; 64 MiB with --quick), against SHA-256 of the same
//      file (what every pull already does). Also the bytes the check read (FileReader).
//   2. Decryption: codec::decrypt_file of the safetensors file encrypted once with
//      encrypt_file, against a copy of the encrypted file (read/write in 1 MiB blocks to a
//      temporary file, fsync, rename, fsync of the directory: what decrypt_file does with its
//      output, minus the decryption).
//   3. Decompression: codec::decompress_file of the safetensors file compressed once with
//      compress_file (level 3), against the same copy of the plain file (the size it writes).
//   4. Peak RSS (getrusage ru_maxrss) before and after the decrypt and decompress runs.
// The tensor data is float32: a smooth function plus noise, so it compresses like real weights
// (a little), not like zeros or random bytes. Every file is written for real and fsynced; the
// page cache is left warm (nothing is dropped: that needs root). Before every timed run the input
// is read once fully and the filesystem synced (syncfs), so all runs start alike; operation and
// baseline alternate in alternating order so that both see the same background noise.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <numbers>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/sha256.h"
#include "modelzoo/codec/crypt.h"
#include "modelzoo/codec/zstd.h"
#include "modelzoo/formats/formats.h"

#include "bench_support.h"

namespace {

using namespace modelzoo::bench;
namespace fs = std::filesystem;
namespace codec = modelzoo::codec;
namespace formats = modelzoo::formats;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr const char* kProg = "modelzoo-extension-bench";
constexpr std::size_t kBlock = 1u << 20;             // generation, hashing and copy block
constexpr std::uint64_t kTensorBytes = 16u << 20;    // tensors of up to 16 MiB: [rows, 1024] F32
constexpr std::uint64_t kColumns = 1024;
constexpr int kZstdLevel = 3;
constexpr double kMiB = 1024.0 * 1024.0;

// --quick, --json, --dir, --size-mib (bench_support.h); size_mib is set once parsed.
struct Options : CommonOptions {
  int runs = 3;
};

// ------------------------------------------------------------------ files

std::uint64_t size_of(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  if (ec) throw Failure("cannot stat " + p.string() + ": " + ec.message());
  return n;
}

// SHA-256 of `p` in 1 MiB reads (lowercase hex).
std::string sha256_of(const fs::path& p) {
  std::vector<char> buf(kBlock);
  Fd fd(p, O_RDONLY);
  modelzoo::bus::Sha256 h;
  while (std::size_t n = read_some(fd.get(), buf, p)) {
    check_interrupted();
    h.update(buf.data(), n);
  }
  return h.hex_digest();
}

// The baseline of decrypt_file / decompress_file: the same output discipline with no transform.
// Copies `src` to a temporary file next to `dst` (O_EXCL) in 1 MiB read/write blocks, fsyncs and
// closes it, renames it over `dst` and fsyncs the directory. Returns the wall time.
double timed_copy(const fs::path& src, const fs::path& dst) {
  const fs::path tmp = dst.parent_path() / ("." + dst.filename().string() + ".tmp-copy");
  auto t0 = Clock::now();
  {
    std::vector<char> buf(kBlock);
    Fd in(src, O_RDONLY);
    Fd out(tmp, O_WRONLY | O_CREAT | O_EXCL, 0644);
    while (std::size_t n = read_some(in.get(), buf, src)) write_all(out.get(), buf.data(), n, tmp);
    out.fsync();
    out.close();
  }
  if (::rename(tmp.c_str(), dst.c_str()) != 0) throw Failure("rename " + tmp.string() + ": " + std::strerror(errno));
  fsync_path(dst.parent_path(), true);
  return seconds_since(t0);
}

// ------------------------------------------------------------------ test data

// float32 "weights": a smooth function of the position (a sine along each row, with an amplitude
// that varies slowly from row to row) plus uniform noise of 2% of full scale. The noise fills the
// low mantissa bits, so zstd finds only what it finds in real weights (a little: sign and
// exponent bits), neither the nothing of random bytes nor the everything of zeros.
class WeightGenerator {
 public:
  WeightGenerator() : wave_(kPeriod) {
    for (std::size_t i = 0; i < kPeriod; ++i)
      wave_[i] = static_cast<float>(std::sin(2.0 * std::numbers::pi * static_cast<double>(i) / kPeriod));
  }
  // The 1 MiB block number `k` of the data (deterministic: both model files get the same data).
  // The noise is splitmix64, seeded with the block number.
  void block(std::uint64_t k, std::vector<float>& out) {
    SplitMix64 rng{0x6d6f64656c7a6f6full ^ (k * 0x9E3779B97F4A7C15ull)};
    const std::uint64_t first = k * out.size();
    for (std::size_t i = 0; i < out.size(); i += 2) {
      const std::uint64_t r = rng.next();
      for (std::size_t h = 0; h < 2; ++h) {
        const std::uint64_t pos = first + i + h;
        const float amp = 0.5f + 0.45f * wave_[(pos / kColumns / 7) % kPeriod];
        const float smooth = amp * wave_[(pos * 3) % kPeriod];
        const auto bits = static_cast<std::uint32_t>(r >> (32 * h));
        const float noise = (static_cast<float>(bits) * (1.0f / 4294967296.0f) - 0.5f) * 0.04f;
        out[i + h] = smooth + noise;
      }
    }
  }

 private:
  static constexpr std::size_t kPeriod = 4096;
  std::vector<float> wave_;
};

// Writes `head`, then `data_bytes` (a multiple of 1 MiB) of generated weights, to a new file `p`;
// fsyncs it and its directory.
void write_model(const fs::path& p, const std::string& head, std::uint64_t data_bytes) {
  WeightGenerator gen;
  std::vector<float> block(kBlock / sizeof(float));
  Fd fd(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
  write_all(fd.get(), head.data(), head.size(), p);
  for (std::uint64_t k = 0; k < data_bytes / kBlock; ++k) {
    check_interrupted();
    gen.block(k, block);
    write_all(fd.get(), block.data(), kBlock, p);
  }
  fd.fsync();
  fd.close();
  fsync_path(p.parent_path(), true);
}

// The tensors: "layers.K.weight", F32 [rows, 1024], 16 MiB each (the last one smaller).
struct TensorSpec {
  std::string name;
  std::uint64_t rows;
  std::uint64_t bytes;
};
std::vector<TensorSpec> tensors_for(std::uint64_t data_bytes) {
  std::vector<TensorSpec> v;
  for (std::uint64_t off = 0; off < data_bytes; off += kTensorBytes) {
    const std::uint64_t bytes = std::min(kTensorBytes, data_bytes - off);
    v.push_back({"layers." + std::to_string(v.size()) + ".weight", bytes / (kColumns * 4), bytes});
  }
  return v;
}

// safetensors: u64 header length, JSON header padded with spaces to a multiple of 8, data.
std::string safetensors_head(const std::vector<TensorSpec>& tensors) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}, {"written_by", kProg}};
  std::uint64_t off = 0;
  for (const auto& t : tensors) {
    header[t.name] = {{"dtype", "F32"}, {"shape", {t.rows, kColumns}}, {"data_offsets", {off, off + t.bytes}}};
    off += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string head(8, '\0');
  for (int i = 0; i < 8; ++i) head[static_cast<std::size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return head + text;
}

void put_le(std::string& s, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_gguf_string(std::string& s, const std::string& v) {
  put_le(s, v.size(), 8);
  s += v;
}

// GGUF v3: header, three key/values (general.alignment 32), F32 tensor infos ([1024, rows], ne0
// first), zero padding to 32, data. Every tensor is a multiple of 1 MiB, so none needs padding.
std::string gguf_head(const std::vector<TensorSpec>& tensors) {
  std::string s = "GGUF";
  put_le(s, 3, 4);
  put_le(s, tensors.size(), 8);
  put_le(s, 3, 8);
  put_gguf_string(s, "general.architecture");
  put_le(s, 8, 4);  // STRING
  put_gguf_string(s, "llama");
  put_gguf_string(s, "general.name");
  put_le(s, 8, 4);
  put_gguf_string(s, kProg);
  put_gguf_string(s, "general.alignment");
  put_le(s, 4, 4);  // UINT32
  put_le(s, 32, 4);
  std::uint64_t off = 0;
  for (const auto& t : tensors) {
    put_gguf_string(s, t.name);
    put_le(s, 2, 4);
    put_le(s, kColumns, 8);
    put_le(s, t.rows, 8);
    put_le(s, 0, 4);  // F32
    put_le(s, off, 8);
    off += t.bytes;
  }
  s.append((32 - s.size() % 32) % 32, '\0');
  return s;
}

// ------------------------------------------------------------------ peak RSS

// ru_maxrss of this process, MiB.
double maxrss_mib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

// Resets the peak RSS to the current RSS (writing "5" to /proc/self/clear_refs, Linux >= 4.0),
// so that the next maxrss_mib() is the peak of what follows. Returns false if not possible.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
  f.flush();
  return static_cast<bool>(f);
}

struct RssWindow {
  bool reset = false;
  double before_mib = 0;  // ru_maxrss at the start (after the reset: the RSS then)
  double after_mib = 0;   // ru_maxrss at the end
};

// ------------------------------------------------------------------ measurements

struct Series {
  std::vector<double> runs_s;
  double median_s = 0;
  void finish() { median_s = median(runs_s); }
};

json series_json(const Series& s, std::uint64_t bytes, int digits = 4) {
  json a = json::array();
  for (double x : s.runs_s) a.push_back(round_to(x, digits));
  json j = {{"runs_s", a}, {"median_s", round_to(s.median_s, digits)}};
  if (bytes > 0) j["mib_s"] = round_to(s.median_s > 0 ? static_cast<double>(bytes) / kMiB / s.median_s : 0.0, 1);
  return j;
}

struct Validation {
  std::string format;
  fs::path file;
  std::uint64_t file_bytes = 0;
  std::uint64_t check_bytes_read = 0;
  Series check, hash;
  double generate_s = 0;
};

// check_file against SHA-256 of the file, `runs` times each, alternating which goes first.
void measure_validation(Validation& v, int runs) {
  // Untimed: the verdict (the file must be valid) and what the check reads, through the same
  // code check_file runs, with a FileReader we can ask.
  {
    formats::FileReader reader(v.file);
    if (auto bad = formats::check_reader(reader, v.format); bad)
      throw Failure("the generated " + v.format + " file is not valid: " + formats::describe(*bad));
    v.check_bytes_read = reader.bytes_read();
  }
  read_fully(v.file);
  auto check = [&] {
    auto t0 = Clock::now();
    auto bad = formats::check_file(v.file, v.format);
    const double s = seconds_since(t0);
    if (bad) throw Failure("check_file says the " + v.format + " file is not valid: " + formats::describe(*bad));
    v.check.runs_s.push_back(s);
  };
  auto hash = [&] {
    read_fully(v.file);
    auto t0 = Clock::now();
    sha256_of(v.file);
    v.hash.runs_s.push_back(seconds_since(t0));
  };
  for (int k = 0; k < runs; ++k) {
    check_interrupted();
    if (k % 2 == 0) {
      check();
      hash();
    } else {
      hash();
      check();
    }
  }
  v.check.finish();
  v.hash.finish();
}

struct Transform {
  std::string name;  // "decrypt", "decompress"
  fs::path input;    // the encrypted / compressed file
  fs::path baseline_input;
  std::uint64_t input_bytes = 0, output_bytes = 0, baseline_bytes = 0;
  double prepare_s = 0;  // encrypt_file / compress_file, once
  Series op, base;
  RssWindow rss;
};

// `run_op(in, out)` against timed_copy(baseline_input, ...), `runs` times each, alternating
// which goes first. Every output is checked for size and removed; the last one of the operation
// is checked against `plain_sha` first.
template <typename Op>
void measure_transform(Transform& t, const fs::path& work, int runs, const std::string& plain_sha, Op run_op) {
  t.input_bytes = size_of(t.input);
  t.baseline_bytes = size_of(t.baseline_input);
  t.rss.reset = reset_peak_rss();
  t.rss.before_mib = maxrss_mib();
  auto op = [&](int k, bool last) {
    note("  " + t.name + " " + std::to_string(k + 1) + "/" + std::to_string(runs));
    const fs::path out = work / (t.name + "-" + std::to_string(k) + ".bin");
    read_fully(t.input);
    sync_fs(work);
    auto t0 = Clock::now();
    run_op(t.input, out);
    t.op.runs_s.push_back(seconds_since(t0));
    if (size_of(out) != t.output_bytes) throw Failure(t.name + " wrote " + out.string() + " with the wrong size");
    if (last && sha256_of(out) != plain_sha)
      throw Failure(t.name + " wrote " + out.string() + ", which differs from the original");
    remove_tree(out);
    sync_fs(work);
  };
  auto base = [&](int k) {
    note("  copy + fsync of " + t.baseline_input.filename().string() + " " + std::to_string(k + 1) + "/" +
         std::to_string(runs));
    const fs::path out = work / ("copy-" + std::to_string(k) + ".bin");
    read_fully(t.baseline_input);
    sync_fs(work);
    t.base.runs_s.push_back(timed_copy(t.baseline_input, out));
    if (size_of(out) != t.baseline_bytes) throw Failure("the copy " + out.string() + " has the wrong size");
    remove_tree(out);
    sync_fs(work);
  };
  for (int k = 0; k < runs; ++k) {
    check_interrupted();
    if (k % 2 == 0) {
      base(k);
      op(k, k == runs - 1);
    } else {
      op(k, k == runs - 1);
      base(k);
    }
  }
  t.rss.after_mib = maxrss_mib();
  t.op.finish();
  t.base.finish();
}

// ------------------------------------------------------------------ output

std::string human_time(double s) {
  if (s < 1e-3) return fmt(s * 1e6, 1) + " us";
  if (s < 1.0) return fmt(s * 1e3, 1) + " ms";
  return fmt(s, 3) + " s";
}

std::string mib(std::uint64_t bytes) { return fmt(static_cast<double>(bytes) / kMiB, 1) + " MiB"; }

double rate_mib_s(std::uint64_t bytes, double s) { return s > 0 ? static_cast<double>(bytes) / kMiB / s : 0.0; }

double ratio_of(double a, double b) { return b > 0 ? a / b : 0.0; }

// ------------------------------------------------------------------ main

void usage(std::ostream& os) {
  os << "usage: modelzoo-extension-bench [--quick] [--size-mib N] [--dir DIR] [--json]\n"
        "  --quick        64 MiB files and 1 run instead of 1 GiB and 3 (for CI)\n"
        "  --size-mib N   N MiB of tensor data per file (wins over --quick's size)\n"
        "  --dir DIR      where the temp dir (model files, outputs) goes; default $TMPDIR or /tmp\n"
        "  --json         print only the final JSON line\n";
}

int run(const Options& o) {
  const std::uint64_t data_bytes = o.size_mib << 20;
  const int runs = o.runs;
  const double load_before = loadavg();
  const std::string started = utc_now();
  const auto t_start = Clock::now();

  TempDir tmp(o.dir.empty() ? fs::temp_directory_path() : o.dir, "mzext");
  // At most three files of N bytes at a time (model, encrypted, an output), and room to spare.
  const std::string fstype = check_temp_dir(tmp.path, 3 * data_bytes + (256u << 20));

  const auto tensors = tensors_for(data_bytes);
  const fs::path st_file = tmp.path / "model.safetensors";
  const fs::path gguf_file = tmp.path / "model.gguf";
  const fs::path work = tmp.path / "out";
  fs::create_directories(work);

  // ---------------------------------------------------------------- 1. validation
  Validation st, gg;
  st.format = "safetensors";
  st.file = st_file;
  gg.format = "gguf";
  gg.file = gguf_file;
  for (Validation* v : {&st, &gg}) {
    note("writing " + v->file.string() + " (" + std::to_string(o.size_mib) + " MiB of float32 data), fsync");
    auto t0 = Clock::now();
    write_model(v->file, v->format == "gguf" ? gguf_head(tensors) : safetensors_head(tensors), data_bytes);
    v->generate_s = seconds_since(t0);
    v->file_bytes = size_of(v->file);
  }
  const std::string plain_sha = sha256_of(st_file);
  for (Validation* v : {&st, &gg}) {
    note("check_file vs SHA-256, " + v->format + ", " + std::to_string(runs) + " each");
    measure_validation(*v, runs);
  }
  remove_tree(gguf_file);  // room for the encrypted file and the outputs
  sync_fs(tmp.path);

  // ---------------------------------------------------------------- 2. decryption
  Transform dec, dez;
  dec.name = "decrypt";
  dez.name = "decompress";
  {
    std::vector<codec::Key> keys;
    keys.push_back(codec::generate_key());
    dec.input = tmp.path / "model.safetensors.enc";
    dec.baseline_input = dec.input;
    dec.output_bytes = st.file_bytes;
    note("encrypt_file (once)");
    read_fully(st_file);
    sync_fs(tmp.path);
    auto t0 = Clock::now();
    codec::encrypt_file(st_file, dec.input, keys.front());
    dec.prepare_s = seconds_since(t0);
    note("decrypt_file vs copy + fsync of the encrypted file, " + std::to_string(runs) + " each");
    measure_transform(dec, work, runs, plain_sha,
                      [&](const fs::path& in, const fs::path& out) { codec::decrypt_file(in, out, keys); });
    remove_tree(dec.input);
    sync_fs(tmp.path);
  }

  // ---------------------------------------------------------------- 3. decompression
  {
    dez.input = tmp.path / "model.safetensors.zst";
    dez.baseline_input = st_file;
    dez.output_bytes = st.file_bytes;
    note("compress_file, level " + std::to_string(kZstdLevel) + " (once)");
    read_fully(st_file);
    sync_fs(tmp.path);
    auto t0 = Clock::now();
    codec::compress_file(st_file, dez.input, kZstdLevel);
    dez.prepare_s = seconds_since(t0);
    note("decompress_file vs copy + fsync of the plain file, " + std::to_string(runs) + " each");
    measure_transform(dez, work, runs, plain_sha, [&](const fs::path& in, const fs::path& out) {
      codec::decompress_file(in, out, 2 * dez.output_bytes);
    });
    remove_tree(dez.input);
  }
  const double load_after = loadavg();
  const double total_s = seconds_since(t_start);

  // ---------------------------------------------------------------- report
  const double compression_ratio = ratio_of(static_cast<double>(st.file_bytes), static_cast<double>(dez.input_bytes));
  auto validation_json = [&](const Validation& v) {
    return json{{"file_bytes", v.file_bytes},
                {"generate_s", round_to(v.generate_s, 3)},
                {"check_bytes_read", v.check_bytes_read},
                {"check", series_json(v.check, 0, 7)},
                {"hash_sha256", series_json(v.hash, v.file_bytes)},
                {"ratio_check_vs_hash", ratio_of(v.check.median_s, v.hash.median_s)}};
  };
  auto transform_json = [&](const Transform& t, const std::string& baseline) {
    return json{{"input_bytes", t.input_bytes},
                {"output_bytes", t.output_bytes},
                {"runs", series_json(t.op, t.output_bytes)},
                {"baseline", baseline},
                {"baseline_bytes", t.baseline_bytes},
                {"baseline_runs", series_json(t.base, t.baseline_bytes)},
                {"ratio", round_to(ratio_of(t.op.median_s, t.base.median_s), 3)},
                {"peak_rss_mib",
                 {{"high_water_reset", t.rss.reset},
                  {"before", round_to(t.rss.before_mib, 1)},
                  {"after", round_to(t.rss.after_mib, 1)}}}};
  };
  json jdec = transform_json(dec, "copy of the encrypted file: read/write 1 MiB, fsync, rename, fsync dir");
  jdec["encrypt_s"] = round_to(dec.prepare_s, 3);
  json jdez = transform_json(dez, "copy of the plain file: read/write 1 MiB, fsync, rename, fsync dir");
  jdez["compress_s"] = round_to(dez.prepare_s, 3);
  jdez["zstd_level"] = kZstdLevel;
  jdez["compression_ratio"] = round_to(compression_ratio, 4);
  json j = {
      {"bench", kProg},
      {"time", started},
      {"quick", o.quick},
      {"cpus", std::thread::hardware_concurrency()},
      {"loadavg_1m", {load_before, load_after}},
      {"runs", runs},
      {"data_bytes", data_bytes},
      {"filesystem", fstype},
      {"page_cache", "warm"},
      {"total_s", round_to(total_s, 1)},
      {"validation", {{"safetensors", validation_json(st)}, {"gguf", validation_json(gg)}}},
      {"decrypt", jdec},
      {"decompress", jdez},
  };

  if (!o.json_only) {
    std::ostringstream t;
    t << kProg << "  " << started << "  " << o.size_mib << " MiB of tensor data" << (o.quick ? " (--quick)" : "")
      << "  cpus " << std::thread::hardware_concurrency() << "  load average (1 min) " << fmt(load_before, 2)
      << " before, " << fmt(load_after, 2) << " after\n";
    t << "  " << tmp.path.string() << " (" << fstype << "); warm page cache (nothing dropped); median of " << runs
      << (runs == 1 ? " run" : " runs") << ", operation and baseline interleaved; MiB = 2^20 bytes\n\n";
    char buf[512];
    const char* row_fmt = "  %-28s %11s %10s   %-34s %10s %9s %9s %10s\n";
    std::snprintf(buf, sizeof buf, row_fmt, "operation", "size", "median", "baseline", "median", "ratio", "MiB/s",
                  "base MiB/s");
    t << buf;
    for (const Validation* v : {&st, &gg}) {
      std::snprintf(buf, sizeof buf, row_fmt, ("check_file " + v->format).c_str(), mib(v->file_bytes).c_str(),
                    human_time(v->check.median_s).c_str(), "SHA-256 of the same file",
                    human_time(v->hash.median_s).c_str(), fmt(ratio_of(v->check.median_s, v->hash.median_s), 6).c_str(),
                    "-", fmt(rate_mib_s(v->file_bytes, v->hash.median_s), 0).c_str());
      t << buf;
    }
    for (const Transform* x : {&dec, &dez}) {
      const bool is_dec = x == &dec;
      std::snprintf(buf, sizeof buf, row_fmt, (x->name + "_file").c_str(), mib(x->output_bytes).c_str(),
                    human_time(x->op.median_s).c_str(),
                    is_dec ? "copy + fsync of the .enc file" : "copy + fsync of the plain file",
                    human_time(x->base.median_s).c_str(), fmt(ratio_of(x->op.median_s, x->base.median_s), 3).c_str(),
                    fmt(rate_mib_s(x->output_bytes, x->op.median_s), 0).c_str(),
                    fmt(rate_mib_s(x->baseline_bytes, x->base.median_s), 0).c_str());
      t << buf;
    }
    t << "\n  bytes check_file read (FileReader::bytes_read): safetensors " << st.check_bytes_read << " of "
      << st.file_bytes << ", gguf " << gg.check_bytes_read << " of " << gg.file_bytes << "\n";
    t << "  once: write + fsync safetensors " << fmt(st.generate_s, 3) << " s, gguf " << fmt(gg.generate_s, 3)
      << " s; encrypt_file " << fmt(dec.prepare_s, 3) << " s (" << mib(dec.input_bytes) << " out); compress_file (zstd "
      << kZstdLevel << ") " << fmt(dez.prepare_s, 3) << " s, " << mib(dez.input_bytes) << " out, compression ratio "
      << fmt(compression_ratio, 3) << "\n";
    for (const Transform* x : {&dec, &dez}) {
      t << "  peak RSS (ru_maxrss) during " << x->name << "_file: " << fmt(x->rss.before_mib, 1) << " MiB before, "
        << fmt(x->rss.after_mib, 1) << " MiB after"
        << (x->rss.reset ? " (high-water mark reset before)" : " (high-water mark could not be reset)") << "\n";
    }
    t << "  total " << fmt(total_s, 1) << " s\n\n";
    std::cout << t.str();
  }
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (auto rc = parse_options(argc, argv, kProg, kDirOption | kSizeMibOption, usage, o)) return *rc;
  if (o.quick) o.runs = 1;
  if (o.size_mib == 0) o.size_mib = o.quick ? 64 : 1024;
  return run_bench(kProg, o.json_only, [&] { return run(o); });
}
