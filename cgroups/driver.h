#pragma once
// cgroups seam: one interface, two drivers (v1 per-controller hierarchies, v2 unified), chosen by
// probing the cgroup mount. Paths given to a Driver are RELATIVE to the driver's root (the
// --cgroup-root, e.g. "" for the host root or "cubelet-test-1234" in tests), like
// "kubepods/burstable/pod<UID>/<container-id>".
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace cgroups {

using base::Result;

struct DeviceRule {
  bool allow = true;
  char type = 'a';     // 'a', 'c', 'b'
  int64_t major = -1;  // -1 = '*'
  int64_t minor = -1;
  std::string access = "rwm";
};

struct BlkioThrottle {
  int64_t major = 0;
  int64_t minor = 0;
  uint64_t read_bps = 0, write_bps = 0, read_iops = 0, write_iops = 0;
};

// Unset fields are left untouched.
struct Resources {
  std::optional<uint64_t> cpu_shares;   // v1 cpu.shares; v2 cpu.weight converted
  std::optional<int64_t> cpu_quota_us;  // -1 = unlimited
  std::optional<uint64_t> cpu_period_us;
  std::optional<int64_t> memory_limit_bytes;  // -1 = unlimited
  std::optional<int64_t> memory_min_bytes;    // v2 memory.min only
  std::optional<int64_t> memory_high_bytes;   // v2 memory.high only
  std::optional<int64_t> pids_limit;          // -1 = max
  std::optional<uint16_t> blkio_weight;       // 10..1000
  std::vector<BlkioThrottle> blkio_throttle;
  std::optional<std::vector<DeviceRule>> devices;  // full allow-list (replaces)
  std::optional<std::string> cpuset_cpus;
  std::optional<std::string> cpuset_mems;
};

struct Stats {
  uint64_t cpu_usage_ns = 0;
  uint64_t memory_usage_bytes = 0;
  uint64_t memory_working_set_bytes = 0;  // usage - inactive_file, as cAdvisor computes it
  uint64_t memory_rss_bytes = 0;
  uint64_t memory_limit_bytes = 0;  // 0 = unlimited
  uint64_t pids_current = 0;
  uint64_t oom_kill_count = 0;  // kills in this cgroup and its descendants (OomKillCount)
};

enum class Version { kV1 = 1, kV2 = 2 };

class Driver {
 public:
  virtual ~Driver() = default;
  virtual Version version() const = 0;
  // Absolute root directory (v2) or the root path inside each hierarchy (v1), for messages.
  virtual std::string Describe(const std::string& path) const = 0;

  // mkdir -p in every hierarchy/controller this driver manages; enables controllers on v2.
  virtual Result<> Create(const std::string& path) = 0;
  virtual Result<> Apply(const std::string& path, const Resources& r) = 0;
  virtual Result<> AddProcess(const std::string& path, pid_t pid) = 0;
  virtual Result<std::vector<pid_t>> Procs(const std::string& path) = 0;
  // Freezes/thaws all processes atomically (v1 freezer, v2 cgroup.freeze); waits until done.
  virtual Result<> Freeze(const std::string& path) = 0;
  virtual Result<> Thaw(const std::string& path) = 0;
  // SIGKILLs every process (freeze, kill, thaw) and waits until the cgroup is empty. A cgroup that
  // does not exist has nothing to kill: success.
  virtual Result<> KillAll(const std::string& path) = 0;
  virtual Result<Stats> GetStats(const std::string& path) = 0;
  // rmdir in every hierarchy, children first; missing is success.
  virtual Result<> Remove(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // The number of OOM kills of processes in the cgroup and its descendants so far (v1: sum of
  // memory.oom_control oom_kill over the subtree; v2: memory.events oom_kill). The runtime compares
  // it before and after a container exits to report reason OOMKilled; for an event-driven signal
  // see cgroups/oom_watcher.h. ENOTSUP error when the kernel cannot count (v1 before Linux 4.13,
  // v2 without the memory controller).
  virtual Result<uint64_t> OomKillCount(const std::string& path) = 0;
  // Directory to pass as clone3(CLONE_INTO_CGROUP) target or to write cgroup.procs for one
  // hierarchy (v2: the unified dir; v1: the given controller's dir).
  virtual std::string ControllerPath(const std::string& controller,
                                     const std::string& path) const = 0;
};

using DriverPtr = std::unique_ptr<Driver>;

// Bounds on the waits a driver does (all are polls of kernel state with a deadline).
struct DriverOptions {
  std::chrono::milliseconds freeze_timeout{5000};  // FREEZING → FROZEN / cgroup.events frozen 1
  std::chrono::milliseconds kill_timeout{10000};   // KillAll until the cgroup is empty
  std::chrono::milliseconds remove_busy_timeout{2000};  // rmdir retries on EBUSY
};

// Probes `mount_root` (default /sys/fs/cgroup): a cgroup2 mount there means v2; per-controller
// v1 mounts mean v1 (a hybrid layout's small unified tree is ignored). `root` is the prefix all
// paths are placed under (the kubelet's --cgroup-root; "" = top).
Result<DriverPtr> Detect(const std::string& root = "",
                         const std::string& mount_root = "/sys/fs/cgroup");
Result<DriverPtr> Detect(const std::string& root, const std::string& mount_root,
                         const DriverOptions& options);

// Kubernetes values (K:pkg/kubelet/cm/helpers_linux.go).
uint64_t MilliCpuToShares(int64_t milli);  // max(2, milli*1024/1000), capped 262144
int64_t MilliCpuToQuota(int64_t milli, int64_t period_us);  // 0 when milli == 0; min 1000
uint64_t SharesToWeight(uint64_t shares);                   // 1 + ((shares-2)*9999)/262142

}  // namespace cgroups
