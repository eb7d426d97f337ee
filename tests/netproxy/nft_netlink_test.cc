// The netlink backend writes netlink messages of its own (nft_netlink_batch.h) for the objects
// that nft_renderer.h renders as text. Here both go to the real kernel (privileged: the test
// process runs in a fresh network namespace, see tests/support/privileged_main.cc): the same
// full syncs and diffs through libnftables (the text, parsed by nft) and through the netlink
// backend must leave the same ruleset, as `nft list ruleset` prints it.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "base/strings.h"
#include "netproxy/nftables_engine.h"
#include "tests/netproxy/fixtures.h"
#include "tests/support/kernel_env.h"

using namespace netproxy;
using namespace netproxy::testing;
using testsupport::Run;

namespace {

// Services of every shape the renderer knows, with (before, after) endpoints for a diff.
struct Case {
  ServicePort port;
  std::vector<EndpointInfo> before, after;
};

std::vector<Case> Cases() {
  std::vector<Case> out;
  auto add = [&](const Service& s, std::vector<EndpointInfo> before,
                 std::vector<EndpointInfo> after) {
    for (const auto& [_, sp] : ServicePortsOf(s)) out.push_back({sp, before, after});
  };
  Service a = ClusterIPService("ns", "plain", "10.96.0.10", {Port("http", 80, 8080)});
  add(a, Eps({{"10.244.1.5", true}, {"10.244.9.6", false}, {"10.244.9.7", false}}),
      Eps({{"10.244.1.5", true}, {"10.244.9.8", false}}));
  Service np = ClusterIPService("ns", "nodeport", "10.96.0.11",
                                {Port("http", 80, 8080, Protocol::kTCP, 31553),
                                 Port("dns", 53, 5353, Protocol::kUDP, 31554)});
  np.type = ServiceType::kNodePort;
  np.external_ips = {"192.168.50.10"};
  add(np, Eps({{"10.244.9.6", false}}), {});
  Service lb =
      ClusterIPService("ns", "lb", "10.96.0.12", {Port("https", 443, 8443, Protocol::kTCP, 31600)});
  lb.type = ServiceType::kLoadBalancer;
  lb.load_balancer_ips = {"203.0.113.7"};
  lb.load_balancer_source_ranges = {"198.51.100.0/24", "192.168.50.0/24"};
  lb.external_traffic_policy = TrafficPolicy::kLocal;
  lb.health_check_node_port = 32000;
  add(lb, Eps({{"10.244.1.6", true}, {"10.244.9.9", false}}), Eps({{"10.244.9.9", false}}));
  Service aff = ClusterIPService("ns", "sticky", "10.96.0.13", {Port("http", 80, 8080)});
  aff.session_affinity = SessionAffinity::kClientIP;
  aff.session_affinity_timeout_seconds = 600;
  add(aff, Eps({{"10.244.1.7", true}, {"10.244.9.10", false}}),
      Eps({{"10.244.1.7", true}, {"10.244.9.11", false}}));
  Service local = ClusterIPService("ns", "local", "10.96.0.14", {Port("http", 80, 8080)});
  local.internal_traffic_policy = TrafficPolicy::kLocal;
  add(local, Eps({{"10.244.9.12", false}}), Eps({{"10.244.1.8", true}}));
  Service sctp =
      ClusterIPService("ns", "sctp", "10.96.0.15", {Port("s", 3868, 3868, Protocol::kSCTP)});
  add(sctp, {}, Eps({{"10.244.9.13", false}}, 3868));
  return out;
}

// `nft list ruleset` with each line trimmed and the elements of a set or map one per line,
// sorted (the kernel lists a hash set in its own order); everything else in order.
std::string Normalized(const std::string& list) {
  std::string out;
  std::vector<std::string> elems;
  bool in_elems = false;
  for (auto& raw : base::Split(list, '\n', true)) {
    std::string l(base::Trim(raw));
    if (base::StartsWith(l, "elements = {")) {
      in_elems = true;
      l = l.substr(strlen("elements = {"));
    }
    if (!in_elems) {
      out += l + "\n";
      continue;
    }
    bool last = base::EndsWith(l, "}");
    if (last) l.pop_back();
    for (auto& part : base::Split(l, ',', true)) {
      if (!base::Trim(part).empty()) elems.push_back(std::string(base::Trim(part)));
    }
    if (last) {
      std::sort(elems.begin(), elems.end());
      out += "elements = {\n";
      for (const auto& e : elems) out += "  " + e + "\n";
      out += "}\n";
      elems.clear();
      in_elems = false;
    }
  }
  return out;
}

std::string ListRuleset() {
  std::string out;
  REQUIRE(Run("nft list ruleset", &out) == 0);
  return out;
}

// A full sync of `svcs` (before or after), as the engine does it: one ReplaceTable per table.
void FullSync(NftBackend& b, const NftRendererConfig& cfg,
              const std::vector<NftServiceObjects>& objs) {
  std::vector<std::string> tables = NftShardTables(cfg);
  tables.push_back(kNftTable);
  NftRefCounts hairpin;
  for (const auto& o : objs) {
    for (const auto& e : o.elements) {
      if (e.map == kNftHairpinSet) hairpin.Add(NftHairpinKey(e.key));
    }
  }
  for (const auto& t : tables) {
    std::vector<const NftServiceObjects*> ptrs;
    std::vector<NftElement> elems;
    for (const auto& o : objs) {
      if (o.table == t) ptrs.push_back(&o);
      for (const auto& e : o.elements) {
        if (e.table == t && e.map != kNftHairpinSet) elems.push_back(e);
      }
    }
    REQUIRE(
        b.ReplaceTable(cfg, t, NftServicesOf(ptrs), elems, t == kNftTable ? &hairpin : nullptr));
  }
  REQUIRE(b.Flush());
}

std::string Apply(NftBackend& b, int shards) {
  NftRendererConfig cfg;
  cfg.cluster_cidr = "10.244.0.0/16";
  cfg.node_ip = "192.168.50.2";
  cfg.shards = shards;
  REQUIRE(b.DeleteTable());
  std::vector<NftServiceObjects> before, after;
  for (const auto& c : Cases()) {
    before.push_back(RenderNftService(cfg, c.port, c.before));
    after.push_back(RenderNftService(cfg, c.port, c.after));
  }
  FullSync(b, cfg, before);
  std::string out = ListRuleset();
  NftRefCounts refs;
  for (const auto& o : before) {
    for (const auto& e : o.elements) {
      if (e.map == kNftHairpinSet) refs.Add(NftHairpinKey(e.key));
    }
  }
  std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>> changes;
  for (size_t i = 0; i < before.size(); ++i) changes.push_back({&before[i], &after[i]});
  REQUIRE(b.ApplyDiff(ComputeNftDiff(changes, refs)));
  out += "--- after the diff ---\n" + ListRuleset();
  REQUIRE(b.DeleteTable());
  return out;
}

}  // namespace

