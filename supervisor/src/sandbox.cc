#include "sandbox.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <stdexcept>

namespace modelzoo::supervisor {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The Landlock user API (linux/landlock.h), spelled out here: the installed kernel headers
// may predate the ABI the running kernel offers, and the kernel is what counts.
constexpr std::uint32_t kCreateRulesetVersion = 1U << 0;
constexpr int kRulePathBeneath = 1;

constexpr std::uint64_t kExecute = 1ULL << 0;
constexpr std::uint64_t kWriteFile = 1ULL << 1;
constexpr std::uint64_t kReadFile = 1ULL << 2;
constexpr std::uint64_t kReadDir = 1ULL << 3;
constexpr std::uint64_t kRemoveDir = 1ULL << 4;
constexpr std::uint64_t kRemoveFile = 1ULL << 5;
constexpr std::uint64_t kMakeChar = 1ULL << 6;
constexpr std::uint64_t kMakeDir = 1ULL << 7;
constexpr std::uint64_t kMakeReg = 1ULL << 8;
constexpr std::uint64_t kMakeSock = 1ULL << 9;
constexpr std::uint64_t kMakeFifo = 1ULL << 10;
constexpr std::uint64_t kMakeBlock = 1ULL << 11;
constexpr std::uint64_t kMakeSym = 1ULL << 12;
constexpr std::uint64_t kRefer = 1ULL << 13;     // ABI 2
constexpr std::uint64_t kTruncate = 1ULL << 14;  // ABI 3
constexpr std::uint64_t kIoctlDev = 1ULL << 15;  // ABI 5
constexpr std::uint64_t kScopeAbstractUnixSocket = 1ULL << 0;  // ABI 6
constexpr std::uint64_t kScopeSignal = 1ULL << 1;              // ABI 6

// Rights that apply to a file (not only to directories).
constexpr std::uint64_t kFileRights = kExecute | kWriteFile | kReadFile | kTruncate | kIoctlDev;

struct RulesetAttr {
  std::uint64_t handled_access_fs;
  std::uint64_t handled_access_net;  // ABI 4
  std::uint64_t scoped;              // ABI 6
};

struct PathBeneathAttr {
  std::uint64_t allowed_access;
  std::int32_t parent_fd;
} __attribute__((packed));

std::uint64_t handled_fs(int abi) {
  std::uint64_t all = kExecute | kWriteFile | kReadFile | kReadDir | kRemoveDir | kRemoveFile | kMakeChar | kMakeDir |
                      kMakeReg | kMakeSock | kMakeFifo | kMakeBlock | kMakeSym;
  if (abi >= 2) all |= kRefer;
  if (abi >= 3) all |= kTruncate;
  if (abi >= 5) all |= kIoctlDev;
  return all;
}

constexpr std::uint64_t kReadRights = kReadFile | kReadDir;
constexpr std::uint64_t kWriteRights = kReadFile | kReadDir | kWriteFile | kRemoveDir | kRemoveFile | kMakeDir |
                                       kMakeReg | kMakeSock | kMakeFifo | kMakeSym | kRefer | kTruncate;

// /etc holds what the C library, the dynamic loader, TLS and Python read; and secrets (shadow,
// ssh host keys, other services' settings) that a plugin has no business reading.
const char* const kEtcEntries[] = {
    "ld.so.cache", "ld.so.conf",    "ld.so.conf.d", "ld.so.preload", "nsswitch.conf",     "host.conf",
    "hosts",       "resolv.conf",   "gai.conf",     "services",      "protocols",         "localtime",
    "timezone",    "passwd",        "group",        "ssl",           "ca-certificates",   "pki",
    "crypto-policies", "gnutls",    "mime.types",   "os-release",    "alternatives"};

fs::path find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    fs::path candidate = fs::path(dirs.substr(start, end - start)) / name;
    if (!candidate.parent_path().empty() && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

// A path and, when it is a symbolic link or under one, where it leads: a rule is made on what
// a path names, and both are where the plugin may look.
void add_with_target(std::vector<fs::path>& out, const fs::path& p) {
  if (p.empty() || p == "/") return;  // the root is never granted by inference
  out.push_back(p);
  std::error_code ec;
  fs::path c = fs::canonical(p, ec);
  if (!ec && c != p && c != "/") out.push_back(c);
}

void add_config_path(std::vector<fs::path>& out, const json& v) {
  if (v.is_string() && !v.get<std::string>().empty() && v.get<std::string>()[0] == '/')
    add_with_target(out, v.get<std::string>());
}

}  // namespace

LandlockSupport landlock_support() {
  long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, kCreateRulesetVersion);
  if (abi >= 1) return {static_cast<int>(abi), ""};
  int e = errno;
  if (e == ENOSYS) return {0, "the kernel has no Landlock (landlock_create_ruleset: ENOSYS; Linux 5.13 or later)"};
  if (e == EOPNOTSUPP) return {0, "Landlock is disabled in this kernel (add landlock to the lsm= boot parameter)"};
  return {0, std::string("landlock_create_ruleset failed: ") + std::strerror(e)};
}

