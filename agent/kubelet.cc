#include "agent/kubelet.h"

#include <sys/stat.h>

#include <algorithm>
#include <sstream>
#include <thread>

#include "base/file.h"
#include "base/time.h"
#include "base/strings.h"
#include "base/log.h"

namespace agent {

using nlohmann::json;

namespace {

// Go's time.Duration String() for whole seconds ("10s", "1m20s", "5m0s").
std::string GoDuration(int64_t secs) {
  if (secs < 60) return std::to_string(secs) + "s";
  int64_t m = secs / 60, s = secs % 60;
  if (m < 60) return std::to_string(m) + "m" + std::to_string(s) + "s";
  return std::to_string(m / 60) + "h" + std::to_string(m % 60) + "m" + std::to_string(s) + "s";
}

const Container* FindContainer(const Pod& pod, const std::string& name, bool* init) {
  for (const auto& c : pod.init_containers) {
    if (c.name == name) {
      *init = true;
      return &c;
    }
  }
  for (const auto& c : pod.containers) {
    if (c.name == name) {
      *init = false;
      return &c;
    }
  }
  return nullptr;
}

std::string PodKey(const Pod& p) { return p.ns + "/" + p.name; }

std::string Label(const cri::Labels& l, const char* key) {
  auto it = l.find(key);
  return it == l.end() ? "" : it->second;
}

// status.podIP as GeneratePodStatus reports it: the target of httpGet/tcpSocket probes and hooks.
std::string PodIpOf(const Pod& pod, const PodRuntimeState& state, const std::vector<std::string>& node_ips) {
  if (pod.host_network) return node_ips.empty() ? "" : node_ips.front();
  const ObservedSandbox* sb = state.Newest();
  return sb ? sb->ip : "";
}

}  // namespace

Kubelet::Kubelet(KubeletOptions opts, ApiClientPtr api, cri::RuntimeService* runtime, cri::ImageService* images,
                 const base::Clock* clock)
    : opts_(std::move(opts)),
      api_(api),
      runtime_(runtime),
      images_(images),
      clock_(clock),
      volumes_(api, opts_.root_dir),
      status_(api),
      image_manager_(images, clock),
      crash_backoff_(clock, std::chrono::seconds(10), std::chrono::seconds(300)) {
  if (auto rc = base::ReadFile(opts_.node.resolv_conf)) {
    host_dns_ = ParseResolvConf(*rc);
  } else {
    base::log::Warn("cannot read resolv.conf for dnsPolicy Default", {{"path", opts_.node.resolv_conf}, {"err", rc.error().message}});
  }
  workers_ = std::make_unique<PodWorkers>([this](const std::string& uid) { return Sync(uid); }, opts_.resync);
  // Probes: a changed result re-syncs the pod at once (status, or a liveness kill).
  probes_ = std::make_unique<ProbeManager>(
      [this](const Probe& p, const ProbeTarget& t) { return prober_.Run(p, t); }, clock_);
  probes_->SetOnChange([this](const std::string& uid) { workers_->Update(uid); });
  probes_->SetEventFn([this](const Pod& pod, const std::string& type, const std::string& reason,
                             const std::string& msg, const std::string& field) { Event(pod, type, reason, msg, field); });
  log_manager_ = std::make_unique<ContainerLogManager>(runtime_, opts_.container_logs, clock_);
  image_gc_ = std::make_unique<ImageGcManager>(runtime_, images_, opts_.image_gc, clock_);
}

Kubelet::~Kubelet() { Stop(); }

void Kubelet::Start() {
  runtime_->GetContainerEvents([this](const cri::ContainerEvent& ev) { OnContainerEvent(ev); });
  log_manager_->Start();
  image_gc_->Start();
}

void Kubelet::Stop() {
  if (image_gc_) image_gc_->Stop();
  if (log_manager_) log_manager_->Stop();
  if (probes_) probes_->Stop();
  if (workers_) workers_->Stop();
}

void Kubelet::Event(const Pod& pod, const std::string& type, const std::string& reason, const std::string& msg,
                    const std::string& field_path) {
  base::log::Write(type == "Warning" ? base::log::Level::kWarn : base::log::Level::kInfo, "pod event",
                   {{"pod", PodKey(pod)}, {"reason", reason}, {"message", msg}});
  if (events_) events_(pod, type, reason, msg, field_path);
}

namespace {
const char* kMirrorAnnotation = "kubernetes.io/config.mirror";
bool IsMirror(const json& obj) {
  return obj.contains("metadata") && obj["metadata"].contains("annotations") &&
         obj["metadata"]["annotations"].is_object() &&
         obj["metadata"]["annotations"].contains(kMirrorAnnotation);
}
}  // namespace

void Kubelet::OnPodUpsert(const json& obj) { UpsertPod(obj, false); }
void Kubelet::OnStaticPodUpsert(const json& obj) { UpsertPod(obj, true); }
void Kubelet::OnStaticPodDelete(const json& obj) { OnPodDelete(obj); }

void Kubelet::OnNodeRegistered() {
  std::vector<std::string> uids;
  {
    std::lock_guard lk(mu_);
    for (const auto& [uid, rec] : pods_) {
      if (rec.is_static && !rec.removed) uids.push_back(uid);
    }
  }
  for (const auto& uid : uids) workers_->Update(uid);
}

void Kubelet::UpsertPod(const json& obj, bool is_static) {
  std::string uid = obj["metadata"].value("uid", "");
  if (uid.empty()) return;
  if (!is_static && IsMirror(obj)) {
    // A mirror pod: not run; it carries the status of the static pod of the same name.
    std::string ns = obj["metadata"].value("namespace", ""), name = obj["metadata"].value("name", "");
    std::string owner;
    {
      std::lock_guard lk(mu_);
      for (auto& [id, rec] : pods_) {
        if (rec.is_static && !rec.removed && rec.pod.ns == ns && rec.pod.name == name) {
          rec.mirror = obj;
          owner = id;
        }
      }
    }
    if (!owner.empty()) {
      workers_->Update(owner);
    } else {
      // K:pkg/kubelet/kubelet_pods.go deleteOrphanedMirrorPods (static pods are read first).
      base::log::Info("deleting orphaned mirror pod", {{"pod", ns + "/" + name}});
      status_.DeletePod(ns, name, uid);
    }
    return;
  }
  auto decoded = DecodePod(obj);
  {
    std::lock_guard lk(mu_);
    auto [it, inserted] = pods_.try_emplace(uid);
    PodRecord& rec = it->second;
    if (inserted) rec.first_seen = std::chrono::steady_clock::now();
    rec.is_static = is_static;
    rec.api_pod = obj;
    rec.removed = false;
    if (decoded) {
      rec.pod = std::move(*decoded);
      rec.decoded = true;
      rec.decode_error.clear();
    } else {
      rec.decode_error = decoded.error().message;
      base::log::Warn("cannot decode pod", {{"uid", uid}, {"err", rec.decode_error}});
    }
  }
  workers_->Update(uid);
}

void Kubelet::OnPodDelete(const json& obj) {
  std::string uid = obj["metadata"].value("uid", "");
  if (IsMirror(obj)) {
    // The mirror is gone (deleted by someone): the next sync of its static pod recreates it.
    std::string owner;
    {
      std::lock_guard lk(mu_);
      for (auto& [id, rec] : pods_) {
        if (rec.is_static && rec.mirror.is_object() &&
            rec.mirror["metadata"].value("uid", "") == uid) {
          rec.mirror = nullptr;
          owner = id;
        }
      }
    }
    if (!owner.empty()) workers_->Update(owner);
    return;
  }
  {
    std::lock_guard lk(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return;
    it->second.removed = true;
  }
  workers_->Update(uid);
}

void Kubelet::EnsureMirror(const std::string& uid, const PodRecord& rec) {
  const json& m = rec.mirror;
  if (m.is_object()) {
    std::string hash = m["metadata"]["annotations"].value(kMirrorAnnotation, "");
    bool deleting = m["metadata"].contains("deletionTimestamp") &&
                    !m["metadata"]["deletionTimestamp"].is_null();
    if (hash == uid && !deleting) return;
    // K:pkg/kubelet/kubelet.go SyncPod: a mirror of another version, or one being deleted, is
    // removed (uid precondition) and made again.
    base::log::Info("replacing mirror pod", {{"pod", PodKey(rec.pod)}, {"deleting", deleting}});
    status_.DeletePod(rec.pod.ns, rec.pod.name, m["metadata"].value("uid", ""));
    std::lock_guard lk(mu_);
    auto it = pods_.find(uid);
    if (it != pods_.end()) it->second.mirror = nullptr;
  }
  std::string node_uid = opts_.node_uid ? opts_.node_uid() : "";
  if (node_uid.empty()) return;  // not registered yet: the next sync
  // K:pkg/kubelet/pod/mirror_client.go CreateMirrorPod: a copy with the mirror annotation and
  // the Node as its controller (NodeRestriction requires it).
  json body = rec.api_pod;
  body.erase("status");
  body["metadata"].erase("uid");
  body["metadata"].erase("resourceVersion");
  body["metadata"]["annotations"][kMirrorAnnotation] = uid;
  body["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "v1"},
                                                      {"kind", "Node"},
                                                      {"name", opts_.node.node_name},
                                                      {"uid", node_uid},
                                                      {"controller", true}}});
  auto r = api_->Do("POST", "/api/v1/namespaces/" + rec.pod.ns + "/pods", body.dump());
  if (!r) {
    base::log::Warn("mirror pod not created", {{"pod", PodKey(rec.pod)}, {"err", r.error().message}});
    return;
  }
  if (r->status == 409) return;  // AlreadyExists: the informer shows it; checked next sync
  if (!r->ok()) {
    base::log::Warn("mirror pod refused", {{"pod", PodKey(rec.pod)}, {"status", r->status},
                                           {"body", r->body.substr(0, 300)}});
    return;
  }
  base::log::Info("mirror pod created", {{"pod", PodKey(rec.pod)}});
  auto created = json::parse(r->body, nullptr, false);
  if (created.is_object()) {
    std::lock_guard lk(mu_);
    auto it = pods_.find(uid);
    if (it != pods_.end() && it->second.mirror.is_null()) it->second.mirror = created;
  }
}

