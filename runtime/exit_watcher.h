#pragma once
// One thread that waits on the pidfds of container monitors (epoll) and reports each exit
// once: exits arrive as events, nothing is polled.
#include <sys/types.h>

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/result.h"

namespace runtime {

using base::Result;

class ExitWatcher {
 public:
  using Callback = std::function<void(const std::string& key)>;
  explicit ExitWatcher(Callback on_exit);
  ~ExitWatcher();
  ExitWatcher(const ExitWatcher&) = delete;
  ExitWatcher& operator=(const ExitWatcher&) = delete;

  // Watches `pidfd` (owned from now on); the callback runs on the watcher thread when the
  // process exits. A process that is already gone is reported right away.
  Result<> Watch(const std::string& key, base::UniqueFd pidfd);
  // True if `key` was being watched (and now is not): its exit will not be reported.
  bool Unwatch(const std::string& key);

 private:
  void Loop();

  Callback on_exit_;
  base::UniqueFd epoll_;
  base::UniqueFd wake_;
  std::mutex mu_;
  std::map<int, std::pair<std::string, base::UniqueFd>> watched_;  // fd -> (key, fd)
  std::thread thread_;
};

// pidfd_open that also checks /proc/PID/stat's start time, so a reused pid is never adopted.
Result<base::UniqueFd> OpenPidFd(pid_t pid, uint64_t start_ticks);

}  // namespace runtime
