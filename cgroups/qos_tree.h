#pragma once
// The kubelet's QoS cgroup layout (cgroupsPerQOS=true, cgroupfs driver; K:pkg/kubelet/cm/
// qos_container_manager_linux.go, pod_container_manager_linux.go):
//   kubepods/                      Guaranteed pods directly below: kubepods/pod<UID>
//   kubepods/burstable/            kubepods/burstable/pod<UID>,  cpu.shares = sum of requests
//   kubepods/besteffort/           kubepods/besteffort/pod<UID>, cpu.shares = 2
// Container cgroups go below the pod's: <pod path>/<container id>.
#include <cstdint>
#include <string>
#include <string_view>

#include "cgroups/driver.h"

namespace cgroups {

enum class QosClass { kGuaranteed, kBurstable, kBestEffort };

// "Guaranteed", "Burstable", "BestEffort" (the API's PodStatus.qosClass values).
std::string_view QosClassName(QosClass c);

// Pure. `kubepods` is the top of the tree (relative to the driver's root).
std::string QosCgroupPath(QosClass c, std::string_view kubepods = "kubepods");
// The pod UID is used as is ("pod" + UID, as the kubelet's cgroupfs driver); it must be one path
// component (API UIDs are UUIDs; the drivers reject "." and "..").
std::string PodCgroupPath(QosClass c, std::string_view pod_uid,
                          std::string_view kubepods = "kubepods");
std::string ContainerCgroupPath(QosClass c, std::string_view pod_uid, std::string_view container_id,
                                std::string_view kubepods = "kubepods");

class QosTree {
 public:
  explicit QosTree(Driver& driver, std::string kubepods = "kubepods")
      : driver_(driver), kubepods_(std::move(kubepods)) {}

  std::string QosPath(QosClass c) const { return QosCgroupPath(c, kubepods_); }
  std::string PodPath(QosClass c, std::string_view uid) const {
    return PodCgroupPath(c, uid, kubepods_);
  }

  // Creates kubepods, kubepods/burstable and kubepods/besteffort (idempotent) and sets the
  // besteffort cpu.shares to 2 (the minimum), so BestEffort pods only get CPU nobody else wants.
  Result<> Ensure();
  // burstable's cpu.shares from the sum of the Burstable pods' cpu requests (milli-CPU).
  Result<> SetBurstableCpuRequests(int64_t total_milli);

 private:
  Driver& driver_;
  std::string kubepods_;
};

}  // namespace cgroups
