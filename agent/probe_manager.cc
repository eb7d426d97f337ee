#include "agent/probe_manager.h"

#include <algorithm>
#include <deque>
#include <set>

#include "base/log.h"

namespace agent {

namespace {

int32_t AtLeastOne(int32_t v) { return v > 0 ? v : 1; }

const char* StateName(ProbeState s) {
  switch (s) {
    case ProbeState::kSuccess: return "Success";
    case ProbeState::kFailure: return "Failure";
    default: return "Unknown";
  }
}

std::chrono::seconds Period(const Probe& p) { return std::chrono::seconds(AtLeastOne(p.period_seconds)); }

}  // namespace

// ---- ProbeWorkerState ---------------------------------------------------------------------------

ProbeWorkerState::ProbeWorkerState(ProbeType type, Probe spec) : type_(type), spec_(std::move(spec)) {
  result_ = Initial();
}

ProbeState ProbeWorkerState::Initial() const {
  switch (type_) {
    case ProbeType::kReadiness: return ProbeState::kFailure;
    case ProbeType::kLiveness: return ProbeState::kSuccess;
    case ProbeType::kStartup: return ProbeState::kUnknown;
  }
  return ProbeState::kUnknown;
}

bool ProbeWorkerState::Observe(const ProbedContainer& c) {
  if (c.id.empty()) return false;  // not created yet (or gone): wait for more information
  bool changed = false;
  if (c.id != container_id_) {
    container_id_ = c.id;
    result_ = Initial();
    on_hold_ = false;  // a new container: resume probing
    changed = true;
  }
  if (on_hold_) return changed;
  if (!c.running && result_ != ProbeState::kFailure) {
    result_ = ProbeState::kFailure;
    changed = true;
  }
  return changed;
}

ProbeWorkerState::Decision ProbeWorkerState::Prepare(const ProbedContainer& c, bool started, bool deleting,
                                                     bool restart_never, base::WallTime now) {
  Observe(c);
  if (c.id.empty() || on_hold_) return {};
  if (!c.running) {
    // Stop for good if the container will never run again.
    return {c.exited && restart_never ? Step::kStop : Step::kWait, std::nullopt};
  }
  if (deleting && (type_ == ProbeType::kLiveness || type_ == ProbeType::kStartup)) {
    result_ = ProbeState::kSuccess;  // a quiet shutdown: nothing gets killed for a probe now
    return {Step::kStop, std::nullopt};
  }
  auto delay = std::chrono::seconds(std::max(spec_.initial_delay_seconds, 0));
  if (now - c.started_at < delay) return {Step::kWait, c.started_at + delay};
  if (started) {
    if (type_ == ProbeType::kStartup) return {};  // done; kept for a restarted container
  } else if (type_ != ProbeType::kStartup) {
    return {};  // the other probes wait for the startup probe
  }
  return {Step::kProbe, std::nullopt};
}

bool ProbeWorkerState::Record(ProbeState r) {
  if (last_result_ == r) {
    ++result_run_;
  } else {
    last_result_ = r;
    result_run_ = 1;
  }
  if ((r == ProbeState::kFailure && result_run_ < AtLeastOne(spec_.failure_threshold)) ||
      (r == ProbeState::kSuccess && result_run_ < AtLeastOne(spec_.success_threshold)))
    return false;  // below the threshold: the published result stays
  bool changed = result_ != r;
  result_ = r;
  if ((type_ == ProbeType::kLiveness || type_ == ProbeType::kStartup) && r == ProbeState::kFailure) {
    // The container will be killed: hold until a new container shows up.
    on_hold_ = true;
    result_run_ = 0;
  }
  return changed;
}

// ---- ProbeExecutor ------------------------------------------------------------------------------

// Runs probes on threads started on demand (up to a maximum) that exit after being idle.
class ProbeExecutor {
 public:
  ProbeExecutor(size_t max_threads, std::chrono::milliseconds idle) : max_(std::max<size_t>(max_threads, 1)), idle_exit_(idle) {}
  ~ProbeExecutor() { Stop(); }

