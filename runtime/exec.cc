// Runtime: ExecSync (`cubelet-monitor exec` joins the container's namespaces and cgroup).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "base/strings.h"
#include "runtime/monitor_process.h"
#include "runtime/runtime.h"

namespace runtime {

namespace {
constexpr size_t kMaxExecOutput = 16 << 20;  // the kubelet's limit for exec output
}

Result<Runtime::ExecTarget> Runtime::ExecTargetOf(const std::string& id,
                                                  const std::vector<std::string>& cmd) {
  ExecTarget t;
  std::string name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return base::Fail("container \"" + id + "\" not found", kErrNotFound);
    Container& c = it->second;
    if (!c.start || c.exit || LoadExitLocked(c)) {
      return base::Fail("exec in container \"" + c.rec.metadata.name + "\" (" + id +
                        "): container is not running");
    }
    t.start = *c.start;
    t.dir = c.state_dir;
    t.self_join = c.self_join;
    t.cgroup = c.rec.cgroup;
    name = c.rec.metadata.name;
  }
  t.what = "exec in container \"" + name + "\" (" + id + ")";
  if (cmd.empty()) return base::Fail(t.what + ": no command");
  return t;
}

Result<cri::ExecSyncResponse> Runtime::ExecSync(const std::string& id,
                                                const std::vector<std::string>& cmd,
                                                std::chrono::seconds timeout) {
  auto target = ExecTargetOf(id, cmd);
  if (!target) return tl::unexpected(target.error());
  const auto& [sr, dir, cgroup, what, self_join] = *target;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return base::Errno(what + ": pipe");
  base::UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) != 0) return base::Errno(what + ": pipe");
  base::UniqueFd err_r(err[0]), err_w(err[1]);
  std::vector<std::string> args = {"exec", dir, std::to_string(sr.init_pid),
                                   std::to_string(sr.init_start_ticks), "--"};
  args.insert(args.end(), cmd.begin(), cmd.end());
  auto mon = SpawnMonitor(opts_.monitor_path, args, out_w.get(), err_w.get(), false);
  if (!mon) return tl::unexpected(mon.error().Wrap(what));
  out_w.reset();
  err_w.reset();
  pid_t helper = mon->pid;
  auto kill_and_reap = [&] {
    kill(helper, SIGKILL);
    WaitChild(helper);
  };
  // The helper joins the container cgroup before it enters the namespaces and forks (itself
  // when the spec lists the cgroup.procs files).
  if (auto r = self_join ? Result<>{} : opts_.cgroups->AddProcess(cgroup, helper); !r) {
    kill_and_reap();
    return tl::unexpected(r.error().Wrap(what));
  }
  if (auto r = SendCommand(mon->command.get(), "go"); !r) {
    kill_and_reap();
    return tl::unexpected(r.error().Wrap(what));
  }
  cri::ExecSyncResponse resp;
  std::string status_buf, exec_error;
  pid_t inner = -1;
  auto deadline = std::chrono::steady_clock::now() +
                  (timeout.count() > 0 ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout)
                                       : std::chrono::hours(24 * 365));
  bool timed_out = false;
  int open_fds = 3;
  pollfd fds[3] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}, {mon->status.get(), POLLIN, 0}};
  char buf[65536];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    int n = poll(fds, 3, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 3; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t r = read(fds[i].fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        fds[i].fd = -1;
        --open_fds;
        continue;
      }
      std::string_view data(buf, static_cast<size_t>(r));
      if (i == 0 && resp.stdout_.size() < kMaxExecOutput) resp.stdout_.append(data);
      if (i == 1 && resp.stderr_.size() < kMaxExecOutput) resp.stderr_.append(data);
      if (i == 2) {
        status_buf.append(data);
        size_t nl;
        while ((nl = status_buf.find('\n')) != std::string::npos) {
          std::string line = status_buf.substr(0, nl);
          status_buf.erase(0, nl + 1);
          if (base::StartsWith(line, "pid ")) inner = atoi(line.c_str() + 4);
          if (base::StartsWith(line, "error ")) exec_error = monitor::Unescape(line.substr(6));
        }
      }
    }
  }
  if (timed_out) {
    // The command runs in the container's pid namespace; its host pid came on the status fd.
    if (inner > 0) kill(inner, SIGKILL);
    kill_and_reap();
    return base::Fail(what + ": command " + base::Join(cmd, " ") + " timed out after " +
                      std::to_string(timeout.count()) + "s", ETIMEDOUT);
  }
  int st = WaitChild(helper);
  if (!exec_error.empty()) return base::Fail(what + ": " + exec_error, kErrRunContainer);
  if (WIFSIGNALED(st)) resp.exit_code = 128 + WTERMSIG(st);
  else resp.exit_code = WEXITSTATUS(st);
  return resp;
}

}  // namespace runtime
