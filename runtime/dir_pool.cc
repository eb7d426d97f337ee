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
  want_ = true;
  thread_ = std::thread([this] { Loop(); });
}

ContainerDirPool::~ContainerDirPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
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
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || want_; });
    if (stop_) return;
    want_ = false;
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
  }
}

void ContainerDirPool::Replenish() {
  if (size_ == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_.size() >= size_) return;
    want_ = true;
  }
  cv_.notify_one();
}

bool ContainerDirPool::TakeInto(const std::string& dest) {
  std::string entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_.empty()) return false;
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
