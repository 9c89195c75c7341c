// Support code shared by the benchmark programs (modelzoo-bench, modelzoo-pull-bench,
// modelzoo-extension-bench): the command line, output helpers, /proc readings, child
// processes that never outlive the bench (even on a failure or ^C), temp dirs and files. Not a
// general library: single-threaded use by one bench process, which reports problems by
// throwing Failure.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace modelzoo::bench {

// Something broke (not "slow": the benches never judge speed).
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A failure already printed (with the daemon's log, if wanted).
struct Reported {};

// ------------------------------------------------------------------ command line
// The options the benches share. Every bench takes --quick, --json and -h/--help; --bin-dir,
// --dir and --size-mib only if it names them in parse_options().
struct CommonOptions {
  bool quick = false;                    // --quick
  bool json_only = false;                // --json
  std::filesystem::path bin_dir;         // --bin-dir DIR; self_dir() if not given
  std::filesystem::path dir;             // --dir DIR: where the temp dir goes ("": $TMPDIR or /tmp)
  std::uint64_t size_mib = 0;            // --size-mib N (1 to 2^24); 0 if not given
};
enum : unsigned { kBinDirOption = 1u, kDirOption = 2u, kSizeMibOption = 4u };

// Parses argv into `o`: the common options named in `accepted` (a value as "--name VALUE" or
// "--name=VALUE"), then whatever `extra(arg)` takes (returns true for). Returns the exit code
// when main should stop at once: 0 after --help (usage on stdout); 2 for a bad --size-mib, a
// --dir that is not a directory or an unknown argument ("<prog>: ..." on stderr, and usage
// for an unknown one). With --bin-dir accepted, an empty bin_dir becomes self_dir().
std::optional<int> parse_options(int argc, char** argv, const std::string& prog, unsigned accepted,
                                 void (*usage)(std::ostream&), CommonOptions& o,
                                 const std::function<bool(const std::string&)>& extra = {});

// ------------------------------------------------------------------ output
// --json: note() prints nothing, so that stdout has only the JSON line and stderr is quiet.
void set_quiet(bool quiet);
// One progress line on stderr, unless quiet.
void note(const std::string& s);
// `v` with `prec` digits after the point ("%.*f").
std::string fmt(double v, int prec = 1);
// `v` rounded to `digits` decimal digits (for the JSON line).
double round_to(double v, int digits);
// The median of `v` (mean of the middle two for an even count); 0 when empty.
double median(std::vector<double> v);
// Now, as "YYYY-MM-DDTHH:MM:SSZ".
std::string utc_now();
// The 1-minute load average: how busy the machine was (other work skews every figure); -1
// if unreadable.
double loadavg();
// The directory of this executable (/proc/self/exe), or the current directory.
std::filesystem::path self_dir();
// Seconds of steady_clock since `t0`.
double seconds_since(std::chrono::steady_clock::time_point t0);

// ------------------------------------------------------------------ test data
// splitmix64: a fast generator of 64-bit values, seeded with `s`. Its output neither
// compresses nor deduplicates.
struct SplitMix64 {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

// ------------------------------------------------------------------ /proc
// CPU time (user + system, all threads) used so far by `pid`, or by this process for pid 0.
// Other processes are read from /proc/PID/stat, in clock ticks (10 ms): only sums over
// whole seconds of work mean anything. 0 if the process is gone.
double cpu_seconds(pid_t pid);
// A "Vm...:  N kB" field of /proc/PID/status, in MiB. Throws Failure if there is none.
double proc_status_mib(pid_t pid, const std::string& field);

// ------------------------------------------------------------------ signals
// The body of main once the command line is parsed: set_quiet(quiet),
// install_signal_handlers(), then returns body()'s exit code; if it throws, prints
// "<prog>: <what>" (nothing more for Reported, already printed) and returns
// exit_after_failure().
int run_bench(const std::string& prog, bool quiet, const std::function<int()>& body);
// Installs the handler for SIGINT, SIGTERM and SIGHUP and ignores SIGPIPE. On the first
// such signal every tracked child is SIGKILLed at once and the signal is remembered, so
// that the bench fails its way out normally (check_interrupted) and its destructors remove
// the temp dirs; a second signal exits on the spot with 128 + signal.
void install_signal_handlers();
// Back to the default action for those signals (in a forked child that does not exec).
void reset_signal_handlers();
// The signal that interrupted the bench, or 0.
int interrupted();
// Throws Failure("interrupted by signal N") once a signal came.
void check_interrupted();
// Prints "<prog>: interrupted by signal N" if a signal came, else "<prog>: <why>", on stderr.
void print_failure(const std::string& prog, const std::string& why);
// The end of main after a failure: stops (SIGKILL) every child still tracked and returns
// the exit code, 128 + signal when interrupted, else 1.
int exit_after_failure();

// ------------------------------------------------------------------ child processes
// Every child started by spawn() (and any pid passed to track()) is tracked, up to 8 at a
// time, so that a failure or ^C never leaves one behind. wait_exit() and stop_process()
// untrack a child once it is reaped.
void track(pid_t pid);
void untrack(pid_t pid);
// In a forked child (no exec): forget the parent's children, which are not ours.
void forget_children();

// Waits at most `timeout` for `pid` to exit (polling every millisecond); returns its wait
// status, or nullopt on timeout (still tracked) or if it is not our child (untracked).
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout);
// Sends `sig`, waits up to `timeout`, then SIGKILLs and reaps. Returns the wait status if it
// exited by itself. No-op for pid <= 0.
std::optional<int> stop_process(pid_t pid, int sig, std::chrono::milliseconds timeout);
// "exit N", "signal N (name)" or "status N".
std::string describe_status(int status);

// The environment of the bench minus every MODELZOO_* variable (they would override the
// configuration we write), plus `extra` ("NAME=value").
std::vector<std::string> child_env(const std::vector<std::string>& extra = {});
// fork/exec of argv[0] (a path) with `env`, stdin from /dev/null and stdout+stderr appended
// to `log`. The child dies with the bench (PR_SET_PDEATHSIG), so even a crash of the bench
// leaves nothing running. Returns the tracked pid once exec succeeded; throws Failure if it
// did not.
pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            const std::filesystem::path& log);
// The same with child_env().
pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& log);

