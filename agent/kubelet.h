#pragma once
// The node agent's pod side: desired pods from the API (informer) → one worker per pod →
// SyncPod / TerminatePod through the CRI → status to the API. Also the orphan cleanup at start
// and the data the kubelet HTTP API and cubectl show.
#include <atomic>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/api_client.h"
#include "agent/backoff.h"
#include "agent/container_log_manager.h"
#include "agent/image_gc_manager.h"
#include "agent/image_manager.h"
#include "agent/pod_actions.h"
#include "agent/pod_model.h"
#include "agent/pod_status.h"
#include "agent/pod_workers.h"
#include "agent/probe_manager.h"
#include "agent/prober.h"
#include "agent/registry_config.h"
#include "agent/runtime_config.h"
#include "agent/status_manager.h"
#include "agent/volume_manager.h"
#include "cri/runtime_service.h"

namespace agent {

struct KubeletOptions {
  NodeConfig node;
  std::string root_dir = "/var/lib/cubelet";
  std::chrono::seconds resync{10};
  ContainerLogManagerOptions container_logs;  // log rotation (--container-log-max-*)
  ImageGcPolicy image_gc;                     // image GC (--image-gc-*-threshold)
  // Node-level registry configuration (--registry-config): mirrors and credentials used when
  // a pod's imagePullSecrets have none for the image's registry. Null = none.
  std::shared_ptr<const RegistryConfig> registry;
  // The Node's uid, for the ownerReference of mirror pods ("" until registered).
  std::function<std::string()> node_uid;
};

// Emits Kubernetes events about a pod (wired to the EventRecorder); may be empty.
using PodEventFn = std::function<void(const Pod& pod, const std::string& type, const std::string& reason,
                                      const std::string& message, const std::string& field_path)>;

class Kubelet {
 public:
  Kubelet(KubeletOptions opts, ApiClientPtr api, cri::RuntimeService* runtime, cri::ImageService* images,
          const base::Clock* clock);
  ~Kubelet();

  void SetEventFn(PodEventFn fn) { events_ = std::move(fn); }
  // Events about the node itself (image GC's FreeDiskSpaceFailed); set before Start().
  void SetNodeEventFn(NodeEventFn fn) { image_gc_->SetEventFn(std::move(fn)); }
  void Start();
  void Stop();

  // Pod informer handlers.
  void OnPodUpsert(const nlohmann::json& pod);
  void OnPodDelete(const nlohmann::json& pod);
  void OnPodsSynced();
  // Static pods (static_pods.h): run here; their status goes to a mirror pod in the API.
  void OnStaticPodUpsert(const nlohmann::json& pod);
  void OnStaticPodDelete(const nlohmann::json& pod);
  // The Node exists now: static pods waiting to create their mirror pods sync at once.
  void OnNodeRegistered();
  // Runtime GetContainerEvents handler.
  void OnContainerEvent(const cri::ContainerEvent& ev);

  // For the kubelet HTTP API / cubectl.
  nlohmann::json PodList() const;          // v1 PodList of the pods this node runs
  // UID of the pod NS/NAME this node runs ("" when none).
  std::string PodUid(const std::string& ns, const std::string& name) const;
  nlohmann::json DebugPods() const;        // cubectl schema
  base::Result<std::pair<std::string, bool>> ContainerLogPath(const std::string& ns, const std::string& pod,
                                                              const std::string& container, bool previous);
  std::string MetricsText() const;
  size_t ActivePods() const;

  // The kubelet fails a pod itself (node-pressure eviction; activeDeadlineSeconds uses the
  // same path): its containers are killed with `grace_seconds`, then the status says phase
  // Failed with `reason` and `message`, plus a DisruptionTarget condition when `disruption`.
  void FailPod(const std::string& uid, const std::string& reason, const std::string& message,
               bool disruption, int64_t grace_seconds);
  // Pod admission (the kubelet's admit handlers, for pods that have not started here yet):
  // returns the reason and message to refuse `pod` with; nullopt admits it.
  using AdmitFn = std::function<std::optional<std::pair<std::string, std::string>>(
      const Pod& pod, const nlohmann::json& api_pod)>;
  void SetAdmitFn(AdmitFn fn) { admit_ = std::move(fn); }
  // Running pods this node could evict, with their containers' memory use and requests.
  struct EvictionCandidateInput {
    std::string uid, ns, name;
    int32_t priority = 0;
    bool critical = false;
    int64_t termination_grace_seconds = 30;
    std::vector<std::pair<std::string, int64_t>> memory_requests;  // container -> bytes
  };
  std::vector<EvictionCandidateInput> ActivePodsForEviction() const;

