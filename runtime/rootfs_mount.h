#pragma once
// A container's overlay rootfs mounted *detached* (fsopen/fsconfig/fsmount: in no mount
// namespace), by cubelet while it creates the container. The container's init attaches it with
// move_mount instead of mounting the overlay itself: the mount creates directories and files
// in the work directory on the disk (~1 ms where inodes are slow), now done off the start's
// critical path, in parallel with the rest of CreateContainer. Closing the fd unmounts it
// (the overlay is volatile: no sync) unless it was attached.
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace runtime {

struct OverlayLayout {
  std::vector<std::string> lowers;  // top layer first, absolute paths
  std::string upper;
  std::string work;
  bool volatile_ = false;
};

// Needs the new mount API and overlayfs "lowerdir+" (Linux 6.8+; each path < 256 bytes, the
// fsconfig limit). Fails otherwise: the init then mounts the overlay from the spec as before.
base::Result<base::UniqueFd> MountOverlayDetached(const OverlayLayout& layout);

struct MountPoint {
  std::string path;  // absolute, inside the container
  bool file = false;
};

// Creates the mount points the init would create in the rootfs (the sandbox's /etc files,
// volumes), in the detached mount `rootfs` (every component resolved inside it, as the init
// does), so that the copy-up of their parent and the new inodes on the disk are made before the
// start. Best effort: whatever is not made here the init makes (or reports) as before. Leave out
// paths that the init creates on other mounts (/dev, /proc, /sys, inside volumes).
void PrepareMountPoints(int rootfs, const std::vector<MountPoint>& points);

}  // namespace runtime
