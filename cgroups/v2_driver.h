#pragma once
// cgroup v2 driver: one unified hierarchy. Controllers are enabled top-down through
// cgroup.subtree_control of each ancestor from the driver's root down to the parent of the cgroup
// being created (never above the driver's root: the ancestors there belong to whoever gave us the
// root, and the host's root cgroup is written only when the driver's root IS the host root).
//
// Why not libcgroup here: libcgroup 2.0.2 enables controllers by writing the ROOT cgroup's
// cgroup.subtree_control whatever the requested cgroup, and it passes v1 setting names such as
// cpu.shares through untranslated; v2 needs cpu.weight, cpu.max, memory.max, io.max instead.
#include <string>
#include <vector>

#include "cgroups/cgroup_dir.h"
#include "cgroups/driver.h"

namespace cgroups {

class V2Driver final : public Driver {
 public:
  // mount: the cgroup2 mount point (e.g. /sys/fs/cgroup); root: relative prefix of every path.
  V2Driver(std::string mount, std::string root, DriverOptions options = {});

  // Controllers Create enables where available: cpu cpuset io memory pids hugetlb (the kubelet's).
  static const std::vector<std::string>& WantedControllers();

  Version version() const override { return Version::kV2; }
  std::string Describe(const std::string& path) const override;
  Result<> Create(const std::string& path) override;
  // Devices: the list is compiled to a BPF_PROG_TYPE_CGROUP_DEVICE program (bpf_device_filter.h);
  // an allow-all list detaches this cgroup's device programs instead.
  Result<> Apply(const std::string& path, const Resources& r) override;
  Result<> AddProcess(const std::string& path, pid_t pid) override;
  Result<std::vector<pid_t>> Procs(const std::string& path) override;
  Result<> Freeze(const std::string& path) override;  // cgroup.freeze + cgroup.events frozen 1
  Result<> Thaw(const std::string& path) override;
  // cgroup.kill (Linux 5.14+) when present, else freeze + SIGKILL each pid + thaw; then waits for
  // cgroup.events "populated 0".
  Result<> KillAll(const std::string& path) override;
  // Fields of controllers not enabled for the cgroup stay 0.
  Result<Stats> GetStats(const std::string& path) override;
  Result<> Remove(const std::string& path) override;
  bool Exists(const std::string& path) override;
  // memory.events oom_kill (hierarchical: includes descendants). ENOTSUP error when the memory
  // controller is not enabled for the cgroup.
  Result<uint64_t> OomKillCount(const std::string& path) override;
  // The unified directory, whatever the controller.
  std::string ControllerPath(const std::string& controller, const std::string& path) const override;

  // Test hook: ignore cgroup.kill, to exercise the freeze+kill fallback of older kernels.
  void set_use_cgroup_kill(bool use) { use_cgroup_kill_ = use; }
  Result<CgroupDir> Open(const std::string& path) const;

 private:
  Result<> EnableControllers(const CgroupDir& dir);
  Result<> WaitEvent(const CgroupDir& dir, const char* key, uint64_t want,
                     std::chrono::milliseconds timeout, const std::string& what);
  Result<> WriteController(const CgroupDir& dir, const char* controller, const char* file,
                           const std::string& value);

  std::string mount_;
  std::string root_;
  DriverOptions options_;
  bool use_cgroup_kill_ = true;
};

}  // namespace cgroups
