// Golden-file tests of the iptables renderer: the whole rendered iptables-restore input is
// compared with tests/golden/iptables/<case>.rules. Regenerate after an intended change with
//   CUBELET_UPDATE_GOLDEN=1 ./iptables_renderer_test
// and review the diff line by line against kube-proxy's proxier.go.
#include "netproxy/iptables_renderer.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <set>
#include <sstream>

#include "base/file.h"
#include "base/strings.h"
#include "netproxy/chain_names.h"
#include "netproxy/proxy_state.h"
#include "tests/netproxy/fixtures.h"

using namespace netproxy;
using namespace netproxy::testing;

namespace {

constexpr const char* kNode = "node-a";

struct Harness {
  explicit Harness(IptablesRendererConfig cfg = DefaultConfig())
      : state(kNode, WallTime{}), renderer(std::move(cfg)) {}

  static IptablesRendererConfig DefaultConfig() {
    IptablesRendererConfig c;
    c.cluster_cidr = "10.244.0.0/16";
    c.node_ip = "192.168.50.2";
    return c;
  }

  void Add(const Service& s) { state.service_changes().Update(nullptr, &s); }
  void Remove(const Service& s) { state.service_changes().Update(&s, nullptr); }
  void Add(const EndpointSlice& s) {
    state.endpoint_changes().EndpointSliceUpdate(s, false, std::chrono::system_clock::now());
  }
  void Remove(const EndpointSlice& s) {
    state.endpoint_changes().EndpointSliceUpdate(s, true, std::chrono::system_clock::now());
  }
  IptablesRuleset Render(const std::set<std::string>& existing = {}, bool partial = false) {
    last_update = state.Update();
    return renderer.Render(state, partial ? &last_update.updated_services : nullptr, existing);
  }

  ProxyState state;
  IptablesRenderer renderer;
  StateUpdateResult last_update;
};

void CheckGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(CUBELET_SOURCE_DIR) + "/tests/golden/iptables/" + name + ".rules";
  if (std::getenv("CUBELET_UPDATE_GOLDEN")) {
    REQUIRE(base::WriteFile(path, actual));
  }
  auto expected = base::ReadFile(path);
  INFO("golden file " << path);
  REQUIRE(expected);
  CHECK(actual == *expected);
}

std::vector<std::string> Lines(const std::string& text) { return base::Split(text, '\n', true); }

// The sample objects of /work/shared/k8s-samples 50 (service) and 65 (its ready slice).
Service DemoClusterIP() {
  return ClusterIPService("samples", "demo-clusterip", "10.97.228.99", {Port("http", 80, 8080)});
}

}  // namespace

