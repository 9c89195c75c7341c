// Resource limits of plugin processes (docs/security.md, "Resource limits"): the
// setrlimit(2) calls that give a plugin its configured limits, how they are shown in the
// status, and which limit ended a plugin when its exit tells.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/config/config.h"
#include "modelzoo/process/child_process.h"

namespace modelzoo::supervisor {

// The setrlimit(2) calls for `limits`; unset fields are left out (inherited from the
// daemon). Soft and hard are equal, except CPU time, whose hard limit is one second above
// the soft one so that the kernel sends SIGXCPU (which names the cause) before SIGKILL.
// Throws std::runtime_error naming the setting when the daemon may not grant a value: above
// its own hard limit without the privilege to raise it.
std::vector<RLimitSetting> rlimits_for(const ResourceLimits& limits);

// "256 MiB", "1.5 GiB", "1000 B", "unlimited".
std::string format_size(std::uint64_t bytes);

// {"address_space": 268435456 | "unlimited" | null, "cpu_seconds": ..., "open_files": ...,
//  "file_size": ..., "core_dumps": false}: null means inherited from the daemon.
nlohmann::json limits_to_json(const ResourceLimits& limits);

// "cpu 2 s, open files 64, address space 256 MiB, core dumps off": the limits that are set.
std::string describe_limits(const ResourceLimits& limits);

// Which limit ended a plugin, as far as its exit tells: "CPU time limit of 2 s exceeded"
// for SIGXCPU (or SIGKILL after using the whole CPU time), "file size limit of 1 MiB
// exceeded" for SIGXFSZ; for a failed run whose last error line reports an allocation
// failure, too many open files or a file too large while that limit is set, "may have hit
// its ... limit of ...". Empty when no configured limit explains the exit.
std::string limit_exceeded(int wait_status, const ResourceLimits& limits, double cpu_seconds_used,
                           const std::string& last_error);

}  // namespace modelzoo::supervisor
