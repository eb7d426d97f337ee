// Privileged: NetNamespace create/open/enter/remove, and the libnl wrappers (Link, Bridge,
// VethPair, Address, Route) on the real kernel, inside the test process's own network namespace.
#include "runtime/network/netns.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <future>
#include <string>
#include <thread>

#include "base/file.h"
#include "runtime/network/address.h"
#include "runtime/network/link.h"
#include "runtime/network/netlink_socket.h"
#include "runtime/network/route.h"
#include "tests/runtime/network/test_root.h"
#include "tests/support/kernel_env.h"

using namespace runtime::net;

namespace {

std::string TestRoot() { return podnet_test::Root("netns"); }

bool InMountinfo(const std::string& path) {
  auto mi = base::ReadFile("/proc/self/mountinfo");
  REQUIRE(mi);
  return mi->find(" " + path + " ") != std::string::npos;
}

struct RootCleanup {
  ~RootCleanup() { podnet_test::RemoveTree(TestRoot()); }
};

}  // namespace

TEST_CASE("NetNamespace::Create pins a new namespace; Remove leaves nothing", "[netns]") {
  RootCleanup cleanup;
  const std::string path = TestRoot() + "/netns/a";
  auto self = NetNamespace::Current();
  REQUIRE(self);

  auto ns = NetNamespace::Create(path);
  REQUIRE(ns);
  CHECK(NetNamespace::IsPinned(path));
  CHECK(InMountinfo(path));
  CHECK_FALSE(ns->SameAs(*self));
  // The caller's thread did not move.
  auto still = NetNamespace::Current();
  REQUIRE(still);
  CHECK(still->SameAs(*self));

  // Idempotent: a second Create opens the same namespace.
  auto again = NetNamespace::Create(path);
  REQUIRE(again);
  CHECK(again->SameAs(*ns));
  auto opened = NetNamespace::Open(path);
  REQUIRE(opened);
  CHECK(opened->SameAs(*ns));

  // A link made there is visible to `ip` only inside.
  {
    auto sock = NetlinkSocket::OpenIn(*ns);
    REQUIRE(sock);
    auto lo = Link::Get(*sock, "lo");
    REQUIRE(lo);
    CHECK_FALSE(lo->is_up());
    auto br = Bridge::Ensure(*sock, {"nstest0", 1400, "0a:58:01:02:03:04"});
    REQUIRE(br);
  }
  std::string out;
  CHECK(testsupport::Run("nsenter --net=" + path + " ip -o link show nstest0", &out) == 0);
  CHECK(out.find("mtu 1400") != std::string::npos);
  CHECK(testsupport::Run("ip link show nstest0", &out) != 0);

  // Enter switches the calling thread only (a thread that already runs stays), and back.
  {
    std::promise<void> entered;
    bool other_thread_moved = true;
    std::thread other([&, f = entered.get_future()]() mutable {
      f.wait();
      auto c = NetNamespace::Current();
      other_thread_moved = !c || !c->SameAs(*self);
    });
    {
      auto guard = ns->Enter();
      REQUIRE(guard);
      auto cur = NetNamespace::Current();
      REQUIRE(cur);
      CHECK(cur->SameAs(*ns));
      entered.set_value();
      other.join();
    }
    CHECK_FALSE(other_thread_moved);
  }
  auto back = NetNamespace::Current();
  REQUIRE(back);
  CHECK(back->SameAs(*self));

  REQUIRE(NetNamespace::Remove(path));
  CHECK_FALSE(InMountinfo(path));
  CHECK_FALSE(base::PathExists(path));
  CHECK(NetNamespace::Remove(path));  // idempotent
  auto gone = NetNamespace::Open(path);
  CHECK_FALSE(gone);
}

TEST_CASE("NetNamespace::Open refuses a plain file", "[netns]") {
  RootCleanup cleanup;
  REQUIRE(base::MkdirAll(TestRoot()));
  const std::string path = TestRoot() + "/plain";
  REQUIRE(base::WriteFile(path, ""));
  auto ns = NetNamespace::Open(path);
  REQUIRE_FALSE(ns);
  CHECK(ns.error().message.find(path) != std::string::npos);
  // Create over a left-over plain file (crash between create and mount) completes it.
  auto made = NetNamespace::Create(path);
  REQUIRE(made);
  CHECK(NetNamespace::IsPinned(path));
  REQUIRE(NetNamespace::Remove(path));
}

