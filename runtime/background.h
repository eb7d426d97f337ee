#pragma once
// Scheduling of the runtime's own background work: spare container monitors and container
// directories made ahead (monitor_pool.h, dir_pool.h), and a monitor's teardown once it has
// recorded its container's exit. It must not compete with containers for the CPU; it runs at
// the lowest nice value (kBackgroundNice) and, for the pools, a little after the start that
// asked for it (kReplenishDelay).
//
// Not SCHED_IDLE: that thread may be preempted while it holds a kernel lock others need (the
// cgroup fork lock while it spawns, which every cgroup migration waits for; the mount
// namespace lock while the monitor's mounts are torn down), and on a node whose CPUs are all
// busy a SCHED_IDLE thread can wait for hundreds of ms to run again. At nice 19 it still gets
// its share within a scheduling period. The pools' takers do not wait for the pools' own
// mutex at all (try_lock, then the slow path).
#include <sched.h>
#include <sys/types.h>

#include <chrono>

#include "base/fd.h"

namespace runtime {

struct SchedPolicy {
  int policy = SCHED_OTHER;
  int priority = 0;  // sched_priority (real-time policies)
  int nice = 0;
};

inline constexpr int kBackgroundNice = 19;
// How long after a start the pools replenish what it took. On small VMs a process spawned
// (or inodes made) while the container just started execs and runs its first steps slows
// that container down even on the other core and at the lowest priority (page-table and
// filesystem work serialise in the kernel and the hypervisor): create + start + exit of a
// short container took 1.5-2 ms longer when the replacement spare monitor was spawned at
// once (docs/BENCHMARKS.md). A start that finds no spare spawns its own monitor, as before.
inline constexpr std::chrono::milliseconds kReplenishDelay{10};

// How a background thread sleeps until it has work: Wait() returns when WakeNow() was called
// or the timer armed by WakeAfter() expired. WakeAfter() wakes no one now: the start that asks
// for a replacement does not hand the CPU to the background thread at that moment (a context
// switch to it there cost the just-started container's exit ~1 ms on small VMs).
class BackgroundWaker {
 public:
  BackgroundWaker();
  BackgroundWaker(const BackgroundWaker&) = delete;
  BackgroundWaker& operator=(const BackgroundWaker&) = delete;

  void WakeNow();
  // Arms the timer unless it is already armed (an earlier request is not postponed).
  void WakeAfter(std::chrono::nanoseconds delay);
  // Until a wake-up is due; consumes it (and any earlier ones).
  void Wait();

 private:
  base::UniqueFd event_;
  base::UniqueFd timer_;
};

// The calling thread's policy, priority and nice value.
SchedPolicy CurrentSchedPolicy();
// Lowers the calling thread's priority to kBackgroundNice (processes it spawns inherit it).
// False if refused.
bool EnterBackground();
// Gives thread/process `tid` the policy `p` back (raising a nice value needs CAP_SYS_NICE,
// or a RLIMIT_NICE that allows `p.nice`). False if refused.
bool RestoreSchedPolicy(pid_t tid, const SchedPolicy& p);

}  // namespace runtime
