// cubelet-monitor: the parent of one container (in the spirit of conmon, far smaller).
//
//   cubelet-monitor run  <container-dir>
//   cubelet-monitor spare          (waits for "run <container-dir>" on fd 4)
//   cubelet-monitor exec [--tty] <container-dir> <init-pid> <init-start-ticks> -- <cmd> [args...]
//
// With --tty the command gets a terminal from the container's own devpts instance (so `tty`
// inside prints /dev/pts/N) as its controlling terminal; the monitor relays fd 0 to it and its
// output to fd 1, and takes "resize <cols> <rows>" lines on fd 4.
//
// fd 3 carries status lines to cubelet ("ok" once the container process has exec'd, or
// "error <message>"; after `run`'s "ok", "exited" once the exit record is written). The init
// joins the container cgroup itself (spec cgroup_procs); for older specs without it the monitor
// reports "pid N" first and waits on fd 4 for cubelet's "go",
// sent once cubelet has put N in the container cgroup.
//
// `run` runs in a session of its own (cubelet restarts must not take containers with them),
// clone()s the container init in new pid + mount namespaces, copies its stdout/stderr into the CRI log
// file, waits for it and records its exit in <container-dir>/exit. No JSON, no Boost, no
// OpenSSL: it stays small because one runs per container.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/monitor/container_init.h"
#include "runtime/monitor/cri_log.h"
#include "runtime/monitor/spec.h"