TEST_CASE("VethPair puts the peer into another namespace and rolls back", "[link]") {
  RootCleanup cleanup;
  const std::string path = TestRoot() + "/netns/v";
  auto ns = NetNamespace::Create(path);
  REQUIRE(ns);
  auto host = NetlinkSocket::Open();
  REQUIRE(host);
  auto pod = NetlinkSocket::OpenIn(*ns);
  REQUIRE(pod);
  {
    auto pair = VethPair::Create(*host, {"vtest0", "eth0", &*ns, 1450, "0a:58:0a:00:00:09"});
    REQUIRE(pair);
    auto peer = Link::Get(*pod, "eth0");
    REQUIRE(peer);
    CHECK(peer->kind() == "veth");
    CHECK(peer->mac() == "0a:58:0a:00:00:09");
    CHECK(peer->mtu() == 1450);
    CHECK(pair->host().peer_index() == peer->index());
    CHECK(peer->peer_index() == pair->host().index());
    // Not kept: destroyed with the object.
  }
  auto h = Link::Find(*host, "vtest0");
  REQUIRE(h);
  CHECK_FALSE(h->has_value());
  auto p = Link::Find(*pod, "eth0");
  REQUIRE(p);
  CHECK_FALSE(p->has_value());

  // Kept pair, addresses, routes, bridge port with hairpin.
  auto br = Bridge::Ensure(*host, {"vtestbr0", 1500, ""});
  REQUIRE(br);
  auto pair = VethPair::Create(*host, {"vtest1", "eth0", &*ns, 1500, ""});
  REQUIRE(pair);
  pair->Keep();
  REQUIRE(br->AddPort(pair->host(), true));
  REQUIRE(pair->host().SetUp());
  std::string out;
  REQUIRE(testsupport::Run("ip -d link show vtest1", &out) == 0);
  CHECK(out.find("master vtestbr0") != std::string::npos);
  CHECK(out.find("hairpin on") != std::string::npos);
  REQUIRE(br->AddPort(pair->host(), false));
  REQUIRE(testsupport::Run("ip -d link show vtest1", &out) == 0);
  CHECK(out.find("hairpin off") != std::string::npos);

  auto peer = Link::Get(*pod, "eth0");
  REQUIRE(peer);
  Address a{*Ipv4::Parse("10.9.0.5"), 24};
  REQUIRE(Address::Ensure(*pod, *peer, a, true));
  REQUIRE(Address::Ensure(*pod, *peer, a, true));  // idempotent
  Address b{*Ipv4::Parse("10.9.0.6"), 24};
  REQUIRE(Address::Ensure(*pod, *peer, b, true));  // exclusive: replaces a
  auto list = Address::List(*pod, *peer);
  REQUIRE(list);
  REQUIRE(list->size() == 1);
  CHECK((*list)[0] == b);
  REQUIRE(peer->SetUp());
  Route def{Ipv4Cidr{Ipv4{0}, 0}, *Ipv4::Parse("10.9.0.1"), peer->index()};
  REQUIRE(Route::Replace(*pod, def));
  REQUIRE(Route::Replace(*pod, def));  // idempotent
  auto routes = Route::List(*pod);
  REQUIRE(routes);
  REQUIRE(routes->size() == 1);
  CHECK((*routes)[0].dst.prefix == 0);
  CHECK((*routes)[0].gateway->ToString() == "10.9.0.1");
  REQUIRE(testsupport::Run("nsenter --net=" + path + " ip route show default", &out) == 0);
  CHECK(out.find("default via 10.9.0.1 dev eth0 proto 196") != std::string::npos);
  REQUIRE(Route::Remove(*pod, def));
  REQUIRE(Route::Remove(*pod, def));  // already gone
  CHECK(Route::List(*pod)->empty());

  // Deleting the host end deletes the peer too.
  REQUIRE(pair->host().Delete());
  CHECK_FALSE(Link::Find(*pod, "eth0")->has_value());
  REQUIRE(pair->host().Delete());  // already gone
  REQUIRE(br->Delete());
  REQUIRE(NetNamespace::Remove(path));
}

TEST_CASE("Bridge::Ensure refuses a non-bridge link of the same name", "[link]") {
  auto sock = NetlinkSocket::Open();
  REQUIRE(sock);
  REQUIRE(testsupport::Run("ip link add notabridge type veth peer name notabridge-p") == 0);
  auto br = Bridge::Ensure(*sock, {"notabridge", 1500, ""});
  REQUIRE_FALSE(br);
  CHECK(br.error().message.find("notabridge") != std::string::npos);
  CHECK(br.error().message.find("not a bridge") != std::string::npos);
  testsupport::Run("ip link del notabridge");
}
