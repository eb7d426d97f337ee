#pragma once
// A container cgroup made ahead of time in a pod's cgroup, renamed to the container's name at
// CreateContainer: 9 renames instead of 9 mkdirs plus the cpuset values on a v1 host (a
// cgroupfs mkdir makes every control file of every controller; a rename moves one name).
// cgroupfs v1 renames only within the same parent, so the spare belongs to one pod.
//
// Bounded: one spare on the node, "<pod cgroup>/cubelet-spare", for the pod that was last made
// or created a container (its next containers, init containers and restarts take it; another
// pod's first container does not, and moves the spare to that pod). Made by a thread of its own
// (after a start, or when a pod is made), removed when its pod goes (Drop, before the pod's
// cgroup is removed), at shutdown, and at start-up for every known pod (Sweep).
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "cgroups/driver.h"

namespace runtime {

class CgroupSpare {
 public:
  static constexpr const char* kName = "cubelet-spare";

  // `enabled` false: TakeInto always fails (the caller creates).
  CgroupSpare(cgroups::Driver* driver, bool enabled);
  ~CgroupSpare();
  CgroupSpare(const CgroupSpare&) = delete;
  CgroupSpare& operator=(const CgroupSpare&) = delete;

  // Renames the spare of `parent` to `path` (a child of `parent`). False when there is none
  // ready for that parent or the rename failed: the caller creates the cgroup.
  bool TakeInto(const std::string& parent, const std::string& path);
  // The spare should be in `parent` from now on; made in the background at the next Replenish
  // (or now with `now`).
  void Want(const std::string& parent, bool now = false);
  void Replenish();
  // `parent` is going away: no spare is made there any more and the one there is removed
  // (waits for one being made there).
  void Drop(const std::string& parent);
  // A spare left in `parent` by an earlier process (start-up).
  void Sweep(const std::string& parent);
  // The parent whose spare is ready ("" when none; tests).
  std::string ready() const;

 private:
  void Loop();
  std::string SpareOf(const std::string& parent) const { return parent + "/" + kName; }

  cgroups::Driver* const driver_;
  const bool enabled_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::string want_;     // the parent the spare should be in
  std::string ready_;    // the parent whose spare exists and is complete
  std::string busy_;     // the parent the thread is working in
  bool wake_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace runtime
