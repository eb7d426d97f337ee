// Authorization of node identities: the Node authorizer (graph of pods bound to the node and
// what they reference), the NodeRestriction admission plugin, and the RBAC rules of the
// system:node ClusterRole plus a system:node-proxier binding for group system:nodes (nodes,
// services, endpoints, endpointslices get/list/watch), as on the reference cluster.
#include <algorithm>
#include <set>

#include "tests/apiserver/internal.h"
#include "tests/apiserver/selectors.h"

namespace apiserver::internal {
namespace {

const char kNoRelationship[] = "no relationship found between node '%s' and this object";

std::string NoRelationship(const std::string& node) {
  std::string s = kNoRelationship;
  s.replace(s.find("%s"), 2, node);
  return s;
}

bool In(const std::string& v, std::initializer_list<const char*> set) {
  for (const char* s : set) {
    if (v == s) return true;
  }
  return false;
}

bool PodBoundTo(const Json* pod, const std::string& node) {
  return pod && pod->contains("spec") && (*pod)["spec"].value("nodeName", "") == node;
}

// True if some pod bound to `node` in `ns` references the object.
bool RelatedToNode(Store& store, const std::string& node, const std::string& kind,
                   const std::string& ns, const std::string& name) {
  for (const Json* pod : store.List("pods", ns)) {
    if (PodBoundTo(pod, node) && PodReferences(*pod, kind, name)) return true;
  }
  return false;
}

// Labels a node may not set on itself (NodeRestriction).
bool ForbiddenNodeLabel(const std::string& key) {
  static const std::set<std::string> kAllowed = {
      "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
      "beta.kubernetes.io/arch", "beta.kubernetes.io/os", "node.kubernetes.io/instance-type",
      "beta.kubernetes.io/instance-type", "topology.kubernetes.io/region",
      "topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
      "failure-domain.beta.kubernetes.io/zone", "node.kubernetes.io/windows-build"};
  size_t slash = key.find('/');
  if (slash == std::string::npos) return false;
  std::string prefix = key.substr(0, slash);
  auto under = [&](const std::string& domain) {
    return prefix == domain ||
           (prefix.size() > domain.size() &&
            prefix.compare(prefix.size() - domain.size() - 1, std::string::npos,
                           "." + domain) == 0);
  };
  if (under("node-restriction.kubernetes.io")) return true;
  if (!under("kubernetes.io") && !under("k8s.io")) return false;
  if (kAllowed.count(key)) return false;
  if (under("kubelet.kubernetes.io") || under("node.kubernetes.io")) return false;
  return true;
}

}  // namespace

bool IsMaster(const UserInfo& user) {
  return std::find(user.groups.begin(), user.groups.end(), "system:masters") != user.groups.end();
}

std::optional<std::string> NodeNameOf(const UserInfo& user) {
  const std::string prefix = "system:node:";
  if (user.name.rfind(prefix, 0) != 0) return std::nullopt;
  if (std::find(user.groups.begin(), user.groups.end(), "system:nodes") == user.groups.end())
    return std::nullopt;
  return user.name.substr(prefix.size());
}

std::optional<Response> AuthorizeNode(Store& store, const UserInfo& user, const Attributes& a) {
  const std::string node = *NodeNameOf(user);
  const ResourceDef& def = *a.def;
  const std::string& r = def.resource;
  const std::string& verb = a.verb;
  auto deny = [&](const std::string& reason) {
    return Forbidden(def, verb, a.ns, a.name, a.sub, user, reason);
  };
  // list/watch with metadata.name=X carries the name for the authorizer (as RequestInfo does).
  std::string name = a.name;
  if ((verb == "list" || verb == "watch") && name.empty() && !a.field_selector.empty()) {
    std::string err;
    if (auto fs = FieldSelector::Parse(a.field_selector, &err)) {
      if (auto n = fs->RequiredValue("metadata.name")) name = *n;
    }
  }

  if (def.group.empty() && r == "nodes") {
    if (a.sub.empty() && In(verb, {"get", "list", "watch"})) return std::nullopt;
    if (a.sub.empty() && verb == "create") {
      if (a.name != node)
        return AdmissionForbidden(def, a.name, "node \"" + node +
                                                   "\" is not allowed to modify node \"" +
                                                   a.name + "\"");
      return std::nullopt;
    }
    if ((a.sub.empty() || a.sub == "status") && In(verb, {"update", "patch", "delete"})) {
      if (a.sub == "status" && verb == "delete") return deny("");
      // NodeRestriction runs after the object is loaded: a missing node is 404 first.
      if (!store.Get("nodes", "", a.name)) return std::nullopt;
      if (a.name != node)
        return AdmissionForbidden(def, a.name, "node \"" + node +
                                                   "\" is not allowed to modify node \"" +
                                                   a.name + "\"");
      return std::nullopt;
    }
    if (a.sub == "status" && verb == "get") return std::nullopt;
    return deny("");
  }
  if (def.group.empty() && r == "pods") {
    if (a.sub.empty() && verb == "get") {
      const Json* pod = store.Get("pods", a.ns, a.name);
      if (PodBoundTo(pod, node)) return std::nullopt;
      return deny(NoRelationship(node));
    }
    if (a.sub.empty() && In(verb, {"list", "watch"})) {
      std::string err;
      auto fs = FieldSelector::Parse(a.field_selector, &err);
      if (fs && fs->RequiredValue("spec.nodeName") == node) return std::nullopt;
      return deny("can only list/watch pods with spec.nodeName field selector");
    }
    if (a.sub.empty() && verb == "create") {
      const Json* body = a.body;
      bool mirror = body && body->contains("metadata") &&
                    (*body)["metadata"].contains("annotations") &&
                    (*body)["metadata"]["annotations"].contains("kubernetes.io/config.mirror");
      if (!mirror)
        return AdmissionForbidden(def, a.name,
                                  "pod does not have \"kubernetes.io/config.mirror\" annotation, "
                                  "node \"" + node + "\" can only create mirror pods");
      if (!body->contains("spec") || (*body)["spec"].value("nodeName", "") != node)
        return AdmissionForbidden(def, a.name,
                                  "node \"" + node + "\" can only create pods with spec.nodeName "
                                  "set to itself");
      return std::nullopt;
    }
    if (a.sub.empty() && verb == "delete") {
      const Json* pod = store.Get("pods", a.ns, a.name);
      if (!pod) return std::nullopt;  // 404
      if (!PodBoundTo(pod, node))
        return AdmissionForbidden(def, a.name, "node \"" + node +
                                                   "\" can only delete pods with spec.nodeName "
                                                   "set to itself");
      return std::nullopt;
    }
    if (a.sub == "status" && In(verb, {"update", "patch"})) {
      const Json* pod = store.Get("pods", a.ns, a.name);
      if (!pod) return std::nullopt;  // 404
      if (!PodBoundTo(pod, node))
        return AdmissionForbidden(def, a.name, "node \"" + node +
                                                   "\" can only update pod status for pods with "
                                                   "spec.nodeName set to itself");
      return std::nullopt;
    }
    if (a.sub == "eviction" && verb == "create") {
      const Json* pod = store.Get("pods", a.ns, a.name);
      if (PodBoundTo(pod, node)) return std::nullopt;
      return deny(NoRelationship(node));
    }
    return deny("");
  }
  if (def.group.empty() && In(r, {"configmaps", "secrets", "persistentvolumeclaims"})) {
    if (In(verb, {"get", "list", "watch"})) {
      if (name.empty()) return deny("No Object name found");
      if (RelatedToNode(store, node, r, a.ns, name)) return std::nullopt;
      return deny(NoRelationship(node));
    }
    return deny("");
  }
  if (def.group.empty() && r == "serviceaccounts") {
    if (a.sub == "token" && verb == "create") {
      if (!RelatedToNode(store, node, r, a.ns, a.name)) return deny(NoRelationship(node));
      // NodeRestriction: the token must be bound to a pod on this node, uid matching.
      const Json* body = a.body;
      const Json bound = body && body->contains("spec")
                             ? (*body)["spec"].value("boundObjectRef", Json(nullptr))
                             : Json(nullptr);
      if (!bound.is_object())
        return AdmissionForbidden(def, a.name, "node requested token not bound to a pod");
      if (bound.value("kind", "") != "Pod")
        return AdmissionForbidden(def, a.name, "node requested token bound to a " +
                                                   bound.value("kind", "") + ", only pods are "
                                                   "allowed");
      const Json* pod = store.Get("pods", a.ns, bound.value("name", ""));
      if (!PodBoundTo(pod, node))
        return AdmissionForbidden(def, a.name, "node requested token bound to a pod scheduled "
                                               "on a different node");
      std::string uid = bound.value("uid", "");
      if (!uid.empty() && uid != (*pod)["metadata"].value("uid", ""))
        return AdmissionForbidden(def, a.name,
                                  "the UID in the bound object reference (" + uid +
                                      ") does not match the UID in record. The object might "
                                      "have been deleted and then recreated");
      return std::nullopt;
    }
    if (a.sub.empty() && In(verb, {"get", "list", "watch"})) {
      if (name.empty()) return deny("No Object name found");
      if (RelatedToNode(store, node, r, a.ns, name)) return std::nullopt;
      return deny(NoRelationship(node));
    }
    return deny("");
  }
  if (def.group == "coordination.k8s.io" && r == "leases") {
    if (In(verb, {"get", "list", "watch"})) {
      if (a.ns == "kube-node-lease") return std::nullopt;
      return deny("");
    }
    if (In(verb, {"create", "update", "patch", "delete"})) {
      if (a.ns != "kube-node-lease") return deny("");
      if (a.name != node)
        return AdmissionForbidden(def, a.name,
                                  "can only access node lease with the same name as the "
                                  "requesting node");
      return std::nullopt;
    }
    return deny("");
  }
  if (r == "events" && (def.group.empty() || def.group == "events.k8s.io")) {
    if (In(verb, {"create", "update", "patch"})) return std::nullopt;
    return deny("");
  }
  if ((def.group.empty() && In(r, {"services", "endpoints"})) ||
      (def.group == "discovery.k8s.io" && r == "endpointslices")) {
    if (a.sub.empty() && In(verb, {"get", "list", "watch"})) return std::nullopt;
    return deny("");
  }
  if (def.group == "authentication.k8s.io" && r == "selfsubjectreviews") return std::nullopt;
  // system:node's rules (which the Node authorizer applies): the kubelet checks who calls its
  // own API with TokenReviews and SubjectAccessReviews.
  if (def.group == "authorization.k8s.io" && r == "subjectaccessreviews" && verb == "create")
    return std::nullopt;
  if (def.group == "authentication.k8s.io" && r == "tokenreviews" && verb == "create")
    return std::nullopt;
  return deny("");
}

}  // namespace apiserver::internal

namespace apiserver::internal {

std::vector<std::string> ForbiddenNodeLabelChanges(const Json& old_obj, const Json& new_obj) {
  auto a = LabelsOf(old_obj);
  auto b = LabelsOf(new_obj);
  std::set<std::string> keys;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end() || it->second != v) keys.insert(k);
  }
  for (const auto& [k, v] : b) {
    if (!a.count(k)) keys.insert(k);
  }
  std::vector<std::string> out;
  for (const auto& k : keys) {
    if (ForbiddenNodeLabel(k)) out.push_back(k);
  }
  return out;
}

}  // namespace apiserver::internal
