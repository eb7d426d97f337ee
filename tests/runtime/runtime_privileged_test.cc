#include <fcntl.h>
#include <cstring>
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
// The embedded runtime on the real kernel, through cri::EmbeddedRuntime: sandboxes, containers
// run by cubelet-monitor, logs, exits, stop, exec, security, re-adoption and cleanup.
// Each test runs under its own testsupport::CgroupParent (the cgroup driver's root) inside the
// fresh network namespace privileged_main gives the whole process.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <regex>
#include <sstream>
#include <thread>

#include "base/file.h"
#include "base/strings.h"
#include "runtime/registry_puller.h"
#include "cgroups/driver.h"
#include "cri/embedded_runtime.h"
#include "runtime/network/bridge_network.h"
#include "runtime/monitor/spec.h"
#include "runtime/runtime.h"
#include "runtime/security.h"
#include "tests/runtime/runtime_env.h"
#include "tests/runtime/test_image.h"
#include "tests/support/kernel_env.h"
#include "runtime/port_forward.h"

using namespace std::chrono_literals;

using namespace rttest;

TEST_CASE("runtime: a container's output lands in the CRI log and its exit code is reported") {
  Env env("rt-hello");
  auto pod = env.Pod("hello");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("main", {"sh", "-c", "echo hello; echo err >&2; exit 3"}));
  REQUIRE(env.WaitExited(id));
  auto st = env.Status(id);
  CHECK(st.state == cri::ContainerState::kExited);
  CHECK(st.exit_code == 3);
  CHECK(st.reason == "Error");
  CHECK(st.finished_at >= st.started_at);
  CHECK(st.started_at > 0);
  CHECK(st.log_path == pod.log_directory + "/main/0.log");
  CHECK(st.image_ref.find("docker.io/library/busybox@sha256:") == 0);
  std::string log = Slurp(st.log_path);
  std::regex line_re(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (stdout|stderr) F (.*)$)");
  std::istringstream in(log);
  std::string line;
  std::vector<std::string> got;
  while (std::getline(in, line)) {
    std::smatch m;
    REQUIRE(std::regex_match(line, m, line_re));
    got.push_back(m[2].str() + " " + m[3].str());
  }
  std::sort(got.begin(), got.end());  // stdout and stderr are separate pipes: order may vary
  CHECK(got == std::vector<std::string>{"stderr err", "stdout hello"});
  CHECK(env.events.Count(id, cri::ContainerEvent::Type::kStopped) == 1);

  // Log rotation: the kubelet renames the file and asks for a reopen; new lines go to a new file.
  auto talker = env.Run(*sb, pod, env.Ctr("talker", {"sh", "-c", "while true; do echo tick; sleep 0.1; done"}));
  std::string tlog = env.Status(talker).log_path;
  std::this_thread::sleep_for(500ms);
  REQUIRE(rename(tlog.c_str(), (tlog + ".1").c_str()) == 0);
  REQUIRE(env.rt->ReopenContainerLog(talker));
  std::this_thread::sleep_for(500ms);
  CHECK(Slurp(tlog).find("stdout F tick") != std::string::npos);
  CHECK(Slurp(tlog + ".1").find("stdout F tick") != std::string::npos);
  REQUIRE(env.rt->StopContainer(talker, 1s));
  CHECK_FALSE(env.rt->ReopenContainerLog(talker));  // not running any more

  // A container that exits 0 is Completed.
  auto id2 = env.Run(*sb, pod, env.Ctr("ok", {"true"}));
  REQUIRE(env.WaitExited(id2));
  CHECK(env.Status(id2).exit_code == 0);
  CHECK(env.Status(id2).reason == "Completed");

  std::string pod_cgroup = "kubepods/pod-hello";
  REQUIRE(env.rt->StopPodSandbox(*sb));
  REQUIRE(env.rt->StopPodSandbox(*sb));  // idempotent
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id, id2, talker}, pod_cgroup);
  CHECK(base::PathExists(st.log_path));  // logs belong to the kubelet
  auto gone = env.rt->ContainerStatus(id);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().code == cri::kErrNotFound);
}

