#include "agent/pod_actions.h"

namespace agent {

const ObservedContainer* PodRuntimeState::Latest(const std::string& name) const {
  const ObservedContainer* best = nullptr;
  for (const auto& c : containers) {
    if (c.name != name) continue;
    if (!best || c.attempt > best->attempt ||
        (c.attempt == best->attempt && c.created_at > best->created_at))
      best = &c;
  }
  return best;
}

bool PodRuntimeState::AnyRunning() const {
  for (const auto& c : containers) {
    if (c.state == cri::ContainerState::kRunning) return true;
  }
  return false;
}

bool ShouldRestart(const std::string& policy, int32_t exit_code) {
  if (policy == "Never") return false;
  if (policy == "OnFailure") return exit_code != 0;
  return true;  // Always
}

PodActions ComputePodActions(const Pod& pod, const PodRuntimeState& state, const BackoffCheck& backoff) {
  PodActions a;
  const ObservedSandbox* sb = state.Newest();
  bool any_container_ran = !state.containers.empty();

  // 1. Sandbox: a pod needs exactly one ready sandbox. A dead one means everything restarts in a
  // new sandbox (new network namespace and IP), as the kubelet does — unless the pod may not
  // restart anything (restartPolicy Never and containers already ran).
  if (!sb || !sb->ready) {
    if (pod.restart_policy == "Never" && any_container_ran) {
      for (const auto& c : state.containers) {
        if (c.state == cri::ContainerState::kRunning) a.kill.emplace_back(c.id, "sandbox is not ready");
      }
      return a;
    }
    a.create_sandbox = true;
    a.sandbox_attempt = sb ? sb->attempt + 1 : 0;
    if (state.AnyRunning()) a.kill_pod = true;
    for (const auto& s : state.sandboxes) a.sandboxes_to_remove.push_back(s.id);
    // Containers restart in the new sandbox with attempt numbers continuing from the old ones.
    for (const auto& c : pod.init_containers) {
      if (c.restart_policy == "Always") continue;
      const ObservedContainer* last = state.Latest(c.name);
      a.start.push_back({c.name, true, last ? last->attempt + 1 : 0});
      return a;  // init containers run one at a time; the rest follows on later syncs
    }
    for (const auto& c : pod.containers) {
      const ObservedContainer* last = state.Latest(c.name);
      a.start.push_back({c.name, false, last ? last->attempt + 1 : 0});
    }
    return a;
  }
  a.sandbox_id = sb->id;

  // 2. Init containers, strictly in order. Sidecars (restartPolicy Always) start and keep running.
  for (const auto& c : pod.init_containers) {
    const ObservedContainer* last = state.Latest(c.name);
    bool sidecar = c.restart_policy == "Always";
    if (!last) {
      a.start.push_back({c.name, true, 0});
      if (!sidecar) return a;
      continue;
    }
    if (last->state == cri::ContainerState::kCreated) {
      a.remove.push_back(last->id);
      a.start.push_back({c.name, true, last->attempt + 1});
      return a;
    }
    if (last->state == cri::ContainerState::kRunning) {
      if (sidecar) continue;
      return a;  // wait for it to finish
    }
    // Exited.
    if (!sidecar && last->exit_code == 0) continue;
    if (!sidecar && pod.restart_policy == "Never") {
      a.pod_failed = true;
      return a;
    }
    if (auto msg = backoff(*last)) {
      a.backoff[c.name] = *msg;
      if (!sidecar) return a;
      continue;
    }
    a.remove.push_back(last->id);
    a.start.push_back({c.name, true, last->attempt + 1});
    if (!sidecar) return a;
  }

  // 3. App containers.
  for (const auto& c : pod.containers) {
    const ObservedContainer* last = state.Latest(c.name);
    if (!last) {
      a.start.push_back({c.name, false, 0});
      continue;
    }
    switch (last->state) {
      case cri::ContainerState::kRunning:
        if (!last->hash.empty() && last->hash != c.hash) {
          a.kill.emplace_back(last->id, "Container " + c.name + " definition changed, will be restarted");
          a.start.push_back({c.name, false, last->attempt + 1});
        }
        break;
      case cri::ContainerState::kCreated:
        // Created but never started (a failed start): replace it.
        a.remove.push_back(last->id);
        a.start.push_back({c.name, false, last->attempt + 1});
        break;
      default:
        if (!ShouldRestart(pod.restart_policy, last->exit_code)) break;
        if (auto msg = backoff(*last)) {
          a.backoff[c.name] = *msg;
          break;
        }
        a.start.push_back({c.name, false, last->attempt + 1});
        break;
    }
  }
  return a;
}

}  // namespace agent
