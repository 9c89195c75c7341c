// modelzoo-pull-bench: what pulling one large model costs, next to `cp` of the same file on
// the same filesystem measured in the same run (the machine is small and noisy, so only the
// ratio means much). Not a test: it prints a table and a final JSON line and exits 0 unless
// something broke (1) or the command line is wrong (2). See bench/README.md.
//
//   1. A model tree <tmp>/root/bench/big/1.0.0/weights.bin of N bytes of pseudo-random data
//      (1 GiB; 256 MiB with --quick), written and fsync'ed.
//   2. Baseline: /bin/cp of that file to a new file in the same directory tree, then fsync of
//      the copy and its directory. Three times, median.
//   3. modelzoo: modelzood with one `local-file` source on <tmp>/root and a fresh, empty cache
//      in <tmp>: a first `show` (the plugin hashes the file), then `pull` from request to
//      reply (the daemon verifies SHA-256 and fsyncs before replying). Three times, each with
//      a new daemon and a fresh cache, median.
//   4. Peak resident memory (VmHWM) of the daemon and of the plugin after each pull.
// Right before every timed copy or pull the previous one's output is removed, the source
// file is read once fully (page cache warm for both) and the filesystem is synced (syncfs),
// so both start alike. cp runs and pulls are
// interleaved, in alternating order, so that both see the same background noise.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/bus/message.h"
#include "modelzoo/client.h"

#include "bench_support.h"

namespace {

using namespace modelzoo::bench;
namespace fs = std::filesystem;
namespace bus = modelzoo::bus;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kModel = "bench/big";
constexpr const char* kVersion = "1.0.0";
constexpr const char* kFile = "weights.bin";
constexpr const char* kSource = "disk";
constexpr int kRuns = 3;                     // cp runs and pulls, each; the median is reported
constexpr std::size_t kBlock = 1u << 20;     // generation block
constexpr double kTargetRatio = 1.5;         // pull wall time <= 1.5 x cp
constexpr double kTargetRssMiB = 64.0;       // peak RSS of the daemon and of the plugin, each
constexpr milliseconds kShowTimeout{300000};  // the first show hashes the whole file
constexpr milliseconds kPullTimeout{1800000};

// --quick, --json, --bin-dir, --dir, --size-mib (bench_support.h); size_mib is set once parsed.
struct Options : CommonOptions {
  bool stream = false;      // local_read: [] -- the daemon streams the file instead of copying it
};

// ------------------------------------------------------------------ files

// Writes `bytes` of pseudo-random data to `p` in 1 MiB blocks and fsyncs it and its directory.
void generate(const fs::path& p, std::uint64_t bytes) {
  std::vector<std::uint64_t> block(kBlock / sizeof(std::uint64_t));
  SplitMix64 rng{std::random_device{}() ^ (static_cast<std::uint64_t>(std::random_device{}()) << 32)};
  Fd fd(p, O_WRONLY | O_CREAT | O_EXCL);
  for (std::uint64_t done = 0; done < bytes;) {
    check_interrupted();
    for (auto& w : block) w = rng.next();
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kBlock, bytes - done));
    write_all(fd.get(), block.data(), n, p);
    done += n;
  }
  fd.fsync();
  fsync_path(p.parent_path(), true);
}

// ------------------------------------------------------------------ the daemon
struct Daemon {
  fs::path dir, runtime, cache, data, config, log;
  pid_t pid = 0;
  pid_t plugin_pid = 0;
  fs::path plugin_exe;
  bool stream = false;  // withdraw the daemon's trust in the root: no local copy

  // A new daemon with a fresh cache and data dir in `d` and its sockets in `run_dir`,
  // serving `root`.
  void start(const fs::path& exe, const fs::path& plugin, const fs::path& d, const fs::path& run_dir,
             const fs::path& root) {
    dir = d;
    plugin_exe = plugin;
    runtime = run_dir;
    cache = d / "cache";
    data = d / "data";
    config = d / "modelzood.yaml";
    log = d / "modelzood.log";
    fs::create_directories(runtime);
    fs::create_directories(cache);
    fs::create_directories(data);
    // Paths as JSON strings: valid YAML double-quoted scalars, whatever --dir holds.
    auto q = [](const fs::path& p) { return json(p.string()).dump(); };
    std::string y = "# written by modelzoo-pull-bench\n";
    y.append("runtime_dir: ").append(q(runtime)).append("\n");
    y.append("cache_dir: ").append(q(cache)).append("\n");
    y.append("data_dir: ").append(q(data)).append("\n");
    y.append("plugin_dirs: []\n");
    y.append("log_level: info\n");
    y.append("sources:\n");
    y.append("  - name: ").append(kSource).append("\n");
    y.append("    plugin: local-file\n");
    y.append("    config: {root: ").append(q(root)).append("}\n");
    if (stream) y.append("    local_read: []\n");
    write_file(config, y);
    pid = spawn({exe.string(), "--config", config.string()}, log);
    wait_ready();
  }

