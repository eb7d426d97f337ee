#pragma once
// Kubernetes resource.Quantity parsing ("100m", "1.5", "64Mi", "1G", "2e3").
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace base {

// Value in thousandths (cpu "100m" -> 100, "2" -> 2000), rounded up like Quantity.MilliValue().
Result<int64_t> ParseQuantityMilli(std::string_view q);
// Integer value, rounded up ("64Mi" -> 67108864, "100m" -> 1).
Result<int64_t> ParseQuantity(std::string_view q);
// Canonical-ish formatting for node capacity: bytes as "<n>Ki" when divisible, else plain.
std::string FormatBytesKi(int64_t bytes);

}  // namespace base
