// Privileged: two "nodes" (the test's namespace and a second one), each with its own
// BridgeNetwork, joined by a veth "wire"; RouteSync routes each node's pod CIDR via the other's
// InternalIP, so pods talk across nodes without masquerade, and stop when the routes go.
#include "runtime/network/route_sync.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <thread>

#include "base/strings.h"
#include "runtime/network/address.h"
#include "runtime/network/bridge_network.h"
#include "runtime/network/link.h"
#include "runtime/network/netns.h"
#include "tests/runtime/network/test_root.h"
#include "tests/support/kernel_env.h"

using namespace runtime::net;
using testsupport::Run;

namespace {

std::string Root() { return podnet_test::Root("routes"); }

// Runs f in a thread switched into ns: objects that capture "their" namespace at construction
// (BridgeNetwork, RouteSync) then belong to that node.
template <class F>
void InNamespace(const NetNamespace& ns, F f) {
  std::thread([&] {
    auto g = ns.Enter();
    REQUIRE(g);
    f();
  }).join();
}

bool Ping(const std::string& netns, const std::string& ip, int attempts = 3) {
  for (int i = 0; i < attempts; ++i) {
    if (Run("nsenter --net=" + netns + " busybox ping -c1 -W1 " + ip) == 0) return true;
  }
  return false;
}

uint64_t RulePackets(const std::string& prefix, const std::string& target) {
  std::string out;
  Run(prefix + "iptables -t nat -L CUBELET-POSTROUTING -v -n -x", &out);
  uint64_t sum = 0;
  for (const auto& line : base::Split(out, '\n')) {
    auto cols = base::Split(line, ' ', true);
    if (cols.size() > 2 && cols[2] == target) sum += std::stoull(cols[0]);
  }
  return sum;
}

}  // namespace

TEST_CASE("RouteSync connects the pod CIDRs of two nodes", "[routes]") {
  struct Cleanup {
    ~Cleanup() {
      Run("ip link del n1-wire; ip link del cbr-n1");
      podnet_test::RemoveTree(Root());
    }
  } cleanup;
  const std::string node2_path = Root() + "/netns/node2";
  auto node2 = NetNamespace::Create(node2_path);
  REQUIRE(node2);

  // The wire: node1 192.168.50.1 <-> node2 192.168.50.2.
  {
    auto s1 = NetlinkSocket::Open();
    auto s2 = NetlinkSocket::OpenIn(*node2);
    REQUIRE((s1 && s2));
    auto wire = VethPair::Create(*s1, {"n1-wire", "n2-wire", &*node2, 1500, ""});
    REQUIRE(wire);
    wire->Keep();
    REQUIRE(Address::Ensure(*s1, wire->host(), {*Ipv4::Parse("192.168.50.1"), 24}, true));
    REQUIRE(wire->host().SetUp());
    auto far = Link::Get(*s2, "n2-wire");
    REQUIRE(far);
    REQUIRE(Address::Ensure(*s2, *far, {*Ipv4::Parse("192.168.50.2"), 24}, true));
    REQUIRE(far->SetUp());
  }

  BridgeNetworkOptions o1;
  o1.bridge_name = "cbr-n1";
  o1.state_dir = Root() + "/state1";
  o1.cluster_cidr = "10.244.0.0/16";
  BridgeNetworkOptions o2 = o1;
  o2.bridge_name = "cbr-n2";
  o2.state_dir = Root() + "/state2";
  BridgeNetwork net1(o1);
  RouteSync routes1;
  std::unique_ptr<BridgeNetwork> net2;
  std::unique_ptr<RouteSync> routes2;
  InNamespace(*node2, [&] {
    net2 = std::make_unique<BridgeNetwork>(o2);
    routes2 = std::make_unique<RouteSync>();
  });
  REQUIRE(net1.EnsureNodeNetwork("10.244.1.0/24"));
  REQUIRE(net2->EnsureNodeNetwork("10.244.2.0/24"));  // from this thread: acts in node2
  std::string out;
  REQUIRE(Run("nsenter --net=" + node2_path + " ip -o -4 addr show dev cbr-n2", &out) == 0);
  CHECK(out.find("10.244.2.1/24") != std::string::npos);
  CHECK(Run("ip link show cbr-n2") != 0);  // not in node1

  const std::string pa = Root() + "/netns/pod-a", pb = Root() + "/netns/pod-b";
  REQUIRE(NetNamespace::Create(pa));
  REQUIRE(NetNamespace::Create(pb));
  auto a = net1.Setup({std::string(64, 'a'), pa, "", "", "", {}});
  auto b = net2->Setup({std::string(64, 'b'), pb, "", "", "", {}});
  REQUIRE((a && b));
  CHECK(a->ip == "10.244.1.2");
  CHECK(b->ip == "10.244.2.2");

  CHECK_FALSE(Ping(pa, b->ip, 1));  // no route yet

  std::vector<PeerNode> to2 = {{"node2", "192.168.50.2", "10.244.2.0/24"},
                               {"node1", "192.168.50.1", "10.244.1.0/24"}};  // own: skipped
  std::vector<PeerNode> to1 = {{"node1", "192.168.50.1", "10.244.1.0/24"}};
  auto s1 = routes1.Sync(to2, Ipv4Cidr::Parse("10.244.1.0/24").value());
  REQUIRE(s1);
  CHECK(s1->replaced == 1);
  CHECK(s1->skipped == 1);
  auto s2 = routes2->Sync(to1);
  REQUIRE(s2);
  CHECK(s2->replaced == 1);
  REQUIRE(Run("ip route show proto 196", &out) == 0);
  CHECK(out.find("10.244.2.0/24 via 192.168.50.2 dev n1-wire") != std::string::npos);

  const uint64_t masq_before = RulePackets("", "MASQUERADE");
  CHECK(Ping(pa, b->ip));
  CHECK(Ping(pb, a->ip));
  // Pod-to-pod across nodes keeps the pod source: it hit RETURN, never MASQUERADE.
  CHECK(RulePackets("", "RETURN") > 0);
  CHECK(RulePackets("", "MASQUERADE") == masq_before);

  // Converged: a second sync changes nothing.
  auto again = routes1.Sync(to2, Ipv4Cidr::Parse("10.244.1.0/24").value());
  REQUIRE(again);
  CHECK(again->replaced == 0);
  CHECK(again->removed == 0);

  // Node2 leaves: its route goes, other routes stay.
  REQUIRE(Run("ip route add 10.99.0.0/24 via 192.168.50.2") == 0);  // not ours
  auto gone = routes1.Sync({});
  REQUIRE(gone);
  CHECK(gone->removed == 1);
  REQUIRE(Run("ip route show", &out) == 0);
  CHECK(out.find("10.244.2.0/24") == std::string::npos);
  CHECK(out.find("10.99.0.0/24 via 192.168.50.2") != std::string::npos);
  CHECK_FALSE(Ping(pa, b->ip, 1));

  // A gateway that is not directly reachable is an error naming the node.
  auto bad = routes1.Sync({{"far-node", "172.31.0.9", "10.244.3.0/24"}});
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.find("far-node") != std::string::npos);

  REQUIRE(net1.Teardown({std::string(64, 'a'), pa, "", "", "", {}}));
  REQUIRE(net2->Teardown({std::string(64, 'b'), pb, "", "", "", {}}));
}
