#include "runtime/monitor/container_init.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/monitor/in_root.h"
#include "runtime/monitor/lookpath.h"

namespace monitor {
namespace {

void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// mkdir -p of `path` (absolute, inside the container) with every component resolved inside
// `root_fd`, so a symlink in the image cannot send a mount outside the rootfs. Returns an O_PATH
// fd of the directory.
int MkdirAllInRoot(int root_fd, const std::string& path, int err_fd) {
  std::string failed;
  int fd = monitor::MkdirAllInRoot(root_fd, path, &failed);
  if (fd < 0) DieErrno(err_fd, failed + " in the container rootfs");
  return fd;
}

// Creates (if needed) and opens the mount point for `dest`: a directory, or an empty file when
// `file` is true (bind mounts of files).
int MountPointInRoot(int root_fd, const std::string& dest, bool file, int err_fd) {
  if (!file) return MkdirAllInRoot(root_fd, dest, err_fd);
  int fd = OpenInRoot(root_fd, dest, O_PATH);
  if (fd >= 0) return fd;
  size_t slash = dest.find_last_of('/');
  std::string parent = slash == 0 ? "/" : dest.substr(0, slash);
  int pfd = MkdirAllInRoot(root_fd, parent, err_fd);
  std::string name = dest.substr(slash + 1);
  int f = openat(pfd, name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (f < 0 && errno != EEXIST) DieErrno(err_fd, "create mount point \"" + dest + "\"");
  if (f >= 0) close(f);
  close(pfd);
  fd = OpenInRoot(root_fd, dest, O_PATH);
  if (fd < 0) DieErrno(err_fd, "open mount point \"" + dest + "\"");
  return fd;
}

std::string FdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

void MountAt(int root_fd, const char* source, const std::string& dest, const char* type,
             unsigned long flags, const char* data, int err_fd, bool file = false) {
  int fd = MountPointInRoot(root_fd, dest, file, err_fd);
  if (mount(source, FdPath(fd).c_str(), type, flags, data) != 0) {
    DieErrno(err_fd, std::string("mount ") + type + " on \"" + dest + "\"");
  }
  close(fd);
}

void RemountReadonly(int root_fd, const std::string& dest, int err_fd) {
  int fd = OpenInRoot(root_fd, dest, O_PATH);
  if (fd < 0) DieErrno(err_fd, "open \"" + dest + "\" to remount read-only");
  std::string p = FdPath(fd);
  if (mount(nullptr, p.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, nullptr) != 0) {
    // Keep nosuid/nodev/noexec the source mount had (required when they are locked).
    DieErrno(err_fd, "remount \"" + dest + "\" read-only");
  }
  close(fd);
}

void BindMount(int root_fd, const MountSpec& m, int err_fd) {
  struct stat st;
  if (stat(m.source.c_str(), &st) != 0) DieErrno(err_fd, "stat mount source \"" + m.source + "\"");
  bool file = !S_ISDIR(st.st_mode);
  int fd = MountPointInRoot(root_fd, m.destination, file, err_fd);
  std::string p = FdPath(fd);
  unsigned long flags = MS_BIND | (m.recursive ? MS_REC : 0);
  if (mount(m.source.c_str(), p.c_str(), nullptr, flags, nullptr) != 0) {
    DieErrno(err_fd, "bind mount \"" + m.source + "\" on \"" + m.destination + "\"");
  }
  close(fd);
  if (m.readonly) RemountReadonly(root_fd, m.destination, err_fd);
}

void MakeDevices(const std::string& dev, int err_fd) {
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  static const Node kNodes[] = {{"null", 1, 3},    {"zero", 1, 5},    {"full", 1, 7},
                                {"random", 1, 8},  {"urandom", 1, 9}, {"tty", 5, 0}};
  for (const auto& n : kNodes) {
    std::string p = dev + "/" + n.name;
    if (mknod(p.c_str(), S_IFCHR | 0666, makedev(n.major, n.minor)) != 0) {
      // Without CAP_MKNOD (user namespaces) fall back to bind mounting the host's node.
      int f = open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
      if (f >= 0) close(f);
      std::string host = std::string("/dev/") + n.name;
      if (mount(host.c_str(), p.c_str(), nullptr, MS_BIND, nullptr) != 0) {
        DieErrno(err_fd, "create device " + p);
      }
    }
  }
  struct Link {
    const char* target;
    const char* name;
  };
  static const Link kLinks[] = {{"/proc/self/fd", "fd"},     {"/proc/self/fd/0", "stdin"},
                                {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
                                {"/proc/kcore", "core"},     {"pts/ptmx", "ptmx"}};
  for (const auto& l : kLinks) {
    std::string p = dev + "/" + l.name;
    if (symlink(l.target, p.c_str()) != 0 && errno != EEXIST) DieErrno(err_fd, "symlink " + p);
  }
}

// Directories are hidden under an empty read-only tmpfs, files under /dev/null. All masked
// directories share one tmpfs (bind mounts of the first; its superblock is read-only, so every
// bind is too): one superblock made and torn down per container instead of one per directory.
// `*empty_fd` is an O_PATH fd of that tmpfs's root once made (-1 before).
void MaskPath(int root_fd, const std::string& path, int* empty_fd, int err_fd) {
  int fd = OpenInRoot(root_fd, path, O_PATH);
  if (fd < 0) return;  // absent: nothing to hide
  struct stat st;
  fstat(fd, &st);
  std::string p = FdPath(fd);
  int rc;
  if (!S_ISDIR(st.st_mode)) {
    rc = mount("/dev/null", p.c_str(), nullptr, MS_BIND, nullptr);
  } else if (*empty_fd >= 0) {
    rc = mount(FdPath(*empty_fd).c_str(), p.c_str(), nullptr, MS_BIND, nullptr);
  } else {
    rc = mount("tmpfs", p.c_str(), "tmpfs", MS_RDONLY, "size=0,mode=555");
    // The fd above names the directory under the new mount: reopen to get the tmpfs itself.
    if (rc == 0) *empty_fd = OpenInRoot(root_fd, path, O_PATH | O_DIRECTORY);
  }
  if (rc != 0 && errno != ENOENT) DieErrno(err_fd, "mask \"" + path + "\"");
  close(fd);
}

void ReadonlyPath(int root_fd, const std::string& path, int err_fd) {
  int fd = OpenInRoot(root_fd, path, O_PATH);
  if (fd < 0) return;
  std::string p = FdPath(fd);
  if (mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
    DieErrno(err_fd, "bind \"" + path + "\" read-only");
  }
  close(fd);
  RemountReadonly(root_fd, path, err_fd);
}

void JoinNamespace(const std::string& path, int nstype, int err_fd) {
  if (path.empty()) return;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) DieErrno(err_fd, "open namespace " + path);
  if (setns(fd, nstype) != 0) DieErrno(err_fd, "setns " + path);
  close(fd);
}

void JoinCgroups(const std::vector<std::string>& procs_files, int err_fd) {
  for (const auto& f : procs_files) {
    int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) DieErrno(err_fd, "join cgroup " + f);
    if (write(fd, "0", 1) != 1) DieErrno(err_fd, "join cgroup " + f);
    close(fd);
  }
}

// Set by the process itself before it execs (as runc's init does), so no one has to wait for
// it. fd 2 is still the monitor's log here.
void SetOomScoreAdj(const ContainerSpec& spec) {
  if (!spec.has_oom_score_adj) return;
  int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  std::string v = std::to_string(spec.oom_score_adj);
  if (write(fd, v.data(), v.size()) < 0) {
    // Lowering the score needs CAP_SYS_RESOURCE; keep the inherited value (the lowest this
    // process may set), as the kubelet's runtimes do. Never fail the container for it.
    int e = errno;
    char cur[32] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, cur, sizeof cur - 1);
    std::string c(cur, n > 0 ? static_cast<size_t>(n) : 0);
    while (!c.empty() && c.back() == '\n') c.pop_back();
    WriteAll(2, "cubelet-monitor: oom_score_adj " + v + " not permitted (" + strerror(e) +
                    "); keeping " + c + "\n");
  }
  close(fd);
}

void ApplyRlimits(const ContainerSpec& spec, int err_fd) {
  for (const auto& r : spec.rlimits) {
    struct rlimit rl;
    rl.rlim_cur = r.soft;
    rl.rlim_max = r.hard;
    if (setrlimit(r.resource, &rl) != 0) DieErrno(err_fd, "setrlimit " + std::to_string(r.resource));
  }
}

void LoadSeccomp(const std::vector<char>& prog, int err_fd) {
  if (prog.empty()) return;
  struct sock_fprog fprog;
  fprog.len = static_cast<unsigned short>(prog.size() / sizeof(struct sock_filter));
  fprog.filter = reinterpret_cast<struct sock_filter*>(const_cast<char*>(prog.data()));
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) {
    DieErrno(err_fd, "load seccomp filter");
  }
}