namespace {

using monitor::ContainerSpec;

constexpr int kStatusFd = 3;
constexpr int kCommandFd = 4;

void Log(const std::string& msg) {
  std::string line = monitor::FormatRfc3339NanoUtc(monitor::NowUnixNanos()) +
                     " cubelet-monitor[" + std::to_string(getpid()) + "]: " + msg + "\n";
  ssize_t n = write(2, line.data(), line.size());
  (void)n;
}

void Status(const std::string& line) {
  std::string l = line + "\n";
  ssize_t n = write(kStatusFd, l.data(), l.size());
  (void)n;
}

// Reads one line from fd (unbuffered; the peer sends single short lines).
bool ReadLine(int fd, std::string* out) {
  out->clear();
  char c;
  while (true) {
    ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return !out->empty();
    if (c == '\n') return true;
    out->push_back(c);
    if (out->size() > 4096) return true;
  }
}

std::string ReadAllFd(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

uint64_t ReadOomKills(const std::string& path) {
  std::string data;
  if (path.empty() || !monitor::ReadWholeFile(path, &data)) return 0;
  size_t p = data.find("oom_kill ");
  if (p == std::string::npos) return 0;
  return strtoull(data.c_str() + p + 9, nullptr, 10);
}

bool LoadSpec(const std::string& dir, ContainerSpec* spec, std::string* error) {
  std::string text;
  if (!monitor::ReadWholeFile(dir + "/spec", &text)) {
    *error = "read " + dir + "/spec: " + strerror(errno);
    return false;
  }
  return monitor::DecodeSpec(text, spec, error);
}

struct InitArgs {
  const ContainerSpec* spec = nullptr;
  const sigset_t* mask = nullptr;
  std::vector<int> close_fds;  // the monitor's ends and fds the container must not inherit
  monitor::InitFds fds;
  // With CLONE_FILES: the init opens its mount namespace in the shared fd table (the monitor's
  // copy keeps it; see Run), then takes a table of its own.
  bool hold_mount_ns = false;
  int mount_ns_fd = -1;
};

// The container's init, on its own stack; with CLONE_VM it shares the (suspended) monitor's
// memory until it execs, so it touches nothing the monitor uses afterwards besides the heap.
int InitMain(void* p) {
  auto* a = static_cast<InitArgs*>(p);
  if (a->hold_mount_ns) {
    a->mount_ns_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
    if (unshare(CLONE_FILES) != 0) {  // never share the monitor's table past here
      std::string msg = std::string("unshare the file table: ") + strerror(errno);
      ssize_t n = write(a->fds.err_write, msg.data(), msg.size());  // a start error, not an exit
      (void)n;
      _exit(127);
    }
  }
  sigprocmask(SIG_SETMASK, a->mask, nullptr);
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  for (int fd : a->close_fds) close(fd);
  // stdout/stderr pipes must survive exec.
  fcntl(a->fds.stdout_write, F_SETFD, 0);
  fcntl(a->fds.stderr_write, F_SETFD, 0);
  monitor::RunContainerInit(*a->spec, a->fds);
}

class LogFile {
 public:
  explicit LogFile(std::string path) : path_(std::move(path)) { Open(); }
  void Open() {
    if (fd_ >= 0) close(fd_);
    fd_ = path_.empty() ? -1
                        : open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd_ < 0 && !path_.empty()) Log("open log " + path_ + ": " + strerror(errno));
  }
  void Write(const std::string& s) {
    if (fd_ < 0 || s.empty()) return;
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = write(fd_, s.data() + off, s.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // disk full: drop, keep draining the pipes
      off += static_cast<size_t>(n);
    }
  }

 private:
  std::string path_;
  int fd_ = -1;
};

// `rootfs_mount_fd`: a detached mount of the rootfs made by cubelet ahead of the start (-1:
// the init mounts it from the spec). `rootfs_follows`: cubelet is still making that mount and
// sends it on fd 4 ("rootfs", with the fd or without one); the init reads it just before it
// needs the rootfs, so the mount overlaps the monitor's and the init's first steps.
int Run(const std::string& dir, int rootfs_mount_fd, bool rootfs_follows) {
  ContainerSpec spec;
  std::string error;
  if (!LoadSpec(dir, &spec, &error)) {
    Status("error " + monitor::Escape(error));
    return 1;
  }
  // cubelet spawned us in a session of our own (setsid) and does not kill us when it exits, so
  // no double fork is needed to outlive it: a restart of cubelet reparents us to init (or the
  // nearest subreaper) and the next cubelet re-attaches through a pidfd. While cubelet runs it
  // reaps us. (A fork costs a few ms on small VMs: it used to be the largest single step.)
  setsid();  // no-op (EPERM) when spawned with POSIX_SPAWN_SETSID
  if (chdir("/") != 0) return 1;
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  sigset_t mask, old;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGUSR1, SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGQUIT}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, &old);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  int out[2], err[2], sync[2], errp[2];
  if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(sync, O_CLOEXEC) ||
      pipe2(errp, O_CLOEXEC)) {
    Status("error " + monitor::Escape(std::string("pipe: ") + strerror(errno)));
    return 1;
  }
  uint64_t oom_before = ReadOomKills(spec.oom_counter);
  const uint64_t own_start_ticks = monitor::ProcessStartTicks(getpid());
  LogFile log(spec.log_path);

  // With the init joining its cgroup itself, nothing has to happen between clone and exec on
  // this side: clone(CLONE_VM|CLONE_VFORK) (as posix_spawn does) suspends the monitor until the
  // init has exec'd or died, and saves copying the page tables and the copy-on-write faults
  // of a fork. Older specs keep a fork-like clone, since the monitor must relay "go".
  bool vfork = !spec.cgroup_procs.empty();
  InitArgs args;
  args.spec = &spec;
  args.mask = &old;
  rootfs_follows = rootfs_follows && vfork;  // the older handshake reads fd 4 itself
  args.close_fds = {out[0], err[0], sync[1], errp[0], kStatusFd, sfd};
  if (!rootfs_follows) args.close_fds.push_back(kCommandFd);
  args.fds = monitor::InitFds{sync[0], errp[1], out[1], err[1], rootfs_mount_fd,
                              rootfs_follows ? kCommandFd : -1};
  uint64_t init_start_ticks = 0;
  if (vfork) args.fds.start_ticks = &init_start_ticks;  // shared memory until the exec
  constexpr size_t kStack = 1 << 20;
  void* stack = mmap(nullptr, kStack, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (stack == MAP_FAILED) {
    Status("error " + monitor::Escape(std::string("mmap: ") + strerror(errno)));
    return 1;
  }
  args.hold_mount_ns = vfork;
  int clone_flags = CLONE_NEWNS | SIGCHLD | (spec.host_pid ? 0 : CLONE_NEWPID) |
                    (vfork ? CLONE_VM | CLONE_VFORK | CLONE_FILES : 0);
  int child = clone(InitMain, static_cast<char*>(stack) + kStack, clone_flags, &args);
  if (child < 0) {
    Status("error " + monitor::Escape(std::string("clone: ") + strerror(errno)));
    return 1;
  }
  munmap(stack, kStack);
  if (rootfs_mount_fd >= 0) close(rootfs_mount_fd);  // the init's copy was attached (or died)
  close(out[1]);
  close(err[1]);
  close(sync[0]);
  close(errp[1]);
  pid_t init = static_cast<pid_t>(child);

  auto record_start_error = [&](const std::string& msg) {
    kill(init, SIGKILL);
    waitpid(init, nullptr, 0);
    monitor::ExitRecord r;
    r.exit_code = 128;
    r.finished_at_ns = monitor::NowUnixNanos();
    r.reason = "StartError";
    r.message = msg;
    monitor::WriteFileAtomically(dir + "/exit", monitor::EncodeExit(r));
    Log("start failed: " + msg);
  };

  if (spec.cgroup_procs.empty()) {
    // Older specs: cubelet moves the init into the container cgroup, then says "go".
    Status("pid " + std::to_string(init));
    std::string cmd;
    if (!ReadLine(kCommandFd, &cmd) || cmd != "go") {
      record_start_error("the runtime abandoned the start");
      return 1;
    }
    char g = 'g';
    if (write(sync[1], &g, 1) != 1) {
      record_start_error("the container process died during setup");
      return 1;
    }
  }
  close(sync[1]);
  std::string start_error = ReadAllFd(errp[0]);
  close(errp[0]);
  if (!start_error.empty()) {
    record_start_error(start_error);
    Status("error " + monitor::Escape(start_error));
    return 1;
  }
  monitor::StartRecord sr;
  sr.init_pid = init;
  sr.init_start_ticks = init_start_ticks != 0 ? init_start_ticks : monitor::ProcessStartTicks(init);
  sr.monitor_pid = getpid();
  sr.monitor_start_ticks = own_start_ticks;
  sr.started_at_ns = monitor::NowUnixNanos();
  if (!monitor::WriteFileAtomically(dir + "/started", monitor::EncodeStart(sr))) {
    Log("write " + dir + "/started: " + strerror(errno));
  }
  Status("ok");
  // fd 3 stays open for the "exited" line; cubelet's end may be gone (a restart): SIGPIPE is
  // blocked here and the write just fails.
  int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
  dup2(devnull, kCommandFd);
  close(devnull);

  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct Stream {
    int fd;
    monitor::CriLineSplitter splitter;
    bool open = true;
  };
  Stream streams[2] = {{out[0], monitor::CriLineSplitter("stdout")},
                       {err[0], monitor::CriLineSplitter("stderr")}};
  for (int i = 0; i < 2; ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, streams[i].fd, &ev);
  }
  {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = 2;
    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  }
  bool exited = false;
  int wstatus = 0;
  int64_t finished_at = 0;
  int64_t drain_deadline = 0;
  std::vector<char> buf(64 * 1024);
  while (true) {
    if (exited && !streams[0].open && !streams[1].open) break;
    int timeout = -1;
    if (exited) {
      int64_t left = (drain_deadline - monitor::NowUnixNanos()) / 1000000;
      if (left <= 0) break;
      timeout = static_cast<int>(left);
    }
    epoll_event evs[4];
    int n = epoll_wait(ep, evs, 4, timeout);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; ++i) {
      uint32_t which = evs[i].data.u32;
      if (which == 2) {
        signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == sizeof si) {
          if (si.ssi_signo == SIGUSR1) log.Open();  // ReopenContainerLog after rotation
        }
        while (true) {
          int st;
          pid_t r = waitpid(-1, &st, WNOHANG);
          if (r <= 0) break;
          if (r == init) {
            exited = true;
            wstatus = st;
            finished_at = monitor::NowUnixNanos();
            // Everything in the pid namespace died with its init; what is left in the pipes
            // arrives promptly. Do not wait forever on a writer that escaped.
            drain_deadline = finished_at + 2000000000LL;
          }
        }
        continue;
      }
      Stream& s = streams[which];
      ssize_t r = read(s.fd, buf.data(), buf.size());
      if (r < 0 && errno == EINTR) continue;
      std::string lines;
      if (r <= 0) {
        s.splitter.Finish(monitor::NowUnixNanos(), &lines);
        log.Write(lines);
        epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
        close(s.fd);
        s.open = false;
        continue;
      }
      s.splitter.Feed(std::string_view(buf.data(), static_cast<size_t>(r)),
                      monitor::NowUnixNanos(), &lines);
      log.Write(lines);
    }
  }
  for (auto& s : streams) {
    if (!s.open) continue;
    std::string lines;
    s.splitter.Finish(monitor::NowUnixNanos(), &lines);
    log.Write(lines);
  }
  monitor::ExitRecord r;
  if (WIFSIGNALED(wstatus)) {
    r.signal = WTERMSIG(wstatus);
    r.exit_code = 128 + r.signal;
  } else {
    r.exit_code = WEXITSTATUS(wstatus);
  }
  r.finished_at_ns = finished_at;
  r.oom_killed = ReadOomKills(spec.oom_counter) > oom_before;
  r.reason = r.oom_killed ? "OOMKilled" : r.exit_code == 0 ? "Completed" : "Error";
  if (!monitor::WriteFileAtomically(dir + "/exit", monitor::EncodeExit(r))) {
    Log("write " + dir + "/exit: " + strerror(errno));
    return 1;
  }
  // The exit record is final: cubelet may report the container exited without waiting for
  // this process to be torn down.
  Status("exited");
  // What is left is teardown nobody waits for: the container's mounts (the last reference to
  // its mount namespace, held since the clone, is ours) and this process. It must not take a
  // core from cubelet handling the exit or from other containers: the lowest priority, as
  // cubelet's own background work (runtime/background.h; not SCHED_IDLE, for the same reason:
  // the unmounts hold the mount namespace lock).
  setpriority(PRIO_PROCESS, 0, 19);
  if (args.mount_ns_fd >= 0) close(args.mount_ns_fd);
  return 0;
}

