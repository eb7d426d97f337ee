#include "cgroups/qos_tree.h"

namespace cgroups {

std::string_view QosClassName(QosClass c) {
  switch (c) {
    case QosClass::kGuaranteed:
      return "Guaranteed";
    case QosClass::kBurstable:
      return "Burstable";
    case QosClass::kBestEffort:
      return "BestEffort";
  }
  return "";
}

std::string QosCgroupPath(QosClass c, std::string_view kubepods) {
  std::string out(kubepods);
  switch (c) {
    case QosClass::kGuaranteed:
      break;
    case QosClass::kBurstable:
      out += "/burstable";
      break;
    case QosClass::kBestEffort:
      out += "/besteffort";
      break;
  }
  return out;
}

std::string PodCgroupPath(QosClass c, std::string_view pod_uid, std::string_view kubepods) {
  return QosCgroupPath(c, kubepods) + "/pod" + std::string(pod_uid);
}

std::string ContainerCgroupPath(QosClass c, std::string_view pod_uid, std::string_view container_id,
                                std::string_view kubepods) {
  return PodCgroupPath(c, pod_uid, kubepods) + "/" + std::string(container_id);
}

Result<> QosTree::Ensure() {
  for (QosClass c : {QosClass::kGuaranteed, QosClass::kBurstable, QosClass::kBestEffort})
    CUBELET_TRY(driver_.Create(QosPath(c)));
  Resources besteffort;
  besteffort.cpu_shares = MilliCpuToShares(0);
  return driver_.Apply(QosPath(QosClass::kBestEffort), besteffort);
}

Result<> QosTree::SetBurstableCpuRequests(int64_t total_milli) {
  Resources r;
  r.cpu_shares = MilliCpuToShares(total_milli);
  return driver_.Apply(QosPath(QosClass::kBurstable), r);
}

}  // namespace cgroups
