#include "runtime/exit_watcher.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "base/log.h"
#include "runtime/monitor/spec.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace runtime {

Result<base::UniqueFd> OpenPidFd(pid_t pid, uint64_t start_ticks) {
  if (pid <= 0) return base::Fail("no process id", ESRCH);
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return base::Errno("pidfd_open " + std::to_string(pid));
  base::UniqueFd pidfd(fd);
  // The pidfd pins the process: if the start time matches now, it is the same process.
  if (start_ticks != 0 && monitor::ProcessStartTicks(pid) != start_ticks) {
    return base::Fail("process " + std::to_string(pid) + " is not the one recorded", ESRCH);
  }
  return pidfd;
}

ExitWatcher::ExitWatcher(Callback on_exit)
    : on_exit_(std::move(on_exit)),
      epoll_(epoll_create1(EPOLL_CLOEXEC)),
      wake_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev);
  thread_ = std::thread([this] { Loop(); });
}

ExitWatcher::~ExitWatcher() {
  uint64_t one = 1;
  ssize_t n = write(wake_.get(), &one, sizeof one);
  (void)n;
  if (thread_.joinable()) thread_.join();
}

Result<> ExitWatcher::Watch(const std::string& key, base::UniqueFd pidfd,
                            base::UniqueFd done_pipe) {
  std::lock_guard<std::mutex> lock(mu_);
  int fd = pidfd.get();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    ReapNow(fd);
    return base::Errno("watch " + key);
  }
  watched_[fd] = Entry{key, std::move(pidfd), true, false};
  if (done_pipe) {
    int pfd = done_pipe.get();
    epoll_event pev{};
    pev.events = EPOLLIN;  // EPOLLHUP is always reported: a monitor that died closes it too
    pev.data.fd = pfd;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, pfd, &pev) == 0) {
      watched_[pfd] = Entry{key, std::move(done_pipe), true, true};
    }
  }
  return {};
}

void ExitWatcher::StopReportingLocked(const std::string& key) {
  for (auto it = watched_.begin(); it != watched_.end();) {
    if (it->second.key != key || !it->second.report) {
      ++it;
      continue;
    }
    if (it->second.pipe) {
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, it->first, nullptr);
      it = watched_.erase(it);
      continue;
    }
    it->second.report = false;  // the process is still reaped when it exits
    ++it;
  }
}

void ExitWatcher::Reap(base::UniqueFd pidfd) {
  if (!pidfd) return;
  std::lock_guard<std::mutex> lock(mu_);
  int fd = pidfd.get();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return;
  watched_[fd] = Entry{"", std::move(pidfd), false, false};
}

bool ExitWatcher::Unwatch(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  bool found = false;
  for (auto& [fd, e] : watched_) found |= e.report && e.key == key;
  if (found) StopReportingLocked(key);
  return found;
}

void ExitWatcher::ReapNow(int pidfd) {
  // Monitors we spawned are our children: collect the zombie. Adopted ones (started by an
  // earlier cubelet process) are not: ECHILD, nothing to do.
  siginfo_t si{};
  while (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &si,
                WEXITED | WNOHANG) != 0 && errno == EINTR) {
  }
}

void ExitWatcher::Loop() {
  while (true) {
    epoll_event evs[16];
    int n = epoll_wait(epoll_.get(), evs, 16, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      base::log::Error("exit watcher stopped", {{"error", strerror(errno)}});
      return;
    }
    std::vector<std::string> exited;
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == wake_.get()) return;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = watched_.find(fd);
      if (it == watched_.end()) continue;
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
      if (!it->second.pipe) ReapNow(fd);
      Entry e = std::move(it->second);
      watched_.erase(it);
      if (e.report) {
        exited.push_back(e.key);
        StopReportingLocked(e.key);  // once per key: the other fd of the pair stays quiet
      }
    }
    for (const auto& key : exited) on_exit_(key);
  }
}

}  // namespace runtime