  void Submit(std::function<void()> job) {
    std::unique_lock lk(mu_);
    if (stop_) return;
    ReapLocked();
    jobs_.push_back(std::move(job));
    if (idle_ == 0 && threads_.size() < max_) {
      uint64_t id = next_id_++;
      threads_.emplace(id, std::thread([this, id] { Loop(id); }));
    } else {
      cv_.notify_one();
    }
  }

  void Reap() {
    std::lock_guard lk(mu_);
    ReapLocked();
  }

  size_t Threads() const {
    std::lock_guard lk(mu_);
    return threads_.size() - exited_.size();
  }

  void Stop() {
    std::map<uint64_t, std::thread> all;
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      jobs_.clear();
      cv_.notify_all();
      all.swap(threads_);
      exited_.clear();
    }
    for (auto& [id, t] : all) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void ReapLocked() {
    // An exited thread records itself as its last action under the lock: join returns at once.
    for (uint64_t id : exited_) {
      auto it = threads_.find(id);
      if (it == threads_.end()) continue;
      if (it->second.joinable()) it->second.join();
      threads_.erase(it);
    }
    exited_.clear();
  }

  void Loop(uint64_t id) {
    std::unique_lock lk(mu_);
    while (!stop_) {
      if (!jobs_.empty()) {
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lk.unlock();
        job();
        lk.lock();
        continue;
      }
      ++idle_;
      bool woke = cv_.wait_for(lk, idle_exit_, [&] { return stop_ || !jobs_.empty(); });
      --idle_;
      if (!woke) break;
    }
    if (!stop_) exited_.push_back(id);
  }

