// Change trackers and ProxyState: kube-proxy's semantics for coalescing events, merging slices
// per service, endpoint conditions with nil values, and endpoint selection.
#include <catch2/catch.hpp>

#include "netproxy/proxy_state.h"
#include "tests/netproxy/fixtures.h"

using namespace netproxy;
using namespace netproxy::testing;

namespace {

const WallTime kStart = WallTime{} + std::chrono::hours(1000);

Service Demo() {
  return ClusterIPService("samples", "demo", "10.96.0.10", {Port("http", 80, 8080)});
}

ServicePortName DemoHttp() { return {{"samples", "demo"}, "http", Protocol::kTCP}; }

}  // namespace

TEST_CASE("ServiceChangeTracker coalesces events per service") {
  ServiceChangeTracker t;
  Service s = Demo();
  CHECK(t.Update(nullptr, &s));
  Service s2 = s;
  s2.ports[0].port = 81;
  CHECK(t.Update(&s, &s2));
  auto changes = t.Checkout();
  REQUIRE(changes.size() == 1);
  auto& c = changes.begin()->second;
  CHECK(c.previous.empty());
  REQUIRE(c.current.size() == 1);
  CHECK(c.current.begin()->second.port == 81);
  CHECK_FALSE(t.HasPending());

  // Add then delete before a sync: nothing to do.
  Service other = ClusterIPService("a", "b", "10.96.0.11", {Port("", 1, 1)});
  CHECK(t.Update(nullptr, &other));
  CHECK_FALSE(t.Update(&other, nullptr));
  CHECK(t.Checkout().empty());

  // A change that only touches fields the proxy ignores (target port name of a skipped
  // service) is not a change; a headless service never produces ports.
  Service headless = ClusterIPService("a", "h", "None", {Port("http", 80, 80)});
  CHECK_FALSE(t.Update(nullptr, &headless));
}

TEST_CASE("service ports are flattened like kube-proxy's ServicePortInfo") {
  Service s = Demo();
  s.type = ServiceType::kLoadBalancer;
  s.external_traffic_policy = TrafficPolicy::kLocal;
  s.health_check_node_port = 31000;
  s.external_ips = {"192.168.0.5", "fd00::5"};
  s.session_affinity = SessionAffinity::kClientIP;
  s.session_affinity_timeout_seconds = 0;
  auto ports = ServicePortsOf(s);
  REQUIRE(ports.size() == 1);
  const ServicePort& p = ports.begin()->second;
  CHECK(p.name_string == "samples/demo:http");
  CHECK(p.external_ips == std::vector<std::string>{"192.168.0.5"});  // IPv4 family only
  CHECK(p.health_check_node_port == 31000);
  CHECK(p.sticky_max_age_seconds == 10800);
  CHECK(p.ExternalPolicyLocal());
  CHECK(p.UsesLocalEndpoints());
  CHECK(p.UsesClusterEndpoints());

  s.type = ServiceType::kClusterIP;
  s.external_ips.clear();
  auto cip = ServicePortsOf(s).begin()->second;
  CHECK_FALSE(cip.ExternalPolicyLocal());  // ETP applies only to externally accessible services
  CHECK(cip.health_check_node_port == 0);

  Service dual = Demo();
  dual.cluster_ip = "fd00::10";
  dual.cluster_ips = {"fd00::10", "10.96.0.12"};
  CHECK(ServicePortsOf(dual).begin()->second.cluster_ip == "10.96.0.12");
  Service v6 = Demo();
  v6.cluster_ip = "fd00::10";
  v6.cluster_ips = {"fd00::10"};
  CHECK(ServicePortsOf(v6).empty());
}

