#include "runtime/dir_pool.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"

namespace runtime {

ContainerDirPool::ContainerDirPool(std::string dir, int size)
    : dir_(std::move(dir)), size_(size > 0 ? static_cast<size_t>(size) : 0) {
  // Entries of an earlier process (complete or not) are not known to anyone: removed.
  if (auto r = base::RemoveAll(dir_); !r) {
    base::log::Warn("removing the container directory pool failed",
                    {{"dir", dir_}, {"error", r.error().message}});
  }
  if (size_ == 0) return;
  if (auto r = base::MkdirAll(dir_, 0700); !r) {
    base::log::Warn("container directory pool disabled",
                    {{"dir", dir_}, {"error", r.error().message}});
    return;
  }
  // Each entry is the top of a container's writable layer. On ext4 without a journal, every
  // new inode is allocated past the inodes of its block group freed in the last 60-300 s
  // (`recently_deleted()`, so that a crash cannot reuse one whose deletion is not on the disk
  // yet), and entries made next to each other share one group: with containers coming and
  // going, the overlay mount's own inodes (work/work, its probes, the volatile marker) cost
  // 3-4 ms instead of 0.2 (docs/BENCHMARKS.md). Spread, a group rarely holds many.
  base::SpreadSubdirectories(dir_);
  waker_.WakeNow();  // filled at once
  thread_ = std::thread([this] { Loop(); });
}

ContainerDirPool::~ContainerDirPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  waker_.WakeNow();
  if (thread_.joinable()) thread_.join();
  if (size_ > 0) (void)base::RemoveAll(dir_);
}

base::Result<std::string> ContainerDirPool::Make() {
  std::string name = base::RandomAlnum(16);
  std::string tmp = dir_ + "/.new-" + name;
  auto fail = [&](const std::string& what) {
    auto e = base::Errno(what);
    (void)base::RemoveAll(tmp);
    return e;
  };
  if (mkdir(tmp.c_str(), 0755) != 0) return fail("mkdir " + tmp);
  for (const char* sub : {"/upper", "/work"}) {
    if (mkdir((tmp + sub).c_str(), 0755) != 0) return fail("mkdir " + tmp + sub);
  }
  int fd = open((tmp + "/" + kRecordStage).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return fail("create " + tmp + "/" + kRecordStage);
  close(fd);
  std::string path = dir_ + "/" + name;
  if (rename(tmp.c_str(), path.c_str()) != 0) return fail("rename " + tmp);
  return path;
}

void ContainerDirPool::Loop() {
  EnterBackground();  // background.h: does not compete with the containers for the CPU
  while (true) {
    waker_.Wait();
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_ && ready_.size() < size_) {
      lock.unlock();
      auto e = Make();
      lock.lock();
      if (!e) {
        // Tried again at the next Replenish; until then CreateContainer makes its own.
        base::log::Warn("making a container directory ahead failed", {{"error", e.error().message}});
        break;
      }
      ready_.push_back(std::move(*e));
    }
    if (stop_) return;
  }
}

void ContainerDirPool::Replenish() {
  if (size_ == 0) return;
  waker_.WakeAfter(kReplenishDelay);  // no context switch now (background.h)
}

bool ContainerDirPool::TakeInto(const std::string& dest) {
  std::string entry;
  {
    // Never waits for the background thread (see MonitorPool::Run): the caller makes its own.
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock() || ready_.empty()) return false;
    entry = std::move(ready_.back());
    ready_.pop_back();
  }
  if (rename(entry.c_str(), dest.c_str()) != 0) {
    base::log::Warn("taking a container directory made ahead failed",
                    {{"entry", entry}, {"dest", dest}, {"error", strerror(errno)}});
    (void)base::RemoveAll(entry);
    return false;
  }
  return true;
}

size_t ContainerDirPool::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_.size();
}

}  // namespace runtime