TEST_CASE("runtime: a running container is in its cgroup, pod namespaces, with limits") {
  Env env("rt-running");
  auto pod = env.Pod("web");
  pod.linux.sysctls = {{"net.ipv4.ip_unprivileged_port_start", "80"}, {"kernel.shmmni", "1000"}};
  cri::LinuxContainerResources pod_res;
  pod_res.memory_limit_in_bytes = 256 << 20;
  pod.linux.resources = pod_res;
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto c = env.Ctr("app", {"sleep", "1000"});
  c.linux.resources.memory_limit_in_bytes = 64 << 20;
  c.linux.resources.cpu_quota = 50000;
  c.linux.resources.cpu_period = 100000;
  c.linux.resources.cpu_shares = 512;
  c.envs = {{"FOO", "bar"}};
  auto id = env.Run(*sb, pod, c);
  auto st = env.Status(id);
  REQUIRE(st.state == cri::ContainerState::kRunning);
  REQUIRE(st.pid > 0);
  pid_t pid = st.pid;
  std::string cgroup = "kubepods/pod-web/" + id;
  // In the container cgroup (every v1 hierarchy the driver manages).
  std::string proc_cgroup = Slurp("/proc/" + std::to_string(pid) + "/cgroup");
  CHECK(proc_cgroup.find(env.cg.path() + "/" + cgroup) != std::string::npos);
  std::string procs = Slurp(env.cgroup_driver->ControllerPath("memory", cgroup) + "/cgroup.procs");
  CHECK(procs.find(std::to_string(pid)) != std::string::npos);
  // Limits.
  if (env.cgroup_driver->version() == cgroups::Version::kV1) {
    CHECK(Trim(Slurp(env.cgroup_driver->ControllerPath("memory", cgroup) + "/memory.limit_in_bytes")) ==
          std::to_string(64 << 20));
    CHECK(Trim(Slurp(env.cgroup_driver->ControllerPath("memory", "kubepods/pod-web") +
                     "/memory.limit_in_bytes")) == std::to_string(256 << 20));
    CHECK(Trim(Slurp(env.cgroup_driver->ControllerPath("cpu", cgroup) + "/cpu.cfs_quota_us")) == "50000");
    CHECK(Trim(Slurp(env.cgroup_driver->ControllerPath("cpu", cgroup) + "/cpu.shares")) == "512");
  }
  // Namespaces: own pid and mount, the pod's net/ipc/uts.
  std::string ns = "/proc/" + std::to_string(pid) + "/ns/";
  CHECK(NsInode(ns + "pid") != NsInode("/proc/self/ns/pid"));
  CHECK(NsInode(ns + "mnt") != NsInode("/proc/self/ns/mnt"));
  CHECK(NsInode(ns + "net") == NsInode(env.root + "/run/netns/" + *sb));
  CHECK(NsInode(ns + "net") != NsInode("/proc/self/ns/net"));
  CHECK(NsInode(ns + "ipc") == NsInode(env.root + "/run/ipcns/" + *sb));
  CHECK(NsInode(ns + "uts") == NsInode(env.root + "/run/utsns/" + *sb));
  // Inside: hostname, /proc mounted, pid 1 is the container process, env, /etc files.
  auto ex = env.rt->ExecSync(id, {"hostname"}, 10s);
  REQUIRE(ex);
  CHECK(ex->exit_code == 0);
  CHECK(ex->stdout_ == "web-host\n");
  ex = env.rt->ExecSync(id, {"cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/kernel/shmmni"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "80\n1000\n");
  CHECK(Trim(Slurp("/proc/sys/kernel/shmmni")) != "1000");  // not the node's
  ex = env.rt->ExecSync(id, {"cat", "/proc/1/cmdline"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == std::string("sleep\0" "1000\0", 11));
  ex = env.rt->ExecSync(id, {"sh", "-c", "echo $FOO $HOSTNAME; cat /etc/hostname; grep -c Kubernetes-managed /etc/hosts"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "bar web-host\nweb-host\n1\n");
  ex = env.rt->ExecSync(id, {"sh", "-c", "echo out; echo err >&2; exit 5"}, 10s);
  REQUIRE(ex);
  CHECK(ex->exit_code == 5);
  CHECK(ex->stdout_ == "out\n");
  CHECK(ex->stderr_ == "err\n");
  ex = env.rt->ExecSync(id, {"sh", "-c", "cat /proc/self/cgroup"}, 10s);
  REQUIRE(ex);  // the exec'd process joined the container cgroup (namespace root = "/")
  CHECK(ex->stdout_.find(":memory:/\n") != std::string::npos);
  auto missing = env.rt->ExecSync(id, {"no-such-tool"}, 10s);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message.find("executable file not found in $PATH") != std::string::npos);
  auto t0 = std::chrono::steady_clock::now();
  auto slow = env.rt->ExecSync(id, {"sleep", "30"}, 1s);
  REQUIRE_FALSE(slow);
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  // Stats from the cgroup, and the writable layer's usage (a 2 MiB file written now).
  auto ddw = env.rt->ExecSync(id, {"dd", "if=/dev/zero", "of=/big", "bs=1024", "count=2048"}, 10s);
  REQUIRE(ddw);
  REQUIRE(ddw->exit_code == 0);
  auto stats = env.rt->ContainerStats(id);
  REQUIRE(stats);
  CHECK(stats->memory.usage_bytes > 0);
  CHECK(stats->writable_layer_timestamp > 0);
  CHECK(stats->writable_layer_bytes >= 2 * 1024 * 1024);
  CHECK(stats->writable_layer_bytes < 64 * 1024 * 1024);
  CHECK(stats->writable_layer_inodes >= 2);  // the layer's root and /big at least
  // `sleep` as pid 1 has no SIGTERM handler, so the kernel drops SIGTERM: the stop escalates to
  // SIGKILL after the timeout.
  t0 = std::chrono::steady_clock::now();
  REQUIRE(env.rt->StopContainer(id, 2s));
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= 2s);
  CHECK(took < 15s);
  st = env.Status(id);
  CHECK(st.state == cri::ContainerState::kExited);
  CHECK(st.exit_code == 137);
  CHECK(kill(pid, 0) != 0);
  REQUIRE(env.rt->StopContainer(id, 2s));  // idempotent
  REQUIRE(env.rt->RemoveContainer(id));
  REQUIRE(env.rt->RemoveContainer(id));
  CHECK_FALSE(base::PathExists(env.cgroup_driver->ControllerPath("memory", cgroup)));
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-web");
}

TEST_CASE("runtime: SIGTERM handled or ignored; stop honours the timeout") {
  Env env("rt-stop");
  auto pod = env.Pod("stop");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  // A shell that traps TERM and exits 0 on it stops right away.
  auto polite = env.Run(*sb, pod, env.Ctr("polite", {"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"}));
  auto stubborn = env.Run(*sb, pod, env.Ctr("stubborn", {"sh", "-c", "trap '' TERM; sleep 1000 & wait; sleep 1000"}));
  std::this_thread::sleep_for(300ms);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(env.rt->StopContainer(polite, 10s));
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(env.Status(polite).exit_code == 0);
  t0 = std::chrono::steady_clock::now();
  REQUIRE(env.rt->StopContainer(stubborn, 2s));
  CHECK(std::chrono::steady_clock::now() - t0 >= 2s);
  CHECK(env.Status(stubborn).exit_code == 137);
  CHECK(env.Status(stubborn).reason == "Error");
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {polite, stubborn}, "kubepods/pod-stop");
}

