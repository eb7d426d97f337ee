#include "runtime/cgroup_spare.h"

#include "base/log.h"

namespace runtime {

CgroupSpare::CgroupSpare(cgroups::Driver* driver, bool enabled)
    : driver_(driver), enabled_(enabled) {
  if (enabled_) thread_ = std::thread([this] { Loop(); });
}

CgroupSpare::~CgroupSpare() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (!ready_.empty()) (void)driver_->Remove(SpareOf(ready_));
}

void CgroupSpare::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || (wake_ && want_ != ready_); });
    if (stop_) return;
    wake_ = false;
    std::string old = ready_, target = want_;
    ready_.clear();
    busy_ = old;
    lock.unlock();
    if (!old.empty()) (void)driver_->Remove(SpareOf(old));
    lock.lock();
    busy_ = target;
    // Only in a pod cgroup that exists (Create would make the missing levels) and is still
    // wanted (Drop clears want_ and waits while busy_ is its parent).
    bool make = !target.empty() && target == want_;
    lock.unlock();
    bool made = false;
    if (make && driver_->Exists(target)) {
      auto r = driver_->Create(SpareOf(target));
      if (!r) {
        base::log::Warn("making a spare container cgroup failed",
                        {{"cgroup", SpareOf(target)}, {"error", r.error().message}});
        (void)driver_->Remove(SpareOf(target));
      } else {
        made = true;
      }
    }
    lock.lock();
    busy_.clear();
    if (made) ready_ = target;
    cv_.notify_all();
  }
}

bool CgroupSpare::TakeInto(const std::string& parent, const std::string& path) {
  if (!enabled_) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (ready_ != parent || parent.empty()) return false;
    ready_.clear();
  }
  auto r = driver_->Rename(SpareOf(parent), path);
  if (r) return true;
  base::log::Warn("taking the spare container cgroup failed",
                  {{"cgroup", SpareOf(parent)}, {"error", r.error().message}});
  (void)driver_->Remove(SpareOf(parent));
  return false;
}

void CgroupSpare::Want(const std::string& parent, bool now) {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    want_ = parent;
    if (now) wake_ = true;
  }
  if (now) cv_.notify_all();
}

void CgroupSpare::Replenish() {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    wake_ = true;
  }
  cv_.notify_all();
}

void CgroupSpare::Drop(const std::string& parent) {
  if (!enabled_) return;
  std::unique_lock<std::mutex> lock(mu_);
  if (want_ == parent) want_.clear();
  cv_.wait(lock, [&] { return busy_ != parent; });
  if (ready_ == parent) {
    ready_.clear();
    lock.unlock();
    (void)driver_->Remove(SpareOf(parent));
  }
}

void CgroupSpare::Sweep(const std::string& parent) {
  if (!enabled_) return;
  (void)driver_->Remove(SpareOf(parent));
}

std::string CgroupSpare::ready() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

}  // namespace runtime
