#pragma once
// v1 "freezer" controller. Writing FROZEN starts freezing; the state reads FREEZING until every
// task (in this cgroup and its descendants) is frozen, which can take a while or never finish (a
// task in an uninterruptible sleep on a hung NFS mount). So Freeze polls with a deadline and, on
// timeout, thaws again and says which state it was stuck in.
#include <chrono>
#include <string>

#include "cgroups/cgroup_dir.h"

namespace cgroups::v1 {

class FreezerController {
 public:
  explicit FreezerController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  Result<std::string> State() const;  // "THAWED", "FREEZING" or "FROZEN"
  Result<> Freeze(std::chrono::milliseconds timeout);
  Result<> Thaw(std::chrono::milliseconds timeout);

 private:
  Result<> WaitFor(const char* want, std::chrono::milliseconds timeout);
  CgroupDir dir_;
};

}  // namespace cgroups::v1
