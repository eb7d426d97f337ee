#include "tests/apiserver/defaults.h"

#include <set>

#include "tests/apiserver/util.h"

namespace apiserver {
namespace {

const char kSaMountPath[] = "/var/run/secrets/kubernetes.io/serviceaccount";

void SetIfMissing(Json& obj, const char* key, Json value) {
  if (!obj.contains(key) || obj[key].is_null()) obj[key] = std::move(value);
}

std::string DefaultPullPolicy(const std::string& image) {
  if (image.find('@') != std::string::npos) return "IfNotPresent";
  size_t slash = image.rfind('/');
  std::string last = slash == std::string::npos ? image : image.substr(slash + 1);
  size_t colon = last.find(':');
  if (colon == std::string::npos) return "Always";
  return last.substr(colon + 1) == "latest" ? "Always" : "IfNotPresent";
}

void DefaultHandler(Json& h) {
  if (!h.is_object()) return;
  if (h.contains("httpGet") && h["httpGet"].is_object()) {
    SetIfMissing(h["httpGet"], "path", "/");
    SetIfMissing(h["httpGet"], "scheme", "HTTP");
  }
}

void DefaultProbe(Json& p) {
  if (!p.is_object()) return;
  DefaultHandler(p);
  SetIfMissing(p, "timeoutSeconds", 1);
  SetIfMissing(p, "periodSeconds", 10);
  SetIfMissing(p, "successThreshold", 1);
  SetIfMissing(p, "failureThreshold", 3);
}

void DefaultContainer(Json& c) {
  SetIfMissing(c, "terminationMessagePath", "/dev/termination-log");
  SetIfMissing(c, "terminationMessagePolicy", "File");
  if (!c.contains("imagePullPolicy") || c["imagePullPolicy"] == "")
    c["imagePullPolicy"] = DefaultPullPolicy(c.value("image", ""));
  if (c.contains("ports") && c["ports"].is_array()) {
    for (auto& p : c["ports"]) SetIfMissing(p, "protocol", "TCP");
  }
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    if (c.contains(probe)) DefaultProbe(c[probe]);
  }
  if (c.contains("lifecycle") && c["lifecycle"].is_object()) {
    for (const char* h : {"postStart", "preStop"}) {
      if (c["lifecycle"].contains(h)) DefaultHandler(c["lifecycle"][h]);
    }
  }
  if (c.contains("env") && c["env"].is_array()) {
    for (auto& e : c["env"]) {
      if (e.contains("valueFrom") && e["valueFrom"].contains("fieldRef"))
        SetIfMissing(e["valueFrom"]["fieldRef"], "apiVersion", "v1");
    }
  }
  // SetDefaults_Pod: a limit without a request makes the request equal to the limit.
  if (!c.contains("resources") || !c["resources"].is_object()) c["resources"] = Json::object();
  auto& res = c["resources"];
  if (res.contains("limits") && res["limits"].is_object()) {
    // Copy first: adding "requests" to the (vector-backed) ordered object moves "limits", which
    // would invalidate an iterator over it.
    Json limits = res["limits"];
    if (!res.contains("requests") || !res["requests"].is_object()) res["requests"] = Json::object();
    for (const auto& [k, v] : limits.items()) {
      if (!res["requests"].contains(k)) res["requests"][k] = v;
    }
  }
}

void DefaultVolume(Json& v) {
  static const std::set<std::string> kSources = {
      "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
      "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
      "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
      "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
      "storageos", "csi", "ephemeral", "image"};
  bool any = false;
  for (const auto& [k, val] : v.items()) any = any || kSources.count(k) > 0;
  if (!any) v["emptyDir"] = Json::object();
  for (const char* k : {"secret", "configMap", "downwardAPI", "projected"}) {
    if (v.contains(k) && v[k].is_object()) SetIfMissing(v[k], "defaultMode", 420);
  }
  if (v.contains("hostPath") && v["hostPath"].is_object()) SetIfMissing(v["hostPath"], "type", "");
  if (v.contains("downwardAPI") && v["downwardAPI"].contains("items")) {
    for (auto& item : v["downwardAPI"]["items"]) {
      if (item.contains("fieldRef")) SetIfMissing(item["fieldRef"], "apiVersion", "v1");
    }
  }
  if (v.contains("projected") && v["projected"].contains("sources")) {
    for (auto& s : v["projected"]["sources"]) {
      if (s.contains("downwardAPI") && s["downwardAPI"].contains("items")) {
        for (auto& item : s["downwardAPI"]["items"]) {
          if (item.contains("fieldRef")) SetIfMissing(item["fieldRef"], "apiVersion", "v1");
        }
      }
      if (s.contains("serviceAccountToken"))
        SetIfMissing(s["serviceAccountToken"], "expirationSeconds", 3600);
    }
  }
}

bool HasToleration(const Json& tols, const std::string& key, const std::string& effect) {
  if (!tols.is_array()) return false;
  for (const auto& t : tols) {
    std::string k = t.value("key", "");
    std::string e = t.value("effect", "");
    std::string op = t.value("operator", "Equal");
    bool key_ok = k == key || (k.empty() && op == "Exists");
    bool effect_ok = e.empty() || e == effect;
    if (key_ok && effect_ok) return true;
  }
  return false;
}

}  // namespace