TEST_CASE("EndpointsChangeTracker merges slices per service and resolves ports by name") {
  ProxyState st("node-a", kStart);
  Service s = Demo();
  st.service_changes().Update(nullptr, &s);
  auto now = kStart + std::chrono::seconds(5);
  EndpointSlice a = Slice("samples", "demo", "demo-a", {Ep("10.244.1.2", true, "node-a")},
                          {EpPort("http", 8080), EpPort("other", 9000)});
  EndpointSlice b = Slice("samples", "demo", "demo-b",
                          {Ep("10.244.1.1", std::nullopt, "node-b", std::nullopt, std::nullopt)},
                          {EpPort("http", 8080)});
  CHECK(st.endpoint_changes().EndpointSliceUpdate(a, false, now));
  CHECK(st.endpoint_changes().EndpointSliceUpdate(b, false, now));
  // The same slice again is no change.
  CHECK_FALSE(st.endpoint_changes().EndpointSliceUpdate(b, false, now));
  auto r = st.Update();
  CHECK(r.updated_services == std::set<ServiceName>{{"samples", "demo"}});
  REQUIRE(r.trigger_times.count({"samples", "demo"}));
  CHECK(r.trigger_times[{"samples", "demo"}].size() == 2);

  const auto& eps = st.EndpointsFor(DemoHttp());
  REQUIRE(eps.size() == 2);
  CHECK(eps[0].Address() == "10.244.1.1:8080");  // sorted by address
  CHECK(eps[0].ready);                         // ready nil = true
  CHECK(eps[0].serving);                       // serving nil = true
  CHECK_FALSE(eps[0].terminating);             // terminating nil = false
  CHECK_FALSE(eps[0].is_local);
  CHECK(eps[1].is_local);
  // "other" is in the slice but not in the service: kept under its own name, unused.
  CHECK(st.EndpointsFor({{"samples", "demo"}, "other", Protocol::kTCP}).size() == 1);
  // Protocol is part of the key.
  CHECK(st.EndpointsFor({{"samples", "demo"}, "http", Protocol::kUDP}).empty());

  // Deleting one slice keeps the other's endpoints.
  CHECK(st.endpoint_changes().EndpointSliceUpdate(a, true, now));
  st.Update();
  REQUIRE(st.EndpointsFor(DemoHttp()).size() == 1);
  CHECK(st.EndpointsFor(DemoHttp())[0].Ip() == "10.244.1.1");
  // Deleting an unknown slice is no change.
  CHECK_FALSE(st.endpoint_changes().EndpointSliceUpdate(a, true, now));
}

TEST_CASE("an IP in two slices prefers the non-terminating endpoint") {
  ProxyState st("node-a", kStart);
  auto now = kStart + std::chrono::seconds(1);
  // Slice names order "a" < "b": the terminating one in "b" must not replace the running one.
  st.endpoint_changes().EndpointSliceUpdate(
      Slice("ns", "svc", "a", {Ep("10.0.0.1")}, {EpPort("", 80)}), false, now);
  st.endpoint_changes().EndpointSliceUpdate(
      Slice("ns", "svc", "b", {Ep("10.0.0.1", false, {}, true, true)}, {EpPort("", 80)}), false,
      now);
  st.Update();
  const auto& eps = st.EndpointsFor({{"ns", "svc"}, "", Protocol::kTCP});
  REQUIRE(eps.size() == 1);
  CHECK(eps[0].ready);
}

TEST_CASE("slices that cannot be used are ignored") {
  ProxyState st("node-a", kStart);
  auto now = kStart;
  EndpointSlice v6 = Slice("ns", "svc", "v6", {Ep("fd00::1")}, {EpPort("", 80)});
  v6.address_type = AddressType::kIPv6;
  CHECK_FALSE(st.endpoint_changes().EndpointSliceUpdate(v6, false, now));
  EndpointSlice orphan = Slice("ns", "", "orphan", {Ep("10.0.0.1")}, {EpPort("", 80)});
  CHECK_FALSE(st.endpoint_changes().EndpointSliceUpdate(orphan, false, now));
  EndpointSlice bad = Slice("ns", "svc", "bad", {Ep("10.0.0.1"), Endpoint{}}, {});
  bad.ports.push_back(EndpointPort{std::nullopt, 80, Protocol::kTCP});     // nil name
  bad.ports.push_back(EndpointPort{std::string("x"), 0, Protocol::kTCP});  // port 0
  CHECK(st.endpoint_changes().EndpointSliceUpdate(bad, false, now));
  st.Update();
  CHECK(st.endpoints().empty());
}

