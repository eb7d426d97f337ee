#pragma once
// Container probes over time, as the kubelet's K:pkg/kubelet/prober (prober_manager.go, worker.go,
// results/results_manager.go): one worker per (pod, container, probe type) holding the result for
// the container's current instance (its id).
//
// - Readiness starts as Failure, liveness as Success, startup as Unknown; a new container id resets
//   the result; a container that is not running reads as Failure.
// - The startup probe gates the other two: they do not run until it has succeeded.
// - failureThreshold / successThreshold consecutive results change the published result; a
//   liveness or startup failure holds the worker until the container is replaced.
// - On pod deletion liveness and startup report Success and stop; readiness keeps probing.
//
// The kubelet pushes what it observes on every sync (UpdatePod), reads the results for the status
// (Readiness/Started) and the containers to kill (ContainersToKill), and is told through
// on_change(uid) when a result changed so that it syncs the pod at once.
//
// Threads: one scheduler thread keeps the workers' next due times; probes run on a small pool of
// threads that grows on demand (a probe may block for its timeout) and shrinks when idle, so
// pods coming and going leave no thread behind. Workers are plain data removed with their pod.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/pod_actions.h"
#include "agent/pod_model.h"
#include "agent/prober.h"
#include "base/time.h"

namespace agent {

// results.Result: the published value of one worker.
enum class ProbeState { kUnknown, kSuccess, kFailure };

// What a worker sees of its container at the latest sync.
struct ProbedContainer {
  std::string id;  // "" until the container exists
  bool running = false;
  bool exited = false;
  base::WallTime started_at{};
};

// worker.go's doProbe as a state machine without threads, clocks or I/O.
class ProbeWorkerState {
 public:
  ProbeWorkerState(ProbeType type, Probe spec);

  // Binds the worker to the container's current instance: a new id resets the result to the
  // initial value and lifts a hold; a container that is not running reads as Failure.
  // Returns true when result() or container_id() changed.
  bool Observe(const ProbedContainer& c);

  enum class Step { kWait, kProbe, kStop };
  struct Decision {
    Step step = Step::kWait;
    std::optional<base::WallTime> not_before;  // kWait for initialDelaySeconds: when it ends
  };
  // Before a probe: `started` is whether the container passed its startup probe (true without
  // one); `deleting` whether the pod has a deletion timestamp.
  Decision Prepare(const ProbedContainer& c, bool started, bool deleting, bool restart_never,
                   base::WallTime now);

  // After a probe (prober errors never get here). Returns true when result() changed.
  bool Record(ProbeState r);

  ProbeType type() const { return type_; }
  const Probe& spec() const { return spec_; }
  const std::string& container_id() const { return container_id_; }
  ProbeState result() const { return result_; }
  bool on_hold() const { return on_hold_; }
  int result_run() const { return result_run_; }

 private:
  ProbeState Initial() const;

  ProbeType type_;
  Probe spec_;
  std::string container_id_;
  ProbeState result_ = ProbeState::kUnknown;  // the results manager's value for container_id_
  bool on_hold_ = false;
  ProbeState last_result_ = ProbeState::kUnknown;
  int result_run_ = 0;
};

class ProbeExecutor;

class ProbeManager {
 public:
  using ProbeFn = std::function<ProbeOutcome(const Probe& probe, const ProbeTarget& target)>;
  using ChangeFn = std::function<void(const std::string& uid)>;
  using EventFn = std::function<void(const Pod& pod, const std::string& type, const std::string& reason,
                                     const std::string& message, const std::string& field_path)>;

  struct Options {
    // false: no threads; tests call RunDue() after advancing a fake clock.
    bool start_threads = true;
    size_t max_probe_threads = 16;
    std::chrono::milliseconds idle_thread_exit{30000};
  };

  ProbeManager(ProbeFn probe, const base::Clock* clock, Options opts);
  ProbeManager(ProbeFn probe, const base::Clock* clock) : ProbeManager(std::move(probe), clock, Options{}) {}
  ~ProbeManager();
  ProbeManager(const ProbeManager&) = delete;
  ProbeManager& operator=(const ProbeManager&) = delete;

  void SetOnChange(ChangeFn fn);
  void SetEventFn(EventFn fn);

  // Called on every sync of a pod with what the runtime reports (AddPod + UpdatePodStatus):
  // creates the workers of probed containers (app containers and sidecars), rebinds them to new
  // container instances, stops them all once the pod is terminal.
  void UpdatePod(const Pod& pod, const std::string& pod_ip, const PodRuntimeState& state);
  // The pod is gone: its workers and results are dropped (a probe in flight is discarded).
  void RemovePod(const std::string& uid);

  // For StatusInputs: by container name, only containers with such a probe.
  std::map<std::string, bool> Readiness(const std::string& uid) const;
  std::map<std::string, bool> Started(const std::string& uid) const;
  // Running containers that failed liveness or startup: (container id, message for the Killing
  // event: "Container c failed liveness probe, will be restarted").
  std::vector<std::pair<std::string, std::string>> ContainersToKill(const std::string& uid,
                                                                    const PodRuntimeState& state) const;

  // Without threads: runs every probe that is due at the clock's time, inline.
  void RunDue();
  size_t WorkerCount() const;
  size_t ProbeThreads() const;  // probe pool threads alive (besides the scheduler)
  void Stop();

 private:
  using Mono = std::chrono::steady_clock::time_point;
  struct Worker {
    Worker(std::string c, bool sidecar, ProbeType t, Probe p)
        : container(std::move(c)), sidecar(sidecar), state(t, std::move(p)) {}
    std::string container;
    bool sidecar = false;  // an init container with restartPolicy Always
    ProbeWorkerState state;
    std::vector<ContainerPort> ports;
    Mono next{};
    bool in_flight = false;
    bool stopped = false;  // finished (pod terminal, deleted, or never restarting): no result
  };
  using WorkerPtr = std::shared_ptr<Worker>;
  struct PodEntry {
    std::shared_ptr<const Pod> pod;
    std::string pod_ip;
    std::map<std::string, ProbedContainer> containers;  // by name
    std::map<std::pair<std::string, ProbeType>, WorkerPtr> workers;
  };
  struct Job;

  std::vector<Job> CollectDueLocked(std::vector<std::string>* changed);
  std::optional<Mono> EarliestLocked() const;
  bool CurrentLocked(const Job& job) const;
  ProbeOutcome RunJob(const Job& job);
  void Complete(const Job& job, const ProbeOutcome& outcome);
  bool StartedLocked(const PodEntry& e, const std::string& container) const;
  void Notify(const std::vector<std::string>& uids);
  void Loop();

  ProbeFn probe_;
  const base::Clock* clock_;
  Options opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, PodEntry> pods_;  // by uid
  ChangeFn on_change_;
  EventFn event_;
  std::unique_ptr<ProbeExecutor> executor_;
  std::thread scheduler_;
};

using ProbeManagerPtr = std::unique_ptr<ProbeManager>;

}  // namespace agent
