#pragma once
// v1 "cpuset" controller. A new v1 cpuset cgroup starts with EMPTY cpuset.cpus and cpuset.mems,
// and the kernel refuses to attach a task to it (ENOSPC) until both are set; so every level that
// is created gets its parent's values (the alternative, cgroup.clone_children=1 on the parent,
// would change a flag on cgroups we do not own).
#include <string>

#include "cgroups/cgroup_dir.h"

namespace cgroups::v1 {

class CpusetController {
 public:
  explicit CpusetController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  Result<std::string> Cpus() const;  // trimmed, "" when empty
  Result<std::string> Mems() const;
  Result<> SetCpus(const std::string& cpus);
  Result<> SetMems(const std::string& mems);
  // Copies cpuset.cpus and cpuset.mems from `parent` where this cgroup's are empty.
  Result<> InheritFrom(const CgroupDir& parent);

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