TEST_CASE("trigger times before start are not measured and deletions have none") {
  ProxyState st("node-a", kStart);
  EndpointSlice s = Slice("ns", "svc", "a", {Ep("10.0.0.1")}, {EpPort("", 80)});
  s.last_change_trigger_time = kStart - std::chrono::seconds(10);
  st.endpoint_changes().EndpointSliceUpdate(s, false, kStart + std::chrono::seconds(1));
  CHECK(st.Update().trigger_times.empty());
  s.last_change_trigger_time = kStart + std::chrono::seconds(10);
  s.endpoints.push_back(Ep("10.0.0.2"));
  st.endpoint_changes().EndpointSliceUpdate(s, false, kStart + std::chrono::seconds(11));
  auto r = st.Update();
  REQUIRE(r.trigger_times.size() == 1);
  CHECK(r.trigger_times.begin()->second.front() == kStart + std::chrono::seconds(10));
  st.endpoint_changes().EndpointSliceUpdate(s, true, kStart + std::chrono::seconds(12));
  CHECK(st.Update().trigger_times.empty());
}

TEST_CASE("CategorizeEndpoints: ready first, then serving+terminating; Local uses this node") {
  ServicePort sp = ServicePortsOf(Demo()).begin()->second;
  auto mk = [](std::string ip, bool ready, bool serving, bool terminating, bool local) {
    EndpointInfo e;
    e.ipv4 = *ParseIPv4(ip);
    e.port = 80;
    e.ready = ready;
    e.serving = serving;
    e.terminating = terminating;
    e.is_local = local;
    return e;
  };
  std::vector<EndpointInfo> eps = {mk("10.0.0.1", true, true, false, false),
                                   mk("10.0.0.2", false, true, true, true),
                                   mk("10.0.0.3", false, false, false, true)};
  auto c = CategorizeEndpoints(eps, sp, "");
  REQUIRE(c.cluster.size() == 1);
  CHECK(c.cluster[0]->Ip() == "10.0.0.1");
  CHECK(c.local.empty());
  CHECK(c.has_any);

  // Internal policy Local: only local endpoints; none ready, so the terminating local one.
  sp.internal_traffic_policy = TrafficPolicy::kLocal;
  c = CategorizeEndpoints(eps, sp, "");
  CHECK(c.cluster.empty());
  REQUIRE(c.local.size() == 1);
  CHECK(c.local[0]->Ip() == "10.0.0.2");
  CHECK(c.all_reachable.size() == 1);
  CHECK(c.has_any);

  // External policy Local on a NodePort: cluster endpoints for short-circuit + local ones.
  sp.internal_traffic_policy = TrafficPolicy::kCluster;
  sp.type = ServiceType::kNodePort;
  sp.node_port = 30000;
  sp.external_traffic_policy = TrafficPolicy::kLocal;
  c = CategorizeEndpoints(eps, sp, "");
  CHECK(c.cluster.size() == 1);
  CHECK(c.local.size() == 1);
  REQUIRE(c.all_reachable.size() == 2);
  CHECK(c.all_reachable[0]->Ip() == "10.0.0.1");
  CHECK(c.all_reachable[1]->Ip() == "10.0.0.2");

  // Nothing usable anywhere.
  std::vector<EndpointInfo> none = {mk("10.0.0.3", false, false, true, true)};
  c = CategorizeEndpoints(none, sp, "");
  CHECK_FALSE(c.has_any);
  CHECK(c.all_reachable.empty());
}

