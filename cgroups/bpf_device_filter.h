#pragma once
// Device access control for cgroup v2. v2 has no devices.allow/devices.deny files: the kernel asks
// the BPF_PROG_TYPE_CGROUP_DEVICE programs attached to the cgroup and to all its ancestors, and
// access is granted only if every one of them returns 1 (what runc and crun do as well).
//
// The program is generated here as raw eBPF instructions (no libbpf, no compiler at run time): for
// each rule one short block "if type/access/major/minor match: return allow", emitted in reverse so
// that a later rule overrides an earlier one, ending in "return 0" (deny by default).
#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "cgroups/driver.h"

namespace cgroups {

// Pure: the eBPF program for `rules` applied in order on top of deny-all. An allow rule matches
// when the requested access is a subset of the rule's; a deny rule when they overlap.
std::vector<bpf_insn> CompileDeviceFilter(const std::vector<DeviceRule>& rules);

// Loads the program (BPF_PROG_LOAD). On rejection the error carries the verifier log.
Result<base::UniqueFd> LoadDeviceFilter(const std::vector<bpf_insn>& program);

// IDs of the device programs attached directly to the cgroup open at `cgroup_fd`.
Result<std::vector<uint32_t>> QueryDeviceFilters(int cgroup_fd, const std::string& cgroup_path);

// Makes `rules` the cgroup's device policy: attaches the new program (BPF_F_ALLOW_MULTI, so child
// cgroups can add their own and ancestors' still apply), then detaches the programs that were
// attached before. Between the two steps both apply, which is only ever stricter.
Result<> SetDeviceFilter(int cgroup_fd, const std::string& cgroup_path,
                         const std::vector<DeviceRule>& rules);

// Detaches every device program attached directly to the cgroup (allow-all, as far as this
// cgroup is concerned; ancestors' programs still apply).
Result<> ClearDeviceFilters(int cgroup_fd, const std::string& cgroup_path);

}  // namespace cgroups