void Kubelet::OnPodsSynced() {
  synced_.store(true);
  CleanupOrphans();
}

void Kubelet::OnContainerEvent(const cri::ContainerEvent& ev) {
  std::string uid;
  {
    std::lock_guard lk(mu_);
    auto it = sandbox_to_pod_.find(ev.pod_sandbox_id);
    if (it != sandbox_to_pod_.end()) uid = it->second;
  }
  if (uid.empty()) {
    cri::ContainerFilter f;
    f.id = ev.container_id;
    if (auto cs = runtime_->ListContainers(f); cs && !cs->empty()) uid = Label(cs->front().labels, kLabelPodUid);
  }
  if (!uid.empty()) workers_->Update(uid);
}

void Kubelet::CleanupOrphans() {
  auto sandboxes = runtime_->ListPodSandbox({});
  if (!sandboxes) {
    base::log::Warn("cannot list sandboxes for orphan cleanup", {{"err", sandboxes.error().message}});
    return;
  }
  std::vector<std::string> orphans;
  {
    std::lock_guard lk(mu_);
    for (const auto& sb : *sandboxes) {
      std::string uid = Label(sb.labels, kLabelPodUid);
      if (uid.empty()) continue;
      sandbox_to_pod_[sb.id] = uid;
      if (pods_.count(uid)) continue;
      PodRecord rec;
      rec.pod.uid = uid;
      rec.pod.name = Label(sb.labels, kLabelPodName);
      rec.pod.ns = Label(sb.labels, kLabelPodNamespace);
      rec.decoded = true;
      rec.removed = true;
      pods_[uid] = std::move(rec);
      orphans.push_back(uid);
    }
    for (const auto& uid : volumes_.PodsOnDisk()) {
      if (pods_.count(uid)) continue;
      PodRecord rec;
      rec.pod.uid = uid;
      rec.decoded = true;
      rec.removed = true;
      pods_[uid] = std::move(rec);
      orphans.push_back(uid);
    }
  }
  for (const auto& uid : orphans) {
    base::log::Info("cleaning up pod no longer bound to this node", {{"uid", uid}});
    workers_->Update(uid);
  }
}