// Started ahead of time by cubelet (runtime/monitor_pool.h): waits for "run <dir>".
int Spare() {
  std::string line;
  int rootfs_mount_fd = -1;
  if (!monitor::ReadCommand(kCommandFd, &line, &rootfs_mount_fd)) return 0;  // cubelet left
  bool rootfs_follows = line.rfind("run+ ", 0) == 0;
  if (rootfs_follows) line.erase(3, 1);
  if (line.rfind("run ", 0) != 0) return 0;
  std::string dir = monitor::Unescape(line.substr(4));
  int fd = open((dir + "/monitor.log").c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  return Run(dir, rootfs_mount_fd, rootfs_follows);
}

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// "resize <cols> <rows>" from cubelet: the terminal's new size (the kernel signals SIGWINCH).
void ApplyCommand(int master, const std::string& line) {
  unsigned cols = 0, rows = 0;
  if (sscanf(line.c_str(), "resize %u %u", &cols, &rows) != 2) return;
  winsize ws{};
  ws.ws_col = static_cast<unsigned short>(cols);
  ws.ws_row = static_cast<unsigned short>(rows);
  ioctl(master, TIOCSWINSZ, &ws);
}

// Clients send their terminal's size right after the session is set up, while the command
// would already be running with a 0x0 terminal (`stty size` fails, full-screen programs draw
// for the wrong size). So the command starts once the first size is in, or after a short wait
// (1 s) for clients that send none. Other lines ("go") are skipped.
void AwaitFirstSize(int master) {
  constexpr int kWaitMs = 1000;  // the client is told the session is up only after the spawn
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
    if (waited >= kWaitMs) return;
    pollfd p{kCommandFd, POLLIN, 0};
    int n = poll(&p, 1, static_cast<int>(kWaitMs - waited));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    std::string line;
    if (!ReadLine(kCommandFd, &line)) return;
    if (line.rfind("resize ", 0) == 0) {
      ApplyCommand(master, line);
      return;
    }
  }
}