 private:
  struct PodRecord {
    nlohmann::json api_pod;          // latest from the API
    Pod pod;                         // decoded
    bool decoded = false;
    std::string decode_error;
    bool removed = false;            // gone from the API (DELETED event or not listed)
    std::map<std::string, WaitingReason> waiting;
    nlohmann::json last_status;      // last status we generated
    bool finalized = false;
    std::string sandbox_error;
    std::chrono::steady_clock::time_point first_seen;
    bool start_reported = false;
    // Set when the kubelet fails the pod itself (FailPod, admission, activeDeadlineSeconds).
    std::string fail_reason, fail_message;
    bool fail_disruption = false;
    int64_t fail_grace = 0;
    bool admitted = false;
    bool is_static = false;
    nlohmann::json mirror;  // static pods: the mirror pod as the API has it (null: none)
  };

  void UpsertPod(const nlohmann::json& obj, bool is_static);
  SyncResult Sync(const std::string& uid);
  SyncResult SyncPod(const std::string& uid, PodRecord rec);
  SyncResult TerminatePod(const std::string& uid, PodRecord rec);
  // Records the kubelet's decision to fail the pod (FailPod, admission, activeDeadlineSeconds)
  // and copies the record into *rec; false when the pod is gone or already failed.
  bool RecordFailure(const std::string& uid, PodRecord* rec, const std::string& reason,
                     const std::string& message, bool disruption, int64_t grace_seconds);
  // Static pods: creates the mirror pod, or replaces one that is stale or being deleted.
  void EnsureMirror(const std::string& uid, const PodRecord& rec);
  // The end of a pod the kubelet failed (rec.fail_*): killed, sandboxes stopped, status Failed.
  SyncResult FailedPod(const std::string& uid, PodRecord rec, PodRuntimeState state);
  void CleanupOrphans();
  PodRuntimeState Observe(const std::string& uid);
  void Publish(const std::string& uid, const PodRecord& rec, const PodRuntimeState& state, bool terminating,
               bool pod_failed);
  bool KillContainers(const Pod& pod, const PodRuntimeState& state, int64_t grace_seconds);
  void Event(const Pod& pod, const std::string& type, const std::string& reason, const std::string& msg,
             const std::string& field_path = "");
  std::optional<std::string> CrashBackoff(const Pod& pod, const ObservedContainer& last);
  // K:pkg/credentialprovider: the pod's imagePullSecrets first, then the node's credentials.
  cri::AuthConfig PullAuth(const Pod& pod, const std::string& image);

  KubeletOptions opts_;
  ApiClientPtr api_;
  cri::RuntimeService* runtime_;
  cri::ImageService* images_;
  const base::Clock* clock_;
  HostDns host_dns_;
  VolumeManager volumes_;
  StatusManager status_;
  ImageManager image_manager_;
  Backoff crash_backoff_;
  PodEventFn events_;
  AdmitFn admit_;
  mutable std::mutex mu_;
  std::map<std::string, PodRecord> pods_;              // by uid
  std::map<std::string, std::string> sandbox_to_pod_;  // sandbox id -> pod uid
  std::atomic<bool> synced_{false};
  std::unique_ptr<PodWorkers> workers_;
  // Probes and lifecycle hooks (declared after workers_: its threads call workers_->Update).
  Prober prober_{runtime_};
  std::unique_ptr<ProbeManager> probes_;
  std::unique_ptr<ContainerLogManager> log_manager_;
  std::unique_ptr<ImageGcManager> image_gc_;
  // metrics
  std::atomic<uint64_t> sync_count_{0}, sync_errors_{0}, container_starts_{0};
  std::vector<double> start_latencies_;  // seconds from first seen to Running
};

}  // namespace agent
