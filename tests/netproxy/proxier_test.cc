// Proxier against FakeRulesBackend: sync gating, coalescing, partial syncs, stale chain removal,
// failure recovery, healthz and metrics. The kernel path is in proxier_integration_test.cc.
#include "netproxy/proxier.h"

#include <catch2/catch.hpp>
#include <thread>

#include "base/strings.h"
#include "netproxy/chain_names.h"
#include "tests/netproxy/fixtures.h"
#include "tests/support/kernel_env.h"

using namespace netproxy;
using namespace netproxy::testing;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  explicit Fixture(std::chrono::milliseconds min_sync = 50ms,
                   std::chrono::milliseconds sync_period = 30s, std::string healthz = "",
                   std::string metrics = "") {
    auto fb = std::make_unique<FakeRulesBackend>();
    fake = fb.get();
    ProxierOptions o;
    o.node_name = "node-a";
    o.node_ips = {"192.168.50.2"};
    o.cluster_cidr = "10.244.0.0/16";
    o.min_sync_period = min_sync;
    o.sync_period = sync_period;
    o.retry_period = 100ms;
    o.localhost_nodeports = false;  // no sysctl writes from a unit test
    o.healthz_bind_address = healthz;
    o.metrics_bind_address = metrics;
    o.health_check_node_ports = false;  // they bind 0.0.0.0: integration test only
    auto p = Proxier::Create(o, std::move(fb));
    REQUIRE(p);
    proxier = std::move(*p);
  }
  FakeRulesBackend* fake;
  std::unique_ptr<Proxier> proxier;
};

Service Svc(const std::string& name, const std::string& ip) {
  return ClusterIPService("default", name, ip, {Port("http", 80, 8080)});
}

EndpointSlice SliceFor(const std::string& name, std::vector<std::string> ips) {
  std::vector<Endpoint> eps;
  for (auto& ip : ips) eps.push_back(Ep(ip));
  return Slice("default", name, name + "-1", eps, {EpPort("http", 8080)});
}

int Count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("nothing is written until services and slices have synced") {
  Fixture f;
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(SliceFor("a", {"10.244.1.1"}));
  f.proxier->OnServicesSynced();
  std::this_thread::sleep_for(200ms);
  CHECK(f.fake->restore_count() == 0);
  CHECK_FALSE(f.proxier->WaitForSync(50ms));
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  REQUIRE(f.fake->restore_count() == 1);
  std::string buf = f.fake->last_buffer();
  // Full first sync: the jumps from the built-in chains are inserted, the hint chain created.
  CHECK(buf.find("-I PREROUTING 1 -m comment --comment \"kubernetes service portals\" -j "
                 "KUBE-SERVICES") != std::string::npos);
  CHECK(buf.find("-I POSTROUTING 1 -m comment --comment \"kubernetes postrouting rules\" -j "
                 "KUBE-POSTROUTING") != std::string::npos);
  CHECK(buf.find("*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT") != std::string::npos);
  CHECK(buf.find("--to-destination 10.244.1.1:8080") != std::string::npos);
  CHECK(f.proxier->Health().healthy);
  CHECK(f.proxier->Health().last_updated != WallTime{});
}

TEST_CASE("events before the lists are synced are folded in early, reported by the first sync") {
  Fixture f;
  EndpointSlice s = SliceFor("a", {"10.244.1.1"});
  s.last_change_trigger_time = std::chrono::system_clock::now();
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(s);
  std::this_thread::sleep_for(200ms);  // the sync thread builds the state meanwhile
  CHECK(f.fake->restore_count() == 0);
  f.proxier->OnServiceAdd(Svc("b", "10.96.0.2"));
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  REQUIRE(f.fake->restore_count() == 1);
  std::string buf = f.fake->last_buffer();
  CHECK(buf.find("--to-destination 10.244.1.1:8080") != std::string::npos);
  CHECK(buf.find("10.96.0.2") != std::string::npos);
  std::string m = f.proxier->MetricsText();
  CHECK(m.find("kubeproxy_network_programming_duration_seconds_count 1") != std::string::npos);
  CHECK(m.find("kubeproxy_sync_proxy_rules_duration_seconds_count 1") != std::string::npos);
}

