#pragma once
// Pure generation of a v1.PodStatus from the desired pod, the runtime observation and what the
// last sync learned (image pull errors, back-offs), as the kubelet's generateAPIPodStatus does.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/pod_actions.h"
#include "agent/pod_model.h"
#include "base/time.h"

namespace agent {

struct WaitingReason {
  std::string reason;   // ErrImagePull, ImagePullBackOff, CrashLoopBackOff, CreateContainerError...
  std::string message;
};

struct StatusInputs {
  const Pod* pod = nullptr;
  const nlohmann::json* old_status = nullptr;  // status as the API has it (may be null/empty)
  const PodRuntimeState* runtime = nullptr;
  std::map<std::string, WaitingReason> waiting;  // by container name
  std::map<std::string, bool> readiness;         // by container name (probe results); absent = no probe
  std::map<std::string, bool> started;           // startup probe results; absent = started
  std::vector<std::string> host_ips;
  bool sandbox_ready = false;
  bool terminating = false;       // deletion requested and the pod is being killed
  bool pod_failed = false;        // the kubelet decided the pod failed (e.g. init failed, Never)
  std::string pod_reason, pod_message;  // e.g. DeadlineExceeded
  // Non-empty: a DisruptionTarget condition (reason TerminationByKubelet) with this message.
  std::string disruption_message;
  base::WallTime now;
};

nlohmann::json GeneratePodStatus(const StatusInputs& in);

// Phase from container statuses (kubelet getPhase); exposed for tests.
std::string ComputePhase(const Pod& pod, const nlohmann::json& status, bool terminating);

// "cubelet://<id>"
std::string ContainerIdUri(const std::string& id);

}  // namespace agent
