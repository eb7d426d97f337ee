#include "cri/embedded_runtime.h"

#include <sys/statvfs.h>

#include "base/time.h"
#include "runtime/runtime.h"

namespace cri {
Result<std::unique_ptr<EmbeddedRuntime>> EmbeddedRuntime::Create(EmbeddedRuntimeOptions o) {
  if (!o.cgroup_driver) return base::Fail("embedded runtime: no cgroup driver given");
  std::unique_ptr<EmbeddedRuntime> er(
      new EmbeddedRuntime(std::move(o.cgroup_driver), std::move(o.pod_network)));
  runtime::RuntimeOptions ro;
  ro.root_dir = o.root_dir;
  ro.run_dir = o.run_dir;
  ro.image_dir = o.image_dir;
  ro.cgroups = er->driver_.get();
  ro.cgroup_root = o.cgroup_root;
  ro.network = er->network_.get();
  ro.monitor_path = o.monitor_path;
  ro.registry = o.registry;
  ro.disable_overlay = o.disable_overlay;
  ro.spare_monitors = o.spare_monitors;
  auto rt = runtime::Runtime::Create(std::move(ro));
  if (!rt) return tl::unexpected(rt.error());
  er->runtime_ = std::move(*rt);
  er->runtime_name_ = o.runtime_name;
  return er;
}

EmbeddedRuntime::EmbeddedRuntime(cgroups::DriverPtr driver, runtime::net::PodNetworkPtr network)
    : driver_(std::move(driver)), network_(std::move(network)) {}

EmbeddedRuntime::~EmbeddedRuntime() = default;

Result<VersionResponse> EmbeddedRuntime::Version() {
  VersionResponse v;
  v.runtime_name = runtime_name_;
  v.runtime_version = "0.1.0";
  return v;
}

Result<RuntimeStatus> EmbeddedRuntime::Status() { return runtime_->Status(); }

Result<std::string> EmbeddedRuntime::RunPodSandbox(const PodSandboxConfig& config) {
  return runtime_->RunPodSandbox(config);
}
Result<> EmbeddedRuntime::StopPodSandbox(const std::string& id) { return runtime_->StopPodSandbox(id); }
Result<> EmbeddedRuntime::RemovePodSandbox(const std::string& id) {
  return runtime_->RemovePodSandbox(id);
}
Result<cri::PodSandboxStatus> EmbeddedRuntime::PodSandboxStatus(const std::string& id) {
  return runtime_->PodSandboxStatus(id);
}
Result<std::vector<PodSandbox>> EmbeddedRuntime::ListPodSandbox(const PodSandboxFilter& filter) {
  return runtime_->ListPodSandbox(filter);
}
Result<std::string> EmbeddedRuntime::CreateContainer(const std::string& sandbox_id,
                                                     const ContainerConfig& config,
                                                     const PodSandboxConfig& sandbox_config) {
  return runtime_->CreateContainer(sandbox_id, config, sandbox_config);
}
Result<> EmbeddedRuntime::StartContainer(const std::string& id) { return runtime_->StartContainer(id); }
Result<> EmbeddedRuntime::StopContainer(const std::string& id, std::chrono::seconds timeout) {
  return runtime_->StopContainer(id, timeout);
}
Result<> EmbeddedRuntime::RemoveContainer(const std::string& id) {
  return runtime_->RemoveContainer(id);
}
Result<std::vector<Container>> EmbeddedRuntime::ListContainers(const ContainerFilter& filter) {
  return runtime_->ListContainers(filter);
}
Result<cri::ContainerStatus> EmbeddedRuntime::ContainerStatus(const std::string& id) {
  return runtime_->ContainerStatus(id);
}
Result<> EmbeddedRuntime::UpdateContainerResources(const std::string& id,
                                                   const LinuxContainerResources& r) {
  return runtime_->UpdateContainerResources(id, r);
}
Result<> EmbeddedRuntime::ReopenContainerLog(const std::string& id) {
  return runtime_->ReopenContainerLog(id);
}
Result<ExecSyncResponse> EmbeddedRuntime::ExecSync(const std::string& id,
                                                   const std::vector<std::string>& cmd,
                                                   std::chrono::seconds timeout) {
  return runtime_->ExecSync(id, cmd, timeout);
}
Result<base::UniqueFd> EmbeddedRuntime::PortForward(const std::string& pod_sandbox_id,
                                                    uint16_t port) {
  return runtime_->PortForward(pod_sandbox_id, port);
}
Result<cri::ContainerStats> EmbeddedRuntime::ContainerStats(const std::string& id) {
  return runtime_->ContainerStats(id);
}
Result<std::vector<cri::ContainerStats>> EmbeddedRuntime::ListContainerStats(
    const ContainerFilter& filter) {
  std::vector<cri::ContainerStats> out;
  for (const auto& c : runtime_->ListContainers(filter)) {
    if (c.state != ContainerState::kRunning) continue;
    auto s = runtime_->ContainerStats(c.id);
    if (s) out.push_back(*s);
  }
  return out;
}
Result<cri::PodSandboxStats> EmbeddedRuntime::PodSandboxStats(const std::string& id) {
  return runtime_->PodSandboxStats(id);
}
Result<> EmbeddedRuntime::UpdateRuntimeConfig(const std::string& pod_cidr) {
  auto* net = runtime_->options().network;
  if (!net || pod_cidr.empty()) return {};
  return net->EnsureNodeNetwork(pod_cidr);
}
void EmbeddedRuntime::GetContainerEvents(std::function<void(const ContainerEvent&)> handler) {
  runtime_->SetEventHandler(std::move(handler));
}

namespace {

class EmbeddedExecSession final : public ExecSession {
 public:
  explicit EmbeddedExecSession(runtime::ExecProcess p) : p_(std::move(p)) {}
  int stdin_fd() const override { return p_.stdin_fd(); }
  int stdout_fd() const override { return p_.stdout_fd(); }
  int stderr_fd() const override { return p_.stderr_fd(); }
  void CloseStdin() override { p_.CloseStdin(); }
  void Resize(unsigned cols, unsigned rows) override { p_.Resize(cols, rows); }
  Result<int> Wait() override { return p_.Wait(); }
  void Kill() override { p_.Kill(); }

