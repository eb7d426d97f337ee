// bench/container_start: time to run a trivial busybox container (`true`) to completion, N times,
// side by side with (a) the floor: a bare clone(NEWPID|NEWNS) + bind rootfs + pivot_root + exec
// of the same rootfs, from a small process of its own (FloorHelper), and (b) `runc run` of a
// bundle with the same rootfs (and `crun run` where the host allows it). Ours = CreateContainer + StartContainer + the exit event, through
// cri::EmbeddedRuntime with the real cgroup driver and a cubelet-monitor per container.
// Root needed; it moves itself into fresh network and mount namespaces and works under its own
// cgroup parent ("cubelet-bench-<pid>") and /var/tmp/cubelet-bench-<pid> (state on the disk,
// the runtime's run directory on a tmpfs, as /run/cubelet is on a systemd host).
//
//   container_start [--n 100] [--only floor,runc,crun,cubelet] [--spare-monitors 1]
//                   [--settle-ms 30]
// --settle-ms N: an untimed pause before each contender's turn, so that work a contender leaves
// running in the background after its measured window (process teardown, RCU callbacks, a
// runtime's housekeeping) is not charged to the next one. Default 30 ms: longer than cubelet's
// (its spare monitor and container directory are replenished runtime::kReplenishDelay = 10 ms
// after a start, its monitor tears the container's mounts down after reporting the exit) and
// than what runc leaves behind. 0: back to back (earlier figures in docs/BENCHMARKS.md), where
// that work lands in the next contender's window and flatters whoever ran before it.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "cgroups/driver.h"
#include "cri/embedded_runtime.h"
#include "runtime/runtime.h"

using Clock = std::chrono::steady_clock;

namespace {

int Sh(const std::string& cmd) {
  int st = system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct Summary {
  double median = 0, p99 = 0, mean = 0;
  size_t n = 0;
};

Summary Summarize(std::vector<double> v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.median = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, (v.size() * 99) / 100)];
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  return s;
}

