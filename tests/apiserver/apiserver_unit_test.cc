// Unit tests of the test API server's pure parts and of its REST logic in-process (no HTTP),
// checked against captures of a real kube-apiserver v1.32 (testdata/, from shared/k8s-samples).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <thread>
#include <sstream>

#include "tests/apiserver/api_server.h"
#include "tests/apiserver/defaults.h"
#include "tests/apiserver/patch.h"
#include "tests/apiserver/schema.h"
#include "tests/apiserver/selectors.h"
#include "tests/apiserver/store.h"

using apiserver::Json;

namespace {

Json Load(const std::string& name) {
  std::ifstream in(std::string(APISERVER_TESTDATA) + "/" + name);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return Json::parse(ss.str());
}

apiserver::UserInfo Admin() {
  return {"kubernetes-admin", "admin", {"system:masters", "system:authenticated"}, {}, true};
}
apiserver::UserInfo NodeUser(const std::string& n) {
  return {"system:node:" + n, "", {"system:nodes", "system:authenticated"}, {}, true};
}

// An RSA key for TokenRequest signing, made once per run with the openssl CLI.
std::string SigningKey() {
  static const std::string key = [] {
    std::string out;
    FILE* f = popen("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null", "r");
    if (!f) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
    pclose(f);
    return out;
  }();
  return key;
}

struct Fixture {
  apiserver::ApiServer api{[] {
    apiserver::ServerConfig c;
    c.ca_pem = "CA";
    c.sa_key_pem = SigningKey();
    c.advertise_address = "192.0.2.2:6443";
    return c;
  }()};

  apiserver::Response Call(const std::string& method, const std::string& target,
                           const std::string& body, const apiserver::UserInfo& user,
                           const std::string& content_type = "application/json") {
    apiserver::Request r;
    r.method = method;
    size_t q = target.find('?');
    r.path = target.substr(0, q);
    if (q != std::string::npos) {
      std::string query = target.substr(q + 1);
      std::stringstream ss(query);
      std::string kv;
      while (std::getline(ss, kv, '&')) {
        size_t eq = kv.find('=');
        r.query.emplace(kv.substr(0, eq), eq == std::string::npos ? "" : kv.substr(eq + 1));
      }
    }
    r.body = body;
    r.user = user;
    r.headers["content-type"] = content_type;
    return api.Handle(r);
  }
};

// Removes what differs between two runs: ids, versions, times, managedFields.
void Scrub(Json& obj) {
  Json& m = obj["metadata"];
  m.erase("managedFields");
  for (const char* k : {"uid", "resourceVersion", "creationTimestamp"}) {
    if (m.contains(k)) m[k] = "X";
  }
}

}  // namespace

TEST_CASE("label selectors parse and match like k8s.io/apimachinery/pkg/labels") {
  std::string err;
  auto s = apiserver::LabelSelector::Parse(
      "!service.kubernetes.io/headless,!service.kubernetes.io/service-proxy-name", &err);
  REQUIRE(s);
  CHECK(s->Matches({{"app", "x"}}));
  CHECK_FALSE(s->Matches({{"service.kubernetes.io/headless", ""}}));
  auto t = apiserver::LabelSelector::Parse("app in (a, b),tier notin (db),env!=prod,team,x==y",
                                           &err);
  REQUIRE(t);
  CHECK(t->Matches({{"app", "a"}, {"team", "t"}, {"x", "y"}}));
  CHECK_FALSE(t->Matches({{"app", "c"}, {"team", "t"}, {"x", "y"}}));
  CHECK_FALSE(t->Matches({{"app", "a"}, {"team", "t"}, {"x", "y"}, {"tier", "db"}}));
  CHECK_FALSE(t->Matches({{"app", "a"}, {"x", "y"}}));
  CHECK_FALSE(t->Matches({{"app", "a"}, {"team", "t"}, {"x", "y"}, {"env", "prod"}}));
  CHECK_FALSE(apiserver::LabelSelector::Parse("a in b", &err));
  CHECK_FALSE(apiserver::LabelSelector::Parse("a=b c", &err));
}

TEST_CASE("field selectors: =, ==, != and AND") {
  std::string err;
  auto f = apiserver::FieldSelector::Parse("spec.nodeName=n1,status.phase!=Failed", &err);
  REQUIRE(f);
  CHECK(f->Matches({{"spec.nodeName", "n1"}, {"status.phase", "Running"}}));
  CHECK_FALSE(f->Matches({{"spec.nodeName", "n2"}, {"status.phase", "Running"}}));
  CHECK_FALSE(f->Matches({{"spec.nodeName", "n1"}, {"status.phase", "Failed"}}));
  CHECK(f->RequiredValue("spec.nodeName") == std::optional<std::string>("n1"));
  auto g = apiserver::FieldSelector::Parse("metadata.name==x", &err);
  REQUIRE(g);
  CHECK(g->Matches({{"metadata.name", "x"}}));
  CHECK_FALSE(apiserver::FieldSelector::Parse("nonsense", &err));
}