PodRuntimeState Kubelet::Observe(const std::string& uid) {
  PodRuntimeState st;
  cri::PodSandboxFilter sf;
  sf.label_selector[kLabelPodUid] = uid;
  if (auto sbs = runtime_->ListPodSandbox(sf)) {
    for (const auto& sb : *sbs) {
      ObservedSandbox o;
      o.id = sb.id;
      o.attempt = sb.metadata.attempt;
      o.created_at = sb.created_at;
      o.ready = sb.state == cri::PodSandboxState::kReady;
      if (auto s = runtime_->PodSandboxStatus(sb.id)) {
        o.ip = s->network.ip;
        o.ready = s->state == cri::PodSandboxState::kReady;
      }
      st.sandboxes.push_back(o);
    }
    std::sort(st.sandboxes.begin(), st.sandboxes.end(), [](const ObservedSandbox& a, const ObservedSandbox& b) {
      return a.attempt != b.attempt ? a.attempt > b.attempt : a.created_at > b.created_at;
    });
  }
  cri::ContainerFilter cf;
  cf.label_selector[kLabelPodUid] = uid;
  if (auto cs = runtime_->ListContainers(cf)) {
    for (const auto& c : *cs) {
      auto s = runtime_->ContainerStatus(c.id);
      if (!s) continue;
      ObservedContainer o;
      o.id = c.id;
      o.name = s->metadata.name;
      o.attempt = s->metadata.attempt;
      o.state = s->state;
      o.exit_code = s->exit_code;
      o.created_at = s->created_at;
      o.started_at = s->started_at;
      o.finished_at = s->finished_at;
      o.reason = s->reason;
      o.message = s->message;
      o.hash = Label(s->annotations, kAnnoContainerHash);
      o.image = s->image.image;
      o.image_ref = s->image_ref;
      o.sandbox_id = c.pod_sandbox_id;
      o.init = Label(s->annotations, kAnnoInitContainer) == "true";
      st.containers.push_back(o);
    }
  }
  return st;
}

std::optional<std::string> Kubelet::CrashBackoff(const Pod& pod, const ObservedContainer& last) {
  std::string key = pod.uid + "/" + last.name;
  base::WallTime finished = last.finished_at ? base::FromUnixNanos(last.finished_at) : clock_->Now();
  if (crash_backoff_.IsInBackOffSince(key, finished)) {
    int64_t secs = std::chrono::duration_cast<std::chrono::seconds>(crash_backoff_.Get(key)).count();
    return "back-off " + GoDuration(secs) + " restarting failed container=" + last.name + " pod=" + pod.name + "_" +
           pod.ns + "(" + pod.uid + ")";
  }
  crash_backoff_.Next(key, finished);
  return std::nullopt;
}

cri::AuthConfig Kubelet::PullAuth(const Pod& pod, const std::string& image) {
  // Secrets of type kubernetes.io/dockerconfigjson (or the legacy dockercfg); the entry that
  // matches the image's registry is handed to the runtime.
  DockerKeyring keyring;
  for (const auto& name : pod.image_pull_secrets) {
    auto data = volumes_.GetSecret(pod.ns, name);
    if (!data) continue;
    auto it = data->find(".dockerconfigjson");
    if (it == data->end()) it = data->find(".dockercfg");
    if (it == data->end()) continue;
    if (auto r = keyring.Add(it->second, "secret " + pod.ns + "/" + name); !r) {
      base::log::Warn("unusable image pull secret",
                      {{"pod", PodKey(pod)}, {"err", r.error().message}});
    }
  }
  return SelectPullAuth(keyring, opts_.registry.get(), image);
}

