#pragma once
// A cri::RuntimeService for agent unit tests that need exec (probes, hooks): ExecSync answers
// from a script and records every call; everything else fails with "not implemented".
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "cri/runtime_service.h"

namespace testsupport {

class FakeRuntimeService : public cri::RuntimeService {
 public:
  struct ExecCall {
    std::string container_id;
    std::vector<std::string> cmd;
    std::chrono::seconds timeout;
  };
  using ExecFn = std::function<cri::Result<cri::ExecSyncResponse>(const ExecCall&)>;

  void SetExec(ExecFn fn) {
    std::lock_guard lk(mu_);
    exec_ = std::move(fn);
  }
  std::vector<ExecCall> ExecCalls() const {
    std::lock_guard lk(mu_);
    return calls_;
  }

  cri::Result<cri::ExecSyncResponse> ExecSync(const std::string& id, const std::vector<std::string>& cmd,
                                              std::chrono::seconds timeout) override {
    ExecFn fn;
    ExecCall call{id, cmd, timeout};
    {
      std::lock_guard lk(mu_);
      calls_.push_back(call);
      fn = exec_;
    }
    if (!fn) return base::Fail("exec in container " + id + ": no exec script");
    return fn(call);
  }

  cri::Result<cri::VersionResponse> Version() override { return Nope(); }
  cri::Result<cri::RuntimeStatus> Status() override { return Nope(); }
  cri::Result<std::string> RunPodSandbox(const cri::PodSandboxConfig&) override { return Nope(); }
  cri::Result<> StopPodSandbox(const std::string&) override { return Nope(); }
  cri::Result<> RemovePodSandbox(const std::string&) override { return Nope(); }
  cri::Result<cri::PodSandboxStatus> PodSandboxStatus(const std::string&) override { return Nope(); }
  cri::Result<std::vector<cri::PodSandbox>> ListPodSandbox(const cri::PodSandboxFilter&) override { return Nope(); }
  cri::Result<std::string> CreateContainer(const std::string&, const cri::ContainerConfig&,
                                           const cri::PodSandboxConfig&) override {
    return Nope();
  }
  cri::Result<> StartContainer(const std::string&) override { return Nope(); }
  cri::Result<> StopContainer(const std::string&, std::chrono::seconds) override { return Nope(); }
  cri::Result<> RemoveContainer(const std::string&) override { return Nope(); }
  cri::Result<std::vector<cri::Container>> ListContainers(const cri::ContainerFilter&) override { return Nope(); }
  cri::Result<cri::ContainerStatus> ContainerStatus(const std::string&) override { return Nope(); }
  cri::Result<> UpdateContainerResources(const std::string&, const cri::LinuxContainerResources&) override {
    return Nope();
  }
  cri::Result<> ReopenContainerLog(const std::string&) override { return Nope(); }
  cri::Result<cri::ContainerStats> ContainerStats(const std::string&) override { return Nope(); }
  cri::Result<std::vector<cri::ContainerStats>> ListContainerStats(const cri::ContainerFilter&) override {
    return Nope();
  }
  cri::Result<cri::PodSandboxStats> PodSandboxStats(const std::string&) override { return Nope(); }
  cri::Result<> UpdateRuntimeConfig(const std::string&) override { return Nope(); }
  void GetContainerEvents(std::function<void(const cri::ContainerEvent&)>) override {}

 private:
  static tl::unexpected<base::Error> Nope() { return base::Fail("not implemented by FakeRuntimeService"); }

  mutable std::mutex mu_;
  ExecFn exec_;
  std::vector<ExecCall> calls_;
};

}  // namespace testsupport