TEST_CASE("runtime: an executable that is not found is a start error with exit code 128") {
  Env env("rt-notfound");
  auto pod = env.Pod("nf");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.rt->CreateContainer(*sb, env.Ctr("bad", {"no-such-binary", "x"}), pod);
  REQUIRE(id);
  CHECK(env.Status(*id).state == cri::ContainerState::kCreated);
  auto r = env.rt->StartContainer(*id);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == cri::kErrRunContainer);
  CHECK(r.error().message.find("\"bad\"") != std::string::npos);
  CHECK(r.error().message.find("exec: \"no-such-binary\": executable file not found in $PATH") !=
        std::string::npos);
  auto st = env.Status(*id);
  CHECK(st.state == cri::ContainerState::kExited);
  CHECK(st.exit_code == 128);
  CHECK(st.reason == "StartError");
  CHECK(st.message.find("executable file not found") != std::string::npos);
  // A sysctl that is not namespaced is refused, not applied to the node.
  auto bad_pod = env.Pod("badsysctl");
  bad_pod.linux.sysctls = {{"vm.swappiness", "1"}};
  auto bad_sb = env.rt->RunPodSandbox(bad_pod);
  REQUIRE_FALSE(bad_sb);
  CHECK(bad_sb.error().message.find("vm.swappiness") != std::string::npos);
  CHECK(env.rt->ListPodSandbox({})->size() == 1);
  // An image that is not in the store.
  auto c = env.Ctr("x", {"true"});
  c.image.image = "docker.io/library/nothere:1.0";
  auto missing = env.rt->CreateContainer(*sb, c, pod);
  REQUIRE_FALSE(missing);
  CHECK(missing.error().code == cri::kErrNotFound);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {*id}, "kubepods/pod-nf");
}

