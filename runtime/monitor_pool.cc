#include "runtime/monitor_pool.h"

#include <poll.h>

#include "base/log.h"
#include "runtime/monitor/spec.h"

namespace runtime {

MonitorPool::MonitorPool(std::string monitor_path, int spares)
    : path_(std::move(monitor_path)), enabled_(spares > 0) {
  if (!enabled_) return;
  want_ = true;
  thread_ = std::thread([this] { Loop(); });
}

MonitorPool::~MonitorPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
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
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || want_; });
    if (stop_) return;
    want_ = false;
    lock.unlock();
    auto m = Spawn();
    if (!m) base::log::Warn("spawning a spare container monitor failed", {{"error", m.error().message}});
    lock.lock();
    if (m) {
      if (spare_) {  // cannot happen (one producer), but never leak a process
        spare_->command.reset();
        WaitChild(spare_->pid);
      }
      spare_ = std::move(*m);
    }
  }
}

void MonitorPool::Replenish() {
  if (!enabled_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_) return;
    want_ = true;
  }
  cv_.notify_one();
}

Result<MonitorProcess> MonitorPool::Run(const std::string& state_dir, int rootfs_mount_fd,
                                        bool rootfs_follows) {
  std::optional<MonitorProcess> m;
  if (enabled_) {
    std::lock_guard<std::mutex> lock(mu_);
    if (spare_) {
      m = std::move(spare_);
      spare_.reset();
    }
  }
  if (m) {
    // A spare that died (killed by someone) has hung up its status pipe.
    pollfd p{m->status.get(), POLLIN, 0};
    if (poll(&p, 1, 0) != 0) {
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
