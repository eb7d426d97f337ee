#pragma once
// Pure planning of what to do with one pod (the kubelet's computePodActions): from the desired
// pod and what the runtime reports, decide which sandbox to create, which containers to start or
// kill. No side effects; table-tested in tests/agent/pod_actions_test.cc.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/pod_model.h"
#include "cri/types.h"

namespace agent {

// Runtime observation of one pod, rebuilt from cri List*/Status calls on every sync.
struct ObservedContainer {
  std::string id;
  std::string name;
  uint32_t attempt = 0;  // restart count when it was created
  cri::ContainerState state = cri::ContainerState::kUnknown;
  int32_t exit_code = 0;
  int64_t created_at = 0, started_at = 0, finished_at = 0;  // unix ns
  std::string reason, message;
  std::string hash;       // spec hash label
  std::string image, image_ref;
  std::string sandbox_id;
  bool init = false;
};

struct ObservedSandbox {
  std::string id;
  bool ready = false;
  uint32_t attempt = 0;
  std::string ip;
  int64_t created_at = 0;
};

struct PodRuntimeState {
  std::vector<ObservedSandbox> sandboxes;      // newest first
  std::vector<ObservedContainer> containers;   // all attempts

  const ObservedSandbox* Newest() const { return sandboxes.empty() ? nullptr : &sandboxes.front(); }
  // The latest attempt of a container by name (highest attempt, then newest created), or null.
  const ObservedContainer* Latest(const std::string& name) const;
  bool AnyRunning() const;
};

struct ContainerStart {
  std::string name;
  bool init = false;
  uint32_t attempt = 0;  // restart count for the new container
};

struct PodActions {
  bool create_sandbox = false;
  uint32_t sandbox_attempt = 0;
  std::string sandbox_id;  // the sandbox to start containers in (existing ready one)
  // Kill everything (sandbox changed or pod must stop) before anything else.
  bool kill_pod = false;
  std::vector<std::string> sandboxes_to_remove;    // old not-ready sandboxes
  std::vector<ContainerStart> start;               // in order
  std::vector<std::pair<std::string, std::string>> kill;  // container id, reason (for events)
  std::vector<std::string> remove;                 // dead containers that will be replaced
  // Containers that should restart but are in CrashLoopBackOff: name -> message.
  std::map<std::string, std::string> backoff;
  // The pod reached a terminal outcome the kubelet decides (restartPolicy Never + failed init).
  bool pod_failed = false;
};

// Asked for a container that should be restarted: returns a CrashLoopBackOff message when it
// must wait ("back-off 20s restarting failed container=c pod=ns/p(uid)"), nullopt when it may go.
using BackoffCheck = std::function<std::optional<std::string>(const ObservedContainer& last)>;

PodActions ComputePodActions(const Pod& pod, const PodRuntimeState& state, const BackoffCheck& backoff);

// Whether a container that exited with `exit_code` restarts under `policy`.
bool ShouldRestart(const std::string& policy, int32_t exit_code);

}  // namespace agent
