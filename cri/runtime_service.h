#pragma once
// The seam between agent/ and any container runtime. Method names follow the Kubernetes CRI.
// Errors are base::Error values whose message names the object and the cause; the agent copies
// them into pod status reasons/messages. Stop* and Remove* are idempotent (missing ids succeed).
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "cri/types.h"

namespace cri {

using base::Result;

// Error codes on base::Error::code that the agent maps to kubelet reasons.
enum ErrorCode : int {
  kErrNotFound = 1000,       // no such sandbox/container/image
  kErrImageNeverPull = 1001, // image absent and policy forbids pulling
  kErrImagePull = 1002,      // pull failed
  kErrInvalidImageName = 1003,
  kErrCreateContainer = 1004,
  kErrRunContainer = 1005,
  kErrCreateConfig = 1006,
};

// A running streaming exec (CRI Exec, served by the kubelet API for `kubectl exec`): the caller
// pumps the pipes. No TTY.
class ExecSession {
 public:
  virtual ~ExecSession() = default;  // kills the command if it is still running
  virtual int stdin_fd() const = 0;   // -1 without stdin or once closed
  virtual int stdout_fd() const = 0;
  virtual int stderr_fd() const = 0;
  virtual void CloseStdin() = 0;      // EOF for the command
  // A TTY session's terminal size (columns, rows); ignored without a TTY.
  virtual void Resize(unsigned cols, unsigned rows) {
    (void)cols;
    (void)rows;
  }
  // The command's exit code (128+N for signal N); an error when it could not be started.
  virtual Result<int> Wait() = 0;
  virtual void Kill() = 0;
};

class RuntimeService {
 public:
  virtual ~RuntimeService() = default;

  virtual Result<VersionResponse> Version() = 0;
  virtual Result<RuntimeStatus> Status() = 0;

  virtual Result<std::string> RunPodSandbox(const PodSandboxConfig& config) = 0;
  virtual Result<> StopPodSandbox(const std::string& pod_sandbox_id) = 0;
  virtual Result<> RemovePodSandbox(const std::string& pod_sandbox_id) = 0;
  virtual Result<cri::PodSandboxStatus> PodSandboxStatus(const std::string& pod_sandbox_id) = 0;
  virtual Result<std::vector<PodSandbox>> ListPodSandbox(const PodSandboxFilter& filter) = 0;

  virtual Result<std::string> CreateContainer(const std::string& pod_sandbox_id,
                                              const ContainerConfig& config,
                                              const PodSandboxConfig& sandbox_config) = 0;
  virtual Result<> StartContainer(const std::string& container_id) = 0;
  // Sends the stop signal, waits up to `timeout`, then SIGKILLs every process of the container.
  virtual Result<> StopContainer(const std::string& container_id, std::chrono::seconds timeout) = 0;
  virtual Result<> RemoveContainer(const std::string& container_id) = 0;
  virtual Result<std::vector<Container>> ListContainers(const ContainerFilter& filter) = 0;
  virtual Result<cri::ContainerStatus> ContainerStatus(const std::string& container_id) = 0;
  virtual Result<> UpdateContainerResources(const std::string& container_id,
                                            const LinuxContainerResources& resources) = 0;
  virtual Result<> ReopenContainerLog(const std::string& container_id) = 0;
  virtual Result<ExecSyncResponse> ExecSync(const std::string& container_id,
                                            const std::vector<std::string>& cmd,
                                            std::chrono::seconds timeout) = 0;
  virtual Result<cri::ContainerStats> ContainerStats(const std::string& container_id) = 0;
  virtual Result<std::vector<cri::ContainerStats>> ListContainerStats(const ContainerFilter& filter) = 0;
  virtual Result<cri::PodSandboxStats> PodSandboxStats(const std::string& pod_sandbox_id) = 0;
  virtual Result<> UpdateRuntimeConfig(const std::string& pod_cidr) = 0;

  // GetContainerEvents: `handler` is called from a runtime thread when a container changes state
  // (notably kStopped when its process exits). Must be cheap; the agent only enqueues work.
  virtual void GetContainerEvents(std::function<void(const ContainerEvent&)> handler) = 0;

  // Streaming exec (CRI Exec). With `tty` the command runs on a terminal: its output comes on
  // stdout only. Runtimes without it fail.
  virtual Result<std::unique_ptr<ExecSession>> Exec(const std::string& container_id,
                                                    const std::vector<std::string>& cmd,
                                                    bool with_stdin, bool tty) {
    (void)cmd;
    (void)with_stdin;
    (void)tty;
    return base::Fail("exec in container " + container_id + ": not supported by this runtime");
  }

  // Port forwarding (CRI PortForward): a connected socket to localhost:`port` inside the pod
  // sandbox's network namespace; the caller relays it. Runtimes without it fail.
  virtual Result<base::UniqueFd> PortForward(const std::string& pod_sandbox_id, uint16_t port) {
    (void)port;
    return base::Fail("port forward to pod sandbox " + pod_sandbox_id +
                      ": not supported by this runtime");
  }
};

class ImageService {
 public:
  virtual ~ImageService() = default;
  virtual Result<std::vector<Image>> ListImages() = 0;
  // Returns std::nullopt-equivalent as an Image with empty id when absent.
  virtual Result<std::optional<Image>> ImageStatus(const ImageSpec& image) = 0;
  // Returns the image ref (e.g. "docker.io/library/busybox@sha256:...").
  virtual Result<std::string> PullImage(const ImageSpec& image, const AuthConfig& auth,
                                        const PodSandboxConfig* sandbox_config) = 0;
  virtual Result<> RemoveImage(const ImageSpec& image) = 0;
  virtual Result<std::vector<FilesystemUsage>> ImageFsInfo() = 0;
};

using RuntimeServicePtr = std::unique_ptr<RuntimeService>;
using ImageServicePtr = std::unique_ptr<ImageService>;

}  // namespace cri