TEST_CASE("changes are coalesced and only changed services are rewritten") {
  Fixture f(300ms);
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(SliceFor("a", {"10.244.1.1"}));
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  REQUIRE(f.fake->restore_count() == 1);

  // A burst of 20 services within one min-sync period: at most two commits.
  for (int i = 0; i < 20; ++i) {
    std::string name = "burst" + std::to_string(i);
    f.proxier->OnServiceAdd(Svc(name, "10.96.1." + std::to_string(i + 1)));
    f.proxier->OnEndpointSliceAdd(SliceFor(name, {"10.244.2." + std::to_string(i + 1)}));
  }
  REQUIRE(f.proxier->WaitForSync(5s));
  CHECK(f.fake->restore_count() <= 3);
  std::string all = base::Join(f.fake->buffers(), "");
  CHECK(all.find("10.244.2.20:8080") != std::string::npos);

  // One endpoint change: the commit declares only that service's chains; the jumps are not
  // inserted again.
  size_t before = f.fake->restore_count();
  f.proxier->OnEndpointSliceUpdate(SliceFor("burst3", {"10.244.2.4"}),
                                   SliceFor("burst3", {"10.244.2.4", "10.244.3.4"}));
  REQUIRE(f.proxier->WaitForSync(5s));
  REQUIRE(f.fake->restore_count() == before + 1);
  std::string buf = f.fake->last_buffer();
  CHECK(Count(buf, ":KUBE-SVC-") == 1);
  CHECK(buf.find(":" + ServiceChainName("default/burst3:http", "tcp")) != std::string::npos);
  CHECK(Count(buf, ":KUBE-SEP-") == 2);
  CHECK(buf.find("-I ") == std::string::npos);
  // KUBE-SERVICES is rewritten whole: all 21 services.
  CHECK(Count(buf, "-A KUBE-SERVICES -m comment --comment \"default/") == 21);
  // An event that changes nothing causes no commit.
  f.proxier->OnEndpointSliceUpdate(SliceFor("burst3", {"10.244.2.4", "10.244.3.4"}),
                                   SliceFor("burst3", {"10.244.2.4", "10.244.3.4"}));
  std::this_thread::sleep_for(400ms);
  CHECK(f.fake->restore_count() == before + 1);
}

TEST_CASE("a deleted service's chains are deleted in the same commit") {
  Fixture f;
  Service a = Svc("a", "10.96.0.1");
  EndpointSlice sa = SliceFor("a", {"10.244.1.1"});
  f.proxier->OnServiceAdd(a);
  f.proxier->OnEndpointSliceAdd(sa);
  f.proxier->OnServiceAdd(Svc("b", "10.96.0.2"));
  f.proxier->OnEndpointSliceAdd(SliceFor("b", {"10.244.1.2"}));
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  f.proxier->OnServiceDelete(a);
  f.proxier->OnEndpointSliceDelete(sa);
  REQUIRE(f.proxier->WaitForSync(5s));
  std::string buf = f.fake->last_buffer();
  const std::string svc_chain = ServiceChainName("default/a:http", "tcp");
  const std::string sep_chain = EndpointChainName("default/a:http", "tcp", "10.244.1.1:8080");
  CHECK(buf.find("-X " + svc_chain) != std::string::npos);
  CHECK(buf.find("-X " + sep_chain) != std::string::npos);
  CHECK(buf.find("10.96.0.1") == std::string::npos);
  auto snap = f.fake->Snapshot();
  CHECK_FALSE(snap->HasChain("nat", svc_chain));
  CHECK(snap->HasChain("nat", ServiceChainName("default/b:http", "tcp")));
}

