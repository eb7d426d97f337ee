#include "runtime/network/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "base/file.h"
#include "base/log.h"

namespace runtime::net {

Result<NetNamespace> NetNamespace::FromFd(base::UniqueFd fd, std::string path) {
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return base::Errno("stat network namespace " + path);
  return NetNamespace(std::move(fd), std::move(path), st.st_ino, st.st_dev);
}

Result<NetNamespace> NetNamespace::Open(const std::string& path) {
  base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return base::Errno("open network namespace " + path);
  struct statfs sfs {};
  if (::fstatfs(fd.get(), &sfs) != 0) return base::Errno("statfs network namespace " + path);
  if (sfs.f_type != NSFS_MAGIC) {
    return base::Fail("open network namespace " + path + ": not a namespace (not mounted?)",
                      EINVAL);
  }
  return FromFd(std::move(fd), path);
}

Result<NetNamespace> NetNamespace::Current() { return Open("/proc/thread-self/ns/net"); }

bool NetNamespace::IsPinned(const std::string& path) {
  struct statfs sfs {};
  return ::statfs(path.c_str(), &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

Result<NetNamespace> NetNamespace::Create(const std::string& path) {
  if (IsPinned(path)) return Open(path);
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    CUBELET_TRY_CTX(base::MkdirAll(path.substr(0, slash), 0755),
                    "create network namespace " + path);
  }
  // An empty file is the mount point; it may already exist if an earlier attempt crashed between
  // creating it and mounting.
  {
    base::UniqueFd f(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444));
    if (!f) return base::Errno("create network namespace " + path + ": create mount point");
  }
  // unshare() in a throwaway thread so the caller's thread never changes namespace.
  int err = 0;
  std::string step;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      step = "unshare(CLONE_NEWNET)";
      return;
    }
    std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
    if (::mount(self.c_str(), path.c_str(), "none", MS_BIND, nullptr) != 0) {
      err = errno;
      step = "bind mount " + self;
    }
  });
  t.join();
  if (err != 0) {
    ::unlink(path.c_str());
    return base::Errno("create network namespace " + path + ": " + step, err);
  }
  return Open(path);
}

Result<> NetNamespace::Remove(const std::string& path) {
  // MNT_DETACH: a process still entering it must not make removal fail; the namespace lives on
  // for whoever still holds it.
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return base::Errno("remove network namespace " + path + ": unmount");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return base::Errno("remove network namespace " + path + ": unlink");
  }
  return {};
}

Result<NetnsGuard> NetNamespace::Enter() const {
  auto cur = Current();
  if (!cur) return tl::unexpected(cur.error().Wrap("enter network namespace " + path_));
  if (cur->SameAs(*this)) return NetnsGuard(base::UniqueFd());
  if (::setns(fd_.get(), CLONE_NEWNET) != 0) {
    return base::Errno("enter network namespace " + path_);
  }
  return NetnsGuard(std::move(cur->fd_));
}

NetnsGuard::~NetnsGuard() {
  if (!saved_) return;
  if (::setns(saved_.get(), CLONE_NEWNET) != 0) {
    base::log::Error("cannot return to the original network namespace; aborting",
                     {{"errno", errno}});
    std::abort();
  }
}

}  // namespace runtime::net
