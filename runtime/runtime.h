#pragma once
// The embedded container runtime: sandboxes (pinned pod namespaces + pod cgroup + network),
// containers (one cubelet-monitor each), images (ImageStore). CRI-shaped operations; cri/
// EmbeddedRuntime is the thin adapter the agent sees.
//
// Concurrency: one mutex guards the in-memory tables; slow work (waiting for a stop, exec,
// unpacking) runs without it. Container exits arrive on the ExitWatcher thread.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cgroups/driver.h"
#include "cri/types.h"
#include "runtime/exec_process.h"
#include "runtime/dir_pool.h"
#include "runtime/exit_watcher.h"
#include "runtime/image_store.h"
#include "runtime/monitor/spec.h"
#include "runtime/monitor_pool.h"
#include "runtime/network/pod_network.h"
#include "runtime/registry_puller.h"
#include "runtime/state.h"
#include "runtime/task_runner.h"

namespace runtime {

using base::Result;

struct RuntimeOptions {
  std::string root_dir = "/var/lib/cubelet";
  std::string run_dir = "/run/cubelet";
  std::string image_dir;  // "" = <root_dir>/images
  cgroups::Driver* cgroups = nullptr;           // required, not owned
  std::string cgroup_root;                      // prefix for relative cgroup parents
  runtime::net::PodNetwork* network = nullptr;  // optional, not owned
  std::string monitor_path;                     // "" = found next to the executable
  RegistryOptions registry;                     // mirrors, plain-HTTP registries
  bool disable_overlay = false;                 // force the copy fallback (tests)
  int spare_monitors = 1;                       // warm monitors kept ready (0 = spawn each)
  int spare_container_dirs = 2;                 // container directories made ahead (dir_pool.h)
};

// Error codes shared with cri/runtime_service.h (kept equal; runtime does not include cri's
// service header).
constexpr int kErrNotFound = 1000;
constexpr int kErrImagePull = 1002;
constexpr int kErrInvalidImageName = 1003;
constexpr int kErrCreateContainer = 1004;
constexpr int kErrRunContainer = 1005;

class Runtime {
 public:
  static Result<std::unique_ptr<Runtime>> Create(RuntimeOptions options);
  ~Runtime();

  ImageStore& images() { return *images_; }
  const RuntimeOptions& options() const { return opts_; }
  bool overlay_supported() const { return overlay_; }

  cri::RuntimeStatus Status();

  Result<std::string> RunPodSandbox(const cri::PodSandboxConfig& config);
  Result<> StopPodSandbox(const std::string& id);
  Result<> RemovePodSandbox(const std::string& id);
  Result<cri::PodSandboxStatus> PodSandboxStatus(const std::string& id);
  std::vector<cri::PodSandbox> ListPodSandbox(const cri::PodSandboxFilter& filter);

  Result<std::string> CreateContainer(const std::string& sandbox_id, const cri::ContainerConfig& c,
                                      const cri::PodSandboxConfig& sandbox_config);
  Result<> StartContainer(const std::string& id);
  Result<> StopContainer(const std::string& id, std::chrono::seconds timeout);
  Result<> RemoveContainer(const std::string& id);
  std::vector<cri::Container> ListContainers(const cri::ContainerFilter& filter);
  Result<cri::ContainerStatus> ContainerStatus(const std::string& id);
  Result<> UpdateContainerResources(const std::string& id, const cri::LinuxContainerResources& r);
  Result<> ReopenContainerLog(const std::string& id);
  Result<cri::ExecSyncResponse> ExecSync(const std::string& id, const std::vector<std::string>& cmd,
                                         std::chrono::seconds timeout);
  // Streaming exec: the caller pumps the pipes and calls Wait().
  // With `tty` the command gets a terminal of the container's own (stdout carries its output).
  Result<ExecProcess> StartExec(const std::string& id, const std::vector<std::string>& cmd,
                                bool with_stdin, bool tty = false);
  // CRI PortForward: a connected, non-blocking socket to localhost:`port` in the sandbox's
  // network namespace (runtime/port_forward.h). The sandbox must be ready.
  Result<base::UniqueFd> PortForward(const std::string& sandbox_id, uint16_t port);
  Result<cri::ContainerStats> ContainerStats(const std::string& id);
  Result<cri::PodSandboxStats> PodSandboxStats(const std::string& id);
  void SetEventHandler(std::function<void(const cri::ContainerEvent&)> handler);

  // Images (the image store plus the runtime's knowledge of which images are in use).
  Result<> RemoveImage(const std::string& ref);
  // Pulls from the registry; returns the image ref (repo digest). When the registry cannot be
  // reached but the image is in the store (imported for an air-gapped node), that is used.
  Result<std::string> PullImage(const std::string& ref, const cri::AuthConfig& auth);
  cri::Image ToCriImage(const ImageRecord& r) const;

