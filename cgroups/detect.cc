#include <sys/vfs.h>

#include <cerrno>

#include "base/file.h"
#include "cgroups/cgroup_dir.h"
#include "cgroups/driver.h"
#include "cgroups/mountinfo.h"
#include "cgroups/v1_driver.h"
#include "cgroups/v2_driver.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace cgroups {

Result<DriverPtr> Detect(const std::string& root, const std::string& mount_root) {
  return Detect(root, mount_root, DriverOptions{});
}

Result<DriverPtr> Detect(const std::string& root, const std::string& mount_root,
                         const DriverOptions& options) {
  auto clean_root = JoinCgroupPath("", root);
  if (!clean_root) return tl::unexpected(clean_root.error().Wrap("cgroup root"));
  std::string mount = mount_root;
  while (mount.size() > 1 && mount.back() == '/') mount.pop_back();

  struct statfs fs;
  if (::statfs(mount.c_str(), &fs) != 0)
    return SysFail("probe cgroup mount '" + mount + "'", errno);
  if (static_cast<unsigned long>(fs.f_type) == CGROUP2_SUPER_MAGIC)
    return DriverPtr(std::make_unique<V2Driver>(mount, *clean_root, options));

  auto text = base::ReadFile("/proc/self/mountinfo");
  if (!text) return tl::unexpected(text.error());
  auto hierarchies = V1Hierarchies(ParseMountInfo(*text), mount);
  if (hierarchies.empty()) {
    return base::Fail("no cgroup2 mount at '" + mount + "' and no cgroup v1 hierarchies under it",
                      ENODEV);
  }
  return DriverPtr(std::make_unique<V1Driver>(std::move(hierarchies), *clean_root, mount, options));
}

}  // namespace cgroups