TEST_CASE("chain names are kube-proxy's hashes") {
  // Names seen on real kube-proxy nodes and in kube-proxy's own tests.
  CHECK(ServiceChainName("default/kubernetes:https", "tcp") == "KUBE-SVC-NPX46M4PTMTKRN6Y");
  CHECK(ServiceChainName("kube-system/kube-dns:dns", "udp") == "KUBE-SVC-TCOU7JCQXEZGVUNU");
  CHECK(ServiceChainName("ns1/svc1:p80", "tcp") == "KUBE-SVC-XPGD46QRK7WJZT7O");
  CHECK(ServiceChainName("ns2/svc2:p8080", "tcp") == "KUBE-SVC-2VJB64SDSIJUP5T6");
  CHECK(LocalChainName("ns1/svc1:p80", "tcp") == "KUBE-SVL-XPGD46QRK7WJZT7O");
  CHECK(EndpointChainName("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ");
  CHECK(EndpointChainName("ns1/svc1:p80", "tcp", "10.180.2.1:80") == "KUBE-SEP-ZX7GRIZKSNUQ3LAJ");
  CHECK(EndpointChainName("ns1/svc1:p80", "tcp", "10.0.1.1:80") == "KUBE-SEP-SNQ3ZNILQDEJNDQO");
  CHECK(EndpointChainName("ns2/svc2:p8080", "tcp", "10.0.2.1:8080") == "KUBE-SEP-UHEGFW77JX3KXTOV");
  CHECK(IsServiceChainName("KUBE-SEP-SXIVWICOYRO3J4NJ"));
  CHECK(IsServiceChainName("KUBE-FW-XPGD46QRK7WJZT7O"));
  CHECK_FALSE(IsServiceChainName("KUBE-SERVICES"));
  CHECK_FALSE(IsServiceChainName("KUBE-MARK-MASQ"));
}

TEST_CASE("golden: one ClusterIP service with two endpoints") {
  Harness h;
  h.Add(DemoClusterIP());
  h.Add(Slice("samples", "demo-clusterip", "demo-clusterip-dn5rs",
              {Ep("10.244.9.6", true, "sample-node"), Ep("10.244.1.5", true, std::string(kNode))},
              {EpPort("http", 8080)}));
  auto rs = h.Render();
  CheckGolden("clusterip_two_endpoints", rs.Serialize());
  // Endpoints are in address order and the first one is picked with probability 1/2.
  const IptablesChain* svc = rs.nat.Find(ServiceChainName("samples/demo-clusterip:http", "tcp"));
  REQUIRE(svc);
  REQUIRE(svc->rules.size() == 3);
  CHECK(svc->rules[1].find("--probability 0.5000000000") != std::string::npos);
  CHECK(svc->rules[1].find("10.244.1.5:8080") != std::string::npos);
  CHECK(svc->rules[2].find("statistic") == std::string::npos);
}

TEST_CASE("golden: named ports resolve through the slice's port names") {
  Harness h;
  Service svc = ClusterIPService(
      "apps", "web", "10.96.0.20",
      {Port("http", 80, 0), Port("metrics", 9090, 0), Port("dns", 53, 53, Protocol::kUDP)});
  svc.ports[0].target_port = TargetPort{0, "web-http"};
  svc.ports[1].target_port = TargetPort{0, "web-metrics"};
  h.Add(svc);
  // The controller resolved the named target ports: http -> 8080, metrics -> 9100. The slice
  // lists its ports in another order than the service.
  h.Add(
      Slice("apps", "web", "web-abcde", {Ep("10.244.3.3"), Ep("10.244.3.4"), Ep("10.244.3.2")},
            {EpPort("metrics", 9100), EpPort("dns", 5353, Protocol::kUDP), EpPort("http", 8080)}));
  // A single-port service with an unnamed port.
  h.Add(ClusterIPService("apps", "plain", "10.96.0.21", {Port("", 8000, 8000)}));
  h.Add(Slice("apps", "plain", "plain-xyz", {Ep("10.244.4.4")}, {EpPort("", 8000)}));
  auto rs = h.Render();
  CheckGolden("named_ports", rs.Serialize());
  auto text = rs.Serialize();
  CHECK(text.find("--to-destination 10.244.3.3:9100") != std::string::npos);
  CHECK(text.find("--to-destination 10.244.3.3:8080") != std::string::npos);
  CHECK(text.find("-m udp -p udp -j DNAT --to-destination 10.244.3.3:5353") != std::string::npos);
  CHECK(text.find("\"apps/plain cluster IP\"") != std::string::npos);
  // Three endpoints: probabilities 1/3, 1/2, then the last unconditionally.
  CHECK(text.find("--probability 0.3333333333") != std::string::npos);
}

TEST_CASE("golden: NodePort service") {
  Harness h;
  Service svc = ClusterIPService("samples", "demo-nodeport", "10.107.231.172",
                                 {Port("http", 80, 8080, Protocol::kTCP, 31553)});
  svc.type = ServiceType::kNodePort;
  h.Add(svc);
  h.Add(Slice("samples", "demo-nodeport", "demo-nodeport-7xk2p", {Ep("10.244.9.6")},
              {EpPort("http", 8080)}));
  auto rs = h.Render();
  CheckGolden("nodeport", rs.Serialize());
  const IptablesChain* np = rs.nat.Find("KUBE-NODEPORTS");
  REQUIRE(np);
  REQUIRE(np->rules.size() == 1);
  CHECK(np->rules[0] ==
        "-m comment --comment samples/demo-nodeport:http -m tcp -p tcp --dport "
        "31553 -j " +
            ExternalChainName("samples/demo-nodeport:http", "tcp"));
  // The jump to KUBE-NODEPORTS is the last rule of KUBE-SERVICES.
  const IptablesChain* services = rs.nat.Find("KUBE-SERVICES");
  REQUIRE(services);
  CHECK(services->rules.back().find("--dst-type LOCAL -j KUBE-NODEPORTS") != std::string::npos);
}

TEST_CASE("golden: services without endpoints are rejected in filter") {
  Harness h;
  h.Add(DemoClusterIP());
  // Sample 54: the controller's slice before the pod exists has endpoints: null, ports: null.
  h.Add(Slice("samples", "demo-clusterip", "demo-clusterip-dn5rs", {}, {}));
  Service np = ClusterIPService("samples", "demo-nodeport", "10.107.231.172",
                                {Port("http", 80, 8080, Protocol::kTCP, 31553)});
  np.type = ServiceType::kNodePort;
  np.external_ips = {"192.168.50.100"};
  h.Add(np);
  // Not ready and not serving: no usable endpoint.
  h.Add(Slice("samples", "demo-nodeport", "demo-nodeport-1", {Ep("10.244.9.7", false, {}, false)},
              {EpPort("http", 8080)}));
  auto rs = h.Render();
  CheckGolden("no_endpoints", rs.Serialize());
  const IptablesChain* fs = rs.filter.Find("KUBE-SERVICES");
  REQUIRE(fs);
  REQUIRE(fs->rules.size() == 2);
  CHECK(fs->rules[0] ==
        "-m comment --comment \"samples/demo-clusterip:http has no endpoints\" -m tcp -p tcp -d "
        "10.97.228.99 --dport 80 -j REJECT");
  // No nat chains for either service.
  for (const auto& c : rs.nat.chains) CHECK_FALSE(IsServiceChainName(c.name));
}

TEST_CASE("golden: session affinity ClientIP") {
  Harness h;
  Service svc = DemoClusterIP();
  svc.session_affinity = SessionAffinity::kClientIP;
  svc.session_affinity_timeout_seconds = 600;
  h.Add(svc);
  h.Add(Slice("samples", "demo-clusterip", "demo-clusterip-dn5rs",
              {Ep("10.244.9.6"), Ep("10.244.1.5")}, {EpPort("http", 8080)}));
  auto rs = h.Render();
  CheckGolden("session_affinity", rs.Serialize());
  const IptablesChain* c = rs.nat.Find(ServiceChainName("samples/demo-clusterip:http", "tcp"));
  REQUIRE(c);
  // masquerade, two affinity checks, two balancing rules.
  REQUIRE(c->rules.size() == 5);
  CHECK(c->rules[1].find("-m recent --name KUBE-SEP-") != std::string::npos);
  CHECK(c->rules[1].find("--rcheck --seconds 600 --reap") != std::string::npos);
}

TEST_CASE("golden: terminating endpoints are used only when none is ready") {
  Harness h;
  h.Add(DemoClusterIP());
  // Sample 75: the only pod is terminating but still serving. A second one is terminating and
  // no longer serving: never used.
  h.Add(Slice("samples", "demo-clusterip", "demo-clusterip-dn5rs",
              {Ep("10.244.9.6", false, "sample-node", true, true),
               Ep("10.244.9.8", false, "sample-node", false, true)},
              {EpPort("http", 8080)}));
  auto rs = h.Render();
  CheckGolden("terminating_fallback", rs.Serialize());
  auto text = rs.Serialize();
  CHECK(text.find("10.244.9.6:8080") != std::string::npos);
  CHECK(text.find("10.244.9.8") == std::string::npos);

  // Once a ready endpoint appears, the terminating one is dropped.
  h.Add(Slice("samples", "demo-clusterip", "demo-clusterip-2", {Ep("10.244.9.9")},
              {EpPort("http", 8080)}));
  text = h.Render().Serialize();
  CHECK(text.find("10.244.9.9:8080") != std::string::npos);
  CHECK(text.find("10.244.9.6:8080") == std::string::npos);
}

TEST_CASE("golden: headless and ExternalName services are skipped") {
  Harness h;
  Service headless = ClusterIPService("samples", "demo-headless", "None", {Port("http", 80, 8080)});
  Service external;
  external.ns = "samples";
  external.name = "demo-external";
  external.type = ServiceType::kExternalName;
  Service empty_ip = ClusterIPService("samples", "no-ip", "", {Port("http", 80, 8080)});
  h.Add(headless);
  h.Add(external);
  h.Add(empty_ip);
  h.Add(DemoClusterIP());
  for (const char* svc : {"demo-headless", "demo-clusterip"}) {
    h.Add(
        Slice("samples", svc, std::string(svc) + "-1", {Ep("10.244.9.6")}, {EpPort("http", 8080)}));
  }
  auto rs = h.Render();
  CheckGolden("headless_skipped", rs.Serialize());
  auto text = rs.Serialize();
  CHECK(text.find("demo-headless") == std::string::npos);
  CHECK(text.find("demo-external") == std::string::npos);
  CHECK(text.find("no-ip") == std::string::npos);
  CHECK(h.state.service_ports().size() == 1);
}

TEST_CASE("golden: externalTrafficPolicy Local, external IP, LB with source ranges") {
  Harness h;
  Service svc = ClusterIPService("samples", "demo-lb", "10.96.5.5",
                                 {Port("http", 80, 8080, Protocol::kTCP, 30080)});
  svc.type = ServiceType::kLoadBalancer;
  svc.external_traffic_policy = TrafficPolicy::kLocal;
  svc.health_check_node_port = 32000;
  svc.external_ips = {"192.168.50.10"};
  svc.load_balancer_ips = {"203.0.113.7"};
  svc.load_balancer_source_ranges = {"198.51.100.0/24", "192.168.50.0/24"};
  h.Add(svc);
  h.Add(Slice("samples", "demo-lb", "demo-lb-1",
              {Ep("10.244.1.5", true, std::string(kNode)), Ep("10.244.2.5", true, "node-b")},
              {EpPort("http", 8080)}));
  auto rs = h.Render();
  CheckGolden("external_local", rs.Serialize());
  const IptablesChain* svl = rs.nat.Find(LocalChainName("samples/demo-lb:http", "tcp"));
  REQUIRE(svl);
  REQUIRE(svl->rules.size() == 1);
  CHECK(svl->rules[0].find("10.244.1.5:8080") != std::string::npos);
  // The node's own address is in a source range: LB traffic from the node is allowed.
  const IptablesChain* fw = rs.nat.Find(FirewallChainName("samples/demo-lb:http", "tcp"));
  REQUIRE(fw);
  CHECK(fw->rules.size() == 4);
  CHECK(rs.filter.Find("KUBE-NODEPORTS")->rules.size() == 1);

  // Without local endpoints external traffic is dropped, not rejected.
  h.Add(Slice("samples", "demo-lb", "demo-lb-1", {Ep("10.244.2.5", true, "node-b")},
              {EpPort("http", 8080)}));
  auto text = h.Render().Serialize();
  CHECK(text.find("-A KUBE-EXTERNAL-SERVICES -m comment --comment \"samples/demo-lb:http has no "
                  "local endpoints\" -m addrtype --dst-type LOCAL -m tcp -p tcp --dport 30080 -j "
                  "DROP") != std::string::npos);
}

TEST_CASE("rules match kube-proxy's own expected output (TestOnlyLocalExternalIPs)") {
  // Input and expected rules of kube-proxy's proxier_test.go TestOnlyLocalExternalIPs
  // (cluster CIDR 10.0.0.0/8, node "testHostname"); its fake mark is printed 0x4000.
  IptablesRendererConfig cfg;
  cfg.cluster_cidr = "10.0.0.0/8";
  ProxyState state("test-hostname", WallTime{});
  IptablesRenderer r(cfg);
  Service svc = ClusterIPService("ns1", "svc1", "172.30.0.41", {Port("p80", 80, 80)});
  svc.type = ServiceType::kNodePort;
  svc.external_traffic_policy = TrafficPolicy::kLocal;
  svc.external_ips = {"192.168.99.11"};
  state.service_changes().Update(nullptr, &svc);
  EndpointSlice slice = Slice("ns1", "svc1", "svc1-1",
                              {Ep("10.180.0.1", {}, {}, {}, {}),
                               Ep("10.180.2.1", {}, std::string("test-hostname"), {}, {})},
                              {EpPort("p80", 80)});
  state.endpoint_changes().EndpointSliceUpdate(slice, false, WallTime{});
  state.Update();
  auto text = r.Render(state, nullptr, {}).Serialize();
  const std::vector<std::string> expected = {
      "-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p tcp -d "
      "172.30.0.41 --dport 80 -j KUBE-SVC-XPGD46QRK7WJZT7O",
      "-A KUBE-SERVICES -m comment --comment \"ns1/svc1:p80 external IP\" -m tcp -p tcp -d "
      "192.168.99.11 --dport 80 -j KUBE-EXT-XPGD46QRK7WJZT7O",
      "-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment \"pod traffic for ns1/svc1:p80 external "
      "destinations\" -s 10.0.0.0/8 -j KUBE-SVC-XPGD46QRK7WJZT7O",
      "-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment \"masquerade LOCAL traffic for "
      "ns1/svc1:p80 external destinations\" -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ",
      "-A KUBE-EXT-XPGD46QRK7WJZT7O -m comment --comment \"route LOCAL traffic for ns1/svc1:p80 "
      "external destinations\" -m addrtype --src-type LOCAL -j KUBE-SVC-XPGD46QRK7WJZT7O",
      "-A KUBE-EXT-XPGD46QRK7WJZT7O -j KUBE-SVL-XPGD46QRK7WJZT7O",
      "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -s 10.180.0.1 -j "
      "KUBE-MARK-MASQ",
      "-A KUBE-SEP-SXIVWICOYRO3J4NJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT "
      "--to-destination 10.180.0.1:80",
      "-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -s 10.180.2.1 -j "
      "KUBE-MARK-MASQ",
      "-A KUBE-SEP-ZX7GRIZKSNUQ3LAJ -m comment --comment ns1/svc1:p80 -m tcp -p tcp -j DNAT "
      "--to-destination 10.180.2.1:80",
      "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 cluster IP\" -m tcp -p "
      "tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ",
      "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.180.0.1:80\" -m "
      "statistic --mode random --probability 0.5000000000 -j KUBE-SEP-SXIVWICOYRO3J4NJ",
      "-A KUBE-SVC-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.180.2.1:80\" -j "
      "KUBE-SEP-ZX7GRIZKSNUQ3LAJ",
      "-A KUBE-SVL-XPGD46QRK7WJZT7O -m comment --comment \"ns1/svc1:p80 -> 10.180.2.1:80\" -j "
      "KUBE-SEP-ZX7GRIZKSNUQ3LAJ",
  };
  // Compare the service's rules (the top-level chains differ between kube-proxy versions).
  std::multiset<std::string> got;
  for (const auto& line : Lines(text)) {
    if (base::StartsWith(line, "-A ") && (line.find("ns1/svc1") != std::string::npos ||
                                          line.find("XPGD46QRK7WJZT7O") != std::string::npos)) {
      got.insert(line);
    }
  }
  CHECK(got == std::multiset<std::string>(expected.begin(), expected.end()));
  for (const char* chain :
       {"KUBE-EXT-XPGD46QRK7WJZT7O", "KUBE-SVC-XPGD46QRK7WJZT7O", "KUBE-SVL-XPGD46QRK7WJZT7O",
        "KUBE-SEP-SXIVWICOYRO3J4NJ", "KUBE-SEP-ZX7GRIZKSNUQ3LAJ"}) {
    CHECK(text.find(std::string(":") + chain + " - [0:0]") != std::string::npos);
  }
}

TEST_CASE("golden: stale chains of removed services are flushed and deleted") {
  Harness h;
  Service gone = ClusterIPService("samples", "gone", "10.96.0.99", {Port("http", 80, 8080)});
  h.Add(gone);
  h.Add(DemoClusterIP());
  EndpointSlice gone_slice =
      Slice("samples", "gone", "gone-1", {Ep("10.244.5.5")}, {EpPort("http", 8080)});
  h.Add(gone_slice);
  h.Add(Slice("samples", "demo-clusterip", "demo-clusterip-dn5rs", {Ep("10.244.9.6")},
              {EpPort("http", 8080)}));
  auto first = h.Render();
  std::set<std::string> existing = first.active_nat_chains;
  existing.insert("KUBE-SERVICES");
  existing.insert("DOCKER");  // not ours: left alone
  h.Remove(gone);
  h.Remove(gone_slice);
  auto rs = h.Render(existing, /*partial=*/true);
  CheckGolden("stale_chains", rs.Serialize());
  std::vector<std::string> expected = {
      ServiceChainName("samples/gone:http", "tcp"),
      EndpointChainName("samples/gone:http", "tcp", "10.244.5.5:8080")};
  std::sort(expected.begin(), expected.end());
  CHECK(rs.nat.deleted_chains == expected);
  // A partial sync of a removal rewrites no per-service chain of the unchanged service...
  for (const auto& c : rs.nat.chains) CHECK_FALSE(IsServiceChainName(c.name));
  // ... but still counts its rules and keeps its chains active.
  CHECK(rs.nat.skipped_rules == 4);  // masquerade + one endpoint jump + the SEP chain's two
  CHECK(rs.active_nat_chains.count(ServiceChainName("samples/demo-clusterip:http", "tcp")));
}

TEST_CASE("masquerade-all, no cluster CIDR, nodeport addresses, no localhost nodeports") {
  IptablesRendererConfig cfg;
  cfg.masquerade_all = true;
  cfg.localhost_nodeports = false;
  cfg.random_fully = false;
  cfg.nodeport_ips = {"192.168.50.2", "127.0.0.1"};
  Harness h(cfg);
  h.Add(DemoClusterIP());
  h.Add(Slice("samples", "demo-clusterip", "s", {Ep("10.244.9.6")}, {EpPort("http", 8080)}));
  auto rs = h.Render();
  auto text = rs.Serialize();
  CHECK(text.find("--dport 80 -j KUBE-MARK-MASQ") != std::string::npos);  // no "! -s"
  CHECK(text.find("! -s") == std::string::npos);
  CHECK(text.find("--random-fully") == std::string::npos);
  CHECK(text.find("KUBE-FIREWALL") == std::string::npos);
  CHECK(text.find("this must be the last rule in this chain\" -d 192.168.50.2 -j KUBE-NODEPORTS") !=
        std::string::npos);
  CHECK(text.find("-d 127.0.0.1 -j KUBE-NODEPORTS") == std::string::npos);
  for (const auto& j : IptablesJumps(false)) CHECK(j.to_chain != "KUBE-FIREWALL");
}

TEST_CASE("large clusters drop per-endpoint comments") {
  IptablesRendererConfig cfg = Harness::DefaultConfig();
  cfg.large_cluster_endpoints = 2;
  Harness h(cfg);
  h.Add(DemoClusterIP());
  h.Add(Slice("samples", "demo-clusterip", "s",
              {Ep("10.244.9.6"), Ep("10.244.9.7"), Ep("10.244.9.8")}, {EpPort("http", 8080)}));
  auto text = h.Render().Serialize();
  CHECK(text.find("->") == std::string::npos);
  CHECK(text.find("-s 10.244.9.6 -j KUBE-MARK-MASQ") != std::string::npos);
  CHECK(text.find("\"samples/demo-clusterip:http cluster IP\"") != std::string::npos);
}

TEST_CASE("jump rules and serialization of missing jumps") {
  IptablesRuleset rs;
  rs.filter.AddChain("KUBE-SERVICES");
  auto jumps = IptablesJumps(true);
  REQUIRE(jumps.size() == 14);
  CHECK(jumps[0].RuleArgs() ==
        "-m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
        "portals\" -j KUBE-EXTERNAL-SERVICES");
  CHECK(jumps.back().RuleArgs() == "-j KUBE-FIREWALL");
  auto text = rs.Serialize({jumps[10]});
  CHECK(text ==
        "*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\n-I PREROUTING 1 -m comment "
        "--comment \"kubernetes service portals\" -j KUBE-SERVICES\nCOMMIT\n");
}

TEST_CASE("chunked serialization keeps each service in one commit and the top level last") {
  Harness h;
  for (int i = 0; i < 30; ++i) {
    std::string name = "s" + std::to_string(i);
    h.Add(ClusterIPService("ns", name, "10.96.0." + std::to_string(i + 1), {Port("p", 80, 80)}));
    h.Add(Slice("ns", name, name + "-1",
                {Ep("10.244.1." + std::to_string(i + 1)), Ep("10.244.2." + std::to_string(i + 1))},
                {EpPort("p", 80)}));
  }
  auto rs = h.Render({"KUBE-SVC-STALE000000000000"});
  auto chunks = rs.SerializeChunked(IptablesJumps(true), 10);
  // 30 services x 3 chains, ~10 per commit (whole services: 12 per commit) + the final one.
  REQUIRE(chunks.size() == 9);
  std::multiset<std::string> all_lines, chunk_lines;
  for (const auto& l : Lines(rs.Serialize(IptablesJumps(true)))) {
    if (l[0] != '*' && l != "COMMIT") all_lines.insert(l);
  }
  for (size_t i = 0; i < chunks.size(); ++i) {
    const auto& c = chunks[i];
    for (const auto& l : Lines(c)) {
      if (l[0] != '*' && l != "COMMIT") chunk_lines.insert(l);
    }
    if (i + 1 < chunks.size()) {
      CHECK(base::StartsWith(c, "*nat\n"));
      CHECK(c.find("KUBE-SERVICES") == std::string::npos);
      CHECK(c.find("-X ") == std::string::npos);
      // Every chain a commit jumps to is declared in it or in an earlier one.
      for (const auto& l : Lines(c)) {
        auto pos = l.find("-j KUBE-");
        if (pos != std::string::npos) {
          std::string decl = ":" + l.substr(pos + 3) + " - [0:0]";
          bool found = false;
          for (size_t k = 0; k <= i; ++k)
            found = found || chunks[k].find(decl) != std::string::npos;
          CHECK(found);
        }
      }
    } else {
      CHECK(c.find("-A KUBE-SERVICES") != std::string::npos);
      CHECK(c.find("-X KUBE-SVC-STALE000000000000") != std::string::npos);
      CHECK(c.find("-I PREROUTING 1") != std::string::npos);
      CHECK(c.find(":KUBE-SEP-") == std::string::npos);
    }
  }
  CHECK(chunks[0].find(":KUBE-MARK-MASQ - [0:0]") != std::string::npos);
  // KUBE-MARK-MASQ is written twice (first and last commit); otherwise the same lines.
  for (const char* l :
       {":KUBE-MARK-MASQ - [0:0]", "-A KUBE-MARK-MASQ -j MARK --or-mark 0x00004000"}) {
    REQUIRE(chunk_lines.count(l) == 2);
    chunk_lines.erase(chunk_lines.find(l));
  }
  CHECK(all_lines == chunk_lines);
}
