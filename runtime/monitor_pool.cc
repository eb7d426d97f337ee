#include "runtime/monitor_pool.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "runtime/monitor/spec.h"

namespace runtime {

MonitorPool::MonitorPool(std::string monitor_path, int spares)
    : path_(std::move(monitor_path)), enabled_(spares > 0) {
  if (!enabled_) return;
  foreground_ = CurrentSchedPolicy();
  // Giving a spare cubelet's scheduling back needs CAP_SYS_NICE: without it, spares are
  // spawned with cubelet's (a container must never inherit a lowered one).
  background_spares_ = geteuid() == 0;
  waker_.WakeNow();  // the first spare at once
  thread_ = std::thread([this] { Loop(); });
}

MonitorPool::~MonitorPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  waker_.WakeNow();
  if (thread_.joinable()) thread_.join();
  if (spare_) {
    spare_->command.reset();  // EOF: the spare exits
    WaitChild(spare_->pid);
  }
}

Result<MonitorProcess> MonitorPool::Spawn() {
  return SpawnMonitor(path_, {"spare"}, -1, -1, /*new_session=*/true);
}

void MonitorPool::Loop() {
  // Spawned processes inherit this thread's scheduling; Run gives a spare cubelet's back.
  if (background_spares_ && !EnterBackground()) background_spares_ = false;
  while (true) {
    waker_.Wait();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      if (spare_) continue;
    }
    auto m = Spawn();
    if (!m) {
      base::log::Warn("spawning a spare container monitor failed", {{"error", m.error().message}});
      continue;  // tried again at the next Replenish; until then starts spawn their own
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_) {  // cannot happen (one producer), but never leak a process
      spare_->command.reset();
      WaitChild(spare_->pid);
    }
    spare_ = std::move(*m);
  }
}

void MonitorPool::Replenish() {
  if (!enabled_) return;
  waker_.WakeAfter(kReplenishDelay);  // no context switch now (background.h)
}

Result<MonitorProcess> MonitorPool::Run(const std::string& state_dir, int rootfs_mount_fd,
                                        bool rootfs_follows) {
  std::optional<MonitorProcess> m;
  if (enabled_) {
    // Never waits for the background thread (it may sit preempted, at the lowest priority,
    // in the few instructions it holds the lock for): without the lock, a spawn as if none
    // was ready.
    std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
    if (lock.owns_lock() && spare_) {
      m = std::move(spare_);
      spare_.reset();
    }
  }
  if (m) {
    // A spare that died (killed by someone) has hung up its status pipe.
    pollfd p{m->status.get(), POLLIN, 0};
    bool dead = poll(&p, 1, 0) != 0;
    // Spawned in the background (Loop): the monitor, and the container it clones, run with
    // cubelet's scheduling. A spare still finishing its own start-up gets it for that too.
    if (!dead && background_spares_ && !RestoreSchedPolicy(m->pid, foreground_)) {
      base::log::Warn("restoring a spare container monitor's priority failed; spawning one",
                      {{"pid", m->pid}, {"error", strerror(errno)}});
      dead = true;
    }
    if (dead) {
      m->command.reset();
      WaitChild(m->pid);
      m.reset();
    }
  }
  if (!m) {
    auto fresh = Spawn();
    if (!fresh) return tl::unexpected(fresh.error());
    m = std::move(*fresh);
  }
  if (auto r = SendCommand(m->command.get(),
                           (rootfs_follows ? "run+ " : "run ") + monitor::Escape(state_dir),
                           rootfs_mount_fd);
      !r) {
    m->command.reset();
    WaitChild(m->pid);
    return tl::unexpected(r.error());
  }
  return std::move(*m);
}

}  // namespace runtime
