#pragma once
// What the node reports about its machine: capacity (cpu, memory, hugepages, ephemeral storage)
// and the identity/version fields of status.nodeInfo, plus the few readings behind the
// Memory/Disk/PID pressure conditions. Everything is read from /proc, /sys and /etc below an
// injectable root so tests can point it at a fake tree.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agent {

// The Kubernetes version cubelet implements, with cubelet's own version as semver build metadata
// (k3s does the same: "v1.32.1+k3s1"). Build metadata keeps semver comparisons equal to the
// upstream version, so version-gated behaviour in control planes and tools treats cubelet as a
// v1.32 kubelet; a pre-release suffix ("-cubelet") would sort *below* v1.32.0. kubectl shows it
// in the VERSION column of `kubectl get nodes`.
std::string KubeletVersion();           // "v1.32.0+cubelet.0.1.0"
std::string ContainerRuntimeVersion();  // "cubelet://0.1.0"
std::string CubeletVersion();           // "0.1.0"
// GOARCH of this build: "amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64".
std::string BinaryArch();

struct MachineInfo {
  int64_t cpu_cores = 0;
  int64_t memory_bytes = 0;             // MemTotal
  int64_t ephemeral_storage_bytes = 0;  // size of the filesystem holding the state directory
  // Resource name ("hugepages-2Mi") -> bytes (nr_hugepages * page size), one per supported size.
  std::map<std::string, int64_t> hugepages;
  std::string machine_id;
  std::string system_uuid;
  std::string boot_id;
  std::string kernel_version;
  std::string os_image;
  std::string operating_system = "linux";
  // GOARCH spelling of the architecture this binary was built for (amd64, arm64, ...), which is
  // what the kubelet reports (goruntime.GOARCH), not uname's machine.
  std::string architecture = BinaryArch();
};

// Readings behind the pressure conditions; a negative value means "could not be read".
struct ResourceUsage {
  int64_t memory_available_bytes = -1;  // MemAvailable
  int64_t memory_capacity_bytes = -1;   // MemTotal
  int64_t fs_available_bytes = -1;      // statfs f_bavail * f_frsize of the state directory
  int64_t fs_capacity_bytes = -1;
  int64_t fs_inodes_free = -1;          // f_ffree
  int64_t fs_inodes = -1;               // f_files
  int64_t pids_used = -1;  // running processes + threads (/proc/loadavg)
  int64_t pid_max = -1;    // min(kernel.pid_max, kernel.threads-max)
};

// statvfs of the filesystem holding `path` (its nearest existing ancestor; "" = "/");
// negative values when it could not be read.
struct FsUsage {
  int64_t capacity_bytes = -1;
  int64_t available_bytes = -1;
  int64_t inodes = -1;
  int64_t inodes_free = -1;
};
FsUsage ReadFsUsage(const std::string& path);

// The seam the node status manager reads through (a fake in unit tests).
class MachineInfoSource {
 public:
  virtual ~MachineInfoSource() = default;
  virtual base::Result<MachineInfo> Info() = 0;
  virtual ResourceUsage Usage() = 0;
};
using MachineInfoSourcePtr = std::shared_ptr<MachineInfoSource>;

class MachineInfoReader final : public MachineInfoSource {
 public:
  struct Options {
    std::string root = "/";                    // prefix for /proc, /sys and /etc
    std::string fs_path = "/var/lib/cubelet";  // absolute; the nearest existing ancestor is used
    // Use sched_getaffinity when /proc/cpuinfo lists no processors (real root only).
    bool allow_syscalls = true;
  };
  explicit MachineInfoReader(Options options);

  base::Result<MachineInfo> Info() override;
  ResourceUsage Usage() override;

 private:
  std::string Path(std::string_view rel) const;
  Options options_;
};

// Value of PRETTY_NAME in an os-release file (quotes and escapes removed); "" if absent.
std::string ParseOsReleasePrettyName(std::string_view os_release);
// A "key:   value kB" line of /proc/meminfo, in bytes; -1 if absent.
int64_t ParseMeminfoBytes(std::string_view meminfo, std::string_view key);

// The node's usage for /stats/summary and /metrics/resource, as cAdvisor's root container:
// CPU = the busy time of the "cpu" line of /proc/stat (everything but idle and iowait);
// memory usage = MemTotal - MemFree, working set = usage - Inactive(file), available =
// MemAvailable.
struct NodeUsage {
  uint64_t cpu_usage_ns = 0;
  uint64_t memory_usage_bytes = 0;
  uint64_t memory_working_set_bytes = 0;
  uint64_t memory_available_bytes = 0;
};
base::Result<NodeUsage> ParseNodeUsage(std::string_view proc_stat, std::string_view meminfo,
                                       long clock_ticks_per_second);
base::Result<NodeUsage> ReadNodeUsage();

// The node's InternalIP when none is configured, the way the kubelet picks it without a cloud
// provider: `hostname` itself if it is an IP, else its DNS addresses (IPv4 first, loopback
// skipped), else the first global address of the interface holding the default route, else the
// first non-loopback IPv4 of any up interface.
base::Result<std::string> DetectNodeIP(const std::string& hostname);

}  // namespace agent
