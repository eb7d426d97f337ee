#include "cgroups/v1/cpuacct_controller.h"

namespace cgroups::v1 {

Result<uint64_t> CpuacctController::UsageNs() const { return dir_.ReadU64("cpuacct.usage"); }

}  // namespace cgroups::v1