// Needs CAP_SETPCAP in the effective set: runs while still root, before the uid changes.
void DropBoundingSet(uint64_t caps, int err_fd) {
  for (int c = 0; c <= 63; ++c) {
    if (caps & (1ull << c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
      if (errno == EINVAL) break;  // past the kernel's last capability
      DieErrno(err_fd, "drop capability " + std::to_string(c) + " from the bounding set");
    }
  }
}

// After setuid (PR_SET_KEEPCAPS kept the permitted set): effective = permitted = caps.
void SetCapabilities(uint64_t caps, int err_fd) {
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  struct __user_cap_header_struct hdr;
  struct __user_cap_data_struct data[2];
  memset(&hdr, 0, sizeof hdr);
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  data[0].effective = data[0].permitted = static_cast<uint32_t>(caps);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(caps >> 32);
  if (syscall(SYS_capset, &hdr, data) != 0) DieErrno(err_fd, "capset");
}

}  // namespace

namespace {

// recvmsg of up to `len` bytes; an fd passed with them (SCM_RIGHTS) replaces *passed_fd (the
// previous one is closed). ENOTSOCK (a pipe): a plain read.
ssize_t RecvWithFd(int fd, char* buf, size_t len, int flags, int* passed_fd) {
  struct iovec iov{buf, len};
  alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))];
  struct msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  do {
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | flags);
    if (n < 0 && errno == ENOTSOCK) n = read(fd, buf, len);
  } while (n < 0 && errno == EINTR);
  if (n > 0 && msg.msg_controllen > 0) {
    for (struct cmsghdr* h = CMSG_FIRSTHDR(&msg); h; h = CMSG_NXTHDR(&msg, h)) {
      if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
      int got;
      memcpy(&got, CMSG_DATA(h), sizeof got);
      if (*passed_fd >= 0) close(*passed_fd);
      *passed_fd = got;
    }
  }
  return n;
}

}  // namespace