TEST_CASE("CategorizeEndpoints honours zone hints only when all ready endpoints have them") {
  ServicePort sp = ServicePortsOf(Demo()).begin()->second;
  auto mk = [](std::string ip, std::vector<std::string> hints) {
    EndpointInfo e;
    e.ipv4 = *ParseIPv4(ip);
    e.port = 80;
    e.ready = e.serving = true;
    e.zone_hints = InternZoneHints(hints);
    return e;
  };
  std::vector<EndpointInfo> eps = {mk("10.0.0.1", {"zone-a"}), mk("10.0.0.2", {"zone-b"})};
  CHECK(CategorizeEndpoints(eps, sp, "zone-a").cluster.size() == 1);
  CHECK(CategorizeEndpoints(eps, sp, "zone-c").cluster.size() == 2);  // no hint for our zone
  CHECK(CategorizeEndpoints(eps, sp, "").cluster.size() == 2);
  eps.push_back(mk("10.0.0.3", {}));
  CHECK(CategorizeEndpoints(eps, sp, "zone-a").cluster.size() == 3);  // one without hints
}

TEST_CASE("packed endpoint addresses: parsing, text forms, interned zone hints") {
  CHECK(ParseIPv4("10.244.1.2") == 0x0af40102u);
  CHECK(ParseIPv4("255.255.255.255") == 0xffffffffu);
  CHECK_FALSE(ParseIPv4("10.244.1"));
  CHECK_FALSE(ParseIPv4("10.244.1.256"));
  CHECK_FALSE(ParseIPv4("fd00::1"));
  CHECK_FALSE(ParseIPv4("10.244.1.2.3.4.5.6.7"));  // longer than any address
  CHECK_FALSE(ParseIPv4(""));
  CHECK(FormatIPv4(0) == "0.0.0.0");
  CHECK(FormatIPv4(0x0af40102u) == "10.244.1.2");
  CHECK(FormatIPv4(0xffffffffu) == "255.255.255.255");
  char buf[kMaxAddressText];
  CHECK(FormatAddress(0xffffffffu, 65535, buf) == 21);
  CHECK(std::string(buf) == "255.255.255.255:65535");
  EndpointInfo e;
  e.ipv4 = 0x0a000001u;
  e.port = 8080;
  CHECK(e.Ip() == "10.0.0.1");
  CHECK(e.Address() == "10.0.0.1:8080");

  CHECK(InternZoneHints({}) == nullptr);
  const ZoneHints* a = InternZoneHints({"zone-a", "zone-b"});
  REQUIRE(a != nullptr);
  CHECK(*a == ZoneHints{"zone-a", "zone-b"});
  CHECK(InternZoneHints({"zone-a", "zone-b"}) == a);  // shared
  CHECK(InternZoneHints({"zone-b", "zone-a"}) != a);
  e.zone_hints = a;
  CHECK(e.HasZoneHint("zone-b"));
  CHECK_FALSE(e.HasZoneHint("zone-c"));
}