TEST_CASE("stale chains left by a previous run are removed at start") {
  auto fb = std::make_unique<FakeRulesBackend>();
  FakeRulesBackend* fake = fb.get();
  IptablesSnapshot old = IptablesSnapshot::Parse(
      "*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-OLD0000000000000 - "
      "[0:0]\n:DOCKER - [0:0]\n-A PREROUTING -m comment --comment \"kubernetes service portals\" "
      "-j KUBE-SERVICES\n-A PREROUTING -j DOCKER\nCOMMIT\n");
  fake->SetSnapshot(old);
  ProxierOptions o;
  o.node_name = "n";
  o.localhost_nodeports = false;
  auto p = Proxier::Create(o, std::move(fb));
  REQUIRE(p);
  REQUIRE(fake->restore_count() == 1);
  std::string cleanup = fake->buffers()[0];
  CHECK(cleanup ==
        "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-OLD0000000000000 - [0:0]\n-D "
        "PREROUTING -m comment --comment \"kubernetes service portals\" -j "
        "KUBE-SERVICES\n-X KUBE-SERVICES\n-X KUBE-SVC-OLD0000000000000\nCOMMIT\n");
  auto snap = fake->Snapshot();
  CHECK(snap->HasChain("nat", "DOCKER"));
  CHECK_FALSE(snap->HasChain("nat", "KUBE-SERVICES"));
}

TEST_CASE("a failed commit is retried as a full sync and reported") {
  Fixture f(10ms, 100ms);
  f.fake->FailNext(3);
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(SliceFor("a", {"10.244.1.1"}));
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  // Three failures 100 ms apart, then success.
  std::this_thread::sleep_for(150ms);
  auto h = f.proxier->Health();
  CHECK_FALSE(h.last_error.empty());
  REQUIRE(f.proxier->WaitForSync(5s));
  CHECK(f.fake->restore_count() == 4);
  CHECK(f.proxier->Health().last_error.empty());
  CHECK(f.proxier->metrics().restore_failures() == 3);
  // The successful retry is a full one: it still carries the service.
  CHECK(f.fake->last_buffer().find("10.244.1.1:8080") != std::string::npos);

  // A failure after an endpoint change: the retry must still include the change.
  f.fake->FailNext(1);
  f.proxier->OnEndpointSliceUpdate(SliceFor("a", {"10.244.1.1"}), SliceFor("a", {"10.244.1.9"}));
  REQUIRE(f.proxier->WaitForSync(5s));
  CHECK(f.fake->last_buffer().find("10.244.1.9:8080") != std::string::npos);
  CHECK(f.fake->last_buffer().find("10.244.1.1:8080") == std::string::npos);
}

TEST_CASE("healthz turns unhealthy when changes wait longer than 2 x sync period") {
  Fixture f(10ms, 100ms);
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  CHECK(f.proxier->Health().healthy);
  f.fake->FailNext(1000);
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  std::this_thread::sleep_for(350ms);
  auto h = f.proxier->Health();
  CHECK_FALSE(h.healthy);
  CHECK(h.oldest_pending != WallTime{});
  f.fake->FailNext(0);
  REQUIRE(f.proxier->WaitForSync(5s));
  CHECK(f.proxier->Health().healthy);
}

TEST_CASE("metrics are exposed in Prometheus text format") {
  Fixture f;
  EndpointSlice s = SliceFor("a", {"10.244.1.1"});
  s.last_change_trigger_time = std::chrono::system_clock::now();
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(s);
  REQUIRE(f.proxier->WaitForSync(5s));
  std::string m = f.proxier->MetricsText();
  CHECK(m.find("# TYPE kubeproxy_sync_proxy_rules_duration_seconds histogram") !=
        std::string::npos);
  CHECK(m.find("kubeproxy_sync_proxy_rules_duration_seconds_count 2") != std::string::npos);
  CHECK(m.find("kubeproxy_network_programming_duration_seconds_count 1") != std::string::npos);
  // nat: 4 top-level rules + 1 KUBE-SERVICES + nodeports jump + masq + 1 lb + 2 SEP = 10
  CHECK(m.find("kubeproxy_sync_proxy_rules_iptables_total{table=\"nat\"} 10") != std::string::npos);
  CHECK(m.find("kubeproxy_sync_proxy_rules_last_timestamp_seconds 1") != std::string::npos);
}

