#pragma once
// A warm cubelet-monitor: one process spawned ahead of time (`cubelet-monitor spare`) that waits
// for "run <dir>" on its command fd. Starting a container then costs a socket write instead of a
// spawn + exec of the monitor, the largest step left on the start path on small VMs, where
// creating a process costs milliseconds. The spare is replaced in the background once the start
// that took it is over (Replenish). It exits by itself when cubelet goes away (EOF on the
// command fd).
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/result.h"
#include "runtime/background.h"
#include "runtime/monitor_process.h"

namespace runtime {

class MonitorPool {
 public:
  // `spares` = 0 disables the pool: every Run spawns.
  MonitorPool(std::string monitor_path, int spares);
  ~MonitorPool();
  MonitorPool(const MonitorPool&) = delete;
  MonitorPool& operator=(const MonitorPool&) = delete;

  // A monitor told to run the container in `state_dir` (its log goes to
  // <state_dir>/monitor.log): the spare when one is ready, else a freshly spawned one.
  // `rootfs_mount_fd` (optional): a detached mount of the container's rootfs, made ahead of
  // the start (fsmount); the monitor gets a copy and the init attaches it. `rootfs_follows`:
  // the caller sends that mount later on `command` ("rootfs" with the fd, or none), before
  // the init needs it (only for specs with cgroup_procs).
  Result<MonitorProcess> Run(const std::string& state_dir, int rootfs_mount_fd = -1,
                             bool rootfs_follows = false);
  // Spawns a new spare in the background if there is none. Called by the user of Run once
  // its start is over: a spawn (posix_spawn + exec, ~1.5 ms of CPU on small VMs) running on
  // the other core during the start slowed it down; it runs kReplenishDelay after this call,
  // at the lowest priority (background.h).
  void Replenish();

 private:
  Result<MonitorProcess> Spawn();
  void Loop();

  const std::string path_;
  const bool enabled_;
  // The scheduling of the thread that made the pool (cubelet's), given back to a spare when
  // it is taken; spares are spawned in the background (lowest priority, background.h) only
  // when that can be undone (root).
  SchedPolicy foreground_;
  bool background_spares_ = false;
  std::mutex mu_;
  BackgroundWaker waker_;
  std::optional<MonitorProcess> spare_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace runtime
