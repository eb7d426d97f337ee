// Privileged: BridgeNetwork end to end on the real kernel, inside the test process's own network
// namespace (the "node"): bridge + forwarding + masquerade, two pods that reach each other, the
// bridge, the node and (masqueraded) an outside network; teardown, restart and repair.
#include "runtime/network/bridge_network.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "base/file.h"
#include "base/strings.h"
#include "runtime/network/netns.h"
#include "tests/runtime/network/test_root.h"
#include "tests/support/kernel_env.h"

using namespace runtime::net;
using testsupport::Run;

namespace {

std::string Root() { return podnet_test::Root("bridge"); }

std::string Id(char c) { return std::string(64, c); }

bool InMountinfo(const std::string& path) {
  auto mi = base::ReadFile("/proc/self/mountinfo");
  REQUIRE(mi);
  return mi->find(" " + path + " ") != std::string::npos;
}

// A pod network namespace under the test root, removed at the end of the scope.
struct Pod {
  std::string id;
  std::string path;
  explicit Pod(char c) : id(Id(c)), path(Root() + "/netns/" + id) {
    REQUIRE(NetNamespace::Create(path));
  }
  ~Pod() { (void)NetNamespace::Remove(path); }
  SandboxNetRequest Req() const {
    return {id, path, "default", std::string("pod-") + id[0], "uid", {}};
  }
  std::string Exec(const std::string& cmd) const { return "nsenter --net=" + path + " " + cmd; }
};

struct Fixture {
  std::string state = Root() + "/state";
  BridgeNetworkOptions Options(const std::string& bridge) const {
    BridgeNetworkOptions o;
    o.bridge_name = bridge;
    o.state_dir = state;
    o.cluster_cidr = "10.244.0.0/16";
    return o;
  }
  ~Fixture() { podnet_test::RemoveTree(Root()); }
};

bool Ping(const std::string& prefix, const std::string& ip, int attempts = 3) {
  // Retry briefly: the first packets may race with bridge port / neighbour setup.
  for (int i = 0; i < attempts; ++i) {
    if (Run(prefix + "busybox ping -c1 -W1 " + ip) == 0) return true;
  }
  return false;
}

// Starts `busybox nc -l` on listen_port via server_prefix, connects with client_prefix to
// ip:port and returns what the server received.
std::string TcpSend(const std::string& server_prefix, int listen_port,
                    const std::string& client_prefix, const std::string& ip, int port,
                    const std::string& token) {
  const std::string recv = Root() + "/recv-" + token;
  std::string script = "(" + server_prefix + "timeout 10 busybox nc -l -p " +
                       std::to_string(listen_port) + " > " + recv + " &) ; " +
                       "for i in $(seq 1 50); do echo " + token + " | " + client_prefix +
                       "busybox nc " + ip + " " + std::to_string(port) +
                       " && break; sleep 0.1; done; sleep 0.2; cat " + recv;
  std::string out;
  Run("sh -c '" + script + "'", &out);
  return out;
}

}  // namespace

TEST_CASE("BridgeNetwork is not ready and refuses pods until the node network is set up",
          "[bridge]") {
  Fixture f;
  BridgeNetwork net(f.Options("cbt-ready0"));
  std::string reason, message;
  CHECK_FALSE(net.Ready(&reason, &message));
  CHECK(reason == "NetworkPluginNotReady");
  CHECK(message == "no pod CIDR");
  Pod a('a');
  auto st = net.Setup(a.Req());
  REQUIRE_FALSE(st);
  CHECK(st.error().message.find("not ready: no pod CIDR") != std::string::npos);

  auto bad = net.EnsureNodeNetwork("10.244.7.1/24");
  REQUIRE_FALSE(bad);
  CHECK_FALSE(net.Ready(&reason, &message));
  CHECK(message.find("host bits set") != std::string::npos);
  CHECK_FALSE(net.EnsureNodeNetwork(""));
  CHECK_FALSE(net.Ready(&reason, &message));
  CHECK(message == "no pod CIDR");

  REQUIRE(net.EnsureNodeNetwork("10.244.9.0/24"));
  CHECK(net.Ready(&reason, &message));
  CHECK(reason.empty());
  Run("ip link del cbt-ready0");
}

