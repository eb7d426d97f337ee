#pragma once
// The node heartbeat Lease (K:staging/src/k8s.io/component-helpers/apimachinery/lease/
// controller.go): coordination.k8s.io/v1 Lease <node> in kube-node-lease, holderIdentity <node>,
// leaseDurationSeconds 40, renewTime a MicroTime, ownerReferences -> the Node. Every 10 s
// (jitter 0.04) it PUTs the last lease it received with a new renewTime, without a GET first;
// a 409 re-GETs (back-off 100 ms doubling to 7 s) and retries, up to 5 tries per tick. The
// create is skipped while the Node's uid is unknown, so the Lease is always owned by the Node.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "agent/api_client.h"
#include "base/result.h"
#include "base/time.h"

namespace agent {

struct NodeLeaseOptions {
  std::string node_name;
  std::string lease_namespace = "kube-node-lease";
  int32_t lease_duration_seconds = 40;               // nodeLeaseDurationSeconds
  std::chrono::milliseconds renew_interval{10'000};  // 0.25 x duration
  double jitter = 0.04;
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{7'000};
  int max_update_retries = 5;
  // The Node's uid for the ownerReference (e.g. NodeStatusManager::NodeUid). When unset or ""
  // the controller GETs /api/v1/nodes/<node> itself, as the kubelet's setNodeOwnerFunc does.
  std::function<std::string()> node_uid;
};

class NodeLeaseController {
 public:
  NodeLeaseController(NodeLeaseOptions options, ApiClientPtr api,
                      const base::Clock* clock = nullptr);
  ~NodeLeaseController();
  NodeLeaseController(const NodeLeaseController&) = delete;
  NodeLeaseController& operator=(const NodeLeaseController&) = delete;

  void Start();  // first heartbeat at once, then every renew_interval (+ jitter)
  void Stop();   // interrupts back-off waits; an API call in flight finishes first
  // Runs the next heartbeat now rather than at the end of the interval (e.g. once the Node is
  // registered, so the Lease need not wait a whole interval for its owner).
  void RequestSync();

  // One heartbeat, as the thread runs it: renew the last lease, else ensure (GET, 404 -> POST)
  // and renew. Returns false when no lease could be renewed or created this time.
  bool Sync();
  // The last Lease received from the API (JSON), "" before the first success.
  std::string LatestLease() const;
  std::string LeasePath() const;

 private:
  struct Ensured {
    std::optional<std::string> lease;  // nullopt: not created (owner unknown) or stopping
    bool created = false;
  };
  Result<Ensured> EnsureLease();
  Ensured BackoffEnsureLease();
  Result<> RetryUpdateLease(std::string base);
  // The lease to write: a copy of `base` (or a new one) with renewTime now and the owner set.
  // An error means the owner could not be set; the result is still usable for a renewal.
  std::pair<std::string, Result<>> NewLease(const std::optional<std::string>& base);
  std::string NodeUid();
  bool Stopping() const;
  bool WaitFor(std::chrono::milliseconds d);      // false when stopping
  bool WaitForTick(std::chrono::milliseconds d);  // also ends on RequestSync()

  NodeLeaseOptions options_;
  ApiClientPtr api_;
  base::RealClock real_clock_;
  const base::Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool sync_requested_ = false;
  std::string latest_;
  std::thread thread_;
};

}  // namespace agent