TEST_CASE("runtime: capabilities, seccomp RuntimeDefault, no_new_privs, read-only mounts") {
  Env env("rt-security");
  auto pod = env.Pod("sec");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  std::string vol = env.root + "/volume";
  REQUIRE(base::MkdirAll(vol));
  REQUIRE(base::WriteFile(vol + "/token", "secret-token"));
  auto c = env.Ctr("locked", {"sleep", "1000"});
  c.linux.security_context.capabilities.drop_capabilities = {"NET_RAW", "CHOWN"};
  c.linux.security_context.no_new_privs = true;
  c.mounts.push_back({"/var/run/secrets/kubernetes.io/serviceaccount", vol, true});
  auto id = env.Run(*sb, pod, c);
  pid_t pid = env.Status(id).pid;
  uint64_t expected = runtime::DefaultCapabilities() & ~(1ull << 13) & ~(1ull << 0);
  CHECK(CapEff(pid) == expected);
  CHECK(StatusField(pid, "Seccomp") == "2");
  CHECK(StatusField(pid, "NoNewPrivs") == "1");
  // The exec'd process gets the same restrictions.
  auto ex = env.rt->ExecSync(id, {"sh", "-c", "grep CapEff /proc/self/status"}, 10s);
  REQUIRE(ex);
  char hex[32];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(expected));
  CHECK(ex->stdout_.find(hex) != std::string::npos);
  // unshare(2) is not in the RuntimeDefault allow-list: EPERM.
  ex = env.rt->ExecSync(id, {"unshare", "-U", "true"}, 10s);
  REQUIRE(ex);
  CHECK(ex->exit_code != 0);
  CHECK(ex->stderr_.find("Operation not permitted") != std::string::npos);
  // The devices cgroup: a block device node can be made (CAP_MKNOD) but not opened.
  ex = env.rt->ExecSync(id, {"sh", "-c", "mknod /tmp/disk b 7 0 && echo made; head -c1 /tmp/disk; echo x > /dev/null && echo null-ok"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "made\nnull-ok\n");
  CHECK(ex->stderr_.find("Operation not permitted") != std::string::npos);
  // Read-only volume: readable, not writable.
  ex = env.rt->ExecSync(id, {"cat", "/var/run/secrets/kubernetes.io/serviceaccount/token"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "secret-token");
  ex = env.rt->ExecSync(id, {"touch", "/var/run/secrets/kubernetes.io/serviceaccount/x"}, 10s);
  REQUIRE(ex);
  CHECK(ex->exit_code != 0);
  CHECK(ex->stderr_.find("Read-only file system") != std::string::npos);
  // Masked and read-only /proc paths; the rootfs itself is writable (overlay upper).
  ex = env.rt->ExecSync(id, {"sh", "-c", "wc -c < /proc/timer_list; ls /proc/acpi | wc -l; echo x > /proc/sys/kernel/hostname; touch /newfile && echo wrote"}, 10s);
  REQUIRE(ex);
  INFO("stdout: " << ex->stdout_ << " stderr: " << ex->stderr_);
  CHECK(ex->stdout_.find("0\n0\n") == 0);
  CHECK(ex->stderr_.find("Read-only file system") != std::string::npos);
  CHECK(ex->stdout_.find("wrote") != std::string::npos);
  // Every masked directory (they share one empty read-only tmpfs) is empty and read-only.
  ex = env.rt->ExecSync(id, {"sh", "-c", "ls -A /sys/firmware /proc/acpi; mkdir /sys/firmware/x || mkdir /proc/acpi/x || echo refused"}, 10s);
  REQUIRE(ex);
  INFO("stdout: " << ex->stdout_ << " stderr: " << ex->stderr_);
  CHECK(ex->stdout_.find("memmap") == std::string::npos);  // on the host's /sys/firmware
  CHECK(ex->stdout_.find("refused") != std::string::npos);
  CHECK(ex->stderr_.find("Read-only file system") != std::string::npos);
  auto busybox_image = env.rt->runtime().images().Find("busybox");
  REQUIRE(busybox_image);
  for (const auto& layer : busybox_image->layers) {
    CHECK_FALSE(base::PathExists(layer + "/newfile"));  // the write went to the upper dir
  }

  // Privileged: every capability, no seccomp; unshare works.
  auto p = env.Ctr("priv", {"sleep", "1000"});
  p.linux.security_context.privileged = true;
  auto pid2_id = env.Run(*sb, pod, p);
  pid_t pid2 = env.Status(pid2_id).pid;
  CHECK(CapEff(pid2) == runtime::AllCapabilities());  // as far as this process has them
  CHECK(StatusField(pid2, "Seccomp") == "0");
  ex = env.rt->ExecSync(pid2_id, {"unshare", "-U", "true"}, 10s);
  REQUIRE(ex);
  CHECK(ex->exit_code == 0);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id, pid2_id}, "kubepods/pod-sec");
}

TEST_CASE("runtime: containers survive a runtime restart and are re-adopted") {
  Env env("rt-adopt");
  auto pod = env.Pod("adopt");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto c = env.Ctr("long", {"sleep", "1000"});
  c.labels["io.kubernetes.pod.uid"] = "uid-adopt";
  c.annotations["io.kubernetes.container.restartCount"] = "4";
  auto id = env.Run(*sb, pod, c);
  auto quick = env.Run(*sb, pod, env.Ctr("quick", {"sh", "-c", "sleep 1; exit 7"}));
  auto created = env.rt->CreateContainer(*sb, env.Ctr("later", {"sh", "-c", "exit 9"}), pod);
  REQUIRE(created);
  pid_t pid = env.Status(id).pid;
  REQUIRE(pid > 0);
  env.rt.reset();  // "cubelet" goes away; the monitors do not
  CHECK(kill(pid, 0) == 0);
  std::this_thread::sleep_for(2s);  // `quick` exits while nobody watches
  env.Start();
  auto st = env.Status(id);
  CHECK(st.state == cri::ContainerState::kRunning);
  CHECK(st.pid == pid);
  CHECK(st.annotations.at("io.kubernetes.container.restartCount") == "4");
  cri::ContainerFilter f;
  f.label_selector = {{"io.kubernetes.pod.uid", "uid-adopt"}};
  auto listed = env.rt->ListContainers(f);
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].id == id);
  auto q = env.Status(quick);
  CHECK(q.state == cri::ContainerState::kExited);
  CHECK(q.exit_code == 7);
  auto sbs = env.rt->ListPodSandbox({});
  REQUIRE(sbs);
  REQUIRE(sbs->size() == 1);
  CHECK((*sbs)[0].labels.at("io.kubernetes.pod.name") == "adopt");
  // A container created before the restart starts after it.
  CHECK(env.Status(*created).state == cri::ContainerState::kCreated);
  REQUIRE(env.rt->StartContainer(*created));
  REQUIRE(env.WaitExited(*created));
  CHECK(env.Status(*created).exit_code == 9);
  // The re-adopted container's exit is still an event with the real status.
  kill(pid, SIGKILL);
  REQUIRE(env.WaitExited(id));
  st = env.Status(id);
  CHECK(st.state == cri::ContainerState::kExited);
  CHECK(st.exit_code == 137);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id, quick, *created}, "kubepods/pod-adopt");
}

