// Pure tests (no root): CIDR arithmetic, host-local IPAM on a temp dir, node rules rendering.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "runtime/network/cidr.h"
#include "runtime/network/host_local_ipam.h"
#include "runtime/network/host_ports.h"
#include "runtime/network/node_rules.h"
#include "runtime/network/route_sync.h"

using namespace runtime::net;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/podnet-ipam-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { (void)base::RemoveAll(path); }
};

Ipv4Cidr Cidr(const char* s) {
  auto c = Ipv4Cidr::Parse(s);
  REQUIRE(c);
  return *c;
}

std::string Id(int n) {
  char buf[65];
  snprintf(buf, sizeof buf, "%064x", n);
  return buf;
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out = base::ListDir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("Ipv4Cidr parses, normalizes and rejects", "[cidr]") {
  auto c = Cidr("10.244.1.0/24");
  CHECK(c.ToString() == "10.244.1.0/24");
  CHECK(c.Gateway().ToString() == "10.244.1.1");
  CHECK(c.FirstPodIp().ToString() == "10.244.1.2");
  CHECK(c.LastPodIp().ToString() == "10.244.1.254");
  CHECK(c.Broadcast().ToString() == "10.244.1.255");
  CHECK(c.PodIpCount() == 253);
  CHECK(c.FileName() == "10.244.1.0_24");
  CHECK(c.Contains(*Ipv4::Parse("10.244.1.77")));
  CHECK_FALSE(c.Contains(*Ipv4::Parse("10.244.2.1")));
  CHECK(Cidr("10.244.0.0/16").PodIpCount() == 65533);
  CHECK(Cidr("10.0.0.0/30").PodIpCount() == 1);
  CHECK(Cidr("10.0.0.0/31").PodIpCount() == 0);

  auto host_bits = Ipv4Cidr::Parse("10.244.1.1/24");
  REQUIRE_FALSE(host_bits);
  CHECK(host_bits.error().message.find("host bits set") != std::string::npos);
  auto loose = Ipv4Cidr::Parse("10.244.1.1/24", true);
  REQUIRE(loose);
  CHECK(loose->ToString() == "10.244.1.0/24");
  CHECK_FALSE(Ipv4Cidr::Parse("10.244.1.0"));
  CHECK_FALSE(Ipv4Cidr::Parse("10.244.1.0/33"));
  CHECK_FALSE(Ipv4Cidr::Parse("10.244.1.0/2x"));
  CHECK_FALSE(Ipv4Cidr::Parse("300.1.1.0/24"));
  CHECK(Ipv4::Parse("10.244.7.2")->Mac() == "0a:58:0a:f4:07:02");
}

TEST_CASE("IPAM allocates in order, skipping network, gateway and broadcast", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  auto range = Cidr("10.244.7.0/29");  // .0 net, .1 gw, .2-.6 pods, .7 broadcast
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) {
    auto a = ipam.Allocate(range, Id(i));
    REQUIRE(a);
    CHECK_FALSE(a->existing);
    got.push_back(a->ip.ToString());
  }
  CHECK(got == std::vector<std::string>{"10.244.7.2", "10.244.7.3", "10.244.7.4", "10.244.7.5",
                                        "10.244.7.6"});
  // One file per IP with the sandbox id, plus last_reserved; no temp files left.
  auto names = Names(tmp.path + "/10.244.7.0_29");
  CHECK(names == std::vector<std::string>{"10.244.7.2", "10.244.7.3", "10.244.7.4", "10.244.7.5",
                                          "10.244.7.6", "last_reserved"});
  CHECK(*base::ReadFile(tmp.path + "/10.244.7.0_29/10.244.7.4") == Id(2) + "\n");
  CHECK(*base::ReadFile(tmp.path + "/10.244.7.0_29/last_reserved") == "10.244.7.6\n");
}

TEST_CASE("IPAM exhaustion names the CIDR, the sandbox and the count", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  auto range = Cidr("10.244.1.0/24");
  for (int i = 0; i < 253; ++i) REQUIRE(ipam.Allocate(range, Id(i)));
  auto full = ipam.Allocate(range, "deadbeef");
  REQUIRE_FALSE(full);
  CHECK(full.error().message ==
        "no free IP in pod CIDR 10.244.1.0/24 for sandbox deadbeef: all 253 addresses in use");
  // An existing holder still gets its address when the range is full.
  auto again = ipam.Allocate(range, Id(100));
  REQUIRE(again);
  CHECK(again->existing);
  CHECK(again->ip.ToString() == "10.244.1.102");
}

