#pragma once
// v1 "devices" controller: a default (allow-all or deny-all) plus exceptions, written through
// devices.allow / devices.deny and read back from devices.list.
//
// Two kernel rules shape ApplyAllowList:
//  - Changing the default ("a" to devices.allow or devices.deny) fails with EINVAL once the cgroup
//    has children, so a full list is applied before children are created; afterwards the list is
//    changed exception by exception without touching the default.
//  - A child can never allow what its parent does not: such a write fails with EPERM, reported as
//    "parent ... does not allow it".
#include <vector>

#include "cgroups/cgroup_dir.h"
#include "cgroups/driver.h"

namespace cgroups::v1 {

class DevicesController {
 public:
  explicit DevicesController(CgroupDir dir) : dir_(std::move(dir)) {}
  const CgroupDir& dir() const { return dir_; }

  Result<std::vector<DeviceRule>> List() const;
  Result<> Allow(const DeviceRule& rule);  // write to devices.allow
  Result<> Deny(const DeviceRule& rule);   // write to devices.deny
  // Makes the cgroup's access exactly `rules` applied in order on top of deny-all (an allow-all
  // rule "a *:* rwm" anywhere in the list makes the default allow; deny rules after it then become
  // exceptions).
  Result<> ApplyAllowList(const std::vector<DeviceRule>& rules);

 private:
  CgroupDir dir_;
};

}  // namespace cgroups::v1