  void check_alive() { check_daemon_alive(pid); }

  // Polls `plugins` until the source is ready, with a deadline; remembers the plugin's pid.
  void wait_ready() {
    plugin_pid = wait_source_ready(runtime, kSource, true, [this] { check_alive(); }).value("pid", 0);
  }

  // SIGTERM and wait; the daemon must exit 0.
  void stop() {
    auto st = stop_process(pid, SIGTERM, milliseconds(10000));
    pid = 0;
    if (!st) throw Failure("modelzood did not stop within 10 s of SIGTERM (killed)");
    if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
      throw Failure("modelzood stopped with " + describe_status(*st) + " after SIGTERM");
    plugin_pid = 0;
    log.clear();  // stopped cleanly: a later failure is not this daemon's
  }

  // After a failure: kill the daemon, and its plugin should it have outlived it (it has
  // PR_SET_PDEATHSIG too; checked by its executable so that a reused pid is left alone).
  void kill_all() {
    if (pid > 0) stop_process(pid, SIGKILL, milliseconds(5000));
    pid = 0;
    if (plugin_pid > 0) {
      std::error_code ec;
      auto exe = fs::read_symlink("/proc/" + std::to_string(plugin_pid) + "/exe", ec);
      if (!ec && fs::equivalent(exe, plugin_exe, ec)) ::kill(plugin_pid, SIGKILL);
      plugin_pid = 0;
    }
  }
  ~Daemon() { kill_all(); }
};

// ------------------------------------------------------------------ measurements
struct PullRun {
  double first_show_s = 0;    // first metadata: the plugin hashes the file
  double second_show_ms = 0;  // metadata again, hash cached
  double pull_s = 0;          // request -> reply
  double daemon_duration_ms = 0;  // the reply's duration_ms
  int progress_messages = 0;
  double daemon_cpu_s = 0, plugin_cpu_s = 0;  // during the pull
  double daemon_hwm_before_mib = 0;           // VmHWM before the pull
  double daemon_hwm_mib = 0, plugin_hwm_mib = 0;  // VmHWM after the pull
  double daemon_rss_mib = 0, plugin_rss_mib = 0;  // VmRSS after the pull
};

// /bin/cp src dst, then fsync of dst and of its directory; wall time in seconds.
double timed_cp(const fs::path& src, const fs::path& dst, const fs::path& log) {
  auto t0 = Clock::now();
  pid_t pid = spawn({"/bin/cp", src.string(), dst.string()}, log);
  auto st = wait_exit(pid, milliseconds(1800000));
  if (!st) {
    stop_process(pid, SIGKILL, milliseconds(5000));
    check_interrupted();
    throw Failure("/bin/cp did not finish within 30 min");
  }
  if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    check_interrupted();
    throw Failure("/bin/cp failed (" + describe_status(*st) + "):\n" + tail_of(log, 5));
  }
  fsync_path(dst, false);
  fsync_path(dst.parent_path(), true);
  return seconds_since(t0);
}