TEST_CASE("IPAM re-allocation for the same sandbox returns the same IP", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  auto range = Cidr("10.244.7.0/24");
  auto a = ipam.Allocate(range, Id(1));
  auto b = ipam.Allocate(range, Id(2));
  auto a2 = ipam.Allocate(range, Id(1));
  REQUIRE((a && b && a2));
  CHECK(a2->existing);
  CHECK(a2->ip == a->ip);
  CHECK(b->ip != a->ip);
  auto look = ipam.Lookup(range, Id(2));
  REQUIRE(look);
  REQUIRE(look->has_value());
  CHECK(**look == b->ip);
  CHECK_FALSE(ipam.Lookup(range, Id(3))->has_value());
}

TEST_CASE("IPAM state persists across instances; last_reserved avoids quick reuse", "[ipam]") {
  TempDir tmp;
  auto range = Cidr("10.244.7.0/24");
  Ipv4 first{};
  {
    HostLocalIpam ipam(tmp.path);
    auto a = ipam.Allocate(range, Id(1));
    auto b = ipam.Allocate(range, Id(2));
    REQUIRE((a && b));
    first = a->ip;
    CHECK(b->ip.ToString() == "10.244.7.3");
  }
  HostLocalIpam again(tmp.path);
  auto a = again.Allocate(range, Id(1));
  REQUIRE(a);
  CHECK(a->existing);
  CHECK(a->ip == first);
  // Release .2; the next sandbox gets .4 (after last_reserved .3), not the just-freed .2.
  auto freed = again.Release(Id(1));
  REQUIRE(freed);
  REQUIRE(freed->size() == 1);
  CHECK((*freed)[0].ip.ToString() == "10.244.7.2");
  CHECK_FALSE(base::PathExists(tmp.path + "/10.244.7.0_24/10.244.7.2"));
  auto c = again.Allocate(range, Id(3));
  REQUIRE(c);
  CHECK(c->ip.ToString() == "10.244.7.4");
  // Releasing twice (or an unknown sandbox) is fine and frees nothing.
  auto none = again.Release(Id(1));
  REQUIRE(none);
  CHECK(none->empty());
}

TEST_CASE("IPAM wraps around to freed addresses", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  auto range = Cidr("10.244.7.0/29");
  for (int i = 0; i < 5; ++i) REQUIRE(ipam.Allocate(range, Id(i)));
  REQUIRE(ipam.Release(Id(1)));  // frees .3
  auto a = ipam.Allocate(range, Id(9));
  REQUIRE(a);
  CHECK(a->ip.ToString() == "10.244.7.3");
}

TEST_CASE("IPAM release works across ranges without knowing the CIDR", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  REQUIRE(ipam.Allocate(Cidr("10.244.7.0/24"), Id(1)));
  REQUIRE(ipam.Allocate(Cidr("10.244.8.0/24"), Id(2)));
  auto freed = ipam.Release(Id(2));
  REQUIRE(freed);
  REQUIRE(freed->size() == 1);
  CHECK((*freed)[0].range.ToString() == "10.244.8.0/24");
  auto all = ipam.List();
  REQUIRE(all);
  REQUIRE(all->size() == 1);
  CHECK((*all)[0].sandbox_id == Id(1));
  // A store that was never written to releases nothing without error.
  HostLocalIpam empty(tmp.path + "/never");
  CHECK(empty.Release(Id(1))->empty());
}

TEST_CASE("IPAM garbage collection frees only dead sandboxes", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  auto range = Cidr("10.244.7.0/24");
  for (int i = 0; i < 4; ++i) REQUIRE(ipam.Allocate(range, Id(i)));
  auto freed = ipam.GarbageCollect({Id(0), Id(2)});
  REQUIRE(freed);
  std::set<std::string> gone;
  for (const auto& a : *freed) gone.insert(a.sandbox_id);
  CHECK(gone == std::set<std::string>{Id(1), Id(3)});
  auto all = ipam.List();
  REQUIRE(all);
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].sandbox_id == Id(0));
  CHECK((*all)[1].sandbox_id == Id(2));
}

