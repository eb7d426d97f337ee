#pragma once
// Shared fixture for tests that touch the kernel (namespaces, cgroups, iptables, veth).
// The privileged test main (privileged_main.cc) moves the whole test process into a fresh network
// namespace before any test runs, so iptables/nft/veth/bridge changes can never reach the host's
// and vanish with the process. Cgroups are not namespaced that way, so each test takes a cgroup
// parent named after itself, removed at the end and swept at start if a crashed run left it.
#include <string>

namespace testsupport {

// True when running as root with the kernel features the privileged tests need.
bool IsPrivileged();

// "cubelet-test-<name>-<pid>": a cgroup parent (relative to each hierarchy root) created in every
// v1 hierarchy / the v2 tree, removed (processes killed first) on destruction.
class CgroupParent {
 public:
  explicit CgroupParent(const std::string& test_name);
  ~CgroupParent();
  CgroupParent(const CgroupParent&) = delete;
  CgroupParent& operator=(const CgroupParent&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Kills processes and removes every "cubelet-test-*" cgroup whose owning pid is gone.
void SweepStaleCgroups();

// Runs a shell command, returns its exit status; output captured into *out if given.
int Run(const std::string& cmd, std::string* out = nullptr);

// Directory with test images (busybox rootfs etc.), built on demand under /var/tmp/cubelet-test.
std::string BusyboxRootfs();

}  // namespace testsupport
