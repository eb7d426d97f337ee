#pragma once
// Per-key exponential back-off with the semantics of client-go's flowcontrol.Backoff, which the
// kubelet uses for CrashLoopBackOff and image pulls: the first failure may retry at once, then
// 10 s doubling to 5 min; an entry idle for 2 x max (10 min) starts over.
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "base/time.h"

namespace agent {

class Backoff {
 public:
  using Duration = std::chrono::nanoseconds;
  Backoff(const base::Clock* clock, Duration initial, Duration max)
      : clock_(clock), initial_(initial), max_(max) {}

  // True when `event_time` (e.g. when the container finished) is within the current back-off.
  bool IsInBackOffSince(const std::string& key, base::WallTime event_time) const {
    std::lock_guard lk(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return false;
    if (event_time - it->second.last_update > 2 * max_) return false;
    return clock_->Now() - event_time < it->second.backoff;
  }
  // Moves to the next back-off step for `key`, as of `event_time`.
  void Next(const std::string& key, base::WallTime event_time) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || event_time - it->second.last_update > 2 * max_) {
      entries_[key] = {initial_, event_time};
      return;
    }
    it->second.backoff = std::min(it->second.backoff * 2, max_);
    it->second.last_update = event_time;
  }
  Duration Get(const std::string& key) const {
    std::lock_guard lk(mu_);
    auto it = entries_.find(key);
    return it == entries_.end() ? Duration(0) : it->second.backoff;
  }
  void Reset(const std::string& key) {
    std::lock_guard lk(mu_);
    entries_.erase(key);
  }
  void ResetPrefix(const std::string& prefix) {
    std::lock_guard lk(mu_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->first.compare(0, prefix.size(), prefix) == 0) it = entries_.erase(it);
      else ++it;
    }
  }

 private:
  struct Entry {
    Duration backoff;
    base::WallTime last_update;
  };
  const base::Clock* clock_;
  Duration initial_, max_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
};

}  // namespace agent
