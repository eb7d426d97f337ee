#include "agent/node_setters.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "base/quantity.h"
#include "base/strings.h"

namespace agent {
namespace {

// Bodies keep the order of Go structs (ordered_json); patches are built in nlohmann::json, whose
// std::map keys come out sorted exactly as Go marshals the map[string]interface{} of a patch.
using ojson = nlohmann::ordered_json;
using sjson = nlohmann::json;

constexpr const char* kAttachDetachAnnotation =
    "volumes.kubernetes.io/controller-managed-attach-detach";
constexpr const char* kLabelHostname = "kubernetes.io/hostname";
constexpr const char* kLabelOS = "kubernetes.io/os";
constexpr const char* kLabelArch = "kubernetes.io/arch";
constexpr const char* kLabelBetaOS = "beta.kubernetes.io/os";
constexpr const char* kLabelBetaArch = "beta.kubernetes.io/arch";

// The labels the kubelet re-asserts on an existing node (updateDefaultLabels); the cloud ones
// (zone, region, instance type) are never set without a cloud provider but are listed so that
// a --node-labels value for them is reconciled the same way.
const std::vector<std::string> kDefaultLabels = {
    kLabelHostname,
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    kLabelOS,
    kLabelArch,
    "node.kubernetes.io/windows-build",
    kLabelBetaOS,
    kLabelBetaArch,
};

// Go struct field order of v1.NodeStatus and v1.NodeSystemInfo.
const std::vector<std::string> kStatusOrder = {
    "capacity",        "allocatable",     "phase",   "conditions",   "addresses",
    "daemonEndpoints", "nodeInfo",        "images",  "volumesInUse", "volumesAttached",
    "config",          "runtimeHandlers", "features"};
const std::vector<std::string> kNodeInfoOrder = {"machineID",
                                                 "systemUUID",
                                                 "bootID",
                                                 "kernelVersion",
                                                 "osImage",
                                                 "containerRuntimeVersion",
                                                 "kubeletVersion",
                                                 "kubeProxyVersion",
                                                 "operatingSystem",
                                                 "architecture",
                                                 "swap"};

sjson ToSorted(const ojson& o) { return sjson::parse(o.dump()); }

std::string Str(const ojson& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : "";
}

ojson& Child(ojson& parent, const char* key, ojson::value_t type) {
  ojson& c = parent[key];
  if (c.type() != type) c = ojson(type);
  return c;
}

// Returns `obj` with the keys listed in `order` first (in that order), then any others.
ojson Reordered(const ojson& obj, const std::vector<std::string>& order) {
  ojson out = ojson::object();
  for (const auto& k : order) {
    auto it = obj.find(k);
    if (it != obj.end()) out[k] = *it;
  }
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (!out.contains(it.key())) out[it.key()] = it.value();
  }
  return out;
}

// An object with keys sorted, as Go marshals map[string]string (labels, resource lists).
ojson SortedObject(const ojson& obj) {
  std::map<std::string, ojson> m;
  for (auto it = obj.begin(); it != obj.end(); ++it) m[it.key()] = it.value();
  ojson out = ojson::object();
  for (auto& [k, v] : m) out[k] = v;
  return out;
}

ojson MakeCondition(const std::string& type, const std::string& status,
                    const std::string& heartbeat, const std::string& transition,
                    const std::string& reason, const std::string& message) {
  ojson c = ojson::object();
  c["type"] = type;
  c["status"] = status;
  if (!heartbeat.empty()) c["lastHeartbeatTime"] = heartbeat;
  if (!transition.empty()) c["lastTransitionTime"] = transition;
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  return c;
}

ojson* FindCondition(ojson& conditions, const std::string& type) {
  for (auto& c : conditions) {
    if (c.is_object() && Str(c, "type") == type) return &c;
  }
  return nullptr;
}

std::string StatusEventMessage(const std::string& node, const std::string& reason) {
  return "Node " + node + " status is now: " + reason;
}

// --- setters (K:pkg/kubelet/nodestatus/setters.go), in the kubelet's order ---

void SetAddresses(ojson& status, const NodeStatusConfig& cfg) {
  ojson addrs = ojson::array();
  for (const auto& ip : cfg.node_ips) {
    addrs.push_back(ojson{{"type", "InternalIP"}, {"address", ip}});
  }
  std::string host = cfg.hostname.empty() ? cfg.node_name : cfg.hostname;
  addrs.push_back(ojson{{"type", "Hostname"}, {"address", host}});
  status["addresses"] = addrs;
}

void SetMachineInfo(ojson& status, const NodeStatusConfig& cfg, const MachineInfo& m) {
  ojson cap = status.contains("capacity") && status["capacity"].is_object() ? status["capacity"]
                                                                            : ojson::object();
  cap["cpu"] = FormatDecimalSIMilli(m.cpu_cores * 1000);
  cap["memory"] = FormatBinarySI(m.memory_bytes);
  cap["pods"] = FormatDecimalSIMilli(cfg.max_pods * 1000);
  cap["ephemeral-storage"] = FormatBinarySI(m.ephemeral_storage_bytes);
  int64_t hugepages_total = 0;
  for (const auto& [name, bytes] : m.hugepages) {
    cap[name] = FormatBinarySI(bytes);
    hugepages_total += bytes;
  }
  status["capacity"] = SortedObject(cap);

  // allocatable = capacity - system/kube reserved - hard eviction threshold, clamped at 0.
  const auto& sr = cfg.system_reserved;
  const auto& kr = cfg.kube_reserved;
  auto clamp = [](int64_t v) { return v < 0 ? int64_t{0} : v; };
  int64_t nodefs_threshold =
      static_cast<int64_t>(static_cast<double>(m.ephemeral_storage_bytes) *
                           static_cast<double>(cfg.eviction_hard_nodefs_fraction));
  ojson alloc = ojson::object();
  for (auto it = status["capacity"].begin(); it != status["capacity"].end(); ++it) {
    const std::string& k = it.key();
    if (k == "cpu") {
      alloc[k] = FormatDecimalSIMilli(clamp(m.cpu_cores * 1000 - sr.cpu_milli - kr.cpu_milli));
    } else if (k == "memory") {
      alloc[k] = FormatBinarySI(clamp(m.memory_bytes - sr.memory_bytes - kr.memory_bytes -
                                      cfg.eviction_hard_memory_bytes - hugepages_total));
    } else if (k == "ephemeral-storage") {
      alloc[k] = FormatBinarySI(clamp(m.ephemeral_storage_bytes - sr.ephemeral_storage_bytes -
                                      kr.ephemeral_storage_bytes - nodefs_threshold));
    } else {
      // pods, hugepages and extended resources an operator patched in: allocatable = capacity.
      alloc[k] = it.value();
    }
  }
  status["allocatable"] = alloc;
}

void SetNodeInfo(ojson& status, const NodeStatusConfig& cfg, const std::optional<MachineInfo>& m,
                 std::vector<NodeEvent>* events) {
  ojson& ni = Child(status, "nodeInfo", ojson::value_t::object);
  if (m) {
    std::string old_boot = Str(ni, "bootID");
    if (!old_boot.empty() && old_boot != m->boot_id) {
      events->push_back({"Warning", "Rebooted",
                         "Node " + cfg.node_name + " has been rebooted, boot id: " + m->boot_id});
    }
    ni["machineID"] = m->machine_id;
    ni["systemUUID"] = m->system_uuid;
    ni["bootID"] = m->boot_id;
    ni["kernelVersion"] = m->kernel_version;
    ni["osImage"] = m->os_image;
  }
  ni["containerRuntimeVersion"] = ContainerRuntimeVersion();
  ni["kubeletVersion"] = KubeletVersion();
  // Deprecated (KEP-4004) but still printed by older tools; cubelet *is* the node's service
  // proxy, so its version is the honest value (sample 10 shows the kubelet's).
  ni["kubeProxyVersion"] = KubeletVersion();
  ni["operatingSystem"] = "linux";
  ni["architecture"] = BinaryArch();
  // Required strings of NodeSystemInfo are always present, "" when unknown.
  for (const char* k : {"machineID", "systemUUID", "bootID", "kernelVersion", "osImage"}) {
    if (!ni.contains(k)) ni[k] = "";
  }
  status["nodeInfo"] = Reordered(ni, kNodeInfoOrder);
}

void SetDaemonEndpoints(ojson& status, const NodeStatusConfig& cfg) {
  status["daemonEndpoints"] = ojson{{"kubeletEndpoint", ojson{{"Port", cfg.kubelet_port}}}};
}

void SetImages(ojson& status, const NodeStatusConfig& cfg, const std::vector<cri::Image>& images) {
  std::vector<const cri::Image*> sorted;
  for (const auto& img : images) sorted.push_back(&img);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const cri::Image* a, const cri::Image* b) { return a->size > b->size; });
  ojson list = ojson::array();
  for (const cri::Image* img : sorted) {
    if (list.size() >= cfg.max_images) break;
    std::vector<std::string> names = img->repo_digests;
    names.insert(names.end(), img->repo_tags.begin(), img->repo_tags.end());
    if (names.size() > 5) names.resize(5);  // MaxNamesPerImageInNodeStatus
    if (names.empty()) continue;
    list.push_back(ojson{{"names", names}, {"sizeBytes", static_cast<int64_t>(img->size)}});
  }
  if (list.empty()) {
    status.erase("images");
  } else {
    status["images"] = list;
  }
}

