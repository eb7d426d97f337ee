#pragma once
// Node registration and status (K:pkg/kubelet/kubelet_node_status.go): registers the Node
// (POST, 409 -> GET + reconcile, never delete), then every 10 s GETs it, runs the setters
// (agent/node_setters.h) and PATCHes /status only when something besides heartbeat times changed
// or 5 minutes passed since the last report. It also hands the Node's spec.podCIDRs to the
// runtime network (the kubelet's updatePodCIDR) and records the node events.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/api_client.h"
#include "agent/event_recorder.h"
#include "agent/machine_info.h"
#include "agent/node_setters.h"
#include "base/result.h"
#include "base/time.h"
#include "cri/types.h"

namespace agent {

struct NodeStatusOptions {
  NodeStatusConfig node;      // what goes into the Node (name, addresses, labels, reserved, ...)
  bool register_node = true;  // --register-node
  // The state directory (--root-dir): ephemeral-storage capacity and DiskPressure are measured
  // on its filesystem when no MachineInfoSource is given.
  std::string state_dir = "/var/lib/cubelet";
  std::string pod_cidr;  // --pod-cidr: used until the API assigns spec.podCIDR
  std::chrono::milliseconds update_frequency{10'000};   // nodeStatusUpdateFrequency
  std::chrono::milliseconds report_frequency{300'000};  // nodeStatusReportFrequency
  std::chrono::milliseconds register_backoff_initial{100};
  std::chrono::milliseconds register_backoff_max{7'000};
  int update_retries = 5;  // nodeStatusUpdateRetry
};

// How the node learns about the runtime, and tells the agent about the node. Called on the
// manager's thread; they must not block for long.
struct NodeStatusHooks {
  // CRI Status(): RuntimeReady and NetworkReady conditions. An error (or an unset function)
  // counts as a failed sanity check, which ages into "container runtime is down".
  std::function<base::Result<cri::RuntimeStatus>()> runtime_status;
  // CRI ListImages() for status.images; unset leaves the list out.
  std::function<base::Result<std::vector<cri::Image>>()> list_images;
  // The pod CIDR(s), comma-joined ("10.244.3.0/24" or "10.244.3.0/24,fd00:3::/64"): first
  // --pod-cidr at Start(), then whenever the Node's spec.podCIDRs changes.
  std::function<void(const std::string& pod_cidrs)> on_pod_cidr;
  // The eviction manager's pressure conditions; unset: computed from the usage readings.
  std::function<std::vector<std::string>()> pressure_conditions;
  // The Node exists in the API with this uid (after create or the 409 path).
  std::function<void(const std::string& node_uid)> on_registered;
};

class NodeStatusManager {
 public:
  // `machine` defaults to a MachineInfoReader of this host (fs_path = options.state_dir);
  // `events` and `clock` may be null.
  NodeStatusManager(NodeStatusOptions options, ApiClientPtr api, NodeStatusHooks hooks,
                    MachineInfoSourcePtr machine = nullptr, EventRecorderPtr events = nullptr,
                    const base::Clock* clock = nullptr);
  ~NodeStatusManager();
  NodeStatusManager(const NodeStatusManager&) = delete;
  NodeStatusManager& operator=(const NodeStatusManager&) = delete;

  // Starts the thread: --pod-cidr, "Starting" event, registration (retried with back-off
  // 100 ms doubling to 7 s), then a status update every update_frequency.
  void Start();
  // Wakes the thread and waits for it; an API call in flight finishes first.
  void Stop();
  // Runs a status update now instead of at the next tick (e.g. when the runtime turned ready).
  void RequestUpdate();

  std::string NodeUid() const;
  bool Registered() const;
  std::string PodCidrs() const;  // last value given to on_pod_cidr

  // --- the steps the thread runs; public so tests can drive them with a FakeClock ---
  // Registers, retrying with back-off until it worked or Stop() was called.
  bool RegisterWithApiServer();
  // One registration attempt: true once the Node exists (created, or reconciled after 409).
  base::Result<bool> TryRegister();
  // Up to update_retries attempts of TryUpdateNodeStatus.
  base::Result<> UpdateNodeStatus();
  // GET (resourceVersion=0 on attempt 0), setters, PATCH when due. Returns whether it patched.
  base::Result<bool> TryUpdateNodeStatus(int attempt);

 private:
  NodeObservation Observe();
  void EnsureNodeIPs();
  bool UpdatePodCidr(const std::string& cidrs);
  void RecordEvents(const std::vector<NodeEvent>& events);
  void Run();
  bool WaitFor(std::chrono::milliseconds d);  // false when stopping
  std::string NodePath() const { return "/api/v1/nodes/" + options_.node.node_name; }

  NodeStatusOptions options_;
  ApiClientPtr api_;
  NodeStatusHooks hooks_;
  MachineInfoSourcePtr machine_;
  EventRecorderPtr events_;
  base::RealClock real_clock_;
  const base::Clock* clock_;

  // Status thread only (or the test thread when driven directly).
  RuntimeReadiness readiness_;
  std::optional<MachineInfo> machine_info_;  // last successful read
  std::optional<std::chrono::steady_clock::time_point> last_report_;
  bool node_ips_checked_ = false;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool update_requested_ = false;
  bool registered_ = false;
  std::string node_uid_;
  std::string pod_cidrs_;
  std::thread thread_;
};

}  // namespace agent