bool Kubelet::KillContainers(const Pod& pod, const PodRuntimeState& state, int64_t grace_seconds) {
  // K:pkg/kubelet/kuberuntime: minimumGracePeriodInSeconds = 2.
  int64_t grace = std::max<int64_t>(grace_seconds, 2);
  std::vector<std::thread> threads;
  std::atomic<bool> ok{true};
  for (const auto& c : state.containers) {
    if (c.state != cri::ContainerState::kRunning) continue;
    threads.emplace_back([&, c] {
      bool init;
      const Container* spec = FindContainer(pod, c.name, &init);
      auto start = std::chrono::steady_clock::now();
      if (spec && spec->pre_stop && spec->pre_stop->exec) {
        auto r = runtime_->ExecSync(c.id, spec->pre_stop->exec->command, std::chrono::seconds(grace));
        if (!r) Event(pod, "Warning", "FailedPreStopHook", "PreStopHook failed: " + r.error().message,
                      "spec.containers{" + c.name + "}");
      } else if (spec && spec->pre_stop && spec->pre_stop->sleep_seconds) {
        std::this_thread::sleep_for(std::chrono::seconds(std::min(*spec->pre_stop->sleep_seconds, grace)));
      } else if (spec && spec->pre_stop && spec->pre_stop->http_get) {
        ProbeTarget target{PodIpOf(pod, state, opts_.node.node_ips), c.id, spec->ports};
        auto r = prober_.RunHandler(*spec->pre_stop, pod, *spec, target, std::chrono::seconds(grace));
        if (!r) Event(pod, "Warning", "FailedPreStopHook", "PreStopHook failed: " + r.error().message,
                      "spec.containers{" + c.name + "}");
      }
      auto used = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start).count();
      int64_t left = std::max<int64_t>(grace - used, 2);
      Event(pod, "Normal", "Killing", "Stopping container " + c.name, "spec.containers{" + c.name + "}");
      auto r = runtime_->StopContainer(c.id, std::chrono::seconds(left));
      if (!r) {
        ok = false;
        base::log::Warn("stop container failed", {{"pod", PodKey(pod)}, {"container", c.name}, {"err", r.error().message}});
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok;
}

void Kubelet::Publish(const std::string& uid, const PodRecord& rec, const PodRuntimeState& state, bool terminating,
                      bool pod_failed) {
  StatusInputs in;
  in.pod = &rec.pod;
  // A static pod's status lives in its mirror pod (none yet: kept here until there is one).
  const json& target = rec.is_static ? rec.mirror : rec.api_pod;
  json old = target.is_object() && target.contains("status") ? target["status"] : json::object();
  in.old_status = &old;
  in.runtime = &state;
  in.waiting = rec.waiting;
  in.host_ips = opts_.node.node_ips;
  in.sandbox_ready = state.Newest() && state.Newest()->ready;
  in.terminating = terminating;
  in.pod_failed = pod_failed;
  if (pod_failed) {
    in.pod_reason = rec.fail_reason;
    in.pod_message = rec.fail_message;
    if (rec.fail_disruption) in.disruption_message = rec.fail_message;
  }
  in.now = clock_->Now();
  probes_->UpdatePod(rec.pod, PodIpOf(rec.pod, state, opts_.node.node_ips), state);
  in.readiness = probes_->Readiness(uid);
  in.started = probes_->Started(uid);
  json status = GeneratePodStatus(in);
  if (target.is_object()) status_.SetPodStatus(target, status);
  std::lock_guard lk(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end()) return;
  if (!it->second.start_reported && status.value("phase", "") == "Running") {
    it->second.start_reported = true;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - it->second.first_seen).count();
    start_latencies_.push_back(secs);
  }
  it->second.last_status = std::move(status);
}

SyncResult Kubelet::Sync(const std::string& uid) {
  PodRecord rec;
  {
    std::lock_guard lk(mu_);
    auto it = pods_.find(uid);
    if (it == pods_.end()) return {true, std::nullopt};
    if (it->second.finalized && it->second.removed) {
      pods_.erase(it);
      return {true, std::nullopt};
    }
    if (it->second.finalized) return {true, std::nullopt};
    rec = it->second;
  }
  ++sync_count_;
  if (!rec.decoded) return {};  // logged at decode; nothing safe to do with it
  bool terminating = rec.removed || rec.pod.deletion_timestamp.has_value();
  return terminating ? TerminatePod(uid, std::move(rec)) : SyncPod(uid, std::move(rec));
}

SyncResult Kubelet::SyncPod(const std::string& uid, PodRecord rec) {
  const Pod& pod = rec.pod;
  if (rec.is_static) {
    EnsureMirror(uid, rec);
    std::lock_guard lk(mu_);
    if (auto it = pods_.find(uid); it != pods_.end()) rec.mirror = it->second.mirror;
  }
  PodRuntimeState state = Observe(uid);

  // A pod the API already calls terminal only needs its remaining processes and network gone.
  if (IsTerminalPhase(pod.phase)) {
    if (state.AnyRunning()) KillContainers(pod, state, pod.termination_grace_period_seconds);
    for (const auto& sb : state.sandboxes) {
      if (sb.ready) (void)runtime_->StopPodSandbox(sb.id);
    }
    state = Observe(uid);
    Publish(uid, rec, state, false, false);
    return {};
  }

  if (!rec.fail_reason.empty()) return FailedPod(uid, std::move(rec), std::move(state));

  // Admission, once, for a pod that has not run here yet (after a restart, running pods have
  // their sandboxes and are not asked again).
  if (!rec.admitted) {
    std::optional<std::pair<std::string, std::string>> refused;
    // Static pods are critical pods: always admitted (K:pkg/kubelet/types IsCriticalPod).
    if (admit_ && state.sandboxes.empty() && !rec.is_static) refused = admit_(pod, rec.api_pod);
    if (refused) {
      if (!RecordFailure(uid, &rec, refused->first, refused->second, false, 0)) return {};
    } else {
      std::lock_guard lk(mu_);
      auto it = pods_.find(uid);
      if (it == pods_.end()) return {};
      it->second.admitted = rec.admitted = true;
    }
  }
  if (!rec.fail_reason.empty()) {
    Event(pod, "Warning", rec.fail_reason, rec.fail_message);
    return FailedPod(uid, std::move(rec), std::move(state));
  }

  // activeDeadlineSeconds (K:pkg/kubelet/active_deadline.go): counted from status.startTime.
  std::optional<std::chrono::steady_clock::duration> deadline_left;
  if (pod.active_deadline_seconds) {
    base::WallTime start = clock_->Now();
    if (rec.api_pod.contains("status") && rec.api_pod["status"].contains("startTime")) {
      if (auto t = base::ParseRfc3339(rec.api_pod["status"].value("startTime", ""))) start = *t;
    }
    auto left = start + std::chrono::seconds(*pod.active_deadline_seconds) - clock_->Now();
    if (left <= base::WallTime::duration::zero()) {
      if (!RecordFailure(uid, &rec, "DeadlineExceeded",
                         "Pod was active on the node longer than the specified deadline", false,
                         pod.termination_grace_period_seconds)) {
        return {};
      }
    } else {
      deadline_left = std::chrono::duration_cast<std::chrono::steady_clock::duration>(left) +
                      std::chrono::milliseconds(100);
    }
  }
  if (!rec.fail_reason.empty()) {
    Event(pod, "Normal", rec.fail_reason, rec.fail_message);
    return FailedPod(uid, std::move(rec), std::move(state));
  }

  PodActions actions = ComputePodActions(pod, state, [&](const ObservedContainer& last) {
    return CrashBackoff(pod, last);
  });
  if (actions.pod_failed) {
    if (state.AnyRunning()) KillContainers(pod, state, pod.termination_grace_period_seconds);
    for (const auto& sb : state.sandboxes) (void)runtime_->StopPodSandbox(sb.id);
    state = Observe(uid);
    Publish(uid, rec, state, false, true);
    return {};
  }
  // Containers that failed their liveness or startup probe are killed; the next sync restarts
  // them per restartPolicy like any exited container.
  for (auto& kill : probes_->ContainersToKill(uid, state)) actions.kill.push_back(std::move(kill));
  if (actions.kill_pod) {
    KillContainers(pod, state, pod.termination_grace_period_seconds);
  }
  for (const auto& [id, reason] : actions.kill) {
    Event(pod, "Normal", "Killing", reason);
    (void)runtime_->StopContainer(id, std::chrono::seconds(std::max<int64_t>(pod.termination_grace_period_seconds, 2)));
  }
  for (const auto& id : actions.remove) (void)runtime_->RemoveContainer(id);

  // Volumes are (re)prepared on every sync: tokens are refreshed before they expire.
  auto vols = volumes_.Setup(pod, opts_.node.node_ips);
  if (!vols) {
    Event(pod, "Warning", "FailedMount", vols.error().message);
    Publish(uid, rec, state, false, false);
    return {false, std::chrono::seconds(2)};
  }

  cri::PodSandboxConfig sandbox_config;
  std::string sandbox_id = actions.sandbox_id;
  uint32_t sandbox_attempt = actions.create_sandbox ? actions.sandbox_attempt : (state.Newest() ? state.Newest()->attempt : 0);
  sandbox_config = MakeSandboxConfig(pod, sandbox_attempt, opts_.node, host_dns_);
  if (actions.create_sandbox) {
    for (const auto& old : actions.sandboxes_to_remove) (void)runtime_->StopPodSandbox(old);
    if (!state.sandboxes.empty()) Event(pod, "Normal", "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.");
    auto id = runtime_->RunPodSandbox(sandbox_config);
    if (!id) {
      std::string msg = "Failed to create pod sandbox: " + id.error().message;
      Event(pod, "Warning", "FailedCreatePodSandBox", msg);
      ++sync_errors_;
      Publish(uid, rec, state, false, false);
      return {false, std::chrono::seconds(5)};
    }
    sandbox_id = *id;
    std::lock_guard lk(mu_);
    sandbox_to_pod_[sandbox_id] = uid;
  }

  PodRuntimeFacts facts;
  if (auto s = runtime_->PodSandboxStatus(sandbox_id)) {
    facts.pod_ip = s->network.ip;
    if (!facts.pod_ip.empty()) facts.pod_ips.push_back(facts.pod_ip);
    for (const auto& ip : s->network.additional_ips) facts.pod_ips.push_back(ip.ip);
  }
  if (pod.host_network) facts.pod_ip = opts_.node.node_ips.empty() ? "" : opts_.node.node_ips.front();
  facts.volume_host_paths = vols->host_paths;
  facts.volume_read_only = vols->read_only;
  facts.termination_log_dir = volumes_.PodDir(uid) + "/containers";

  std::map<std::string, WaitingReason> waiting = rec.waiting;
  for (const auto& start : actions.start) {
    bool init = false;
    const Container* c = FindContainer(pod, start.name, &init);
    if (!c) continue;
    std::string field = std::string(init ? "spec.initContainers{" : "spec.containers{") + c->name + "}";
    ImageResult img = image_manager_.EnsureImage(pod, *c, PullAuth(pod, c->image));
    if (!img.ok) {
      waiting[c->name] = {img.reason, img.message};
      if (img.reason == "ImagePullBackOff") Event(pod, "Normal", "BackOff", img.message, field);
      else Event(pod, "Warning", img.reason == "ErrImagePull" ? "Failed" : img.reason, img.message, field);
      if (init) break;
      continue;
    }
    if (img.pulled) Event(pod, "Normal", "Pulled", "Successfully pulled image \"" + c->image + "\"", field);
    auto cfg = MakeContainerConfig(pod, *c, init, start.attempt, img.image_ref, opts_.node, facts,
                                   EnvLookup{[this](const std::string& ns, const std::string& n) { return volumes_.GetConfigMap(ns, n); },
                                             [this](const std::string& ns, const std::string& n) { return volumes_.GetSecret(ns, n); }});
    if (!cfg) {
      waiting[c->name] = {"CreateContainerConfigError", cfg.error().message};
      Event(pod, "Warning", "Failed", "Error: " + cfg.error().message, field);
      if (init) break;
      continue;
    }
    // The termination message file the container writes to (terminationMessagePath) must exist
    // before it is bind-mounted; the kubelet creates it world-writable for non-root users.
    for (const auto& m : cfg->mounts) {
      if (m.container_path != c->termination_message_path || !base::StartsWith(m.host_path, facts.termination_log_dir)) continue;
      if (auto w = base::WriteFile(m.host_path, ""); !w) {
        waiting[c->name] = {"CreateContainerConfigError", w.error().message};
      } else {
        ::chmod(m.host_path.c_str(), 0666);
      }
    }
    auto id = runtime_->CreateContainer(sandbox_id, *cfg, sandbox_config);
    if (!id) {
      waiting[c->name] = {"CreateContainerError", id.error().message};
      Event(pod, "Warning", "Failed", "Error: " + id.error().message, field);
      ++sync_errors_;
      if (init) break;
      continue;
    }
    Event(pod, "Normal", "Created", "Created container " + c->name, field);
    auto started = runtime_->StartContainer(*id);
    if (!started) {
      waiting[c->name] = {"RunContainerError", started.error().message};
      Event(pod, "Warning", "Failed", "Error: " + started.error().message, field);
      ++sync_errors_;
      if (init) break;
      continue;
    }
    ++container_starts_;
    waiting.erase(c->name);
    Event(pod, "Normal", "Started", "Started container " + c->name, field);
    if (c->post_start) {
      // K:pkg/kubelet/kuberuntime startContainer: a failed postStart hook kills the container.
      ProbeTarget target{facts.pod_ip, *id, c->ports};
      if (auto hook = prober_.RunHandler(*c->post_start, pod, *c, target, std::chrono::seconds(0)); !hook) {
        base::log::Warn("postStart hook failed", {{"pod", PodKey(pod)}, {"container", c->name}, {"err", hook.error().message}});
        // The message stays out of the event (it may hold secrets), as the kubelet does.
        Event(pod, "Warning", "FailedPostStartHook", "PostStartHook failed", field);
        Event(pod, "Normal", "Killing", "FailedPostStartHook", field);
        (void)runtime_->StopContainer(*id, std::chrono::seconds(std::max<int64_t>(pod.termination_grace_period_seconds, 2)));
        waiting[c->name] = {"PostStartHookError", hook.error().message};
        ++sync_errors_;
        if (init) break;
        continue;
      }
    }
    // Keep only the previous attempt of this container (for lastState and logs --previous).
    for (const auto& old : state.containers) {
      if (old.name == c->name && old.state == cri::ContainerState::kExited && old.attempt + 1 < start.attempt)
        (void)runtime_->RemoveContainer(old.id);
    }
    if (init && c->restart_policy != "Always") break;
  }
  for (const auto& [name, msg] : actions.backoff) waiting[name] = {"CrashLoopBackOff", msg};
  // A container that is running now has no waiting reason left.
  state = Observe(uid);
  for (auto it = waiting.begin(); it != waiting.end();) {
    const ObservedContainer* last = state.Latest(it->first);
    bool backing_off = actions.backoff.count(it->first) > 0;
    if (last && last->state == cri::ContainerState::kRunning && !backing_off) it = waiting.erase(it);
    else ++it;
  }
  rec.waiting = waiting;
  {
    std::lock_guard lk(mu_);
    auto it = pods_.find(uid);
    if (it != pods_.end()) it->second.waiting = waiting;
  }
  Publish(uid, rec, state, false, false);

  // Wake up when the shortest back-off ends, else on the periodic resync.
  std::optional<std::chrono::steady_clock::duration> requeue;
  for (const auto& [name, msg] : actions.backoff) {
    auto d = crash_backoff_.Get(pod.uid + "/" + name);
    const ObservedContainer* last = state.Latest(name);
    if (last && last->finished_at) {
      auto end = base::FromUnixNanos(last->finished_at) + std::chrono::duration_cast<base::WallTime::duration>(d);
      auto left = end - clock_->Now();
      if (left < std::chrono::seconds(1)) left = std::chrono::seconds(1);
      auto l = std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
      if (!requeue || l < *requeue) requeue = l;
    }
  }
  for (const auto& [name, w] : waiting) {
    if (w.reason != "CrashLoopBackOff") {
      std::chrono::steady_clock::duration d = std::chrono::seconds(w.reason == "ImagePullBackOff" || w.reason == "ErrImagePull" ? 10 : 5);
      if (!requeue || d < *requeue) requeue = d;
    }
  }
  if (deadline_left && (!requeue || *deadline_left < *requeue)) requeue = deadline_left;
  return {false, requeue};
}

SyncResult Kubelet::FailedPod(const std::string& uid, PodRecord rec, PodRuntimeState state) {
  const Pod& pod = rec.pod;
  if (state.AnyRunning()) KillContainers(pod, state, rec.fail_grace);
  for (const auto& sb : state.sandboxes) {
    if (sb.ready) (void)runtime_->StopPodSandbox(sb.id);
  }
  state = Observe(uid);
  if (state.AnyRunning()) {
    Publish(uid, rec, state, false, false);
    return {false, std::chrono::seconds(1)};
  }
  Publish(uid, rec, state, false, true);
  return {};
}

void Kubelet::FailPod(const std::string& uid, const std::string& reason,
                      const std::string& message, bool disruption, int64_t grace_seconds) {
  PodRecord rec;
  if (!RecordFailure(uid, &rec, reason, message, disruption, grace_seconds)) return;
  Event(rec.pod, "Warning", reason, message);
  workers_->Update(uid);
}

bool Kubelet::RecordFailure(const std::string& uid, PodRecord* rec, const std::string& reason,
                            const std::string& message, bool disruption, int64_t grace_seconds) {
  std::lock_guard lk(mu_);
  auto it = pods_.find(uid);
  if (it == pods_.end() || !it->second.fail_reason.empty()) return false;
  it->second.fail_reason = reason;
  it->second.fail_message = message;
  it->second.fail_disruption = disruption;
  it->second.fail_grace = grace_seconds;
  *rec = it->second;
  return true;
}

std::vector<Kubelet::EvictionCandidateInput> Kubelet::ActivePodsForEviction() const {
  std::vector<EvictionCandidateInput> out;
  std::lock_guard lk(mu_);
  for (const auto& [uid, rec] : pods_) {
    if (!rec.decoded || rec.removed || rec.finalized || !rec.fail_reason.empty() ||
        rec.pod.deletion_timestamp || IsTerminalPhase(rec.pod.phase) || !rec.admitted) {
      continue;
    }
    EvictionCandidateInput c;
    c.uid = uid;
    c.ns = rec.pod.ns;
    c.name = rec.pod.name;
    c.priority = rec.pod.priority.value_or(0);
    c.termination_grace_seconds = rec.pod.termination_grace_period_seconds;
    // K:pkg/kubelet/types IsCriticalPod: static and mirror pods, or system-critical priority.
    c.critical = rec.is_static || c.priority >= 2000000000;
    for (const auto& ct : rec.pod.containers) {
      c.memory_requests.emplace_back(ct.name, ct.resources.requests.memory_bytes.value_or(0));
    }
    out.push_back(std::move(c));
  }
  return out;
}

SyncResult Kubelet::TerminatePod(const std::string& uid, PodRecord rec) {
  const Pod& pod = rec.pod;
  PodRuntimeState state = Observe(uid);
  int64_t grace = pod.deletion_grace_period_seconds.value_or(pod.termination_grace_period_seconds);
  if (state.AnyRunning()) {
    base::log::Info("stopping pod", {{"pod", PodKey(pod)}, {"gracePeriod", grace}});
    KillContainers(pod, state, grace);
  }
  for (const auto& sb : state.sandboxes) {
    auto r = runtime_->StopPodSandbox(sb.id);
    if (!r) {
      base::log::Warn("stop sandbox failed", {{"pod", PodKey(pod)}, {"err", r.error().message}});
      return {false, std::chrono::seconds(2)};
    }
  }
  state = Observe(uid);
  if (state.AnyRunning()) return {false, std::chrono::seconds(1)};
  if (!rec.removed) Publish(uid, rec, state, true, false);

  // Reclaim everything before telling the API the pod is gone.
  bool clean = true;
  for (const auto& c : state.containers) {
    if (auto r = runtime_->RemoveContainer(c.id); !r) {
      clean = false;
      base::log::Warn("remove container failed", {{"pod", PodKey(pod)}, {"err", r.error().message}});
    }
  }
  for (const auto& sb : state.sandboxes) {
    if (auto r = runtime_->RemovePodSandbox(sb.id); !r) {
      clean = false;
      base::log::Warn("remove sandbox failed", {{"pod", PodKey(pod)}, {"err", r.error().message}});
    }
  }
  if (auto r = volumes_.Cleanup(uid); !r) {
    clean = false;
    base::log::Warn("volume cleanup failed", {{"pod", PodKey(pod)}, {"err", r.error().message}});
  }
  if (!clean) return {false, std::chrono::seconds(2)};
  if (!rec.removed && pod.deletion_timestamp) {
    if (!status_.DeletePod(pod.ns, pod.name, pod.uid)) return {false, std::chrono::seconds(2)};
    base::log::Info("pod deleted", {{"pod", PodKey(pod)}});
  }
  if (rec.is_static) {
    json m;
    {
      std::lock_guard lk(mu_);
      if (auto it = pods_.find(uid); it != pods_.end()) m = it->second.mirror;
    }
    // Its mirror goes with it (unless a new version of the manifest already owns it).
    if (m.is_object() && m["metadata"]["annotations"].value(kMirrorAnnotation, "") == uid) {
      if (!status_.DeletePod(pod.ns, pod.name, m["metadata"].value("uid", ""))) {
        return {false, std::chrono::seconds(2)};
      }
      base::log::Info("mirror pod deleted", {{"pod", PodKey(pod)}});
    }
  }
  crash_backoff_.ResetPrefix(uid + "/");
  std::lock_guard lk(mu_);
  for (auto it = sandbox_to_pod_.begin(); it != sandbox_to_pod_.end();) {
    if (it->second == uid) it = sandbox_to_pod_.erase(it);
    else ++it;
  }
  auto it = pods_.find(uid);
  if (it != pods_.end()) {
    if (it->second.removed) pods_.erase(it);
    else it->second.finalized = true;
  }
  status_.Forget(uid);
  probes_->RemovePod(uid);
  return {true, std::nullopt};
}

json Kubelet::PodList() const {
  json items = json::array();
  std::lock_guard lk(mu_);
  for (const auto& [uid, rec] : pods_) {
    if (rec.removed || rec.api_pod.is_null()) continue;
    json p = rec.api_pod;
    if (!rec.last_status.is_null()) p["status"] = rec.last_status;
    items.push_back(std::move(p));
  }
  return json{{"kind", "PodList"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"items", items}};
}

json Kubelet::DebugPods() const {
  json pods = json::array();
  std::lock_guard lk(mu_);
  for (const auto& [uid, rec] : pods_) {
    if (rec.api_pod.is_null()) continue;
    const json& st = rec.last_status.is_null() ? (rec.api_pod.contains("status") ? rec.api_pod["status"] : json::object())
                                               : rec.last_status;
    json p;
    p["namespace"] = rec.pod.ns;
    p["name"] = rec.pod.name;
    p["uid"] = uid;
    p["phase"] = st.value("phase", "Pending");
    p["podIP"] = st.value("podIP", "");
    p["startTime"] = st.value("startTime", "");
    p["qosClass"] = st.value("qosClass", "");
    p["terminating"] = rec.removed || rec.pod.deletion_timestamp.has_value();
    json containers = json::array();
    for (const char* key : {"initContainerStatuses", "containerStatuses"}) {
      if (!st.contains(key)) continue;
      for (const auto& cs : st[key]) {
        json c;
        c["reason"] = "";
        c["exitCode"] = 0;
        c["startedAt"] = "";
        c["name"] = cs.value("name", "");
        c["init"] = std::string(key) == "initContainerStatuses";
        c["image"] = cs.value("image", "");
        c["containerID"] = cs.value("containerID", "");
        c["restartCount"] = cs.value("restartCount", 0);
        c["ready"] = cs.value("ready", false);
        const json& state = cs["state"];
        if (state.contains("running")) {
          c["state"] = "running";
          c["startedAt"] = state["running"].value("startedAt", "");
        } else if (state.contains("terminated")) {
          c["state"] = "terminated";
          c["reason"] = state["terminated"].value("reason", "");
          c["exitCode"] = state["terminated"].value("exitCode", 0);
        } else if (state.contains("waiting")) {
          c["state"] = "waiting";
          c["reason"] = state["waiting"].value("reason", "");
          c["message"] = state["waiting"].value("message", "");
        }
        containers.push_back(std::move(c));
      }
    }
    p["containers"] = containers;
    pods.push_back(std::move(p));
  }
  return json{{"pods", pods}};
}

std::string Kubelet::PodUid(const std::string& ns, const std::string& name) const {
  std::lock_guard lk(mu_);
  std::string uid;
  for (const auto& [u, rec] : pods_) {
    if (rec.pod.ns == ns && rec.pod.name == name && !rec.removed) uid = u;
  }
  return uid;
}

base::Result<std::pair<std::string, bool>> Kubelet::ContainerLogPath(const std::string& ns, const std::string& name,
                                                                     const std::string& container, bool previous) {
  std::string uid = PodUid(ns, name);
  if (uid.empty()) return base::Fail("pod \"" + ns + "/" + name + "\" not found on this node", ENOENT);
  PodRuntimeState st = Observe(uid);
  const ObservedContainer* last = st.Latest(container);
  if (!last) return base::Fail("container \"" + container + "\" in pod \"" + ns + "/" + name + "\" is not available", ENOENT);
  std::string id = last->id;
  if (previous) {
    const ObservedContainer* prev = nullptr;
    for (const auto& c : st.containers) {
      if (c.name == container && c.id != last->id && (!prev || c.attempt > prev->attempt)) prev = &c;
    }
    if (!prev)
      return base::Fail("previous terminated container \"" + container + "\" in pod \"" + name + "\" not found", EINVAL);
    id = prev->id;
  }
  auto s = runtime_->ContainerStatus(id);
  if (!s) return base::Fail("container \"" + container + "\" in pod \"" + ns + "/" + name + "\": " + s.error().message, ENOENT);
  return std::make_pair(s->log_path, s->state == cri::ContainerState::kRunning);
}

size_t Kubelet::ActivePods() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (const auto& [uid, rec] : pods_) n += rec.removed ? 0 : 1;
  return n;
}

std::string Kubelet::MetricsText() const {
  std::ostringstream o;
  size_t running = 0, containers_running = 0;
  std::vector<double> lat;
  {
    std::lock_guard lk(mu_);
    for (const auto& [uid, rec] : pods_) {
      if (rec.last_status.value("phase", "") == "Running") ++running;
      if (rec.last_status.contains("containerStatuses")) {
        for (const auto& cs : rec.last_status["containerStatuses"]) {
          if (cs["state"].contains("running")) ++containers_running;
        }
      }
    }
    lat = start_latencies_;
  }
  o << "# HELP kubelet_running_pods Number of pods that have a running pod sandbox\n"
    << "# TYPE kubelet_running_pods gauge\nkubelet_running_pods " << running << "\n"
    << "# HELP kubelet_running_containers Number of containers currently running\n"
    << "# TYPE kubelet_running_containers gauge\nkubelet_running_containers{container_state=\"running\"} "
    << containers_running << "\n"
    << "# HELP cubelet_pod_syncs_total Pod worker syncs\n# TYPE cubelet_pod_syncs_total counter\n"
    << "cubelet_pod_syncs_total " << sync_count_.load() << "\n"
    << "# HELP cubelet_pod_sync_errors_total Pod syncs that hit a runtime error\n"
    << "# TYPE cubelet_pod_sync_errors_total counter\ncubelet_pod_sync_errors_total " << sync_errors_.load() << "\n"
    << "# HELP cubelet_container_starts_total Containers started\n# TYPE cubelet_container_starts_total counter\n"
    << "cubelet_container_starts_total " << container_starts_.load() << "\n";
  // Pod start latency (first seen → Running) as a histogram.
  static const double kBuckets[] = {0.5, 1, 2, 4, 8, 16, 32, 64};
  o << "# HELP kubelet_pod_start_duration_seconds Duration from the pod being seen to it running\n"
    << "# TYPE kubelet_pod_start_duration_seconds histogram\n";
  double sum = 0;
  for (double v : lat) sum += v;
  for (double b : kBuckets) {
    size_t n = std::count_if(lat.begin(), lat.end(), [&](double v) { return v <= b; });
    o << "kubelet_pod_start_duration_seconds_bucket{le=\"" << b << "\"} " << n << "\n";
  }
  o << "kubelet_pod_start_duration_seconds_bucket{le=\"+Inf\"} " << lat.size() << "\n"
    << "kubelet_pod_start_duration_seconds_sum " << sum << "\n"
    << "kubelet_pod_start_duration_seconds_count " << lat.size() << "\n";
  return o.str();
}

}  // namespace agent
