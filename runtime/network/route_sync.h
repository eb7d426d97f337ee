#pragma once
// Multi-node pod routing without an overlay ("host-gw"): every other node's pod CIDR is routed via
// that node's InternalIP, which must be on a directly connected network. Sync() makes the main
// table of the node namespace hold exactly those routes among the ones cubelet owns (protocol
// kRouteProtocol); other routes are never touched. Planning is a pure function (PlanRouteSync).
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/network/cidr.h"
#include "runtime/network/netns.h"
#include "runtime/network/route.h"

namespace runtime::net {

struct PeerNode {
  std::string name;  // for errors and logs
  std::string internal_ip;
  std::string pod_cidr;
};

struct RoutePlan {
  std::vector<Route> replace;        // missing or with a different gateway
  std::vector<Route> remove;         // ours, no longer wanted
  std::vector<std::string> skipped;  // "node: reason" for unusable entries
};

// desired: peers; actual: the routes with our protocol now in the table. Entries for own_pod_cidr,
// without an IP or CIDR, or unparsable are skipped (and reported), never fatal.
RoutePlan PlanRouteSync(const std::vector<PeerNode>& peers, const std::vector<Route>& actual,
                        const std::optional<Ipv4Cidr>& own_pod_cidr);

class RouteSync {
 public:
  // Acts in the network namespace of the constructing thread.
  RouteSync();

  struct Stats {
    size_t replaced = 0, removed = 0, skipped = 0;
  };
  // Applies the whole plan; stops at the first kernel error (naming the node and route).
  Result<Stats> Sync(const std::vector<PeerNode>& peers,
                     const std::optional<Ipv4Cidr>& own_pod_cidr = std::nullopt);

 private:
  std::optional<NetNamespace> node_ns_;
  std::string node_ns_error_;
};

}  // namespace runtime::net
