// authentication.k8s.io: TokenRequest (serviceaccounts/token) and SelfSubjectReview.
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

Response ApiServerImpl::SelfSubjectReview() {
  Json user = {{"username", req_.user.name}};
  if (!req_.user.uid.empty()) user["uid"] = req_.user.uid;
  user["groups"] = req_.user.groups;
  if (!req_.user.extra.empty()) {
    Json extra = Json::object();
    for (const auto& [k, v] : req_.user.extra) extra[k] = v;
    user["extra"] = extra;
  }
  Json review = {{"kind", "SelfSubjectReview"},
                 {"apiVersion", "authentication.k8s.io/v1"},
                 {"metadata", {{"creationTimestamp", NowRfc3339()}}},
                 {"status", {{"userInfo", user}}}};
  return JsonResponse(201, schema::Normalize(review, "SelfSubjectReview"));
}

// The decision this server would make for the review's subject: system:masters may do anything,
// node identities what the Node authorizer and system:node allow, everyone else nothing (there
// is no RBAC beyond that here). Not persisted; 201 with the review and its status, as the real
// one answers.
Response ApiServerImpl::SubjectAccessReview(const Json& body) {
  Json spec = body.contains("spec") && body["spec"].is_object() ? body["spec"] : Json::object();
  UserInfo who;
  who.name = spec.value("user", "");
  who.uid = spec.value("uid", "");
  if (spec.contains("groups") && spec["groups"].is_array()) {
    for (const auto& g : spec["groups"]) {
      if (g.is_string()) who.groups.push_back(g.get<std::string>());
    }
  }
  who.authenticated = true;
  bool has_resource = spec.contains("resourceAttributes") && spec["resourceAttributes"].is_object();
  bool has_non_resource =
      spec.contains("nonResourceAttributes") && spec["nonResourceAttributes"].is_object();
  std::string invalid;
  if (who.name.empty() && who.groups.empty()) {
    invalid = "spec.user: Invalid value: \"\": at least one of user or group must be specified";
  } else if (has_resource == has_non_resource) {
    invalid = "spec.resourceAttributes: Invalid value: \"null\": exactly one of "
              "nonResourceAttributes or resourceAttributes must be specified";
  }
  if (!invalid.empty()) {
    return StatusResponse(422, "Invalid",
                          "SubjectAccessReview.authorization.k8s.io \"\" is invalid: " + invalid,
                          Json{{"group", "authorization.k8s.io"}, {"kind", "SubjectAccessReview"}});
  }
  bool allowed = false;
  if (IsMaster(who)) {
    allowed = true;
  } else if (NodeNameOf(who) && has_resource) {
    const Json& ra = spec["resourceAttributes"];
    std::string version = ra.value("version", "");
    const ResourceDef* def = FindResource(ra.value("group", ""), version.empty() ? "v1" : version,
                                          ra.value("resource", ""));
    if (def) {
      Attributes a;
      a.def = def;
      a.verb = ra.value("verb", "");
      a.ns = ra.value("namespace", "");
      a.name = ra.value("name", "");
      a.sub = ra.value("subresource", "");
      allowed = !AuthorizeNode(store_, who, a).has_value();
    }
  }
  Json review = {{"kind", "SubjectAccessReview"},
                 {"apiVersion", "authorization.k8s.io/v1"},
                 {"metadata", {{"creationTimestamp", nullptr}}},
                 {"spec", spec},
                 {"status", {{"allowed", allowed}}}};
  return JsonResponse(201, review);
}

// Who a bearer token is, as this server's own authentication sees it (the token file).
Response ApiServerImpl::TokenReview(const Json& body) {
  Json spec = body.contains("spec") && body["spec"].is_object() ? body["spec"] : Json::object();
  std::string token = spec.value("token", "");
  if (token.empty()) return BadRequest("token is required for TokenReview in authentication");
  std::optional<UserInfo> who;
  if (s_.token_authenticator_) who = s_.token_authenticator_(token);
  Json status = Json::object();
  if (who) {
    Json user = {{"username", who->name}};
    if (!who->uid.empty()) user["uid"] = who->uid;
    user["groups"] = who->groups;
    status = {{"authenticated", true}, {"user", user}};
  }
  Json review = {{"kind", "TokenReview"},
                 {"apiVersion", "authentication.k8s.io/v1"},
                 {"metadata", {{"creationTimestamp", nullptr}}},
                 {"spec", spec},
                 {"status", status}};
  return JsonResponse(201, review);
}