// ------------------------------------------------------------------ the daemon
// Throws Failure("modelzood exited unexpectedly (...)") if `pid` (the daemon) has exited,
// after reaping it and setting `pid` to 0. Nothing for pid <= 0.
void check_daemon_alive(pid_t& pid);
// Polls the daemon at `runtime` with `plugins` (every 5 ms, 15 s at most) until the source
// named `source` is in state `ready` (and, with `need_pid`, has a pid); returns its entry.
// Calls check_interrupted() and `check_alive` before each attempt; throws Failure on the
// deadline.
nlohmann::json wait_source_ready(const std::filesystem::path& runtime, const std::string& source, bool need_pid,
                                 const std::function<void()>& check_alive);
// After a failure: copies the daemon's `log` (whose temp dir goes away with the bench) to
// $TMPDIR/<prog>-<pid>-modelzood.log and prints where, and its last 20 lines, on stderr.
void keep_daemon_log(const std::string& prog, const std::filesystem::path& log);

// ------------------------------------------------------------------ files
// A new directory `parent`/`prefix`.XXXXXX, removed with everything in it on destruction.
struct TempDir {
  std::filesystem::path path;
  TempDir(const std::filesystem::path& parent, const char* prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// The filesystem type of `p` by name ("ext4", "xfs", "tmpfs", ...), else its magic number as
// "0x..."; "?" if statfs fails.
std::string fs_type(const std::filesystem::path& p);
// For a bench's temp dir `dir`: throws Failure unless its filesystem has `need` bytes free
// (suggesting --dir or --size-mib), notes "temp dir DIR (TYPE)" (with a warning on tmpfs,
// where fsync costs nothing) and returns fs_type(dir).
std::string check_temp_dir(const std::filesystem::path& dir, std::uint64_t need);

// An open file descriptor (O_CLOEXEC added), closed on destruction; throws Failure if the
// open fails.
class Fd {
 public:
  Fd(const std::filesystem::path& p, int flags, mode_t mode = 0600);
  ~Fd();
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // fsync(2); throws Failure if it fails.
  void fsync();
  // close(2) now, to see its error (throws Failure); the destructor then does nothing.
  void close();

 private:
  std::filesystem::path path_;
  int fd_;
};

// fsync of the file or (`directory`) the directory `p`.
void fsync_path(const std::filesystem::path& p, bool directory);
// Flushes everything pending on the filesystem holding `p` (e.g. the deletion of the previous
// run's output), so that no write-back from before runs during a measurement.
void sync_fs(const std::filesystem::path& p);
// Removes `p` (a file, or a directory with everything in it); nothing if it does not exist.
void remove_tree(const std::filesystem::path& p);
// Writes all `n` bytes to `fd` (the file `p`, for the message); throws Failure on an error.
void write_all(int fd, const void* data, std::size_t n, const std::filesystem::path& p);
// Reads from `fd` (the file `p`) until `buf` is full or the file ends; returns the bytes read.
std::size_t read_some(int fd, std::vector<char>& buf, const std::filesystem::path& p);
// Reads `p` once fully, in 1 MiB reads (into the page cache); returns the bytes read.
std::uint64_t read_fully(const std::filesystem::path& p);

// Writes `text` to `p` (replacing it); throws Failure if that fails.
void write_file(const std::filesystem::path& p, const std::string& text);
// The last `lines` lines of `p`, each as "  | line\n"; empty if unreadable.
std::string tail_of(const std::filesystem::path& p, std::size_t lines);

}  // namespace modelzoo::bench
