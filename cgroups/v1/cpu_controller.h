#pragma once
// v1 "cpu" controller: CFS shares and bandwidth (cpu.shares, cpu.cfs_quota_us, cpu.cfs_period_us).
#include <cstdint>
#include <optional>

#include "cgroups/cgroup_dir.h"

namespace cgroups::v1 {

class CpuController {
 public:
  explicit CpuController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  Result<> SetShares(uint64_t shares);
  Result<uint64_t> Shares() const;
  // Either or both; quota -1 = unlimited. The kernel validates quota/period as a pair against the
  // parent and children on every write, so the order matters: period first (runc's order), and if
  // the kernel refuses that with EINVAL, quota first and then period.
  Result<> SetBandwidth(std::optional<int64_t> quota_us, std::optional<uint64_t> period_us);
  Result<int64_t> Quota() const;
  Result<uint64_t> Period() const;

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