struct PressureKind {
  const char* type;
  const char* true_reason;
  const char* true_message;
  const char* true_event;
  const char* false_reason;
  const char* false_message;
  const char* false_event;
};

const PressureKind kMemoryPressure = {"MemoryPressure",
                                      "KubeletHasInsufficientMemory",
                                      "kubelet has insufficient memory available",
                                      "NodeHasInsufficientMemory",
                                      "KubeletHasSufficientMemory",
                                      "kubelet has sufficient memory available",
                                      "NodeHasSufficientMemory"};
const PressureKind kDiskPressure = {
    "DiskPressure",         "KubeletHasDiskPressure",   "kubelet has disk pressure",
    "NodeHasDiskPressure",  "KubeletHasNoDiskPressure", "kubelet has no disk pressure",
    "NodeHasNoDiskPressure"};
const PressureKind kPIDPressure = {"PIDPressure",
                                   "KubeletHasInsufficientPID",
                                   "kubelet has insufficient PID available",
                                   "NodeHasInsufficientPID",
                                   "KubeletHasSufficientPID",
                                   "kubelet has sufficient PID available",
                                   "NodeHasSufficientPID"};

void SetPressureCondition(ojson& status, const PressureKind& k, bool pressure,
                          const std::string& now, const std::string& node_name,
                          std::vector<NodeEvent>* events) {
  ojson& conds = Child(status, "conditions", ojson::value_t::array);
  ojson* cur = FindCondition(conds, k.type);
  // A new condition starts as Unknown and is decided right away (so it always transitions).
  std::string st = cur ? Str(*cur, "status") : "Unknown";
  std::string reason = cur ? Str(*cur, "reason") : "";
  std::string message = cur ? Str(*cur, "message") : "";
  std::string transition = cur ? Str(*cur, "lastTransitionTime") : "";
  const char* event = nullptr;
  if (pressure) {
    if (st != "True") {
      st = "True", reason = k.true_reason, message = k.true_message, transition = now;
      event = k.true_event;
    }
  } else if (st != "False") {
    st = "False", reason = k.false_reason, message = k.false_message, transition = now;
    event = k.false_event;
  }
  if (event) events->push_back({"Normal", event, StatusEventMessage(node_name, event)});
  ojson c = MakeCondition(k.type, st, now, transition, reason, message);
  if (cur) {
    *cur = c;
  } else {
    conds.push_back(c);
  }
}

