// The container start path: the init joins its cgroup itself, monitors are children of the
// cubelet process (reaped by it) yet outlive it, and specs written before those changes (pid/go
// handshake, files beside container.json) still start.
#include <sys/wait.h>

#include <filesystem>
#include <functional>
#include <map>

#include "tests/runtime/runtime_env.h"

using namespace rttest;

namespace {

std::vector<pid_t> CgroupProcs(cgroups::Driver* d, const std::string& ctrl, const std::string& cg) {
  std::vector<pid_t> out;
  std::istringstream in(Slurp(d->ControllerPath(ctrl, cg) + "/cgroup.procs"));
  pid_t p;
  while (in >> p) out.push_back(p);
  return out;
}

bool Contains(const std::vector<pid_t>& v, pid_t p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

// 'Z' for a zombie, 0 when the process is gone.
char ProcState(pid_t pid) {
  std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t rp = stat.rfind(')');
  return rp == std::string::npos || rp + 2 >= stat.size() ? 0 : stat[rp + 2];
}

// Field 19 of /proc/PID/stat (the nice value); -100 when unreadable.
int Nice(pid_t pid) {
  std::string stat = Slurp("/proc/" + std::to_string(pid) + "/stat");
  size_t rp = stat.rfind(')');
  if (rp == std::string::npos) return -100;
  std::istringstream in(stat.substr(rp + 2));
  std::string f;
  for (int field = 3; field <= 19 && in >> f; ++field) {
    if (field == 19) return std::stoi(f);
  }
  return -100;
}

// "mnt:[4026532...]" of a process, "" when gone.
std::string MountNs(pid_t pid) {
  char buf[64];
  std::string link = "/proc/" + std::to_string(pid) + "/ns/mnt";
  ssize_t n = readlink(link.c_str(), buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

// Processes whose mount namespace is `ns`, or that hold it open.
std::vector<pid_t> MountNsHolders(const std::string& ns) {
  std::vector<pid_t> out;
  for (const auto& e : base::ListDir("/proc")) {
    if (e.find_first_not_of("0123456789") != std::string::npos) continue;
    pid_t pid = static_cast<pid_t>(std::stoi(e));
    bool holds = MountNs(pid) == ns;
    for (const auto& fd : base::ListDir("/proc/" + e + "/fd")) {
      char buf[64];
      std::string link = "/proc/" + e + "/fd/" + fd;
      ssize_t n = readlink(link.c_str(), buf, sizeof buf);
      holds |= n > 0 && std::string(buf, static_cast<size_t>(n)) == ns;
    }
    if (holds) out.push_back(pid);
  }
  return out;
}

monitor::StartRecord Started(const Env& env, const std::string& id) {
  monitor::StartRecord sr;
  REQUIRE(monitor::DecodeStart(Slurp(env.root + "/run/containers/" + id + "/started"), &sr));
  return sr;
}

}  // namespace

TEST_CASE("start path: the init is in every hierarchy of its cgroup before it execs") {
  Env env("rt-join");
  auto pod = env.Pod("join");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  // The container reads its own cgroup membership as its first action: it must already be the
  // container's cgroup (the cgroup namespace makes it "/").
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sh", "-c", "cat /proc/self/cgroup; sleep 1000"}));
  auto st = env.Status(id);
  REQUIRE(st.pid > 0);
  std::string cg = "kubepods/pod-join/" + id;
  for (const char* ctrl : {"memory", "cpu", "pids", "freezer", "devices", "blkio"}) {
    INFO(ctrl);
    CHECK(Contains(CgroupProcs(env.cgroup_driver, ctrl, cg), st.pid));
  }
  std::this_thread::sleep_for(300ms);
  std::string log = Slurp(st.log_path);
  CHECK(log.find(":memory:/\n") != std::string::npos);
  CHECK(log.find(":pids:/\n") != std::string::npos);
  // The spec carries the files; the overlay is volatile where the kernel allows it.
  std::string spec = Slurp(env.root + "/run/containers/" + id + "/spec");
  CHECK(spec.find("\ncgroup_procs=") != std::string::npos);
  CHECK_FALSE(base::PathExists(env.root + "/state/containers/" + id + "/spec"));
  // Exec joins the cgroup itself too.
  auto ex = env.rt->ExecSync(id, {"cat", "/proc/self/cgroup"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_.find(":memory:/\n") != std::string::npos);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-join");
}

TEST_CASE("start path: the monitor is reaped when its container exits") {
  Env env("rt-reap");
  auto pod = env.Pod("reap");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sh", "-c", "sleep 0.2; exit 4"}));
  auto sr = Started(env, id);
  CHECK(getppid() != sr.monitor_pid);
  REQUIRE(env.WaitExited(id));
  CHECK(env.Status(id).exit_code == 4);
  // The exit is reported when the monitor says "exited" (its record is final), possibly before
  // its own teardown ends; the exit watcher still collects it (our child): no zombie is left.
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (ProcState(sr.monitor_pid) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  CHECK(ProcState(sr.monitor_pid) == 0);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
}

TEST_CASE("start path: a container outlives the cubelet process that started it") {
  Env env("rt-orphan");
  auto pod = env.Pod("orphan");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto c = env.Ctr("long", {"sh", "-c", "sleep 1000"});
  env.rt.reset();
  int p[2];
  REQUIRE(pipe(p) == 0);
  // Another process plays cubelet: it starts the container and dies without any cleanup.
  pid_t cubelet = fork();
  REQUIRE(cubelet >= 0);
  if (cubelet == 0) {
    close(p[0]);
    auto driver = cgroups::Detect(env.cg.path());
    if (!driver) _exit(10);
    cri::EmbeddedRuntimeOptions o;
    o.root_dir = env.root + "/state";
    o.run_dir = env.root + "/run";
    o.cgroup_driver = std::move(*driver);
    auto rt = cri::EmbeddedRuntime::Create(std::move(o));
    if (!rt) _exit(11);
    auto id = (*rt)->CreateContainer(*sb, c, pod);
    if (!id || !(*rt)->StartContainer(*id)) _exit(12);
    if (write(p[1], id->data(), id->size()) != static_cast<ssize_t>(id->size())) _exit(13);
    _exit(0);
  }
  close(p[1]);
  char buf[128];
  ssize_t n = read(p[0], buf, sizeof buf);
  close(p[0]);
  int status = 0;
  REQUIRE(waitpid(cubelet, &status, 0) == cubelet);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(n > 0);
  std::string id(buf, static_cast<size_t>(n));
  auto sr = Started(env, id);
  std::this_thread::sleep_for(200ms);
  CHECK(kill(sr.monitor_pid, 0) == 0);
  CHECK(ProcState(sr.monitor_pid) != 'Z');
  CHECK(ProcState(sr.init_pid) == 'S');
  env.Start();
  auto st = env.Status(id);
  CHECK(st.state == cri::ContainerState::kRunning);
  CHECK(st.pid == sr.init_pid);
  REQUIRE(env.rt->StopContainer(id, 0s));
  REQUIRE(env.WaitExited(id));
  CHECK(env.Status(id).exit_code == 137);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-orphan");
}

TEST_CASE("start path: a spec written before self-joining cgroups starts with the pid/go handshake") {
  Env env("rt-legacy");
  auto pod = env.Pod("legacy");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.rt->CreateContainer(*sb, env.Ctr("c", {"sleep", "1000"}), pod);
  REQUIRE(id);
  env.rt.reset();
  // What an older cubelet wrote: no cgroup_procs, every file beside container.json.
  std::string run = env.root + "/run/containers/" + *id;
  std::string disk = env.root + "/state/containers/" + *id;
  std::string spec = Slurp(run + "/spec");
  std::string old;
  std::istringstream in(spec);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("cgroup_procs=", 0) == 0) continue;
    for (size_t at; (at = line.find(run)) != std::string::npos;) line.replace(at, run.size(), disk);
    old += line + "\n";
  }
  REQUIRE(old.size() < spec.size());
  REQUIRE(base::WriteFileAtomic(disk + "/spec", old));
  REQUIRE(base::MkdirAll(disk + "/rootfs"));
  REQUIRE(testsupport::Run("cp " + run + "/seccomp.bpf " + disk + "/ && rm -rf " + run) == 0);
  env.Start();
  REQUIRE(env.rt->StartContainer(*id));
  auto st = env.Status(*id);
  REQUIRE(st.pid > 0);
  CHECK(Contains(CgroupProcs(env.cgroup_driver, "memory", "kubepods/pod-legacy/" + *id), st.pid));
  CHECK(base::PathExists(disk + "/started"));
  auto ex = env.rt->ExecSync(*id, {"sh", "-c", "echo in"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "in\n");
  REQUIRE(env.rt->StopContainer(*id, 1s));
  REQUIRE(env.WaitExited(*id));
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {*id}, "kubepods/pod-legacy");
}

TEST_CASE("start path: after a reboot (empty run directory) containers are reported exited") {
  Env env("rt-reboot");
  auto pod = env.Pod("reboot");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.rt->CreateContainer(*sb, env.Ctr("c", {"true"}), pod);
  REQUIRE(id);
  env.rt.reset();
  REQUIRE(testsupport::Run("rm -rf " + env.root + "/run/containers/" + *id) == 0);
  env.Start();
  auto st = env.Status(*id);
  CHECK(st.state == cri::ContainerState::kExited);
  CHECK(st.exit_code == 255);
  CHECK(st.reason == "Unknown");
  CHECK_FALSE(env.rt->StartContainer(*id));
  REQUIRE(env.rt->RemoveContainer(*id));
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {*id}, "kubepods/pod-reboot");
}

namespace {

// Our children started as `cubelet-monitor spare` that run no container (yet).
std::vector<pid_t> Spares(const std::vector<pid_t>& busy = {}) {
  std::vector<pid_t> out;
  std::string me = std::to_string(getpid());
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = Slurp("/proc/" + name + "/cmdline");
    if (cmd.find("cubelet-monitor") == std::string::npos) continue;
    if (cmd.find(std::string("\0spare", 6)) == std::string::npos) continue;
    std::string stat = Slurp("/proc/" + name + "/stat");
    size_t rp = stat.rfind(')');
    if (rp == std::string::npos) continue;
    std::istringstream in(stat.substr(rp + 2));
    std::string state, ppid;
    in >> state >> ppid;
    pid_t pid = std::stoi(name);
    if (ppid == me && state != "Z" && !Contains(busy, pid)) out.push_back(pid);
  }
  return out;
}

bool WaitFor(const std::function<bool()>& f, std::chrono::milliseconds d = 5s) {
  auto end = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return f();
}

}  // namespace

TEST_CASE("start path: a warm spare monitor runs the next container and is replaced") {
  Env env("rt-spare");
  REQUIRE(WaitFor([] { return Spares().size() == 1; }));
  pid_t spare = Spares()[0];
  auto pod = env.Pod("spare");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  // Spares are made in the background, at the lowest priority (runtime/background.h); the
  // one taken, and the container it starts, get ours back.
  const int ours = Nice(getpid());
  if (geteuid() == 0) CHECK(Nice(spare) == 19);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sleep", "1000"}));
  CHECK(Started(env, id).monitor_pid == spare);
  CHECK(Nice(spare) == ours);
  CHECK(Nice(Started(env, id).init_pid) == ours);
  // A new spare is made in the background.
  REQUIRE(WaitFor([&] { return Spares({spare}).size() == 1; }));
  if (geteuid() == 0) CHECK(Nice(Spares({spare})[0]) == 19);
  // A spare that died is not used: the start still works with a fresh monitor.
  pid_t dead = Spares({spare})[0];
  REQUIRE(kill(dead, SIGKILL) == 0);
  REQUIRE(WaitFor([&] { return ProcState(dead) == 'Z' || ProcState(dead) == 0; }));
  auto id2 = env.Run(*sb, pod, env.Ctr("d", {"sh", "-c", "exit 6"}));
  CHECK(Started(env, id2).monitor_pid != dead);
  CHECK(Started(env, id2).monitor_pid > 0);
  REQUIRE(env.WaitExited(id2));
  CHECK(env.Status(id2).exit_code == 6);
  CHECK(ProcState(dead) == 0);  // reaped
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  // Without cubelet the spare has nothing to do: it exits, and is reaped.
  REQUIRE(WaitFor([] { return Spares().size() == 1; }));
  pid_t last = Spares()[0];
  env.rt.reset();
  CHECK(ProcState(last) == 0);
}

namespace {

// Entries of the container directory pool (dir_pool.h), by name -> inode.
std::map<std::string, ino_t> PoolEntries(const std::string& pool) {
  std::map<std::string, ino_t> out;
  for (const auto& name : base::ListDir(pool)) {
    if (name[0] == '.') continue;
    out[name] = NsInode(pool + "/" + name);
  }
  return out;
}

}  // namespace

TEST_CASE("start path: container directories made ahead are renamed into place; a crash's leftovers are swept") {
  Env env("rt-dirpool");
  std::string pool = env.root + "/state/container-pool";
  REQUIRE(WaitFor([&] { return PoolEntries(pool).size() == 2; }));
  auto before = PoolEntries(pool);
  for (const auto& [name, ino] : before) {
    CHECK(base::PathExists(pool + "/" + name + "/upper"));
    CHECK(base::PathExists(pool + "/" + name + "/work"));
    CHECK(base::PathExists(pool + "/" + name + "/container.json.tmp"));
  }
  auto pod = env.Pod("dirpool");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.rt->CreateContainer(*sb, env.Ctr("c", {"sh", "-c", "echo hi > /f; sleep 1000"}), pod);
  REQUIRE(id);
  // The container's directory is one of the entries (same inode), its record written in place.
  std::string dir = env.root + "/state/containers/" + *id;
  bool taken = false;
  for (const auto& [name, ino] : before) taken |= ino == NsInode(dir);
  CHECK(taken);
  CHECK(PoolEntries(pool).size() == 1);
  CHECK_FALSE(base::PathExists(dir + "/container.json.tmp"));
  CHECK(Slurp(dir + "/container.json").find(*id) != std::string::npos);
  REQUIRE(env.rt->StartContainer(*id));
  // The container writes to its overlay's upper directory there.
  REQUIRE(WaitFor([&] { return base::PathExists(dir + "/upper/f"); }));
  // Replenished after the start, never beyond its size.
  REQUIRE(WaitFor([&] { return PoolEntries(pool).size() == 2; }));
  std::this_thread::sleep_for(100ms);
  CHECK(PoolEntries(pool).size() == 2);

  // A crash: the pool's entries and a half-made one stay, and a CreateContainer that died
  // before its record left a directory in containers/.
  env.rt.reset();
  CHECK_FALSE(base::PathExists(pool));  // a clean shutdown removes the pool
  REQUIRE(testsupport::Run("mkdir -p " + pool + "/leftover/upper " + pool + "/.new-half/work " +
                           env.root + "/state/containers/0123dead/upper " + env.root +
                           "/run/containers/0123dead") == 0);
  env.Start();
  CHECK_FALSE(base::PathExists(pool + "/leftover"));
  CHECK_FALSE(base::PathExists(pool + "/.new-half"));
  CHECK_FALSE(base::PathExists(env.root + "/state/containers/0123dead"));
  CHECK_FALSE(base::PathExists(env.root + "/run/containers/0123dead"));
  // The real container was re-adopted, running.
  CHECK(env.Status(*id).state == cri::ContainerState::kRunning);
  REQUIRE(WaitFor([&] { return PoolEntries(pool).size() == 2; }));
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {*id}, "kubepods/pod-dirpool");
  env.rt.reset();
  CHECK_FALSE(base::PathExists(pool));
}

