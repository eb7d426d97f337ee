#include "runtime/monitor/in_root.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace monitor {

int OpenInRoot(int root, const std::string& path, int flags) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(syscall(SYS_openat2, root, path.c_str(), &how, sizeof how));
}

int MkdirAllInRoot(int root, const std::string& path, std::string* failed) {
  int fd = OpenInRoot(root, path, O_PATH | O_DIRECTORY);
  if (fd >= 0) return fd;
  if (errno != ENOENT) {
    if (failed) *failed = "open \"" + path + "\"";
    return -1;
  }
  size_t slash = path.find_last_of('/');
  std::string parent = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  std::string name = path.substr(slash == std::string::npos ? 0 : slash + 1);
  int pfd = MkdirAllInRoot(root, parent, failed);
  if (pfd < 0) return -1;
  // The parent resolved (symlinks followed inside the root): create the last component there.
  if (mkdirat(pfd, name.c_str(), 0755) == 0) {
    fchmodat(pfd, name.c_str(), 0755, 0);
  } else if (errno != EEXIST) {
    int e = errno;
    close(pfd);
    if (failed) *failed = "mkdir \"" + path + "\"";
    errno = e;
    return -1;
  }
  close(pfd);
  fd = OpenInRoot(root, path, O_PATH | O_DIRECTORY);
  if (fd < 0 && failed) *failed = "open \"" + path + "\"";
  return fd;
}

}  // namespace monitor
