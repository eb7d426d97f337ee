#pragma once
// Event-driven OOM detection for one cgroup, for the runtime's event loop:
//  - v1: an eventfd registered through cgroup.event_control on memory.oom_control; the kernel
//    signals it whenever the cgroup hits OOM (and once more when the cgroup is removed).
//  - v2: inotify IN_MODIFY on memory.events, which the kernel touches on every event there
//    (low/high/max/oom/oom_kill).
// Either way fd() becomes readable; Check() then drains it and says how many OOM kills happened
// since the last Check, from the driver's OomKillCount (so an unrelated memory.events change
// counts as 0). The simpler alternative needs no watcher at all: compare OomKillCount before and
// after a container exits (the count is reliable on both drivers; the tests prove it).
#include <cstdint>
#include <string>

#include "base/fd.h"
#include "cgroups/driver.h"

namespace cgroups {

class OomWatcher {
 public:
  static Result<OomWatcher> Open(Driver& driver, const std::string& path);

  int fd() const { return fd_.get(); }  // poll for POLLIN
  // Drains fd() (non-blocking) and returns the number of OOM kills since the previous call (or
  // since Open). On v1 kernels without the oom_kill counter, returns the number of OOM events.
  Result<uint64_t> Check();

 private:
  OomWatcher() = default;
  Driver* driver_ = nullptr;
  std::string path_;
  base::UniqueFd fd_;
  bool counter_ = true;  // OomKillCount available
  uint64_t last_ = 0;
  bool v1_ = false;
};

}  // namespace cgroups
