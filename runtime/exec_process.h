#pragma once
// A streaming exec into a running container (kubectl exec, the kubelet API): the process runs
// through `cubelet-monitor exec` (container cgroup, namespaces, identity, caps, seccomp) with
// pipes for stdin/stdout/stderr that the caller pumps. With a TTY the command's terminal output
// comes on stdout (there is no separate stderr) and Resize() sets the terminal's size.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>

#include "base/fd.h"
#include "base/result.h"

namespace runtime {

using base::Result;

class ExecProcess {
 public:
  ExecProcess(pid_t helper, base::UniqueFd in, base::UniqueFd out, base::UniqueFd err,
              base::UniqueFd status, std::string what);
  ExecProcess(ExecProcess&& o) noexcept
      : helper_(std::exchange(o.helper_, -1)),
        inner_(o.inner_),
        stdin_(std::move(o.stdin_)),
        stdout_(std::move(o.stdout_)),
        stderr_(std::move(o.stderr_)),
        status_(std::move(o.status_)),
        command_(std::move(o.command_)),
        status_buf_(std::move(o.status_buf_)),
        error_(std::move(o.error_)),
        what_(std::move(o.what_)),
        reaped_(o.reaped_) {}
  ExecProcess& operator=(ExecProcess&&) = delete;
  ~ExecProcess();  // kills and reaps the process if Wait() was not called

  int stdin_fd() const { return stdin_.get(); }   // -1 once closed
  int stdout_fd() const { return stdout_.get(); }
  int stderr_fd() const { return stderr_.get(); }
  void CloseStdin() { stdin_.reset(); }
  // The terminal's size in columns and rows (a TTY exec; ignored without one).
  void Resize(unsigned cols, unsigned rows);
  // Keeps the helper's command pipe for Resize (a TTY exec).
  void SetCommandPipe(base::UniqueFd command) { command_ = std::move(command); }
  // Waits for the command; its exit code (128+N when killed by signal N). Fails when the
  // command could not be started (e.g. `exec: "x": executable file not found in $PATH`).
  Result<int> Wait();
  void Kill();

 private:
  void ReadStatus(bool block);
  pid_t helper_ = -1;
  pid_t inner_ = -1;
  base::UniqueFd stdin_, stdout_, stderr_, status_, command_;
  std::string status_buf_, error_, what_;
  bool reaped_ = false;
};

}  // namespace runtime
