#include "cgroups/v1/cpuset_controller.h"

#include "base/strings.h"

namespace cgroups::v1 {
namespace {

Result<std::string> ReadTrimmed(const CgroupDir& dir, const char* file) {
  auto text = dir.Read(file);
  if (!text) return tl::unexpected(text.error());
  return std::string(base::Trim(*text));
}

}  // namespace

Result<std::string> CpusetController::Cpus() const { return ReadTrimmed(dir_, "cpuset.cpus"); }
Result<std::string> CpusetController::Mems() const { return ReadTrimmed(dir_, "cpuset.mems"); }

Result<> CpusetController::SetCpus(const std::string& cpus) {
  return dir_.Write("cpuset.cpus", cpus);
}

Result<> CpusetController::SetMems(const std::string& mems) {
  return dir_.Write("cpuset.mems", mems);
}

Result<> CpusetController::InheritFrom(const CgroupDir& parent) {
  for (const char* file : {"cpuset.cpus", "cpuset.mems"}) {
    auto mine = ReadTrimmed(dir_, file);
    if (!mine) return tl::unexpected(mine.error());
    if (!mine->empty()) continue;
    auto theirs = ReadTrimmed(parent, file);
    if (!theirs) return tl::unexpected(theirs.error());
    CUBELET_TRY(dir_.Write(file, *theirs));
  }
  return {};
}

}  // namespace cgroups::v1
