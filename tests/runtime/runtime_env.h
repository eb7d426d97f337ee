#pragma once
// Shared by the runtime's privileged tests: a runtime on the real kernel under a test cgroup
// parent and /var/tmp/cubelet-rt-<name>-<pid>, with the busybox test image imported.
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
#include "cgroups/driver.h"
#include "cri/embedded_runtime.h"
#include "runtime/monitor/spec.h"
#include "runtime/runtime.h"
#include "tests/runtime/test_image.h"
#include "tests/support/kernel_env.h"

namespace rttest {

using namespace std::chrono_literals;

inline std::string Slurp(const std::string& path) {
  auto r = base::ReadFile(path);
  return r ? *r : "";
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

struct Events {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<cri::ContainerEvent> list;
  void Add(const cri::ContainerEvent& e) {
    std::lock_guard<std::mutex> l(mu);
    list.push_back(e);
    cv.notify_all();
  }
  bool WaitFor(const std::string& id, cri::ContainerEvent::Type t, std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, d, [&] {
      for (const auto& e : list) {
        if (e.container_id == id && e.type == t) return true;
      }
      return false;
    });
  }
  int Count(const std::string& id, cri::ContainerEvent::Type t) {
    std::lock_guard<std::mutex> l(mu);
    int n = 0;
    for (const auto& e : list) n += e.container_id == id && e.type == t;
    return n;
  }
};

class Env {
 public:
  explicit Env(const std::string& name)
      : cg(name), root("/var/tmp/cubelet-rt-" + name + "-" + std::to_string(getpid())) {
    testsupport::Run("rm -rf " + root);
    Start();
    auto img = rt->runtime().images().ImportOciLayout(testimage::BusyboxLayout(), "busybox");
    REQUIRE(img);
    image_id = img->id;
  }
  ~Env() {
    // A failed REQUIRE leaves sandboxes behind: remove them through the runtime, then lazily
    // unmount anything still mounted under the test root so nothing leaks onto the host.
    if (rt) {
      if (auto sbs = rt->ListPodSandbox({})) {
        for (const auto& sb : *sbs) (void)rt->RemovePodSandbox(sb.id);
      }
    }
    rt.reset();
    testsupport::Run("for m in $(awk '{print $5}' /proc/self/mountinfo | grep '^" + root +
                     "/'); do umount -l \"$m\"; done; rm -rf " + root);
  }
  void Start(runtime::net::PodNetworkPtr network = nullptr) {
    auto driver = cgroups::Detect(cg.path());
    REQUIRE(driver);
    cgroup_driver = driver->get();
    cri::EmbeddedRuntimeOptions o;
    o.root_dir = root + "/state";
    o.run_dir = root + "/run";
    o.cgroup_driver = std::move(*driver);
    o.pod_network = std::move(network);
    o.disable_overlay = disable_overlay;
    o.registry.mirrors["mirror.example"] = "http://127.0.0.1:5000";
    auto r = cri::EmbeddedRuntime::Create(std::move(o));
    REQUIRE(r);
    rt = std::move(*r);
    rt->GetContainerEvents([this](const cri::ContainerEvent& e) { events.Add(e); });
  }
  void Restart() {
    rt.reset();
    Start();
  }
  cri::PodSandboxConfig Pod(const std::string& name) {
    cri::PodSandboxConfig c;
    c.metadata = {name, "uid-" + name, "default", 0};
    c.hostname = name + "-host";
    c.log_directory = root + "/logs/default_" + name + "_uid-" + name;
    c.linux.cgroup_parent = "kubepods/pod-" + name;
    c.labels = {{"io.kubernetes.pod.name", name}};
    return c;
  }
  cri::ContainerConfig Ctr(const std::string& name, std::vector<std::string> cmd) {
    cri::ContainerConfig c;
    c.metadata = {name, 0};
    c.image.image = "busybox";
    c.command = std::move(cmd);
    c.log_path = name + "/0.log";
    c.labels = {{"io.kubernetes.container.name", name}};
    return c;
  }
  std::string Run(const std::string& sb, const cri::PodSandboxConfig& pod,
                  const cri::ContainerConfig& c) {
    auto id = rt->CreateContainer(sb, c, pod);
    if (!id) FAIL("CreateContainer: " << id.error().message);
    auto st = rt->StartContainer(*id);
    if (!st) FAIL("StartContainer: " << st.error().message);
    return *id;
  }
  cri::ContainerStatus Status(const std::string& id) {
    auto s = rt->ContainerStatus(id);
    REQUIRE(s);
    return *s;
  }
  // Nothing of the sandbox is left: cgroups, mounts, namespace files, state.
  void CheckNoLeaks(const std::string& sandbox_id, const std::vector<std::string>& containers,
                    const std::string& pod_cgroup) {
    std::string mountinfo = Slurp("/proc/self/mountinfo");
    CHECK(mountinfo.find(sandbox_id) == std::string::npos);
    for (const auto& c : containers) CHECK(mountinfo.find(c) == std::string::npos);
    CHECK_FALSE(base::PathExists(root + "/run/netns/" + sandbox_id));
    CHECK_FALSE(base::PathExists(root + "/run/ipcns/" + sandbox_id));
    CHECK_FALSE(base::PathExists(root + "/run/utsns/" + sandbox_id));
    CHECK_FALSE(base::PathExists(root + "/state/sandboxes/" + sandbox_id));
    for (const auto& c : containers) {
      CHECK_FALSE(base::PathExists(root + "/state/containers/" + c));
      CHECK_FALSE(base::PathExists(root + "/run/containers/" + c));
    }
    for (const char* ctrl : {"memory", "cpu", "pids", "freezer"}) {
      std::string p = cgroup_driver->ControllerPath(ctrl, pod_cgroup);
      if (!p.empty()) CHECK_FALSE(base::PathExists(p));
    }
  }
  bool WaitExited(const std::string& id, std::chrono::milliseconds d = 10s) {
    return events.WaitFor(id, cri::ContainerEvent::Type::kStopped, d);
  }

  testsupport::CgroupParent cg;
  std::string root;
  std::string image_id;
  cgroups::Driver* cgroup_driver = nullptr;
  std::unique_ptr<cri::EmbeddedRuntime> rt;
  Events events;
  bool disable_overlay = false;
};

inline ino_t NsInode(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

inline uint64_t CapEff(pid_t pid) {
  std::istringstream in(Slurp("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("CapEff:", 0) == 0) return std::stoull(line.substr(7), nullptr, 16);
  }
  return ~0ull;
}

inline std::string StatusField(pid_t pid, const std::string& field) {
  std::istringstream in(Slurp("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::string(base::Trim(line.substr(field.size() + 1)));
  }
  return "";
}

}  // namespace rttest
