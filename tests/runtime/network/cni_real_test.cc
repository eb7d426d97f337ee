// Privileged: CniNetwork with the real plugins of Debian's containernetworking-plugins
// (/usr/lib/cni: bridge + host-local + portmap), inside the test's own network namespace.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "base/file.h"
#include "base/strings.h"
#include "runtime/network/cni_network.h"
#include "runtime/network/netns.h"
#include "tests/runtime/network/test_root.h"
#include "tests/support/kernel_env.h"

using namespace runtime::net;
using testsupport::Run;

namespace {

std::string Root() { return podnet_test::Root("cni"); }

bool Ping(const std::string& netns, const std::string& ip, int attempts = 3) {
  for (int i = 0; i < attempts; ++i) {
    if (Run((netns.empty() ? "" : "nsenter --net=" + netns + " ") + "busybox ping -c1 -W1 " + ip) ==
        0) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("CniNetwork runs the real bridge, host-local and portmap plugins", "[cni]") {
  if (!base::PathExists("/usr/lib/cni/bridge")) {
    WARN("containernetworking-plugins not installed; skipping");
    return;
  }
  struct Cleanup {
    ~Cleanup() {
      Run("ip link del cnitest0 2>/dev/null; ip link del cni-up 2>/dev/null");
      podnet_test::RemoveTree(Root());
    }
  } cleanup;
  const std::string ipam_dir = Root() + "/host-local";
  CniNetworkOptions o;
  o.conf_dir = Root() + "/net.d";
  o.bin_dirs = {"/usr/lib/cni"};
  o.cache_dir = Root() + "/cache";
  o.conf_template = Root() + "/template.conflist";
  REQUIRE(base::MkdirAll(Root()));
  REQUIRE(base::WriteFile(o.conf_template, R"({
    "cniVersion": "1.0.0", "name": "cubelet-test",
    "plugins": [
      {"type": "bridge", "bridge": "cnitest0", "isGateway": true, "ipMasq": true,
       "hairpinMode": true,
       "ipam": {"type": "host-local", "dataDir": ")" +
                                               ipam_dir + R"(",
                "ranges": [[{"subnet": "{{.PodCIDR}}"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
      {"type": "portmap", "capabilities": {"portMappings": true}}
    ]})"));

  const std::string pa = Root() + "/netns/a", pb = Root() + "/netns/b";
  REQUIRE(NetNamespace::Create(pa));
  REQUIRE(NetNamespace::Create(pb));
  SandboxNetRequest ra{std::string(64, 'a'),      pa, "default", "a", "uid-a",
                       {{"tcp", 8080, 18081, ""}}};
  SandboxNetRequest rb{std::string(64, 'b'), pb, "default", "b", "uid-b", {}};

  std::string ip_a;
  {
    CniNetwork net(o);
    std::string reason, msg;
    CHECK_FALSE(net.Ready(&reason, &msg));
    REQUIRE(net.EnsureNodeNetwork("10.244.3.0/24"));
    CHECK(net.Ready(&reason, &msg));
    auto sa = net.Setup(ra);
    REQUIRE(sa);
    auto sb = net.Setup(rb);
    REQUIRE(sb);
    ip_a = sa->ip;
    CHECK(base::StartsWith(sa->ip, "10.244.3."));
    CHECK(base::StartsWith(sb->ip, "10.244.3."));
    CHECK(sa->ip != sb->ip);
    CHECK(sa->gateway == "10.244.3.1");
    std::string out;
    REQUIRE(Run("nsenter --net=" + pa + " ip -o -4 addr show dev eth0", &out) == 0);
    CHECK(out.find("inet " + sa->ip + "/24") != std::string::npos);
    CHECK(Ping(pa, sb->ip));
    CHECK(Ping("", sa->ip));
    // host-local keeps its own state: one file per IP.
    CHECK(base::PathExists(ipam_dir + "/cubelet-test/" + sa->ip));
    // portmap installed its DNAT for A's host port.
    REQUIRE(Run("iptables-save -t nat", &out) == 0);
    CHECK(out.find("--dport 18081") != std::string::npos);
    // Idempotent Setup: the same IP comes back, ADD is not repeated.
    auto again = net.Setup(ra);
    REQUIRE(again);
    CHECK(again->ip == sa->ip);
  }  // restart

  CniNetwork net(o);
  // Config gone: DEL after the restart still works from the cache.
  REQUIRE(::unlink((o.conf_dir + "/10-cubelet.conflist").c_str()) == 0);
  REQUIRE(net.Teardown(ra));
  CHECK_FALSE(base::PathExists(ipam_dir + "/cubelet-test/" + ip_a));
  CHECK(Run("nsenter --net=" + pa + " ip link show eth0") != 0);
  std::string out;
  REQUIRE(Run("iptables-save -t nat", &out) == 0);
  CHECK(out.find("--dport 18081") == std::string::npos);
  REQUIRE(net.Teardown(ra));  // idempotent
  // Namespace already removed: DEL still releases the address.
  REQUIRE(NetNamespace::Remove(pb));
  REQUIRE(net.Teardown(rb));
  auto left = base::ReadFile(ipam_dir + "/cubelet-test/last_reserved_ip.0");
  CHECK(left);  // host-local bookkeeping stays, but no address files:
  REQUIRE(Run("ls " + ipam_dir + "/cubelet-test", &out) == 0);
  CHECK(out.find("10.244.3.") == std::string::npos);
}

TEST_CASE("CniNetwork CHECK finds a broken pod network and re-Setup repairs it", "[cni]") {
  if (!base::PathExists("/usr/lib/cni/bridge")) {
    WARN("containernetworking-plugins not installed; skipping");
    return;
  }
  struct Cleanup {
    ~Cleanup() {
      Run("ip link del cnitest1 2>/dev/null");
      podnet_test::RemoveTree(Root());
    }
  } cleanup;
  CniNetworkOptions o;
  o.conf_dir = Root() + "/net.d-check";
  o.bin_dirs = {"/usr/lib/cni"};
  o.cache_dir = Root() + "/cache-check";
  o.check_on_resetup = true;
  REQUIRE(base::MkdirAll(o.conf_dir));
  // No portmap here: its CHECK is broken for IPv4-only pods in plugins < 1.2.
  REQUIRE(base::WriteFile(o.conf_dir + "/10-check.conflist", R"({
    "cniVersion": "1.0.0", "name": "cubelet-check",
    "plugins": [
      {"type": "bridge", "bridge": "cnitest1", "isGateway": true,
       "ipam": {"type": "host-local", "dataDir": ")" + Root() + R"(/host-local-check",
                "ranges": [[{"subnet": "10.244.13.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}}
    ]})"));
  const std::string pc = Root() + "/netns/c";
  REQUIRE(NetNamespace::Create(pc));
  SandboxNetRequest rc{std::string(64, 'c'), pc, "default", "c", "uid-c", {}};
  CniNetwork net(o);
  REQUIRE(net.EnsureNodeNetwork(""));
  auto sc = net.Setup(rc);
  REQUIRE(sc);
  REQUIRE(net.Check(rc));
  auto same = net.Setup(rc);  // CHECK passes: cached result, same IP
  REQUIRE(same);
  CHECK(same->ip == sc->ip);

  REQUIRE(Run("nsenter --net=" + pc + " ip link del eth0") == 0);
  auto broken = net.Check(rc);
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message.find("CNI plugin bridge CHECK failed") != std::string::npos);
  auto repaired = net.Setup(rc);
  REQUIRE(repaired);
  CHECK(Ping(pc, "10.244.13.1"));
  REQUIRE(net.Check(rc));
  REQUIRE(net.Teardown(rc));
}