TEST_CASE("Go encoding rules: omitempty, explicit nulls, sorted maps") {
  Json bookmark = {{"kind", "Pod"}, {"apiVersion", "v1"}, {"metadata", {{"resourceVersion", "7"}}}};
  CHECK(apiserver::Dump(apiserver::schema::Normalize(bookmark, "Pod")) ==
        "{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"7\","
        "\"creationTimestamp\":null},\"spec\":{\"containers\":null},\"status\":{}}");
  Json slice = {{"metadata", {{"name", "s"}}}, {"addressType", "IPv4"}};
  CHECK(apiserver::Dump(apiserver::schema::Normalize(slice, "EndpointSlice")) ==
        "{\"metadata\":{\"name\":\"s\",\"creationTimestamp\":null},\"addressType\":\"IPv4\","
        "\"endpoints\":null,\"ports\":null}");
  Json unknown = {{"spec", {{"bogus", 1}, {"nodeName", "n"}}}};
  CHECK(apiserver::Dump(apiserver::schema::Normalize(unknown, "Pod")["spec"]) ==
        "{\"containers\":null,\"nodeName\":\"n\"}");
  Json labels = {{"metadata", {{"labels", {{"z", "1"}, {"a", "2"}}}}}};
  CHECK(apiserver::Dump(apiserver::schema::Normalize(labels, "ConfigMap")) ==
        "{\"metadata\":{\"creationTimestamp\":null,\"labels\":{\"a\":\"2\",\"z\":\"1\"}}}");
}

TEST_CASE("strategic merge patch of sample 34 on the pod of sample 32 gives sample 34's body") {
  Json pod = Load("32-admin-get-pod-after-create-200.json");
  Json patch = Load("34-node-patch-pod-status.req.json");
  Json want = Load("34-node-patch-pod-status-200.json");
  Json got = apiserver::schema::Normalize(
      apiserver::ApplyStrategicMergePatch(pod, patch, "Pod"), "Pod");
  Scrub(got);
  Scrub(want);
  CHECK(apiserver::Dump(got["status"]) == apiserver::Dump(want["status"]));
  CHECK(apiserver::Dump(got["spec"]) == apiserver::Dump(want["spec"]));
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));
}

TEST_CASE("strategic merge patch directives") {
  Json node = {{"status",
                {{"conditions", Json::array({{{"type", "A"}, {"status", "True"}},
                                             {{"type", "B"}, {"status", "False"}}})},
                 {"addresses", Json::array({{{"type", "InternalIP"}, {"address", "1.1.1.1"}},
                                            {{"type", "Hostname"}, {"address", "h"}}})}}}};
  Json patch = {{"status",
                 {{"$setElementOrder/conditions", Json::array({{{"type", "B"}}, {{"type", "A"}}})},
                  {"conditions", Json::array({{{"type", "A"}, {"status", "False"}}})},
                  {"addresses", Json::array({{{"type", "InternalIP"}, {"address", "2.2.2.2"}},
                                             {{"$patch", "replace"}}})}}}};
  Json out = apiserver::ApplyStrategicMergePatch(node, patch, "Node");
  CHECK(out["status"]["conditions"] ==
        Json::array({{{"type", "B"}, {"status", "False"}}, {{"type", "A"}, {"status", "False"}}}));
  CHECK(out["status"]["addresses"] ==
        Json::array({{{"type", "InternalIP"}, {"address", "2.2.2.2"}}}));
  // Delete by merge key, $retainKeys, null removes, atomic lists replace.
  Json pod = {{"spec",
               {{"containers", Json::array({{{"name", "a"}, {"image", "x"}},
                                            {{"name", "b"}, {"image", "y"}}})},
                {"tolerations", Json::array({{{"key", "k1"}}})},
                {"volumes", Json::array({{{"name", "v"}, {"emptyDir", Json::object()}}})}}}};
  Json p2 = {{"spec",
              {{"containers", Json::array({{{"name", "a"}, {"$patch", "delete"}},
                                           {{"name", "c"}, {"image", "z"}}})},
               {"tolerations", Json::array({{{"key", "k2"}}})},
               {"volumes", Json::array({{{"name", "v"},
                                         {"$retainKeys", Json::array({"name", "hostPath"})},
                                         {"hostPath", {{"path", "/x"}}}}})}}}};
  Json o2 = apiserver::ApplyStrategicMergePatch(pod, p2, "Pod");
  CHECK(o2["spec"]["containers"] == Json::array({{{"name", "b"}, {"image", "y"}},
                                                 {{"name", "c"}, {"image", "z"}}}));
  CHECK(o2["spec"]["tolerations"] == Json::array({{{"key", "k2"}}}));
  CHECK(o2["spec"]["volumes"] == Json::array({{{"name", "v"}, {"hostPath", {{"path", "/x"}}}}}));
  CHECK_THROWS(apiserver::ApplyStrategicMergePatch(pod, {{"spec", {{"$patch", "bogus"}}}}, "Pod"));
}