void SetReadyCondition(ojson& status, const std::vector<std::string>& readiness_errors,
                       const std::string& now, const std::string& node_name,
                       std::vector<NodeEvent>* events) {
  std::vector<std::string> errs = readiness_errors;
  std::vector<std::string> missing;
  const ojson cap = status.contains("capacity") ? status["capacity"] : ojson::object();
  for (const char* r : {"cpu", "memory", "pods", "ephemeral-storage"}) {
    if (!cap.is_object() || !cap.contains(r)) missing.push_back(r);
  }
  if (!missing.empty()) {
    errs.push_back("missing node capacity for resources: " + base::Join(missing, ", "));
  }
  std::string st = "True", reason = "KubeletReady", message = "kubelet is posting ready status";
  if (!errs.empty()) {
    st = "False", reason = "KubeletNotReady", message = AggregateErrors(errs);
  }
  ojson& conds = Child(status, "conditions", ojson::value_t::array);
  ojson* cur = FindCondition(conds, "Ready");
  std::string transition = now;
  if (cur) {
    if (Str(*cur, "status") == st) {
      transition = Str(*cur, "lastTransitionTime");
    } else {
      const char* event = st == "True" ? "NodeReady" : "NodeNotReady";
      events->push_back({"Normal", event, StatusEventMessage(node_name, event)});
    }
  }
  ojson c = MakeCondition("Ready", st, now, transition, reason, message);
  if (cur) {
    *cur = c;
  } else {
    conds.push_back(c);
  }
}

