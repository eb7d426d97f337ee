#pragma once
// Node-pressure eviction (K:pkg/kubelet/eviction): hard thresholds on the eviction signals
// (--eviction-hard / evictionHard), checked every 10 s; when one is met the node reports the
// pressure, refuses pods that would make it worse (admission) and fails one pod per cycle, picked
// as the kubelet ranks them, with phase Failed, reason Evicted, a message naming the starved
// resource, and a DisruptionTarget condition. Hard thresholds kill at once (grace period 0);
// soft ones (--eviction-soft) once met for their grace period, more gently (Threshold::soft).
//
// What is reclaimed by evicting pods here: memory (memory.available) and process ids
// (pid.available). The disk signals (nodefs.*, imagefs.*) set DiskPressure and stop admission,
// and the image garbage collector frees the image filesystem, but no pod is evicted for disk:
// cubelet has no per-pod disk accounting to rank them by.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/pod_model.h"
#include "base/result.h"

namespace agent::eviction {

enum class Signal {
  kMemoryAvailable,
  kNodeFsAvailable,
  kNodeFsInodesFree,
  kImageFsAvailable,
  kImageFsInodesFree,
  kPidAvailable,
};

std::string SignalName(Signal s);       // "memory.available"
std::string ResourceName(Signal s);     // "memory", "ephemeral-storage", "inodes", "pids"
std::string ConditionName(Signal s);    // "MemoryPressure", "DiskPressure", "PIDPressure"

struct Threshold {
  Signal signal = Signal::kMemoryAvailable;
  std::optional<int64_t> quantity;   // bytes, inodes or pids
  std::optional<double> percentage;  // of the capacity, 0..1
  std::string text;                  // as configured: "100Mi", "10%"
  // Soft thresholds (--eviction-soft): evict only once the signal has stayed below the
  // threshold for `grace_period`, with a pod grace period of min(--eviction-max-pod-grace-period,
  // the pod's terminationGracePeriodSeconds). Hard ones: at once, grace period 0.
  bool soft = false;
  std::chrono::seconds grace_period{0};
};

// "memory.available<100Mi,nodefs.available<10%" (the --eviction-hard flag). Errors name the
// statement: unknown signals, operators other than "<", bad quantities or percentages.
base::Result<std::vector<Threshold>> ParseThresholds(std::string_view flag);
// The KubeletConfiguration form: {"memory.available": "100Mi", ...}.
base::Result<std::vector<Threshold>> ParseThresholdMap(const std::map<std::string, std::string>& m);
// --eviction-soft with --eviction-soft-grace-period ("memory.available=1m30s,..."): every soft
// threshold needs a grace period ("grace period must be specified for the soft eviction
// threshold memory.available").
base::Result<std::vector<Threshold>> ParseSoftThresholds(std::string_view soft,
                                                         std::string_view grace_periods);
// The kubelet's defaults on Linux: memory.available<100Mi, nodefs.available<10%,
// nodefs.inodesFree<5%, imagefs.available<15%, imagefs.inodesFree<5%.
std::vector<Threshold> DefaultThresholds();

struct Observation {
  int64_t available = 0;
  int64_t capacity = 0;
};
using Observations = std::map<Signal, Observation>;

// The threshold in the signal's unit for this capacity.
int64_t ThresholdValue(const Threshold& t, int64_t capacity);
// Whether the signal was observed below the threshold (false when it was not observed).
bool Met(const Threshold& t, const Observations& obs);
// Thresholds whose signal was observed below them (signals not observed are skipped).
std::vector<Threshold> ThresholdsMet(const std::vector<Threshold>& thresholds,
                                     const Observations& obs);

// resource.Quantity's canonical text for bytes (BinarySI: "100Mi", "51200Ki", "1000").
std::string FormatBinaryQuantity(int64_t v);

struct ContainerUsage {
  std::string name;
  int64_t memory_bytes = 0;          // working set
  int64_t memory_request_bytes = 0;  // 0 when none
};

struct Candidate {
  std::string uid;
  std::string ns, name;
  int32_t priority = 0;
  int64_t termination_grace_seconds = 30;
  bool critical = false;  // system-node-critical/system-cluster-critical static pods: kept
  std::vector<ContainerUsage> containers;
  int64_t pids = 0;
};

// The order in which pods are evicted for `signal` (first = first to go), as the kubelet's
// rankMemoryPressure (usage above requests first, then lower priority, then more usage above
// requests) and rankPIDPressure (lower priority, then more processes). Critical pods are left out.
std::vector<const Candidate*> Rank(Signal signal, const std::vector<Candidate>& pods);

// The pod's status message (and event) for an eviction, as evictionMessage writes it:
// "The node was low on resource: memory. Threshold quantity: 100Mi, available: 51200Ki.
//  Container app was using 12Mi, request is 0, has larger consumption of memory. "
std::string EvictionMessage(const Threshold& t, const Observation& obs, const Candidate& pod);

// Admission under pressure (the kubelet's eviction admit handler): critical pods (priority
// >= 2000000000) are always admitted; with MemoryPressure alone only BestEffort pods are
// refused, unless they tolerate the node.kubernetes.io/memory-pressure NoSchedule taint; with any
// other pressure every pod is. The message: "The node had condition: [MemoryPressure]. ";
// nullopt = admitted.
std::optional<std::string> AdmissionRejection(const Pod& pod, bool tolerates_memory_pressure,
                                              const std::vector<std::string>& conditions);

// The periodic part: observe, compare, evict one pod. Thread-safe.
class Manager {
 public:
  struct Deps {
    std::function<Observations()> observe;
    std::function<std::vector<Candidate>()> candidates;
    // Fails the pod (reason Evicted, `message`) and kills it with `grace_seconds`.
    std::function<void(const Candidate& pod, const std::string& message, int64_t grace_seconds)>
        evict;
    std::function<std::chrono::steady_clock::time_point()> now;  // empty = steady_clock
  };
  Manager(std::vector<Threshold> thresholds, std::chrono::seconds pressure_transition_period,
          Deps deps, int64_t max_pod_grace_seconds = 0);

  // One cycle (the kubelet's synchronize). Returns the evicted pod's uid, if any.
  std::optional<std::string> Synchronize();
  // Node conditions under pressure now: met in the last transition period ("MemoryPressure"...).
  std::vector<std::string> Conditions() const;
  const std::vector<Threshold>& thresholds() const { return thresholds_; }

 private:
  std::chrono::steady_clock::time_point Now() const {
    return deps_.now ? deps_.now() : std::chrono::steady_clock::now();
  }

  std::vector<Threshold> thresholds_;
  std::chrono::seconds transition_;
  Deps deps_;
  mutable std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_met_;  // by condition
  std::map<size_t, std::chrono::steady_clock::time_point> first_met_;       // by threshold index
  int64_t max_pod_grace_ = 0;
};

}  // namespace agent::eviction
