#include "cgroups/oom_watcher.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>

#include "cgroups/cgroup_dir.h"

namespace cgroups {

Result<OomWatcher> OomWatcher::Open(Driver& driver, const std::string& path) {
  OomWatcher w;
  w.driver_ = &driver;
  w.path_ = path;
  w.v1_ = driver.version() == Version::kV1;
  auto count = driver.OomKillCount(path);
  if (count) {
    w.last_ = *count;
  } else if (count.error().code == ENOTSUP && w.v1_) {
    w.counter_ = false;  // old kernel: count events instead
  } else {
    return tl::unexpected(count.error().Wrap("watch OOM of cgroup '" + path + "'"));
  }
  std::string dir = driver.ControllerPath("memory", path);
  if (dir.empty())
    return base::Fail("watch OOM of cgroup '" + path + "': no memory hierarchy", ENODEV);

  if (w.v1_) {
    auto cg = CgroupDir::Open(dir);
    if (!cg) return tl::unexpected(cg.error());
    base::UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd) return SysFail("eventfd for OOM of cgroup '" + dir + "'", errno);
    base::UniqueFd ctl(::openat(cg->fd(), "memory.oom_control", O_RDONLY | O_CLOEXEC));
    if (!ctl) return SysFail("open memory.oom_control of cgroup '" + dir + "'", errno);
    // The kernel keeps its own references to both files; ours may close after registration.
    CUBELET_TRY(cg->Write("cgroup.event_control",
                          std::to_string(efd.get()) + " " + std::to_string(ctl.get())));
    w.fd_ = std::move(efd);
  } else {
    base::UniqueFd ifd(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
    if (!ifd) return SysFail("inotify for OOM of cgroup '" + dir + "'", errno);
    std::string events = dir + "/memory.events";
    if (::inotify_add_watch(ifd.get(), events.c_str(), IN_MODIFY) < 0)
      return SysFail("watch " + events, errno);
    w.fd_ = std::move(ifd);
  }
  return w;
}

Result<uint64_t> OomWatcher::Check() {
  uint64_t events = 0;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;  // EAGAIN: drained
    if (v1_ && n == sizeof(uint64_t)) {
      uint64_t v;
      __builtin_memcpy(&v, buf, sizeof v);
      events += v;
    }
    if (n == 0) break;
  }
  if (!counter_) return events;
  auto count = driver_->OomKillCount(path_);
  if (!count) return tl::unexpected(count.error());
  uint64_t fresh = *count >= last_ ? *count - last_ : *count;
  last_ = *count;
  return fresh;
}

}  // namespace cgroups
