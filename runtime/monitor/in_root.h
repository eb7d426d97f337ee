#pragma once
// Paths inside a container's root filesystem with every component resolved under that root
// (openat2 RESOLVE_IN_ROOT, no magic links): a symlink in an image cannot lead a mount point
// outside it. Shared by the container init and cubelet's rootfs preparation; no dependencies.
#include <string>

namespace monitor {

// openat2 of `path` under `root` (O_CLOEXEC added); -1 with errno.
int OpenInRoot(int root, const std::string& path, int flags);

// mkdir -p of `path` (absolute, inside the root) with mode 0755 whatever the umask; an O_PATH
// fd of the directory, or -1 with errno and *failed set to what failed ("open \"/x\"" or
// "mkdir \"/x\"").
int MkdirAllInRoot(int root, const std::string& path, std::string* failed = nullptr);

}  // namespace monitor
