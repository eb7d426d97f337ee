#pragma once
// v1 "memory" controller: limit, usage, memory.stat and the OOM state in memory.oom_control.
#include <cstdint>

#include "cgroups/cgroup_dir.h"
#include "cgroups/parse.h"

namespace cgroups::v1 {

class MemoryController {
 public:
  explicit MemoryController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  // -1 = unlimited. Lowering below current usage makes the kernel reclaim first; EBUSY when it
  // cannot.
  Result<> SetLimit(int64_t bytes);
  // memory.limit_in_bytes with the "unlimited" value reported as 0.
  Result<uint64_t> Limit() const;
  Result<uint64_t> Usage() const;  // memory.usage_in_bytes
  Result<FlatKeyed> Stat() const;  // memory.stat
  Result<OomControl> Oom() const;  // memory.oom_control
  // Hierarchical accounting. Always on (and read-only) since Linux 5.x; older kernels accept 1.
  Result<> SetUseHierarchy();

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