TEST_CASE("BridgeNetwork connects pods to each other, the node and the outside", "[bridge]") {
  Fixture f;
  BridgeNetwork net(f.Options("cbt0"));
  REQUIRE(net.EnsureNodeNetwork("10.244.7.0/24"));
  REQUIRE(net.EnsureNodeNetwork("10.244.7.0/24"));  // idempotent

  std::string out;
  REQUIRE(Run("ip -o -4 addr show dev cbt0", &out) == 0);
  CHECK(out.find("inet 10.244.7.1/24") != std::string::npos);
  REQUIRE(Run("ip -o link show cbt0", &out) == 0);
  CHECK(out.find(",UP") != std::string::npos);  // admin up (no carrier until a port is up)
  CHECK(out.find("link/ether 0a:58:0a:f4:07:01") != std::string::npos);
  CHECK(base::Trim(*base::ReadFile("/proc/sys/net/ipv4/ip_forward")) == "1");
  // Masquerade rules in our own chain, jumped once even after two EnsureNodeNetwork calls.
  REQUIRE(Run("iptables-save -t nat", &out) == 0);
  CHECK(out.find("-A POSTROUTING -m comment --comment \"cubelet: pod masquerade\" -j "
                 "CUBELET-POSTROUTING") != std::string::npos);
  CHECK(out.find("-A CUBELET-POSTROUTING -s 10.244.7.0/24 -d 10.244.0.0/16") != std::string::npos);
  CHECK(out.find("-j MASQUERADE") != std::string::npos);
  size_t jumps = 0, masq = 0;
  for (const auto& line : base::Split(out, '\n')) {
    if (line.find("-j CUBELET-POSTROUTING") != std::string::npos) ++jumps;
    if (line.find("-j MASQUERADE") != std::string::npos) ++masq;
  }
  CHECK(jumps == 1);
  CHECK(masq == 1);
  REQUIRE(Run("iptables-save -t filter", &out) == 0);
  CHECK(out.find("-A CUBELET-FORWARD -d 10.244.7.0/24") != std::string::npos);

  Pod a('a'), b('b');
  auto sa = net.Setup(a.Req());
  REQUIRE(sa);
  auto sb = net.Setup(b.Req());
  REQUIRE(sb);
  CHECK(sa->ip == "10.244.7.2");
  CHECK(sb->ip == "10.244.7.3");
  CHECK(sa->gateway == "10.244.7.1");
  CHECK(sa->interface == "eth0");

  // eth0 inside each pod: address, MAC from the IP, up; loopback up; default route.
  REQUIRE(Run(a.Exec("ip -o -4 addr show dev eth0"), &out) == 0);
  CHECK(out.find("inet 10.244.7.2/24") != std::string::npos);
  REQUIRE(Run(b.Exec("ip -o -4 addr show dev eth0"), &out) == 0);
  CHECK(out.find("inet 10.244.7.3/24") != std::string::npos);
  REQUIRE(Run(a.Exec("ip -o link show eth0"), &out) == 0);
  CHECK(out.find("link/ether 0a:58:0a:f4:07:02") != std::string::npos);
  CHECK(out.find(",UP") != std::string::npos);
  REQUIRE(Run(a.Exec("ip -o link show lo"), &out) == 0);
  CHECK(out.find(",UP") != std::string::npos);
  REQUIRE(Run(a.Exec("ip route show default"), &out) == 0);
  CHECK(out.find("default via 10.244.7.1 dev eth0") != std::string::npos);

  // Host side: on the bridge, hairpin, up, owned by the sandbox (alias).
  const std::string va = BridgeNetwork::HostVethName(a.id);
  CHECK(va == "vethaaaaaaaa");
  REQUIRE(Run("ip -d link show " + va, &out) == 0);
  CHECK(out.find("master cbt0") != std::string::npos);
  CHECK(out.find("hairpin on") != std::string::npos);
  CHECK(out.find("state UP") != std::string::npos);
  CHECK(out.find("alias " + a.id) != std::string::npos);

  // Traffic: pod <-> pod, pod -> bridge, node -> pod, pod -> itself via loopback.
  CHECK(Ping(a.Exec(""), "10.244.7.3"));
  CHECK(Ping(b.Exec(""), "10.244.7.2"));
  CHECK(Ping(a.Exec(""), "10.244.7.1"));
  CHECK(Ping("", "10.244.7.2"));
  CHECK(Ping("", "10.244.7.3"));
  CHECK(Ping(a.Exec(""), "127.0.0.1"));

  // TCP from pod A to a listener in pod B.
  const std::string recv = Root() + "/recv.txt";
  std::string script = "(" + b.Exec("timeout 10 busybox nc -l -p 8080") + " > " + recv + " &) ; " +
                       "for i in $(seq 1 50); do echo hello-from-a | " +
                       a.Exec("busybox nc 10.244.7.3 8080") +
                       " && break; sleep 0.1; done; sleep 0.2; cat " + recv;
  REQUIRE(Run("sh -c '" + script + "'", &out) == 0);
  CHECK(out.find("hello-from-a") != std::string::npos);

  // Outside the cluster: a network the node reaches on another veth, whose far end has no route
  // back to the pod CIDR. Only masquerade makes the reply come back.
  {
    Pod outside('f');
    REQUIRE(Run("ip link add cbt-up type veth peer name cbt-up-peer && "
                "ip link set cbt-up-peer netns " +
                    outside.path +
                    " && "
                    "ip addr add 192.168.99.1/24 dev cbt-up && ip link set cbt-up up && " +
                    outside.Exec("ip addr add 192.168.99.2/24 dev cbt-up-peer") + " && " +
                    outside.Exec("ip link set cbt-up-peer up"),
                &out) == 0);
    CHECK(Ping(a.Exec(""), "192.168.99.2"));
    REQUIRE(Run("iptables -t nat -L CUBELET-POSTROUTING -v -n -x", &out) == 0);
    bool counted = false;
    for (const auto& line : base::Split(out, '\n')) {
      auto cols = base::Split(line, ' ', true);
      if (cols.size() > 2 && cols[2] == "MASQUERADE" && cols[0] != "0") counted = true;
    }
    CHECK(counted);
    Run("ip link del cbt-up");
  }

  // Teardown removes the veth (both ends) and frees the IP; twice is fine.
  REQUIRE(net.Teardown(a.Req()));
  CHECK(Run("ip link show " + va) != 0);
  CHECK(Run(a.Exec("ip link show eth0")) != 0);
  auto held = net.ipam().List();
  REQUIRE(held);
  REQUIRE(held->size() == 1);
  CHECK((*held)[0].sandbox_id == b.id);
  REQUIRE(net.Teardown(a.Req()));
  CHECK_FALSE(Ping(b.Exec(""), "10.244.7.2", 1));
  CHECK(Ping(b.Exec(""), "10.244.7.1"));  // B unaffected

  // Removing the pod namespace leaves no mount and no file.
  REQUIRE(NetNamespace::Remove(a.path));
  CHECK_FALSE(InMountinfo(a.path));
  CHECK_FALSE(base::PathExists(a.path));

  REQUIRE(net.Teardown(b.Req()));
  Run("ip link del cbt0");
}

