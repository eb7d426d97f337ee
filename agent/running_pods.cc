#include "agent/running_pods.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "agent/runtime_config.h"

namespace agent {

std::string RunningPodsJson(const std::vector<cri::PodSandbox>& ready_sandboxes,
                            const std::vector<cri::Container>& running_containers) {
  using nlohmann::json;
  struct Pod {
    std::string name, ns, uid;
    int64_t created_at = 0;
    std::vector<const cri::Container*> containers;
  };
  std::map<std::string, Pod> pods;                      // by pod UID
  std::map<std::string, std::string> uid_of_sandbox;    // sandbox id -> pod UID
  for (const auto& s : ready_sandboxes) {
    Pod& p = pods[s.metadata.uid];
    p.name = s.metadata.name;
    p.ns = s.metadata.namespace_;
    p.uid = s.metadata.uid;
    p.created_at = std::max(p.created_at, s.created_at);
    uid_of_sandbox[s.id] = s.metadata.uid;
  }
  auto label = [](const cri::Container& c, const std::string& key) {
    auto it = c.labels.find(key);
    return it == c.labels.end() ? std::string() : it->second;
  };
  for (const auto& c : running_containers) {
    // The container's labels name its pod (as the kubelet reads them), else its sandbox does.
    std::string uid = label(c, kLabelPodUid);
    if (uid.empty()) {
      auto it = uid_of_sandbox.find(c.pod_sandbox_id);
      if (it == uid_of_sandbox.end()) continue;  // neither: not a pod of ours
      uid = it->second;
    }
    Pod& p = pods[uid];
    if (p.uid.empty()) {  // its sandbox is not ready: what the labels say
      p.uid = uid;
      p.name = label(c, kLabelPodName);
      p.ns = label(c, kLabelPodNamespace);
    }
    p.containers.push_back(&c);
  }
  std::vector<const Pod*> order;
  for (const auto& [uid, p] : pods) order.push_back(&p);
  std::stable_sort(order.begin(), order.end(),
                   [](const Pod* a, const Pod* b) { return a->created_at > b->created_at; });
  json items = json::array();
  for (const Pod* p : order) {
    json containers = json::array();
    for (const auto* c : p->containers) {
      containers.push_back({{"name", c->metadata.name},
                            {"image", c->image.image},
                            {"resources", json::object()}});
    }
    json spec = json::object();
    if (!containers.empty()) spec["containers"] = containers;
    items.push_back({{"metadata",
                      {{"name", p->name},
                       {"namespace", p->ns},
                       {"uid", p->uid},
                       {"creationTimestamp", nullptr}}},
                     {"spec", spec},
                     {"status", json::object()}});
  }
  return json{{"kind", "PodList"}, {"apiVersion", "v1"}, {"metadata", json::object()},
              {"items", items}}
      .dump();
}

}  // namespace agent