Response ApiServerImpl::TokenRequest(const Json& body) {
  const Json* sa = store_.Get("serviceaccounts", route_.ns, route_.name);
  if (!sa) return NotFound(def_, route_.name);
  Json tr = schema::Normalize(body, "TokenRequest");
  Json& spec = tr["spec"];
  int64_t exp = spec.value("expirationSeconds", 3600);
  if (exp < 600)
    return StatusResponse(
        422, "Invalid",
        "TokenRequest.authentication.k8s.io \"" + route_.name +
            "\" is invalid: spec.expirationSeconds: Invalid value: " + std::to_string(exp) +
            ": may not specify a duration less than 10 minutes",
        Json{{"name", route_.name}, {"group", "authentication.k8s.io"}, {"kind", "TokenRequest"}});
  spec["expirationSeconds"] = exp;
  if (!spec["audiences"].is_array() || spec["audiences"].empty())
    spec["audiences"] = Json::array({"https://kubernetes.default.svc.cluster.local"});
  auto now = std::chrono::system_clock::now();
  int64_t iat = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  Json k8s = {{"namespace", route_.ns}};
  if (spec.contains("boundObjectRef") && spec["boundObjectRef"].is_object()) {
    const Json& ref = spec["boundObjectRef"];
    if (ref.value("kind", "") == "Pod") {
      const Json* pod = store_.Get("pods", route_.ns, ref.value("name", ""));
      if (!pod) return NotFound(*FindByStorage("pods"), ref.value("name", ""));
      std::string uid = ref.value("uid", "");
      if (!uid.empty() && uid != MetaStr(*pod, "uid"))
        return Conflict(def_, route_.name,
                        "the UID in the bound object reference (" + uid +
                            ") does not match the UID in record. The object might have been "
                            "deleted and then recreated");
      std::string node = (*pod)["spec"].value("nodeName", "");
      if (!node.empty()) {
        Json n = {{"name", node}};
        if (const Json* nobj = store_.Get("nodes", "", node)) n["uid"] = MetaStr(*nobj, "uid");
        k8s["node"] = n;
      }
      k8s["pod"] = {{"name", MetaStr(*pod, "name")}, {"uid", MetaStr(*pod, "uid")}};
    } else if (ref.value("kind", "") == "Secret") {
      const Json* secret = store_.Get("secrets", route_.ns, ref.value("name", ""));
      if (!secret) return NotFound(*FindByStorage("secrets"), ref.value("name", ""));
      k8s["secret"] = {{"name", MetaStr(*secret, "name")}, {"uid", MetaStr(*secret, "uid")}};
    }
  }
  k8s["serviceaccount"] = {{"name", route_.name}, {"uid", MetaStr(*sa, "uid")}};
  // Like kube-apiserver with --service-account-extend-token-expiration: the kubelet's 3607 s
  // tokens are valid for a year but warn after the requested duration.
  int64_t jwt_exp = iat + exp;
  if (exp == 3607) {
    k8s["warnafter"] = iat + exp;
    jwt_exp = iat + 365 * 24 * 3600;
  }
  Json claims = {{"aud", spec["audiences"]},
                 {"exp", jwt_exp},
                 {"iat", iat},
                 {"iss", "https://kubernetes.default.svc.cluster.local"},
                 {"jti", NewUid()},
                 {"kubernetes.io", k8s},
                 {"nbf", iat},
                 {"sub", "system:serviceaccount:" + route_.ns + ":" + route_.name}};
  tr["kind"] = "TokenRequest";
  tr["apiVersion"] = "authentication.k8s.io/v1";
  tr["metadata"] = {{"name", route_.name},
                    {"namespace", route_.ns},
                    {"creationTimestamp", Rfc3339(now)}};
  tr["status"] = {{"token", SignServiceAccountToken(s_.config_.sa_key_pem, claims)},
                  {"expirationTimestamp", Rfc3339(now + std::chrono::seconds(exp))}};
  return JsonResponse(201, schema::Normalize(tr, "TokenRequest"));
}

}  // namespace apiserver
