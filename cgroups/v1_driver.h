#pragma once
// cgroup v1 driver: one hierarchy per controller (or per group of co-mounted controllers such as
// "cpu,cpuacct"), each mounted under the mount root. A cgroup path exists once per hierarchy;
// Create/AddProcess/Remove act on every hierarchy, Apply on the controller that owns each setting.
//
// Why plain cgroupfs and not libcgroup: every operation here is one open+write relative to a
// directory fd, which is simpler to make precise errors for than libcgroup's cgroup/controller/
// value objects (whose errors are bare ECG* codes without the file or value). libcgroup also
// brings process-global state (cgroup_init() parses the mount table once) that goes stale when
// hierarchies are mounted later, and for v2 it does not translate v1 setting names (it writes
// "cpu.shares" literally), so it would not save the v1/v2 split either.
#include <atomic>
#include <map>
#include <string>
#include <vector>

#include "cgroups/cgroup_dir.h"
#include "cgroups/driver.h"
#include "cgroups/v1/blkio_controller.h"
#include "cgroups/v1/cpu_controller.h"
#include "cgroups/v1/cpuacct_controller.h"
#include "cgroups/v1/cpuset_controller.h"
#include "cgroups/v1/devices_controller.h"
#include "cgroups/v1/freezer_controller.h"
#include "cgroups/v1/memory_controller.h"
#include "cgroups/v1/pids_controller.h"

namespace cgroups {

class V1Driver final : public Driver {
 public:
  // hierarchies: controller ("cpu", "name=systemd") → mount point, as from V1Hierarchies().
  // Every hierarchy found is managed (cgroups created, processes added, removed), including
  // named ones like name=systemd so that processes are tracked there too.
  V1Driver(std::map<std::string, std::string> hierarchies, std::string root,
           std::string mount_root = "/sys/fs/cgroup", DriverOptions options = {});

  Version version() const override { return Version::kV1; }
  std::string Describe(const std::string& path) const override;
  Result<> Create(const std::string& path) override;
  Result<> Apply(const std::string& path, const Resources& r) override;
  Result<> AddProcess(const std::string& path, pid_t pid) override;
  // Processes directly in the cgroup (not descendants), in any hierarchy (sorted, unique).
  Result<std::vector<pid_t>> Procs(const std::string& path) override;
  Result<> Freeze(const std::string& path) override;
  Result<> Thaw(const std::string& path) override;
  Result<> KillAll(const std::string& path) override;
  Result<Stats> GetStats(const std::string& path) override;
  Result<> Remove(const std::string& path) override;
  // True when the cgroup exists in every managed hierarchy (as the kubelet's cgroupfs manager
  // does: a partially created cgroup counts as missing so Create runs again).
  bool Exists(const std::string& path) override;
  // Sum of memory.oom_control oom_kill over the cgroup and its descendants (v1 counts a kill only
  // in the victim's own cgroup; summing matches v2's hierarchical memory.events). Kernels before
  // 4.13 have no oom_kill line: then this returns an ENOTSUP error saying so, GetStats reports 0,
  // and OOMs can still be seen through OomWatcher (memory.oom_control eventfd).
  Result<uint64_t> OomKillCount(const std::string& path) override;
  // "cpu", "memory", ..., "systemd" or "name=systemd"; "" when that hierarchy is not mounted.
  std::string ControllerPath(const std::string& controller, const std::string& path) const override;

  // One distinct mount point per hierarchy (co-mounted controllers share one), sorted.
  std::vector<std::string> MountPoints() const;
  const std::map<std::string, std::string>& hierarchies() const { return hierarchies_; }

  // Typed access to one controller of a cgroup (ENODEV error when it is not mounted).
  Result<v1::CpuController> Cpu(const std::string& path) const;
  Result<v1::CpuacctController> Cpuacct(const std::string& path) const;
  Result<v1::CpusetController> Cpuset(const std::string& path) const;
  Result<v1::MemoryController> Memory(const std::string& path) const;
  Result<v1::PidsController> Pids(const std::string& path) const;
  Result<v1::BlkioController> Blkio(const std::string& path) const;
  Result<v1::DevicesController> Devices(const std::string& path) const;
  Result<v1::FreezerController> Freezer(const std::string& path) const;

 private:
  Result<CgroupDir> Open(const std::string& controller, const std::string& path) const;
  Result<std::vector<pid_t>> AllProcsRecursive(const std::string& rel) const;
  std::string Abs(const std::string& mount, const std::string& rel) const;
  // memory.use_hierarchy is 1 at the root of the memory hierarchy `mount` (checked once).
  bool MemoryHierarchical(const std::string& mount);

  std::map<std::string, std::string> hierarchies_;
  std::string root_;
  std::string mount_root_;
  DriverOptions options_;
  std::atomic<int> memory_hierarchical_{-1};  // -1 unknown, 0 no, 1 yes
};

}  // namespace cgroups