TEST_CASE("runtime: the monitor stays small") {
  Env env("rt-rss");
  auto pod = env.Pod("rss");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("s", {"sleep", "1000"}));
  std::string started = Slurp(env.root + "/run/containers/" + id + "/started");
  monitor::StartRecord sr;
  REQUIRE(monitor::DecodeStart(started, &sr));
  std::string rss = StatusField(sr.monitor_pid, "VmRSS");
  INFO("monitor VmRSS: " << rss);
  // A guard, not a benchmark: a monitor per container must stay in the order of a megabyte (it
  // measures 0.9-1.0 MiB: static, no heap growth after the start); a regression that pulls in
  // the runtime's libraries or leaks per event would be several times that.
  CHECK(std::stoul(rss) < 2048);  // kB
  REQUIRE(env.rt->RemovePodSandbox(*sb));
}

TEST_CASE("runtime: with the bridge pod network, a pod gets an IP and leaves no veth behind") {
  Env env("rt-net");
  runtime::net::BridgeNetworkOptions no;
  no.bridge_name = "cbrt0";
  no.state_dir = env.root + "/network";
  no.cluster_cidr = "10.250.0.0/16";
  auto net = std::make_unique<runtime::net::BridgeNetwork>(no);
  env.rt.reset();
  env.Start(std::move(net));
  auto st = env.rt->Status();
  REQUIRE(st);
  CHECK_FALSE(st->conditions[1].status);  // no pod CIDR yet
  REQUIRE(env.rt->UpdateRuntimeConfig("10.250.3.0/24"));
  st = env.rt->Status();
  CHECK(st->conditions[1].type == "NetworkReady");
  CHECK(st->conditions[1].status);
  auto pod = env.Pod("netpod");
  auto sb = env.rt->RunPodSandbox(pod);
  if (!sb) FAIL(sb.error().message);
  auto ps = env.rt->PodSandboxStatus(*sb);
  REQUIRE(ps);
  CHECK(ps->state == cri::PodSandboxState::kReady);
  CHECK(ps->network.ip.rfind("10.250.3.", 0) == 0);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sleep", "1000"}));
  auto ex = env.rt->ExecSync(id, {"sh", "-c", "ip -4 addr show eth0 | grep -c " + ps->network.ip +
                                                 "; grep netpod-host /etc/hosts"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "1\n" + ps->network.ip + "\tnetpod-host\n");
  std::string veth = runtime::net::BridgeNetwork::HostVethName(*sb);
  CHECK(testsupport::Run("ip link show " + veth) == 0);
  REQUIRE(env.rt->StopPodSandbox(*sb));
  CHECK(testsupport::Run("ip link show " + veth) != 0);
  ps = env.rt->PodSandboxStatus(*sb);
  REQUIRE(ps);
  CHECK(ps->state == cri::PodSandboxState::kNotReady);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-netpod");
  testsupport::Run("ip link del cbrt0");
}

TEST_CASE("runtime: a container over its memory limit is OOMKilled") {
  Env env("rt-oom");
  auto pod = env.Pod("oom");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto c = env.Ctr("hog", {"sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; "
                                       "while true; do x=$x$x; done"});
  c.linux.resources.memory_limit_in_bytes = 32 << 20;
  auto id = env.Run(*sb, pod, c);
  REQUIRE(env.WaitExited(id, 60s));
  auto st = env.Status(id);
  CHECK(st.exit_code == 137);
  CHECK(st.reason == "OOMKilled");
  REQUIRE(env.rt->RemovePodSandbox(*sb));
}

TEST_CASE("runtime: images are pulled from a registry with every digest verified") {
  Env env("rt-pull");
  // A real registry (Debian's docker-registry) on 127.0.0.1:5000 of this test's own netns.
  std::string reg = env.root + "/registry";
  REQUIRE(base::MkdirAll(reg + "/data"));
  REQUIRE(base::WriteFile(reg + "/config.yml",
                          "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: " +
                              reg + "/data\nhttp:\n  addr: 127.0.0.1:5000\n"));
  REQUIRE(testsupport::Run("docker-registry serve " + reg + "/config.yml > " + reg +
                           "/log 2>&1 & echo $! > " + reg + "/pid") == 0);
  struct Stop {
    std::string pidfile;
    ~Stop() { testsupport::Run("kill $(cat " + pidfile + ")"); }
  } stop{reg + "/pid"};
  bool up = false;
  for (int i = 0; i < 100 && !up; ++i) {
    up = testsupport::Run("curl -sf http://127.0.0.1:5000/v2/ >/dev/null") == 0;
    if (!up) std::this_thread::sleep_for(100ms);
  }
  REQUIRE(up);
  std::string out;
  int rc = testsupport::Run("skopeo copy --insecure-policy --dest-tls-verify=false oci:" +
                                testimage::BusyboxLayout() + ":latest docker://127.0.0.1:5000/test/busybox:v1",
                            &out);
  INFO(out);
  REQUIRE(rc == 0);
  cri::ImageSpec spec;
  spec.image = "127.0.0.1:5000/test/busybox:v1";
  auto ref = env.rt->PullImage(spec, {}, nullptr);
  if (!ref) FAIL(ref.error().message);
  CHECK(ref->rfind("127.0.0.1:5000/test/busybox@sha256:", 0) == 0);
  auto img = env.rt->ImageStatus(spec);
  REQUIRE(img);
  REQUIRE(*img);
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  CHECK(has((*img)->repo_tags, "127.0.0.1:5000/test/busybox:v1"));
  CHECK(has((*img)->repo_digests, *ref));
  // The same image as the imported one (same config): stored once.
  CHECK((*img)->id == "sha256:" + env.image_id);
  CHECK(env.rt->ListImages()->size() == 1);
  // A container from the pulled name runs.
  auto pod = env.Pod("pulled");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto c = env.Ctr("c", {"sh", "-c", "echo pulled"});
  c.image.image = "127.0.0.1:5000/test/busybox:v1";
  auto id = env.Run(*sb, pod, c);
  REQUIRE(env.WaitExited(id));
  CHECK(env.Status(id).exit_code == 0);
  CHECK(env.Status(id).image_ref == *ref);  // the digest of the repository it was named by
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  // Not in use any more: remove everything, then pull for real (layers downloaded + unpacked).
  cri::ImageSpec by_id;
  by_id.image = "sha256:" + env.image_id;
  REQUIRE(env.rt->RemoveImage(by_id));
  CHECK(env.rt->ListImages()->empty());
  ref = env.rt->PullImage(spec, {}, nullptr);
  if (!ref) FAIL(ref.error().message);
  img = env.rt->ImageStatus(spec);
  REQUIRE(*img);
  {
    // Unpacked again into the content-addressed layer store.
    auto rec = env.rt->runtime().images().Find("sha256:" + env.image_id);
    REQUIRE(rec);
    REQUIRE(rec->layers.size() == 1);
    CHECK(base::StartsWith(rec->layers[0], env.root + "/state/images/layers/"));
    CHECK(base::PathExists(rec->layers[0] + "/bin/busybox"));
  }
  // A mirror configured for another registry name serves it.
  cri::ImageSpec mirrored;
  mirrored.image = "mirror.example/test/busybox:v1";
  auto mref = env.rt->PullImage(mirrored, {}, nullptr);
  if (!mref) FAIL(mref.error().message);
  CHECK(mref->rfind("mirror.example/test/busybox@sha256:", 0) == 0);
  {
    // A mirror that does not answer: the registry itself serves the pull (as containerd).
    auto store = runtime::ImageStore::Open(env.root + "/fallback-store");
    REQUIRE(store);
    runtime::RegistryOptions ro;
    ro.mirrors["127.0.0.1:5000"] = "http://127.0.0.1:1";
    auto pr = runtime::PullFromRegistry(**store, "127.0.0.1:5000/test/busybox:v1", {}, ro);
    if (!pr) FAIL(pr.error().message);
    CHECK(pr->repo_digest.rfind("127.0.0.1:5000/test/busybox@sha256:", 0) == 0);
    // Both failing: the error is the registry's, with the mirror's too.
    auto both = runtime::PullFromRegistry(**store, "127.0.0.1:5000/test/busybox:nope", {}, ro);
    REQUIRE_FALSE(both);
    INFO(both.error().message);
    CHECK(both.error().message.find("manifest unknown") != std::string::npos);
    CHECK(both.error().message.find("(mirror http://127.0.0.1:1: ") != std::string::npos);
  }
  // Unknown tag.
  cri::ImageSpec missing;
  missing.image = "127.0.0.1:5000/test/busybox:nope";
  auto bad = env.rt->PullImage(missing, {}, nullptr);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == cri::kErrImagePull);
  CHECK(bad.error().message.find("failed to pull image") == 0);
  // A tampered layer in the registry's storage is refused.
  REQUIRE(env.rt->RemoveImage(by_id));
  std::string biggest;
  testsupport::Run("find " + reg + "/data -name data -type f -printf '%s %p\\n' | sort -n | tail -1 | cut -d' ' -f2",
                   &biggest);
  biggest = Trim(biggest);
  REQUIRE_FALSE(biggest.empty());
  REQUIRE(testsupport::Run("printf 'X' | dd of=" + biggest + " bs=1 seek=200 conv=notrunc 2>/dev/null") == 0);
  bad = env.rt->PullImage(spec, {}, nullptr);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == cri::kErrImagePull);
  CHECK(bad.error().message.find("does not match its digest") != std::string::npos);
  CHECK(env.rt->ListImages()->empty());
}