 private:
  struct Sandbox {
    SandboxRecord rec;
  };
  struct Container {
    ContainerRecord rec;
    std::optional<monitor::StartRecord> start;
    std::optional<monitor::ExitRecord> exit;
    bool starting = false;
    std::string dir;        // <root_dir>/containers/<id>: container.json, upper/, work/
    std::string state_dir;  // <run_dir>/containers/<id>: the monitor's spec, started, exit, logs
    bool self_join = false;  // the spec has cgroup_procs: monitors join the cgroup themselves
    // The overlay rootfs being mounted detached since CreateContainer (rootfs_mount.h); taken
    // by StartContainer (an invalid fd: the init mounts it). Null after a cubelet restart.
    std::shared_ptr<std::future<base::UniqueFd>> rootfs_mount;
    // The writable layer's usage, measured at most every kWritableLayerUsagePeriod (a walk of
    // the directory tree, as cAdvisor's du of a container's layer).
    std::chrono::steady_clock::time_point usage_at{};
    int64_t usage_unix_ns = 0;
    uint64_t usage_bytes = 0, usage_inodes = 0;
  };
  static constexpr std::chrono::seconds kWritableLayerUsagePeriod{10};

  explicit Runtime(RuntimeOptions opts);
  Result<> Init();
  void Adopt();
  void OnMonitorExit(const std::string& id);
  // Reports the exit now unless the watcher thread has already taken it (exactly once).
  void OnMonitorExitIfUnwatched(const std::string& id) {
    if (watcher_->Unwatch(id)) OnMonitorExit(id);
  }
  // What an exec into a running container needs (ExecSync and StartExec).
  struct ExecTarget {
    monitor::StartRecord start;
    std::string dir;
    std::string cgroup;
    std::string what;  // "exec in container "NAME" (ID)", for errors
    bool self_join = false;
  };
  // Fails when the container is unknown or not running, or `cmd` is empty.
  Result<ExecTarget> ExecTargetOf(const std::string& id, const std::vector<std::string>& cmd);
  // Reads <dir>/exit into the container (under mu_). True when it was there.
  bool LoadExitLocked(Container& c);
  cri::ContainerState StateLocked(const Container& c) const;
  void Emit(const std::string& id, const std::string& sandbox_id, cri::ContainerEvent::Type t);
  std::string SandboxDir(const std::string& id) const;
  std::string ContainerDir(const std::string& id) const;
  // The per-container files the monitor reads and writes on every start and exit live on the
  // run directory (a tmpfs): they only have to survive cubelet restarts, not host reboots, and
  // creating files on a disk filesystem is the slowest part of a start on some hosts.
  std::string ContainerStateDir(const std::string& id) const;
  Result<> SaveSandbox(const SandboxRecord& r);
  Result<> WriteSandboxFiles(const SandboxRecord& r);
  Result<> CleanupSandboxResources(const SandboxRecord& r);
  Result<> StopContainerImpl(const std::string& id, std::chrono::seconds timeout);
  // Waits for the monitor to record the exit; true if it did within `timeout`.
  bool WaitExited(const std::string& id, std::chrono::milliseconds timeout);
  Result<monitor::ContainerSpec> BuildSpec(const SandboxRecord& sb, const ContainerRecord& rec,
                                           const cri::ContainerConfig& c, const ImageRecord& image,
                                           const std::string& dir, const std::string& state_dir);
  std::string ContainerCgroupOomFile(const std::string& cgroup) const;
  // Overlay rootfs (else a private merged copy): overlayfs usable and the layers in its form.
  bool UseOverlay(const ImageRecord& image) const { return overlay_ && image.overlay_ready; }
  // overlayfs lower directories of `image`, top layer first.
  std::vector<std::string> OverlayLowers(const ImageRecord& image) const;
  // The cgroup.procs files of an existing (just made) cgroup, one per hierarchy.
  std::vector<std::string> CgroupProcsFiles(const std::string& cgroup) const;

  RuntimeOptions opts_;
  std::unique_ptr<ImageStore> images_;
  bool overlay_ = true;
  bool overlay_volatile_ = false;  // the kernel takes overlayfs "volatile" (5.10+)
  mutable std::atomic<bool> cgroup_dirs_real_{false};  // CgroupProcsFiles found them once
  std::mutex mu_;
  std::map<std::string, Sandbox> sandboxes_;
  std::map<std::string, Container> containers_;
  std::mutex handler_mu_;
  std::function<void(const cri::ContainerEvent&)> handler_;
  std::unique_ptr<ExitWatcher> watcher_;
  std::unique_ptr<MonitorPool> monitors_;
  std::unique_ptr<ContainerDirPool> dirs_;  // only with overlay rootfs
  // CreateContainer's disk work and detached rootfs mount (uses dirs_).
  std::unique_ptr<TaskRunner> tasks_ = std::make_unique<TaskRunner>(4);
};

// CRI resources -> cgroup driver resources (unset values left untouched).
cgroups::Resources ToCgroupResourcesForRuntime(const cri::LinuxContainerResources& r);
// Joins two cgroup paths with exactly one '/'.
std::string JoinCgroupPath(const std::string& a, const std::string& b);

// cubelet-monitor next to the running executable, in ../bin of it, or at the build location.
std::string FindMonitorBinary();

}  // namespace runtime