TEST_CASE("BridgeNetwork Setup after a crash returns the same IP and repairs", "[bridge]") {
  Fixture f;
  Pod c('c'), d('d');
  std::string ip_c;
  {
    BridgeNetwork first(f.Options("cbt1"));
    REQUIRE(first.EnsureNodeNetwork("10.244.8.0/24"));
    REQUIRE(first.Setup(d.Req()));  // takes .2
    auto st = first.Setup(c.Req());
    REQUIRE(st);
    ip_c = st->ip;
    CHECK(ip_c == "10.244.8.3");
  }  // "crash": the object is gone, the kernel state and the state dir stay

  BridgeNetwork second(f.Options("cbt1"));
  // Teardown works before the node network is known again (only on-disk state needed)...
  REQUIRE(second.Teardown(d.Req()));
  CHECK(Run("ip link show " + BridgeNetwork::HostVethName(d.id)) != 0);
  REQUIRE(second.EnsureNodeNetwork("10.244.8.0/24"));
  auto again = second.Setup(c.Req());
  REQUIRE(again);
  CHECK(again->ip == ip_c);
  CHECK(Ping(c.Exec(""), "10.244.8.1"));

  // ...and Setup repairs what is missing: eth0 deleted inside the pod.
  REQUIRE(Run(c.Exec("ip link del eth0")) == 0);
  CHECK(Run("ip link show " + BridgeNetwork::HostVethName(c.id)) != 0);
  auto repaired = second.Setup(c.Req());
  REQUIRE(repaired);
  CHECK(repaired->ip == ip_c);
  std::string out;
  REQUIRE(Run(c.Exec("ip -o -4 addr show dev eth0"), &out) == 0);
  CHECK(out.find("inet " + ip_c + "/24") != std::string::npos);
  CHECK(Ping(c.Exec(""), "10.244.8.1"));

  // The bridge itself deleted: the next Setup recreates it with its address.
  REQUIRE(Run("ip link del cbt1") == 0);
  Pod e('e');
  auto se = second.Setup(e.Req());
  REQUIRE(se);
  REQUIRE(Run("ip -o -4 addr show dev cbt1", &out) == 0);
  CHECK(out.find("inet 10.244.8.1/24") != std::string::npos);
  CHECK(Ping(e.Exec(""), "10.244.8.1"));
  REQUIRE(second.Setup(c.Req()));  // re-attaches C's veth to the new bridge
  CHECK(Ping(c.Exec(""), se->ip));

  REQUIRE(second.Teardown(c.Req()));
  REQUIRE(second.Teardown(e.Req()));
  Run("ip link del cbt1");
}