// Relays between the terminal's master side and the monitor's stdin/stdout until the command
// has exited and its output is drained: EIO once no process holds the terminal any more (the
// kernel flushes what is pending first), or a short grace period when a process the command
// left behind still holds it. Returns the command's wait status.
int RelayTerminal(int master, pid_t child) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
  std::string input;  // from fd 0, not yet taken by the terminal
  bool in_open = true, cmd_open = true, master_open = true;
  int st = 0;
  bool exited = false;
  int grace_ms = 200;
  char buf[16384];
  while (master_open) {
    pollfd p[4] = {{master, static_cast<short>(POLLIN | (input.empty() ? 0 : POLLOUT)), 0},
                   {in_open && input.empty() ? 0 : -1, POLLIN, 0},
                   {cmd_open ? kCommandFd : -1, POLLIN, 0},
                   {exited || pidfd < 0 ? -1 : pidfd, POLLIN, 0}};
    int n = poll(p, 4, exited || pidfd < 0 ? (pidfd < 0 ? 50 : grace_ms) : -1);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) {
      if (exited) break;  // the grace period passed without output
      if (pidfd < 0 && waitpid(child, &st, WNOHANG) == child) exited = true;
      continue;
    }
    if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(master, buf, sizeof buf);
      if (r > 0) {
        if (!WriteAll(1, buf, static_cast<size_t>(r))) {
          if (!exited) kill(child, SIGKILL);  // cubelet's end of the session is gone
          master_open = false;
        }
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        master_open = false;  // EIO: nothing holds the terminal any more
      }
    }
    if ((p[0].revents & POLLOUT) && !input.empty()) {
      ssize_t w = write(master, input.data(), input.size());
      if (w > 0) input.erase(0, static_cast<size_t>(w));
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r > 0) input.append(buf, static_cast<size_t>(r));
      else if (r == 0 || errno != EINTR) in_open = false;
    }
    if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      std::string line;
      if (ReadLine(kCommandFd, &line)) ApplyCommand(master, line);
      else cmd_open = false;
    }
    if (p[3].revents & POLLIN) {
      while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
      }
      exited = true;
    }
  }
  if (!exited) {
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
  }
  if (pidfd >= 0) close(pidfd);
  return st;
}

