#pragma once
// cri::EmbeddedRuntime: the CRI RuntimeService + ImageService implemented by cubelet's own
// runtime (runtime/): image store, sandboxes holding the pod namespaces, and one tiny
// `cubelet-monitor` process per running container (the container's parent; survives cubelet
// restarts). On construction it re-adopts the containers found in root_dir.
#include <memory>
#include <string>

#include "cgroups/driver.h"
#include "cri/runtime_service.h"
#include "runtime/network/pod_network.h"
#include "runtime/registry_puller.h"

namespace runtime {
class Runtime;
}

namespace cri {

struct EmbeddedRuntimeOptions {
  // Persistent state: sandboxes/<id>/, containers/<id>/ (spec, pid, exit files, overlay dirs).
  std::string root_dir = "/var/lib/cubelet";
  // Volatile state: netns/<id>, ipcns/<id>, utsns/<id> (pinned pod namespaces).
  std::string run_dir = "/run/cubelet";
  // Image store: images/<id>/{rootfs,config.json}, refs.json. Default: <root_dir>/images.
  std::string image_dir;
  // Pod and container cgroups are created through this driver; paths are relative to its root
  // (the --cgroup-root the driver was made with). Required.
  cgroups::DriverPtr cgroup_driver;
  // Prefix put before PodSandboxConfig.linux.cgroup_parent when it is relative ("" = none).
  std::string cgroup_root;
  // Pod networking (BridgeNetwork); null = sandboxes get a netns with only loopback up.
  runtime::net::PodNetworkPtr pod_network;
  // Path of the cubelet-monitor binary. "" = "cubelet-monitor" next to /proc/self/exe, then
  // the build-time location (CUBELET_MONITOR_PATH).
  std::string monitor_path;
  // Registry mirrors and plain-HTTP registries (loopback registries always may use HTTP).
  runtime::RegistryOptions registry;
  // Containers get a private copy of the image rootfs instead of an overlay (slow; for hosts or
  // tests where overlayfs is not usable, which is also detected at start).
  bool disable_overlay = false;
  // Container monitors spawned ahead of time so that StartContainer does not wait for one to
  // start (runtime/monitor_pool.h); 0 = spawn one per start.
  int spare_monitors = 1;
  // Reported in Version().
  std::string runtime_name = "cubelet";
};

class EmbeddedRuntime final : public RuntimeService, public ImageService {
 public:
  // Creates the directories and re-adopts existing sandboxes and containers. Fails when the
  // directories cannot be created or the monitor binary is missing.
  static Result<std::unique_ptr<EmbeddedRuntime>> Create(EmbeddedRuntimeOptions options);
  ~EmbeddedRuntime() override;

  Result<VersionResponse> Version() override;
  Result<RuntimeStatus> Status() override;

  Result<std::string> RunPodSandbox(const PodSandboxConfig& config) override;
  Result<> StopPodSandbox(const std::string& pod_sandbox_id) override;
  Result<> RemovePodSandbox(const std::string& pod_sandbox_id) override;
  Result<cri::PodSandboxStatus> PodSandboxStatus(const std::string& pod_sandbox_id) override;
  Result<std::vector<PodSandbox>> ListPodSandbox(const PodSandboxFilter& filter) override;

  Result<std::string> CreateContainer(const std::string& pod_sandbox_id,
                                      const ContainerConfig& config,
                                      const PodSandboxConfig& sandbox_config) override;
  Result<> StartContainer(const std::string& container_id) override;
  Result<> StopContainer(const std::string& container_id, std::chrono::seconds timeout) override;
  Result<> RemoveContainer(const std::string& container_id) override;
  Result<std::vector<Container>> ListContainers(const ContainerFilter& filter) override;
  Result<cri::ContainerStatus> ContainerStatus(const std::string& container_id) override;
  Result<> UpdateContainerResources(const std::string& container_id,
                                    const LinuxContainerResources& resources) override;
  Result<> ReopenContainerLog(const std::string& container_id) override;
  Result<ExecSyncResponse> ExecSync(const std::string& container_id,
                                    const std::vector<std::string>& cmd,
                                    std::chrono::seconds timeout) override;
  Result<cri::ContainerStats> ContainerStats(const std::string& container_id) override;
  Result<std::vector<cri::ContainerStats>> ListContainerStats(const ContainerFilter& filter) override;
  Result<cri::PodSandboxStats> PodSandboxStats(const std::string& pod_sandbox_id) override;
  Result<> UpdateRuntimeConfig(const std::string& pod_cidr) override;
  void GetContainerEvents(std::function<void(const ContainerEvent&)> handler) override;
  Result<std::unique_ptr<ExecSession>> Exec(const std::string& container_id,
                                            const std::vector<std::string>& cmd,
                                            bool with_stdin, bool tty) override;
  Result<base::UniqueFd> PortForward(const std::string& pod_sandbox_id, uint16_t port) override;

  Result<std::vector<Image>> ListImages() override;
  Result<std::optional<Image>> ImageStatus(const ImageSpec& image) override;
  Result<std::string> PullImage(const ImageSpec& image, const AuthConfig& auth,
                                const PodSandboxConfig* sandbox_config) override;
  Result<> RemoveImage(const ImageSpec& image) override;
  Result<std::vector<FilesystemUsage>> ImageFsInfo() override;

  runtime::Runtime& runtime() { return *runtime_; }

 private:
  EmbeddedRuntime(cgroups::DriverPtr driver, runtime::net::PodNetworkPtr network);
  // Declared first so that they outlive runtime_ (members are destroyed in reverse order).
  cgroups::DriverPtr driver_;
  runtime::net::PodNetworkPtr network_;
  std::unique_ptr<runtime::Runtime> runtime_;
  std::string runtime_name_ = "cubelet";
};

}  // namespace cri