TEST_CASE("nft netlink backend: the kernel holds what the text says") {
  for (int shards : {1, 3}) {
    INFO("shards " << shards);
    auto text = MakeLibNftablesBackend();
    auto netlink = MakeNetlinkNftBackend();
    std::string want = Apply(*text, shards);
    std::string got = Apply(*netlink, shards);
    REQUIRE_FALSE(want.empty());
    CHECK(want.find("dnat to 10.244.9.8:8080") != std::string::npos);
    CHECK(Normalized(got) == Normalized(want));
    if (Normalized(got) != Normalized(want)) {
      // Full texts on failure, for a readable diff.
      CHECK(got == want);
    }
  }
}

TEST_CASE("nft netlink backend: a rejected table comes back from Flush, naming the message") {
  NftRendererConfig cfg;
  cfg.shards = 2;
  auto netlink = MakeNetlinkNftBackend();
  REQUIRE(netlink->DeleteTable());
  NftServiceObjects bad;
  bad.table = "cubelet-svc-00";
  NftRule jump;
  jump.kind = NftRule::Kind::kGoto;
  jump.target = "no-such-chain";
  bad.chains.push_back({"service-broken", {NftRule{}, jump}});
  bad.chains[0].rules[0].kind = NftRule::Kind::kDrop;
  std::vector<const NftServiceObjects*> ptrs = {&bad};
  // Sent in the background: the call itself succeeds, the kernel's refusal comes with Flush().
  REQUIRE(netlink->ReplaceTable(cfg, "cubelet-svc-00", NftServicesOf(ptrs), {}));
  auto r = netlink->Flush();
  REQUIRE_FALSE(r);
  INFO(r.error().message);
  CHECK(r.error().message.find("add rule ip cubelet-svc-00 service-broken (rule 2 of this chain") !=
        std::string::npos);
  // Nothing of the transaction is left, and the backend works on.
  std::string out;
  REQUIRE(Run("nft list tables", &out) == 0);
  CHECK(out.find("cubelet-svc-00") == std::string::npos);
  REQUIRE(netlink->DeleteTable());
}
