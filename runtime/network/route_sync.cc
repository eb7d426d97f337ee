#include "runtime/network/route_sync.h"

#include <map>

#include "base/log.h"
#include "runtime/network/netlink_socket.h"

namespace runtime::net {

RoutePlan PlanRouteSync(const std::vector<PeerNode>& peers, const std::vector<Route>& actual,
                        const std::optional<Ipv4Cidr>& own_pod_cidr) {
  RoutePlan plan;
  std::map<Ipv4Cidr, Route> want;
  for (const auto& p : peers) {
    auto skip = [&](const std::string& why) { plan.skipped.push_back(p.name + ": " + why); };
    if (p.pod_cidr.empty()) {
      skip("no pod CIDR");
      continue;
    }
    auto cidr = Ipv4Cidr::Parse(p.pod_cidr);
    if (!cidr) {
      skip(cidr.error().message);
      continue;
    }
    if (own_pod_cidr && *cidr == *own_pod_cidr) {
      skip("pod CIDR " + cidr->ToString() + " is this node's own");
      continue;
    }
    auto ip = Ipv4::Parse(p.internal_ip);
    if (!ip) {
      skip(p.internal_ip.empty() ? "no InternalIP" : ip.error().message);
      continue;
    }
    if (want.count(*cidr)) {
      skip("pod CIDR " + cidr->ToString() + " already routed to another node");
      continue;
    }
    want[*cidr] = Route{*cidr, *ip, 0, kRouteProtocol};
  }
  std::map<Ipv4Cidr, const Route*> have;
  for (const auto& r : actual) have[r.dst] = &r;
  for (const auto& [dst, r] : want) {
    auto it = have.find(dst);
    if (it == have.end() || it->second->gateway != r.gateway) plan.replace.push_back(r);
  }
  for (const auto& r : actual) {
    if (!want.count(r.dst)) plan.remove.push_back(r);
  }
  return plan;
}

RouteSync::RouteSync() {
  auto ns = NetNamespace::Current();
  if (ns) {
    node_ns_.emplace(std::move(*ns));
  } else {
    node_ns_error_ = ns.error().message;
  }
}

Result<RouteSync::Stats> RouteSync::Sync(const std::vector<PeerNode>& peers,
                                         const std::optional<Ipv4Cidr>& own_pod_cidr) {
  const std::string what = "sync pod routes to other nodes";
  if (!node_ns_)
    return base::Fail(what + ": node network namespace unavailable: " + node_ns_error_);
  auto sock = NetlinkSocket::OpenIn(*node_ns_);
  if (!sock) return tl::unexpected(sock.error().Wrap(what));
  auto actual = Route::List(*sock, kRouteProtocol);
  if (!actual) return tl::unexpected(actual.error().Wrap(what));
  RoutePlan plan = PlanRouteSync(peers, *actual, own_pod_cidr);
  for (const auto& s : plan.skipped) base::log::Debug("pod route skipped", {{"reason", s}});
  Stats st;
  st.skipped = plan.skipped.size();
  for (const auto& r : plan.remove) {
    CUBELET_TRY_CTX(Route::Remove(*sock, r), what);
    ++st.removed;
  }
  for (const auto& r : plan.replace) {
    std::string node;
    for (const auto& p : peers) {
      if (p.pod_cidr == r.dst.ToString()) node = p.name;
    }
    CUBELET_TRY_CTX(Route::Replace(*sock, r), what + ": node " + node);
    ++st.replaced;
  }
  if (st.replaced || st.removed) {
    base::log::Info("pod routes synced", {{"replaced", st.replaced}, {"removed", st.removed}});
  }
  return st;
}

}  // namespace runtime::net
