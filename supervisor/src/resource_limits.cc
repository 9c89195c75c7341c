#include "resource_limits.h"

#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace modelzoo::supervisor {
namespace {

constexpr std::uint64_t kUnlimited = ResourceLimits::kUnlimited;

// Whether this process may raise hard limits (CAP_SYS_RESOURCE in its effective set).
bool may_raise_hard_limits() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_RESOURCE / 32].effective & (1U << (CAP_SYS_RESOURCE % 32))) != 0;
}

rlim_t as_rlim(std::uint64_t v) { return v == kUnlimited ? RLIM_INFINITY : static_cast<rlim_t>(v); }

std::string count_text(std::uint64_t v) { return v == kUnlimited ? "unlimited" : std::to_string(v); }

bool contains_any(const std::string& text, std::initializer_list<const char*> words) {
  return std::any_of(words.begin(), words.end(), [&](const char* w) { return text.find(w) != std::string::npos; });
}

}  // namespace

std::vector<RLimitSetting> rlimits_for(const ResourceLimits& l) {
  std::vector<RLimitSetting> out;
  bool privileged = may_raise_hard_limits();
  auto add = [&](int resource, const char* key, std::uint64_t soft, std::uint64_t hard) {
    rlimit current{};
    ::getrlimit(static_cast<__rlimit_resource_t>(resource), &current);
    rlim_t want = as_rlim(hard);
    if (!privileged && current.rlim_max != RLIM_INFINITY && (want == RLIM_INFINITY || want > current.rlim_max))
      throw std::runtime_error(std::string("limits.") + key + " " +
                               (hard == kUnlimited ? std::string("unlimited") : std::to_string(hard)) +
                               " is above the daemon's own hard limit " + std::to_string(current.rlim_max) +
                               ", which only a privileged daemon may raise");
    out.push_back({resource, as_rlim(soft), want});
  };
  if (l.address_space) add(RLIMIT_AS, "address_space", *l.address_space, *l.address_space);
  if (l.cpu_seconds) {
    std::uint64_t hard = *l.cpu_seconds == kUnlimited ? kUnlimited : *l.cpu_seconds + 1;
    add(RLIMIT_CPU, "cpu_seconds", *l.cpu_seconds, hard);
  }
  if (l.open_files) add(RLIMIT_NOFILE, "open_files", *l.open_files, *l.open_files);
  if (l.file_size) add(RLIMIT_FSIZE, "file_size", *l.file_size, *l.file_size);
  if (l.core_dumps) {
    if (*l.core_dumps) {
      // Allowed: keep the daemon's core limit (it is what an administrator set up).
    } else {
      out.push_back({RLIMIT_CORE, 0, 0});
    }
  }
  return out;
}

std::string format_size(std::uint64_t bytes) {
  if (bytes == kUnlimited) return "unlimited";
  static const struct {
    std::uint64_t size;
    const char* name;
  } units[] = {{1ULL << 40, "TiB"}, {1ULL << 30, "GiB"}, {1ULL << 20, "MiB"}, {1ULL << 10, "KiB"}};
  for (const auto& u : units) {
    if (bytes < u.size) continue;
    if (bytes % u.size == 0) return std::to_string(bytes / u.size) + " " + u.name;
    // Not a whole number of this unit: one decimal when that is exact enough, else bytes.
    double v = static_cast<double>(bytes) / static_cast<double>(u.size);
    if (std::fabs(v * 10 - std::round(v * 10)) < 1e-9) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f %s", v, u.name);
      return buf;
    }
    break;
  }
  return std::to_string(bytes) + " B";
}

nlohmann::json limits_to_json(const ResourceLimits& l) {
  auto value = [](const std::optional<std::uint64_t>& v) -> nlohmann::json {
    if (!v) return nullptr;
    if (*v == kUnlimited) return "unlimited";
    return *v;
  };
  return {{"address_space", value(l.address_space)},
          {"cpu_seconds", value(l.cpu_seconds)},
          {"open_files", value(l.open_files)},
          {"file_size", value(l.file_size)},
          {"core_dumps", l.core_dumps ? nlohmann::json(*l.core_dumps) : nlohmann::json(nullptr)}};
}

std::string describe_limits(const ResourceLimits& l) {
  std::vector<std::string> parts;
  if (l.cpu_seconds) parts.push_back("cpu " + (*l.cpu_seconds == kUnlimited ? "unlimited" : count_text(*l.cpu_seconds) + " s"));
  if (l.address_space) parts.push_back("address space " + format_size(*l.address_space));
  if (l.open_files) parts.push_back("open files " + count_text(*l.open_files));
  if (l.file_size) parts.push_back("file size " + format_size(*l.file_size));
  if (l.core_dumps) parts.push_back(std::string("core dumps ") + (*l.core_dumps ? "on" : "off"));
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::string limit_exceeded(int st, const ResourceLimits& l, double cpu_used, const std::string& last_error) {
  auto finite = [](const std::optional<std::uint64_t>& v) { return v && *v != kUnlimited; };
  std::string cpu = finite(l.cpu_seconds) ? "CPU time limit of " + std::to_string(*l.cpu_seconds) + " s exceeded" : "";
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    if (sig == SIGXCPU && !cpu.empty()) return cpu;
    // SIGXCPU handled or ignored: the kernel kills at the hard limit, a second later.
    if (sig == SIGKILL && !cpu.empty() && cpu_used >= static_cast<double>(*l.cpu_seconds))
      return cpu + " (killed at the hard limit)";
    if (sig == SIGXFSZ && finite(l.file_size)) return "file size limit of " + format_size(*l.file_size) + " exceeded";
  }
  bool failed = WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
  if (!failed || last_error.empty()) return {};
  // Only the plugin's own last words can tell these apart from other failures.
  if (finite(l.address_space) &&
      contains_any(last_error, {"bad_alloc", "MemoryError", "Cannot allocate memory", "out of memory",
                                "Out of memory", "failed to allocate", "ENOMEM"}))
    return "may have hit its address-space limit of " + format_size(*l.address_space) +
           " (it reported an allocation failure)";
  if (finite(l.open_files) && contains_any(last_error, {"Too many open files", "EMFILE"}))
    return "may have hit its open-files limit of " + std::to_string(*l.open_files) + " (it reported too many open files)";
  if (finite(l.file_size) && contains_any(last_error, {"File too large", "EFBIG"}))
    return "may have hit its file size limit of " + format_size(*l.file_size) + " (it reported a file too large)";
  return {};
}

}  // namespace modelzoo::supervisor