TEST_CASE("endpoints are ordered by their ip:port text and deduplicated by address") {
  ProxyState st("node-a", kStart);
  auto now = kStart + std::chrono::seconds(5);
  // Text order, not numeric: "10.0.0.10:80" < "10.0.0.1:80" < "10.0.0.1:9" < "10.0.0.2:80".
  EndpointSlice a = Slice("samples", "demo", "demo-a",
                          {Ep("10.0.0.2"), Ep("10.0.0.1"), Ep("10.0.0.10"), Ep("not-an-ip"),
                           Ep("10.0.0.3", true, std::nullopt, true, true)},
                          {EpPort("http", 80)});
  // A second slice: a port 9 for the same name (while a rollout changes it), and 10.0.0.3 again,
  // running this time (its successor, which wins over the terminating entry).
  EndpointSlice b = Slice("samples", "demo", "demo-b",
                          {Ep("10.0.0.3", true, "node-a", true, false)}, {EpPort("http", 80)});
  EndpointSlice c = Slice("samples", "demo", "demo-c", {Ep("10.0.0.1")}, {EpPort("http", 9)});
  // Ports outside 1-65535 are ignored.
  EndpointSlice d = Slice("samples", "demo", "demo-d", {Ep("10.0.0.7")}, {EpPort("http", 70000)});
  for (auto* s : {&a, &b, &c, &d}) st.endpoint_changes().EndpointSliceUpdate(*s, false, now);
  st.Update();
  const auto& eps = st.EndpointsFor(DemoHttp());
  std::vector<std::string> got;
  for (const auto& e : eps) got.push_back(e.Address());
  CHECK(got == std::vector<std::string>{"10.0.0.10:80", "10.0.0.1:80", "10.0.0.1:9",
                                        "10.0.0.2:80", "10.0.0.3:80"});
  REQUIRE(eps.size() == 5);
  CHECK_FALSE(eps[4].terminating);
  CHECK(eps[4].is_local);

  // Zone hints come through, shared.
  Endpoint hinted = Ep("10.0.0.20");
  hinted.hints_for_zones = {"zone-a"};
  EndpointSlice e = Slice("samples", "demo", "demo-e", {hinted}, {EpPort("http", 80)});
  st.endpoint_changes().EndpointSliceUpdate(e, false, now);
  st.Update();
  bool found = false;
  for (const auto& ep : st.EndpointsFor(DemoHttp())) {
    if (ep.Ip() == "10.0.0.20") {
      found = true;
      CHECK(ep.zone_hints == InternZoneHints({"zone-a"}));
    } else {
      CHECK(ep.zone_hints == nullptr);
    }
  }
  CHECK(found);
}

TEST_CASE("EndpointsChangeTracker checks out only the services with pending slices") {
  EndpointsChangeTracker t("node-a", kStart);
  auto now = kStart + std::chrono::seconds(5);
  auto slice = [](const std::string& svc, const std::string& ip) {
    return Slice("ns", svc, svc + "-1", {Ep(ip)}, {EpPort("http", 80)});
  };
  CHECK_FALSE(t.HasPending());
  for (int i = 0; i < 50; ++i) {
    CHECK(t.EndpointSliceUpdate(slice("s" + std::to_string(i), "10.0.0.1"), false, now));
  }
  // Two events for one service: it is checked out once.
  CHECK(t.EndpointSliceUpdate(slice("s7", "10.0.0.2"), false, now));
  CHECK(t.HasPending());
  CHECK(t.CheckoutChanges().changes.size() == 50);
  CHECK_FALSE(t.HasPending());
  CHECK(t.CheckoutChanges().changes.empty());

  CHECK(t.EndpointSliceUpdate(slice("s3", "10.0.0.9"), false, now));
  CHECK(t.HasPending());
  auto c = t.CheckoutChanges();
  REQUIRE(c.changes.size() == 1);
  const auto& change = c.changes.begin()->second;
  CHECK(c.changes.begin()->first == ServiceName{"ns", "s3"});
  CHECK(change.previous.begin()->second[0].Ip() == "10.0.0.1");
  CHECK(change.current.begin()->second[0].Ip() == "10.0.0.9");

  // A service whose last slice goes: checked out with no endpoints, then forgotten.
  CHECK(t.EndpointSliceUpdate(slice("s3", "10.0.0.9"), true, now));
  c = t.CheckoutChanges();
  REQUIRE(c.changes.size() == 1);
  CHECK(c.changes.begin()->second.current.empty());
  CHECK_FALSE(t.HasPending());
  // Deleting it again is no change; adding it back is.
  CHECK_FALSE(t.EndpointSliceUpdate(slice("s3", "10.0.0.9"), true, now));
  CHECK(t.EndpointSliceUpdate(slice("s3", "10.0.0.4"), false, now));
  c = t.CheckoutChanges();
  REQUIRE(c.changes.size() == 1);
  CHECK(c.changes.begin()->second.previous.empty());
}