TEST_CASE("merge patch and JSON patch") {
  Json a = {{"a", 1}, {"b", {{"c", 2}, {"d", 3}}}};
  Json out = apiserver::ApplyMergePatch(a, {{"b", {{"c", nullptr}, {"e", 4}}}});
  CHECK(out == Json{{"a", 1}, {"b", {{"d", 3}, {"e", 4}}}});
  Json jp = Json::array({{{"op", "replace"}, {"path", "/a"}, {"value", 5}}});
  CHECK(apiserver::ApplyJsonPatch(a, jp)["a"] == 5);
  CHECK_THROWS(apiserver::ApplyJsonPatch(a, Json::array({{{"op", "test"}, {"path", "/a"}, {"value", 9}}})));
  Json parsed;
  std::string err;
  CHECK_FALSE(apiserver::ParseJson("{\"status\":{\"conditions\":[{\"type\":\"Ready\",", &parsed, &err));
  CHECK(err == "unexpected end of JSON input");
}

TEST_CASE("pod defaulting: sample 31 request gives sample 32 body") {
  Fixture f;
  REQUIRE(f.Call("POST", "/api/v1/namespaces", "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"samples\"}}", Admin()).status == 201);
  for (auto [req, resp] : {std::pair{"31-admin-create-pod.req.json", "32-admin-get-pod-after-create-200.json"},
                           std::pair{"62-admin-create-demo-pod.req.json", "62-admin-create-demo-pod-201.json"}}) {
    auto r = f.Call("POST", "/api/v1/namespaces/samples/pods", Load(req).dump(), Admin());
    REQUIRE(r.status == 201);
    Json got = Json::parse(r.body);
    Json want = Load(resp);
    Scrub(got);
    Scrub(want);
    // The volume suffix is random; the OpenShift fork adds a fourth projected source.
    std::string vol = got["spec"]["volumes"][0]["name"];
    CHECK(vol.rfind("kube-api-access-", 0) == 0);
    CHECK(vol.size() == std::string("kube-api-access-").size() + 5);
    std::string want_vol = want["spec"]["volumes"][0]["name"];
    std::string text = apiserver::Dump(want);
    for (size_t p; (p = text.find(want_vol)) != std::string::npos;) text.replace(p, want_vol.size(), vol);
    want = Json::parse(text);
    auto& sources = want["spec"]["volumes"][0]["projected"]["sources"];
    sources.erase(sources.size() - 1);
    CHECK(apiserver::Dump(got) == apiserver::Dump(want));
  }
}

TEST_CASE("service defaults and allocation match samples 50-53") {
  Fixture f;
  REQUIRE(f.Call("POST", "/api/v1/namespaces", "{\"metadata\":{\"name\":\"samples\"}}", Admin()).status == 201);
  for (auto [req, resp] : {std::pair{"50-svc-clusterip.req.json", "50-svc-clusterip-201.json"},
                           std::pair{"51-svc-nodeport.req.json", "51-svc-nodeport-201.json"},
                           std::pair{"52-svc-headless.req.json", "52-svc-headless-201.json"},
                           std::pair{"53-svc-externalname.req.json", "53-svc-externalname-201.json"}}) {
    auto r = f.Call("POST", "/api/v1/namespaces/samples/services", Load(req).dump(), Admin());
    REQUIRE(r.status == 201);
    Json got = Json::parse(r.body);
    Json want = Load(resp);
    Scrub(got);
    Scrub(want);
    if (want["spec"].contains("clusterIP") && want["spec"]["clusterIP"] != "None") {
      std::string ip = got["spec"]["clusterIP"];
      CHECK(ip.rfind("10.", 0) == 0);
      want["spec"]["clusterIP"] = ip;
      want["spec"]["clusterIPs"] = Json::array({ip});
    }
    if (want["spec"].contains("ports") && want["spec"]["ports"][0].contains("nodePort")) {
      int np = got["spec"]["ports"][0]["nodePort"];
      CHECK(np >= 30000);
      CHECK(np <= 32767);
      want["spec"]["ports"][0]["nodePort"] = np;
    }
    CHECK(apiserver::Dump(got) == apiserver::Dump(want));
  }
}

