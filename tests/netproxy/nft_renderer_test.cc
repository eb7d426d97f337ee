// nftables mode rendering: per-service objects, the full script (golden file) and incremental
// diffs. The kernel accepts them in proxier_integration_test.cc; here the content is checked.
#include "netproxy/nft_renderer.h"

#include <catch2/catch.hpp>
#include <cstdlib>

#include "base/file.h"
#include "base/strings.h"
#include "netproxy/nftables_engine.h"
#include "netproxy/proxier.h"
#include "tests/netproxy/fixtures.h"

using namespace netproxy;
using namespace netproxy::testing;
using namespace std::chrono_literals;

namespace {

NftRendererConfig Config() {
  NftRendererConfig c;
  c.cluster_cidr = "10.244.0.0/16";
  c.node_ip = "192.168.50.2";
  return c;
}

ServicePort PortOf(const Service& s) { return ServicePortsOf(s).begin()->second; }

void CheckGolden(const std::string& name, const std::string& actual) {
  std::string path = std::string(CUBELET_SOURCE_DIR) + "/tests/netproxy/golden_nft/" + name;
  if (std::getenv("CUBELET_UPDATE_GOLDEN")) REQUIRE(base::WriteFile(path, actual));
  auto expected = base::ReadFile(path);
  INFO("golden file " << path);
  REQUIRE(expected);
  CHECK(actual == *expected);
}

bool Has(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

std::vector<std::string> Texts(const NftChain& c) {
  std::vector<std::string> out;
  for (const auto& r : c.rules) out.push_back(NftRuleText(r));
  return out;
}

}  // namespace

TEST_CASE("nft: a ClusterIP service is one chain, one map element and hairpin elements") {
  Service s =
      ClusterIPService("samples", "demo-clusterip", "10.97.228.99", {Port("http", 80, 8080)});
  auto o =
      RenderNftService(Config(), PortOf(s), Eps({{"10.244.1.5", true}, {"10.244.9.6", false}}));
  REQUIRE(o.chains.size() == 1);
  const std::string base = NftServiceBase(PortOf(s));
  CHECK(base == "BXJLRHGJ-samples/demo-clusterip/tcp/http");
  CHECK(o.chains[0].name == "service-" + base);
  CHECK(Texts(o.chains[0]) ==
        std::vector<std::string>{"ip daddr 10.97.228.99 tcp dport 80 ip saddr != 10.244.0.0/16 "
                                 "jump mark-for-masquerade",
                                 "numgen random mod 2 == 0 meta l4proto tcp dnat ip to "
                                 "10.244.1.5:8080",
                                 "meta l4proto tcp dnat ip to 10.244.9.6:8080"});
  REQUIRE(o.elements.size() == 3);
  CHECK(o.elements[0] ==
        NftElement{"service-ips", "10.97.228.99 . tcp . 80", "goto service-" + base});
  CHECK(o.elements[1] == NftElement{"hairpin", "10.244.1.5 . 10.244.1.5", ""});
}

TEST_CASE("nft: no endpoints rejects, Local policy without local endpoints drops") {
  Service s = ClusterIPService("ns", "np", "10.96.0.5", {Port("", 80, 80, Protocol::kUDP, 30053)});
  s.type = ServiceType::kNodePort;
  auto none = RenderNftService(Config(), PortOf(s), {});
  CHECK(none.chains.empty());
  CHECK(none.elements == std::vector<NftElement>{
                             {"no-endpoint-services", "10.96.0.5 . udp . 80", "goto reject-chain"},
                             {"no-endpoint-nodeports", "udp . 30053", "goto reject-chain"}});

  s.external_traffic_policy = TrafficPolicy::kLocal;
  auto remote_only = RenderNftService(Config(), PortOf(s), Eps({{"10.244.2.2", false}}, 53));
  // The cluster IP works; external traffic short-circuits for pods and the node, else drops.
  CHECK(Has(remote_only.elements[0].value, "goto service-"));
  CHECK(remote_only.elements[1] == NftElement{"service-nodeports", "udp . 30053",
                                              "goto external-" + NftServiceBase(PortOf(s))});
  CHECK(remote_only.elements[2] == NftElement{"no-endpoint-nodeports", "udp . 30053", "drop"});
  const NftChain& ext = remote_only.chains[0];
  CHECK(Texts(ext) ==
        std::vector<std::string>{"ip saddr 10.244.0.0/16 goto service-" + NftServiceBase(PortOf(s)),
                                 "fib saddr type local jump mark-for-masquerade",
                                 "fib saddr type local goto service-" + NftServiceBase(PortOf(s))});
}

TEST_CASE("nft: session affinity uses a timeout set and a chain per endpoint") {
  Service s = ClusterIPService("ns", "aff", "10.96.0.7", {Port("p", 80, 80)});
  s.session_affinity = SessionAffinity::kClientIP;
  s.session_affinity_timeout_seconds = 600;
  auto o = RenderNftService(Config(), PortOf(s),
                            Eps({{"10.244.1.1", false}, {"10.244.1.2", false}}, 80));
  REQUIRE(o.sets.size() == 2);
  CHECK(Has(NftSetText(o.sets[0]), "{ type ipv4_addr; flags dynamic,timeout; timeout 600s; }"));
  REQUIRE(o.chains.size() == 3);
  const NftChain& svc = o.chains.back();
  CHECK(Has(Texts(svc)[1], "ip saddr @affinity-"));
  CHECK(Has(Texts(svc)[3], "numgen random mod 2 == 0 goto endpoint-"));
  CHECK(base::StartsWith(Texts(svc)[4], "goto endpoint-"));
  CHECK(Has(Texts(o.chains[0])[0], "update @affinity-"));
  CHECK(Texts(o.chains[0])[1] == "meta l4proto tcp dnat ip to 10.244.1.1:80");
}

TEST_CASE("nft: full script golden") {
  NftServiceMap m;
  Service a =
      ClusterIPService("samples", "demo-clusterip", "10.97.228.99", {Port("http", 80, 8080)});
  Service b = ClusterIPService("samples", "demo-nodeport", "10.107.231.172",
                               {Port("http", 80, 8080, Protocol::kTCP, 31553)});
  b.type = ServiceType::kNodePort;
  Service c = ClusterIPService("samples", "empty", "10.96.0.9", {Port("http", 80, 8080)});
  for (auto* s : {&a, &b, &c}) {
    auto sp = PortOf(*s);
    std::vector<EndpointInfo> eps;
    if (s == &a) eps = Eps({{"10.244.1.5", true}, {"10.244.9.6", false}});
    if (s == &b) eps = Eps({{"10.244.9.6", false}});
    m.emplace(sp.name, RenderNftService(Config(), sp, eps));
  }
  std::string script = NftFullScript(Config(), m);
  CheckGolden("full.nft", script);
  // The hairpin element shared by two services is added once.
  CHECK(Has(script,
            "add element ip cubelet hairpin { 10.244.1.5 . 10.244.1.5, 10.244.9.6 . 10.244.9.6 }"));
}

TEST_CASE("nft: diffs touch only what changed, in an order the kernel accepts") {
  Service s = ClusterIPService("ns", "web", "10.96.0.10", {Port("http", 80, 8080)});
  auto sp = PortOf(s);
  auto v1 = RenderNftService(Config(), sp, Eps({{"10.244.1.1", false}}));
  auto v2 = RenderNftService(Config(), sp, Eps({{"10.244.1.1", false}, {"10.244.1.2", false}}));
  auto none = RenderNftService(Config(), sp, {});
  NftRefCounts refs = {{NftHairpinKey("10.244.1.1 . 10.244.1.1"), 2}};  // also used elsewhere

  // Endpoint added: the chain is rewritten, one hairpin element added, the map untouched.
  std::string d = NftDiffScript({{&v1, &v2}}, refs);
  std::string expected = "flush chain ip cubelet service-" + NftServiceBase(sp) + "\n";
  for (const auto& t : Texts(v2.chains[0])) {
    expected += "add rule ip cubelet service-" + NftServiceBase(sp) + " " + t + "\n";
  }
  expected += "add element ip cubelet hairpin { 10.244.1.2 . 10.244.1.2 }\n";
  CHECK(d == expected);
  CHECK(Texts(v2.chains[0]).size() == 3);
  CHECK(refs.Count(NftHairpinKey("10.244.1.2 . 10.244.1.2")) == 1);

  // All endpoints gone: the map element moves to no-endpoint-services, the chain goes after
  // the element that pointed at it; the shared hairpin element stays (still referenced).
  d = NftDiffScript({{&v2, &none}}, refs);
  auto del_elem = d.find("delete element ip cubelet service-ips { 10.96.0.10 . tcp . 80 }");
  auto del_chain = d.find("delete chain ip cubelet service-");
  REQUIRE(del_elem != std::string::npos);
  REQUIRE(del_chain != std::string::npos);
  CHECK(del_elem < del_chain);
  CHECK(Has(d,
            "add element ip cubelet no-endpoint-services { 10.96.0.10 . tcp . 80 : goto "
            "reject-chain }"));
  CHECK(Has(d, "delete element ip cubelet hairpin { 10.244.1.2 . 10.244.1.2 }"));
  CHECK_FALSE(Has(d, "10.244.1.1 . 10.244.1.1"));
  CHECK(refs.Count(NftHairpinKey("10.244.1.1 . 10.244.1.1")) == 1);

  // Back: the chain is created before the element that points at it.
  d = NftDiffScript({{&none, &v1}}, refs);
  CHECK(d.find("add chain") < d.find("add element ip cubelet service-ips"));
  // No change, no script.
  CHECK(NftDiffScript({{&v1, &v1}}, refs).empty());
}

TEST_CASE("nft engine: full sync first, then diffs; failure falls back to a full sync") {
  auto fb = std::make_unique<FakeNftBackend>();
  FakeNftBackend* fake = fb.get();
  ProxierOptions o;
  o.node_name = "node-a";
  o.cluster_cidr = "10.244.0.0/16";
  o.min_sync_period = 10ms;
  o.retry_period = 50ms;
  o.mode = ProxyMode::kNftables;
  auto p = Proxier::CreateWithEngine(o, MakeNftablesEngine(std::move(fb), Config(), {}));
  REQUIRE(p);
  auto& proxier = *p;
  // Cleanup at start removes the table of an earlier run.
  REQUIRE(fake->scripts().size() == 1);
  CHECK(base::EndsWith(fake->scripts()[0], "add table ip cubelet\ndelete table ip cubelet\n"));
  CHECK(Has(fake->scripts()[0], "delete table ip cubelet-svc-63\n"));

  Service s = ClusterIPService("ns", "web", "10.96.0.10", {Port("http", 80, 8080)});
  EndpointSlice sl = Slice("ns", "web", "web-1", {Ep("10.244.1.1")}, {EpPort("http", 8080)});
  proxier->OnServiceAdd(s);
  proxier->OnEndpointSliceAdd(sl);
  proxier->OnServicesSynced();
  proxier->OnEndpointSlicesSynced();
  REQUIRE(proxier->WaitForSync(5s));
  CHECK(base::StartsWith(fake->last(), "add table ip cubelet\ndelete table ip cubelet\n"));
  CHECK(Has(fake->last(), "\ntable ip cubelet {\n"));

  sl.endpoints.push_back(Ep("10.244.1.2"));
  proxier->OnEndpointSliceUpdate(sl, sl);
  REQUIRE(proxier->WaitForSync(5s));
  CHECK(base::StartsWith(fake->last(), "flush chain ip cubelet service-"));

  fake->FailNext(1);
  Service s2 = ClusterIPService("ns", "other", "10.96.0.11", {Port("http", 80, 8080)});
  proxier->OnServiceAdd(s2);
  REQUIRE(proxier->WaitForSync(5s));
  std::string last = fake->last();
  CHECK(base::StartsWith(last, "add table ip cubelet\ndelete table ip cubelet\n"));
  CHECK(Has(last, "10.96.0.11 . tcp . 80 : goto reject-chain"));
  CHECK(Has(last, "dnat ip to 10.244.1.2:8080"));
  CHECK(Has(proxier->MetricsText(),
            "kubeproxy_sync_proxy_rules_iptables_total{table=\"nft_chains\"} 1"));
}

TEST_CASE("nft: services spread over shard tables, each with its own nat hooks") {
  NftRendererConfig cfg = Config();
  cfg.shards = 3;
  NftServiceMap m;
  std::set<std::string> tables;
  for (int i = 0; i < 12; ++i) {
    Service s = ClusterIPService("ns", "svc" + std::to_string(i),
                                 "10.96.1." + std::to_string(i + 1), {Port("p", 80, 80)});
    auto sp = PortOf(s);
    auto o = RenderNftService(cfg, sp,
                              i % 4 ? Eps({{"10.244.3." + std::to_string(i + 1), false}}, 80)
                                    : std::vector<EndpointInfo>{});
    CHECK(o.table == NftServiceTable(cfg, sp.name.service));
    tables.insert(o.table);
    for (const auto& e : o.elements) {
      // Service routing lives with the service; refusals and hairpin in the main table.
      CHECK(e.table == (e.map == "service-ips" ? o.table : std::string(kNftTable)));
    }
    m.emplace(sp.name, std::move(o));
  }
  CHECK(tables == std::set<std::string>{"cubelet-svc-00", "cubelet-svc-01", "cubelet-svc-02"});
  std::string script = NftFullScript(cfg, m);
  CheckGolden("sharded.nft", script);
  // The main table has no nat prerouting of its own; each shard has one.
  auto main_block = script.substr(script.find("table ip cubelet {"));
  main_block = main_block.substr(0, main_block.find("\n}\n"));
  CHECK_FALSE(Has(main_block, "nat-prerouting"));
  CHECK(Has(script, "table ip cubelet-svc-02 {\n  map service-ips"));
  CHECK(Has(script, "delete table ip cubelet-svc-63\n"));

  // A diff addresses the service's table.
  NftRefCounts refs;
  auto sp = m.begin()->first;
  const auto& before = m.begin()->second;
  NftServiceObjects after = before;
  after.chains.clear();
  std::string d = NftDiffScript({{&before, &after}}, refs);
  if (!before.chains.empty()) CHECK(Has(d, "delete chain ip " + before.table + " service-"));
}
