#pragma once
// /proc/self/mountinfo parsing and discovery of the cgroup hierarchies under a mount root.
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace cgroups {

struct MountInfo {
  std::string root;         // root of the mount inside its filesystem (field 4)
  std::string mount_point;  // octal escapes (\040) decoded
  std::string fstype;       // "cgroup", "cgroup2", "tmpfs", ...
  std::string source;
  std::string super_options;  // "rw,cpu,cpuacct", "rw,name=systemd", "rw,nsdelegate"
};

std::vector<MountInfo> ParseMountInfo(std::string_view text);

// The v1 hierarchies (fstype "cgroup") mounted under `mount_root`, as controller → mount point.
// Co-mounted controllers ("cpu,cpuacct") map to the same mount point; named hierarchies appear as
// "name=systemd". The first mount of a hierarchy wins (later ones are usually bind mounts).
std::map<std::string, std::string> V1Hierarchies(const std::vector<MountInfo>& mounts,
                                                 std::string_view mount_root);

// The fstype of the mount whose mount point is exactly `path`, or "" if none.
std::string FsTypeAt(const std::vector<MountInfo>& mounts, std::string_view path);

}  // namespace cgroups