TEST_CASE("start path: a start leaves no thread behind to reap its monitor (the watcher does)") {
  Env env("rt-nothread");
  auto pod = env.Pod("nothread");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto threads = [] { return base::ListDir("/proc/self/task").size(); };
  auto first = env.Run(*sb, pod, env.Ctr("c0", {"sleep", "1000"}));
  size_t before = threads();
  std::vector<std::string> ids{first};
  for (int i = 1; i <= 4; ++i) {
    ids.push_back(env.Run(*sb, pod, env.Ctr("c" + std::to_string(i), {"sleep", "1000"})));
  }
  // (The runtime's task runner may add one thread; a waiter per running container would be 4.)
  CHECK(threads() <= before + 1);
  std::vector<pid_t> monitors;
  for (const auto& id : ids) monitors.push_back(Started(env, id).monitor_pid);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  // Every monitor was reaped all the same (by the exit watcher): no zombie left.
  CHECK(WaitFor([&] {
    for (pid_t m : monitors) {
      if (ProcState(m) != 0) return false;
    }
    return true;
  }));
  env.CheckNoLeaks(*sb, ids, "kubepods/pod-nothread");
}

TEST_CASE("start path: the exit is reported before the container's mounts are torn down, which then are") {
  Env env("rt-mntns");
  auto pod = env.Pod("mntns");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sh", "-c", "sleep 0.5; exit 3"}));
  auto sr = Started(env, id);
  std::string ns = MountNs(sr.init_pid);
  REQUIRE_FALSE(ns.empty());
  CHECK(ns != MountNs(getpid()));
  // The monitor holds the namespace (so that its unmounts come after the exit is reported).
  auto holders = MountNsHolders(ns);
  CHECK(std::find(holders.begin(), holders.end(), sr.monitor_pid) != holders.end());
  REQUIRE(env.WaitExited(id));
  CHECK(env.Status(id).exit_code == 3);
  // Once the monitor is gone nothing holds the container's mount namespace (its overlay,
  // /proc, /dev and the rest are unmounted with it).
  REQUIRE(WaitFor([&] { return ProcState(sr.monitor_pid) == 0; }));
  CHECK(MountNsHolders(ns).empty());
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-mntns");
}