  const size_t max_;
  const std::chrono::milliseconds idle_exit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::map<uint64_t, std::thread> threads_;
  std::vector<uint64_t> exited_;
  size_t idle_ = 0;
  uint64_t next_id_ = 0;
  bool stop_ = false;
};

// ---- ProbeManager -------------------------------------------------------------------------------

struct ProbeManager::Job {
  std::string uid;
  WorkerPtr worker;
  std::shared_ptr<const Pod> pod;
  Probe probe;
  ProbeTarget target;
};

ProbeManager::ProbeManager(ProbeFn probe, const base::Clock* clock, Options opts)
    : probe_(std::move(probe)), clock_(clock), opts_(opts) {
  if (opts_.start_threads) {
    executor_ = std::make_unique<ProbeExecutor>(opts_.max_probe_threads, opts_.idle_thread_exit);
    scheduler_ = std::thread([this] { Loop(); });
  }
}

ProbeManager::~ProbeManager() { Stop(); }

void ProbeManager::SetOnChange(ChangeFn fn) {
  std::lock_guard lk(mu_);
  on_change_ = std::move(fn);
}

void ProbeManager::SetEventFn(EventFn fn) {
  std::lock_guard lk(mu_);
  event_ = std::move(fn);
}

void ProbeManager::UpdatePod(const Pod& pod, const std::string& pod_ip, const PodRuntimeState& state) {
  std::lock_guard lk(mu_);
  auto pit = pods_.find(pod.uid);
  if (IsTerminalPhase(pod.phase)) {
    // The workers end with the pod; no result is reported any more.
    if (pit != pods_.end()) {
      for (auto& [key, w] : pit->second.workers) w->stopped = true;
    }
    return;
  }
  if (pit == pods_.end()) {
    bool probed = false;
    for (const auto* list : {&pod.init_containers, &pod.containers}) {
      for (const auto& c : *list) {
        bool eligible = list == &pod.containers || c.restart_policy == "Always";
        probed |= eligible && (c.liveness_probe || c.readiness_probe || c.startup_probe);
      }
    }
    if (!probed) return;  // pods without probes cost nothing
    pit = pods_.emplace(pod.uid, PodEntry{}).first;
  }
  PodEntry& e = pit->second;
  e.pod = std::make_shared<const Pod>(pod);
  e.pod_ip = pod_ip;
  Mono now = clock_->Monotonic();

  std::set<std::pair<std::string, ProbeType>> wanted;
  auto add = [&](const Container& c, bool sidecar) {
    auto one = [&](const std::optional<Probe>& p, ProbeType t) {
      if (!p) return;
      wanted.emplace(c.name, t);
      WorkerPtr& w = e.workers[{c.name, t}];
      if (!w) {
        w = std::make_shared<Worker>(c.name, sidecar, t, *p);
        w->next = now;
      }
      w->ports = c.ports;
    };
    one(c.startup_probe, ProbeType::kStartup);
    one(c.readiness_probe, ProbeType::kReadiness);
    one(c.liveness_probe, ProbeType::kLiveness);
  };
  for (const auto& c : pod.init_containers) {
    if (c.restart_policy == "Always") add(c, true);
  }
  for (const auto& c : pod.containers) add(c, false);
  for (auto it = e.workers.begin(); it != e.workers.end();) {
    if (wanted.count(it->first)) ++it;
    else it = e.workers.erase(it);
  }

  e.containers.clear();
  for (auto& [key, w] : e.workers) {
    auto [cit, inserted] = e.containers.try_emplace(key.first);
    if (inserted) {
      if (const ObservedContainer* o = state.Latest(key.first)) {
        cit->second.id = o->id;
        cit->second.running = o->state == cri::ContainerState::kRunning;
        cit->second.exited = o->state == cri::ContainerState::kExited;
        if (o->started_at) cit->second.started_at = base::FromUnixNanos(o->started_at);
      }
    }
    if (w->stopped) continue;
    std::string old_id = w->state.container_id();
    w->state.Observe(cit->second);
    // A new container instance is probed as soon as its delays allow.
    if (w->state.container_id() != old_id && !w->in_flight) w->next = now;
  }
  cv_.notify_all();
}

void ProbeManager::RemovePod(const std::string& uid) {
  std::lock_guard lk(mu_);
  pods_.erase(uid);
  cv_.notify_all();
}

bool ProbeManager::StartedLocked(const PodEntry& e, const std::string& container) const {
  auto it = e.workers.find({container, ProbeType::kStartup});
  if (it == e.workers.end() || it->second->stopped) return true;  // no startup probe
  auto cit = e.containers.find(container);
  if (cit == e.containers.end() || !cit->second.running) return false;
  const ProbeWorkerState& s = it->second->state;
  return s.container_id() == cit->second.id && s.result() == ProbeState::kSuccess;
}

std::map<std::string, bool> ProbeManager::Readiness(const std::string& uid) const {
  std::map<std::string, bool> out;
  std::lock_guard lk(mu_);
  auto pit = pods_.find(uid);
  if (pit == pods_.end()) return out;
  const PodEntry& e = pit->second;
  for (const auto& [key, w] : e.workers) {
    if (key.second != ProbeType::kReadiness || w->stopped) continue;
    auto cit = e.containers.find(key.first);
    bool current = cit != e.containers.end() && cit->second.running && !cit->second.id.empty() &&
                   w->state.container_id() == cit->second.id;
    out[key.first] = current && w->state.result() == ProbeState::kSuccess;
  }
  return out;
}

std::map<std::string, bool> ProbeManager::Started(const std::string& uid) const {
  std::map<std::string, bool> out;
  std::lock_guard lk(mu_);
  auto pit = pods_.find(uid);
  if (pit == pods_.end()) return out;
  for (const auto& [key, w] : pit->second.workers) {
    if (key.second != ProbeType::kStartup || w->stopped) continue;
    out[key.first] = StartedLocked(pit->second, key.first);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ProbeManager::ContainersToKill(const std::string& uid,
                                                                                const PodRuntimeState& state) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::lock_guard lk(mu_);
  auto pit = pods_.find(uid);
  if (pit == pods_.end()) return out;
  const PodEntry& e = pit->second;
  for (const auto& [key, w] : e.workers) {
    if (key.second == ProbeType::kReadiness || w->stopped || w->state.result() != ProbeState::kFailure) continue;
    const ObservedContainer* o = state.Latest(key.first);
    if (!o || o->state != cri::ContainerState::kRunning || o->id != w->state.container_id()) continue;
    // K:pkg/kubelet/kuberuntime computePodActions' messages.
    std::string msg = "Container " + key.first + " failed " +
                      (key.second == ProbeType::kLiveness ? "liveness" : "startup") + " probe";
    if (w->sidecar || (e.pod && e.pod->restart_policy != "Never")) msg += ", will be restarted";
    out.emplace_back(o->id, msg);
  }
  return out;
}

std::vector<ProbeManager::Job> ProbeManager::CollectDueLocked(std::vector<std::string>* changed) {
  std::vector<Job> jobs;
  Mono now = clock_->Monotonic();
  base::WallTime wall = clock_->Now();
  for (auto& [uid, e] : pods_) {
    if (!e.pod) continue;
    bool deleting = e.pod->deletion_timestamp.has_value();
    bool never = e.pod->restart_policy == "Never";
    for (auto& [key, w] : e.workers) {
      if (w->stopped || w->in_flight || w->next > now) continue;
      const ProbedContainer& c = e.containers[key.first];
      auto before = std::make_pair(w->state.container_id(), w->state.result());
      auto d = w->state.Prepare(c, StartedLocked(e, key.first), deleting, never && !w->sidecar, wall);
      if (before != std::make_pair(w->state.container_id(), w->state.result())) changed->push_back(uid);
      switch (d.step) {
        case ProbeWorkerState::Step::kStop:
          w->stopped = true;
          changed->push_back(uid);
          break;
        case ProbeWorkerState::Step::kWait:
          if (d.not_before) {
            auto left = std::chrono::duration_cast<Mono::duration>(*d.not_before - wall);
            w->next = now + std::max<Mono::duration>(left, std::chrono::milliseconds(1));
          } else {
            w->next = now + Period(w->state.spec());
          }
          break;
        case ProbeWorkerState::Step::kProbe:
          w->in_flight = true;
          jobs.push_back(Job{uid, w, e.pod, w->state.spec(), ProbeTarget{e.pod_ip, c.id, w->ports}});
          break;
      }
    }
  }
  return jobs;
}

std::optional<ProbeManager::Mono> ProbeManager::EarliestLocked() const {
  std::optional<Mono> best;
  for (const auto& [uid, e] : pods_) {
    for (const auto& [key, w] : e.workers) {
      if (w->stopped || w->in_flight) continue;
      if (!best || w->next < *best) best = w->next;
    }
  }
  return best;
}

void ProbeManager::Complete(const Job& job, const ProbeOutcome& outcome) {
  EventFn event;
  ChangeFn on_change;
  std::string type, reason, message;
  bool changed = false;
  const Worker& w = *job.worker;
  {
    std::lock_guard lk(mu_);
    Mono now = clock_->Monotonic();
    job.worker->in_flight = false;
    cv_.notify_all();
    // The pod, the worker or the container instance changed while the probe ran: drop the
    // result; a new container is probed at once.
    if (!CurrentLocked(job)) {
      job.worker->next = now;
      return;
    }
    job.worker->next = now + Period(job.probe);
    auto pit = pods_.find(job.uid);
    std::string name = ProbeTypeName(w.state.type());
    std::optional<ProbeState> result;
    if (!outcome.error.empty()) {
      type = "Warning", reason = "Unhealthy", message = name + " probe errored: " + outcome.error;
    } else if (outcome.result == ProbeResult::kSuccess) {
      result = ProbeState::kSuccess;
    } else if (outcome.result == ProbeResult::kWarning) {
      type = "Warning", reason = "ProbeWarning", message = name + " probe warning: " + outcome.output;
      result = ProbeState::kSuccess;
    } else {
      type = "Warning", reason = "Unhealthy", message = name + " probe failed: " + outcome.output;
      result = ProbeState::kFailure;
    }
    if (result) changed = job.worker->state.Record(*result);
    if (changed) {
      base::log::Info("probe result changed", {{"pod", job.pod->ns + "/" + job.pod->name},
                                               {"container", w.container},
                                               {"probe", name},
                                               {"result", StateName(w.state.result())}});
      if (w.state.type() == ProbeType::kStartup && w.state.result() == ProbeState::kSuccess) {
        // Started: the other probes of this container may run now.
        for (auto& [key, other] : pit->second.workers) {
          if (key.first == w.container && other.get() != &w && !other->in_flight) other->next = now;
        }
      }
    }
    event = event_;
    on_change = on_change_;
  }
  if (!reason.empty() && event) {
    std::string field = std::string(w.sidecar ? "spec.initContainers{" : "spec.containers{") + w.container + "}";
    event(*job.pod, type, reason, message, field);
  }
  if (changed && on_change) on_change(job.uid);
}

bool ProbeManager::CurrentLocked(const Job& job) const {
  auto pit = pods_.find(job.uid);
  if (pit == pods_.end()) return false;
  const Worker& w = *job.worker;
  auto wit = pit->second.workers.find({w.container, w.state.type()});
  return wit != pit->second.workers.end() && wit->second == job.worker && !w.stopped &&
         w.state.container_id() == job.target.container_id;
}

ProbeOutcome ProbeManager::RunJob(const Job& job) {
  {
    // Queued behind slow probes, the pod may have gone meanwhile: do not probe it.
    std::lock_guard lk(mu_);
    if (!CurrentLocked(job)) return ProbeOutcome{ProbeResult::kUnknown, "", "stale"};
  }
  return probe_(job.probe, job.target);
}

void ProbeManager::Notify(const std::vector<std::string>& uids) {
  if (uids.empty()) return;
  ChangeFn on_change;
  {
    std::lock_guard lk(mu_);
    on_change = on_change_;
  }
  if (!on_change) return;
  std::set<std::string> once(uids.begin(), uids.end());
  for (const auto& uid : once) on_change(uid);
}

void ProbeManager::RunDue() {
  for (int round = 0; round < 100; ++round) {
    std::vector<std::string> changed;
    std::vector<Job> jobs;
    {
      std::lock_guard lk(mu_);
      jobs = CollectDueLocked(&changed);
    }
    Notify(changed);
    if (jobs.empty()) return;
    for (const auto& j : jobs) Complete(j, RunJob(j));
  }
}

void ProbeManager::Loop() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    std::vector<std::string> changed;
    std::vector<Job> jobs = CollectDueLocked(&changed);
    if (!jobs.empty() || !changed.empty()) {
      lk.unlock();
      for (auto& j : jobs) {
        executor_->Submit([this, j = std::move(j)] { Complete(j, RunJob(j)); });
      }
      Notify(changed);
      lk.lock();
      continue;
    }
    executor_->Reap();
    if (auto next = EarliestLocked()) {
      cv_.wait_until(lk, *next);
    } else {
      cv_.wait(lk);
    }
  }
}

size_t ProbeManager::WorkerCount() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& [uid, e] : pods_) {
    for (const auto& [key, w] : e.workers) n += w->stopped ? 0 : 1;
  }
  return n;
}

size_t ProbeManager::ProbeThreads() const { return executor_ ? executor_->Threads() : 0; }

void ProbeManager::Stop() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (scheduler_.joinable()) scheduler_.join();
  if (executor_) executor_->Stop();
}

}  // namespace agent
