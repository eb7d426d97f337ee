#pragma once
// v1 "blkio" controller. The proportional weight lives in blkio.weight (CFQ, removed in Linux
// 5.0) or blkio.bfq.weight (BFQ scheduler); which one exists depends on the kernel and the I/O
// scheduler, so it is probed. Throttling (blkio.throttle.*) is independent of the scheduler.
#include <cstdint>
#include <map>
#include <string>

#include "cgroups/cgroup_dir.h"
#include "cgroups/driver.h"

namespace cgroups::v1 {

class BlkioController {
 public:
  explicit BlkioController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  // "blkio.weight", "blkio.bfq.weight", or "" when neither exists.
  std::string WeightFile() const;
  Result<> SetWeight(uint64_t weight);
  Result<uint64_t> Weight() const;
  // Writes the four throttle files for one device; a 0 value removes that limit.
  Result<> SetThrottle(const BlkioThrottle& t);
  // "maj:min" → value of one throttle file, e.g. "blkio.throttle.read_bps_device".
  Result<std::map<std::string, uint64_t>> Throttle(const std::string& file) const;

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