TEST_CASE("node create adds the not-ready taint (sample 10); controller removes it, sets CIDR") {
  Fixture f;
  auto r = f.Call("POST", "/api/v1/nodes", Load("10-node-create.req.json").dump(),
                  NodeUser("sample-node"));
  REQUIRE(r.status == 201);
  Json got = Json::parse(r.body);
  Json want = Load("10-node-create-201.json");
  Scrub(got);
  Scrub(want);
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));
  auto again = f.Call("POST", "/api/v1/nodes", Load("10-node-create.req.json").dump(),
                      NodeUser("sample-node"));
  CHECK(again.status == 409);
  CHECK(again.body == "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"nodes \\\"sample-node\\\" already exists\",\"reason\":\"AlreadyExists\",\"details\":{\"name\":\"sample-node\",\"kind\":\"nodes\"},\"code\":409}");
  f.api.RunControllersOnce();
  auto p = f.Call("PATCH", "/api/v1/nodes/sample-node/status",
                  Load("12-node-status-smp.req.json").dump(), NodeUser("sample-node"),
                  "application/strategic-merge-patch+json");
  REQUIRE(p.status == 200);
  Json node = Json::parse(p.body);
  Json want12 = Load("12-node-status-smp-200.json");
  CHECK(apiserver::Dump(node["status"]) == apiserver::Dump(want12["status"]));
  CHECK(node["spec"]["podCIDR"] == "10.244.0.0/24");
  CHECK_FALSE(node["spec"].contains("taints"));
  CHECK(node["metadata"]["annotations"]["node.alpha.kubernetes.io/ttl"] == "0");
}

TEST_CASE("node authorizer decisions and messages") {
  Fixture f;
  auto n = NodeUser("sample-node");
  REQUIRE(f.Call("POST", "/api/v1/nodes", Load("10-node-create.req.json").dump(), n).status == 201);
  auto other = f.Call("GET", "/api/v1/nodes/other-node", "", n);
  CHECK(other.status == 404);
  auto create_other = f.Call("POST", "/api/v1/nodes",
                             "{\"metadata\":{\"name\":\"other-node\"}}", n);
  CHECK(create_other.status == 403);
  CHECK(Json::parse(create_other.body)["message"] ==
        "nodes \"other-node\" is forbidden: node \"sample-node\" is not allowed to modify node \"other-node\"");
  auto label = f.Call("PATCH", "/api/v1/nodes/sample-node",
                      "{\"metadata\":{\"labels\":{\"node-restriction.kubernetes.io/foo\":\"bar\"}}}",
                      n, "application/strategic-merge-patch+json");
  CHECK(label.status == 403);
  CHECK(Json::parse(label.body)["message"] ==
        "nodes \"sample-node\" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/foo");
  auto list = f.Call("GET", "/api/v1/pods", "", n);
  CHECK(list.status == 403);
  CHECK(list.body == "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods is forbidden: User \\\"system:node:sample-node\\\" cannot list resource \\\"pods\\\" in API group \\\"\\\" at the cluster scope: can only list/watch pods with spec.nodeName field selector\",\"reason\":\"Forbidden\",\"details\":{\"kind\":\"pods\"},\"code\":403}");
  CHECK(f.Call("GET", "/api/v1/pods?fieldSelector=spec.nodeName=sample-node", "", n).status == 200);
  CHECK(f.Call("GET", "/api/v1/namespaces/default/configmaps", "", n).status == 403);
  auto cm = f.Call("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", "", n);
  CHECK(cm.status == 403);
  CHECK(Json::parse(cm.body)["message"] ==
        "configmaps \"kube-root-ca.crt\" is forbidden: User \"system:node:sample-node\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\": no relationship found between node 'sample-node' and this object");
  REQUIRE(f.Call("POST", "/api/v1/namespaces/default/pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"nodeName\":\"sample-node\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
                 Admin()).status == 201);
  CHECK(f.Call("GET", "/api/v1/namespaces/default/configmaps/kube-root-ca.crt", "", n).status == 200);
  CHECK(f.Call("GET", "/api/v1/namespaces/default/pods/p", "", n).status == 200);
  auto st = f.Call("GET", "/api/v1/namespaces/default/pods/p/status", "", n);
  CHECK(st.status == 403);
  CHECK(Json::parse(st.body)["message"] ==
        "pods \"p\" is forbidden: User \"system:node:sample-node\" cannot get resource \"pods/status\" in API group \"\" in the namespace \"default\"");
  auto wrong_uid = f.Call("PATCH", "/api/v1/namespaces/default/pods/p/status",
                          "{\"metadata\":{\"uid\":\"00000000-0000-0000-0000-000000000000\"},\"status\":{\"phase\":\"Running\"}}",
                          n, "application/strategic-merge-patch+json");
  CHECK(wrong_uid.status == 422);
  CHECK(Json::parse(wrong_uid.body)["details"]["causes"].size() == 2);
  auto json_ct = f.Call("PATCH", "/api/v1/nodes/sample-node/status", "{}", n, "application/json");
  CHECK(json_ct.status == 415);
  CHECK(json_ct.body == "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"415: Unsupported Media Type\",\"reason\":\"UnsupportedMediaType\",\"details\":{},\"code\":415}");
  auto lease_other = f.Call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                            "{\"metadata\":{\"name\":\"x\"},\"spec\":{}}", n);
  CHECK(lease_other.status == 403);
}