void RunSetters(ojson& node, const NodeStatusConfig& cfg, const NodeObservation& obs,
                std::vector<NodeEvent>* events) {
  ojson& status = Child(node, "status", ojson::value_t::object);
  const std::string now = base::FormatRfc3339(obs.now);
  SetAddresses(status, cfg);
  if (obs.machine) SetMachineInfo(status, cfg, *obs.machine);
  SetNodeInfo(status, cfg, obs.machine, events);
  SetDaemonEndpoints(status, cfg);
  if (obs.images) SetImages(status, cfg, *obs.images);

  const ResourceUsage& u = obs.usage;
  bool memory_pressure =
      u.memory_available_bytes >= 0 && u.memory_available_bytes < cfg.eviction_hard_memory_bytes;
  bool disk_pressure = u.fs_available_bytes >= 0 && u.fs_capacity_bytes > 0 &&
                       static_cast<double>(u.fs_available_bytes) <
                           static_cast<double>(u.fs_capacity_bytes) *
                               static_cast<double>(cfg.eviction_hard_nodefs_fraction);
  bool pid_pressure =
      u.pids_used >= 0 && u.pid_max > 0 &&
      static_cast<double>(u.pids_used) > static_cast<double>(u.pid_max) * cfg.pid_pressure_fraction;
  if (obs.pressure) {
    auto has = [&](const char* c) {
      return std::find(obs.pressure->begin(), obs.pressure->end(), c) != obs.pressure->end();
    };
    memory_pressure = has("MemoryPressure");
    disk_pressure = has("DiskPressure");
    pid_pressure = has("PIDPressure");
  }
  SetPressureCondition(status, kMemoryPressure, memory_pressure, now, cfg.node_name, events);
  SetPressureCondition(status, kDiskPressure, disk_pressure, now, cfg.node_name, events);
  SetPressureCondition(status, kPIDPressure, pid_pressure, now, cfg.node_name, events);
  SetReadyCondition(status, obs.readiness_errors, now, cfg.node_name, events);
  status = Reordered(status, kStatusOrder);
}

ojson BuildInitialNode(const NodeStatusConfig& cfg) {
  std::string host = cfg.hostname.empty() ? cfg.node_name : cfg.hostname;
  std::map<std::string, std::string> labels = {
      {kLabelHostname, host},         {kLabelOS, "linux"},
      {kLabelArch, BinaryArch()},     {kLabelBetaOS, "linux"},
      {kLabelBetaArch, BinaryArch()},
  };
  for (const auto& [k, v] : cfg.node_labels) labels[k] = v;

  ojson node = ojson::object();
  node["kind"] = "Node";
  node["apiVersion"] = "v1";
  ojson meta = ojson::object();
  meta["name"] = cfg.node_name;
  meta["labels"] = ojson::object();
  for (const auto& [k, v] : labels) meta["labels"][k] = v;
  if (cfg.controller_managed_attach_detach) {
    meta["annotations"] = ojson{{kAttachDetachAnnotation, "true"}};
  }
  node["metadata"] = meta;

  ojson spec = ojson::object();
  std::vector<Taint> taints = cfg.register_with_taints;
  if (!cfg.register_schedulable) {
    spec["unschedulable"] = true;
    bool exists = std::any_of(taints.begin(), taints.end(), [](const Taint& t) {
      return t.key == "node.kubernetes.io/unschedulable" && t.effect == "NoSchedule";
    });
    if (!exists) taints.push_back({"node.kubernetes.io/unschedulable", "", "NoSchedule"});
  }
  if (!taints.empty()) {
    ojson list = ojson::array();
    for (const auto& t : taints) {
      ojson j = ojson::object();
      j["key"] = t.key;
      if (!t.value.empty()) j["value"] = t.value;
      j["effect"] = t.effect;
      list.push_back(j);
    }
    spec["taints"] = list;
  }
  node["spec"] = spec;
  node["status"] = ojson::object();
  return node;
}

