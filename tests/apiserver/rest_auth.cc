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