TEST_CASE("IPAM gives distinct addresses to concurrent callers", "[ipam]") {
  TempDir tmp;
  auto range = Cidr("10.244.7.0/24");
  HostLocalIpam shared(tmp.path);
  HostLocalIpam other(tmp.path);  // a second instance: as a second process would, via flock
  std::vector<std::thread> ts;
  std::vector<std::string> ips(40);
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto a = (t % 2 ? other : shared).Allocate(range, Id(t * 10 + i));
        ips[t * 10 + i] = a ? a->ip.ToString() : "error";
      }
    });
  }
  for (auto& t : ts) t.join();
  std::set<std::string> uniq(ips.begin(), ips.end());
  CHECK(uniq.size() == 40);
  CHECK_FALSE(uniq.count("error"));
}

TEST_CASE("IPAM rejects bad input", "[ipam]") {
  TempDir tmp;
  HostLocalIpam ipam(tmp.path);
  CHECK_FALSE(ipam.Allocate(Cidr("10.244.7.0/24"), ""));
  CHECK_FALSE(ipam.Allocate(Cidr("10.244.7.0/24"), "../x"));
  auto tiny = ipam.Allocate(Cidr("10.244.7.0/31"), Id(1));
  REQUIRE_FALSE(tiny);
  CHECK(tiny.error().message.find("10.244.7.0/31") != std::string::npos);
}

TEST_CASE("node rules render the exact iptables-restore input", "[rules]") {
  NodeRulesConfig c{Cidr("10.244.7.0/24"), Cidr("10.244.0.0/16"), true, true};
  CHECK(RenderNodeRules(c, true, true) ==
        "*nat\n"
        ":CUBELET-POSTROUTING - [0:0]\n"
        "-A CUBELET-POSTROUTING -s 10.244.7.0/24 -d 10.244.0.0/16 -m comment --comment "
        "\"cubelet: inside the cluster network, keep source\" -j RETURN\n"
        "-A CUBELET-POSTROUTING -s 10.244.7.0/24 -d 224.0.0.0/4 -m comment --comment "
        "\"cubelet: multicast, keep source\" -j RETURN\n"
        "-A CUBELET-POSTROUTING -s 10.244.7.0/24 -m comment --comment "
        "\"cubelet: pod leaving the cluster network\" -j MASQUERADE\n"
        "-I POSTROUTING -m comment --comment \"cubelet: pod masquerade\" -j CUBELET-POSTROUTING\n"
        "COMMIT\n"
        "*filter\n"
        ":CUBELET-FORWARD - [0:0]\n"
        "-A CUBELET-FORWARD -s 10.244.7.0/24 -m comment --comment \"cubelet: from pods\" -j "
        "ACCEPT\n"
        "-A CUBELET-FORWARD -d 10.244.7.0/24 -m comment --comment \"cubelet: to pods\" -j ACCEPT\n"
        "-I FORWARD -m comment --comment \"cubelet: pod forwarding\" -j CUBELET-FORWARD\n"
        "COMMIT\n");
  // Jumps already present: chains only. No cluster CIDR: the pod CIDR is "inside".
  NodeRulesConfig d{Cidr("10.244.7.0/24"), std::nullopt, true, false};
  std::string r = RenderNodeRules(d, false, false);
  CHECK(r.find("-d 10.244.7.0/24 -m comment --comment \"cubelet: inside") != std::string::npos);
  CHECK(r.find("-I POSTROUTING") == std::string::npos);
  CHECK(r.find("*filter") == std::string::npos);
}

TEST_CASE("RunProgram passes stdin and reports status and output", "[exec]") {
  std::string out;
  auto rc =
      RunProgram({"/bin/sh", "-c", "read x; echo got:$x; echo err >&2; exit 3"}, "hello\n", &out);
  REQUIRE(rc);
  CHECK(*rc == 3);
  CHECK(out == "got:hello\nerr\n");
  auto missing = RunProgram({"/nonexistent/prog"}, "", &out);
  CHECK_FALSE(missing);
  // A program that ignores its input does not hurt us (no SIGPIPE).
  auto early = RunProgram({"/bin/true"}, std::string(1 << 20, 'x'), &out);
  REQUIRE(early);
  CHECK(*early == 0);
}