// `alike_start` runs right before the timed pull (see main).
PullRun timed_pull(Daemon& d, const fs::path& src, std::uint64_t size, const std::function<void()>& alike_start) {
  PullRun r;
  modelzoo::Client client(d.runtime.string());
  const json show_body = {{"model", kModel}};

  read_fully(src);
  auto t0 = Clock::now();
  json show = client.call("show", show_body, kShowTimeout);
  r.first_show_s = seconds_since(t0);
  t0 = Clock::now();
  client.call("show", show_body, kShowTimeout);
  r.second_show_ms = seconds_since(t0) * 1000.0;
  if (show.value("best", "") != kSource) throw Failure("show answered from an unexpected source: " + show.dump());
  const json& files = show.at("metadata").at("files");
  if (files.size() != 1 || files[0].value("size", std::uint64_t{0}) != size)
    throw Failure("show does not list one file of " + std::to_string(size) + " bytes: " + files.dump());
  const std::string sha = files[0].value("sha256", "");

  check_interrupted();
  d.check_alive();
  alike_start();
  r.daemon_hwm_before_mib = proc_status_mib(d.pid, "VmHWM");
  const double dcpu0 = cpu_seconds(d.pid), pcpu0 = cpu_seconds(d.plugin_pid);
  t0 = Clock::now();
  json reply = client.pull(kModel, [&](const json&) { ++r.progress_messages; }, kPullTimeout);
  r.pull_s = seconds_since(t0);
  r.daemon_cpu_s = cpu_seconds(d.pid) - dcpu0;
  r.plugin_cpu_s = cpu_seconds(d.plugin_pid) - pcpu0;
  r.daemon_hwm_mib = proc_status_mib(d.pid, "VmHWM");
  r.plugin_hwm_mib = proc_status_mib(d.plugin_pid, "VmHWM");
  r.daemon_rss_mib = proc_status_mib(d.pid, "VmRSS");
  r.plugin_rss_mib = proc_status_mib(d.plugin_pid, "VmRSS");
  r.daemon_duration_ms = reply.value("duration_ms", 0.0);

  // The pull really transferred the file, and what is in the cache is it.
  if (reply.value("cached", true)) throw Failure("the pull into an empty cache says `cached`: " + reply.dump());
  if (reply.value("bytes_downloaded", std::uint64_t{0}) < size)
    throw Failure("the pull downloaded fewer bytes than the file has: " + reply.dump());
  const json& got = reply.at("files");
  if (got.size() != 1 || got[0].value("sha256", "") != sha || got[0].value("size", std::uint64_t{0}) != size)
    throw Failure("the pull's reply does not match the metadata: " + reply.dump());
  std::error_code ec;
  auto on_disk = fs::file_size(got[0].value("path", ""), ec);
  if (ec || on_disk != size) throw Failure("the pulled file is not in the cache with its size: " + reply.dump());
  return r;
}

// ------------------------------------------------------------------ main
void usage(std::ostream& os) {
  os << "usage: modelzoo-pull-bench [--quick] [--stream] [--size-mib N] [--dir DIR] [--json] [--bin-dir DIR]\n"
        "  --stream       trust no local path: the plugin streams the file (the path of every remote source)\n"
        "  --quick        a 256 MiB model instead of 1 GiB (for CI)\n"
        "  --size-mib N   a model of N MiB (wins over --quick)\n"
        "  --dir DIR      where the temp dir (model tree, copies, caches) goes; default $TMPDIR or /tmp\n"
        "  --json         print only the final JSON line\n"
        "  --bin-dir DIR  where modelzood and modelzoo-plugin-local-file are (default: next to this program)\n";
}