TEST_CASE("BridgeNetwork failures roll back and name the cause", "[bridge]") {
  Fixture f;
  BridgeNetwork net(f.Options("cbt2"));
  REQUIRE(net.EnsureNodeNetwork("10.244.6.0/30"));  // room for exactly one pod (.2)

  SandboxNetRequest missing{Id('9'), Root() + "/netns/nonexistent", "", "", "", {}};
  auto r = net.Setup(missing);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("set up network of sandbox " + Id('9')) != std::string::npos);
  CHECK(r.error().message.find("nonexistent") != std::string::npos);
  CHECK(net.ipam().List()->empty());  // nothing held

  Pod a('a'), b('b');
  REQUIRE(net.Setup(a.Req()));
  auto full = net.Setup(b.Req());
  REQUIRE_FALSE(full);
  CHECK(full.error().message.find("no free IP in pod CIDR 10.244.6.0/30 for sandbox " + b.id +
                                  ": all 1 addresses in use") != std::string::npos);
  CHECK(Run("ip link show " + BridgeNetwork::HostVethName(b.id)) != 0);
  CHECK(Run(b.Exec("ip link show eth0")) != 0);
  REQUIRE(net.Teardown(a.Req()));
  Run("ip link del cbt2");
}

TEST_CASE("BridgeNetwork garbage-collects vanished sandboxes", "[bridge]") {
  Fixture f;
  BridgeNetwork net(f.Options("cbt3"));
  REQUIRE(net.EnsureNodeNetwork("10.244.5.0/24"));
  Pod a('a'), b('b'), c('c');
  REQUIRE(net.Setup(a.Req()));
  REQUIRE(net.Setup(b.Req()));
  REQUIRE(net.Setup(c.Req()));
  auto n = net.GarbageCollect({b.id});
  REQUIRE(n);
  CHECK(*n == 2);
  CHECK(Run("ip link show " + BridgeNetwork::HostVethName(a.id)) != 0);
  CHECK(Run("ip link show " + BridgeNetwork::HostVethName(c.id)) != 0);
  CHECK(Run("ip link show " + BridgeNetwork::HostVethName(b.id)) == 0);
  auto held = net.ipam().List();
  REQUIRE(held);
  REQUIRE(held->size() == 1);
  CHECK((*held)[0].sandbox_id == b.id);
  CHECK(Ping(b.Exec(""), "10.244.5.1"));
  REQUIRE(net.Teardown(b.Req()));
  Run("ip link del cbt3");
}