TEST_CASE("SubjectAccessReview: the decisions this server makes, for a node's kubelet API") {
  Fixture f;
  auto n = NodeUser("sample-node");
  auto sar = [&](const Json& spec, const apiserver::UserInfo& as) {
    Json review = {{"apiVersion", "authorization.k8s.io/v1"},
                   {"kind", "SubjectAccessReview"},
                   {"spec", spec}};
    return f.Call("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review.dump(), as);
  };
  Json proxy = {{"verb", "create"}, {"resource", "nodes"}, {"subresource", "proxy"},
                {"name", "sample-node"}};
  // The API server's kubelet client (system:masters) may exec; the node asks as itself.
  auto master = sar({{"user", "kube-apiserver-kubelet-client"},
                     {"groups", {"system:masters", "system:authenticated"}},
                     {"resourceAttributes", proxy}},
                    n);
  REQUIRE(master.status == 201);
  Json m = Json::parse(master.body);
  CHECK(m["kind"] == "SubjectAccessReview");
  CHECK(m["status"]["allowed"] == true);
  CHECK(m["spec"]["user"] == "kube-apiserver-kubelet-client");
  // Anyone else: not allowed (no RBAC here beyond masters and the node rules).
  auto alice = sar({{"user", "alice"}, {"groups", {"devs"}}, {"resourceAttributes", proxy}}, n);
  REQUIRE(alice.status == 201);
  CHECK(Json::parse(alice.body)["status"]["allowed"] == false);
  // A node identity gets what the Node authorizer gives it: not nodes/proxy, but its own node.
  auto node_proxy = sar({{"user", "system:node:sample-node"},
                         {"groups", {"system:nodes"}},
                         {"resourceAttributes", proxy}},
                        Admin());
  CHECK(Json::parse(node_proxy.body)["status"]["allowed"] == false);
  auto node_get = sar({{"user", "system:node:sample-node"},
                       {"groups", {"system:nodes"}},
                       {"resourceAttributes",
                        {{"verb", "get"}, {"resource", "nodes"}, {"name", "sample-node"}}}},
                      Admin());
  CHECK(Json::parse(node_get.body)["status"]["allowed"] == true);
  // Invalid reviews, and who may ask.
  auto nobody = sar({{"resourceAttributes", proxy}}, n);
  CHECK(nobody.status == 422);
  CHECK(Json::parse(nobody.body)["message"] ==
        "SubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.user: Invalid value: "
        "\"\": at least one of user or group must be specified");
  CHECK(sar({{"user", "alice"}}, n).status == 422);
  apiserver::UserInfo bob{"bob", "", {"system:authenticated"}, {}, true};
  CHECK(sar({{"user", "alice"}, {"resourceAttributes", proxy}}, bob).status == 403);
}

TEST_CASE("TokenReview: who a bearer token is, for a kubelet's webhook authentication") {
  Fixture f;
  f.api.SetTokenAuthenticator([](const std::string& t) -> std::optional<apiserver::UserInfo> {
    if (t == "good") return Admin();
    return std::nullopt;
  });
  auto n = NodeUser("sample-node");
  auto review = [&](const std::string& token, const apiserver::UserInfo& as) {
    Json body = {{"apiVersion", "authentication.k8s.io/v1"},
                 {"kind", "TokenReview"},
                 {"spec", {{"token", token}}}};
    return f.Call("POST", "/apis/authentication.k8s.io/v1/tokenreviews", body.dump(), as);
  };
  auto ok = review("good", n);
  REQUIRE(ok.status == 201);
  Json j = Json::parse(ok.body);
  CHECK(j["kind"] == "TokenReview");
  CHECK(j["status"]["authenticated"] == true);
  CHECK(j["status"]["user"]["username"] == "kubernetes-admin");
  CHECK(j["status"]["user"]["groups"] == Json::array({"system:masters", "system:authenticated"}));
  auto bad = review("bad", n);
  REQUIRE(bad.status == 201);
  CHECK(Json::parse(bad.body)["status"] == Json::object());
  auto empty = review("", n);
  CHECK(empty.status == 400);
  CHECK(Json::parse(empty.body)["message"] == "token is required for TokenReview in authentication");
  apiserver::UserInfo bob{"bob", "", {"system:authenticated"}, {}, true};
  CHECK(review("good", bob).status == 403);
}

TEST_CASE("store: RV strictly increases, history replays, compaction gives 410") {
  apiserver::Store store(3);
  auto lock = store.Lock();
  Json obj = {{"metadata", {{"name", "a"}, {"namespace", "ns"}}}};
  int64_t rv0 = store.CurrentRv();
  store.Create("pods", obj);
  store.Update("pods", obj);
  store.Update("pods", obj);
  store.Delete("pods", "ns", "a");
  CHECK(store.CurrentRv() == rv0 + 4);
  auto w = std::make_shared<apiserver::Watcher>("pods", "", nullptr);
  CHECK(store.AddWatcher(w, "pods", rv0 + 1));
  auto e1 = w->Next(std::chrono::milliseconds(0));
  REQUIRE(e1);
  CHECK(e1->first == "MODIFIED");
  CHECK(e1->second["metadata"]["resourceVersion"] == std::to_string(rv0 + 2));
  auto w2 = std::make_shared<apiserver::Watcher>("pods", "", nullptr);
  CHECK_FALSE(store.AddWatcher(w2, "pods", rv0));  // history keeps only 3 events
  store.Compact();
  auto w3 = std::make_shared<apiserver::Watcher>("pods", "", nullptr);
  CHECK_FALSE(store.AddWatcher(w3, "pods", rv0 + 3));
}

TEST_CASE("watch filter turns selector transitions into ADDED/DELETED") {
  apiserver::Store store;
  auto lock = store.Lock();
  auto w = std::make_shared<apiserver::Watcher>(
      "pods", "", [](const Json& o) { return o["spec"].value("nodeName", "") == "n1"; });
  REQUIRE(store.AddWatcher(w, "pods", store.CurrentRv()));
  Json pod = {{"metadata", {{"name", "a"}, {"namespace", "ns"}}}, {"spec", Json::object()}};
  store.Create("pods", pod);
  pod["spec"]["nodeName"] = "n1";
  store.Update("pods", pod);
  pod["spec"]["nodeName"] = "n2";
  store.Update("pods", pod);
  CHECK(w->Next(std::chrono::milliseconds(0))->first == "ADDED");
  CHECK(w->Next(std::chrono::milliseconds(0))->first == "DELETED");
  CHECK_FALSE(w->Next(std::chrono::milliseconds(0)));
}

TEST_CASE("graceful pod deletion and uid preconditions") {
  Fixture f;
  REQUIRE(f.Call("POST", "/api/v1/namespaces/default/pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"nodeName\":\"n1\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
                 Admin()).status == 201);
  auto d1 = f.Call("DELETE", "/api/v1/namespaces/default/pods/p", "", Admin());
  REQUIRE(d1.status == 200);
  Json p = Json::parse(d1.body);
  CHECK(p["metadata"]["deletionGracePeriodSeconds"] == 30);
  CHECK(p["metadata"].contains("deletionTimestamp"));
  auto bad = f.Call("DELETE", "/api/v1/namespaces/default/pods/p",
                    "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\",\"gracePeriodSeconds\":0,\"preconditions\":{\"uid\":\"00000000-0000-0000-0000-000000000000\"}}",
                    NodeUser("n1"));
  CHECK(bad.status == 409);
  CHECK(Json::parse(bad.body)["details"] == Json{{"name", "p"}, {"kind", "Pod"}});
  std::string uid = p["metadata"]["uid"];
  auto fin = f.Call("DELETE", "/api/v1/namespaces/default/pods/p",
                    "{\"gracePeriodSeconds\":0,\"preconditions\":{\"uid\":\"" + uid + "\"}}",
                    NodeUser("n1"));
  CHECK(fin.status == 200);
  CHECK(Json::parse(fin.body)["metadata"]["deletionGracePeriodSeconds"] == 0);
  auto gone = f.Call("GET", "/api/v1/namespaces/default/pods/p", "", NodeUser("n1"));
  CHECK(gone.status == 403);
  CHECK(f.Call("GET", "/api/v1/namespaces/default/pods/p", "", Admin()).status == 404);
}

namespace {

void ScrubSlice(Json& s) {
  Json& m = s["metadata"];
  m.erase("managedFields");
  for (const char* k : {"name", "uid", "resourceVersion", "creationTimestamp"}) m[k] = "X";
  if (m.contains("annotations")) {
    for (auto& [k, v] : m["annotations"].items()) v = "X";
  }
  for (auto& o : m["ownerReferences"]) o["uid"] = "X";
  if (s["endpoints"].is_array()) {
    for (auto& e : s["endpoints"]) e["targetRef"]["uid"] = "X";
  }
}

}  // namespace

TEST_CASE("EndpointSlice controller follows pod readiness and termination (samples 65, 75)") {
  Fixture f;
  REQUIRE(f.Call("POST", "/api/v1/namespaces", Load("30-admin-create-namespace.req.json").dump(), Admin()).status == 201);
  REQUIRE(f.Call("POST", "/api/v1/namespaces/samples/services", Load("50-svc-clusterip.req.json").dump(), Admin()).status == 201);
  f.api.RunControllersOnce();
  auto created = f.Call("POST", "/api/v1/namespaces/samples/pods", Load("62-admin-create-demo-pod.req.json").dump(), Admin());
  REQUIRE(created.status == 201);
  std::string uid = Json::parse(created.body)["metadata"]["uid"];
  f.api.RunControllersOnce();
  Json patch = Load("64-node-patch-demo-pod-status-ready.req.json");
  patch["metadata"]["uid"] = uid;
  REQUIRE(f.Call("PATCH", "/api/v1/namespaces/samples/pods/demo-pod/status", patch.dump(),
                 NodeUser("sample-node"), "application/strategic-merge-patch+json").status == 200);
  f.api.RunControllersOnce();
  const std::string path = "/apis/discovery.k8s.io/v1/namespaces/samples/endpointslices?labelSelector=kubernetes.io/service-name%3Ddemo-clusterip";
  for (auto [action, sample] : {std::pair{"ready", "65-endpointslices-clusterip-ready-200.json"},
                                std::pair{"delete", "75-endpointslices-clusterip-pod-terminating-200.json"}}) {
    if (std::string(action) == "delete") {
      REQUIRE(f.Call("DELETE", "/api/v1/namespaces/samples/pods/demo-pod", "", Admin()).status == 200);
      f.api.RunControllersOnce();
    }
    apiserver::Request r;
    r.method = "GET";
    r.path = "/apis/discovery.k8s.io/v1/namespaces/samples/endpointslices";
    r.query.emplace("labelSelector", "kubernetes.io/service-name=demo-clusterip");
    r.user = Admin();
    auto resp = f.api.Handle(r);
    REQUIRE(resp.status == 200);
    Json got = Json::parse(resp.body)["items"][0];
    Json want = Load(sample)["items"][0];
    ScrubSlice(got);
    ScrubSlice(want);
    INFO(path);
    CHECK(apiserver::Dump(got) == apiserver::Dump(want));
  }
}

TEST_CASE("events: core create (sample 39) reads back through events.k8s.io/v1 (sample 72)") {
  Fixture f;
  REQUIRE(f.Call("POST", "/api/v1/namespaces", Load("30-admin-create-namespace.req.json").dump(), Admin()).status == 201);
  auto r = f.Call("POST", "/api/v1/namespaces/samples/events", Load("39-node-create-event.req.json").dump(),
                  NodeUser("sample-node"));
  REQUIRE(r.status == 201);
  Json got = Json::parse(r.body);
  Json want = Load("39-node-create-event-201.json");
  Scrub(got);
  Scrub(want);
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));
  auto l = f.Call("GET", "/apis/events.k8s.io/v1/namespaces/samples/events", "", Admin());
  REQUIRE(l.status == 200);
  Json item = Json::parse(l.body)["items"][0];
  Json want72 = Load("72-admin-list-events-k8s-io-v1-200.json")["items"][0];
  Scrub(item);
  Scrub(want72);
  CHECK(apiserver::Dump(item) == apiserver::Dump(want72));
}