// --- two-way strategic merge patch (the subset Node needs) ---

sjson DiffObjects(const sjson& a, const sjson& b);

void DiffMergeList(const std::string& key, const std::string& merge_key, const sjson& a,
                   const sjson& b, sjson* out) {
  auto find = [&](const sjson& list, const sjson& id) -> const sjson* {
    for (const auto& e : list) {
      if (e.is_object() && e.contains(merge_key) && e[merge_key] == id) return &e;
    }
    return nullptr;
  };
  sjson changes = sjson::array();
  bool order_changed = false;
  size_t pos = 0;
  for (const auto& e : b) {
    sjson id = e.is_object() && e.contains(merge_key) ? e[merge_key] : sjson();
    const sjson* old = find(a, id);
    if (!old) {
      changes.push_back(e);
    } else {
      sjson d = DiffObjects(*old, e);
      if (!d.empty()) {
        d[merge_key] = id;
        changes.push_back(d);
      }
    }
    if (pos >= a.size() || !a[pos].is_object() || !a[pos].contains(merge_key) ||
        a[pos][merge_key] != id) {
      order_changed = true;
    }
    ++pos;
  }
  for (const auto& e : a) {
    sjson id = e.is_object() && e.contains(merge_key) ? e[merge_key] : sjson();
    if (!find(b, id)) changes.push_back(sjson{{"$patch", "delete"}, {merge_key, id}});
  }
  if (changes.empty() && !order_changed) return;
  sjson order = sjson::array();
  for (const auto& e : b) {
    order.push_back(
        sjson{{merge_key, e.is_object() && e.contains(merge_key) ? e[merge_key] : sjson()}});
  }
  (*out)["$setElementOrder/" + key] = order;
  if (!changes.empty()) (*out)[key] = changes;
}

sjson DiffObjects(const sjson& a, const sjson& b) {
  sjson out = sjson::object();
  for (auto it = b.begin(); it != b.end(); ++it) {
    const std::string& k = it.key();
    const sjson& bv = it.value();
    auto ai = a.find(k);
    if (ai == a.end()) {
      out[k] = bv;
    } else if (ai->is_object() && bv.is_object()) {
      sjson d = DiffObjects(*ai, bv);
      if (!d.empty()) out[k] = d;
    } else if (ai->is_array() && bv.is_array() && k == "conditions") {
      DiffMergeList(k, "type", *ai, bv, &out);
    } else if (*ai != bv) {
      if (k == "addresses" && bv.is_array()) {
        // patchStrategy=merge on type is wrong for addresses (two InternalIPs would collapse),
        // so the kubelet replaces the list (K:pkg/util/node fixupPatchForNodeStatusAddresses).
        sjson list = bv;
        list.push_back(sjson{{"$patch", "replace"}});
        out[k] = list;
      } else {
        out[k] = bv;
      }
    }
  }
  for (auto it = a.begin(); it != a.end(); ++it) {
    if (!b.contains(it.key())) out[it.key()] = nullptr;
  }
  return out;
}

sjson NodePatch(const ojson& old_node, const ojson& new_node) {
  sjson a = ToSorted(old_node), b = ToSorted(new_node);
  sjson patch = sjson::object();
  for (const char* part : {"metadata", "status"}) {
    sjson av = a.contains(part) ? a[part] : sjson::object();
    sjson bv = b.contains(part) ? b[part] : sjson::object();
    if (!av.is_object()) av = sjson::object();
    if (!bv.is_object()) bv = sjson::object();
    sjson d = DiffObjects(av, bv);
    if (!d.empty()) patch[part] = d;
  }
  return patch;
}

