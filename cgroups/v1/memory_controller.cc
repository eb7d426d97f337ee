#include "cgroups/v1/memory_controller.h"

#include <string>

namespace cgroups::v1 {

Result<> MemoryController::SetLimit(int64_t bytes) {
  return dir_.Write("memory.limit_in_bytes", std::to_string(bytes < 0 ? -1 : bytes));
}

Result<uint64_t> MemoryController::Limit() const {
  auto raw = dir_.ReadU64("memory.limit_in_bytes");
  if (!raw) return raw;
  return V1MemoryLimitOrZero(*raw);
}

Result<uint64_t> MemoryController::Usage() const { return dir_.ReadU64("memory.usage_in_bytes"); }

Result<FlatKeyed> MemoryController::Stat() const {
  auto text = dir_.Read("memory.stat");
  if (!text) return tl::unexpected(text.error());
  return ParseFlatKeyed(*text);
}

Result<OomControl> MemoryController::Oom() const {
  auto text = dir_.Read("memory.oom_control");
  if (!text) return tl::unexpected(text.error());
  return ParseOomControl(*text);
}

Result<> MemoryController::SetUseHierarchy() {
  auto current = dir_.ReadU64("memory.use_hierarchy");
  if (current && *current == 1) return {};
  return dir_.Write("memory.use_hierarchy", "1");
}

}  // namespace cgroups::v1
