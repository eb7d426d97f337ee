#include "runtime/network/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/fd.h"
#include "base/scope_guard.h"

extern char** environ;

namespace runtime::net {

Result<ExecResult> Exec(const ExecSpec& spec) {
  if (spec.argv.empty()) return base::Fail("run: empty command", EINVAL);
  const std::string& prog = spec.argv[0];
  // stdin is a socket so that writing to a program that exited early gives EPIPE (MSG_NOSIGNAL)
  // instead of a SIGPIPE that would kill cubelet.
  int in[2], out[2], err[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) {
    return base::Errno("run " + prog + ": socketpair");
  }
  base::UniqueFd in_child(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return base::Errno("run " + prog + ": pipe");
  base::UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return base::Errno("run " + prog + ": pipe");
  base::UniqueFd err_r(err[0]), err_w(err[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  auto fa_done = base::Defer([&] { posix_spawn_file_actions_destroy(&fa); });
  posix_spawn_file_actions_adddup2(&fa, in_child.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, spec.merge_stderr ? out_w.get() : err_w.get(), 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  auto attr_done = base::Defer([&] { posix_spawnattr_destroy(&attr); });
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const auto& a : spec.argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  char** env = environ;
  if (!spec.env.empty()) {
    if (spec.inherit_env) {
      for (char** e = environ; e && *e; ++e) {
        std::string kv = *e;
        if (!spec.env.count(kv.substr(0, kv.find('=')))) env_store.push_back(kv);
      }
    }
    for (const auto& [k, v] : spec.env) env_store.push_back(k + "=" + v);
    for (auto& s : env_store) envp.push_back(s.data());
    envp.push_back(nullptr);
    env = envp.data();
  }
  pid_t pid = -1;
  int rc = prog.find('/') == std::string::npos
               ? posix_spawnp(&pid, prog.c_str(), &fa, &attr, args.data(), env)
               : posix_spawn(&pid, prog.c_str(), &fa, &attr, args.data(), env);
  if (rc != 0) return base::Errno("run " + prog, rc);
  in_child.reset();
  out_w.reset();
  err_w.reset();

  // Feed stdin and drain both outputs together: a chatty program must not block on a full pipe
  // while we still write its input.
  ExecResult res;
  size_t written = 0;
  if (spec.stdin_data.empty()) in_w.reset();
  char buf[8192];
  while (out_r || err_r) {
    pollfd fds[3];
    int n = 0;
    int i_in = -1, i_out = -1, i_err = -1;
    if (in_w) fds[i_in = n++] = {in_w.get(), POLLOUT, 0};
    if (out_r) fds[i_out = n++] = {out_r.get(), POLLIN, 0};
    if (err_r) fds[i_err = n++] = {err_r.get(), POLLIN, 0};
    if (::poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      return base::Errno("run " + prog + ": poll");
    }
    if (i_in >= 0 && fds[i_in].revents) {
      ssize_t w = ::send(in_w.get(), spec.stdin_data.data() + written,
                         spec.stdin_data.size() - written, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == spec.stdin_data.size()) {
        in_w.reset();  // done, or the program stopped reading: its status tells why
      }
    }
    for (auto [idx, fd, dst] :
         {std::tuple{i_out, &out_r, &res.out}, std::tuple{i_err, &err_r, &res.err}}) {
      if (idx < 0 || !fds[idx].revents) continue;
      ssize_t r = ::read(fd->get(), buf, sizeof buf);
      if (r > 0) {
        dst->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd->reset();
      }
    }
  }
  in_w.reset();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return base::Errno("run " + prog + ": wait");
  }
  res.status =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return res;
}

Result<int> RunProgram(const std::vector<std::string>& argv, const std::string& stdin_data,
                       std::string* output) {
  ExecSpec spec;
  spec.argv = argv;
  spec.stdin_data = stdin_data;
  spec.merge_stderr = true;
  auto r = Exec(spec);
  if (!r) return tl::unexpected(r.error());
  if (output) *output = std::move(r->out);
  return r->status;
}

}  // namespace runtime::net