TEST_CASE("options are validated") {
  ProxierOptions o;
  o.cluster_cidr = "10.244.0.0";
  CHECK_FALSE(Proxier::Create(o, std::make_unique<FakeRulesBackend>()));
  o.cluster_cidr = "";
  o.nodeport_addresses = {"nonsense"};
  CHECK_FALSE(Proxier::Create(o, std::make_unique<FakeRulesBackend>()));
  o.nodeport_addresses.clear();
  o.mode = ProxyMode::kNftables;
  auto r = Proxier::Create(o, std::make_unique<FakeRulesBackend>());
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("nftables") != std::string::npos);
}

TEST_CASE("/healthz answers 200 while rules are fresh and 503 when a change is stuck") {
  // Loopback, any free port: nothing outside this process is touched.
  Fixture f(10ms, 100ms, "127.0.0.1:0");
  REQUIRE(f.proxier->healthz_port() > 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(f.proxier->healthz_port());
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  std::string out;
  REQUIRE(testsupport::Run("curl -s -w ' %{http_code}' " + url + "/healthz", &out) == 0);
  CHECK(out.find("\"lastUpdated\": \"20") != std::string::npos);
  CHECK(base::EndsWith(out, " 200"));
  REQUIRE(testsupport::Run("curl -s -o /dev/null -w '%{http_code}' " + url + "/nope", &out) == 0);
  CHECK(out == "404");
  f.fake->FailNext(1000);
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  std::this_thread::sleep_for(350ms);
  REQUIRE(testsupport::Run("curl -s -o /dev/null -w '%{http_code}' " + url + "/healthz", &out) ==
          0);
  CHECK(out == "503");
  f.fake->FailNext(0);
  REQUIRE(f.proxier->WaitForSync(5s));
  REQUIRE(testsupport::Run("curl -s -o /dev/null -w '%{http_code}' " + url + "/healthz", &out) ==
          0);
  CHECK(out == "200");
}

TEST_CASE("/metrics on the metrics address (kube-proxy's --metrics-bind-address)") {
  Fixture f(10ms, 30s, "", "127.0.0.1:0");
  CHECK(f.proxier->healthz_port() == 0);
  REQUIRE(f.proxier->metrics_port() > 0);
  const std::string url = "http://127.0.0.1:" + std::to_string(f.proxier->metrics_port());
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(SliceFor("a", {"10.244.1.1"}));
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  std::string out;
  REQUIRE(testsupport::Run("curl -s -D - " + url + "/metrics", &out) == 0);
  CHECK(out.find("HTTP/1.1 200 OK") == 0);
  CHECK(out.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(out.find("\nkubeproxy_sync_proxy_rules_last_timestamp_seconds ") != std::string::npos);
  REQUIRE(testsupport::Run("curl -s -o /dev/null -w '%{http_code}' " + url + "/healthz", &out) == 0);
  CHECK(out == "404");  // /healthz is on its own address
}

TEST_CASE("rules flushed by someone else are rewritten within a sync period") {
  Fixture f(10ms, 150ms);
  f.proxier->OnServiceAdd(Svc("a", "10.96.0.1"));
  f.proxier->OnEndpointSliceAdd(SliceFor("a", {"10.244.1.1"}));
  f.proxier->OnServicesSynced();
  f.proxier->OnEndpointSlicesSynced();
  REQUIRE(f.proxier->WaitForSync(5s));
  REQUIRE(f.fake->restore_count() == 1);
  CHECK(f.fake->last_buffer().find(":KUBE-PROXY-CANARY - [0:0]") != std::string::npos);
  std::this_thread::sleep_for(400ms);
  CHECK(f.fake->restore_count() == 1);  // canary intact: nothing rewritten
  f.fake->SetSnapshot({});              // "iptables -t nat -F; -X" by a firewall reload
  for (int i = 0; i < 50 && f.fake->restore_count() == 1; ++i) std::this_thread::sleep_for(20ms);
  REQUIRE(f.fake->restore_count() == 2);
  std::string buf = f.fake->last_buffer();
  CHECK(buf.find("-I PREROUTING 1") != std::string::npos);  // a full sync: jumps again
  CHECK(buf.find("10.244.1.1:8080") != std::string::npos);
}
