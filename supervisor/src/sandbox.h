// The Landlock filesystem sandbox of plugin processes (docs/security.md, "Filesystem sandbox
// (Landlock)"): which paths a plugin may reach, and the ruleset the child enforces on itself
// between fork and exec (process.h, SpawnSpec::landlock_ruleset).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "modelzoo/config/config.h"

namespace modelzoo::supervisor {

// The Landlock ABI version of the running kernel; 0 when it has none, and `reason` says why.
struct LandlockSupport {
  int abi = 0;
  std::string reason;
};
LandlockSupport landlock_support();

// What a sandboxed plugin may reach. Paths that do not exist when the ruleset is built are
// left out (a sandbox can only name what exists).
struct SandboxPaths {
  std::vector<std::filesystem::path> read_exec;  // read files and directories, execute files
  std::vector<std::filesystem::path> read;       // read files and directories
  std::vector<std::filesystem::path> write;      // read, create, write, rename, remove; never execute
  std::vector<std::filesystem::path> devices;    // read and write (/dev/null and the like)
};

// The paths of source `s` (docs/security.md has the list): the system directories needed
// to run programs read-only, its own directory and executable read and execute, its data
// directory `data_dir` read-write, what its configuration names (a local-file root, a CA or
// key file), extensions the cache read-only and its staging area read-write, and the
// source's sandbox_read / sandbox_write.
SandboxPaths sandbox_paths(const Source& s, const DaemonConfig& cfg, const std::filesystem::path& data_dir);

// A Landlock ruleset for `paths` at ABI `abi` (>= 1): it handles every filesystem right the
// ABI knows, so anything not granted is denied, and at ABI 6 or later it also scopes signals
// and abstract unix sockets to the plugin's own processes. The network is not restricted.
class LandlockRuleset {
 public:
  // Throws std::runtime_error naming the path or call that failed.
  LandlockRuleset(const SandboxPaths& paths, int abi);
  ~LandlockRuleset();
  LandlockRuleset(const LandlockRuleset&) = delete;
  LandlockRuleset& operator=(const LandlockRuleset&) = delete;

  int fd() const { return fd_; }  // close-on-exec; enforced by the child (process.cc)
  // The paths left out because they did not exist.
  const std::vector<std::string>& skipped() const { return skipped_; }

 private:
  int fd_ = -1;
  std::vector<std::string> skipped_;
};

}  // namespace modelzoo::supervisor
