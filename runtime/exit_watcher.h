#pragma once
// One thread that waits on the pidfds of container monitors (epoll) and reports each exit
// once: exits arrive as events, nothing is polled. Monitors started by this process are its
// children (they are not double-forked away: see StartContainer); the watcher reaps them.
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
  // process exits. A process that is already gone is reported right away. With `done_pipe`
  // (the read end of a pipe the process writes to, or closes, once the work the key stands for
  // is over), the exit is reported as soon as that pipe is readable, whichever comes first:
  // a container monitor says "exited" when the exit record is written, ~1 ms before its own
  // teardown ends. The process is still reaped when it exits.
  Result<> Watch(const std::string& key, base::UniqueFd pidfd, base::UniqueFd done_pipe = {});
  // True if `key` was being watched (and now is not): its exit will not be reported (the
  // process is still reaped when it is our child).
  bool Unwatch(const std::string& key);
  // Only reaps `pidfd`'s process (a child of ours) when it exits; nothing is reported.
  void Reap(base::UniqueFd pidfd);

 private:
  void Loop();
  static void ReapNow(int pidfd);

  Callback on_exit_;
  base::UniqueFd epoll_;
  base::UniqueFd wake_;
  std::mutex mu_;
  struct Entry {
    std::string key;
    base::UniqueFd fd;  // a pidfd, or a done pipe
    bool report = true;
    bool pipe = false;
  };
  // Under mu_: no entry of `key` reports any more; its done pipe (if still watched) is closed.
  void StopReportingLocked(const std::string& key);
  std::map<int, Entry> watched_;  // by fd
  std::thread thread_;
};

// pidfd_open that also checks /proc/PID/stat's start time, so a reused pid is never adopted.
Result<base::UniqueFd> OpenPidFd(pid_t pid, uint64_t start_ticks);

}  // namespace runtime
