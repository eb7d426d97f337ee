// Kubernetes resource conversions (K:pkg/kubelet/cm/helpers_linux.go, runc's
// ConvertCPUSharesToCgroupV2Value).
#include <algorithm>

#include "cgroups/driver.h"

namespace cgroups {
namespace {
constexpr int64_t kMinShares = 2;
constexpr int64_t kMaxShares = 262144;
constexpr int64_t kSharesPerCpu = 1024;
constexpr int64_t kMilliCpuPerCpu = 1000;
constexpr int64_t kMinQuotaUs = 1000;
}  // namespace

uint64_t MilliCpuToShares(int64_t milli) {
  if (milli <= 0) return kMinShares;
  // milli * 1024 overflows only past ~9e15 milli-CPUs; clamp first to stay exact below the cap.
  int64_t capped = std::min<int64_t>(milli, kMaxShares * kMilliCpuPerCpu);
  int64_t shares = capped * kSharesPerCpu / kMilliCpuPerCpu;
  return static_cast<uint64_t>(std::clamp(shares, kMinShares, kMaxShares));
}

int64_t MilliCpuToQuota(int64_t milli, int64_t period_us) {
  if (milli <= 0 || period_us <= 0) return 0;
  int64_t quota = milli * period_us / kMilliCpuPerCpu;
  return std::max(quota, kMinQuotaUs);
}

uint64_t SharesToWeight(uint64_t shares) {
  // Below 2 is clamped (runc maps 0 to "unset", but here unset is an empty optional, and a
  // written cpu.weight must be in [1, 10000]).
  shares = std::clamp<uint64_t>(shares, kMinShares, kMaxShares);
  return 1 + ((shares - 2) * 9999) / 262142;
}

}  // namespace cgroups