 private:
  runtime::ExecProcess p_;
};

}  // namespace

Result<std::unique_ptr<ExecSession>> EmbeddedRuntime::Exec(const std::string& id,
                                                           const std::vector<std::string>& cmd,
                                                           bool with_stdin, bool tty) {
  auto p = runtime_->StartExec(id, cmd, with_stdin, tty);
  if (!p) return tl::unexpected(p.error());
  return std::unique_ptr<ExecSession>(new EmbeddedExecSession(std::move(*p)));
}

Result<std::vector<Image>> EmbeddedRuntime::ListImages() {
  std::vector<Image> out;
  for (const auto& r : runtime_->images().List()) out.push_back(runtime_->ToCriImage(r));
  return out;
}
Result<std::optional<Image>> EmbeddedRuntime::ImageStatus(const ImageSpec& image) {
  auto r = runtime_->images().Find(image.image);
  if (!r) return std::optional<Image>();
  return std::optional<Image>(runtime_->ToCriImage(*r));
}
Result<std::string> EmbeddedRuntime::PullImage(const ImageSpec& image, const AuthConfig& auth,
                                               const PodSandboxConfig* sandbox_config) {
  (void)sandbox_config;
  return runtime_->PullImage(image.image, auth);
}
Result<> EmbeddedRuntime::RemoveImage(const ImageSpec& image) {
  return runtime_->RemoveImage(image.image);
}
Result<std::vector<FilesystemUsage>> EmbeddedRuntime::ImageFsInfo() {
  FilesystemUsage u;
  u.timestamp = base::ToUnixNanos(std::chrono::system_clock::now());
  u.mountpoint = runtime_->images().dir();
  struct statvfs vfs;
  if (statvfs(u.mountpoint.c_str(), &vfs) == 0) {
    u.capacity_bytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    u.available_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    u.used_bytes = static_cast<uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
    u.inodes_used = static_cast<uint64_t>(vfs.f_files - vfs.f_ffree);
  }
  return std::vector<FilesystemUsage>{u};
}

}  // namespace cri
