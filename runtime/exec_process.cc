#include "runtime/exec_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/strings.h"
#include "runtime/monitor/spec.h"
#include "runtime/monitor_process.h"
#include "runtime/runtime.h"

namespace runtime {

ExecProcess::ExecProcess(pid_t helper, base::UniqueFd in, base::UniqueFd out, base::UniqueFd err,
                         base::UniqueFd status, std::string what)
    : helper_(helper),
      stdin_(std::move(in)),
      stdout_(std::move(out)),
      stderr_(std::move(err)),
      status_(std::move(status)),
      what_(std::move(what)) {}

ExecProcess::~ExecProcess() {
  if (helper_ > 0 && !reaped_) {
    Kill();
    WaitChild(helper_);
  }
}

void ExecProcess::ReadStatus(bool block) {
  while (status_) {
    if (!block) {
      pollfd p{status_.get(), POLLIN, 0};
      if (poll(&p, 1, 0) <= 0) return;
    }
    char buf[512];
    ssize_t n = read(status_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status_.reset();
      break;
    }
    status_buf_.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = status_buf_.find('\n')) != std::string::npos) {
      std::string line = status_buf_.substr(0, nl);
      status_buf_.erase(0, nl + 1);
      if (base::StartsWith(line, "pid ")) inner_ = atoi(line.c_str() + 4);
      if (base::StartsWith(line, "error ")) error_ = monitor::Unescape(line.substr(6));
    }
  }
}

void ExecProcess::Resize(unsigned cols, unsigned rows) {
  if (!command_ || reaped_) return;
  std::string line = "resize " + std::to_string(cols) + " " + std::to_string(rows) + "\n";
  // One short line is written whole (PIPE_BUF); a helper that is gone makes it fail: ignored.
  if (write(command_.get(), line.data(), line.size()) < 0) command_.reset();
}

void ExecProcess::Kill() {
  ReadStatus(false);
  if (inner_ > 0 && !reaped_) kill(inner_, SIGKILL);
  if (helper_ > 0 && !reaped_) kill(helper_, SIGKILL);
}

Result<int> ExecProcess::Wait() {
  if (reaped_) return base::Fail(what_ + ": already waited for");
  ReadStatus(true);  // EOF when the helper exits
  int st = WaitChild(helper_);
  reaped_ = true;
  if (!error_.empty()) return base::Fail(what_ + ": " + error_, kErrRunContainer);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return WEXITSTATUS(st);
}

Result<ExecProcess> Runtime::StartExec(const std::string& id, const std::vector<std::string>& cmd,
                                       bool with_stdin, bool tty) {
  auto target = ExecTargetOf(id, cmd);
  if (!target) return tl::unexpected(target.error());
  const auto& [sr, dir, cgroup, what, self_join] = *target;
  int p[2];
  base::UniqueFd in_r, in_w, out_r, out_w, err_r, err_w;
  if (with_stdin) {
    if (pipe2(p, O_CLOEXEC) != 0) return base::Errno(what + ": pipe");
    in_r.reset(p[0]);
    in_w.reset(p[1]);
  }
  if (pipe2(p, O_CLOEXEC) != 0) return base::Errno(what + ": pipe");
  out_r.reset(p[0]);
  out_w.reset(p[1]);
  if (pipe2(p, O_CLOEXEC) != 0) return base::Errno(what + ": pipe");
  err_r.reset(p[0]);
  err_w.reset(p[1]);
  std::vector<std::string> args = {"exec"};
  if (tty) args.push_back("--tty");
  for (auto a : {dir, std::to_string(sr.init_pid), std::to_string(sr.init_start_ticks),
                 std::string("--")}) {
    args.push_back(std::move(a));
  }
  args.insert(args.end(), cmd.begin(), cmd.end());
  auto mon = SpawnMonitor(opts_.monitor_path, args, out_w.get(), err_w.get(), false,
                          with_stdin ? in_r.get() : -1);
  if (!mon) return tl::unexpected(mon.error().Wrap(what));
  out_w.reset();
  err_w.reset();
  in_r.reset();
  ExecProcess proc(mon->pid, std::move(in_w), std::move(out_r), std::move(err_r),
                   std::move(mon->status), what);
  // The helper joins the container cgroup itself when the spec lists the cgroup.procs files.
  if (auto r = self_join ? Result<>{} : opts_.cgroups->AddProcess(cgroup, mon->pid); !r) {
    return tl::unexpected(r.error().Wrap(what));  // ~ExecProcess kills and reaps
  }
  if (auto r = SendCommand(mon->command.get(), "go"); !r) return tl::unexpected(r.error().Wrap(what));
  if (tty) proc.SetCommandPipe(std::move(mon->command));
  return proc;
}

}  // namespace runtime
