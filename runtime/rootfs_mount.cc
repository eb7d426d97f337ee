#include "runtime/rootfs_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/monitor/in_root.h"

namespace runtime {

base::Result<base::UniqueFd> MountOverlayDetached(const OverlayLayout& layout) {
  base::UniqueFd fs(fsopen("overlay", FSOPEN_CLOEXEC));
  if (!fs) return base::Errno("fsopen overlay");
  auto set = [&](const char* key, const std::string& value) -> base::Result<> {
    if (fsconfig(fs.get(), FSCONFIG_SET_STRING, key, value.c_str(), 0) != 0) {
      return base::Errno(std::string("overlay option ") + key + "=" + value);
    }
    return {};
  };
  for (const auto& l : layout.lowers) CUBELET_TRY(set("lowerdir+", l));
  CUBELET_TRY(set("upperdir", layout.upper));
  CUBELET_TRY(set("workdir", layout.work));
  if (layout.volatile_ && fsconfig(fs.get(), FSCONFIG_SET_FLAG, "volatile", nullptr, 0) != 0) {
    return base::Errno("overlay option volatile");
  }
  if (fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0) {
    return base::Errno("create the overlay on " + layout.upper);
  }
  base::UniqueFd mnt(fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!mnt) return base::Errno("fsmount overlay");
  return mnt;
}

namespace {

using monitor::OpenInRoot;

// mkdir -p inside `root` (as the init does); an O_PATH fd of the directory or -1.
base::UniqueFd MkdirAllInRoot(int root, const std::string& path) {
  return base::UniqueFd(monitor::MkdirAllInRoot(root, path));
}

}  // namespace

void PrepareMountPoints(int rootfs, const std::vector<MountPoint>& points) {
  for (const auto& p : points) {
    if (p.path.size() < 2 || p.path[0] != '/') continue;
    base::UniqueFd have(OpenInRoot(rootfs, p.path, O_PATH));
    if (have || errno != ENOENT) continue;  // there already (or for the init to judge)
    if (!p.file) {
      (void)MkdirAllInRoot(rootfs, p.path);
      continue;
    }
    size_t slash = p.path.find_last_of('/');
    base::UniqueFd parent = MkdirAllInRoot(rootfs, slash == 0 ? "/" : p.path.substr(0, slash));
    if (!parent) continue;
    base::UniqueFd f(openat(parent.get(), p.path.c_str() + slash + 1,
                            O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (f) fchmod(f.get(), 0644);
  }
}

}  // namespace runtime