// One line from the command socket and the fd cubelet may send with it (SCM_RIGHTS; -1 when
// none). A pipe (spawned by an older cubelet) carries no fds: plain reads.
bool ReadCommand(int fd, std::string* out, int* passed_fd) {
  out->clear();
  *passed_fd = -1;
  // A socket: the line in one recvmsg (cubelet sends each with one sendmsg), located with a
  // peek that takes no passed fd; a byte at a time cost ~110 syscalls per "run" on the start
  // path. What the peek cannot settle (no newline yet) goes byte by byte below.
  char buf[4097];
  ssize_t peeked;
  do {
    peeked = recv(fd, buf, sizeof buf - 1, MSG_PEEK);
  } while (peeked < 0 && errno == EINTR);
  if (peeked == 0) return false;
  const char* nl = peeked > 0 ? static_cast<const char*>(memchr(buf, '\n', static_cast<size_t>(peeked))) : nullptr;
  if (nl != nullptr) {
    size_t want = static_cast<size_t>(nl - buf) + 1;
    ssize_t n = RecvWithFd(fd, buf, want, MSG_WAITALL, passed_fd);
    if (n != static_cast<ssize_t>(want)) return false;
    out->assign(buf, want - 1);
    return true;
  }
  while (true) {
    char c;
    ssize_t n = RecvWithFd(fd, &c, 1, 0, passed_fd);
    if (n <= 0) return !out->empty();
    if (c == '\n') return true;
    out->push_back(c);
    if (out->size() > 4096) return true;
  }
}

void DieWith(int err_fd, const std::string& message) {
  WriteAll(err_fd, message);
  _exit(1);
}

void DieErrno(int err_fd, const std::string& context) {
  int e = errno;
  DieWith(err_fd, context + ": " + strerror(e));
}

std::vector<char> LoadSeccompProgram(const std::string& path, std::string* error) {
  std::vector<char> out;
  if (path.empty()) return out;
  std::string data;
  if (!ReadWholeFile(path, &data)) {
    *error = "read seccomp program " + path + ": " + strerror(errno);
    return out;
  }
  if (data.empty() || data.size() % sizeof(struct sock_filter) != 0) {
    *error = "seccomp program " + path + " has a bad size";
    return out;
  }
  out.assign(data.begin(), data.end());
  return out;
}

