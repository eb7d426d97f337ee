#include "tests/apiserver/api_server.h"

#include <algorithm>

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
#include "tests/apiserver/discovery.h"

namespace apiserver {

using namespace internal;
using namespace rest;

Response ApiServerImpl::Serve() {
  const std::string& v = route_.verb;
  if (route_.sub == "log") {
    if (v != "get") return StatusResponse(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", Json::object());
    return PodLog();
  }
  if (route_.sub == "exec") {
    if (v != "get" && v != "create") return StatusResponse(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", Json::object());
    return PodExec();
  }
  if (route_.sub == "portforward") {
    if (v != "get" && v != "create") return StatusResponse(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", Json::object());
    return PodPortForward();
  }
  if (v == "get") return Get();
  if (v == "list") return List();
  if (v == "watch") return Watch();
  if (v == "create") return Create();
  if (v == "update") return Update();
  if (v == "patch") return Patch();
  if (v == "delete") return Delete();
  if (v == "deletecollection") return DeleteCollection();
  return StatusResponse(405, "MethodNotAllowed",
                        "the server does not allow this method on the requested resource",
                        Json::object());
}

// ---------------------------------------------------------------------------------------------

ApiServer::ApiServer(ServerConfig config) : config_(std::move(config)) {
  store_.SetOnChange([this](const WatchEvent&) {
    dirty_ = true;
    controller_cv_.notify_all();
  });
  Bootstrap();
}

ApiServer::~ApiServer() { StopControllers(); }

void ApiServer::Bootstrap() {
  auto lock = store_.Lock();
  for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
    Json obj = {{"kind", "Namespace"}, {"apiVersion", "v1"},
                {"metadata", {{"name", ns}, {"uid", NewUid()}, {"creationTimestamp", NowRfc3339()}}}};
    DefaultNamespace(obj);
    store_.Create("namespaces", schema::Normalize(obj, "Namespace"));
    ApiServerImpl::EnsureNamespaceDefaults(*this, ns);
  }
  // default/kubernetes points at this server, like the apiserver's endpoint reconciler does.
  std::string err;
  auto cidr = ParseCidr(config_.service_cidr);
  std::string first_ip = cidr ? IpString(cidr->base + 1) : "10.96.0.1";
  std::string host = config_.advertise_address;
  int64_t port = 443;
  size_t colon = host.rfind(':');
  if (colon != std::string::npos) {
    port = std::stoll(host.substr(colon + 1));
    host = host.substr(0, colon);
  }
  Json svc = {{"kind", "Service"}, {"apiVersion", "v1"},
              {"metadata", {{"name", "kubernetes"}, {"namespace", "default"}, {"uid", NewUid()},
                            {"creationTimestamp", NowRfc3339()},
                            {"labels", {{"component", "apiserver"}, {"provider", "kubernetes"}}}}},
              {"spec", {{"ports", Json::array({{{"name", "https"}, {"protocol", "TCP"},
                                                {"port", 443}, {"targetPort", port}}})},
                        {"clusterIP", first_ip}, {"clusterIPs", Json::array({first_ip})},
                        {"type", "ClusterIP"}, {"sessionAffinity", "None"},
                        {"ipFamilies", Json::array({"IPv4"})}, {"ipFamilyPolicy", "SingleStack"},
                        {"internalTrafficPolicy", "Cluster"}}}};
  store_.Create("services", schema::Normalize(svc, "Service"));
  // Like the apiserver's endpoint reconciler, never publish a loopback address.
  auto host_ip = ParseIp(host);
  if (host_ip && (*host_ip >> 24) != 127) {
    Json slice = {{"kind", "EndpointSlice"}, {"apiVersion", "discovery.k8s.io/v1"},
                  {"metadata", {{"name", "kubernetes"}, {"namespace", "default"},
                                {"uid", NewUid()}, {"generation", 1},
                                {"creationTimestamp", NowRfc3339()},
                                {"labels", {{"kubernetes.io/service-name", "kubernetes"}}}}},
                  {"addressType", "IPv4"},
                  {"endpoints", Json::array({{{"addresses", Json::array({host})},
                                              {"conditions", {{"ready", true}}}}})},
                  {"ports", Json::array({{{"name", "https"}, {"protocol", "TCP"},
                                          {"port", port}}})}};
    store_.Create("endpointslices", schema::Normalize(slice, "EndpointSlice"));
    Json ep = {{"kind", "Endpoints"}, {"apiVersion", "v1"},
               {"metadata", {{"name", "kubernetes"}, {"namespace", "default"}, {"uid", NewUid()},
                             {"creationTimestamp", NowRfc3339()},
                             {"labels", {{"endpointslice.kubernetes.io/skip-mirror", "true"}}}}},
               {"subsets", Json::array({{{"addresses", Json::array({{{"ip", host}}})},
                                         {"ports", Json::array({{{"name", "https"},
                                                                 {"port", port},
                                                                 {"protocol", "TCP"}}})}}})}};
    store_.Create("endpoints", schema::Normalize(ep, "Endpoints"));
  }
}

Response ApiServer::HandleNonResource(const Request& req) {
  const std::string& p = req.path;
  bool pretty = StartsWith(req.Header("user-agent"), "curl") ||
                StartsWith(req.Header("user-agent"), "Wget") || req.Query("pretty") == "true";
  auto reply = [&](const Json& j) {
    Response r;
    r.body = pretty ? DumpPretty(j) + "\n" : Dump(j) + "\n";
    return r;
  };
  if (p == "/healthz" || p == "/readyz" || p == "/livez" || StartsWith(p, "/healthz/") ||
      StartsWith(p, "/readyz/") || StartsWith(p, "/livez/")) {
    Response r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "ok";
    return r;
  }
  if (p == "/version" || p == "/version/") {
    Response r;
    r.body = DumpPretty(VersionInfo());
    return r;
  }
  bool authenticated = req.user.authenticated;
  if (!authenticated) {
    return StatusResponse(403, "Forbidden",
                          "forbidden: User \"system:anonymous\" cannot get path \"" + p + "\"",
                          Json::object());
  }
  if (p == "/openapi/v2") {
    // A valid OpenAPI v2 document without definitions: kubectl's client-side validation
    // then has no schema to check against and leaves validation to the server.
    Response r;
    if (req.Header("accept").find("protobuf") != std::string::npos) {
      r.content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
      r.body = std::string("\x0a\x03" "2.0", 5);  // Document{swagger: "2.0"}
    } else {
      r.body = Dump(Json{{"swagger", "2.0"},
                         {"info", {{"title", "Kubernetes"}, {"version", "v1.32.5"}}},
                         {"paths", Json::object()},
                         {"definitions", Json::object()}});
    }
    return r;
  }
  if (p == "/api" || p == "/api/") return reply(ApiVersions(config_.advertise_address));
  if (p == "/apis" || p == "/apis/") return reply(ApiGroupList());
  auto parts = SplitPath(p);
  if (parts.size() == 2 && parts[0] == "api") {
    if (auto l = ApiResourceList("", parts[1])) return reply(*l);
  }
  if (parts.size() == 2 && parts[0] == "apis") {
    if (auto g = ApiGroup(parts[1])) return reply(*g);
  }
  if (parts.size() == 3 && parts[0] == "apis") {
    if (auto l = ApiResourceList(parts[1], parts[2])) return reply(*l);
  }
  return NotFoundPath();
}

Response ApiServer::Handle(const Request& req) {
  if (req.bad_credentials)
    return StatusResponse(401, "Unauthorized", "Unauthorized", std::nullopt);
  auto parts = SplitPath(req.path);
  size_t i = 0;
  std::string group, version;
  if (parts.size() >= 3 && parts[0] == "api") {
    version = parts[1];
    i = 2;
  } else if (parts.size() >= 4 && parts[0] == "apis") {
    group = parts[1];
    version = parts[2];
    i = 3;
  } else {
    return HandleNonResource(req);
  }
  Route route;
  std::vector<std::string> rest(parts.begin() + static_cast<std::ptrdiff_t>(i), parts.end());
  if (rest.size() >= 2 && rest[0] == "namespaces" &&
      (rest.size() >= 3 && rest[2] != "status" && rest[2] != "finalize")) {
    route.ns = rest[1];
    rest.erase(rest.begin(), rest.begin() + 2);
  }
  route.def = FindResource(group, version, rest[0]);
  if (!route.def) return NotFoundPath();
  if (rest.size() >= 2) route.name = rest[1];
  if (rest.size() >= 3) route.sub = rest[2];
  if (rest.size() > 3) return NotFoundPath();
  if (!route.sub.empty()) {
    const auto& subs = route.def->subresources;
    if (std::find(subs.begin(), subs.end(), route.sub) == subs.end()) return NotFoundPath();
  }
  if (route.def->namespaced == false && !route.ns.empty()) return NotFoundPath();
  const std::string& m = req.method;
  if (m == "GET" || m == "HEAD") {
    if (route.name.empty())
      route.verb = IsTrue(req.Query("watch")) ? "watch" : "list";
    else
      route.verb = "get";
  } else if (m == "POST") {
    route.verb = "create";
    if (!route.name.empty() && route.sub.empty()) return StatusResponse(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", Json::object());
  } else if (m == "PUT") {
    route.verb = "update";
  } else if (m == "PATCH") {
    route.verb = "patch";
  } else if (m == "DELETE") {
    route.verb = route.name.empty() ? "deletecollection" : "delete";
  } else {
    return StatusResponse(405, "MethodNotAllowed",
                          "the server does not allow this method on the requested resource",
                          Json::object());
  }
  if ((route.verb == "update" || route.verb == "patch") && route.name.empty())
    return StatusResponse(405, "MethodNotAllowed",
                          "the server does not allow this method on the requested resource",
                          Json::object());
  return Serve(req, route);
}

Response ApiServer::Serve(const Request& req, Route& route) {
  auto lock = store_.Lock();
  const ResourceDef& def = *route.def;
  // The name of a created object is in the body; the authorizer and admission need it.
  Json body;
  bool has_body = false;
  if ((route.verb == "create" || route.verb == "update") && !req.body.empty()) {
    has_body = !ParseBody(req, &body) && body.is_object();
  }
  Attributes attrs;
  attrs.def = &def;
  attrs.verb = route.verb;
  attrs.ns = route.ns;
  attrs.name = route.name;
  attrs.sub = route.sub;
  attrs.field_selector = req.Query("fieldSelector");
  attrs.body = has_body ? &body : nullptr;
  if (route.verb == "create" && route.name.empty() && has_body && body.contains("metadata"))
    attrs.name = body["metadata"].value("name", "");
  if (!req.user.authenticated) {
    UserInfo anon{"system:anonymous", "", {"system:unauthenticated"}, {}, false};
    return Forbidden(def, route.verb, route.ns, attrs.name, route.sub, anon, "");
  }
  if (IsMaster(req.user)) {
    // allowed
  } else if (NodeNameOf(req.user)) {
    if (auto denied = AuthorizeNode(store_, req.user, attrs)) return *denied;
  } else if (def.resource == "selfsubjectreviews") {
    // system:basic-user
  } else {
    return Forbidden(def, route.verb, route.ns, attrs.name, route.sub, req.user, "");
  }
  ApiServerImpl impl(*this, req, route);
  return impl.Serve();
}

}  // namespace apiserver
