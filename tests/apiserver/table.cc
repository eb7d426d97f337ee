#include "tests/apiserver/table.h"

#include "base/time.h"

namespace apiserver {
namespace {

std::string Sprintf(const char* fmt, long a, long b = 0) {
  char buf[64];
  snprintf(buf, sizeof(buf), fmt, a, b);
  return buf;
}

std::string HumanDuration(long seconds) {
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return Sprintf("%lds", seconds);
  long minutes = seconds / 60;
  if (minutes < 10) {
    long s = seconds % 60;
    return s == 0 ? Sprintf("%ldm", minutes) : Sprintf("%ldm%lds", minutes, s);
  }
  if (minutes < 180) return Sprintf("%ldm", minutes);
  long hours = minutes / 60;
  if (hours < 8) {
    long m = minutes % 60;
    return m == 0 ? Sprintf("%ldh", hours) : Sprintf("%ldh%ldm", hours, m);
  }
  if (hours < 48) return Sprintf("%ldh", hours);
  if (hours < 24 * 8) {
    long h = hours % 24;
    return h == 0 ? Sprintf("%ldd", hours / 24) : Sprintf("%ldd%ldh", hours / 24, h);
  }
  if (hours < 24 * 365 * 2) return Sprintf("%ldd", hours / 24);
  if (hours < 24 * 365 * 8) {
    long dy = (hours / 24) % 365;
    return dy == 0 ? Sprintf("%ldy", hours / 24 / 365)
                   : Sprintf("%ldy%ldd", hours / 24 / 365, dy);
  }
  return Sprintf("%ldy", hours / 24 / 365);
}

Json Col(const char* name, const char* type, const char* desc, int priority = 0,
         const char* format = "") {
  return {{"name", name}, {"type", type}, {"format", format}, {"description", desc},
          {"priority", priority}};
}

std::string S(const Json& o, std::initializer_list<const char*> path, const std::string& def = "") {
  const Json* cur = &o;
  for (const char* p : path) {
    if (!cur->is_object() || !cur->contains(p)) return def;
    cur = &(*cur)[p];
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_number()) return cur->dump();
  return def;
}

std::string Age(const Json& o) { return HumanAge(S(o, {"metadata", "creationTimestamp"})); }

Json PodRow(const Json& p) {
  const Json& status = p.value("status", Json::object());
  const Json& spec = p.value("spec", Json::object());
  size_t total = spec.value("containers", Json::array()).size();
  int ready = 0;
  long restarts = 0;
  std::string reason = status.value("phase", "");
  if (!status.value("reason", "").empty()) reason = status["reason"];
  for (const auto& cs : status.value("containerStatuses", Json::array())) {
    restarts += cs.value("restartCount", 0);
    if (cs.value("ready", false)) ++ready;
    const Json& state = cs.value("state", Json::object());
    if (state.contains("waiting") && !state["waiting"].value("reason", "").empty())
      reason = state["waiting"]["reason"];
    else if (state.contains("terminated")) {
      std::string r = state["terminated"].value("reason", "");
      reason = r.empty() ? "Completed" : r;
    }
  }
  if (p["metadata"].contains("deletionTimestamp")) reason = "Terminating";
  std::string ip = status.value("podIP", "");
  std::string node = spec.value("nodeName", "");
  std::string nominated = status.value("nominatedNodeName", "");
  return Json::array({S(p, {"metadata", "name"}), std::to_string(ready) + "/" + std::to_string(total),
                      reason, restarts, Age(p), ip.empty() ? "<none>" : ip,
                      node.empty() ? "<none>" : node, nominated.empty() ? "<none>" : nominated,
                      "<none>"});
}

Json NodeRow(const Json& n) {
  const Json& status = n.value("status", Json::object());
  std::string ready = "Unknown";
  for (const auto& c : status.value("conditions", Json::array())) {
    if (c.value("type", "") == "Ready")
      ready = c.value("status", "") == "True" ? "Ready" : c.value("status", "") == "False"
                                                              ? "NotReady"
                                                              : "Unknown";
  }
  if (n.contains("spec") && n["spec"].value("unschedulable", false)) ready += ",SchedulingDisabled";
  std::string roles;
  const Json labels = n["metadata"].value("labels", Json::object());
  for (const auto& [k, v] : labels.items()) {
    const std::string prefix = "node-role.kubernetes.io/";
    if (k.rfind(prefix, 0) == 0) roles += (roles.empty() ? "" : ",") + k.substr(prefix.size());
  }
  std::string internal, external;
  for (const auto& a : status.value("addresses", Json::array())) {
    if (a.value("type", "") == "InternalIP" && internal.empty()) internal = a.value("address", "");
    if (a.value("type", "") == "ExternalIP" && external.empty()) external = a.value("address", "");
  }
  const Json& info = status.value("nodeInfo", Json::object());
  return Json::array({S(n, {"metadata", "name"}), ready, roles.empty() ? "<none>" : roles, Age(n),
                      info.value("kubeletVersion", ""), internal.empty() ? "<none>" : internal,
                      external.empty() ? "<none>" : external, info.value("osImage", ""),
                      info.value("kernelVersion", ""), info.value("containerRuntimeVersion", "")});
}

Json ServiceRow(const Json& s) {
  const Json& spec = s.value("spec", Json::object());
  std::string ports;
  for (const auto& p : spec.value("ports", Json::array())) {
    std::string one = std::to_string(p.value("port", 0));
    if (p.value("nodePort", 0) != 0) one += ":" + std::to_string(p.value("nodePort", 0));
    one += "/" + p.value("protocol", std::string("TCP"));
    ports += (ports.empty() ? "" : ",") + one;
  }
  std::string selector;
  const Json sel = spec.value("selector", Json::object());
  for (const auto& [k, v] : sel.items())
    selector += (selector.empty() ? "" : ",") + k + "=" + v.get<std::string>();
  std::string type = spec.value("type", "ClusterIP");
  std::string ext = "<none>";
  if (type == "ExternalName") ext = spec.value("externalName", "");
  else if (spec.contains("externalIPs") && !spec["externalIPs"].empty())
    ext = spec["externalIPs"][0];
  else if (type == "LoadBalancer") ext = "<pending>";
  std::string cip = spec.value("clusterIP", "");
  return Json::array({S(s, {"metadata", "name"}), type, cip.empty() ? "<none>" : cip, ext,
                      ports.empty() ? "<none>" : ports, Age(s),
                      selector.empty() ? "<none>" : selector});
}

size_t Count(const Json& o, const char* key) {
  return o.contains(key) && (o[key].is_object() || o[key].is_array()) ? o[key].size() : 0;
}

// Columns and cells of the simpler printers (k8s.io/kubernetes/pkg/printers/internalversion).
bool SimpleRow(const std::string& resource, const Json& o, Json* cols, Json* cells,
               const char* kName, const char* kAge) {
  std::string name = S(o, {"metadata", "name"});
  if (resource == "namespaces") {
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("Status", "string", "The status of the namespace"),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, S(o, {"status", "phase"}), Age(o)});
  } else if (resource == "configmaps") {
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("Data", "string", "Data contains the configuration data."),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, static_cast<int64_t>(Count(o, "data") + Count(o, "binaryData")), Age(o)});
  } else if (resource == "secrets") {
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("Type", "string", "The type of the secret"),
                         Col("Data", "string", "The number of entries in the secret"),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, S(o, {"type"}), static_cast<int64_t>(Count(o, "data")), Age(o)});
  } else if (resource == "serviceaccounts") {
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, static_cast<int64_t>(Count(o, "secrets")), Age(o)});
  } else if (resource == "leases") {
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("Holder", "string", "The holder of the lease"),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, S(o, {"spec", "holderIdentity"}), Age(o)});
  } else if (resource == "endpointslices") {
    std::string ports, eps;
    if (o.contains("ports") && o["ports"].is_array()) {
      for (const auto& p : o["ports"]) {
        ports += (ports.empty() ? "" : ",") + (p.contains("port") ? p["port"].dump() : "<unset>");
      }
    }
    int n = 0, total = 0;
    if (o.contains("endpoints") && o["endpoints"].is_array()) {
      for (const auto& e : o["endpoints"]) {
        for (const auto& a : e.value("addresses", Json::array())) {
          ++total;
          if (n < 3) {
            eps += (eps.empty() ? "" : ",") + a.get<std::string>();
            ++n;
          }
        }
      }
    }
    if (total > 3) eps += " + " + std::to_string(total - 3) + " more...";
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("AddressType", "string", "The IP protocol for this slice"),
                         Col("Ports", "string", "The ports for this slice"),
                         Col("Endpoints", "string", "The endpoints for this slice"),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, S(o, {"addressType"}), ports.empty() ? "<unset>" : ports,
                          eps.empty() ? "<unset>" : eps, Age(o)});
  } else if (resource == "endpoints") {
    std::string eps;
    int n = 0, total = 0;
    for (const auto& ss : o.value("subsets", Json::array())) {
      for (const auto& a : ss.value("addresses", Json::array())) {
        for (const auto& p : ss.value("ports", Json::array())) {
          ++total;
          if (n < 3) {
            eps += (eps.empty() ? "" : ",") + a.value("ip", "") + ":" + p["port"].dump();
            ++n;
          }
        }
      }
    }
    if (total > 3) eps += " + " + std::to_string(total - 3) + " more...";
    *cols = Json::array({Col("Name", "string", kName, 0, "name"),
                         Col("Endpoints", "string", "Endpoints is the list of endpoints."),
                         Col("Age", "string", kAge)});
    *cells = Json::array({name, eps.empty() ? "<none>" : eps, Age(o)});
  } else if (resource == "events") {
    std::string last = S(o, {"lastTimestamp"});
    if (last.empty()) last = S(o, {"eventTime"});
    if (last.empty()) last = S(o, {"metadata", "creationTimestamp"});
    std::string kind = S(o, {"involvedObject", "kind"});
    for (char& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    *cols = Json::array({Col("Last Seen", "string", "Time when last event occurred"),
                         Col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future."),
                         Col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
                         Col("Object", "string", "The object that this event is about."),
                         Col("Message", "string", "A human-readable description of the status of this operation.")});
    *cells = Json::array({HumanAge(last), S(o, {"type"}), S(o, {"reason"}),
                          kind + "/" + S(o, {"involvedObject", "name"}), S(o, {"message"})});
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::string HumanAge(const std::string& rfc3339) {
  auto t = base::ParseRfc3339(rfc3339);
  if (!t) return "<unknown>";
  auto d = std::chrono::system_clock::now() - *t;
  return HumanDuration(static_cast<long>(std::chrono::duration_cast<std::chrono::seconds>(d).count()));
}

Json ToTable(const std::string& resource, const std::vector<Json>& objects,
             const std::string& list_rv, const std::string& include) {
  const char* kName = "Name must be unique within a namespace.";
  const char* kAge = "CreationTimestamp is a timestamp representing the server time when this "
                     "object was created.";
  Json cols;
  if (resource == "pods") {
    cols = Json::array({Col("Name", "string", kName, 0, "name"),
                        Col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
                        Col("Status", "string", "The aggregate status of the containers in this pod."),
                        Col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
                        Col("Age", "string", kAge),
                        Col("IP", "string", "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
                        Col("Node", "string", "NodeName is a request to schedule this pod onto a specific node.", 1),
                        Col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node.", 1),
                        Col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness.", 1)});
  } else if (resource == "nodes") {
    cols = Json::array({Col("Name", "string", kName, 0, "name"),
                        Col("Status", "string", "The status of the node"),
                        Col("Roles", "string", "The roles of the node"), Col("Age", "string", kAge),
                        Col("Version", "string", "Kubelet Version reported by the node."),
                        Col("Internal-IP", "string", "List of addresses reachable to the node.", 1),
                        Col("External-IP", "string", "List of addresses reachable to the node.", 1),
                        Col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
                        Col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
                        Col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1)});
  } else if (resource == "services") {
    cols = Json::array({Col("Name", "string", kName, 0, "name"),
                        Col("Type", "string", "type determines how the Service is exposed."),
                        Col("Cluster-IP", "string", "clusterIP is the IP address of the service."),
                        Col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
                        Col("Port(s)", "string", "The list of ports that are exposed by this service."),
                        Col("Age", "string", kAge),
                        Col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector.", 1)});
  } else {
    Json cells;
    static const Json kEmpty = {{"metadata", Json::object()}};
    if (!SimpleRow(resource, objects.empty() ? kEmpty : objects[0], &cols, &cells, kName, kAge))
      cols = Json::array({Col("Name", "string", kName, 0, "name"), Col("Age", "string", kAge)});
  }
  Json rows = Json::array();
  for (const auto& o : objects) {
    Json cells;
    if (resource == "pods") cells = PodRow(o);
    else if (resource == "nodes") cells = NodeRow(o);
    else if (resource == "services") cells = ServiceRow(o);
    else if (Json c; SimpleRow(resource, o, &c, &cells, kName, kAge)) {
    } else cells = Json::array({S(o, {"metadata", "name"}), Age(o)});
    Json row = {{"cells", cells}};
    if (include == "Object") {
      row["object"] = o;
    } else if (include != "None") {
      row["object"] = {{"kind", "PartialObjectMetadata"},
                       {"apiVersion", "meta.k8s.io/v1"},
                       {"metadata", o.value("metadata", Json::object())}};
    }
    rows.push_back(row);
  }
  Json meta = Json::object();
  if (!list_rv.empty()) meta["resourceVersion"] = list_rv;
  return {{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta},
          {"columnDefinitions", cols}, {"rows", rows}};
}

}  // namespace apiserver