TEST_CASE("runtime: host-network pods and oom_score_adj") {
  Env env("rt-hostnet");
  auto pod = env.Pod("hostnet");
  pod.linux.security_context.namespace_options.network = cri::NamespaceMode::kNode;
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  CHECK_FALSE(base::PathExists(env.root + "/run/netns/" + *sb));
  auto c = env.Ctr("c", {"sleep", "1000"});
  c.linux.resources.oom_score_adj = 1000;  // BestEffort
  auto id = env.Run(*sb, pod, c);
  pid_t pid = env.Status(id).pid;
  CHECK(NsInode("/proc/" + std::to_string(pid) + "/ns/net") == NsInode("/proc/self/ns/net"));
  CHECK(NsInode("/proc/" + std::to_string(pid) + "/ns/uts") == NsInode("/proc/self/ns/uts"));
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  auto ex = env.rt->ExecSync(id, {"hostname"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == std::string(host) + "\n");
  CHECK(Trim(Slurp("/proc/" + std::to_string(pid) + "/oom_score_adj")) == "1000");
  // Guaranteed asks for -997; without CAP_SYS_RESOURCE the runtime keeps what it may set and
  // the container still runs.
  auto g = env.Ctr("guaranteed", {"sleep", "1000"});
  g.linux.resources.oom_score_adj = -997;
  auto gid = env.Run(*sb, pod, g);
  pid_t gpid = env.Status(gid).pid;
  int own = std::stoi(Trim(Slurp("/proc/self/oom_score_adj")));
  int got = std::stoi(Trim(Slurp("/proc/" + std::to_string(gpid) + "/oom_score_adj")));
  CHECK(got <= own);
  CHECK(got >= -997);
  CHECK(env.Status(gid).state == cri::ContainerState::kRunning);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id, gid}, "kubepods/pod-hostnet");
}

