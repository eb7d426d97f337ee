#include "cgroups/v1/pids_controller.h"

#include "cgroups/parse.h"

namespace cgroups::v1 {

Result<> PidsController::SetMax(int64_t max) {
  return dir_.Write("pids.max", FormatMaxOrNumber(max));
}

Result<int64_t> PidsController::Max() const {
  auto text = dir_.Read("pids.max");
  if (!text) return tl::unexpected(text.error());
  auto v = ParseMaxOrNumber(*text);
  if (!v) return tl::unexpected(v.error().Wrap("pids.max of cgroup '" + dir_.path() + "'"));
  return v;
}

Result<uint64_t> PidsController::Current() const { return dir_.ReadU64("pids.current"); }

}  // namespace cgroups::v1