void DefaultPodSpec(Json& spec) {
  if (!spec.is_object()) spec = Json::object();
  SetIfMissing(spec, "restartPolicy", "Always");
  SetIfMissing(spec, "terminationGracePeriodSeconds", 30);
  SetIfMissing(spec, "dnsPolicy", "ClusterFirst");
  SetIfMissing(spec, "securityContext", Json::object());
  SetIfMissing(spec, "schedulerName", "default-scheduler");
  SetIfMissing(spec, "enableServiceLinks", true);
  if (spec.contains("serviceAccountName") && !spec.contains("serviceAccount"))
    spec["serviceAccount"] = spec["serviceAccountName"];
  if (spec.contains("serviceAccount") && !spec.contains("serviceAccountName"))
    spec["serviceAccountName"] = spec["serviceAccount"];
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    if (spec.contains(list) && spec[list].is_array()) {
      for (auto& c : spec[list]) DefaultContainer(c);
    }
  }
  if (spec.value("hostNetwork", false) && spec.contains("containers")) {
    for (auto& c : spec["containers"]) {
      if (!c.contains("ports")) continue;
      for (auto& p : c["ports"]) SetIfMissing(p, "hostPort", p.value("containerPort", 0));
    }
  }
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (auto& v : spec["volumes"]) DefaultVolume(v);
  }
}

std::string PodQosClass(const Json& pod) {
  bool any_set = false;
  bool guaranteed = true;
  auto check = [&](const Json& containers) {
    if (!containers.is_array()) return;
    for (const auto& c : containers) {
      Json req = c.contains("resources") ? c["resources"].value("requests", Json::object())
                                         : Json::object();
      Json lim = c.contains("resources") ? c["resources"].value("limits", Json::object())
                                         : Json::object();
      for (const char* r : {"cpu", "memory"}) {
        bool has_req = req.contains(r) && req[r] != "0";
        bool has_lim = lim.contains(r) && lim[r] != "0";
        if (has_req || has_lim) any_set = true;
        if (!has_lim || (has_req && req[r] != lim[r])) guaranteed = false;
      }
    }
  };
  const Json& spec = pod["spec"];
  check(spec.value("initContainers", Json::array()));
  check(spec.value("containers", Json::array()));
  if (!any_set) return "BestEffort";
  return guaranteed ? "Guaranteed" : "Burstable";
}

void AdmitNewPod(Json& pod, bool automount_sa) {
  Json& spec = pod["spec"];
  SetIfMissing(spec, "serviceAccountName", "default");
  if (spec["serviceAccountName"] == "") spec["serviceAccountName"] = "default";
  spec["serviceAccount"] = spec["serviceAccountName"];
  DefaultPodSpec(spec);

  // ServiceAccount admission: the projected kube-api-access volume.
  bool automount = spec.contains("automountServiceAccountToken")
                       ? spec["automountServiceAccountToken"].get<bool>()
                       : automount_sa;
  if (automount) {
    bool mounted_everywhere = true;
    for (const char* list : {"initContainers", "containers"}) {
      if (!spec.contains(list)) continue;
      for (const auto& c : spec[list]) {
        bool has = false;
        for (const auto& m : c.value("volumeMounts", Json::array()))
          has = has || m.value("mountPath", "") == kSaMountPath;
        mounted_everywhere = mounted_everywhere && has;
      }
    }
    if (!mounted_everywhere) {
      std::string vol = "kube-api-access-" + RandomSuffix(5);
      Json source = {
          {"name", vol},
          {"projected",
           {{"sources",
             Json::array(
                 {{{"serviceAccountToken", {{"expirationSeconds", 3607}, {"path", "token"}}}},
                  {{"configMap",
                    {{"name", "kube-root-ca.crt"},
                     {"items", Json::array({{{"key", "ca.crt"}, {"path", "ca.crt"}}})}}}},
                  {{"downwardAPI",
                    {{"items", Json::array({{{"path", "namespace"},
                                             {"fieldRef",
                                              {{"apiVersion", "v1"},
                                               {"fieldPath", "metadata.namespace"}}}}})}}}}})},
            {"defaultMode", 420}}}};
      if (!spec.contains("volumes") || !spec["volumes"].is_array())
        spec["volumes"] = Json::array();
      spec["volumes"].push_back(source);
      for (const char* list : {"initContainers", "containers"}) {
        if (!spec.contains(list)) continue;
        for (auto& c : spec[list]) {
          bool has = false;
          for (const auto& m : c.value("volumeMounts", Json::array()))
            has = has || m.value("mountPath", "") == kSaMountPath;
          if (has) continue;
          if (!c.contains("volumeMounts") || !c["volumeMounts"].is_array())
            c["volumeMounts"] = Json::array();
          c["volumeMounts"].push_back(
              {{"name", vol}, {"readOnly", true}, {"mountPath", kSaMountPath}});
        }
      }
    }
  }

  // DefaultTolerationSeconds admission.
  if (!spec.contains("tolerations") || !spec["tolerations"].is_array())
    spec["tolerations"] = Json::array();
  for (const char* key : {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}) {
    if (!HasToleration(spec["tolerations"], key, "NoExecute")) {
      spec["tolerations"].push_back({{"key", key},
                                     {"operator", "Exists"},
                                     {"effect", "NoExecute"},
                                     {"tolerationSeconds", 300}});
    }
  }
  // Priority admission.
  SetIfMissing(spec, "priority", 0);
  SetIfMissing(spec, "preemptionPolicy", "PreemptLowerPriority");

  Json status = Json::object();
  status["phase"] = "Pending";
  status["qosClass"] = PodQosClass(pod);
  pod["status"] = status;
}