TEST_CASE("namespace, lease and token request shapes (samples 20, 30, 37, 35, 92)") {
  Fixture f;
  auto ns = f.Call("POST", "/api/v1/namespaces", Load("30-admin-create-namespace.req.json").dump(), Admin());
  REQUIRE(ns.status == 201);
  Json got = Json::parse(ns.body), want = Load("30-admin-create-namespace-201.json");
  Scrub(got);
  Scrub(want);
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));
  CHECK(f.Call("GET", "/api/v1/namespaces/samples/serviceaccounts/default", "", Admin()).status == 200);
  CHECK(f.Call("GET", "/api/v1/namespaces/samples/configmaps/kube-root-ca.crt", "", Admin()).status == 200);

  REQUIRE(f.Call("POST", "/api/v1/nodes", Load("10-node-create.req.json").dump(), NodeUser("sample-node")).status == 201);
  Json lease_req = Load("20-lease-create.req.json");
  auto lease = f.Call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                      lease_req.dump(), NodeUser("sample-node"));
  REQUIRE(lease.status == 201);
  got = Json::parse(lease.body);
  want = Load("20-lease-create-201.json");
  Scrub(got);
  Scrub(want);
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));

  Json pod = Load("62-admin-create-demo-pod.req.json");
  auto created = f.Call("POST", "/api/v1/namespaces/samples/pods", pod.dump(), Admin());
  REQUIRE(created.status == 201);
  std::string uid = Json::parse(created.body)["metadata"]["uid"];
  Json tr = Load("37-node-tokenrequest.req.json");
  tr["spec"]["boundObjectRef"]["uid"] = uid;
  auto token = f.Call("POST", "/api/v1/namespaces/samples/serviceaccounts/default/token", tr.dump(),
                      NodeUser("sample-node"));
  REQUIRE(token.status == 201);
  got = Json::parse(token.body);
  want = Load("37-node-tokenrequest-201-REDACTED.json");
  CHECK(std::string(got["status"]["token"]).rfind("eyJ", 0) == 0);
  for (Json* j : {&got, &want}) {
    (*j)["metadata"].erase("managedFields");
    (*j)["metadata"]["creationTimestamp"] = "X";
    (*j)["status"] = {{"token", "X"}, {"expirationTimestamp", "X"}};
    (*j)["spec"]["boundObjectRef"]["uid"] = "X";
  }
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));

  Json bad = Load("34-node-patch-pod-status.req.json");
  bad["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000";
  auto r422 = f.Call("PATCH", "/api/v1/namespaces/samples/pods/demo-pod/status", bad.dump(),
                     NodeUser("sample-node"), "application/strategic-merge-patch+json");
  CHECK(r422.status == 422);
  std::string want422 = Load("35-node-patch-pod-status-wrong-uid-422.json").dump();
  for (size_t p; (p = want422.find("sample-pod")) != std::string::npos;) want422.replace(p, 10, "demo-pod");
  CHECK(r422.body == apiserver::Dump(Json::parse(want422)));

  auto del = f.Call("DELETE", "/api/v1/namespaces/samples", "", Admin());
  REQUIRE(del.status == 200);
  got = Json::parse(del.body);
  want = Load("92-admin-delete-namespace-samples-200.json");
  Scrub(got);
  Scrub(want);
  got["metadata"]["deletionTimestamp"] = "X";
  want["metadata"]["deletionTimestamp"] = "X";
  CHECK(apiserver::Dump(got) == apiserver::Dump(want));
}

