#pragma once
// v1 "cpuacct" controller: CPU time used by the cgroup and its descendants.
#include <cstdint>

#include "cgroups/cgroup_dir.h"

namespace cgroups::v1 {

class CpuacctController {
 public:
  explicit CpuacctController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  // cpuacct.usage: total CPU time in nanoseconds (hierarchical).
  Result<uint64_t> UsageNs() const;

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
