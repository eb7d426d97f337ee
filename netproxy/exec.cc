#include "netproxy/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <tuple>

#include "base/fd.h"
#include "base/scope_guard.h"

extern char** environ;

namespace netproxy {

namespace {

struct Pipe {
  base::UniqueFd read, write;
};

base::Result<Pipe> MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return base::Errno("pipe2");
  return Pipe{base::UniqueFd(fds[0]), base::UniqueFd(fds[1])};
}

}  // namespace

base::Result<CommandResult> RunCommand(const std::vector<std::string>& argv, std::string_view input,
                                       std::chrono::milliseconds timeout) {
  if (argv.empty()) return base::Fail("run command: empty argv");
  const std::string& prog = argv[0];
  auto in = MakePipe();
  auto out = MakePipe();
  auto err = MakePipe();
  if (!in || !out || !err) return base::Errno("run " + prog + ": pipe2");

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  auto fa_guard = base::Defer([&] { posix_spawn_file_actions_destroy(&fa); });
  posix_spawn_file_actions_adddup2(&fa, in->read.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out->write.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, err->write.get(), 2);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  auto attr_guard = base::Defer([&] { posix_spawnattr_destroy(&attr); });
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid;
  int rc = posix_spawnp(&pid, prog.c_str(), &fa, &attr, args.data(), environ);
  if (rc != 0) return base::Errno("run " + prog, rc);
  in->read.reset();
  out->write.reset();
  err->write.reset();

  // The child may exit before reading all input: write with SIGPIPE blocked in this thread and
  // take EPIPE instead, then drop a SIGPIPE left pending.
  sigset_t pipe_set, old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  auto mask_guard = base::Defer([&] {
    timespec zero{0, 0};
    while (sigtimedwait(&pipe_set, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  });

  CommandResult result;
  size_t written = 0;
  if (input.empty()) in->write.reset();
  if (in->write) fcntl(in->write.get(), F_SETFL, O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool killed = false;
  char buf[65536];
  while (out->read || err->read) {
    pollfd fds[3];
    int n = 0;
    int in_idx = -1, out_idx = -1, err_idx = -1;
    if (in->write) {
      fds[n] = {in->write.get(), POLLOUT, 0};
      in_idx = n++;
    }
    if (out->read) {
      fds[n] = {out->read.get(), POLLIN, 0};
      out_idx = n++;
    }
    if (err->read) {
      fds[n] = {err->read.get(), POLLIN, 0};
      err_idx = n++;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      if (!killed) kill(pid, SIGKILL);
      killed = true;
      break;
    }
    int pr = poll(fds, n, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      kill(pid, SIGKILL);
      killed = true;
      break;
    }
    if (in_idx >= 0 && fds[in_idx].revents) {
      ssize_t w = write(in->write.get(), input.data() + written, input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) {
        in->write.reset();
      }
    }
    for (auto [idx, fd, dest] : {std::tuple{out_idx, &out->read, &result.out},
                                 std::tuple{err_idx, &err->read, &result.err}}) {
      if (idx < 0 || !fds[idx].revents) continue;
      ssize_t r = read(fd->get(), buf, sizeof buf);
      if (r > 0) {
        dest->append(buf, static_cast<size_t>(r));
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd->reset();
      }
    }
  }
  in->write.reset();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (killed) {
    result.exit_code = -1;
    if (!result.err.empty() && result.err.back() != '\n') result.err += '\n';
    result.err += prog + " timed out after " + std::to_string(timeout.count()) + " ms";
  }
  return result;
}

}  // namespace netproxy