void Print(const char* name, const Summary& s) {
  if (s.n == 0) {
    printf("%-28s not run\n", name);
    return;
  }
  printf("%-28s n=%zu median=%.2f ms p99=%.2f ms mean=%.2f ms\n", name, s.n, s.median, s.p99, s.mean);
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// The floor: what any runtime must do at least.
double FloorOnce(const std::string& rootfs, const std::string& mnt) {
  auto t0 = Clock::now();
  pid_t pid = static_cast<pid_t>(syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
  if (pid == 0) {
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) _exit(10);
    if (mount(rootfs.c_str(), mnt.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) _exit(11);
    if (chdir(mnt.c_str()) != 0 || syscall(SYS_pivot_root, ".", ".") != 0) _exit(12);
    umount2(".", MNT_DETACH);
    if (chdir("/") != 0) _exit(13);
    char* argv[] = {const_cast<char*>("true"), nullptr};
    char* envp[] = {nullptr};
    execve("/bin/true", argv, envp);
    _exit(14);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return -1;
  return Ms(Clock::now() - t0);
}

// The floor runs in a small process of its own, forked before the runtime is made: a fork-style
// clone() write-protects every page of the process it is made from, and the first write to
// each of them afterwards faults. Made from the bench process itself, the floor's clone left
// that cost to the runtime under test (which lives in the bench process): CreateContainer took
// ~2 ms longer right after a floor turn than after a pause alone (1.4 vs 3.2 ms median). A
// minimal runtime is a small process; its own clone's cost stays in the floor's figure.
class FloorHelper {
 public:
  FloorHelper(const std::string& rootfs, const std::string& mnt) {
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      close(to[1]);
      close(from[0]);
      char c;
      while (read(to[0], &c, 1) == 1) {
        double ms = FloorOnce(rootfs, mnt);
        if (write(from[1], &ms, sizeof ms) != sizeof ms) break;
      }
      _exit(0);
    }
    close(to[0]);
    close(from[1]);
    to_ = to[1];
    from_ = from[0];
  }
  ~FloorHelper() {
    if (to_ >= 0) close(to_);
    if (from_ >= 0) close(from_);
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
  }
  FloorHelper(const FloorHelper&) = delete;
  FloorHelper& operator=(const FloorHelper&) = delete;

  // One floor run, timed inside the helper (clone to waitpid); -1 on failure.
  double Once() {
    char c = 'r';
    double ms = -1;
    if (to_ < 0 || write(to_, &c, 1) != 1 || read(from_, &ms, sizeof ms) != sizeof ms) return -1;
    return ms;
  }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
};

}  // namespace

// What a run that was killed left (its pid is gone): mounts under its /var/tmp directory (in
// this, the host's, mount namespace), its processes, cgroups and files.
static void RemoveStaleRuns() {
  const std::string prefix = "cubelet-bench-";
  for (const auto& name : base::ListDir("/var/tmp")) {
    if (name.rfind(prefix, 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(atoi(name.c_str() + prefix.size()));
    if (pid <= 0 || kill(pid, 0) == 0) continue;
    const std::string dir = "/var/tmp/" + name;
    Sh("grep -o ' " + dir + "[^ ]*' /proc/self/mounts | sort -r | while read -r m; do umount -l \"$m\"; done");
    for (const char* h : {"cpu", "cpuacct", "memory", "pids", "freezer", "devices", "blkio",
                          "cpuset", "systemd", "unified"}) {
      std::string cg = std::string("/sys/fs/cgroup/") + h + "/" + name;
      Sh("[ -d " + cg + " ] && { find " + cg + " -name cgroup.procs -exec cat {} + | xargs -r kill -9; "
         "sleep 0.2; find " + cg + " -depth -type d -exec rmdir {} + ; } 2>/dev/null");
    }
    Sh("rm -rf " + dir);
  }
}

int main(int argc, char** argv) {
  int n = 100;
  std::string only = "floor,runc,crun,cubelet";
  int spares = 1;
  int settle_ms = 30;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--n") n = atoi(argv[++i]);
    if (std::string(argv[i]) == "--only") only = argv[++i];
    if (std::string(argv[i]) == "--spare-monitors") spares = atoi(argv[++i]);
    if (std::string(argv[i]) == "--settle-ms") settle_ms = atoi(argv[++i]);
  }
  auto want = [&](const std::string& what) {
    return ("," + only + ",").find("," + what + ",") != std::string::npos;
  };
  if (geteuid() != 0) {
    fprintf(stderr, "container_start needs root\n");
    return 77;
  }
  RemoveStaleRuns();
  // Own network and mount namespaces: the run directory below is a tmpfs (as /run is on a
  // systemd host; on this VM /run is a plain directory of the root ext4), gone with the bench.
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
    perror("unshare(CLONE_NEWNET|CLONE_NEWNS)");
    return 1;
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
    perror("make / rslave");
    return 1;
  }
  std::string tag = std::to_string(getpid());
  std::string root = "/var/tmp/cubelet-bench-" + tag;
  std::string cg = "cubelet-bench-" + tag;
  std::string rootfs = root + "/busybox";
  Sh("rm -rf " + root + " && mkdir -p " + rootfs + "/bin " + rootfs + "/proc " + rootfs + "/sys " +
     rootfs + "/dev " + rootfs + "/etc " + rootfs + "/tmp && cp /bin/busybox " + rootfs +
     "/bin/busybox && for a in $(/bin/busybox --list); do [ \"$a\" = busybox ] || ln -sf busybox " +
     rootfs + "/bin/$a; done && echo 'root:x:0:0:root:/root:/bin/sh' > " + rootfs + "/etc/passwd");

  // The four are interleaved round by round (floor, runc, crun, cubelet, floor, ...) so that a
  // change in the machine's load (a shared 2-core VM) hits all of them alike.
  Sh("mkdir -p " + root + "/run");
  if (mount("tmpfs", (root + "/run").c_str(), "tmpfs", 0, "mode=755") != 0) {
    perror("mount tmpfs run dir");
    return 1;
  }
  std::string mnt = root + "/floor-mnt";
  Sh("mkdir -p " + mnt);
  FloorHelper floor_helper(rootfs, mnt);
  std::string bundle = root + "/bundle";
  Sh("mkdir -p " + bundle + " && cd " + bundle + " && runc spec");
  Sh("sed -i -e 's/\"terminal\": true/\"terminal\": false/' -e 's/\"sh\"/\"true\"/' -e 's|\"path\": \"rootfs\"|\"path\": \"" +
     rootfs + "\"|' " + bundle + "/config.json");
  struct Tool {
    std::string name;
    bool on;
    std::vector<double> t;
  };
  Tool tools[] = {{"runc", want("runc"), {}}, {"crun", want("crun"), {}}};
  auto settle = [&] {
    if (settle_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
  };
  auto run_tool = [&](Tool& tool, int i) {
    if (!tool.on) return;
    settle();
    std::string id = tool.name + "-" + tag + "-" + std::to_string(i);
    std::string err = root + "/" + tool.name + ".err";
    auto t0 = Clock::now();
    int rc = Sh(tool.name + " --root " + root + "/" + tool.name + "-state run -b " + bundle + " " +
                id + " >/dev/null 2>" + err);
    if (rc != 0) {
      fprintf(stderr, "%s run failed (rc %d); skipping %s. Its error:\n", tool.name.c_str(), rc,
              tool.name.c_str());
      Sh("head -3 " + err + " >&2");
      tool.on = false;
      tool.t.clear();
      return;
    }
    tool.t.push_back(Ms(Clock::now() - t0));
  };

  std::vector<double> floor, ours, ours_create, ours_start;
  std::unique_ptr<cri::EmbeddedRuntime> rt;
  std::string sandbox;
  cri::PodSandboxConfig pod;
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> stopped;
  if (want("cubelet")) {
    auto driver = cgroups::Detect(cg);
    if (!driver) {
      fprintf(stderr, "cgroups: %s\n", driver.error().message.c_str());
      return 1;
    }
    cri::EmbeddedRuntimeOptions o;
    o.root_dir = root + "/state";
    o.run_dir = root + "/run";
    o.cgroup_driver = std::move(*driver);
    o.spare_monitors = spares;
    auto r = cri::EmbeddedRuntime::Create(std::move(o));
    if (!r) {
      fprintf(stderr, "runtime: %s\n", r.error().message.c_str());
      return 1;
    }
    rt = std::move(*r);
    auto img = rt->runtime().images().ImportRootfs(rootfs, "busybox", {});
    if (!img) {
      fprintf(stderr, "import: %s\n", img.error().message.c_str());
      return 1;
    }
    rt->GetContainerEvents([&](const cri::ContainerEvent& e) {
      if (e.type != cri::ContainerEvent::Type::kStopped) return;
      std::lock_guard<std::mutex> l(mu);
      stopped.insert(e.container_id);
      cv.notify_all();
    });
    pod.metadata = {"bench", "uid-bench", "default", 0};
    pod.hostname = "bench";
    pod.linux.cgroup_parent = "kubepods/pod-bench";
    auto sb = rt->RunPodSandbox(pod);
    if (!sb) {
      fprintf(stderr, "sandbox: %s\n", sb.error().message.c_str());
      return 1;
    }
    sandbox = *sb;
  }
  bool ours_on = rt != nullptr;
  std::vector<std::string> ours_ids;
  for (int i = 0; i < n; ++i) {
    if (want("floor")) {
      settle();
      double ms = floor_helper.Once();
      if (ms >= 0) floor.push_back(ms);
    }
    for (auto& tool : tools) run_tool(tool, i);
    if (!ours_on) continue;
    settle();
    cri::ContainerConfig c;
    c.metadata = {"c" + std::to_string(i), 0};
    c.image.image = "busybox";
    c.command = {"true"};
    auto t0 = Clock::now();
    auto id = rt->CreateContainer(sandbox, c, pod);
    auto t1 = Clock::now();
    if (!id) {
      fprintf(stderr, "container %d: create failed: %s\n", i, id.error().message.c_str());
      ours_on = false;
      continue;
    }
    if (auto st = rt->StartContainer(*id); !st) {
      fprintf(stderr, "container %d: start failed: %s\n", i, st.error().message.c_str());
      ours_on = false;
      continue;
    }
    auto t2 = Clock::now();
    std::unique_lock<std::mutex> l(mu);
    cv.wait_for(l, std::chrono::seconds(10), [&] { return stopped.count(*id) > 0; });
    ours.push_back(Ms(Clock::now() - t0));
    ours_create.push_back(Ms(t1 - t0));
    ours_start.push_back(Ms(t2 - t1));
    ours_ids.push_back(*id);
  }
  if (rt) {
    // Removal is not timed (nor is runc's).
    for (const auto& id : ours_ids) (void)rt->RemoveContainer(id);
    (void)rt->RemovePodSandbox(sandbox);
    rt.reset();
  }
  auto& runc_t = tools[0].t;
  auto& crun_t = tools[1].t;
  umount2((root + "/run").c_str(), MNT_DETACH);
  Sh("rm -rf " + root);
  for (const char* h : {"cpu", "cpuacct", "memory", "pids", "freezer", "devices", "blkio", "cpuset",
                        "systemd", "unified"}) {
    Sh(std::string("find /sys/fs/cgroup/") + h + "/" + cg + " -depth -type d -exec rmdir {} + 2>/dev/null");
  }

  printf("container_start: run `true` in a busybox rootfs to completion, %d times each "
         "(%d ms pause before each turn)\n",
         n, settle_ms);
  Summary f = Summarize(floor), r = Summarize(runc_t), c = Summarize(crun_t), o = Summarize(ours);
  Print("floor (clone+pivot_root)", f);
  Print("runc run", r);
  Print("crun run", c);
  Print("cubelet (create+start+exit)", o);
  Print("  of which CreateContainer", Summarize(ours_create));
  Print("  of which StartContainer", Summarize(ours_start));
  if (f.n && o.n) printf("cubelet / floor (median): %.2fx\n", o.median / f.median);
  if (r.n && o.n) printf("runc / cubelet (median): %.2fx\n", r.median / o.median);
  printf("{\"floor_ms\":%.3f,\"runc_ms\":%.3f,\"crun_ms\":%.3f,\"cubelet_ms\":%.3f,"
         "\"cubelet_p99_ms\":%.3f}\n",
         f.median, r.median, c.median, o.median, o.p99);
  return 0;
}