// nodeStatusHasChanged: equal after dropping heartbeat times and sorting conditions by type.
bool StatusChanged(const ojson& old_status, const ojson& new_status) {
  auto normalize = [](const ojson& s) {
    sjson n = s.is_object() ? ToSorted(s) : sjson::object();
    if (n.contains("conditions") && n["conditions"].is_array()) {
      for (auto& c : n["conditions"]) {
        if (c.is_object()) c.erase("lastHeartbeatTime");
      }
      std::stable_sort(
          n["conditions"].begin(), n["conditions"].end(),
          [](const sjson& x, const sjson& y) { return x.value("type", "") < y.value("type", ""); });
    }
    return n;
  };
  return normalize(old_status) != normalize(new_status);
}

base::Result<ojson> ParseObject(std::string_view text, const char* what) {
  ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return base::Fail(std::string("parse ") + what + ": not a JSON object");
  }
  return j;
}

}  // namespace

base::Result<ResourceAmounts> ParseResourceAmounts(std::string_view flag) {
  ResourceAmounts r;
  for (const auto& item : base::Split(flag, ',', true)) {
    auto eq = item.find('=');
    if (eq == std::string::npos) return base::Fail("resource list entry '" + item + "': no '='");
    std::string key(base::Trim(std::string_view(item).substr(0, eq)));
    std::string_view val = base::Trim(std::string_view(item).substr(eq + 1));
    auto q = key == "cpu" ? base::ParseQuantityMilli(val) : base::ParseQuantity(val);
    if (!q) return tl::unexpected(q.error().Wrap("resource '" + key + "'"));
    if (*q < 0) return base::Fail("resource '" + key + "': negative quantity");
    if (key == "cpu")
      r.cpu_milli = *q;
    else if (key == "memory")
      r.memory_bytes = *q;
    else if (key == "ephemeral-storage")
      r.ephemeral_storage_bytes = *q;
    else if (key == "pid")
      r.pids = *q;
    else
      return base::Fail("resource '" + key +
                        "': only cpu, memory, ephemeral-storage and pid "
                        "can be reserved");
  }
  return r;
}

