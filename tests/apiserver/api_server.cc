#include "tests/apiserver/api_server.h"

#include <arpa/inet.h>

#include <algorithm>
#include <set>

#include "base/log.h"
#include "base/time.h"
#include "tests/apiserver/defaults.h"
#include "tests/apiserver/discovery.h"
#include "tests/apiserver/internal.h"
#include "tests/apiserver/patch.h"
#include "tests/apiserver/schema.h"
#include "tests/apiserver/selectors.h"
#include "tests/apiserver/table.h"
#include "tests/apiserver/util.h"
#include "tests/apiserver/yaml_json.h"

namespace apiserver {

using namespace internal;

struct ApiServer::Route {
  const ResourceDef* def = nullptr;
  std::string ns;
  std::string name;
  std::string sub;
  std::string verb;
};

namespace {

Response JsonResponse(int status, const Json& body) {
  Response r;
  r.status = status;
  r.body = Dump(body);
  return r;
}

Response NotFoundPath() {
  return StatusResponse(404, "NotFound", "the server could not find the requested resource",
                        Json::object());
}

std::vector<std::string> SplitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) out.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsTrue(const std::string& v) { return v == "true" || v == "1"; }

bool StartsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

const std::set<std::string> kStatusTypes = {"pods", "nodes", "services", "namespaces"};

// Object as stored: Go struct order and kind/apiVersion first.
Json Canonical(const ResourceDef& def, Json obj) {
  obj["kind"] = def.kind;
  obj["apiVersion"] = ApiVersionOf(def);
  const ResourceDef* storage_def = FindByStorage(def.storage);
  return schema::Normalize(obj, storage_def ? storage_def->go_type : def.go_type);
}

// Object as the client of `def` sees it (events.k8s.io reads core events).
Json ForClient(const ResourceDef& def, const Json& stored) {
  if (def.group == "events.k8s.io") return CoreEventToV1(stored);
  return stored;
}

Json StripTypeMeta(Json obj) {
  obj.erase("kind");
  obj.erase("apiVersion");
  return obj;
}

std::string MetaStr(const Json& obj, const char* key) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return "";
  const Json& m = obj["metadata"];
  auto it = m.find(key);
  if (it == m.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

bool ParseInt(const std::string& s, int64_t* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  long long v = strtoll(s.c_str(), &end, 10);
  if (*end != '\0') return false;
  *out = v;
  return true;
}

// IPv4 helpers for service and pod CIDR allocation.
struct Cidr {
  uint32_t base = 0;
  int bits = 32;
  uint32_t size() const { return bits == 0 ? 0xffffffffu : (1u << (32 - bits)); }
};

std::optional<Cidr> ParseCidr(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return std::nullopt;
  in_addr a{};
  if (inet_pton(AF_INET, s.substr(0, slash).c_str(), &a) != 1) return std::nullopt;
  Cidr c;
  c.bits = std::stoi(s.substr(slash + 1));
  c.base = ntohl(a.s_addr);
  if (c.bits < 32) c.base &= ~(c.size() - 1);
  return c;
}

std::string IpString(uint32_t ip) {
  in_addr a{};
  a.s_addr = htonl(ip);
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

std::optional<uint32_t> ParseIp(const std::string& s) {
  in_addr a{};
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

Json WithoutVolatile(Json obj) {
  if (obj.contains("metadata")) {
    obj["metadata"].erase("resourceVersion");
    obj["metadata"].erase("managedFields");
  }
  return obj;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

class ApiServerImpl {
 public:
  ApiServerImpl(ApiServer& s, const Request& req, ApiServer::Route& route)
      : s_(s), store_(s.store_), req_(req), route_(route), def_(*route.def) {}

  Response Serve();

  // Bootstrap helpers (also used by the namespace create path).
  static void EnsureNamespaceDefaults(ApiServer& s, const std::string& ns);
  static std::string AllocateClusterIp(ApiServer& s, const std::string& requested,
                                       std::string* error);

 private:
  Response Get();
  Response List();
  Response Watch();
  Response Create();
  Response Update();
  Response Patch();
  Response Delete();
  Response DeleteCollection();
  Response TokenRequest(const Json& body);
  Response SelfSubjectReview();
  Response PodLog();
  Response Binding(const Json& body);
  bool WantsTable();
  Response TableResponse(const std::vector<Json>& objects, const std::string& rv);

  // Validates and stores `updated` as the new version of `old` (PUT and PATCH).
  Response CommitUpdate(const Json& old, Json updated, bool is_patch);
  Response DeleteObject(const Json& obj, const Json& options);
  bool Matches(const Json& obj, const LabelSelector& ls, const FieldSelector& fs);
  std::optional<Response> ParseSelectors(LabelSelector* ls, FieldSelector* fs);
  std::optional<Response> CheckNamespaceForCreate(const std::string& name);
  std::optional<Response> AdmitService(Json& svc, const Json* old);

  ApiServer& s_;
  Store& store_;
  const Request& req_;
  ApiServer::Route& route_;
  const ResourceDef& def_;
};

Response ApiServerImpl::Serve() {
  const std::string& v = route_.verb;
  if (route_.sub == "log") {
    if (v != "get") return StatusResponse(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", Json::object());
    return PodLog();
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

std::optional<Response> ApiServerImpl::ParseSelectors(LabelSelector* ls, FieldSelector* fs) {
  std::string err;
  auto l = LabelSelector::Parse(req_.Query("labelSelector"), &err);
  if (!l) return BadRequest("unable to parse requirement: " + err);
  auto f = FieldSelector::Parse(req_.Query("fieldSelector"), &err);
  if (!f) return BadRequest(err);
  // Field selectors are limited to the fields a resource supports.
  static const Json kEmpty = Json::object();
  auto supported = FieldsOf(def_, kEmpty);
  for (const auto& r : f->requirements()) {
    if (!supported.count(r.key))
      return BadRequest("field label not supported: " + r.key);
  }
  *ls = *l;
  *fs = *f;
  return std::nullopt;
}

bool ApiServerImpl::Matches(const Json& obj, const LabelSelector& ls, const FieldSelector& fs) {
  return ls.Matches(LabelsOf(obj)) && fs.Matches(FieldsOf(def_, obj));
}

Response ApiServerImpl::Get() {
  const Json* obj = store_.Get(def_.storage, route_.ns, route_.name);
  if (!obj) return NotFound(def_, route_.name);
  if (WantsTable()) return TableResponse({ForClient(def_, *obj)}, "");
  return JsonResponse(200, ForClient(def_, *obj));
}

bool ApiServerImpl::WantsTable() {
  std::string accept = req_.Header("accept");
  return accept.find("as=Table") != std::string::npos &&
         accept.find("g=meta.k8s.io") != std::string::npos;
}

Response ApiServerImpl::TableResponse(const std::vector<Json>& objects, const std::string& rv) {
  std::string include = req_.Query("includeObject", "Metadata");
  Json table = ToTable(def_.resource, objects, rv, include);
  Response r = JsonResponse(200, table);
  r.content_type = "application/json;as=Table;v=v1;g=meta.k8s.io";
  return r;
}

Response ApiServerImpl::List() {
  LabelSelector ls;
  FieldSelector fs;
  if (auto err = ParseSelectors(&ls, &fs)) return *err;
  std::string rv = req_.Query("resourceVersion");
  std::string match = req_.Query("resourceVersionMatch");
  if (!rv.empty()) {
    int64_t n = 0;
    if (!ParseInt(rv, &n))
      return StatusResponse(500, "InternalError", "Internal error occurred: strconv.ParseUint: parsing \"" + rv + "\": invalid syntax", Json::object());
    if (match == "Exact" && n < store_.CompactedRv())
      return StatusResponse(410, "Expired", "The resourceVersion for the provided list is too old.",
                            std::nullopt);
  }
  Json items = Json::array();
  if (WantsTable()) {
    std::vector<Json> objects;
    for (const Json* obj : store_.List(def_.storage, route_.ns)) {
      if (Matches(*obj, ls, fs)) objects.push_back(ForClient(def_, *obj));
    }
    return TableResponse(objects, std::to_string(store_.CurrentRv()));
  }
  for (const Json* obj : store_.List(def_.storage, route_.ns)) {
    if (!Matches(*obj, ls, fs)) continue;
    items.push_back(StripTypeMeta(ForClient(def_, *obj)));
  }
  Json list = {{"kind", def_.kind + "List"},
               {"apiVersion", ApiVersionOf(def_)},
               {"metadata", {{"resourceVersion", std::to_string(store_.CurrentRv())}}},
               {"items", items}};
  return JsonResponse(200, list);
}

Response ApiServerImpl::Watch() {
  LabelSelector ls;
  FieldSelector fs;
  if (auto err = ParseSelectors(&ls, &fs)) return *err;
  const ResourceDef* def = &def_;
  std::string rv_text = req_.Query("resourceVersion");
  bool bookmarks = IsTrue(req_.Query("allowWatchBookmarks"));
  bool send_initial = IsTrue(req_.Query("sendInitialEvents"));
  int64_t timeout_s = 1800;
  if (req_.HasQuery("timeoutSeconds")) ParseInt(req_.Query("timeoutSeconds"), &timeout_s);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);

  auto filter = [def, ls, fs](const Json& obj) {
    return ls.Matches(LabelsOf(obj)) && fs.Matches(FieldsOf(*def, obj));
  };
  auto watcher = std::make_shared<Watcher>(def_.storage, route_.ns, filter);
  int64_t from = 0;
  bool initial = rv_text.empty() || rv_text == "0" || send_initial;
  if (!rv_text.empty() && !ParseInt(rv_text, &from))
    return BadRequest("resourceVersion: Invalid value: \"" + rv_text + "\": invalid value");
  if (initial) {
    for (const Json* obj : store_.List(def_.storage, route_.ns)) {
      if (filter(*obj)) watcher->Push("ADDED", *obj);
    }
    from = store_.CurrentRv();
  }
  bool ok = store_.AddWatcher(watcher, def_.storage, from);
  Response r;
  if (!ok) {
    Json status = StatusBody(410, "Expired",
                             "too old resource version: " + rv_text + " (" +
                                 std::to_string(store_.CompactedRv()) + ")",
                             std::nullopt);
    std::string line = Dump(Json{{"type", "ERROR"}, {"object", status}}) + "\n";
    r.stream = [line](const ChunkWriter& write) { write(line); };
    return r;
  }
  Store* store = &store_;
  auto interval = s_.config_.bookmark_interval;
  bool initial_end_marker = send_initial;
  int64_t initial_rv = from;
  r.stream = [=](const ChunkWriter& write) {
    auto bookmark = [&](int64_t rv, bool end_marker) {
      Json obj = {{"kind", def->kind},
                  {"apiVersion", ApiVersionOf(*def)},
                  {"metadata", {{"resourceVersion", std::to_string(rv)}}}};
      if (end_marker)
        obj["metadata"]["annotations"] = {{"k8s.io/initial-events-end", "true"}};
      const ResourceDef* sd = FindByStorage(def->storage);
      obj = schema::Normalize(obj, def->group == "events.k8s.io" ? def->go_type : sd->go_type);
      return write(Dump(Json{{"type", "BOOKMARK"}, {"object", obj}}) + "\n");
    };
    auto last_bookmark = std::chrono::steady_clock::now();
    bool alive = true;
    bool initial_done = !initial_end_marker;
    while (alive) {
      auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      if (!initial_done && !watcher->HasPending()) {
        alive = bookmark(initial_rv, true);
        initial_done = true;
        continue;
      }
      auto wait = std::min<std::chrono::steady_clock::duration>(deadline - now, interval);
      auto ev = watcher->Next(std::chrono::duration_cast<std::chrono::milliseconds>(wait));
      if (ev) {
        alive = write(Dump(Json{{"type", ev->first}, {"object", ForClient(*def, ev->second)}}) +
                      "\n");
        continue;
      }
      if (watcher->closed()) break;
      if (bookmarks && std::chrono::steady_clock::now() - last_bookmark >= interval) {
        int64_t rv;
        {
          auto lock = store->Lock();
          if (watcher->HasPending()) continue;
          rv = store->CurrentRv();
        }
        alive = bookmark(rv, false);
        last_bookmark = std::chrono::steady_clock::now();
      }
    }
    if (alive && bookmarks) {
      auto lock = store->Lock();
      if (!watcher->HasPending()) {
        int64_t rv = store->CurrentRv();
        lock.unlock();
        bookmark(rv, false);
      }
    }
    auto lock = store->Lock();
    store->RemoveWatcher(watcher);
  };
  return r;
}

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

// Request bodies in JSON or YAML (as the real server accepts); protobuf is not supported here.
static std::optional<Response> ParseBody(const Request& req, Json* body) {
  std::string ct = req.Header("content-type");
  std::string err;
  if (ct.find("protobuf") != std::string::npos || ct.find("cbor") != std::string::npos)
    return StatusResponse(415, "UnsupportedMediaType",
                          "the body of the request was in an unknown format - accepted media "
                          "types include: application/json, application/yaml",
                          Json::object());
  if (ct.rfind("application/yaml", 0) == 0) {
    if (!YamlToJson(req.body, body, &err)) return BadRequest(err);
    return std::nullopt;
  }
  if (!ParseJson(req.body, body, &err)) return BadRequest(err);
  return std::nullopt;
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
    return JsonResponse(201, StatusBody(201, "", "", std::nullopt));
  }
  if (!route_.sub.empty()) return NotFoundPath();
  if (def_.resource == "selfsubjectreviews") return SelfSubjectReview();

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
  return JsonResponse(201, StatusBody(201, "", "", std::nullopt));
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

Response ApiServerImpl::PodLog() {
  const Json* pod = store_.Get("pods", route_.ns, route_.name);
  if (!pod) return NotFound(def_, route_.name);
  const Json& spec = (*pod)["spec"];
  std::vector<std::string> names, init_names;
  for (const auto& c : spec.value("containers", Json::array())) names.push_back(c.value("name", ""));
  for (const auto& c : spec.value("initContainers", Json::array()))
    init_names.push_back(c.value("name", ""));
  std::string container = req_.Query("container");
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& n : v) s += (s.empty() ? "" : " ") + n;
    return s;
  };
  if (container.empty()) {
    if (names.size() == 1) {
      container = names[0];
    } else {
      std::string msg = "a container name must be specified for pod " + route_.name +
                        ", choose one of: [" + join(names) + "]";
      if (!init_names.empty()) msg += " or one of the init containers: [" + join(init_names) + "]";
      return BadRequest(msg);
    }
  }
  bool known = std::find(names.begin(), names.end(), container) != names.end() ||
               std::find(init_names.begin(), init_names.end(), container) != init_names.end();
  for (const auto& c : spec.value("ephemeralContainers", Json::array()))
    known = known || c.value("name", "") == container;
  if (!known)
    return BadRequest("container " + container + " is not valid for pod " + route_.name);
  std::string node_name = spec.value("nodeName", "");
  if (node_name.empty()) return BadRequest("pod " + route_.name + " does not have a host assigned");
  const Json* node = store_.Get("nodes", "", node_name);
  if (!node)
    return StatusResponse(404, "NotFound", "nodes \"" + node_name + "\" not found",
                          Json{{"name", node_name}, {"kind", "nodes"}});
  std::string ip;
  const Json& status = node->value("status", Json::object());
  for (const auto& a : status.value("addresses", Json::array())) {
    if (a.value("type", "") == "InternalIP" && ip.empty()) ip = a.value("address", "");
  }
  if (ip.empty()) {
    for (const auto& a : status.value("addresses", Json::array())) {
      if (a.value("type", "") == "Hostname" && ip.empty()) ip = a.value("address", "");
    }
  }
  int64_t port = 10250;
  if (status.contains("daemonEndpoints") &&
      status["daemonEndpoints"].contains("kubeletEndpoint"))
    port = status["daemonEndpoints"]["kubeletEndpoint"].value("Port", 10250);
  if (ip.empty() || port <= 0)
    return StatusResponse(500, "InternalError",
                          "Internal error occurred: node " + node_name + " has no address",
                          Json{{"causes", Json::array({{{"message", "node has no address"}}})}});
  std::string host = ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
  std::string url = "https://" + host + ":" + std::to_string(port) + "/containerLogs/" +
                    route_.ns + "/" + route_.name + "/" + container;
  std::string q;
  for (const char* flag : {"follow", "previous", "timestamps"}) {
    if (IsTrue(req_.Query(flag))) q += std::string(q.empty() ? "?" : "&") + flag + "=true";
  }
  for (const char* key : {"sinceSeconds", "sinceTime", "tailLines", "limitBytes"}) {
    if (req_.HasQuery(key))
      q += std::string(q.empty() ? "?" : "&") + key + "=" + UrlEncode(req_.Query(key));
  }
  Response r;
  r.proxy_url = url + q;
  r.content_type = "text/plain";
  return r;
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