void FinishAndExec(const ContainerSpec& spec, const std::vector<std::string>& args,
                   const std::vector<char>& seccomp, int err_fd) {
  std::string resolved, error;
  if (!LookPath("", args[0], PathFromEnv(spec.env), &resolved, &error)) DieWith(err_fd, error);
  ApplyRlimits(spec, err_fd);
  // Without no_new_privs the filter can only be installed while CAP_SYS_ADMIN is held; the
  // RuntimeDefault profile allows the identity and capability calls that follow.
  if (!spec.no_new_privs) LoadSeccomp(seccomp, err_fd);
  DropBoundingSet(spec.capabilities, err_fd);
  std::vector<gid_t> groups(spec.groups.begin(), spec.groups.end());
  if (setgroups(groups.size(), groups.data()) != 0) DieErrno(err_fd, "setgroups");
  if (setresgid(spec.gid, spec.gid, spec.gid) != 0) DieErrno(err_fd, "setgid " + std::to_string(spec.gid));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) DieErrno(err_fd, "PR_SET_KEEPCAPS");
  if (setresuid(spec.uid, spec.uid, spec.uid) != 0) DieErrno(err_fd, "setuid " + std::to_string(spec.uid));
  SetCapabilities(spec.capabilities, err_fd);
  if (spec.no_new_privs) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) DieErrno(err_fd, "PR_SET_NO_NEW_PRIVS");
    LoadSeccomp(seccomp, err_fd);
  }
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : spec.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  umask(022);
  execve(resolved.c_str(), argv.data(), envp.data());
  int e = errno;
  if (e == ENOENT) DieWith(err_fd, "exec: \"" + args[0] + "\": no such file or directory");
  DieWith(err_fd, "exec: \"" + args[0] + "\": " + strerror(e));
}

