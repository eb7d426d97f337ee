// What kube-controller-manager would do for the objects the node agent cares about:
// EndpointSlice and Endpoints controllers, node IPAM (podCIDR) + TTL annotation, the taint part
// of the node lifecycle controller (not-ready/unreachable) with the 50 s monitor grace period,
// and the namespace controller (content removal on namespace deletion).
#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include "base/log.h"
#include "base/time.h"
#include "tests/apiserver/api_server.h"
#include "tests/apiserver/internal.h"
#include "tests/apiserver/schema.h"
#include "tests/apiserver/selectors.h"
#include "tests/apiserver/util.h"

namespace apiserver {

using namespace internal;

namespace {

const char kManagedBy[] = "endpointslice.kubernetes.io/managed-by";
const char kControllerName[] = "endpointslice-controller.k8s.io";
const char kServiceName[] = "kubernetes.io/service-name";
const char kTriggerTime[] = "endpoints.kubernetes.io/last-change-trigger-time";

std::string Meta(const Json& o, const char* k) {
  if (!o.contains("metadata")) return "";
  return o["metadata"].value(k, "");
}

bool PodReady(const Json& pod) {
  if (!pod.contains("status")) return false;
  for (const auto& c : pod["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

// Resolves a service port's targetPort against a pod's container ports.
std::optional<int64_t> ResolvePort(const Json& svc_port, const Json& pod) {
  const Json& tp = svc_port.contains("targetPort") ? svc_port["targetPort"] : svc_port["port"];
  if (tp.is_number_integer()) return tp.get<int64_t>();
  if (!tp.is_string()) return std::nullopt;
  std::string name = tp.get<std::string>();
  std::string proto = svc_port.value("protocol", "TCP");
  for (const auto& c : pod["spec"].value("containers", Json::array())) {
    for (const auto& p : c.value("ports", Json::array())) {
      if (p.value("name", "") == name && p.value("protocol", "TCP") == proto)
        return p.value("containerPort", 0);
    }
  }
  // A numeric string is a port number too.
  if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) return std::stoll(name);
  return std::nullopt;
}

struct PodEndpoint {
  const Json* pod;
  Json ports;  // EndpointSlice ports for this pod
  bool ready, serving, terminating;
};

uint32_t Ipv4(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return 0;
  return ntohl(a.s_addr);
}

}  // namespace

class Controllers {
 public:
  explicit Controllers(ApiServer& s) : s_(s), store_(s.store()) {}

  void ReconcileServices(std::set<std::string>& managed_endpoints);
  void ReconcileNodes(std::map<std::string, std::pair<std::string, std::chrono::steady_clock::time_point>>& seen,
                      std::chrono::seconds grace, const std::string& cluster_cidr, int mask);
  void ReconcileNamespaces();
  void Schedule();
  void EvictForTaints();
  void CollectOrphans(std::map<std::string, std::chrono::steady_clock::time_point>& missing);

 private:
  void ReconcileService(const Json& svc, std::set<std::string>& managed_endpoints);
  void Write(const std::string& resource, const Json& old, Json updated);

  ApiServer& s_;
  Store& store_;
};

void Controllers::Write(const std::string& resource, const Json& old, Json updated) {
  const ResourceDef* def = FindByStorage(resource);
  updated = schema::Normalize(updated, def->go_type);
  Json a = updated, b = old;
  a["metadata"].erase("resourceVersion");
  b["metadata"].erase("resourceVersion");
  if (a == b) return;
  store_.Update(resource, updated);
}

void Controllers::ReconcileService(const Json& svc, std::set<std::string>& managed_endpoints) {
  std::string ns = Meta(svc, "namespace");
  std::string name = Meta(svc, "name");
  const Json& spec = svc["spec"];
  bool headless = spec.value("clusterIP", "") == "None";
  bool publish_not_ready = spec.value("publishNotReadyAddresses", false);
  std::map<std::string, std::string> selector;
  const Json sel = spec.value("selector", Json::object());
  for (const auto& [k, v] : sel.items()) {
    if (v.is_string()) selector[k] = v.get<std::string>();
  }

  std::vector<PodEndpoint> endpoints;
  std::vector<const Json*> pods = store_.List("pods", ns);
  std::sort(pods.begin(), pods.end(),
            [](const Json* a, const Json* b) { return Meta(*a, "name") < Meta(*b, "name"); });
  for (const Json* pod : pods) {
    auto labels = LabelsOf(*pod);
    bool match = true;
    for (const auto& [k, v] : selector) {
      auto it = labels.find(k);
      match = match && it != labels.end() && it->second == v;
    }
    if (!match) continue;
    const Json& st = pod->value("status", Json::object());
    if (st.value("podIP", "").empty()) continue;
    std::string phase = st.value("phase", "");
    if (phase == "Succeeded" || phase == "Failed") continue;
    PodEndpoint e{pod, Json::array(), false, false, false};
    e.terminating = (*pod)["metadata"].contains("deletionTimestamp");
    bool ready = PodReady(*pod);
    e.serving = ready || publish_not_ready;
    e.ready = (ready && !e.terminating) || publish_not_ready;
    for (const auto& sp : spec.value("ports", Json::array())) {
      auto port = ResolvePort(sp, *pod);
      if (!port) continue;
      Json p = Json::object();
      p["name"] = sp.value("name", "");
      p["protocol"] = sp.value("protocol", "TCP");
      p["port"] = *port;
      if (sp.contains("appProtocol")) p["appProtocol"] = sp["appProtocol"];
      e.ports.push_back(p);
    }
    endpoints.push_back(std::move(e));
  }

  // --- EndpointSlices: one per distinct port mapping.
  std::map<std::string, std::pair<Json, Json>> groups;  // ports key -> (ports, endpoints)
  for (const auto& e : endpoints) {
    std::string key = Dump(e.ports);
    auto& g = groups[key];
    g.first = e.ports;
    if (!g.second.is_array()) g.second = Json::array();
    Json ep = {{"addresses", Json::array({(*e.pod)["status"]["podIP"]})},
               {"conditions",
                {{"ready", e.ready}, {"serving", e.serving}, {"terminating", e.terminating}}},
               {"targetRef",
                {{"kind", "Pod"},
                 {"namespace", ns},
                 {"name", Meta(*e.pod, "name")},
                 {"uid", Meta(*e.pod, "uid")}}}};
    std::string node = (*e.pod)["spec"].value("nodeName", "");
    if (!node.empty()) ep["nodeName"] = node;
    g.second.push_back(ep);
  }
  bool all_terminating = !endpoints.empty();
  for (const auto& e : endpoints) all_terminating = all_terminating && e.terminating;

  std::vector<const Json*> existing;
  for (const Json* slice : store_.List("endpointslices", ns)) {
    auto labels = LabelsOf(*slice);
    if (labels[kServiceName] == name && labels[kManagedBy] == kControllerName)
      existing.push_back(slice);
  }
  Json labels = svc["metadata"].value("labels", Json::object());
  labels[kManagedBy] = kControllerName;
  labels[kServiceName] = name;
  if (headless) labels["service.kubernetes.io/headless"] = "";
  Json owner = Json::array({{{"apiVersion", "v1"},
                             {"kind", "Service"},
                             {"name", name},
                             {"uid", Meta(svc, "uid")},
                             {"controller", true},
                             {"blockOwnerDeletion", true}}});
  std::vector<std::pair<Json, Json>> desired;
  for (auto& [key, g] : groups) desired.push_back(g);
  if (desired.empty()) desired.push_back({Json(nullptr), Json(nullptr)});

  std::vector<bool> used(existing.size(), false);
  for (const auto& [ports, eps] : desired) {
    // Reuse a slice with the same ports, else any unused one.
    int pick = -1;
    for (size_t i = 0; i < existing.size() && pick < 0; ++i) {
      if (!used[i] && (*existing[i]).value("ports", Json(nullptr)) == ports) pick = static_cast<int>(i);
    }
    for (size_t i = 0; i < existing.size() && pick < 0; ++i) {
      if (!used[i]) pick = static_cast<int>(i);
    }
    if (pick >= 0) {
      used[static_cast<size_t>(pick)] = true;
      const Json& old = *existing[static_cast<size_t>(pick)];
      Json updated = old;
      bool content_changed = old.value("endpoints", Json(nullptr)) != eps ||
                             old.value("ports", Json(nullptr)) != ports;
      updated["endpoints"] = eps;
      updated["ports"] = ports;
      Json new_labels = labels;
      updated["metadata"]["labels"] = new_labels;
      updated["metadata"]["ownerReferences"] = owner;
      if (content_changed) {
        updated["metadata"]["generation"] = old["metadata"].value("generation", 1) + 1;
        if (all_terminating) updated["metadata"]["annotations"].erase(kTriggerTime);
        else updated["metadata"]["annotations"][kTriggerTime] = NowRfc3339();
        if (updated["metadata"]["annotations"].empty()) updated["metadata"].erase("annotations");
      }
      Write("endpointslices", old, updated);
    } else {
      std::string gen = name + "-";
      std::string slice_name;
      do {
        slice_name = gen + RandomSuffix(5);
      } while (store_.Get("endpointslices", ns, slice_name));
      Json slice = {{"kind", "EndpointSlice"},
                    {"apiVersion", "discovery.k8s.io/v1"},
                    {"metadata",
                     {{"name", slice_name},
                      {"generateName", gen},
                      {"namespace", ns},
                      {"uid", NewUid()},
                      {"generation", 1},
                      {"creationTimestamp", NowRfc3339()},
                      {"labels", labels},
                      {"annotations", {{kTriggerTime, NowRfc3339()}}},
                      {"ownerReferences", owner}}},
                    {"addressType", "IPv4"},
                    {"endpoints", eps},
                    {"ports", ports}};
      store_.Create("endpointslices", schema::Normalize(slice, "EndpointSlice"));
    }
  }
  for (size_t i = 0; i < existing.size(); ++i) {
    if (!used[i]) store_.Delete("endpointslices", ns, Meta(*existing[i], "name"));
  }

  // --- Endpoints (legacy): ready pods in addresses, others in notReadyAddresses.
  std::map<std::string, Json> subsets;  // ports key -> subset
  for (const auto& e : endpoints) {
    if (e.terminating && !publish_not_ready) continue;
    Json ports = Json::array();
    for (const auto& p : e.ports)
      ports.push_back({{"name", p["name"]}, {"port", p["port"]}, {"protocol", p["protocol"]}});
    std::string key = Dump(ports);
    Json& subset = subsets[key];
    if (subset.is_null()) subset = Json::object();
    Json addr = {{"ip", (*e.pod)["status"]["podIP"]}};
    std::string node = (*e.pod)["spec"].value("nodeName", "");
    if (!node.empty()) addr["nodeName"] = node;
    addr["targetRef"] = {{"kind", "Pod"},
                         {"namespace", ns},
                         {"name", Meta(*e.pod, "name")},
                         {"uid", Meta(*e.pod, "uid")}};
    subset[e.ready ? "addresses" : "notReadyAddresses"].push_back(addr);
    subset["ports"] = ports;
  }
  Json subset_list = Json::array();
  for (auto& [k, s] : subsets) {
    for (const char* list : {"addresses", "notReadyAddresses"}) {
      if (!s.contains(list)) continue;
      std::sort(s[list].begin(), s[list].end(), [](const Json& a, const Json& b) {
        return Ipv4(a.value("ip", "")) < Ipv4(b.value("ip", ""));
      });
    }
    Json ordered = Json::object();
    for (const char* f : {"addresses", "notReadyAddresses", "ports"}) {
      if (s.contains(f)) ordered[f] = s[f];
    }
    subset_list.push_back(ordered);
  }
  Json ep_labels = svc["metadata"].value("labels", Json::object());
  if (headless) ep_labels["service.kubernetes.io/headless"] = "";
  const Json* old_ep = store_.Get("endpoints", ns, name);
  managed_endpoints.insert(ns + "/" + name);
  if (old_ep) {
    Json updated = *old_ep;
    bool changed = old_ep->value("subsets", Json::array()) != subset_list;
    if (subset_list.empty()) updated.erase("subsets");
    else updated["subsets"] = subset_list;
    if (ep_labels.empty()) updated["metadata"].erase("labels");
    else updated["metadata"]["labels"] = ep_labels;
    if (changed) updated["metadata"]["annotations"][kTriggerTime] = NowRfc3339();
    Write("endpoints", *old_ep, updated);
  } else {
    Json ep = {{"kind", "Endpoints"},
               {"apiVersion", "v1"},
               {"metadata",
                {{"name", name},
                 {"namespace", ns},
                 {"uid", NewUid()},
                 {"creationTimestamp", NowRfc3339()}}}};
    if (!ep_labels.empty()) ep["metadata"]["labels"] = ep_labels;
    ep["metadata"]["annotations"] = {{kTriggerTime, NowRfc3339()}};
    if (!subset_list.empty()) ep["subsets"] = subset_list;
    store_.Create("endpoints", schema::Normalize(ep, "Endpoints"));
  }
}

void Controllers::ReconcileServices(std::set<std::string>& managed_endpoints) {
  std::set<std::string> live;  // ns/name of services with selectors
  std::vector<Json> services;
  for (const Json* svc : store_.List("services", "")) services.push_back(*svc);
  for (const auto& svc : services) {
    const Json& spec = svc["spec"];
    if (spec.value("type", "") == "ExternalName") continue;
    if (!spec.contains("selector") || spec["selector"].empty()) continue;
    live.insert(Meta(svc, "namespace") + "/" + Meta(svc, "name"));
    ReconcileService(svc, managed_endpoints);
  }
  std::vector<std::pair<std::string, std::string>> stale;
  for (const Json* slice : store_.List("endpointslices", "")) {
    auto labels = LabelsOf(*slice);
    if (labels[kManagedBy] != kControllerName) continue;
    if (!live.count(Meta(*slice, "namespace") + "/" + labels[kServiceName]))
      stale.emplace_back(Meta(*slice, "namespace"), Meta(*slice, "name"));
  }
  for (const auto& [ns, n] : stale) store_.Delete("endpointslices", ns, n);
  for (auto it = managed_endpoints.begin(); it != managed_endpoints.end();) {
    if (live.count(*it)) {
      ++it;
      continue;
    }
    size_t slash = it->find('/');
    store_.Delete("endpoints", it->substr(0, slash), it->substr(slash + 1));
    it = managed_endpoints.erase(it);
  }
}

void Controllers::ReconcileNodes(
    std::map<std::string, std::pair<std::string, std::chrono::steady_clock::time_point>>& seen,
    std::chrono::seconds grace, const std::string& cluster_cidr, int mask) {
  auto now = std::chrono::steady_clock::now();
  std::vector<Json> nodes;
  for (const Json* n : store_.List("nodes", "")) nodes.push_back(*n);
  // Pod CIDRs in use.
  std::set<std::string> used;
  for (const auto& n : nodes) used.insert(n["spec"].value("podCIDR", ""));
  uint32_t base = 0;
  int bits = 16;
  {
    size_t slash = cluster_cidr.find('/');
    if (slash != std::string::npos) {
      base = Ipv4(cluster_cidr.substr(0, slash));
      bits = std::stoi(cluster_cidr.substr(slash + 1));
    }
  }
  std::set<std::string> names;
  for (const auto& node : nodes) {
    std::string name = Meta(node, "name");
    names.insert(name);
    Json updated = node;
    Json& spec = updated["spec"];
    if (spec.value("podCIDR", "").empty() && base != 0 && mask >= bits && mask <= 30) {
      uint32_t count = 1u << (mask - bits);
      for (uint32_t i = 0; i < count; ++i) {
        in_addr a{};
        a.s_addr = htonl(base + (i << (32 - mask)));
        char buf[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &a, buf, sizeof(buf));
        std::string cidr = std::string(buf) + "/" + std::to_string(mask);
        if (used.count(cidr)) continue;
        used.insert(cidr);
        spec["podCIDR"] = cidr;
        spec["podCIDRs"] = Json::array({cidr});
        break;
      }
    }
    updated["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] = "0";

    // Heartbeats: the Ready condition's lastHeartbeatTime and the node Lease's renewTime.
    std::string beat;
    Json* ready = nullptr;
    if (updated.contains("status") && updated["status"].contains("conditions")) {
      for (auto& c : updated["status"]["conditions"]) {
        if (c.value("type", "") == "Ready") {
          ready = &c;
          beat += c.value("lastHeartbeatTime", "");
        }
      }
    }
    if (const Json* lease = store_.Get("leases", "kube-node-lease", name))
      beat += "|" + (*lease)["spec"].value("renewTime", "");
    auto it = seen.find(name);
    if (it == seen.end() || it->second.first != beat) {
      seen[name] = {beat, now};
      it = seen.find(name);
    }
    bool stale = now - it->second.second > grace;
    std::string ready_status = ready ? ready->value("status", "Unknown") : "";
    if (stale && updated.contains("status")) {
      bool never = ready == nullptr;
      Json& conds = updated["status"]["conditions"];
      if (!conds.is_array()) conds = Json::array();
      if (never) {
        for (const char* t : {"MemoryPressure", "DiskPressure", "PIDPressure", "Ready"})
          conds.push_back({{"type", t}, {"status", "Unknown"}});
      }
      for (auto& c : conds) {
        std::string t = c.value("type", "");
        if (t != "Ready" && t != "MemoryPressure" && t != "DiskPressure" && t != "PIDPressure")
          continue;
        if (c.value("status", "") == "Unknown") continue;
        c["status"] = "Unknown";
        c["reason"] = never ? "NodeStatusNeverUpdated" : "NodeStatusUnknown";
        c["message"] = never ? "Kubelet never posted node status."
                             : "Kubelet stopped posting node status.";
        c["lastTransitionTime"] = NowRfc3339();
        if (!c.contains("lastHeartbeatTime") || c["lastHeartbeatTime"].is_null())
          c["lastHeartbeatTime"] = NowRfc3339();
      }
      ready_status = "Unknown";
    }
    // Taints from the Ready condition (TaintNodesByCondition / NoExecuteTaintManager).
    if (!ready_status.empty()) {
      Json taints = spec.value("taints", Json::array());
      auto has = [&](const std::string& key, const std::string& effect) {
        for (const auto& t : taints)
          if (t.value("key", "") == key && t.value("effect", "") == effect) return true;
        return false;
      };
      auto remove = [&](const std::string& key) {
        Json kept = Json::array();
        for (const auto& t : taints)
          if (t.value("key", "") != key) kept.push_back(t);
        taints = kept;
      };
      auto add = [&](const std::string& key, const std::string& effect) {
        if (has(key, effect)) return;
        Json t = {{"key", key}, {"effect", effect}};
        if (effect == "NoExecute") t["timeAdded"] = NowRfc3339();
        taints.push_back(t);
      };
      if (ready_status == "True") {
        remove("node.kubernetes.io/not-ready");
        remove("node.kubernetes.io/unreachable");
      } else if (ready_status == "False") {
        remove("node.kubernetes.io/unreachable");
        add("node.kubernetes.io/not-ready", "NoSchedule");
        add("node.kubernetes.io/not-ready", "NoExecute");
      } else {
        remove("node.kubernetes.io/not-ready");
        add("node.kubernetes.io/unreachable", "NoSchedule");
        add("node.kubernetes.io/unreachable", "NoExecute");
      }
      if (taints.empty()) spec.erase("taints");
      else spec["taints"] = taints;
    }
    Write("nodes", node, updated);
  }
  for (auto it = seen.begin(); it != seen.end();) {
    if (names.count(it->first)) ++it;
    else it = seen.erase(it);
  }
}

void Controllers::ReconcileNamespaces() {
  std::vector<Json> terminating;
  for (const Json* ns : store_.List("namespaces", "")) {
    if ((*ns)["metadata"].contains("deletionTimestamp")) terminating.push_back(*ns);
  }
  for (const auto& ns_obj : terminating) {
    std::string ns = Meta(ns_obj, "name");
    bool pods_left = false;
    std::vector<Json> pods;
    for (const Json* p : store_.List("pods", ns)) pods.push_back(*p);
    for (auto& pod : pods) {
      std::string node = pod["spec"].value("nodeName", "");
      std::string phase = pod.contains("status") ? pod["status"].value("phase", "") : "";
      if (node.empty() || phase == "Succeeded" || phase == "Failed" ||
          !store_.Get("nodes", "", node)) {
        store_.Delete("pods", ns, Meta(pod, "name"));
        continue;
      }
      pods_left = true;
      if (!pod["metadata"].contains("deletionTimestamp")) {
        int64_t grace = pod["spec"].value("terminationGracePeriodSeconds", 30);
        Json updated = pod;
        updated["metadata"]["deletionTimestamp"] =
            Rfc3339(std::chrono::system_clock::now() + std::chrono::seconds(grace));
        updated["metadata"]["deletionGracePeriodSeconds"] = grace;
        Write("pods", pod, updated);
      }
    }
    for (const auto& def : Resources()) {
      if (!def.namespaced || def.storage.empty() || def.storage == "pods") continue;
      std::vector<std::string> victims;
      for (const Json* o : store_.List(def.storage, ns)) victims.push_back(Meta(*o, "name"));
      for (const auto& v : victims) store_.Delete(def.storage, ns, v);
    }
    if (!pods_left) store_.Delete("namespaces", "", ns);
  }
}


namespace {

bool Tolerates(const Json& tolerations, const Json& taint) {
  for (const auto& t : tolerations) {
    std::string op = t.value("operator", "Equal");
    std::string key = t.value("key", "");
    bool key_ok = key.empty() ? op == "Exists" : key == taint.value("key", "");
    bool value_ok = op == "Exists" || t.value("value", "") == taint.value("value", "");
    std::string effect = t.value("effect", "");
    bool effect_ok = effect.empty() || effect == taint.value("effect", "");
    if (key_ok && value_ok && effect_ok) return true;
  }
  return false;
}

const Json* FindToleration(const Json& tolerations, const Json& taint) {
  for (const auto& t : tolerations) {
    if (Tolerates(Json::array({t}), taint)) return &t;
  }
  return nullptr;
}

bool NodeReady(const Json& node) {
  if (!node.contains("status")) return false;
  for (const auto& c : node["status"].value("conditions", Json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

Json WithCondition(Json status, const Json& cond) {
  Json conds = status.value("conditions", Json::array());
  bool found = false;
  for (auto& c : conds) {
    if (c.value("type", "") == cond["type"]) {
      c = cond;
      found = true;
    }
  }
  if (!found) conds.push_back(cond);
  status["conditions"] = conds;
  return status;
}

}  // namespace

// A minimal default-scheduler: binds pending pods to a Ready, schedulable node whose taints
// they tolerate and whose labels match their nodeSelector (fewest pods first).
void Controllers::Schedule() {
  std::vector<Json> pending;
  for (const Json* p : store_.List("pods", "")) {
    const Json& spec = (*p)["spec"];
    if (!spec.value("nodeName", "").empty()) continue;
    if (spec.value("schedulerName", "default-scheduler") != "default-scheduler") continue;
    if ((*p)["metadata"].contains("deletionTimestamp")) continue;
    if (spec.contains("schedulingGates") && !spec["schedulingGates"].empty()) continue;
    pending.push_back(*p);
  }
  if (pending.empty()) return;
  std::map<std::string, int> load;
  for (const Json* p : store_.List("pods", "")) load[(*p)["spec"].value("nodeName", "")]++;
  std::vector<Json> nodes;
  for (const Json* n : store_.List("nodes", "")) nodes.push_back(*n);
  for (auto& pod : pending) {
    const Json& spec = pod["spec"];
    const Json tolerations = spec.value("tolerations", Json::array());
    const Json selector = spec.value("nodeSelector", Json::object());
    const Json* best = nullptr;
    int untolerated = 0, not_ready = 0, mismatch = 0;
    for (const auto& n : nodes) {
      if (!NodeReady(n) || n["spec"].value("unschedulable", false)) {
        ++not_ready;
        continue;
      }
      bool ok = true;
      for (const auto& t : n["spec"].value("taints", Json::array())) {
        std::string effect = t.value("effect", "");
        if ((effect == "NoSchedule" || effect == "NoExecute") && !Tolerates(tolerations, t)) ok = false;
      }
      if (!ok) {
        ++untolerated;
        continue;
      }
      auto labels = LabelsOf(n);
      for (const auto& [k, v] : selector.items()) {
        if (!v.is_string() || labels[k] != v.get<std::string>()) ok = false;
      }
      if (!ok) {
        ++mismatch;
        continue;
      }
      std::string name = Meta(n, "name");
      if (!best || load[name] < load[Meta(*best, "name")]) best = &n;
    }
    Json updated = pod;
    if (best) {
      std::string node = Meta(*best, "name");
      updated["spec"]["nodeName"] = node;
      load[node]++;
      updated["status"] = WithCondition(updated.value("status", Json::object()),
                                        {{"type", "PodScheduled"}, {"status", "True"},
                                         {"lastProbeTime", nullptr},
                                         {"lastTransitionTime", NowRfc3339()}});
    } else {
      std::string msg = "0/" + std::to_string(nodes.size()) + " nodes are available";
      std::vector<std::string> why;
      if (not_ready) why.push_back(std::to_string(not_ready) + " node(s) were not ready");
      if (untolerated) why.push_back(std::to_string(untolerated) + " node(s) had untolerated taint");
      if (mismatch) why.push_back(std::to_string(mismatch) + " node(s) didn't match Pod's node affinity/selector");
      for (size_t i = 0; i < why.size(); ++i) msg += (i == 0 ? ": " : ", ") + why[i];
      msg += ".";
      Json status = updated.value("status", Json::object());
      bool reported = false;
      for (const auto& c : status.value("conditions", Json::array()))
        reported = reported || (c.value("type", "") == "PodScheduled" && c.value("message", "") == msg);
      if (reported) continue;
      updated["status"] = WithCondition(status, {{"type", "PodScheduled"}, {"status", "False"},
                                                 {"lastProbeTime", nullptr},
                                                 {"lastTransitionTime", NowRfc3339()},
                                                 {"reason", "Unschedulable"}, {"message", msg}});
    }
    Write("pods", pod, updated);
  }
}

// NoExecute taint manager: pods that do not tolerate a NoExecute taint of their node (or whose
// tolerationSeconds ran out since the taint's timeAdded) are deleted gracefully.
void Controllers::EvictForTaints() {
  auto now = std::chrono::system_clock::now();
  std::map<std::string, Json> taints;
  for (const Json* n : store_.List("nodes", "")) {
    Json no_exec = Json::array();
    for (const auto& t : (*n)["spec"].value("taints", Json::array())) {
      if (t.value("effect", "") == "NoExecute") no_exec.push_back(t);
    }
    if (!no_exec.empty()) taints[Meta(*n, "name")] = no_exec;
  }
  if (taints.empty()) return;
  std::vector<Json> victims;
  for (const Json* p : store_.List("pods", "")) {
    auto it = taints.find((*p)["spec"].value("nodeName", ""));
    if (it == taints.end() || (*p)["metadata"].contains("deletionTimestamp")) continue;
    const Json tolerations = (*p)["spec"].value("tolerations", Json::array());
    bool evict = false;
    for (const auto& t : it->second) {
      const Json* tol = FindToleration(tolerations, t);
      if (!tol) {
        evict = true;
      } else if (tol->contains("tolerationSeconds") && (*tol)["tolerationSeconds"].is_number()) {
        auto added = base::ParseRfc3339(t.value("timeAdded", ""));
        auto limit = std::chrono::seconds((*tol)["tolerationSeconds"].get<int64_t>());
        if (added && *added + limit <= now) evict = true;
      }
    }
    if (evict) victims.push_back(*p);
  }
  for (auto& pod : victims) {
    Json updated = pod;
    updated["status"] = WithCondition(
        updated.value("status", Json::object()),
        {{"type", "DisruptionTarget"}, {"status", "True"}, {"lastProbeTime", nullptr},
         {"lastTransitionTime", NowRfc3339()}, {"reason", "DeletionByTaintManager"},
         {"message", "Taint manager: deleting due to NoExecute taint"}});
    int64_t grace = pod["spec"].value("terminationGracePeriodSeconds", 30);
    updated["metadata"]["deletionTimestamp"] = Rfc3339(now + std::chrono::seconds(grace));
    updated["metadata"]["deletionGracePeriodSeconds"] = grace;
    Write("pods", pod, updated);
  }
}

// Pod garbage collector: pods bound to a node that has been gone for 40 s are failed and
// removed (gcOrphaned).
void Controllers::CollectOrphans(
    std::map<std::string, std::chrono::steady_clock::time_point>& missing) {
  auto now = std::chrono::steady_clock::now();
  std::set<std::string> seen_missing;
  std::vector<Json> victims;
  for (const Json* p : store_.List("pods", "")) {
    std::string node = (*p)["spec"].value("nodeName", "");
    if (node.empty() || store_.Get("nodes", "", node)) continue;
    seen_missing.insert(node);
    auto it = missing.emplace(node, now).first;
    if (now - it->second >= std::chrono::seconds(40)) victims.push_back(*p);
  }
  for (auto it = missing.begin(); it != missing.end();) {
    if (seen_missing.count(it->first)) ++it;
    else it = missing.erase(it);
  }
  for (auto& pod : victims) {
    Json updated = pod;
    Json status = WithCondition(updated.value("status", Json::object()),
                                {{"type", "DisruptionTarget"}, {"status", "True"},
                                 {"lastProbeTime", nullptr}, {"lastTransitionTime", NowRfc3339()},
                                 {"reason", "DeletionByPodGC"},
                                 {"message", "PodGC: node no longer exists"}});
    std::string phase = status.value("phase", "");
    if (phase != "Succeeded" && phase != "Failed") status["phase"] = "Failed";
    updated["status"] = status;
    Write("pods", pod, updated);
    store_.Delete("pods", Meta(pod, "namespace"), Meta(pod, "name"));
  }
}

void ApiServer::RunControllersOnce() {
  std::lock_guard<std::mutex> state_lock(controller_state_mu_);
  auto lock = store_.Lock();
  Controllers c(*this);
  c.ReconcileNamespaces();
  c.ReconcileNodes(node_seen_, config_.node_monitor_grace, config_.cluster_cidr,
                   config_.node_cidr_mask);
  c.Schedule();
  c.EvictForTaints();
  c.CollectOrphans(orphan_nodes_);
  c.ReconcileServices(managed_endpoints_);
}

void ApiServer::StartControllers() {
  controller_thread_ = std::thread([this] { ControllerLoop(); });
}

void ApiServer::StopControllers() {
  stop_ = true;
  controller_cv_.notify_all();
  if (controller_thread_.joinable()) controller_thread_.join();
}

void ApiServer::ControllerLoop() {
  while (!stop_) {
    {
      std::unique_lock<std::mutex> lock(controller_mu_);
      controller_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_ || dirty_; });
    }
    if (stop_) break;
    // Like the real controllers, react shortly after a change rather than inside the request.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    dirty_ = false;
    try {
      RunControllersOnce();
    } catch (const std::exception& e) {
      base::log::Error("controller pass failed", {{"error", e.what()}});
    }
  }
}

}  // namespace apiserver