TEST_CASE("PlanRouteSync adds, fixes, removes and skips", "[routes]") {
  auto R = [](const char* dst, const char* gw) {
    return Route{Cidr(dst), *Ipv4::Parse(gw), 0, kRouteProtocol};
  };
  std::vector<PeerNode> peers = {
      {"n2", "192.168.50.2", "10.244.2.0/24"},   // present and right: nothing
      {"n3", "192.168.50.3", "10.244.3.0/24"},   // missing: add
      {"n4", "192.168.50.44", "10.244.4.0/24"},  // wrong gateway: replace
      {"n1", "192.168.50.1", "10.244.1.0/24"},   // own CIDR: skip
      {"n5", "", "10.244.5.0/24"},               // no IP yet: skip
      {"n6", "192.168.50.6", ""},                // no CIDR yet: skip
      {"n7", "192.168.50.7", "10.244.3.0/24"},   // duplicate CIDR: skip
  };
  std::vector<Route> actual = {R("10.244.2.0/24", "192.168.50.2"),
                               R("10.244.4.0/24", "192.168.50.4"),
                               R("10.244.9.0/24", "192.168.50.9")};  // node gone: remove
  auto plan = PlanRouteSync(peers, actual, Cidr("10.244.1.0/24"));
  REQUIRE(plan.replace.size() == 2);
  CHECK(plan.replace[0].ToString() == "10.244.3.0/24 via 192.168.50.3");
  CHECK(plan.replace[1].ToString() == "10.244.4.0/24 via 192.168.50.44");
  REQUIRE(plan.remove.size() == 1);
  CHECK(plan.remove[0].dst.ToString() == "10.244.9.0/24");
  REQUIRE(plan.skipped.size() == 4);
  CHECK(plan.skipped[0] == "n1: pod CIDR 10.244.1.0/24 is this node's own");
  CHECK(plan.skipped[1] == "n5: no InternalIP");
  CHECK(plan.skipped[2] == "n6: no pod CIDR");
  CHECK(plan.skipped[3] == "n7: pod CIDR 10.244.3.0/24 already routed to another node");
  // Converged: nothing to do.
  std::vector<Route> now = {R("10.244.2.0/24", "192.168.50.2"), R("10.244.3.0/24", "192.168.50.3"),
                            R("10.244.4.0/24", "192.168.50.44")};
  auto again = PlanRouteSync(peers, now, Cidr("10.244.1.0/24"));
  CHECK(again.replace.empty());
  CHECK(again.remove.empty());
}

TEST_CASE("host port entries are validated and conflicts named", "[hostports]") {
  Ipv4 ip = *Ipv4::Parse("10.244.7.2");
  std::vector<PortMapping> m = {{"TCP", 80, 8080, ""},
                                {"udp", 53, 5353, "0.0.0.0"},
                                {"tcp", 9000, 0, ""}};  // no host port: dropped
  auto e = HostPortEntries(Id(1), ip, m);
  REQUIRE(e);
  REQUIRE(e->size() == 2);
  CHECK((*e)[0].protocol == "tcp");
  CHECK((*e)[0].host_ip.empty());
  CHECK((*e)[1].Describe() == "5353/udp");
  CHECK_FALSE(HostPortEntries(Id(1), ip, {{"icmp", 1, 1, ""}}));
  CHECK_FALSE(HostPortEntries(Id(1), ip, {{"tcp", 0, 80, ""}}));
  CHECK_FALSE(HostPortEntries(Id(1), ip, {{"tcp", 80, 70000, ""}}));
  CHECK_FALSE(HostPortEntries(Id(1), ip, {{"tcp", 80, 8080, ""}, {"tcp", 81, 8080, ""}}));

  auto other = HostPortEntries(Id(2), ip, {{"tcp", 80, 8080, "192.168.1.5"}});
  REQUIRE(other);
  auto conflict = CheckHostPortConflicts(*e, *other);  // any address overlaps a specific one
  REQUIRE_FALSE(conflict);
  CHECK(conflict.error().message == "host port 8080/tcp is already used by sandbox " + Id(2));
  auto a = HostPortEntries(Id(3), ip, {{"tcp", 80, 8080, "192.168.1.5"}});
  auto b = HostPortEntries(Id(4), ip, {{"tcp", 80, 8080, "192.168.1.6"}});
  auto c = HostPortEntries(Id(5), ip, {{"udp", 80, 8080, ""}});
  CHECK(CheckHostPortConflicts(*a, *b));  // different addresses
  CHECK(CheckHostPortConflicts(*a, *c));  // different protocols
}

