#include "cgroups/v1/cpu_controller.h"

#include <cerrno>
#include <string>

namespace cgroups::v1 {

Result<> CpuController::SetShares(uint64_t shares) {
  return dir_.Write("cpu.shares", std::to_string(shares));
}

Result<uint64_t> CpuController::Shares() const { return dir_.ReadU64("cpu.shares"); }

Result<> CpuController::SetBandwidth(std::optional<int64_t> quota_us,
                                     std::optional<uint64_t> period_us) {
  auto write_quota = [&]() -> Result<> {
    if (!quota_us) return {};
    return dir_.Write("cpu.cfs_quota_us", std::to_string(*quota_us < 0 ? -1 : *quota_us));
  };
  auto write_period = [&]() -> Result<> {
    if (!period_us) return {};
    return dir_.Write("cpu.cfs_period_us", std::to_string(*period_us));
  };
  auto period = write_period();
  if (!period) {
    if (period.error().code != EINVAL || !quota_us) return period;
    CUBELET_TRY(write_quota());
    return write_period();
  }
  return write_quota();
}

Result<int64_t> CpuController::Quota() const { return dir_.ReadI64("cpu.cfs_quota_us"); }

Result<uint64_t> CpuController::Period() const { return dir_.ReadU64("cpu.cfs_period_us"); }

}  // namespace cgroups::v1