TEST_CASE("node lifecycle: heartbeats stop, conditions go Unknown and unreachable taints appear") {
  apiserver::ServerConfig c;
  c.ca_pem = "CA";
  c.advertise_address = "127.0.0.1:6443";
  c.node_monitor_grace = std::chrono::seconds(1);
  apiserver::ApiServer api(c);
  apiserver::Request r;
  r.method = "POST";
  r.path = "/api/v1/nodes";
  r.body = Load("10-node-create.req.json").dump();
  r.user = NodeUser("sample-node");
  REQUIRE(api.Handle(r).status == 201);
  api.RunControllersOnce();
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  api.RunControllersOnce();
  apiserver::Request g;
  g.method = "GET";
  g.path = "/api/v1/nodes/sample-node";
  g.user = Admin();
  Json node = Json::parse(api.Handle(g).body);
  for (const auto& cond : node["status"]["conditions"]) {
    CHECK(cond["status"] == "Unknown");
    CHECK(cond["reason"] == "NodeStatusUnknown");
    CHECK(cond["message"] == "Kubelet stopped posting node status.");
  }
  std::set<std::string> taints;
  for (const auto& t : node["spec"]["taints"]) taints.insert(std::string(t["key"]) + ":" + std::string(t["effect"]));
  CHECK(taints == std::set<std::string>{"node.kubernetes.io/unreachable:NoSchedule",
                                        "node.kubernetes.io/unreachable:NoExecute"});
}