TEST_CASE("host port rules render one DNAT per mapping and one hairpin per pod", "[hostports]") {
  auto a = *HostPortEntries(Id(1), *Ipv4::Parse("10.244.7.2"),
                            {{"tcp", 80, 8080, ""}, {"udp", 53, 5353, "192.168.1.5"}});
  auto b = *HostPortEntries(Id(2), *Ipv4::Parse("10.244.7.3"), {{"tcp", 443, 8443, ""}});
  a.insert(a.end(), b.begin(), b.end());
  std::string id1 = Id(1).substr(0, 12), id2 = Id(2).substr(0, 12);
  CHECK(
      RenderHostPortRules(a, {true, true, true}) ==
      "*nat\n"
      ":CUBELET-HOSTPORTS - [0:0]\n"
      ":CUBELET-HOSTPORTS-MASQ - [0:0]\n"
      "-A CUBELET-HOSTPORTS -p udp -d 192.168.1.5/32 -m udp --dport 5353 -m comment --comment "
      "\"sandbox " +
          id1 +
          " hostPort 192.168.1.5:5353/udp\" -j DNAT --to-destination "
          "10.244.7.2:53\n"
          "-A CUBELET-HOSTPORTS -p tcp -m tcp --dport 8080 -m comment --comment \"sandbox " +
          id1 +
          " hostPort 8080/tcp\" -j DNAT --to-destination 10.244.7.2:80\n"
          "-A CUBELET-HOSTPORTS -p tcp -m tcp --dport 8443 -m comment --comment \"sandbox " +
          id2 +
          " hostPort 8443/tcp\" -j DNAT --to-destination 10.244.7.3:443\n"
          "-A CUBELET-HOSTPORTS-MASQ -s 10.244.7.2/32 -d 10.244.7.2/32 -m comment --comment "
          "\"sandbox " +
          id1 +
          " hairpin\" -j MASQUERADE\n"
          "-A CUBELET-HOSTPORTS-MASQ -s 10.244.7.3/32 -d 10.244.7.3/32 -m comment --comment "
          "\"sandbox " +
          id2 +
          " hairpin\" -j MASQUERADE\n"
          "-I PREROUTING -m addrtype --dst-type LOCAL -m comment --comment \"cubelet: host ports\" "
          "-j CUBELET-HOSTPORTS\n"
          "-I OUTPUT -m addrtype --dst-type LOCAL -m comment --comment \"cubelet: host ports\" "
          "-j CUBELET-HOSTPORTS\n"
          "-I POSTROUTING -m comment --comment \"cubelet: host ports\" -j CUBELET-HOSTPORTS-MASQ\n"
          "COMMIT\n");
  // No entries, jumps present: the chains are emptied.
  CHECK(RenderHostPortRules({}, {}) ==
        "*nat\n:CUBELET-HOSTPORTS - [0:0]\n:CUBELET-HOSTPORTS-MASQ - [0:0]\nCOMMIT\n");
}

TEST_CASE("Exec separates stdout and stderr, sets env, never deadlocks", "[exec]") {
  ExecSpec s;
  s.argv = {"/bin/sh", "-c", "echo out:$CNI_COMMAND; echo err >&2; exit 2"};
  s.env = {{"CNI_COMMAND", "ADD"}};
  auto r = Exec(s);
  REQUIRE(r);
  CHECK(r->status == 2);
  CHECK(r->out == "out:ADD\n");
  CHECK(r->err == "err\n");
  // Only the given variables when not inheriting.
  s.argv = {"/usr/bin/env"};
  s.inherit_env = false;
  r = Exec(s);
  REQUIRE(r);
  CHECK(r->out == "CNI_COMMAND=ADD\n");
  // 1 MiB in, 1 MiB out on each stream at once.
  ExecSpec big;
  big.argv = {"/bin/sh", "-c", "cat; head -c 1048576 /dev/zero >&2"};
  big.stdin_data = std::string(1 << 20, 'y');
  auto b = Exec(big);
  REQUIRE(b);
  CHECK(b->status == 0);
  CHECK(b->out.size() == (1u << 20));
  CHECK(b->err.size() == (1u << 20));
}