SandboxPaths sandbox_paths(const Source& s, const DaemonConfig& cfg, const fs::path& data_dir) {
  SandboxPaths p;
  // Programs and their libraries.
  for (const char* d : {"/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin"}) add_with_target(p.read_exec, d);
  for (const char* e : kEtcEntries) add_with_target(p.read, fs::path("/etc") / e);
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/etc", ec))  // python3.11/ and the like (sitecustomize)
    if (e.path().filename().string().rfind("python", 0) == 0) add_with_target(p.read, e.path());
  // /proc: the plugin's own entries (/proc/self) and system figures; Landlock keeps it from
  // the entries of processes outside its sandbox that need ptrace access (environ, mem).
  p.read.push_back("/proc");
  p.read.push_back("/sys/devices/system/cpu");  // the number of CPUs (get_nprocs)
  for (const char* d : {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}) p.devices.push_back(d);

  // The plugin itself: its directory (a manifest's, or the built-ins'), its executable, and the
  // scripts and directories its command names.
  const auto& cmd = s.manifest.command;
  if (!s.from_command) add_with_target(p.read_exec, s.manifest.dir);
  if (!cmd.empty()) {
    fs::path exe = cmd[0].find('/') == std::string::npos ? find_in_path(cmd[0]) : fs::path(cmd[0]);
    if (exe.is_relative() && !exe.empty()) exe = s.manifest.dir / exe;
    add_with_target(p.read_exec, exe.parent_path());
    if (fs::is_symlink(exe, ec)) add_with_target(p.read_exec, fs::canonical(exe, ec).parent_path());
    for (std::size_t i = 1; i < cmd.size(); ++i) {
      if (cmd[i].find('/') == std::string::npos || cmd[i].find('\n') != std::string::npos) continue;
      fs::path a = cmd[i];
      if (a.is_relative()) a = s.manifest.dir / a;
      a = a.lexically_normal();
      if (fs::is_regular_file(a, ec)) add_with_target(p.read_exec, a.parent_path());
      else if (fs::is_directory(a, ec)) add_with_target(p.read_exec, a);
    }
  }
  // What its configuration names, for the built-in plugins that read files.
  bool builtin = !s.from_command && s.manifest.dir == cfg.exe_dir;
  if (builtin) {
    const json& c = s.config;
    const std::string& name = s.manifest.name;
    if (name == "local-file") add_config_path(p.read, c.value("root", json()));
    if (name == "remote") {
      add_config_path(p.read, c.value("ca_file", json()));
      json auth = c.value("auth", json::object());
      if (auth.is_object()) {
        add_config_path(p.read, auth.value("token_file", json()));
        json command = auth.value("command", json());
        if (command.is_array() && !command.empty())
          add_config_path(p.read_exec, command[0].is_string() ? json(fs::path(command[0].get<std::string>()).parent_path().string()) : json());
      }
    }
    if (name == "huggingface") {  // docs/sources.md
      add_config_path(p.read, c.value("ca_file", json()));
      add_config_path(p.read, c.value("token_file", json()));
    }
    if (name == "oci") {  // its CA bundle and the docker config.json it reads credentials from
      add_config_path(p.read, c.value("ca_file", json()));
      json dc = c.value("docker_config", json());
      if (!dc.is_string()) {
        const char* d = std::getenv("DOCKER_CONFIG");
        const char* home = std::getenv("HOME");
        if (d) dc = (fs::path(d) / "config.json").string();
        else if (home) dc = (fs::path(home) / ".docker" / "config.json").string();
      }
      if (dc.is_string() && fs::exists(dc.get<std::string>(), ec)) add_config_path(p.read, dc);
    }
    if (name == "decrypt") {
      json keys = c.value("keys", json::array());
      if (keys.is_string()) keys = json::array({keys});
      if (keys.is_array())
        for (const auto& k : keys) add_config_path(p.read, k);
    }
  }
  for (const auto& d : s.local_read) add_with_target(p.read, d);
  // Extensions read the files of the cache they are shown and write their output to staging.
  if (s.manifest.kind == "extension") {
    add_with_target(p.read, cfg.cache_dir);
    add_with_target(p.write, cfg.cache_dir / "staging");
  }
  if (!data_dir.empty()) add_with_target(p.write, data_dir);
  for (const auto& d : s.sandbox_read) p.read_exec.push_back(d);
  for (const auto& d : s.sandbox_write) p.write.push_back(d);
  return p;
}