void RunContainerInit(const ContainerSpec& spec, const InitFds& fds) {
  int err = fds.err_write;
  if (spec.cgroup_procs.empty()) {
    // Older specs: wait until cubelet has placed this process in the container cgroup.
    char go = 0;
    ssize_t n;
    do {
      n = read(fds.sync_read, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || go != 'g') _exit(1);  // the runtime gave up: no message needed
  } else {
    // Join the container cgroup first: everything from here on is accounted and limited, and
    // the start needs no round trip through cubelet.
    JoinCgroups(spec.cgroup_procs, err);
  }
  close(fds.sync_read);
  SetOomScoreAdj(spec);

  int devnull = open("/dev/null", O_RDWR);
  if (devnull < 0) DieErrno(err, "open /dev/null");
  if (dup2(devnull, 0) < 0 || dup2(fds.stdout_write, 1) < 0 || dup2(fds.stderr_write, 2) < 0) {
    DieErrno(err, "set up stdio");
  }
  if (devnull > 2) close(devnull);
  if (fds.stdout_write > 2) close(fds.stdout_write);
  if (fds.stderr_write > 2 && fds.stderr_write != fds.stdout_write) close(fds.stderr_write);

  JoinNamespace(spec.ipcns, CLONE_NEWIPC, err);
  JoinNamespace(spec.utsns, CLONE_NEWUTS, err);
  JoinNamespace(spec.netns, CLONE_NEWNET, err);
  // The cgroup namespace is made after joining the container cgroup, so that cgroup is its root.
  if (unshare(CLONE_NEWCGROUP) != 0 && errno != EINVAL) DieErrno(err, "unshare cgroup namespace");
  std::string seccomp_error;
  std::vector<char> seccomp = LoadSeccompProgram(spec.seccomp_bpf, &seccomp_error);
  if (!seccomp_error.empty()) DieWith(err, seccomp_error);

  umask(0);
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    DieErrno(err, "make mounts private");
  }
  const std::string& root = spec.rootfs;
  int rootfs_mount = fds.rootfs_mount;
  if (fds.rootfs_channel >= 0) {
    // cubelet sends the rootfs mount it was still making when it said "run+".
    std::string line;
    if (!ReadCommand(fds.rootfs_channel, &line, &rootfs_mount) || line != "rootfs") {
      DieWith(err, "the runtime abandoned the start");
    }
    close(fds.rootfs_channel);
  }
  if (rootfs_mount >= 0) {
    // cubelet mounted the overlay while it created the container (the mount creates work
    // directories on the disk, ~1 ms on slow filesystems): attach it.
    if (move_mount(rootfs_mount, "", AT_FDCWD, root.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
      DieErrno(err, "attach the rootfs mount on " + root);
    }
    close(rootfs_mount);
  } else if (!spec.upper.empty()) {
    std::string opts = "lowerdir=" + spec.lower + ",upperdir=" + spec.upper +
                       ",workdir=" + spec.work + (spec.overlay_volatile ? ",volatile" : "");
    // Long layer lists are given relative to lower_base (the mount data is one page).
    if (!spec.lower_base.empty() && chdir(spec.lower_base.c_str()) != 0) {
      DieErrno(err, "chdir " + spec.lower_base);
    }
    if (mount("overlay", root.c_str(), "overlay", 0, opts.c_str()) != 0) {
      DieErrno(err, "mount overlay rootfs on " + root);
    }
  } else {
    if (mount(spec.lower.c_str(), root.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      DieErrno(err, "bind mount rootfs " + spec.lower + " on " + root);
    }
  }
  int root_fd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) DieErrno(err, "open rootfs " + root);

  const unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  MountAt(root_fd, "proc", "/proc", "proc", kNoSuidDevExec, nullptr, err);
  MountAt(root_fd, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k",
          err);
  MountAt(root_fd, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
          "newinstance,ptmxmode=0666,mode=0620", err);
  bool pod_shm = false;
  for (const auto& m : spec.mounts) pod_shm |= m.destination == "/dev/shm";
  if (!pod_shm) {
    MountAt(root_fd, "shm", "/dev/shm", "tmpfs", kNoSuidDevExec, "mode=1777,size=65536k", err);
  }
  MountAt(root_fd, "mqueue", "/dev/mqueue", "mqueue", kNoSuidDevExec, nullptr, err);
  {
    unsigned long ro = spec.privileged ? 0 : MS_RDONLY;
    int fd = MountPointInRoot(root_fd, "/sys", false, err);
    if (mount("sysfs", FdPath(fd).c_str(), "sysfs", kNoSuidDevExec | ro, nullptr) != 0) {
      // sysfs cannot be mounted in a network namespace we do not own: bind the host's.
      if (mount("/sys", FdPath(fd).c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        DieErrno(err, "mount sysfs");
      }
      if (ro) RemountReadonly(root_fd, "/sys", err);
    }
    close(fd);
  }
  MakeDevices(root + "/dev", err);
  for (const auto& m : spec.mounts) {
    if (m.type == "tmpfs") {
      MountAt(root_fd, "tmpfs", m.destination, "tmpfs",
              MS_NOSUID | MS_NODEV | (m.readonly ? MS_RDONLY : 0), "mode=755", err);
    } else {
      BindMount(root_fd, m, err);
    }
  }
  int empty_fd = -1;
  for (const auto& p : spec.masked_paths) MaskPath(root_fd, p, &empty_fd, err);
  if (empty_fd >= 0) close(empty_fd);
  for (const auto& p : spec.readonly_paths) ReadonlyPath(root_fd, p, err);

  if (fchdir(root_fd) != 0) DieErrno(err, "chdir rootfs");
  if (syscall(SYS_pivot_root, ".", ".") != 0) DieErrno(err, "pivot_root " + root);
  // The old root is stacked on "/": detach it.
  if (umount2(".", MNT_DETACH) != 0) DieErrno(err, "detach the old root");
  if (chdir("/") != 0) DieErrno(err, "chdir /");
  close(root_fd);
  if (spec.readonly_rootfs) {
    if (mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      DieErrno(err, "remount the rootfs read-only");
    }
  }
  // Working directory: created when missing, as runc does.
  if (!spec.cwd.empty()) {
    int slash = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    close(MkdirAllInRoot(slash, spec.cwd, err));
    close(slash);
    if (chdir(spec.cwd.c_str()) != 0) DieErrno(err, "chdir to working directory " + spec.cwd);
  }
  // The monitor stays the parent; if it dies from here on the container keeps running (like conmon).
  prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  if (fds.start_ticks) *fds.start_ticks = ProcessStartTicks(getpid());  // our own /proc now
  FinishAndExec(spec, spec.args, seccomp, err);
}

}  // namespace monitor