TEST_CASE("scheduler binds pending pods; taint manager evicts after tolerationSeconds") {
  Fixture f;
  Json node = Load("10-node-create.req.json");
  REQUIRE(f.Call("POST", "/api/v1/nodes", node.dump(), NodeUser("sample-node")).status == 201);
  REQUIRE(f.Call("POST", "/api/v1/namespaces/default/pods",
                 "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
                 Admin()).status == 201);
  REQUIRE(f.Call("POST", "/api/v1/namespaces/default/pods",
                 "{\"metadata\":{\"name\":\"q\"},\"spec\":{\"nodeSelector\":{\"disk\":\"ssd\"},\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}",
                 Admin()).status == 201);
  f.api.RunControllersOnce();  // removes the not-ready taint
  f.api.RunControllersOnce();  // schedules
  Json p = Json::parse(f.Call("GET", "/api/v1/namespaces/default/pods/p", "", Admin()).body);
  CHECK(p["spec"]["nodeName"] == "sample-node");
  CHECK(p["status"]["conditions"][0]["type"] == "PodScheduled");
  CHECK(p["status"]["conditions"][0]["status"] == "True");
  Json q = Json::parse(f.Call("GET", "/api/v1/namespaces/default/pods/q", "", Admin()).body);
  CHECK_FALSE(q["spec"].contains("nodeName"));
  CHECK(q["status"]["conditions"][0]["reason"] == "Unschedulable");
  // A NoExecute taint the pod does not tolerate evicts it (graceful deletion).
  auto t = f.Call("PATCH", "/api/v1/nodes/sample-node",
                  "{\"spec\":{\"taints\":[{\"key\":\"evict\",\"effect\":\"NoExecute\"}]}}", Admin(),
                  "application/strategic-merge-patch+json");
  REQUIRE(t.status == 200);
  f.api.RunControllersOnce();
  p = Json::parse(f.Call("GET", "/api/v1/namespaces/default/pods/p", "", Admin()).body);
  CHECK(p["metadata"].contains("deletionTimestamp"));
  bool disruption = false;
  for (const auto& c : p["status"]["conditions"])
    disruption = disruption || (c["type"] == "DisruptionTarget" && c["reason"] == "DeletionByTaintManager");
  CHECK(disruption);
}
