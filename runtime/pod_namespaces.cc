#include "runtime/pod_namespaces.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "base/file.h"

namespace runtime {
namespace {

struct Sysctl {
  std::string path;   // /proc/sys/...
  std::string value;
};

struct HelperArgs {
  const std::vector<Sysctl>* sysctls;
  int ready_w;
  int release_r;
  int ready_r;
  int release_w;
  char hostname[65];
  bool set_hostname;
  bool lo_up;
};

// Runs in the cloned child: only async-signal-safe calls (the parent may be multithreaded).
int Helper(void* p) {
  auto* a = static_cast<HelperArgs*>(p);
  // Our copies of the parent's ends: keeping release_w open would make the read below wait
  // forever if the parent died.
  close(a->ready_r);
  close(a->release_w);
  char status = 'k';
  if (a->set_hostname && sethostname(a->hostname, strlen(a->hostname)) != 0) status = 'h';
  if (a->lo_up) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) != 0) {
      status = 'l';
    } else {
      ifr.ifr_flags |= IFF_UP;
      if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0) status = 'l';
    }
    if (s >= 0) close(s);
  }
  // /proc/sys/net and the IPC sysctls show the namespaces of the writing task: ours are new.
  for (const auto& s : *a->sysctls) {
    if (status != 'k') break;
    int fd = open(s.path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, s.value.data(), s.value.size()) < 0) status = 's';
    if (fd >= 0) close(fd);
  }
  if (write(a->ready_w, &status, 1) != 1) _exit(1);
  char c;
  ssize_t n = read(a->release_r, &c, 1);
  (void)n;
  _exit(0);
}

Result<> BindNamespace(pid_t pid, const char* kind, const std::string& target) {
  CUBELET_TRY(base::MkdirAll(target.substr(0, target.rfind('/')), 0755));
  base::UniqueFd f(open(target.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444));
  if (!f) return base::Errno("create namespace file '" + target + "'");
  std::string src = "/proc/" + std::to_string(pid) + "/ns/" + kind;
  if (mount(src.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    return base::Errno("bind mount " + src + " on '" + target + "'");
  }
  return {};
}

Result<> Unpin(const std::string& path) {
  if (path.empty()) return {};
  // Repeat: a path may have been bind mounted twice after a crash-and-retry.
  for (int i = 0; i < 8; ++i) {
    if (umount2(path.c_str(), MNT_DETACH) != 0) {
      if (errno == EINVAL || errno == ENOENT) break;  // not a mount point (any more)
      return base::Errno("unmount namespace '" + path + "'");
    }
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return base::Errno("remove '" + path + "'");
  return {};
}

}  // namespace

PodNamespaces PodNamespacePaths(const std::string& run_dir, const std::string& id, bool net,
                                bool ipc, bool uts) {
  PodNamespaces ns;
  if (net) ns.net = run_dir + "/netns/" + id;
  if (ipc) ns.ipc = run_dir + "/ipcns/" + id;
  if (uts) ns.uts = run_dir + "/utsns/" + id;
  return ns;
}

Result<PodNamespaces> PinPodNamespaces(const PodNamespaceRequest& req) {
  PodNamespaces ns =
      PodNamespacePaths(req.run_dir, req.sandbox_id, req.new_net, req.new_ipc, req.new_uts);
  int flags = (req.new_net ? CLONE_NEWNET : 0) | (req.new_ipc ? CLONE_NEWIPC : 0) |
              (req.new_uts ? CLONE_NEWUTS : 0);
  if (flags == 0) return ns;
  int ready[2], release[2];
  if (pipe2(ready, O_CLOEXEC) != 0) return base::Errno("pipe");
  if (pipe2(release, O_CLOEXEC) != 0) {
    close(ready[0]);
    close(ready[1]);
    return base::Errno("pipe");
  }
  base::UniqueFd ready_r(ready[0]), ready_w(ready[1]), release_r(release[0]), release_w(release[1]);
  // Paths are computed here: the helper may only make async-signal-safe calls.
  std::vector<Sysctl> sysctls;
  for (const auto& [name, value] : req.sysctls) {
    bool net = name.rfind("net.", 0) == 0;
    bool ipc = name.rfind("kernel.shm", 0) == 0 || name.rfind("kernel.msg", 0) == 0 ||
               name == "kernel.sem" || name.rfind("fs.mqueue.", 0) == 0;
    if ((net && !req.new_net) || (ipc && !req.new_ipc) || (!net && !ipc)) {
      return base::Fail("sysctl \"" + name + "\" is not namespaced for this pod; refusing to set it on the node");
    }
    std::string path = "/proc/sys/" + name;
    for (size_t i = 10; i < path.size(); ++i) {
      if (path[i] == '.') path[i] = '/';
    }
    if (name.find("..") != std::string::npos || name.find('/') != std::string::npos) {
      return base::Fail("bad sysctl name \"" + name + "\"");
    }
    sysctls.push_back({path, value});
  }
  HelperArgs args{};
  args.sysctls = &sysctls;
  args.ready_w = ready_w.get();
  args.release_r = release_r.get();
  args.ready_r = ready_r.get();
  args.release_w = release_w.get();
  args.set_hostname = req.new_uts && !req.hostname.empty();
  args.lo_up = req.new_net;
  strncpy(args.hostname, req.hostname.c_str(), 64);
  std::vector<char> stack(64 * 1024);
  pid_t pid = clone(Helper, stack.data() + stack.size(), flags | SIGCHLD, &args);
  if (pid < 0) return base::Errno("clone pod namespace helper");
  auto reap = [&] {
    char go = 'x';
    if (write(release_w.get(), &go, 1) != 1) {
      // The helper is gone already; waitpid below still reaps it.
    }
    release_w.reset();
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
  };
  char status = 0;
  ready_w.reset();
  ssize_t n = read(ready_r.get(), &status, 1);
  if (n != 1) {
    reap();
    return base::Fail("pod namespace helper died");
  }
  if (status != 'k') {
    reap();
    return base::Fail(status == 'h'   ? "set hostname \"" + req.hostname + "\" failed"
                      : status == 's' ? "set the pod's sysctls failed (unknown name or bad value)"
                                      : "bring up loopback in the pod network namespace failed");
  }
  Result<> r;
  if (req.new_net) r = BindNamespace(pid, "net", ns.net);
  if (r && req.new_ipc) r = BindNamespace(pid, "ipc", ns.ipc);
  if (r && req.new_uts) r = BindNamespace(pid, "uts", ns.uts);
  reap();
  if (!r) {
    (void)UnpinPodNamespaces(ns);
    return tl::unexpected(r.error());
  }
  return ns;
}

Result<> UnpinPodNamespaces(const PodNamespaces& ns) {
  CUBELET_TRY(Unpin(ns.net));
  CUBELET_TRY(Unpin(ns.ipc));
  CUBELET_TRY(Unpin(ns.uts));
  return {};
}

}  // namespace runtime
