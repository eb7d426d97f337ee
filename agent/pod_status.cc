#include "agent/pod_status.h"

#include <algorithm>

namespace agent {

using nlohmann::json;

std::string ContainerIdUri(const std::string& id) { return "cubelet://" + id; }

namespace {

std::string Time(int64_t ns) { return base::FormatRfc3339(base::FromUnixNanos(ns)); }

json TerminatedState(const ObservedContainer& c) {
  json t = json::object();
  t["exitCode"] = c.exit_code;
  if (c.exit_code > 128 && c.exit_code < 128 + 65) {
    // The runtime reports 128+N for a signal death; the API also has `signal`.
    t["signal"] = c.exit_code - 128;
  }
  std::string reason = c.reason;
  if (reason.empty()) reason = c.exit_code == 0 ? "Completed" : "Error";
  t["reason"] = reason;
  if (!c.message.empty()) t["message"] = c.message;
  t["startedAt"] = c.started_at ? json(Time(c.started_at)) : json(nullptr);
  t["finishedAt"] = c.finished_at ? json(Time(c.finished_at)) : json(nullptr);
  t["containerID"] = ContainerIdUri(c.id);
  return t;
}

// The observation of the attempt before `latest` (for lastState).
const ObservedContainer* Previous(const PodRuntimeState& rt, const ObservedContainer& latest) {
  const ObservedContainer* best = nullptr;
  for (const auto& c : rt.containers) {
    if (c.name != latest.name || c.id == latest.id) continue;
    if (c.state != cri::ContainerState::kExited) continue;
    if (c.attempt >= latest.attempt && !(c.attempt == latest.attempt && c.created_at < latest.created_at)) continue;
    if (!best || c.attempt > best->attempt) best = &c;
  }
  return best;
}

json ContainerStatus(const Container& spec, const StatusInputs& in, bool init,
                     bool init_pending, const json* old) {
  const PodRuntimeState& rt = *in.runtime;
  const ObservedContainer* last = rt.Latest(spec.name);
  json s = json::object();
  s["name"] = spec.name;
  json state = json::object();
  json last_state = json::object();
  bool ready = false;
  bool started = false;
  int restart_count = last ? static_cast<int>(last->attempt) : 0;
  auto waiting_it = in.waiting.find(spec.name);

  if (!last) {
    WaitingReason w{init || !init_pending ? "ContainerCreating" : "PodInitializing", ""};
    if (waiting_it != in.waiting.end()) w = waiting_it->second;
    json wj = {{"reason", w.reason}};
    if (!w.message.empty()) wj["message"] = w.message;
    state["waiting"] = wj;
    // Keep the last state the API knew (e.g. after a sandbox restart the runtime lost history).
    if (old && old->contains("lastState")) last_state = (*old)["lastState"];
    if (old) restart_count = std::max(restart_count, old->value("restartCount", 0));
  } else if (last->state == cri::ContainerState::kRunning) {
    state["running"] = {{"startedAt", Time(last->started_at ? last->started_at : last->created_at)}};
    auto st = in.started.find(spec.name);
    started = st == in.started.end() || st->second;
    auto rd = in.readiness.find(spec.name);
    ready = started && (rd == in.readiness.end() ? true : rd->second);
    if (init && spec.restart_policy != "Always") ready = false;  // init containers are not "ready"
    if (const ObservedContainer* prev = Previous(rt, *last)) last_state["terminated"] = TerminatedState(*prev);
  } else if (last->state == cri::ContainerState::kCreated) {
    WaitingReason w{"ContainerCreating", ""};
    if (waiting_it != in.waiting.end()) w = waiting_it->second;
    json wj = {{"reason", w.reason}};
    if (!w.message.empty()) wj["message"] = w.message;
    state["waiting"] = wj;
    if (const ObservedContainer* prev = Previous(rt, *last)) last_state["terminated"] = TerminatedState(*prev);
  } else {
    // Exited. If it is waiting to restart (back-off or a failed start), show waiting with the
    // exit as lastState, like the kubelet's CrashLoopBackOff; otherwise terminated.
    if (waiting_it != in.waiting.end() && !in.terminating) {
      json wj = {{"reason", waiting_it->second.reason}};
      if (!waiting_it->second.message.empty()) wj["message"] = waiting_it->second.message;
      state["waiting"] = wj;
      last_state["terminated"] = TerminatedState(*last);
    } else {
      state["terminated"] = TerminatedState(*last);
      if (const ObservedContainer* prev = Previous(rt, *last)) last_state["terminated"] = TerminatedState(*prev);
    }
    if (init && last->exit_code == 0) ready = true;  // a finished init container reports ready
  }

  s["state"] = state;
  s["lastState"] = last_state;
  s["ready"] = ready;
  s["restartCount"] = restart_count;
  s["image"] = spec.image;
  s["imageID"] = last ? last->image_ref : "";
  if (last) s["containerID"] = ContainerIdUri(last->id);
  s["started"] = started;
  return s;
}

const json* FindByName(const json* list, const std::string& name) {
  if (!list || !list->is_array()) return nullptr;
  for (const auto& e : *list) {
    if (e.is_object() && e.value("name", "") == name) return &e;
  }
  return nullptr;
}

json Condition(const std::string& type, bool status, const std::string& reason,
               const std::string& message, const json* old_conditions, base::WallTime now) {
  std::string st = status ? "True" : "False";
  std::string ltt = base::FormatRfc3339(now);
  if (old_conditions && old_conditions->is_array()) {
    for (const auto& c : *old_conditions) {
      if (c.value("type", "") == type && c.value("status", "") == st && c.contains("lastTransitionTime") &&
          c["lastTransitionTime"].is_string()) {
        ltt = c["lastTransitionTime"].get<std::string>();
      }
    }
  }
  json c = json::object();
  c["type"] = type;
  c["status"] = st;
  c["lastProbeTime"] = nullptr;
  c["lastTransitionTime"] = ltt;
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  return c;
}

std::string Bracketed(const std::vector<std::string>& names) {
  std::string out = "[";
  for (size_t i = 0; i < names.size(); ++i) out += (i ? " " : "") + names[i];
  return out + "]";
}

}  // namespace

std::string ComputePhase(const Pod& pod, const json& status, bool terminating) {
  const json* inits = status.contains("initContainerStatuses") ? &status["initContainerStatuses"] : nullptr;
  const json* ctrs = status.contains("containerStatuses") ? &status["containerStatuses"] : nullptr;
  bool pending_init = false, failed_init = false;
  for (const auto& ic : pod.init_containers) {
    const json* s = FindByName(inits, ic.name);
    bool sidecar = ic.restart_policy == "Always";
    if (!s) {
      pending_init = true;
      continue;
    }
    const json& st = (*s)["state"];
    if (sidecar) {
      if (!s->value("started", false)) pending_init = true;
      continue;
    }
    if (st.contains("terminated")) {
      if (st["terminated"].value("exitCode", 0) != 0) {
        pending_init = true;
        failed_init = true;
      }
    } else {
      pending_init = true;
      if (st.contains("waiting") && (*s)["lastState"].contains("terminated") &&
          (*s)["lastState"]["terminated"].value("exitCode", 0) != 0)
        failed_init = true;
    }
  }
  int unknown = 0, running = 0, waiting = 0, stopped = 0, succeeded = 0;
  for (const auto& c : pod.containers) {
    const json* s = FindByName(ctrs, c.name);
    if (!s) {
      ++unknown;
      continue;
    }
    const json& st = (*s)["state"];
    if (st.contains("running")) {
      ++running;
    } else if (st.contains("terminated")) {
      ++stopped;
      if (st["terminated"].value("exitCode", -1) == 0) ++succeeded;
    } else if (st.contains("waiting")) {
      if ((*s)["lastState"].contains("terminated")) ++stopped;
      else ++waiting;
    } else {
      ++unknown;
    }
  }
  if (failed_init && pod.restart_policy == "Never") return "Failed";
  if (pending_init && !terminating) return "Pending";
  if (waiting > 0 && !terminating) return "Pending";
  if (running > 0 && unknown == 0) return "Running";
  if (running == 0 && stopped > 0 && unknown == 0) {
    if (terminating) return stopped == succeeded ? "Succeeded" : "Failed";
    if (pod.restart_policy == "Always") return "Running";
    if (stopped == succeeded) return "Succeeded";
    if (pod.restart_policy == "Never") return "Failed";
    return "Running";
  }
  if (terminating && running == 0) return stopped > 0 && stopped == succeeded ? "Succeeded" : "Failed";
  return "Pending";
}

json GeneratePodStatus(const StatusInputs& in) {
  const Pod& pod = *in.pod;
  const json empty = json::object();
  const json& old = (in.old_status && in.old_status->is_object()) ? *in.old_status : empty;
  const json* old_conditions = old.contains("conditions") ? &old["conditions"] : nullptr;
  const json* old_cs = old.contains("containerStatuses") ? &old["containerStatuses"] : nullptr;
  const json* old_ics = old.contains("initContainerStatuses") ? &old["initContainerStatuses"] : nullptr;

  json st = json::object();
  // Init containers first: app container waiting reasons depend on whether init is pending.
  json ics = json::array();
  bool init_pending = false;
  std::vector<std::string> incomplete;
  for (const auto& c : pod.init_containers) {
    json s = ContainerStatus(c, in, true, false, FindByName(old_ics, c.name));
    bool done = c.restart_policy == "Always"
                    ? s.value("started", false)
                    : (s["state"].contains("terminated") && s["state"]["terminated"].value("exitCode", 1) == 0);
    if (!done) {
      init_pending = true;
      incomplete.push_back(c.name);
    }
    ics.push_back(std::move(s));
  }
  json cs = json::array();
  std::vector<std::string> unready;
  for (const auto& c : pod.containers) {
    json s = ContainerStatus(c, in, false, init_pending, FindByName(old_cs, c.name));
    if (!s.value("ready", false)) unready.push_back(c.name);
    cs.push_back(std::move(s));
  }
  auto by_name = [](const json& a, const json& b) { return a.value("name", "") < b.value("name", ""); };
  std::sort(cs.begin(), cs.end(), by_name);
  std::sort(ics.begin(), ics.end(), by_name);
  if (!pod.init_containers.empty()) st["initContainerStatuses"] = ics;
  st["containerStatuses"] = cs;

  std::string phase = in.pod_failed ? "Failed" : ComputePhase(pod, st, in.terminating);
  // A terminal phase never goes back (the API rejects it; the kubelet keeps it).
  std::string old_phase = old.value("phase", "");
  if (IsTerminalPhase(old_phase)) phase = old_phase;
  bool terminal = IsTerminalPhase(phase);

  std::sort(unready.begin(), unready.end());
  json conditions = json::array();
  conditions.push_back(Condition("PodReadyToStartContainers", in.sandbox_ready, "", "", old_conditions, in.now));
  if (init_pending && !terminal) {
    conditions.push_back(Condition("Initialized", false, "ContainersNotInitialized",
                                   "containers with incomplete status: " + Bracketed(incomplete),
                                   old_conditions, in.now));
  } else {
    conditions.push_back(Condition("Initialized", true, terminal && init_pending ? "PodCompleted" : "", "",
                                   old_conditions, in.now));
  }
  bool containers_ready = unready.empty() && !terminal;
  std::string nr_reason = terminal ? (phase == "Succeeded" ? "PodCompleted" : "PodFailed") : "ContainersNotReady";
  std::string nr_msg = terminal ? "" : "containers with unready status: " + Bracketed(unready);
  conditions.push_back(Condition("Ready", containers_ready, containers_ready ? "" : nr_reason,
                                 containers_ready ? "" : nr_msg, old_conditions, in.now));
  conditions.push_back(Condition("ContainersReady", containers_ready, containers_ready ? "" : nr_reason,
                                 containers_ready ? "" : nr_msg, old_conditions, in.now));
  conditions.push_back(Condition("PodScheduled", true, "", "", old_conditions, in.now));
  // K:pkg/kubelet/eviction: a pod the kubelet evicts says so in a DisruptionTarget condition.
  if (!in.disruption_message.empty()) {
    conditions.push_back(Condition("DisruptionTarget", true, "TerminationByKubelet",
                                   in.disruption_message, old_conditions, in.now));
  }
  // Conditions owned by others (readiness gates, DisruptionTarget, ...) are kept as they are.
  static const char* kOwned[] = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"};
  if (old_conditions && old_conditions->is_array()) {
    for (const auto& c : *old_conditions) {
      std::string t = c.value("type", "");
      if (t == "DisruptionTarget" && !in.disruption_message.empty()) continue;
      if (std::find(std::begin(kOwned), std::end(kOwned), t) == std::end(kOwned)) conditions.push_back(c);
    }
  }
  st["conditions"] = conditions;

  if (!in.host_ips.empty()) {
    st["hostIP"] = in.host_ips.front();
    json hips = json::array();
    for (const auto& ip : in.host_ips) hips.push_back({{"ip", ip}});
    st["hostIPs"] = hips;
  }
  std::string pod_ip;
  if (pod.host_network) {
    if (!in.host_ips.empty()) pod_ip = in.host_ips.front();
  } else if (const ObservedSandbox* sb = in.runtime->Newest()) {
    pod_ip = sb->ip;
  }
  if (pod_ip.empty()) pod_ip = old.value("podIP", "");  // keep the last known IP while stopping
  if (!pod_ip.empty()) {
    st["podIP"] = pod_ip;
    st["podIPs"] = json::array({{{"ip", pod_ip}}});
  }
  st["phase"] = phase;
  if (!in.pod_reason.empty()) st["reason"] = in.pod_reason;
  if (!in.pod_message.empty()) st["message"] = in.pod_message;
  // A terminal pod keeps why it ended (Evicted, DeadlineExceeded) on later syncs.
  if (in.pod_reason.empty() && IsTerminalPhase(old_phase)) {
    if (old.contains("reason")) st["reason"] = old["reason"];
    if (old.contains("message")) st["message"] = old["message"];
  }
  st["qosClass"] = QosName(ComputeQos(pod));
  if (old.contains("startTime") && old["startTime"].is_string()) {
    st["startTime"] = old["startTime"];
  } else {
    st["startTime"] = base::FormatRfc3339(in.now);
  }
  return st;
}

}  // namespace agent
