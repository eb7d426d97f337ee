#pragma once
// Shared internals of the test API server's REST implementation (not a public interface).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tests/apiserver/api_server.h"
#include "tests/apiserver/json.h"

namespace apiserver::internal {

struct ResourceDef {
  std::string group;
  std::string version;
  std::string resource;   // plural, as in URLs
  std::string singular;
  std::string kind;
  std::string go_type;    // schema type name
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> verbs;
  std::string storage;    // store key (events.k8s.io events share core "events")
  std::vector<std::string> subresources;  // e.g. "status", "log", "token"
};

const std::vector<ResourceDef>& Resources();
const ResourceDef* FindResource(const std::string& group, const std::string& version,
                                const std::string& resource);
const ResourceDef* FindByStorage(const std::string& storage);

std::string ApiVersionOf(const ResourceDef& def);
// "pods" or "leases.coordination.k8s.io"
std::string QualifiedResource(const ResourceDef& def);

Json StatusBody(int code, const std::string& reason, const std::string& message,
                std::optional<Json> details);
Response StatusResponse(int code, const std::string& reason, const std::string& message,
                        std::optional<Json> details);
Json Details(const ResourceDef& def, const std::string& name);
Response NotFound(const ResourceDef& def, const std::string& name);
Response AlreadyExists(const ResourceDef& def, const std::string& name);
Response Conflict(const ResourceDef& def, const std::string& name, const std::string& why);
Response BadRequest(const std::string& message);
Response Invalid(const ResourceDef& def, const std::string& name, const std::string& field,
                 const std::string& detail, int times = 1);
// RBAC-style denial: `<res> "<name>" is forbidden: User "u" cannot <verb> resource ...`.
Response Forbidden(const ResourceDef& def, const std::string& verb, const std::string& ns,
                   const std::string& name, const std::string& sub, const UserInfo& user,
                   const std::string& reason);
// Admission-style denial: `<res> "<name>" is forbidden: <reason>`.
Response AdmissionForbidden(const ResourceDef& def, const std::string& name,
                            const std::string& reason);

// The request as the authorizer sees it.
struct Attributes {
  const ResourceDef* def = nullptr;
  std::string verb;  // get list watch create update patch delete deletecollection
  std::string ns;
  std::string name;
  std::string sub;
  std::string field_selector;
  const Json* body = nullptr;  // parsed body for create/update (may be null)
};

// Node authorizer + NodeRestriction + RBAC (system:node, node-proxier binding). Returns a
// denial response, or nullopt when allowed. Runs with the store lock held.
std::optional<Response> AuthorizeNode(Store& store, const UserInfo& user, const Attributes& a);
bool IsMaster(const UserInfo& user);
// Label keys changed between two Node objects that NodeRestriction forbids a node to touch.
std::vector<std::string> ForbiddenNodeLabelChanges(const Json& old_obj, const Json& new_obj);
std::optional<std::string> NodeNameOf(const UserInfo& user);

// Field values a resource supports in field selectors.
std::map<std::string, std::string> FieldsOf(const ResourceDef& def, const Json& obj);
std::map<std::string, std::string> LabelsOf(const Json& obj);

// Service account token (JWT RS256) as the real TokenRequest endpoint issues it.
std::string SignServiceAccountToken(const std::string& key_pem, const Json& claims);

// events.k8s.io/v1 <-> core/v1 Event.
Json CoreEventToV1(const Json& core);
Json V1EventToCore(const Json& v1);

// True if `pod` (bound to some node) references configmap/secret/... `name` of `kind`
// ("configmaps", "secrets", "serviceaccounts", "persistentvolumeclaims").
bool PodReferences(const Json& pod, const std::string& kind, const std::string& name);

}  // namespace apiserver::internal
