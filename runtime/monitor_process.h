#pragma once
// Starting cubelet-monitor (posix_spawn: safe from a multithreaded cubelet) and speaking its
// line protocol: fd 3 = status lines from the monitor, fd 4 = commands from cubelet ("run DIR",
// possibly with the rootfs mount fd, or "go"; a stream socket).
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"

namespace runtime {

using base::Result;

struct MonitorProcess {
  pid_t pid = -1;           // the spawned process (for `run`, an intermediate that exits at once)
  base::UniqueFd status;    // read end of fd 3
  base::UniqueFd command;   // cubelet's end of fd 4
  base::UniqueFd pidfd;     // of `pid`, taken before anyone could reap it (may be invalid)
};

// stdout_fd/stderr_fd become the monitor's fds 1 and 2 (-1 = /dev/null).
Result<MonitorProcess> SpawnMonitor(const std::string& binary, const std::vector<std::string>& args,
                                    int stdout_fd, int stderr_fd, bool new_session, int stdin_fd = -1);

// One status line (without "\n"); fails on EOF or timeout.
Result<std::string> ReadStatusLine(int fd, std::chrono::milliseconds timeout);

// One line on the command channel; `pass_fd` (when >= 0) travels with it (SCM_RIGHTS).
Result<> SendCommand(int fd, const std::string& line, int pass_fd = -1);

// waitpid that retries EINTR; returns the wait status.
int WaitChild(pid_t pid);

}  // namespace runtime
