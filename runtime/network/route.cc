#include "runtime/network/route.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/route/route.h>

#include <cstring>
#include <memory>

namespace runtime::net {
namespace {

struct RoutePut {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct NlAddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CachePut {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using NlAddrPtr = std::unique_ptr<nl_addr, NlAddrPut>;

NlAddrPtr ToNl(Ipv4 ip, int prefix) {
  uint32_t be = htonl(ip.value);
  NlAddrPtr a(nl_addr_build(AF_INET, &be, sizeof be));
  if (a) nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

std::optional<Ipv4> FromNl(nl_addr* a) {
  if (!a || nl_addr_get_family(a) != AF_INET || nl_addr_get_len(a) != 4) return std::nullopt;
  uint32_t be;
  memcpy(&be, nl_addr_get_binary_addr(a), 4);
  return Ipv4{ntohl(be)};
}

Result<std::unique_ptr<rtnl_route, RoutePut>> Build(const Route& r, bool with_nexthop) {
  std::unique_ptr<rtnl_route, RoutePut> route(rtnl_route_alloc());
  auto dst = ToNl(r.dst.network, r.dst.prefix);
  if (!route || !dst) return base::Fail("out of memory", ENOMEM);
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  rtnl_route_set_protocol(route.get(), static_cast<uint8_t>(r.protocol));
  // Deletion matches any scope (RT_SCOPE_NOWHERE is the kernel's wildcard there).
  rtnl_route_set_scope(route.get(), !with_nexthop ? RT_SCOPE_NOWHERE
                                    : r.gateway   ? RT_SCOPE_UNIVERSE
                                                  : RT_SCOPE_LINK);
  int err = rtnl_route_set_dst(route.get(), dst.get());
  if (err < 0) return NlFail(err, "set destination");
  if (with_nexthop && (r.gateway || r.oif)) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (!nh) return base::Fail("out of memory", ENOMEM);
    if (r.gateway) {
      auto gw = ToNl(*r.gateway, 32);
      if (!gw) {
        rtnl_route_nh_free(nh);
        return base::Fail("out of memory", ENOMEM);
      }
      rtnl_route_nh_set_gateway(nh, gw.get());  // takes its own reference
    }
    if (r.oif) rtnl_route_nh_set_ifindex(nh, r.oif);
    rtnl_route_add_nexthop(route.get(), nh);  // route owns nh now
  }
  return route;
}

}  // namespace

std::string Route::ToString() const {
  std::string s = dst.prefix == 0 ? "default" : dst.ToString();
  if (gateway) s += " via " + gateway->ToString();
  if (oif) s += " dev #" + std::to_string(oif);
  return s;
}

Result<> Route::Replace(NetlinkSocket& sock, const Route& r) {
  std::string what = "replace route " + r.ToString() + " in " + sock.where();
  auto route = Build(r, true);
  if (!route) return tl::unexpected(route.error().Wrap(what));
  int err = rtnl_route_add(sock.get(), route->get(), NLM_F_REPLACE);
  if (err < 0) return NlFail(err, what);
  return {};
}

Result<> Route::Remove(NetlinkSocket& sock, const Route& r) {
  std::string what = "remove route " + r.ToString() + " in " + sock.where();
  auto route = Build(r, false);
  if (!route) return tl::unexpected(route.error().Wrap(what));
  int err = rtnl_route_delete(sock.get(), route->get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV) return NlFail(err, what);
  return {};
}

Result<std::vector<Route>> Route::List(NetlinkSocket& sock, int protocol) {
  nl_cache* raw = nullptr;
  int err = rtnl_route_alloc_cache(sock.get(), AF_INET, 0, &raw);
  if (err < 0) return NlFail(err, "list routes in " + sock.where());
  std::unique_ptr<nl_cache, CachePut> cache(raw);
  std::vector<Route> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    if (rtnl_route_get_table(r) != RT_TABLE_MAIN || rtnl_route_get_type(r) != RTN_UNICAST) {
      continue;
    }
    if (protocol >= 0 && rtnl_route_get_protocol(r) != protocol) continue;
    nl_addr* dst_addr = rtnl_route_get_dst(r);
    // The default route has no RTA_DST; libnl gives an empty address for it.
    std::optional<Ipv4> dst =
        dst_addr && nl_addr_get_len(dst_addr) == 0 ? Ipv4{0} : FromNl(dst_addr);
    if (!dst) continue;
    Route out_r;
    out_r.dst = Ipv4Cidr{*dst, static_cast<int>(nl_addr_get_prefixlen(dst_addr))};
    out_r.protocol = rtnl_route_get_protocol(r);
    if (rtnl_route_get_nnexthops(r) > 0) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, 0);
      out_r.gateway = FromNl(rtnl_route_nh_get_gateway(nh));
      out_r.oif = rtnl_route_nh_get_ifindex(nh);
    }
    out.push_back(out_r);
  }
  return out;
}

}  // namespace runtime::net
