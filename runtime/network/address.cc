#include "runtime/network/address.h"

#include <arpa/inet.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/route/addr.h>

#include <cstring>
#include <memory>

namespace runtime::net {
namespace {

struct RtAddrPut {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct NlAddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct CachePut {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};

std::unique_ptr<nl_addr, NlAddrPut> ToNl(Ipv4 ip, int prefix) {
  uint32_t be = htonl(ip.value);
  std::unique_ptr<nl_addr, NlAddrPut> a(nl_addr_build(AF_INET, &be, sizeof be));
  if (a) nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

Result<std::unique_ptr<rtnl_addr, RtAddrPut>> Build(const Link& link, const Address& addr) {
  std::unique_ptr<rtnl_addr, RtAddrPut> a(rtnl_addr_alloc());
  auto local = ToNl(addr.ip, addr.prefix);
  if (!a || !local) return base::Fail("out of memory", ENOMEM);
  rtnl_addr_set_ifindex(a.get(), link.index());
  rtnl_addr_set_family(a.get(), AF_INET);
  int err = rtnl_addr_set_local(a.get(), local.get());
  if (err < 0) return NlFail(err, "set local address");
  rtnl_addr_set_prefixlen(a.get(), addr.prefix);
  return a;
}

}  // namespace

Result<std::vector<Address>> Address::List(NetlinkSocket& sock, const Link& link) {
  nl_cache* raw = nullptr;
  int err = rtnl_addr_alloc_cache(sock.get(), &raw);
  if (err < 0) return NlFail(err, "list addresses in " + sock.where());
  std::unique_ptr<nl_cache, CachePut> cache(raw);
  std::vector<Address> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    auto* a = reinterpret_cast<rtnl_addr*>(o);
    if (rtnl_addr_get_ifindex(a) != link.index() || rtnl_addr_get_family(a) != AF_INET) continue;
    nl_addr* local = rtnl_addr_get_local(a);
    if (!local || nl_addr_get_len(local) != 4) continue;
    uint32_t be;
    memcpy(&be, nl_addr_get_binary_addr(local), 4);
    out.push_back({Ipv4{ntohl(be)}, static_cast<int>(rtnl_addr_get_prefixlen(a))});
  }
  return out;
}

Result<> Address::Ensure(NetlinkSocket& sock, const Link& link, const Address& addr,
                         bool exclusive) {
  std::string what =
      "add address " + addr.ToString() + " to link " + link.name() + " in " + sock.where();
  auto have = List(sock, link);
  if (!have) return tl::unexpected(have.error().Wrap(what));
  bool present = false;
  for (const auto& h : *have) {
    if (h == addr) {
      present = true;
    } else if (exclusive) {
      CUBELET_TRY_CTX(Remove(sock, link, h), what);
    }
  }
  if (present) return {};
  auto a = Build(link, addr);
  if (!a) return tl::unexpected(a.error().Wrap(what));
  int err = rtnl_addr_add(sock.get(), a->get(), 0);
  if (err < 0 && err != -NLE_EXIST) return NlFail(err, what);
  return {};
}

Result<> Address::Remove(NetlinkSocket& sock, const Link& link, const Address& addr) {
  std::string what =
      "remove address " + addr.ToString() + " from link " + link.name() + " in " + sock.where();
  auto a = Build(link, addr);
  if (!a) return tl::unexpected(a.error().Wrap(what));
  int err = rtnl_addr_delete(sock.get(), a->get(), 0);
  if (err < 0 && err != -NLE_NOADDR && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV) {
    return NlFail(err, what);
  }
  return {};
}

}  // namespace runtime::net