TEST_CASE("BridgeNetwork maps host ports to pods", "[bridge][hostports]") {
  Fixture f;
  struct Links {
    ~Links() { Run("ip link del cbt-hp 2>/dev/null; ip link del cbt4 2>/dev/null"); }
  } links;
  auto opts = f.Options("cbt4");
  Pod outside('f');
  std::string out;
  REQUIRE(Run("ip link add cbt-hp type veth peer name cbt-hp-peer && "
              "ip link set cbt-hp-peer netns " +
                  outside.path +
                  " && "
                  "ip addr add 192.168.98.1/24 dev cbt-hp && ip link set cbt-hp up && " +
                  outside.Exec("ip addr add 192.168.98.2/24 dev cbt-hp-peer") + " && " +
                  outside.Exec("ip link set cbt-hp-peer up"),
              &out) == 0);

  Pod a('a'), b('b');
  auto req_a = a.Req();
  req_a.port_mappings = {{"tcp", 8080, 18080, ""}};
  auto req_b = b.Req();
  req_b.port_mappings = {{"tcp", 9090, 18080, ""}};
  {
    BridgeNetwork net(opts);
    REQUIRE(net.EnsureNodeNetwork("10.244.4.0/24"));
    auto sa = net.Setup(req_a);
    REQUIRE(sa);
    REQUIRE(net.Setup(req_a));  // idempotent, same rules
    REQUIRE(Run("iptables-save -t nat", &out) == 0);
    size_t dnat = 0;
    for (const auto& line : base::Split(out, '\n')) {
      if (line.find("--to-destination " + sa->ip + ":8080") != std::string::npos) ++dnat;
    }
    CHECK(dnat == 1);

    // Taken by A: B fails, and leaves nothing behind.
    auto sb = net.Setup(req_b);
    REQUIRE_FALSE(sb);
    CHECK(sb.error().message.find("host port 18080/tcp is already used by sandbox " + a.id) !=
          std::string::npos);
    CHECK(Run("ip link show " + BridgeNetwork::HostVethName(b.id)) != 0);
    CHECK(net.ipam().List()->size() == 1);

    // From outside the node, from the node itself, and from the pod itself (hairpin).
    CHECK(TcpSend(a.Exec(""), 8080, outside.Exec(""), "192.168.98.1", 18080, "from-outside")
              .find("from-outside") != std::string::npos);
    CHECK(TcpSend(a.Exec(""), 8080, "", "192.168.98.1", 18080, "from-node").find("from-node") !=
          std::string::npos);
    CHECK(TcpSend(a.Exec(""), 8080, a.Exec(""), "192.168.98.1", 18080, "from-itself")
              .find("from-itself") != std::string::npos);
  }  // restart

  // Someone flushes the chain; the restarted node network puts the rules back from disk.
  REQUIRE(Run("iptables -t nat -F CUBELET-HOSTPORTS") == 0);
  BridgeNetwork net(opts);
  REQUIRE(net.EnsureNodeNetwork("10.244.4.0/24"));
  CHECK(TcpSend(a.Exec(""), 8080, outside.Exec(""), "192.168.98.1", 18080, "after-restart")
            .find("after-restart") != std::string::npos);

  // Teardown drops A's mapping; then B may have the port.
  REQUIRE(net.Teardown(a.Req()));
  REQUIRE(Run("iptables-save -t nat", &out) == 0);
  CHECK(out.find("18080") == std::string::npos);
  auto sb = net.Setup(req_b);
  REQUIRE(sb);
  CHECK(TcpSend(b.Exec(""), 9090, outside.Exec(""), "192.168.98.1", 18080, "to-b").find("to-b") !=
        std::string::npos);
  // GC of a vanished sandbox drops its mapping too.
  auto n = net.GarbageCollect({});
  REQUIRE(n);
  CHECK(*n == 1);
  REQUIRE(Run("iptables-save -t nat", &out) == 0);
  CHECK(out.find("18080") == std::string::npos);
  CHECK(net.host_ports().LoadAll()->empty());
}