int run(const Options& o) {
  const fs::path daemon_exe = o.bin_dir / "modelzood";
  const fs::path plugin_exe = o.bin_dir / "modelzoo-plugin-local-file";
  for (const auto& p : {daemon_exe, plugin_exe, fs::path("/bin/cp")})
    if (::access(p.c_str(), X_OK) != 0) throw Failure(p.string() + " is not an executable (use --bin-dir)");

  const std::uint64_t size = o.size_mib << 20;
  const double load_before = loadavg();
  const std::string started = utc_now();
  // Everything on one filesystem: the model tree, the copies and the caches. The sockets go
  // to a short path under $TMPDIR (a unix socket path has at most 107 bytes).
  TempDir tmp(o.dir.empty() ? fs::temp_directory_path() : o.dir, "mzpull");
  TempDir rt(fs::temp_directory_path(), "mzpull-run");
  // The source, a copy or a pulled blob (one at a time), and room to spare.
  const std::string fstype = check_temp_dir(tmp.path, 2 * size + (256u << 20));

  Daemon daemon;
  daemon.stream = o.stream;
  try {
    const fs::path root = tmp.path / "root";
    const fs::path src = root / kModel / kVersion / kFile;
    fs::create_directories(src.parent_path());
    fs::create_directories(tmp.path / "copies");

    note("generating " + std::to_string(o.size_mib) + " MiB of pseudo-random data in " + src.string());
    auto t0 = Clock::now();
    generate(src, size);
    const double gen_s = seconds_since(t0);
    read_fully(src);  // untimed, so that the timed read below is one from the page cache
    t0 = Clock::now();
    if (read_fully(src) != size) throw Failure(src.string() + " has the wrong size");
    const double warm_read_s = seconds_since(t0);

    std::vector<double> cp_s;
    double cp_warmup_s = 0;
    std::vector<PullRun> pulls;
    // Right before every timed copy and pull: the previous one's output (a copy, or a cache)
    // is removed, the source is read once (page cache warm), and the filesystem is synced.
    // Removing the output there, and not right after its run, gives both the same memory to
    // write into: pages freed a moment ago. On the VM measured, whose balloon reports free
    // pages to the host (which discards them ~2 s later), writing 1 GiB into the page cache
    // took 0.15-0.8 s right after 1 GiB was freed and 1.6-2.4 s a few seconds later, for cp
    // as for a plain pwrite loop; a pull, which starts a daemon and hashes the file first,
    // always came seconds after the removal, and a copy never did.
    fs::path leftover;
    auto alike_start = [&] {
      if (!leftover.empty()) remove_tree(leftover);
      leftover.clear();
      read_fully(src);
      sync_fs(tmp.path);
    };
    // k < 0: the untimed warm-up copy.
    auto do_cp = [&](int k) {
      check_interrupted();
      note(k < 0 ? std::string("  cp, warm-up (not counted)")
                 : "  cp " + std::to_string(k + 1) + "/" + std::to_string(kRuns));
      const fs::path dst = tmp.path / "copies" / ("weights-" + std::to_string(k + 1) + ".bin");
      alike_start();
      const double s = timed_cp(src, dst, tmp.path / "cp.log");
      (k < 0 ? cp_warmup_s : cp_s.emplace_back()) = s;
      std::error_code ec;
      auto copied = fs::file_size(dst, ec);
      if (ec || copied != size) throw Failure("the copy " + dst.string() + " has the wrong size");
      leftover = dst;
    };
    auto do_pull = [&](int k) {
      check_interrupted();
      note("  pull " + std::to_string(k + 1) + "/" + std::to_string(kRuns) + " (new modelzood, empty cache)");
      const fs::path d = tmp.path / ("daemon-" + std::to_string(k));
      const fs::path run_dir = rt.path / std::to_string(k);
      fs::create_directories(d);
      daemon.start(daemon_exe, plugin_exe, d, run_dir, root);
      pulls.push_back(timed_pull(daemon, src, size, alike_start));
      daemon.stop();
      leftover = daemon.cache;
    };
    // The first large write into a new temp dir is much slower than the later ones on the VM
    // measured (the first cp of 1 GiB took 1.7-4.1 x the median of the later ones in four
    // runs): one copy first, untimed, so that neither side pays for it.
    do_cp(-1);
    note("cp and pull, " + std::to_string(kRuns) + " each, interleaved");
    for (int k = 0; k < kRuns; ++k) {
      if (k % 2 == 0) {
        do_cp(k);
        do_pull(k);
      } else {
        do_pull(k);
        do_cp(k);
      }
    }
    const double load_after = loadavg();

    // ---------------------------------------------------------------- report
    const double mb = static_cast<double>(size) / 1e6;
    auto rate = [&](double s) { return s > 0 ? mb / s : 0.0; };
    std::vector<double> pull_s, show_s, show2_ms, dur_ms, dcpu, pcpu;
    double daemon_hwm = 0, plugin_hwm = 0, daemon_hwm_before = 0;
    for (const auto& p : pulls) {
      pull_s.push_back(p.pull_s);
      show_s.push_back(p.first_show_s);
      show2_ms.push_back(p.second_show_ms);
      dur_ms.push_back(p.daemon_duration_ms);
      dcpu.push_back(p.daemon_cpu_s);
      pcpu.push_back(p.plugin_cpu_s);
      daemon_hwm = std::max(daemon_hwm, p.daemon_hwm_mib);
      plugin_hwm = std::max(plugin_hwm, p.plugin_hwm_mib);
      daemon_hwm_before = std::max(daemon_hwm_before, p.daemon_hwm_before_mib);
    }
    const double cp_med = median(cp_s), pull_med = median(pull_s), show_med = median(show_s);
    const double ratio = cp_med > 0 ? pull_med / cp_med : 0.0;
    const bool ratio_met = ratio <= kTargetRatio;
    const bool daemon_rss_met = daemon_hwm <= kTargetRssMiB, plugin_rss_met = plugin_hwm <= kTargetRssMiB;
    auto rounded = [](const std::vector<double>& v, int digits) {
      json a = json::array();
      for (double x : v) a.push_back(round_to(x, digits));
      return a;
    };
    json runs = json::array();
    for (const auto& p : pulls)
      runs.push_back({{"first_show_s", round_to(p.first_show_s, 3)},
                      {"second_show_ms", round_to(p.second_show_ms, 2)},
                      {"pull_s", round_to(p.pull_s, 3)},
                      {"daemon_duration_ms", p.daemon_duration_ms},
                      {"progress_messages", p.progress_messages},
                      {"cpu_s", {{"modelzood", round_to(p.daemon_cpu_s, 2)}, {"plugin", round_to(p.plugin_cpu_s, 2)}}},
                      {"vmhwm_mib",
                       {{"modelzood_before_pull", round_to(p.daemon_hwm_before_mib, 1)},
                        {"modelzood", round_to(p.daemon_hwm_mib, 1)},
                        {"plugin", round_to(p.plugin_hwm_mib, 1)}}},
                      {"vmrss_after_mib",
                       {{"modelzood", round_to(p.daemon_rss_mib, 1)}, {"plugin", round_to(p.plugin_rss_mib, 1)}}}});
    json j = {
        {"bench", "modelzoo-pull-bench"},
        {"time", started},
        {"quick", o.quick},
        {"path", o.stream ? "stream" : "local copy"},
        {"cpus", std::thread::hardware_concurrency()},
        {"loadavg_1m", {load_before, load_after}},
        {"size_bytes", size},
        {"filesystem", fstype},
        {"runs", kRuns},
        {"generate", {{"s", round_to(gen_s, 3)}, {"mb_s", round_to(rate(gen_s), 1)}}},
        {"warm_read", {{"s", round_to(warm_read_s, 3)}, {"mb_s", round_to(rate(warm_read_s), 1)}}},
        {"cp",
         {{"runs_s", rounded(cp_s, 3)},
          {"median_s", round_to(cp_med, 3)},
          {"mb_s", round_to(rate(cp_med), 1)},
          {"warmup_s", round_to(cp_warmup_s, 3)}}},
        {"first_metadata",
         {{"runs_s", rounded(show_s, 3)}, {"median_s", round_to(show_med, 3)}, {"mb_s", round_to(rate(show_med), 1)}}},
        {"metadata_cached_ms", {{"runs", rounded(show2_ms, 2)}, {"median", round_to(median(show2_ms), 2)}}},
        {"pull",
         {{"runs_s", rounded(pull_s, 3)},
          {"median_s", round_to(pull_med, 3)},
          {"mb_s", round_to(rate(pull_med), 1)},
          {"daemon_duration_ms", dur_ms},
          {"cpu_s_median", {{"modelzood", round_to(median(dcpu), 2)}, {"plugin", round_to(median(pcpu), 2)}}},
          {"per_run", runs}}},
        {"ratio_pull_vs_cp", round_to(ratio, 3)},
        {"target_ratio", kTargetRatio},
        {"ratio_target_met", ratio_met},
        {"peak_rss_mib",
         {{"modelzood", round_to(daemon_hwm, 1)},
          {"plugin", round_to(plugin_hwm, 1)},
          {"modelzood_before_pull", round_to(daemon_hwm_before, 1)}}},
        {"target_rss_mib", kTargetRssMiB},
        {"rss_target_met", {{"modelzood", daemon_rss_met}, {"plugin", plugin_rss_met}}},
    };

    if (!o.json_only) {
      std::ostringstream t;
      auto met = [](bool b) { return b ? "met" : "MISSED"; };
      t << "modelzoo-pull-bench  " << started << "  " << o.size_mib << " MiB" << (o.quick ? " (--quick)" : "")
        << (o.stream ? "  --stream" : "  local copy")
        << "  cpus " << std::thread::hardware_concurrency() << "  load average (1 min) " << fmt(load_before, 2)
        << " before, " << fmt(load_after, 2) << " after\n";
      t << "  " << tmp.path.string() << " (" << fstype << "); MB = 10^6 bytes; cp and pull interleaved, "
        << kRuns << " each, page cache warm, syncfs before each\n\n";
      char buf[256];
      std::string runs_hdr;
      for (int k = 0; k < kRuns; ++k) {
        std::snprintf(buf, sizeof buf, " %9s", std::string("run ").append(std::to_string(k + 1)).c_str());
        runs_hdr += buf;
      }
      std::snprintf(buf, sizeof buf, "  %-44s%s %9s %9s\n", "(seconds)", runs_hdr.c_str(), "median", "MB/s");
      t << buf;
      auto row = [&](const std::string& label, const std::vector<double>& v, double med, bool with_rate, int prec) {
        std::string cells;
        for (double x : v) {
          std::snprintf(buf, sizeof buf, " %9s", fmt(x, prec).c_str());
          cells += buf;
        }
        std::snprintf(buf, sizeof buf, "  %-44s%s %9s %9s\n", label.c_str(), cells.c_str(), fmt(med, prec).c_str(),
                      with_rate ? fmt(rate(med), 0).c_str() : "");
        t << buf;
      };
      row("cp + fsync (baseline)", cp_s, cp_med, true, 3);
      row("pull, request -> reply", pull_s, pull_med, true, 3);
      row("  the daemon's duration_ms / 1000", [&] {
        std::vector<double> v;
        for (double x : dur_ms) v.push_back(x / 1000.0);
        return v;
      }(), median(dur_ms) / 1000.0, false, 3);
      row("first metadata (plugin hashes the file)", show_s, show_med, true, 3);
      row("metadata again, hash cached (ms)", show2_ms, median(show2_ms), false, 2);
      row("CPU of modelzood during the pull", dcpu, median(dcpu), false, 2);
      row("CPU of the plugin during the pull", pcpu, median(pcpu), false, 2);
      t << "  (once) generate + fsync " << fmt(gen_s, 3) << " s (" << fmt(rate(gen_s), 0)
        << " MB/s); read from page cache " << fmt(warm_read_s, 3) << " s (" << fmt(rate(warm_read_s), 0)
        << " MB/s); warm-up cp + fsync, not counted, " << fmt(cp_warmup_s, 3) << " s\n\n";
      t << "  pull / cp (median): " << fmt(ratio, 2) << "   target <= " << fmt(kTargetRatio, 2) << ": "
        << met(ratio_met) << "\n";
      t << "  peak RSS (VmHWM, max over the " << kRuns << " daemons): modelzood " << fmt(daemon_hwm, 1)
        << " MiB (" << fmt(daemon_hwm_before, 1) << " before the pull), plugin " << fmt(plugin_hwm, 1)
        << " MiB   target <= " << fmt(kTargetRssMiB, 0) << " MiB each: " << met(daemon_rss_met) << " / "
        << met(plugin_rss_met) << "\n\n";
      std::cout << t.str();
    }
    std::cout << j.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::string why = e.what();
    try {
      daemon.check_alive();  // "cannot reach the daemon" because it died: say so
    } catch (const Failure& f) {
      why = std::string(f.what()).append(": ").append(why);
    }
    print_failure("modelzoo-pull-bench", why);
    daemon.kill_all();
    // Keep the daemon's log: the temp dir goes away with us.
    if (!interrupted() && !daemon.log.empty() && fs::exists(daemon.log))
      keep_daemon_log("modelzoo-pull-bench", daemon.log);
    throw Reported{};
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  auto stream = [&](const std::string& a) {
    if (a != "--stream") return false;
    o.stream = true;
    return true;
  };
  if (auto rc = parse_options(argc, argv, "modelzoo-pull-bench", kBinDirOption | kDirOption | kSizeMibOption, usage, o,
                              stream))
    return *rc;
  if (o.size_mib == 0) o.size_mib = o.quick ? 256 : 1024;
  return run_bench("modelzoo-pull-bench", o.json_only, [&] { return run(o); });
}
