#pragma once
// v1 "pids" controller: pids.max (fork/clone fails with EAGAIN at the limit), pids.current.
#include <cstdint>

#include "cgroups/cgroup_dir.h"

namespace cgroups::v1 {

class PidsController {
 public:
  explicit PidsController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  Result<> SetMax(int64_t max);  // -1 (any negative) = "max"
  Result<int64_t> Max() const;   // -1 = "max"
  Result<uint64_t> Current() const;

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
