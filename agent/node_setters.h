#pragma once
// The pure half of node status: builds the Node the kubelet registers and recomputes its status
// with the kubelet's setters (K:pkg/kubelet/nodestatus/setters.go), then derives the strategic
// merge patch (K:pkg/util/node/node.go). No I/O and no clock: every input is an argument, so
// tables of cases test it. Node objects cross this API as JSON text (nlohmann stays in the .cc).
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/machine_info.h"
#include "base/result.h"
#include "base/time.h"
#include "cri/types.h"

namespace agent {

// --system-reserved / --kube-reserved: "cpu=100m,memory=256Mi,ephemeral-storage=1Gi,pid=1000".
struct ResourceAmounts {
  int64_t cpu_milli = 0;
  int64_t memory_bytes = 0;
  int64_t ephemeral_storage_bytes = 0;
  int64_t pids = 0;
};
base::Result<ResourceAmounts> ParseResourceAmounts(std::string_view flag);

// --register-with-taints entries: "key=value:Effect" or "key:Effect".
struct Taint {
  std::string key, value, effect;
};
base::Result<std::vector<Taint>> ParseTaints(std::string_view flag);

// resource.Quantity's canonical text, which the API server stores and returns: a value that is
// not canonical would differ on every read and force a status patch every 10 s.
std::string FormatBinarySI(int64_t value);        // 16709697536 -> "16318064Ki", 0 -> "0"
std::string FormatDecimalSIMilli(int64_t milli);  // 4000 -> "4", 3900 -> "3900m", 1e6 -> "1k"

struct NodeStatusConfig {
  std::string node_name;
  std::string hostname;                            // Hostname address and kubernetes.io/hostname
  std::vector<std::string> node_ips;               // InternalIP addresses, in order
  std::map<std::string, std::string> node_labels;  // --node-labels (override defaults)
  std::vector<Taint> register_with_taints;
  bool register_schedulable = true;  // false: spec.unschedulable + unschedulable taint
  bool controller_managed_attach_detach = true;
  int32_t kubelet_port = 10250;
  int64_t max_pods = 110;
  ResourceAmounts system_reserved, kube_reserved;
  int64_t eviction_hard_memory_bytes = 100 * 1024 * 1024;  // memory.available<100Mi
  // nodefs.available<10%; a float32 as in the kubelet, so allocatable matches it to the byte.
  float eviction_hard_nodefs_fraction = 0.1f;
  // PIDPressure when the tasks in use pass this fraction of the usable PIDs (a cubelet choice:
  // the kubelet has no default pid.available threshold).
  double pid_pressure_fraction = 0.9;
  size_t max_images = 50;  // nodeStatusMaxImages
};

// Everything the setters read at one instant.
struct NodeObservation {
  base::WallTime now{};
  std::optional<MachineInfo> machine;  // nullopt: capacity stays as it is (or missing)
  ResourceUsage usage;
  // From the eviction manager when there is one: the pressure conditions that are true
  // ("MemoryPressure", ...); nullopt = computed here from `usage` and the config.
  std::optional<std::vector<std::string>> pressure;
  std::vector<std::string> readiness_errors;      // RuntimeReadiness::Errors(); empty = ready
  std::optional<std::vector<cri::Image>> images;  // nullopt: status.images left untouched
};

// A transition the kubelet records as an event on the Node.
struct NodeEvent {
  std::string type;    // "Normal" / "Warning"
  std::string reason;  // "NodeReady", "NodeHasSufficientMemory", "Rebooted", ...
  std::string message;
};

// Mirrors the kubelet's runtimeState: the runtime and network errors that hold Ready at False,
// fed by one CRI Status() call per status tick.
class RuntimeReadiness {
 public:
  explicit RuntimeReadiness(std::chrono::seconds sync_threshold = std::chrono::seconds(30))
      : threshold_(sync_threshold) {}
  void Observe(const base::Result<cri::RuntimeStatus>& status, base::WallTime now);
  // In the kubelet's order: runtime sync, runtime condition, network condition. Examples:
  //   "container runtime status check may not have completed yet"
  //   "container runtime network not ready: NetworkReady=false reason:NoPodCIDR message:..."
  std::vector<std::string> Errors(base::WallTime now) const;

 private:
  std::chrono::seconds threshold_;
  std::optional<base::WallTime> last_sync_;
  std::string runtime_error_, network_error_;
};

// Joins errors as Go's utilerrors.NewAggregate(...).Error() does: duplicates dropped, one error
// as is, several as "[a, b]".
std::string AggregateErrors(const std::vector<std::string>& errors);

// The Node POSTed at registration: initialNode() followed by every setter, field order as the
// kubelet's (Go struct order, map keys sorted). Events the setters fire are appended to *events.
std::string BuildRegistrationNode(const NodeStatusConfig& config, const NodeObservation& obs,
                                  std::vector<NodeEvent>* events);

struct NodeUpdate {
  std::string node;      // the node after the setters
  std::string patch;     // strategic merge patch (status and metadata only); "{}" when equal
  bool changed = false;  // differs in more than heartbeat times
  std::vector<NodeEvent> events;
};
// Runs the setters on the node as read from the API (and re-adds a missing or wrong
// kubernetes.io/os|arch label, as the kubelet's updateNode does).
base::Result<NodeUpdate> UpdateNode(std::string_view node_json, const NodeStatusConfig& config,
                                    const NodeObservation& obs);

// After a 409 on registration: the patch that brings the existing node's kubelet-owned labels
// (hostname, os, arch and their beta twins) and the attach-detach annotation to what
// `initial_node_json` has. std::nullopt when nothing differs.
base::Result<std::optional<std::string>> ReconcileExistingNode(std::string_view existing_json,
                                                               std::string_view initial_node_json);

// A two-way strategic merge patch between two Node objects, restricted like the kubelet's
// PatchNodeStatus: spec is ignored; status.conditions merge by type with
// $setElementOrder/conditions; status.addresses, when changed, is sent whole with a trailing
// {"$patch":"replace"}; other lists are atomic; keys sorted as Go prints maps.
base::Result<std::string> CreateNodePatch(std::string_view old_node, std::string_view new_node);

struct NodeMeta {
  std::string name, uid, resource_version;
  std::string pod_cidrs;  // spec.podCIDRs joined with ",", else spec.podCIDR
};
base::Result<NodeMeta> ParseNodeMeta(std::string_view node_json);

}  // namespace agent