base::Result<std::vector<Taint>> ParseTaints(std::string_view flag) {
  std::vector<Taint> out;
  for (const auto& item : base::Split(flag, ',', true)) {
    auto colon = item.rfind(':');
    if (colon == std::string::npos) return base::Fail("taint '" + item + "': no ':<effect>'");
    Taint t;
    t.effect = item.substr(colon + 1);
    std::string kv = item.substr(0, colon);
    auto eq = kv.find('=');
    t.key = kv.substr(0, eq);
    if (eq != std::string::npos) t.value = kv.substr(eq + 1);
    if (t.key.empty()) return base::Fail("taint '" + item + "': empty key");
    if (t.effect != "NoSchedule" && t.effect != "PreferNoSchedule" && t.effect != "NoExecute") {
      return base::Fail("taint '" + item +
                        "': effect must be NoSchedule, PreferNoSchedule or "
                        "NoExecute");
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string FormatBinarySI(int64_t v) {
  // Quantity prints |v| < 1024 as a plain decimal, else the largest exact power-of-1024 suffix.
  if (v > -1024 && v < 1024) return std::to_string(v);
  static const char* kSuffix[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  int i = 0;
  while (i < 6 && v % 1024 == 0) {
    v /= 1024;
    ++i;
  }
  return std::to_string(v) + kSuffix[i];
}

std::string FormatDecimalSIMilli(int64_t milli) {
  if (milli == 0) return "0";
  // Strip factors of ten, then settle on an exponent that is a multiple of 3 (AsCanonicalBytes).
  int64_t amount = milli;
  int exp = -3;
  while (amount % 10 == 0) {
    amount /= 10;
    ++exp;
  }
  int r = ((exp % 3) + 3) % 3;
  if (r == 1) amount *= 10, exp -= 1;
  if (r == 2) amount *= 100, exp -= 2;
  const char* suffix = "";
  switch (exp) {
    case -3:
      suffix = "m";
      break;
    case 0:
      suffix = "";
      break;
    case 3:
      suffix = "k";
      break;
    case 6:
      suffix = "M";
      break;
    case 9:
      suffix = "G";
      break;
    case 12:
      suffix = "T";
      break;
    case 15:
      suffix = "P";
      break;
    default:
      suffix = "E";
      break;
  }
  return std::to_string(amount) + suffix;
}

namespace {
std::string DescribeCondition(const cri::RuntimeCondition* c) {
  if (!c) return "<nil>";
  return c->type + "=" + (c->status ? "true" : "false") + " reason:" + c->reason +
         " message:" + c->message;
}
const cri::RuntimeCondition* FindRuntimeCondition(const cri::RuntimeStatus& s,
                                                  std::string_view type) {
  for (const auto& c : s.conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}
}  // namespace

void RuntimeReadiness::Observe(const base::Result<cri::RuntimeStatus>& status, base::WallTime now) {
  // As the kubelet's updateRuntimeUp: a failed Status() changes nothing, so the sync time ages
  // until "container runtime is down".
  if (!status) return;
  const auto* net = FindRuntimeCondition(*status, "NetworkReady");
  network_error_ =
      net && net->status ? "" : "container runtime network not ready: " + DescribeCondition(net);
  const auto* rt = FindRuntimeCondition(*status, "RuntimeReady");
  if (!rt || !rt->status) {
    runtime_error_ = "container runtime not ready: " + DescribeCondition(rt);
    return;
  }
  runtime_error_.clear();
  last_sync_ = now;
}

std::vector<std::string> RuntimeReadiness::Errors(base::WallTime now) const {
  std::vector<std::string> errs;
  if (!last_sync_) {
    errs.push_back("container runtime status check may not have completed yet");
  } else if (!(*last_sync_ + threshold_ > now)) {
    errs.push_back("container runtime is down");
  }
  if (!runtime_error_.empty()) errs.push_back(runtime_error_);
  if (!network_error_.empty()) errs.push_back(network_error_);
  return errs;
}

std::string AggregateErrors(const std::vector<std::string>& errors) {
  std::vector<std::string> unique;
  std::set<std::string> seen;
  for (const auto& e : errors) {
    if (seen.insert(e).second) unique.push_back(e);
  }
  if (unique.empty()) return "";
  if (unique.size() == 1) return unique[0];
  return "[" + base::Join(unique, ", ") + "]";
}

std::string BuildRegistrationNode(const NodeStatusConfig& config, const NodeObservation& obs,
                                  std::vector<NodeEvent>* events) {
  std::vector<NodeEvent> ignored;
  ojson node = BuildInitialNode(config);
  RunSetters(node, config, obs, events ? events : &ignored);
  return node.dump();
}

base::Result<NodeUpdate> UpdateNode(std::string_view node_json, const NodeStatusConfig& config,
                                    const NodeObservation& obs) {
  try {
    auto parsed = ParseObject(node_json, "node");
    if (!parsed) return tl::unexpected(parsed.error());
    const ojson& old_node = *parsed;
    ojson node = old_node;
    bool labels_changed = false;
    ojson& meta = Child(node, "metadata", ojson::value_t::object);
    ojson& labels = Child(meta, "labels", ojson::value_t::object);
    for (auto [key, want] : {std::pair<const char*, std::string>{kLabelOS, "linux"},
                             std::pair<const char*, std::string>{kLabelArch, BinaryArch()}}) {
      if (Str(labels, key) != want) {
        labels[key] = want;
        labels_changed = true;
      }
    }

    NodeUpdate out;
    RunSetters(node, config, obs, &out.events);
    const ojson empty = ojson::object();
    const ojson& old_status = old_node.contains("status") ? old_node["status"] : empty;
    out.changed = labels_changed || StatusChanged(old_status, node["status"]);
    out.patch = NodePatch(old_node, node).dump();
    out.node = node.dump();
    return out;
  } catch (const nlohmann::json::exception& e) {
    return base::Fail(std::string("update node status: ") + e.what());
  }
}

base::Result<std::optional<std::string>> ReconcileExistingNode(std::string_view existing_json,
                                                               std::string_view initial_node_json) {
  try {
    auto existing = ParseObject(existing_json, "existing node");
    if (!existing) return tl::unexpected(existing.error());
    auto initial = ParseObject(initial_node_json, "initial node");
    if (!initial) return tl::unexpected(initial.error());
    ojson node = *existing;
    ojson& meta = Child(node, "metadata", ojson::value_t::object);
    const ojson empty = ojson::object();
    const ojson& imeta = initial->contains("metadata") ? (*initial)["metadata"] : empty;
    const ojson& want_labels = imeta.contains("labels") ? imeta["labels"] : empty;
    bool changed = false;

    // updateDefaultLabels: only labels the initial node sets; never an empty value.
    if (!meta.contains("labels") || !meta["labels"].is_object()) meta["labels"] = ojson::object();
    ojson& labels = meta["labels"];
    for (const auto& key : kDefaultLabels) {
      if (!want_labels.contains(key)) continue;
      std::string want = Str(want_labels, key.c_str());
      if (Str(labels, key.c_str()) != want) {
        labels[key] = want;
        changed = true;
      }
      if (want.empty()) labels.erase(key);
    }

    // reconcileCMADAnnotationWithExistingNode.
    const ojson& want_ann = imeta.contains("annotations") ? imeta["annotations"] : empty;
    bool want_set = want_ann.contains(kAttachDetachAnnotation);
    std::string want = Str(want_ann, kAttachDetachAnnotation);
    const ojson& have_ann = meta.contains("annotations") ? meta["annotations"] : empty;
    std::string have = Str(have_ann, kAttachDetachAnnotation);
    if (want != have || want_set != have_ann.contains(kAttachDetachAnnotation)) {
      if (!meta.contains("annotations") || !meta["annotations"].is_object()) {
        meta["annotations"] = ojson::object();
      }
      if (want_set) {
        meta["annotations"][kAttachDetachAnnotation] = want;
      } else {
        meta["annotations"].erase(kAttachDetachAnnotation);
      }
      changed = true;
    }
    if (!changed) return std::optional<std::string>();
    return std::optional<std::string>(NodePatch(*existing, node).dump());
  } catch (const nlohmann::json::exception& e) {
    return base::Fail(std::string("reconcile existing node: ") + e.what());
  }
}

base::Result<std::string> CreateNodePatch(std::string_view old_node, std::string_view new_node) {
  try {
    auto a = ParseObject(old_node, "old node");
    if (!a) return tl::unexpected(a.error());
    auto b = ParseObject(new_node, "new node");
    if (!b) return tl::unexpected(b.error());
    return NodePatch(*a, *b).dump();
  } catch (const nlohmann::json::exception& e) {
    return base::Fail(std::string("node patch: ") + e.what());
  }
}

base::Result<NodeMeta> ParseNodeMeta(std::string_view node_json) {
  try {
    auto parsed = ParseObject(node_json, "node");
    if (!parsed) return tl::unexpected(parsed.error());
    const ojson& n = *parsed;
    NodeMeta m;
    if (n.contains("metadata")) {
      m.name = Str(n["metadata"], "name");
      m.uid = Str(n["metadata"], "uid");
      m.resource_version = Str(n["metadata"], "resourceVersion");
    }
    if (n.contains("spec") && n["spec"].is_object()) {
      const ojson& spec = n["spec"];
      if (spec.contains("podCIDRs") && spec["podCIDRs"].is_array() && !spec["podCIDRs"].empty()) {
        std::vector<std::string> cidrs;
        for (const auto& c : spec["podCIDRs"]) {
          if (c.is_string()) cidrs.push_back(c.get<std::string>());
        }
        m.pod_cidrs = base::Join(cidrs, ",");
      } else {
        m.pod_cidrs = Str(spec, "podCIDR");
      }
    }
    return m;
  } catch (const nlohmann::json::exception& e) {
    return base::Fail(std::string("parse node: ") + e.what());
  }
}

}  // namespace agent
