// The resource table, Status bodies and per-resource helpers.
#include <sstream>

#include "tests/apiserver/internal.h"
#include "tests/apiserver/schema.h"

namespace apiserver::internal {
namespace {

const std::vector<std::string> kAllVerbs = {"create", "delete", "deletecollection", "get",
                                            "list",   "patch",  "update",           "watch"};

}  // namespace

const std::vector<ResourceDef>& Resources() {
  static const std::vector<ResourceDef> defs = {
      {"", "v1", "pods", "pod", "Pod", "Pod", true, {"po"}, kAllVerbs, "pods",
       {"status", "log", "exec", "portforward", "binding", "eviction"}},
      {"", "v1", "nodes", "node", "Node", "Node", false, {"no"}, kAllVerbs, "nodes", {"status"}},
      {"", "v1", "namespaces", "namespace", "Namespace", "Namespace", false, {"ns"},
       {"create", "delete", "get", "list", "patch", "update", "watch"}, "namespaces",
       {"status", "finalize"}},
      {"", "v1", "services", "service", "Service", "Service", true, {"svc"},
       {"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"},
       "services", {"status"}},
      {"", "v1", "endpoints", "endpoints", "Endpoints", "Endpoints", true, {"ep"}, kAllVerbs,
       "endpoints", {}},
      {"", "v1", "configmaps", "configmap", "ConfigMap", "ConfigMap", true, {"cm"}, kAllVerbs,
       "configmaps", {}},
      {"", "v1", "secrets", "secret", "Secret", "Secret", true, {}, kAllVerbs, "secrets", {}},
      {"", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", "ServiceAccount", true,
       {"sa"}, kAllVerbs, "serviceaccounts", {"token"}},
      {"", "v1", "events", "event", "Event", "Event", true, {"ev"}, kAllVerbs, "events", {}},
      {"coordination.k8s.io", "v1", "leases", "lease", "Lease", "Lease", true, {}, kAllVerbs,
       "leases", {}},
      {"discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice",
       "EndpointSlice", true, {}, kAllVerbs, "endpointslices", {}},
      {"events.k8s.io", "v1", "events", "event", "Event", "EventsV1Event", true, {"ev"},
       kAllVerbs, "events", {}},
      {"authentication.k8s.io", "v1", "selfsubjectreviews", "selfsubjectreview",
       "SelfSubjectReview", "SelfSubjectReview", false, {}, {"create"}, "", {}},
      {"authentication.k8s.io", "v1", "tokenreviews", "tokenreview", "TokenReview",
       "TokenReview", false, {}, {"create"}, "", {}},
      {"authorization.k8s.io", "v1", "subjectaccessreviews", "subjectaccessreview",
       "SubjectAccessReview", "SubjectAccessReview", false, {}, {"create"}, "", {}},
  };
  return defs;
}

const ResourceDef* FindResource(const std::string& group, const std::string& version,
                                const std::string& resource) {
  for (const auto& d : Resources()) {
    if (d.group == group && d.version == version && d.resource == resource) return &d;
  }
  return nullptr;
}

const ResourceDef* FindByStorage(const std::string& storage) {
  for (const auto& d : Resources()) {
    if (d.storage == storage) return &d;
  }
  return nullptr;
}

std::string ApiVersionOf(const ResourceDef& def) {
  return def.group.empty() ? def.version : def.group + "/" + def.version;
}

std::string QualifiedResource(const ResourceDef& def) {
  return def.group.empty() ? def.resource : def.resource + "." + def.group;
}

Json StatusBody(int code, const std::string& reason, const std::string& message,
                std::optional<Json> details) {
  Json s = {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", Json::object()}};
  s["status"] = code >= 200 && code < 300 ? "Success" : "Failure";
  if (!message.empty()) s["message"] = message;
  if (!reason.empty()) s["reason"] = reason;
  if (details) s["details"] = *details;
  if (code >= 300 || code < 200) s["code"] = code;
  return s;
}

Response StatusResponse(int code, const std::string& reason, const std::string& message,
                        std::optional<Json> details) {
  Response r;
  r.status = code;
  r.body = Dump(StatusBody(code, reason, message, std::move(details)));
  return r;
}

Json Details(const ResourceDef& def, const std::string& name) {
  Json d = Json::object();
  if (!name.empty()) d["name"] = name;
  if (!def.group.empty()) d["group"] = def.group;
  d["kind"] = def.resource;
  return d;
}

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

Response NotFound(const ResourceDef& def, const std::string& name) {
  return StatusResponse(404, "NotFound", QualifiedResource(def) + " " + Quote(name) + " not found",
                        Details(def, name));
}

Response AlreadyExists(const ResourceDef& def, const std::string& name) {
  return StatusResponse(409, "AlreadyExists",
                        QualifiedResource(def) + " " + Quote(name) + " already exists",
                        Details(def, name));
}

Response Conflict(const ResourceDef& def, const std::string& name, const std::string& why) {
  return StatusResponse(
      409, "Conflict",
      "Operation cannot be fulfilled on " + QualifiedResource(def) + " " + Quote(name) + ": " + why,
      Details(def, name));
}

Response BadRequest(const std::string& message) {
  return StatusResponse(400, "BadRequest", message, std::nullopt);
}

Response Invalid(const ResourceDef& def, const std::string& name, const std::string& field,
                 const std::string& detail, int times) {
  Json details = {{"name", name}};
  if (!def.group.empty()) details["group"] = def.group;
  details["kind"] = def.kind;
  Json causes = Json::array();
  for (int i = 0; i < times; ++i)
    causes.push_back({{"reason", "FieldValueInvalid"}, {"message", detail}, {"field", field}});
  details["causes"] = causes;
  return StatusResponse(422, "Invalid",
                        def.kind + " " + Quote(name) + " is invalid: " + field + ": " + detail,
                        details);
}

Response Forbidden(const ResourceDef& def, const std::string& verb, const std::string& ns,
                   const std::string& name, const std::string& sub, const UserInfo& user,
                   const std::string& reason) {
  std::string msg = QualifiedResource(def);
  if (!name.empty()) msg += " " + Quote(name);
  msg += " is forbidden: User " + Quote(user.name) + " cannot " + verb + " resource " +
         Quote(def.resource + (sub.empty() ? "" : "/" + sub)) + " in API group " +
         Quote(def.group);
  msg += ns.empty() ? " at the cluster scope" : " in the namespace " + Quote(ns);
  if (!reason.empty()) msg += ": " + reason;
  return StatusResponse(403, "Forbidden", msg, Details(def, name));
}

Response AdmissionForbidden(const ResourceDef& def, const std::string& name,
                            const std::string& reason) {
  std::string msg = QualifiedResource(def);
  if (!name.empty()) msg += " " + Quote(name);
  msg += " is forbidden: " + reason;
  return StatusResponse(403, "Forbidden", msg, Details(def, name));
}

std::map<std::string, std::string> LabelsOf(const Json& obj) {
  std::map<std::string, std::string> out;
  if (!obj.contains("metadata")) return out;
  const Json& m = obj["metadata"];
  if (!m.contains("labels") || !m["labels"].is_object()) return out;
  for (const auto& [k, v] : m["labels"].items()) {
    if (v.is_string()) out[k] = v.get<std::string>();
  }
  return out;
}

namespace {
std::string Str(const Json& obj, std::initializer_list<const char*> path) {
  const Json* cur = &obj;
  for (const char* p : path) {
    if (!cur->is_object() || !cur->contains(p)) return "";
    cur = &(*cur)[p];
  }
  if (cur->is_string()) return cur->get<std::string>();
  if (cur->is_boolean()) return cur->get<bool>() ? "true" : "false";
  if (cur->is_number()) return cur->dump();
  return "";
}
}  // namespace

std::map<std::string, std::string> FieldsOf(const ResourceDef& def, const Json& obj) {
  std::map<std::string, std::string> f;
  f["metadata.name"] = Str(obj, {"metadata", "name"});
  if (def.namespaced) f["metadata.namespace"] = Str(obj, {"metadata", "namespace"});
  if (def.resource == "pods") {
    f["spec.nodeName"] = Str(obj, {"spec", "nodeName"});
    f["spec.restartPolicy"] = Str(obj, {"spec", "restartPolicy"});
    f["spec.schedulerName"] = Str(obj, {"spec", "schedulerName"});
    f["spec.serviceAccountName"] = Str(obj, {"spec", "serviceAccountName"});
    std::string hn = Str(obj, {"spec", "hostNetwork"});
    f["spec.hostNetwork"] = hn.empty() ? "false" : hn;
    f["status.phase"] = Str(obj, {"status", "phase"});
    f["status.podIP"] = Str(obj, {"status", "podIP"});
    f["status.nominatedNodeName"] = Str(obj, {"status", "nominatedNodeName"});
  } else if (def.resource == "nodes") {
    std::string u = Str(obj, {"spec", "unschedulable"});
    f["spec.unschedulable"] = u.empty() ? "false" : u;
  } else if (def.resource == "services") {
    f["spec.clusterIP"] = Str(obj, {"spec", "clusterIP"});
    f["spec.type"] = Str(obj, {"spec", "type"});
  } else if (def.resource == "secrets") {
    f["type"] = Str(obj, {"type"});
  } else if (def.resource == "namespaces") {
    f["status.phase"] = Str(obj, {"status", "phase"});
  } else if (def.resource == "events") {
    for (const char* k : {"kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                          "fieldPath"})
      f[std::string("involvedObject.") + k] = Str(obj, {"involvedObject", k});
    f["reason"] = Str(obj, {"reason"});
    f["reportingComponent"] = Str(obj, {"reportingComponent"});
    f["source"] = Str(obj, {"source", "component"});
    f["type"] = Str(obj, {"type"});
  }
  return f;
}

Json CoreEventToV1(const Json& core) {
  Json v1 = Json::object();
  v1["kind"] = "Event";
  v1["apiVersion"] = "events.k8s.io/v1";
  v1["metadata"] = core.value("metadata", Json::object());
  v1["eventTime"] = core.value("eventTime", Json(nullptr));
  if (core.contains("series")) v1["series"] = core["series"];
  v1["reportingController"] = core.value("reportingComponent", "");
  v1["reportingInstance"] = core.value("reportingInstance", "");
  v1["action"] = core.value("action", "");
  v1["reason"] = core.value("reason", "");
  v1["regarding"] = core.value("involvedObject", Json::object());
  if (core.contains("related")) v1["related"] = core["related"];
  v1["note"] = core.value("message", "");
  v1["type"] = core.value("type", "");
  v1["deprecatedSource"] = core.value("source", Json::object());
  v1["deprecatedFirstTimestamp"] = core.value("firstTimestamp", Json(nullptr));
  v1["deprecatedLastTimestamp"] = core.value("lastTimestamp", Json(nullptr));
  v1["deprecatedCount"] = core.value("count", 0);
  return schema::Normalize(v1, "EventsV1Event");
}

Json V1EventToCore(const Json& v1) {
  Json c = Json::object();
  c["kind"] = "Event";
  c["apiVersion"] = "v1";
  c["metadata"] = v1.value("metadata", Json::object());
  c["involvedObject"] = v1.value("regarding", Json::object());
  c["reason"] = v1.value("reason", "");
  c["message"] = v1.value("note", "");
  c["source"] = v1.value("deprecatedSource", Json::object());
  c["firstTimestamp"] = v1.value("deprecatedFirstTimestamp", Json(nullptr));
  c["lastTimestamp"] = v1.value("deprecatedLastTimestamp", Json(nullptr));
  c["count"] = v1.value("deprecatedCount", 0);
  c["type"] = v1.value("type", "");
  c["eventTime"] = v1.value("eventTime", Json(nullptr));
  if (v1.contains("series")) c["series"] = v1["series"];
  c["action"] = v1.value("action", "");
  if (v1.contains("related")) c["related"] = v1["related"];
  c["reportingComponent"] = v1.value("reportingController", "");
  c["reportingInstance"] = v1.value("reportingInstance", "");
  return schema::Normalize(c, "Event");
}

bool PodReferences(const Json& pod, const std::string& kind, const std::string& name) {
  const Json& spec = pod.value("spec", Json::object());
  if (kind == "serviceaccounts") return spec.value("serviceAccountName", "default") == name;
  bool found = false;
  auto check = [&](const Json& j, const char* key) {
    if (j.is_object() && j.contains(key) && j[key] == name) found = true;
  };
  const bool cm = kind == "configmaps";
  const bool secret = kind == "secrets";
  const bool pvc = kind == "persistentvolumeclaims";
  for (const auto& v : spec.value("volumes", Json::array())) {
    if (cm && v.contains("configMap")) check(v["configMap"], "name");
    if (secret && v.contains("secret")) check(v["secret"], "secretName");
    if (pvc && v.contains("persistentVolumeClaim")) check(v["persistentVolumeClaim"], "claimName");
    if (v.contains("projected")) {
      for (const auto& s : v["projected"].value("sources", Json::array())) {
        if (cm && s.contains("configMap")) check(s["configMap"], "name");
        if (secret && s.contains("secret")) check(s["secret"], "name");
      }
    }
  }
  if (secret) {
    for (const auto& s : spec.value("imagePullSecrets", Json::array())) check(s, "name");
  }
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    for (const auto& c : spec.value(list, Json::array())) {
      for (const auto& e : c.value("env", Json::array())) {
        if (!e.contains("valueFrom")) continue;
        if (cm && e["valueFrom"].contains("configMapKeyRef"))
          check(e["valueFrom"]["configMapKeyRef"], "name");
        if (secret && e["valueFrom"].contains("secretKeyRef"))
          check(e["valueFrom"]["secretKeyRef"], "name");
      }
      for (const auto& e : c.value("envFrom", Json::array())) {
        if (cm && e.contains("configMapRef")) check(e["configMapRef"], "name");
        if (secret && e.contains("secretRef")) check(e["secretRef"], "name");
      }
    }
  }
  return found;
}

}  // namespace apiserver::internal
