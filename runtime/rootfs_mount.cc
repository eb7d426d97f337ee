#include "runtime/rootfs_mount.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

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

}  // namespace runtime
