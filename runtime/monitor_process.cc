#include "runtime/monitor_process.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

extern char** environ;

namespace runtime {
namespace {

// Pipe ends numbered >= 10 so the dup2 to 3/4 in the child cannot clobber each other.
Result<std::pair<base::UniqueFd, base::UniqueFd>> HighPipe() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return base::Errno("pipe");
  base::UniqueFd r(fcntl(p[0], F_DUPFD_CLOEXEC, 10)), w(fcntl(p[1], F_DUPFD_CLOEXEC, 10));
  close(p[0]);
  close(p[1]);
  if (!r || !w) return base::Errno("dup pipe");
  return std::make_pair(std::move(r), std::move(w));
}

// The command channel is a stream socket, not a pipe, so that a command can carry an fd
// (SCM_RIGHTS): the rootfs mount made ahead of the start. Reads and writes are the same.
Result<std::pair<base::UniqueFd, base::UniqueFd>> HighSocketPair() {
  int p[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) return base::Errno("socketpair");
  base::UniqueFd r(fcntl(p[0], F_DUPFD_CLOEXEC, 10)), w(fcntl(p[1], F_DUPFD_CLOEXEC, 10));
  close(p[0]);
  close(p[1]);
  if (!r || !w) return base::Errno("dup socket");
  return std::make_pair(std::move(r), std::move(w));
}

}  // namespace

Result<MonitorProcess> SpawnMonitor(const std::string& binary, const std::vector<std::string>& args,
                                    int stdout_fd, int stderr_fd, bool new_session, int stdin_fd) {
  auto st = HighPipe();
  if (!st) return tl::unexpected(st.error());
  auto cmd = HighSocketPair();
  if (!cmd) return tl::unexpected(cmd.error());
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (stdin_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
  else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (stdout_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stdout_fd, 1);
  else posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, stderr_fd, 2);
  else posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, st->second.get(), 3);
  posix_spawn_file_actions_adddup2(&fa, cmd->first.get(), 4);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, binary.c_str(), &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return base::Errno("spawn " + binary, rc);
  MonitorProcess m;
  m.pid = pid;
  m.pidfd.reset(static_cast<int>(syscall(SYS_pidfd_open, pid, 0)));
  m.status = std::move(st->first);
  m.command = std::move(cmd->second);
  return m;
}

Result<std::string> ReadStatusLine(int fd, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string line;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return base::Fail("timed out waiting for the container monitor", ETIMEDOUT);
    pollfd p{fd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::Errno("poll monitor status");
    if (n == 0) continue;
    char c;
    ssize_t r = read(fd, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return base::Errno("read monitor status");
    if (r == 0) return base::Fail("the container monitor exited unexpectedly");
    if (c == '\n') return line;
    line.push_back(c);
  }
}

Result<> SendCommand(int fd, const std::string& line, int pass_fd) {
  std::string l = line + "\n";
  struct iovec iov{l.data(), l.size()};
  struct msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  if (pass_fd >= 0) {
    memset(cbuf, 0, sizeof cbuf);
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(l.size())) return base::Errno("write to the container monitor");
  return {};
}

int WaitChild(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return st;
}

}  // namespace runtime
