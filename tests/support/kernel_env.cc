#include "tests/support/kernel_env.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace testsupport {
namespace {

constexpr const char* kPrefix = "cubelet-test-";

std::vector<std::string> Hierarchies() {
  std::vector<std::string> out;
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, opts, a, b;
  while (mounts >> dev >> dir >> type >> opts >> a >> b) {
    if (type == "cgroup" || type == "cgroup2") {
      if (dir.rfind("/sys/fs/cgroup", 0) == 0) out.push_back(dir);
    }
  }
  return out;
}

void KillAndRemove(const std::string& dir) {
  // Depth first: children, then kill the processes left here, then rmdir.
  if (DIR* d = opendir(dir.c_str())) {
    std::vector<std::string> subs;
    while (dirent* e = readdir(d)) {
      if (e->d_type == DT_DIR && strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
        subs.push_back(dir + "/" + e->d_name);
    }
    closedir(d);
    for (auto& s : subs) KillAndRemove(s);
  }
  for (int attempt = 0; attempt < 50; ++attempt) {
    std::ifstream procs(dir + "/cgroup.procs");
    pid_t pid;
    bool any = false;
    while (procs >> pid) {
      any = true;
      kill(pid, SIGKILL);
    }
    // A frozen v1 cgroup must be thawed for SIGKILL to be delivered.
    std::ofstream(dir + "/freezer.state") << "THAWED";
    if (rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (!any && errno != EBUSY) return;
    usleep(20000);
  }
}

}  // namespace

bool IsPrivileged() { return geteuid() == 0; }

CgroupParent::CgroupParent(const std::string& test_name)
    : path_(std::string(kPrefix) + test_name + "-" + std::to_string(getpid())) {
  for (const auto& h : Hierarchies()) {
    KillAndRemove(h + "/" + path_);
  }
}

CgroupParent::~CgroupParent() {
  for (const auto& h : Hierarchies()) KillAndRemove(h + "/" + path_);
}

void SweepStaleCgroups() {
  for (const auto& h : Hierarchies()) {
    DIR* d = opendir(h.c_str());
    if (!d) continue;
    std::vector<std::string> stale;
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind(kPrefix, 0) != 0) continue;
      auto dash = n.rfind('-');
      pid_t owner = atoi(n.c_str() + dash + 1);
      if (owner > 0 && (kill(owner, 0) == 0 || errno == EPERM)) continue;  // owner alive
      stale.push_back(h + "/" + n);
    }
    closedir(d);
    for (auto& s : stale) KillAndRemove(s);
  }
}

int Run(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  std::string acc;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) acc.append(buf.data(), n);
  int st = pclose(p);
  if (out) *out = acc;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string BusyboxRootfs() {
  static std::once_flag once;
  static std::string dir = "/var/tmp/cubelet-test/busybox-rootfs";
  std::call_once(once, [] {
    std::string cmd =
        "set -e; d=" + dir + "; if [ ! -x $d/bin/busybox ]; then rm -rf $d.tmp; "
        "mkdir -p $d.tmp/bin $d.tmp/etc $d.tmp/proc $d.tmp/sys $d.tmp/dev $d.tmp/tmp $d.tmp/var/www; "
        "cp /bin/busybox $d.tmp/bin/busybox; "
        "for a in $(/bin/busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox $d.tmp/bin/$a; done; "
        "echo 'root:x:0:0:root:/root:/bin/sh' > $d.tmp/etc/passwd; "
        "echo 'nobody:x:65534:65534:nobody:/:/bin/sh' >> $d.tmp/etc/passwd; "
        "echo 'root:x:0:' > $d.tmp/etc/group; echo 'nogroup:x:65534:' >> $d.tmp/etc/group; "
        "rm -rf $d; mv $d.tmp $d; fi";
    std::string out;
    if (Run(cmd, &out) != 0) fprintf(stderr, "building busybox rootfs failed: %s\n", out.c_str());
  });
  return dir;
}

}  // namespace testsupport
