// Writes: create, update, patch (merge, strategic, JSON, apply), delete, binding.
#include "base/log.h"
#include "tests/apiserver/defaults.h"
#include "tests/apiserver/internal.h"
#include "tests/apiserver/patch.h"
#include "tests/apiserver/rest_handler.h"
#include "tests/apiserver/schema.h"
#include "tests/apiserver/selectors.h"
#include "tests/apiserver/table.h"
#include "tests/apiserver/util.h"
#include "tests/apiserver/yaml_json.h"

namespace apiserver {

using namespace internal;
using namespace rest;

std::optional<Response> ApiServerImpl::CheckNamespaceForCreate(const std::string& name) {
  if (!def_.namespaced) return std::nullopt;
  const Json* ns = store_.Get("namespaces", "", route_.ns);
  if (!ns)
    return StatusResponse(404, "NotFound", "namespaces \"" + route_.ns + "\" not found",
                          Json{{"name", route_.ns}, {"kind", "namespaces"}});
  if ((*ns)["metadata"].contains("deletionTimestamp"))
    return StatusResponse(403, "Forbidden",
                          QualifiedResource(def_) + " \"" + name +
                              "\" is forbidden: unable to create new content in namespace " +
                              route_.ns + " because it is being terminated",
                          Json{{"name", name}, {"kind", def_.resource}});
  return std::nullopt;
}

std::string ApiServerImpl::AllocateClusterIp(ApiServer& s, const std::string& requested,
                                             std::string* error) {
  auto cidr = ParseCidr(s.config_.service_cidr);
  if (!cidr) {
    *error = "invalid service CIDR";
    return "";
  }
  std::set<std::string> used;
  for (const Json* svc : s.store_.List("services", "")) {
    used.insert((*svc)["spec"].value("clusterIP", ""));
  }
  if (!requested.empty()) {
    auto ip = ParseIp(requested);
    if (!ip || (*ip & ~(cidr->size() - 1)) != cidr->base) {
      *error = "failed to allocate IP " + requested + ": the provided IP (" + requested +
               ") is not in the valid range. The range of valid IPs is " + s.config_.service_cidr;
      return "";
    }
    if (used.count(requested)) {
      *error = "failed to allocate IP " + requested + ": provided IP is already allocated";
      return "";
    }
    return requested;
  }
  uint32_t span = cidr->size();
  for (int tries = 0; tries < 100000; ++tries) {
    uint32_t off = 2 + static_cast<uint32_t>(std::hash<std::string>{}(NewUid())) % (span - 3);
    std::string ip = IpString(cidr->base + off);
    if (!used.count(ip)) return ip;
  }
  *error = "range is full";
  return "";
}

std::optional<Response> ApiServerImpl::AdmitService(Json& svc, const Json* old) {
  DefaultService(svc);
  Json& spec = svc["spec"];
  std::string type = spec["type"];
  std::string name = MetaStr(svc, "name");
  if (type == "ExternalName") {
    spec.erase("clusterIP");
    spec.erase("clusterIPs");
    return std::nullopt;
  }
  if (old && (*old)["spec"].contains("clusterIP") &&
      (!spec.contains("clusterIP") || spec["clusterIP"] == ""))
    spec["clusterIP"] = (*old)["spec"]["clusterIP"];
  std::string ip = spec.value("clusterIP", "");
  if (ip != "None" && (!old || (*old)["spec"].value("clusterIP", "") != ip)) {
    std::string err;
    ip = AllocateClusterIp(s_, ip, &err);
    if (ip.empty())
      return Invalid(def_, name, "spec.clusterIPs", "Invalid value: []string{\"" +
                                                        spec.value("clusterIP", "") + "\"}: " + err);
  }
  spec["clusterIP"] = ip;
  spec["clusterIPs"] = Json::array({ip});
  if (type == "NodePort" || type == "LoadBalancer") {
    std::set<int64_t> used;
    for (const Json* other : store_.List("services", "")) {
      if (MetaStr(*other, "uid") == MetaStr(svc, "uid") && old) continue;
      for (const auto& p : (*other)["spec"].value("ports", Json::array()))
        used.insert(p.value("nodePort", 0));
    }
    for (auto& p : spec["ports"]) {
      int64_t np = p.value("nodePort", 0);
      if (np == 0) {
        for (int tries = 0; tries < 100000 && np == 0; ++tries) {
          int64_t cand = 30000 + static_cast<int64_t>(
                                     std::hash<std::string>{}(NewUid()) % 2768);
          if (!used.count(cand)) np = cand;
        }
        p["nodePort"] = np;
      } else if (used.count(np) && !old) {
        return Invalid(def_, name, "spec.ports[0].nodePort",
                       "Invalid value: " + std::to_string(np) + ": provided port is already allocated");
      }
      used.insert(np);
    }
  }
  return std::nullopt;
}

void ApiServerImpl::EnsureNamespaceDefaults(ApiServer& s, const std::string& ns) {
  Store& st = s.store_;
  if (!st.Get("serviceaccounts", ns, "default")) {
    Json sa = {{"kind", "ServiceAccount"},
               {"apiVersion", "v1"},
               {"metadata",
                {{"name", "default"},
                 {"namespace", ns},
                 {"uid", NewUid()},
                 {"creationTimestamp", NowRfc3339()}}}};
    st.Create("serviceaccounts", schema::Normalize(sa, "ServiceAccount"));
  }
  if (!st.Get("configmaps", ns, "kube-root-ca.crt")) {
    Json cm = {{"kind", "ConfigMap"},
               {"apiVersion", "v1"},
               {"metadata",
                {{"name", "kube-root-ca.crt"},
                 {"namespace", ns},
                 {"uid", NewUid()},
                 {"creationTimestamp", NowRfc3339()},
                 {"annotations",
                  {{"kubernetes.io/description",
                    "Contains a CA bundle that can be used to verify the kube-apiserver when "
                    "using internal endpoints such as the internal service IP or "
                    "kubernetes.default.svc. No other usage is guaranteed across distributions "
                    "of Kubernetes clusters."}}}}},
               {"data", {{"ca.crt", s.config_.ca_pem}}}};
    st.Create("configmaps", schema::Normalize(cm, "ConfigMap"));
  }
}

Response ApiServerImpl::Create() {
  Json body;
  std::string err;
  if (auto bad = ParseBody(req_, &body)) return *bad;
  if (!body.is_object())
    return BadRequest("json: cannot unmarshal " + std::string(body.type_name()) +
                      " into Go value of type " + def_.kind);
  if (route_.sub == "token") return TokenRequest(body);
  if (route_.sub == "binding") return Binding(body);
  if (route_.sub == "eviction") {
    const Json* pod = store_.Get("pods", route_.ns, route_.name);
    if (!pod) return NotFound(def_, route_.name);
    Json empty = Json::object();
    Response r = DeleteObject(*pod, empty);
    if (r.status >= 300) return r;
    return Created201();
  }
  if (!route_.sub.empty()) return NotFoundPath();
  if (def_.resource == "selfsubjectreviews") return SelfSubjectReview();
  if (def_.resource == "subjectaccessreviews") return SubjectAccessReview(body);
  if (def_.resource == "tokenreviews") return TokenReview(body);

  if (def_.group == "events.k8s.io") {
    body["kind"] = "Event";
    body["apiVersion"] = "events.k8s.io/v1";
    body = V1EventToCore(schema::Normalize(body, "EventsV1Event"));
  }
  if (!body.contains("metadata") || !body["metadata"].is_object())
    body["metadata"] = Json::object();
  Json& meta = body["metadata"];
  if (def_.namespaced) {
    std::string ns = meta.value("namespace", "");
    if (!ns.empty() && ns != route_.ns)
      return BadRequest("the namespace of the provided object does not match the namespace "
                        "sent on the request");
    meta["namespace"] = route_.ns;
  } else {
    meta.erase("namespace");
  }
  std::string name = meta.value("name", "");
  if (name.empty()) {
    std::string gen = meta.value("generateName", "");
    if (gen.empty())
      return StatusResponse(
          422, "Invalid",
          def_.kind + " \"\" is invalid: metadata.name: Required value: name or generateName is "
                      "required",
          Json{{"kind", def_.kind},
               {"causes", Json::array({{{"reason", "FieldValueRequired"},
                                        {"message", "Required value: name or generateName is "
                                                    "required"},
                                        {"field", "metadata.name"}}})}});
    for (int i = 0; i < 16; ++i) {
      name = gen + RandomSuffix(5);
      if (!store_.Get(def_.storage, route_.ns, name)) break;
    }
    meta["name"] = name;
  }
  if (auto r = CheckNamespaceForCreate(name)) return *r;
  if (store_.Get(def_.storage, def_.namespaced ? route_.ns : "", name))
    return AlreadyExists(def_, name);
  meta["uid"] = NewUid();
  meta["creationTimestamp"] = NowRfc3339();
  meta.erase("resourceVersion");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  meta.erase("managedFields");
  meta.erase("selfLink");
  meta.erase("generation");
  const std::string& r = def_.storage;
  if (r == "pods") {
    const Json& spec = body.value("spec", Json::object());
    if (!spec.contains("containers") || !spec["containers"].is_array() ||
        spec["containers"].empty())
      return Invalid(def_, name, "spec.containers", "Required value");
    for (size_t i = 0; i < spec["containers"].size(); ++i) {
      if (spec["containers"][i].value("image", "").empty())
        return Invalid(def_, name, "spec.containers[" + std::to_string(i) + "].image",
                       "Required value");
    }
    std::string sa = spec.value("serviceAccountName", spec.value("serviceAccount", "default"));
    if (sa.empty()) sa = "default";
    const Json* sa_obj = store_.Get("serviceaccounts", route_.ns, sa);
    if (!sa_obj)
      return AdmissionForbidden(def_, name, "error looking up service account " + route_.ns +
                                                "/" + sa + ": serviceaccount \"" + sa +
                                                "\" not found");
    bool automount = sa_obj->value("automountServiceAccountToken", true);
    AdmitNewPod(body, automount);
  } else if (r == "services") {
    if (auto err2 = AdmitService(body, nullptr)) return *err2;
  } else if (r == "namespaces") {
    DefaultNamespace(body);
  } else if (r == "nodes") {
    AdmitNewNode(body);
  } else if (r == "secrets") {
    DefaultSecret(body);
  } else if (r == "endpointslices") {
    DefaultEndpointSlice(body);
    meta["generation"] = 1;
  }
  Json stored = store_.Create(r, Canonical(def_, body));
  if (r == "namespaces") EnsureNamespaceDefaults(s_, name);
  return JsonResponse(201, ForClient(def_, stored));
}

Response ApiServerImpl::Binding(const Json& body) {
  const Json* pod = store_.Get("pods", route_.ns, route_.name);
  if (!pod) return NotFound(def_, route_.name);
  std::string node = body.contains("target") ? body["target"].value("name", "") : "";
  Json updated = *pod;
  if (updated["spec"].value("nodeName", "") != "")
    return Conflict(def_, route_.name, "pod " + route_.name + " is already assigned to node \"" +
                                           updated["spec"].value("nodeName", "") + "\"");
  updated["spec"]["nodeName"] = node;
  store_.Update("pods", Canonical(def_, updated));
  return Created201();
}

Response ApiServerImpl::Update() {
  Json body;
  if (auto bad = ParseBody(req_, &body)) return *bad;
  if (!body.is_object()) return BadRequest("body is not an object");
  if (def_.group == "events.k8s.io") {
    body["kind"] = "Event";
    body["apiVersion"] = "events.k8s.io/v1";
    body = V1EventToCore(schema::Normalize(body, "EventsV1Event"));
  }
  std::string name = MetaStr(body, "name");
  if (name != route_.name)
    return BadRequest("the name of the object (" + name +
                      ") does not match the name on the URL (" + route_.name + ")");
  if (def_.namespaced) {
    std::string ns = MetaStr(body, "namespace");
    if (!ns.empty() && ns != route_.ns)
      return BadRequest("the namespace of the provided object does not match the namespace "
                        "sent on the request");
    body["metadata"]["namespace"] = route_.ns;
  }
  const Json* old = store_.Get(def_.storage, route_.ns, route_.name);
  if (!old) {
    // Leases, events and endpoints allow create on update (AllowCreateOnUpdate).
    if (route_.sub.empty() &&
        (def_.storage == "leases" || def_.storage == "events" || def_.storage == "endpoints")) {
      if (auto r = CheckNamespaceForCreate(name)) return *r;
      Json& meta = body["metadata"];
      meta["uid"] = NewUid();
      meta["creationTimestamp"] = NowRfc3339();
      meta.erase("resourceVersion");
      Json stored = store_.Create(def_.storage, Canonical(def_, body));
      return JsonResponse(201, ForClient(def_, stored));
    }
    return NotFound(def_, route_.name);
  }
  std::string uid = MetaStr(body, "uid");
  if (!uid.empty() && uid != MetaStr(*old, "uid"))
    return Conflict(def_, route_.name, "Precondition failed: UID in precondition: " + uid +
                                           ", UID in object meta: " + MetaStr(*old, "uid"));
  return CommitUpdate(*old, body, false);
}

Response ApiServerImpl::Patch() {
  std::string ct = req_.Header("content-type");
  size_t semi = ct.find(';');
  if (semi != std::string::npos) ct = ct.substr(0, semi);
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  const Json* old = store_.Get(def_.storage, route_.ns, route_.name);
  bool apply = ct == "application/apply-patch+yaml" || ct == "application/apply-patch+cbor";
  if (ct != "application/merge-patch+json" && ct != "application/strategic-merge-patch+json" &&
      ct != "application/json-patch+json" && !apply)
    return StatusResponse(415, "UnsupportedMediaType", "415: Unsupported Media Type",
                          Json::object());
  Json patch;
  std::string err;
  if (apply) {
    if (!YamlToJson(req_.body, &patch, &err)) return BadRequest(err);
    if (!req_.HasQuery("fieldManager"))
      return StatusResponse(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch", std::nullopt);
  } else if (!ParseJson(req_.body, &patch, &err)) {
    return BadRequest(err);
  }
  if (!old) {
    if (apply && route_.sub.empty()) {
      // Server-side apply of a new object is a create.
      if (def_.namespaced) patch["metadata"]["namespace"] = route_.ns;
      Request create_req = req_;
      create_req.body = Dump(patch);
      ApiServer::Route route = route_;
      route.verb = "create";
      ApiServerImpl impl(s_, create_req, route);
      return impl.Create();
    }
    return NotFound(def_, route_.name);
  }
  Json current = ForClient(def_, *old);
  Json updated;
  try {
    if (ct == "application/merge-patch+json") {
      updated = ApplyMergePatch(current, patch);
    } else if (ct == "application/json-patch+json") {
      updated = ApplyJsonPatch(current, patch);
    } else {
      if (!patch.is_object()) return BadRequest("patch is not a JSON object");
      updated = ApplyStrategicMergePatch(current, patch, def_.go_type);
    }
  } catch (const std::exception& e) {
    if (ct == "application/json-patch+json")
      return StatusResponse(422, "Invalid", e.what(), std::nullopt);
    return BadRequest(e.what());
  }
  if (!updated.is_object()) return BadRequest("patched object is not a JSON object");
  if (def_.group == "events.k8s.io") updated = V1EventToCore(schema::Normalize(updated, "EventsV1Event"));
  std::string uid = MetaStr(updated, "uid");
  if (uid != MetaStr(*old, "uid")) {
    int times = def_.storage == "pods" && route_.sub == "status" ? 2 : 1;
    return Invalid(def_, route_.name, "metadata.uid",
                   "Invalid value: \"" + uid + "\": field is immutable", times);
  }
  if (MetaStr(updated, "name") != route_.name)
    return Invalid(def_, route_.name, "metadata.name",
                   "Invalid value: \"" + MetaStr(updated, "name") + "\": field is immutable");
  return CommitUpdate(*old, updated, true);
}

Response ApiServerImpl::CommitUpdate(const Json& old, Json updated, bool is_patch) {
  (void)is_patch;
  const std::string& r = def_.storage;
  const std::string& sub = route_.sub;
  if (!updated.contains("metadata") || !updated["metadata"].is_object())
    updated["metadata"] = Json::object();
  Json& meta = updated["metadata"];
  std::string rv = meta.value("resourceVersion", "");
  if (!rv.empty() && rv != MetaStr(old, "resourceVersion"))
    return Conflict(def_, route_.name,
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again");
  const Json& old_meta = old["metadata"];
  meta["uid"] = old_meta["uid"];
  meta["name"] = old_meta["name"];
  if (def_.namespaced) meta["namespace"] = old_meta["namespace"];
  meta["creationTimestamp"] = old_meta["creationTimestamp"];
  for (const char* k : {"deletionTimestamp", "deletionGracePeriodSeconds", "generation"}) {
    if (old_meta.contains(k)) meta[k] = old_meta[k];
    else meta.erase(k);
  }
  meta.erase("managedFields");
  meta.erase("selfLink");
  if (sub == "status" || sub == "finalize") {
    // Status writes change status (and metadata); spec stays as stored.
    if (old.contains("spec")) updated["spec"] = old["spec"];
    if (sub == "finalize") updated["status"] = old.value("status", Json::object());
    if (r == "pods" && old_meta.contains("ownerReferences"))
      meta["ownerReferences"] = old_meta["ownerReferences"];
    else if (r == "pods") meta.erase("ownerReferences");
  } else if (kStatusTypes.count(r)) {
    if (old.contains("status")) updated["status"] = old["status"];
    else updated.erase("status");
  }
  if (r == "pods" && sub.empty()) {
    DefaultPodSpec(updated["spec"]);
    // Only a few pod spec fields are mutable.
    Json a = old["spec"], b = updated["spec"];
    for (Json* s : {&a, &b}) {
      for (const char* list : {"containers", "initContainers"}) {
        if (s->contains(list)) {
          for (auto& c : (*s)[list]) c.erase("image");
        }
      }
      s->erase("activeDeadlineSeconds");
      s->erase("tolerations");
      s->erase("terminationGracePeriodSeconds");
      s->erase("schedulingGates");
    }
    if (schema::Normalize(a, "PodSpec") != schema::Normalize(b, "PodSpec"))
      return StatusResponse(
          422, "Invalid",
          "Pod \"" + route_.name +
              "\" is invalid: spec: Forbidden: pod updates may not change fields other than "
              "`spec.containers[*].image`,`spec.initContainers[*].image`,"
              "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
              "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
              "was previously negative)",
          Json{{"name", route_.name},
               {"kind", "Pod"},
               {"causes", Json::array({{{"reason", "FieldValueForbidden"},
                                        {"message", "Forbidden: pod updates may not change "
                                                    "fields other than ..."},
                                        {"field", "spec"}}})}});
  }
  if (r == "services" && sub.empty()) {
    if (auto err = AdmitService(updated, &old)) return *err;
  }
  if (r == "secrets") DefaultSecret(updated);
  if (r == "namespaces") {
    updated["metadata"]["labels"]["kubernetes.io/metadata.name"] = route_.name;
  }
  if (r == "endpointslices") DefaultEndpointSlice(updated);
  if (r == "nodes" && NodeNameOf(req_.user)) {
    auto bad = ForbiddenNodeLabelChanges(old, updated);
    if (!bad.empty()) {
      std::string list;
      for (const auto& k : bad) list += (list.empty() ? "" : ", ") + k;
      return AdmissionForbidden(def_, route_.name, "is not allowed to modify labels: " + list);
    }
  }
  Json canonical = Canonical(def_, updated);
  if (WithoutVolatile(canonical) == WithoutVolatile(old))
    return JsonResponse(200, ForClient(def_, old));
  if (r == "endpointslices") {
    Json a = WithoutVolatile(canonical), b = WithoutVolatile(old);
    a.erase("metadata");
    b.erase("metadata");
    if (a != b) canonical["metadata"]["generation"] = old_meta.value("generation", 1) + 1;
  }
  Json stored = store_.Update(r, canonical);
  return JsonResponse(200, ForClient(def_, stored));
}

Response ApiServerImpl::Delete() {
  Json options = Json::object();
  if (!req_.body.empty()) {
    std::string err;
    if (!ParseJson(req_.body, &options, &err)) return BadRequest(err);
  }
  if (req_.HasQuery("gracePeriodSeconds")) {
    int64_t g = 0;
    if (ParseInt(req_.Query("gracePeriodSeconds"), &g)) options["gracePeriodSeconds"] = g;
  }
  const Json* obj = store_.Get(def_.storage, route_.ns, route_.name);
  if (!obj) return NotFound(def_, route_.name);
  if (options.contains("preconditions") && options["preconditions"].is_object()) {
    const Json& pre = options["preconditions"];
    std::string uid = pre.value("uid", "");
    std::string kind_msg = "Operation cannot be fulfilled on " + def_.kind + " \"" + route_.name +
                           "\": ";
    if (!uid.empty() && uid != MetaStr(*obj, "uid"))
      return StatusResponse(409, "Conflict",
                            kind_msg + "the UID in the precondition (" + uid +
                                ") does not match the UID in record (" + MetaStr(*obj, "uid") +
                                "). The object might have been deleted and then recreated",
                            Json{{"name", route_.name}, {"kind", def_.kind}});
    std::string rv = pre.value("resourceVersion", "");
    if (!rv.empty() && rv != MetaStr(*obj, "resourceVersion"))
      return StatusResponse(409, "Conflict",
                            kind_msg + "the ResourceVersion in the precondition (" + rv +
                                ") does not match the ResourceVersion in record (" +
                                MetaStr(*obj, "resourceVersion") +
                                "). The object might have been modified",
                            Json{{"name", route_.name}, {"kind", def_.kind}});
  }
  return DeleteObject(*obj, options);
}

Response ApiServerImpl::DeleteObject(const Json& obj_in, const Json& options) {
  Json obj = obj_in;
  const std::string& r = def_.storage;
  std::string name = MetaStr(obj, "name");
  std::string ns = MetaStr(obj, "namespace");
  if (r == "pods") {
    const Json& spec = obj["spec"];
    std::string phase = obj.contains("status") ? obj["status"].value("phase", "") : "";
    int64_t grace = options.contains("gracePeriodSeconds") && !options["gracePeriodSeconds"].is_null()
                        ? options["gracePeriodSeconds"].get<int64_t>()
                        : spec.value("terminationGracePeriodSeconds", 30);
    if (grace < 0) grace = 1;
    bool bound = !spec.value("nodeName", "").empty();
    if (!bound || phase == "Succeeded" || phase == "Failed") grace = 0;
    Json& meta = obj["metadata"];
    bool terminating = meta.contains("deletionTimestamp");
    if (grace > 0) {
      auto now = std::chrono::system_clock::now();
      int64_t current = meta.value("deletionGracePeriodSeconds", grace + 1);
      if (!terminating || grace < current) {
        meta["deletionTimestamp"] = Rfc3339(now + std::chrono::seconds(grace));
        meta["deletionGracePeriodSeconds"] = grace;
        Json stored = store_.Update(r, Canonical(def_, obj));
        return JsonResponse(200, stored);
      }
      return JsonResponse(200, obj);
    }
    if (terminating) {
      // The last graceful step is recorded before the object goes (as the real registry does).
      meta["deletionTimestamp"] = NowRfc3339();
      meta["deletionGracePeriodSeconds"] = 0;
      obj = store_.Update(r, Canonical(def_, obj));
    }
    Json deleted = store_.Delete(r, ns, name);
    return JsonResponse(200, deleted);
  }
  if (r == "namespaces") {
    static const std::set<std::string> kProtected = {"default", "kube-system", "kube-public"};
    if (kProtected.count(name))
      return AdmissionForbidden(def_, name, "this namespace may not be deleted");
    Json& meta = obj["metadata"];
    if (!meta.contains("deletionTimestamp")) {
      meta["deletionTimestamp"] = NowRfc3339();
      obj["status"]["phase"] = "Terminating";
      obj = store_.Update(r, Canonical(def_, obj));
      s_.dirty_ = true;
      s_.controller_cv_.notify_all();
    }
    return JsonResponse(200, obj);
  }
  Json deleted = store_.Delete(r, ns, name);
  if (r == "services") return JsonResponse(200, deleted);
  Json details = Details(def_, name);
  details["uid"] = MetaStr(obj, "uid");
  return JsonResponse(200, StatusBody(200, "", "", details));
}

Response ApiServerImpl::DeleteCollection() {
  LabelSelector ls;
  FieldSelector fs;
  if (auto err = ParseSelectors(&ls, &fs)) return *err;
  Json options = Json::object();
  if (!req_.body.empty()) {
    std::string err;
    if (!ParseJson(req_.body, &options, &err)) return BadRequest(err);
  }
  std::vector<Json> victims;
  for (const Json* obj : store_.List(def_.storage, route_.ns)) {
    if (Matches(*obj, ls, fs)) victims.push_back(*obj);
  }
  Json items = Json::array();
  for (const auto& v : victims) {
    Response r = DeleteObject(v, options);
    items.push_back(StripTypeMeta(v));
  }
  Json list = {{"kind", def_.kind + "List"},
               {"apiVersion", ApiVersionOf(def_)},
               {"metadata", {{"resourceVersion", std::to_string(store_.CurrentRv())}}},
               {"items", items}};
  return JsonResponse(200, list);
}

}  // namespace apiserver
