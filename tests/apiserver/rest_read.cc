// Reads: get, list, watch, server-side tables and the pod log proxy.
#include "base/log.h"
#include "base/strings.h"
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
  if (rv.empty() && !match.empty())
    return StatusResponse(422, "Invalid",
                          "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: "
                          "Forbidden: resourceVersionMatch is forbidden unless resourceVersion "
                          "is provided",
                          Json{{"group", "meta.k8s.io"}, {"kind", "ListOptions"}});
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
  bool table = WantsTable();
  std::string include = req_.Query("includeObject", "Metadata");
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
        Json obj = ForClient(*def, ev->second);
        if (table) obj = ToTable(def->resource, {obj}, "", include);
        alive = write(Dump(Json{{"type", ev->first}, {"object", obj}}) + "\n");
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

std::optional<Response> ApiServerImpl::KubeletLocation(std::string* base,
                                                       std::string* container_out) {
  const Json* pod = store_.Get("pods", route_.ns, route_.name);
  if (!pod) return NotFound(def_, route_.name);
  const Json& spec = (*pod)["spec"];
  std::string container;
  if (container_out) {
    std::vector<std::string> names, init_names;
    for (const auto& c : spec.value("containers", Json::array())) names.push_back(c.value("name", ""));
    for (const auto& c : spec.value("initContainers", Json::array()))
      init_names.push_back(c.value("name", ""));
    container = req_.Query("container");
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
  }
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
  *base = "https://" + host + ":" + std::to_string(port);
  if (container_out) *container_out = container;
  return std::nullopt;
}

Response ApiServerImpl::PodLog() {
  std::string base, container;
  if (auto err = KubeletLocation(&base, &container)) return *err;
  std::string url = base + "/containerLogs/" + route_.ns + "/" + route_.name + "/" + container;
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

// pods/exec (K:pkg/registry/core/pod/strategy.go ExecLocation + streamParams): PodExecOptions
// from the query (bools as the API machinery's query conversion: present and not 0/f/false),
// then the kubelet's /exec with stdin/stdout/stderr/tty=1 and the command.
Response ApiServerImpl::PodExec() {
  auto query_bool = [&](const char* key) {
    if (!req_.HasQuery(key)) return false;
    std::string v = req_.Query(key);
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return !(v == "0" || v == "f" || v == "false");
  };
  std::string base, container;
  if (auto err = KubeletLocation(&base, &container)) return *err;
  std::string q;
  auto add = [&](const std::string& k, const std::string& v) {
    q += std::string(q.empty() ? "?" : "&") + k + "=" + UrlEncode(v);
  };
  auto range = req_.query.equal_range("command");
  for (auto it = range.first; it != range.second; ++it) add("command", it->second);
  for (const char* key : {"stderr", "stdin", "stdout", "tty"}) {
    if (query_bool(key)) add(key, "1");
  }
  Response r;
  r.proxy_url = base + "/exec/" + route_.ns + "/" + route_.name + "/" + container + q;
  r.proxy_upgrade = true;
  return r;
}

// pods/portforward (K:pkg/registry/core/pod/strategy.go PortForwardLocation): the ports of
// PodPortForwardOptions (query "ports") become the kubelet's "port" parameters. The transport
// passes the upgrade on, and unwraps SPDY tunnelled through a WebSocket (kubectl 1.31+) as the
// API server's TunnelingHandler does.
Response ApiServerImpl::PodPortForward() {
  std::string base;
  if (auto err = KubeletLocation(&base, nullptr)) return *err;
  std::string q;
  auto range = req_.query.equal_range("ports");
  for (auto it = range.first; it != range.second; ++it) {
    for (const auto& p : base::Split(it->second, ',')) {
      char* end = nullptr;
      long v = strtol(p.c_str(), &end, 10);
      if (p.empty() || *end || v < 1 || v > 65535) {
        return BadRequest("invalid port \"" + p + "\": must be between 1 and 65535");
      }
      q += std::string(q.empty() ? "?" : "&") + "port=" + std::to_string(v);
    }
  }
  Response r;
  r.proxy_url = base + "/portForward/" + route_.ns + "/" + route_.name + q;
  r.proxy_upgrade = true;
  return r;
}

}  // namespace apiserver