void DefaultService(Json& svc) {
  Json& spec = svc["spec"];
  if (!spec.is_object()) spec = Json::object();
  SetIfMissing(spec, "type", "ClusterIP");
  std::string type = spec["type"];
  SetIfMissing(spec, "sessionAffinity", "None");
  if (spec["sessionAffinity"] == "ClientIP")
    SetIfMissing(spec, "sessionAffinityConfig", {{"clientIP", {{"timeoutSeconds", 10800}}}});
  if (spec.contains("ports") && spec["ports"].is_array()) {
    for (auto& p : spec["ports"]) {
      SetIfMissing(p, "protocol", "TCP");
      if (!p.contains("targetPort") || p["targetPort"] == 0 || p["targetPort"] == "")
        p["targetPort"] = p.value("port", 0);
    }
  }
  if (type == "NodePort" || type == "LoadBalancer")
    SetIfMissing(spec, "externalTrafficPolicy", "Cluster");
  if (type == "LoadBalancer") SetIfMissing(spec, "allocateLoadBalancerNodePorts", true);
  if (type != "ExternalName") {
    SetIfMissing(spec, "internalTrafficPolicy", "Cluster");
    SetIfMissing(spec, "ipFamilies", Json::array({"IPv4"}));
    SetIfMissing(spec, "ipFamilyPolicy", "SingleStack");
  }
  if (!svc.contains("status") || !svc["status"].is_object()) svc["status"] = Json::object();
}

void DefaultNamespace(Json& ns) {
  std::string name = ns["metadata"].value("name", "");
  ns["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
  if (!ns.contains("spec") || !ns["spec"].is_object()) ns["spec"] = Json::object();
  SetIfMissing(ns["spec"], "finalizers", Json::array({"kubernetes"}));
  ns["status"] = {{"phase", "Active"}};
}

void AdmitNewNode(Json& node) {
  if (!node.contains("spec") || !node["spec"].is_object()) node["spec"] = Json::object();
  Json& spec = node["spec"];
  if (!spec.contains("taints") || !spec["taints"].is_array()) spec["taints"] = Json::array();
  bool has = false;
  for (const auto& t : spec["taints"]) {
    has = has || (t.value("key", "") == "node.kubernetes.io/not-ready" &&
                  t.value("effect", "") == "NoSchedule");
  }
  if (!has)
    spec["taints"].push_back({{"key", "node.kubernetes.io/not-ready"}, {"effect", "NoSchedule"}});
}

void DefaultSecret(Json& secret) {
  SetIfMissing(secret, "type", "Opaque");
  if (secret.contains("stringData") && secret["stringData"].is_object()) {
    for (const auto& [k, v] : secret["stringData"].items()) {
      secret["data"][k] = Base64Encode(v.is_string() ? v.get<std::string>() : v.dump());
    }
    secret.erase("stringData");
  }
}

void DefaultEndpointSlice(Json& slice) {
  if (slice.contains("ports") && slice["ports"].is_array()) {
    for (auto& p : slice["ports"]) {
      SetIfMissing(p, "name", "");
      SetIfMissing(p, "protocol", "TCP");
    }
  }
}

}  // namespace apiserver