LandlockRuleset::LandlockRuleset(const SandboxPaths& paths, int abi) {
  if (abi < 1) throw std::runtime_error("Landlock is not available");
  RulesetAttr attr{handled_fs(abi), 0, abi >= 6 ? kScopeAbstractUnixSocket | kScopeSignal : 0};
  std::size_t size = abi >= 6 ? sizeof(RulesetAttr) : sizeof(std::uint64_t);
  fd_ = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0U));
  if (fd_ < 0 && errno == EINVAL && attr.scoped) {
    // A kernel that claims ABI 6 without every scope (seen in backports): files only.
    attr.scoped = 0;
    fd_ = static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, sizeof(std::uint64_t), 0U));
  }
  if (fd_ < 0) throw std::runtime_error(std::string("landlock_create_ruleset: ") + std::strerror(errno));
  const std::uint64_t handled = attr.handled_access_fs;
  std::set<std::pair<std::string, std::uint64_t>> done;
  auto add = [&](const fs::path& path, std::uint64_t rights) {
    if (!done.insert({path.string(), rights}).second) return;
    int fd = ::open(path.c_str(), O_PATH | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT || errno == ENOTDIR || errno == EACCES) {
        skipped_.push_back(path.string());
        return;
      }
      int e = errno;
      throw std::runtime_error("sandbox path " + path.string() + ": " + std::strerror(e));
    }
    struct stat st{};
    ::fstat(fd, &st);
    PathBeneathAttr rule{rights & handled, fd};
    if (!S_ISDIR(st.st_mode)) rule.allowed_access &= kFileRights;
    long rc = ::syscall(SYS_landlock_add_rule, fd_, kRulePathBeneath, &rule, 0U);
    int e = errno;
    ::close(fd);
    if (rc != 0) throw std::runtime_error("landlock_add_rule " + path.string() + ": " + std::strerror(e));
  };
  try {
    for (const auto& p : paths.read_exec) add(p, kReadRights | kExecute);
    for (const auto& p : paths.read) add(p, kReadRights);
    for (const auto& p : paths.write) add(p, kWriteRights);
    for (const auto& p : paths.devices) add(p, kReadFile | kWriteFile);
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

LandlockRuleset::~LandlockRuleset() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace modelzoo::supervisor