TEST_CASE("runtime: pod-shared /dev/shm, runAsUser, read-only rootfs, resource updates") {
  Env env("rt-shm");
  auto pod = env.Pod("shm");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto writer = env.Run(*sb, pod, env.Ctr("writer", {"sh", "-c", "echo shared > /dev/shm/x; sleep 1000"}));
  auto c = env.Ctr("reader", {"sleep", "1000"});
  c.linux.security_context.run_as_user = 1000;
  c.linux.security_context.run_as_group = 3000;
  c.linux.security_context.supplemental_groups = {4000};
  c.linux.security_context.readonly_rootfs = true;
  auto reader = env.Run(*sb, pod, c);
  std::this_thread::sleep_for(300ms);
  auto ex = env.rt->ExecSync(reader, {"cat", "/dev/shm/x"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "shared\n");
  ex = env.rt->ExecSync(reader, {"sh", "-c", "id -u; id -g; id -G; touch /rootfile; grep CapEff /proc/self/status"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_.find("1000\n3000\n3000 4000\n") == 0);
  CHECK(ex->stdout_.find("CapEff:\t0000000000000000") != std::string::npos);  // non-root: none
  CHECK(ex->stderr_.find("Read-only file system") != std::string::npos);
  pid_t rpid = env.Status(reader).pid;
  CHECK(StatusField(rpid, "Uid").rfind("1000\t", 0) == 0);
  // UpdateContainerResources reaches the cgroup.
  cri::LinuxContainerResources r;
  r.memory_limit_in_bytes = 48 << 20;
  REQUIRE(env.rt->UpdateContainerResources(reader, r));
  if (env.cgroup_driver->version() == cgroups::Version::kV1) {
    CHECK(Trim(Slurp(env.cgroup_driver->ControllerPath("memory", "kubepods/pod-shm/" + reader) +
                     "/memory.limit_in_bytes")) == std::to_string(48 << 20));
  }
  CHECK(Slurp("/proc/self/mountinfo").find(env.root + "/run/shm/" + *sb) != std::string::npos);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {writer, reader}, "kubepods/pod-shm");
  CHECK_FALSE(base::PathExists(env.root + "/run/shm/" + *sb));
}

TEST_CASE("runtime: without overlayfs containers get a private copy of the rootfs") {
  Env env("rt-copy");
  env.disable_overlay = true;
  env.Restart();
  auto pod = env.Pod("copy");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sh", "-c", "echo changed > /bin/marker; sleep 1000"}));
  std::this_thread::sleep_for(300ms);
  auto ex = env.rt->ExecSync(id, {"cat", "/bin/marker"}, 10s);
  REQUIRE(ex);
  CHECK(ex->stdout_ == "changed\n");
  CHECK(base::PathExists(env.root + "/state/containers/" + id + "/rootfs-copy/bin/marker"));
  auto busybox_image = env.rt->runtime().images().Find("busybox");
  REQUIRE(busybox_image);
  for (const auto& layer : busybox_image->layers) {
    CHECK_FALSE(base::PathExists(layer + "/bin/marker"));
  }
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-copy");
}

// A long-running exec (with a terminal: an interactive shell) that Kill() ends: 128 + SIGKILL.
static void CheckKilledExec(Env& env, const std::string& id, const std::vector<std::string>& cmd,
                     bool tty) {
  auto longer = env.rt->Exec(id, cmd, tty, tty);
  REQUIRE(longer);
  std::this_thread::sleep_for(200ms);
  (*longer)->Kill();
  auto lc = (*longer)->Wait();
  REQUIRE(lc);
  CHECK(*lc == 137);
}

TEST_CASE("runtime: streaming exec with stdin") {
  Env env("rt-exec");
  auto pod = env.Pod("exec");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sleep", "1000"}));
  auto s = env.rt->Exec(id, {"sh", "-c", "tr a-z A-Z; echo done >&2; exit 4"}, true, false);
  if (!s) FAIL(s.error().message);
  std::string in = "hello exec\n";
  REQUIRE(write((*s)->stdin_fd(), in.data(), in.size()) == static_cast<ssize_t>(in.size()));
  (*s)->CloseStdin();
  auto drain = [](int fd) {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  };
  CHECK(drain((*s)->stdout_fd()) == "HELLO EXEC\n");
  CHECK(drain((*s)->stderr_fd()) == "done\n");
  auto code = (*s)->Wait();
  REQUIRE(code);
  CHECK(*code == 4);
  auto bad = env.rt->Exec(id, {"no-such-cmd"}, false, false);
  REQUIRE(bad);
  auto bc = (*bad)->Wait();
  REQUIRE_FALSE(bc);
  CHECK(bc.error().message.find("executable file not found") != std::string::npos);
  // Killing a long-running exec.
  CheckKilledExec(env, id, {"sleep", "100"}, false);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-exec");
}

TEST_CASE("runtime: exec with a terminal (kubectl exec -t)") {
  Env env("rt-tty");
  auto pod = env.Pod("tty");
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto id = env.Run(*sb, pod, env.Ctr("c", {"sleep", "1000"}));
  auto s = env.rt->Exec(id,
                        {"sh", "-c",
                         "read l; tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; "
                         "echo err >&2; echo got:$l; exit 3"},
                        true, true);
  if (!s) FAIL(s.error().message);
  (*s)->Resize(100, 40);
  std::this_thread::sleep_for(100ms);  // the resize is applied before the line arrives
  std::string in = "typed\n";
  REQUIRE(write((*s)->stdin_fd(), in.data(), in.size()) == static_cast<ssize_t>(in.size()));
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read((*s)->stdout_fd(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  INFO(out);
  // A terminal: the input is echoed, lines end in \r\n, and stderr is the terminal too.
  CHECK(out.find("typed\r\n") == 0);
  CHECK(out.find("/dev/pts/0\r\n") != std::string::npos);  // the container's own devpts
  CHECK(out.find("40 100\r\n") != std::string::npos);
  CHECK(out.find("all-tty\r\nerr\r\ngot:typed\r\n") != std::string::npos);
  auto code = (*s)->Wait();
  REQUIRE(code);
  CHECK(*code == 3);
  // The command is the session leader of its terminal; killing it ends the session.
  CheckKilledExec(env, id, {"sh"}, true);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-tty");
}

TEST_CASE("runtime: hostPID containers share the node's pid namespace") {
  Env env("rt-hostpid");
  auto pod = env.Pod("hostpid");
  pod.linux.security_context.namespace_options.pid = cri::NamespaceMode::kNode;
  auto sb = env.rt->RunPodSandbox(pod);
  REQUIRE(sb);
  auto c = env.Ctr("c", {"sleep", "1000"});
  c.linux.security_context.namespace_options.pid = cri::NamespaceMode::kNode;
  auto id = env.Run(*sb, pod, c);
  pid_t pid = env.Status(id).pid;
  CHECK(NsInode("/proc/" + std::to_string(pid) + "/ns/pid") == NsInode("/proc/self/ns/pid"));
  CHECK(NsInode("/proc/" + std::to_string(pid) + "/ns/mnt") != NsInode("/proc/self/ns/mnt"));
  auto ex = env.rt->ExecSync(id, {"sh", "-c", "test -d /proc/" + std::to_string(getpid()) + " && echo sees-host"}, 10s);
  if (!ex) FAIL("exec in a hostPID container: " << ex.error().message);
  CHECK(ex->stdout_ == "sees-host\n");
  // Not pid 1 of its own namespace: SIGTERM's default action applies.
  REQUIRE(env.rt->StopContainer(id, 5s));
  CHECK(env.Status(id).exit_code == 143);
  REQUIRE(env.rt->RemovePodSandbox(*sb));
  env.CheckNoLeaks(*sb, {id}, "kubepods/pod-hostpid");
}

TEST_CASE("runtime: port forward connects to localhost inside the pod's network namespace") {
  if (!testsupport::IsPrivileged()) {
    WARN("skipped: needs root");
    return;
  }
  // A "pod" network namespace with lo up and a listener on its 127.0.0.1, made by a thread.
  base::UniqueFd ns, listener;
  uint16_t port = 0;
  std::thread([&] {
    if (unshare(CLONE_NEWNET) != 0) return;
    base::UniqueFd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    strcpy(ifr.ifr_name, "lo");
    ioctl(s.get(), SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP;
    ioctl(s.get(), SIOCSIFFLAGS, &ifr);
    listener.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    listen(listener.get(), 4);
    socklen_t len = sizeof a;
    getsockname(listener.get(), reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ns.reset(open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  }).join();
  REQUIRE(ns);
  REQUIRE(port != 0);
  std::string path = "/proc/self/fd/" + std::to_string(ns.get());
  auto c = runtime::DialLocalhostInNetns(path, port, "pod sandbox \"sb\"");
  INFO((c ? std::string() : c.error().message));
  REQUIRE(c);
  base::UniqueFd peer(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  REQUIRE(peer);
  REQUIRE(write(peer.get(), "hi", 2) == 2);
  char buf[4] = {};
  pollfd p{c->get(), POLLIN, 0};
  REQUIRE(poll(&p, 1, 5000) == 1);
  CHECK(read(c->get(), buf, sizeof buf) == 2);
  CHECK(std::string(buf, 2) == "hi");
  // The same port in our own namespace: nothing listens there.
  auto here = runtime::DialLocalhostInNetns("", port, "pod sandbox \"sb\"");
  REQUIRE(!here);
  CHECK(here.error().message.find("failed to connect to localhost:" + std::to_string(port) +
                                  " inside the network namespace of pod sandbox \"sb\", IPv4: "
                                  "127.0.0.1:" + std::to_string(port)) == 0);
  auto missing = runtime::DialLocalhostInNetns("/nonexistent/netns", port, "pod sandbox \"sb\"");
  REQUIRE(!missing);
  CHECK(missing.error().message.find("open /nonexistent/netns") != std::string::npos);
}
