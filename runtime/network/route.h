#pragma once
// IPv4 routes in the main table. Routes cubelet installs carry their own protocol number
// (kRouteProtocol) so they can be listed and cleaned up without touching anyone else's.
#include <optional>
#include <vector>

#include "base/result.h"
#include "runtime/network/cidr.h"
#include "runtime/network/netlink_socket.h"

namespace runtime::net {

// rtm_protocol of routes cubelet installs (free in /etc/iproute2/rt_protos; shown as "proto 196").
inline constexpr int kRouteProtocol = 196;

struct Route {
  Ipv4Cidr dst;                 // 0.0.0.0/0 for the default route
  std::optional<Ipv4> gateway;  // none: directly connected via oif
  int oif = 0;                  // output ifindex, 0: the kernel resolves it from the gateway
  int protocol = kRouteProtocol;

  std::string ToString() const;
  bool SameTarget(const Route& o) const { return dst == o.dst; }

  // Adds or replaces the route to dst (NLM_F_REPLACE: idempotent, and fixes a wrong gateway).
  static Result<> Replace(NetlinkSocket& sock, const Route& route);
  // Already gone is not an error.
  static Result<> Remove(NetlinkSocket& sock, const Route& route);
  // IPv4 unicast routes of the main table; protocol < 0 lists every protocol.
  static Result<std::vector<Route>> List(NetlinkSocket& sock, int protocol = kRouteProtocol);
};

}  // namespace runtime::net
