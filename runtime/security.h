#pragma once
// Capabilities and seccomp for containers (containerd's CRI defaults).
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "cri/types.h"

namespace runtime {

using base::Result;

// "NET_ADMIN" or "CAP_NET_ADMIN" (any case) -> 12; -1 if unknown.
int CapabilityFromName(const std::string& name);
std::string CapabilityName(int cap);  // "CAP_NET_ADMIN"
// Highest capability this kernel knows (/proc/sys/kernel/cap_last_cap).
int LastCapability();
// Every capability the kernel knows that this process may pass on (its bounding set).
uint64_t AllCapabilities();
// containerd's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP
// SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE.
uint64_t DefaultCapabilities();
// privileged = all; "ALL" in add/drop first, then the individual names. Unknown names fail.
// The result never exceeds AllCapabilities().
Result<uint64_t> ComputeCapabilities(const cri::Capability& caps, bool privileged);

// Builds the seccomp program (raw struct sock_filter[] as libseccomp exports it) for a
// profile: RuntimeDefault (an allow-list in the spirit of moby's default profile; clone with
// namespace flags, unshare, mount, keyctl, ... denied with EPERM unless the matching capability
// is granted), Localhost (a docker-format JSON profile file). Unconfined -> empty.
Result<std::string> BuildSeccompProgram(const cri::SecurityProfile& profile, uint64_t capabilities);

}  // namespace runtime