int Exec(const std::string& dir, pid_t init, uint64_t ticks, const std::vector<std::string>& args,
         bool tty) {
  ContainerSpec spec;
  std::string error;
  if (!LoadSpec(dir, &spec, &error)) {
    Status("error " + monitor::Escape(error));
    return 126;
  }
  std::vector<char> seccomp = monitor::LoadSeccompProgram(spec.seccomp_bpf, &error);
  if (!error.empty()) {
    Status("error " + monitor::Escape(error));
    return 126;
  }
  // "go" once cubelet has put us in the container cgroup (it sends it either way); with
  // cgroup_procs in the spec we join it ourselves without waiting.
  std::string cmd;
  if (spec.cgroup_procs.empty()) {
    if (!ReadLine(kCommandFd, &cmd) || cmd != "go") return 126;
  } else {
    for (const auto& f : spec.cgroup_procs) {
      int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, "0", 1) != 1) {
        Status("error " + monitor::Escape("join cgroup " + f + ": " + strerror(errno)));
        return 126;
      }
      close(fd);
    }
  }
  if (monitor::ProcessStartTicks(init) != ticks || ticks == 0) {
    Status("error " + monitor::Escape("container process " + std::to_string(init) +
                                      " is not running"));
    return 126;
  }
  std::string proc = "/proc/" + std::to_string(init);
  int root = open((proc + "/root").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  struct Ns {
    const char* name;
    int type;
    int fd;
  };
  Ns nss[] = {{"cgroup", CLONE_NEWCGROUP, -1}, {"ipc", CLONE_NEWIPC, -1},
              {"uts", CLONE_NEWUTS, -1},       {"net", CLONE_NEWNET, -1},
              {"pid", CLONE_NEWPID, -1},       {"mnt", CLONE_NEWNS, -1}};
  for (auto& ns : nss) ns.fd = open((proc + "/ns/" + ns.name).c_str(), O_RDONLY | O_CLOEXEC);
  if (root < 0) {
    Status("error " + monitor::Escape("open " + proc + "/root: " + strerror(errno)));
    return 126;
  }
  for (auto& ns : nss) {
    if (ns.fd < 0 || setns(ns.fd, ns.type) != 0) {
      if (ns.type == CLONE_NEWCGROUP && ns.fd >= 0 && errno == EINVAL) continue;
      Status("error " + monitor::Escape(std::string("join ") + ns.name + " namespace of " +
                                        std::to_string(init) + ": " + strerror(errno)));
      return 126;
    }
    close(ns.fd);
  }
  if (fchdir(root) != 0 || chroot(".") != 0) {
    Status("error " + monitor::Escape(std::string("enter the container root: ") + strerror(errno)));
    return 126;
  }
  close(root);
  if (chdir(spec.cwd.empty() ? "/" : spec.cwd.c_str()) != 0 && chdir("/") != 0) return 126;
  // The terminal comes from the container's devpts instance (/dev/ptmx -> pts/ptmx), as runc
  // allocates it: its name inside the container is /dev/pts/N, and it belongs to the user.
  int master = -1, slave = -1;
  if (tty) {
    master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    int unlock = 0;
    if (master < 0 || ioctl(master, TIOCSPTLCK, &unlock) != 0 ||
        (slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)) < 0) {
      Status("error " + monitor::Escape(std::string("allocate a terminal in the container: ") +
                                        strerror(errno)));
      return 126;
    }
    if (spec.uid != 0 && fchown(slave, spec.uid, static_cast<gid_t>(-1)) != 0) {
      Log("chown of the exec terminal to uid " + std::to_string(spec.uid) + ": " +
          strerror(errno));
    }
  }
  if (tty) AwaitFirstSize(master);
  int errp[2];
  if (pipe2(errp, O_CLOEXEC) != 0) return 126;
  pid_t child = fork();
  if (child < 0) {
    Status("error " + monitor::Escape(std::string("fork: ") + strerror(errno)));
    return 126;
  }
  if (child == 0) {
    close(errp[0]);
    close(kStatusFd);
    close(kCommandFd);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (tty) {
      // A session of its own with the terminal as its controlling terminal, on fds 0-2.
      if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) != 0 || dup2(slave, 0) < 0 ||
          dup2(slave, 1) < 0 || dup2(slave, 2) < 0) {
        std::string e = std::string("set up the terminal: ") + strerror(errno);
        (void)!write(errp[1], e.data(), e.size());
        _exit(126);
      }
    }
    monitor::FinishAndExec(spec, args, seccomp, errp[1]);
  }
  close(errp[1]);
  if (slave >= 0) close(slave);
  Status("pid " + std::to_string(child));
  std::string exec_error = ReadAllFd(errp[0]);
  if (!exec_error.empty()) Status("error " + monitor::Escape(exec_error));
  int st = 0;
  if (master >= 0 && exec_error.empty()) {
    st = RelayTerminal(master, child);
  } else {
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
  }
  if (!exec_error.empty()) return 126;
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return WEXITSTATUS(st);
}

}  // namespace

int main(int argc, char** argv) {
  // Nothing cubelet left open (besides the protocol fds) may leak into containers.
  syscall(SYS_close_range, 5, ~0U, 0);
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 2 && args[0] == "run") return Run(args[1], -1, false);
  if (args.size() == 1 && args[0] == "spare") return Spare();
  if (!args.empty() && args[0] == "exec") {
    bool tty = args.size() > 1 && args[1] == "--tty";
    size_t at = tty ? 2 : 1;  // <container-dir>
    if (args.size() >= at + 5 && args[at + 3] == "--") {
      pid_t init = static_cast<pid_t>(atoi(args[at + 1].c_str()));
      uint64_t ticks = strtoull(args[at + 2].c_str(), nullptr, 10);
      return Exec(args[at], init, ticks,
                  std::vector<std::string>(args.begin() + static_cast<long>(at) + 4, args.end()),
                  tty);
    }
  }
  fprintf(stderr,
          "usage: cubelet-monitor run <container-dir>\n"
          "       cubelet-monitor spare   (then \"run <container-dir>\" on fd 4)\n"
          "       cubelet-monitor exec [--tty] <container-dir> <pid> <start-ticks> -- <cmd> "
          "[args...]\n");
  return 2;
}
