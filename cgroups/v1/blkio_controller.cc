#include "cgroups/v1/blkio_controller.h"

#include <cerrno>

#include "cgroups/parse.h"

namespace cgroups::v1 {

std::string BlkioController::WeightFile() const {
  for (const char* f : {"blkio.weight", "blkio.bfq.weight"})
    if (dir_.Has(f)) return f;
  return "";
}

Result<> BlkioController::SetWeight(uint64_t weight) {
  auto file = WeightFile();
  if (file.empty()) {
    return base::Fail("set blkio weight " + std::to_string(weight) + " on cgroup '" + dir_.path() +
                          "': neither blkio.weight nor blkio.bfq.weight exists (is the BFQ "
                          "I/O scheduler available?)",
                      ENOTSUP);
  }
  return dir_.Write(file, std::to_string(weight));
}

Result<uint64_t> BlkioController::Weight() const {
  auto file = WeightFile();
  if (file.empty())
    return base::Fail("read blkio weight of cgroup '" + dir_.path() + "': no weight file", ENOTSUP);
  auto text = dir_.Read(file);
  if (!text) return tl::unexpected(text.error());
  auto v = ParseWeightFile(*text);
  if (!v) return tl::unexpected(v.error().Wrap(file + " of cgroup '" + dir_.path() + "'"));
  return v;
}

Result<> BlkioController::SetThrottle(const BlkioThrottle& t) {
  std::string dev = std::to_string(t.major) + ":" + std::to_string(t.minor) + " ";
  CUBELET_TRY(dir_.Write("blkio.throttle.read_bps_device", dev + std::to_string(t.read_bps)));
  CUBELET_TRY(dir_.Write("blkio.throttle.write_bps_device", dev + std::to_string(t.write_bps)));
  CUBELET_TRY(dir_.Write("blkio.throttle.read_iops_device", dev + std::to_string(t.read_iops)));
  CUBELET_TRY(dir_.Write("blkio.throttle.write_iops_device", dev + std::to_string(t.write_iops)));
  return {};
}

Result<std::map<std::string, uint64_t>> BlkioController::Throttle(const std::string& file) const {
  auto text = dir_.Read(file);
  if (!text) return tl::unexpected(text.error());
  return ParseThrottleFile(*text);
}

}  // namespace cgroups::v1
