#include "runtime/network/link.h"

#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <sys/socket.h>

#include <utility>

#include "base/log.h"

namespace runtime::net {
namespace {

struct LinkPut {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using LinkPtr = std::unique_ptr<rtnl_link, LinkPut>;

struct AddrPut {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using AddrPtr = std::unique_ptr<nl_addr, AddrPut>;

Result<AddrPtr> ParseMac(const std::string& mac) {
  nl_addr* a = nullptr;
  int err = nl_addr_parse(mac.c_str(), AF_LLC, &a);
  if (err < 0) return NlFail(err, "parse MAC address \"" + mac + "\"");
  return AddrPtr(a);
}

bool NotFound(int nl_err) { return nl_err == -NLE_OBJ_NOTFOUND || nl_err == -NLE_NODEV; }

}  // namespace

// ---- Link ----

Result<std::optional<Link>> Link::Find(NetlinkSocket& sock, const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    return base::Fail("invalid link name \"" + name + "\"", EINVAL);
  }
  rtnl_link* l = nullptr;
  int err = rtnl_link_get_kernel(sock.get(), 0, name.c_str(), &l);
  if (NotFound(err)) return std::optional<Link>();
  if (err < 0) return NlFail(err, "get link " + name + " in " + sock.where());
  return std::optional<Link>(Link(sock, l));
}

Result<std::optional<Link>> Link::FindByIndex(NetlinkSocket& sock, int ifindex) {
  rtnl_link* l = nullptr;
  int err = rtnl_link_get_kernel(sock.get(), ifindex, nullptr, &l);
  if (NotFound(err)) return std::optional<Link>();
  if (err < 0) {
    return NlFail(err, "get link #" + std::to_string(ifindex) + " in " + sock.where());
  }
  return std::optional<Link>(Link(sock, l));
}

Result<Link> Link::Get(NetlinkSocket& sock, const std::string& name) {
  auto l = Find(sock, name);
  if (!l) return tl::unexpected(l.error());
  if (!*l) return base::Fail("link " + name + " not found in " + sock.where(), ENODEV);
  return std::move(**l);
}

Result<std::vector<Link>> Link::List(NetlinkSocket& sock) {
  nl_cache* raw = nullptr;
  int err = rtnl_link_alloc_cache(sock.get(), AF_UNSPEC, &raw);
  if (err < 0) return NlFail(err, "list links in " + sock.where());
  std::vector<Link> out;
  for (nl_object* o = nl_cache_get_first(raw); o; o = nl_cache_get_next(o)) {
    nl_object_get(o);  // the Link keeps it past the cache
    out.push_back(Link(sock, reinterpret_cast<rtnl_link*>(o)));
  }
  nl_cache_free(raw);
  return out;
}

Link::Link(Link&& o) noexcept : sock_(o.sock_), link_(std::exchange(o.link_, nullptr)) {}

Link& Link::operator=(Link&& o) noexcept {
  if (this != &o) {
    if (link_) rtnl_link_put(link_);
    sock_ = o.sock_;
    link_ = std::exchange(o.link_, nullptr);
  }
  return *this;
}

Link::~Link() {
  if (link_) rtnl_link_put(link_);
}

int Link::index() const { return link_ ? rtnl_link_get_ifindex(link_) : 0; }
std::string Link::name() const {
  const char* n = link_ ? rtnl_link_get_name(link_) : nullptr;
  return n ? n : "";
}
std::string Link::kind() const {
  const char* t = link_ ? rtnl_link_get_type(link_) : nullptr;
  return t ? t : "";
}
bool Link::is_up() const { return link_ && (rtnl_link_get_flags(link_) & IFF_UP); }
int Link::master() const { return link_ ? rtnl_link_get_master(link_) : 0; }
unsigned Link::mtu() const { return link_ ? rtnl_link_get_mtu(link_) : 0; }
int Link::peer_index() const { return link_ ? rtnl_link_get_link(link_) : 0; }
std::string Link::alias() const {
  const char* a = link_ ? rtnl_link_get_ifalias(link_) : nullptr;
  return a ? a : "";
}
std::string Link::mac() const {
  nl_addr* a = link_ ? rtnl_link_get_addr(link_) : nullptr;
  if (!a) return "";
  char buf[64];
  return nl_addr2str(a, buf, sizeof buf);
}

std::string Link::Describe() const { return "link " + name() + " in " + sock_->where(); }

Result<> Link::Change(rtnl_link* changes, std::string_view what) {
  int err = rtnl_link_change(sock_->get(), link_, changes, 0);
  if (err < 0) return NlFail(err, std::string(what) + " of " + Describe());
  return Refresh();
}

Result<> Link::Refresh() {
  rtnl_link* l = nullptr;
  int err = rtnl_link_get_kernel(sock_->get(), index(), nullptr, &l);
  if (err < 0) return NlFail(err, "get " + Describe());
  rtnl_link_put(link_);
  link_ = l;
  return {};
}

Result<> Link::SetUp() {
  if (is_up()) return {};
  LinkPtr c(rtnl_link_alloc());
  rtnl_link_set_flags(c.get(), IFF_UP);
  return Change(c.get(), "set up");
}

Result<> Link::SetMtu(unsigned mtu) {
  if (this->mtu() == mtu) return {};
  LinkPtr c(rtnl_link_alloc());
  rtnl_link_set_mtu(c.get(), mtu);
  return Change(c.get(), "set MTU " + std::to_string(mtu));
}

Result<> Link::SetMac(const std::string& mac) {
  auto want = ParseMac(mac);
  if (!want) return tl::unexpected(want.error());
  nl_addr* have = rtnl_link_get_addr(link_);
  if (have && nl_addr_cmp(have, want->get()) == 0) return {};
  LinkPtr c(rtnl_link_alloc());
  rtnl_link_set_addr(c.get(), want->get());
  return Change(c.get(), "set MAC " + mac);
}

Result<> Link::SetMaster(int master_ifindex) {
  if (master() == master_ifindex) return {};
  LinkPtr c(rtnl_link_alloc());
  rtnl_link_set_master(c.get(), master_ifindex);
  return Change(c.get(), "attach to #" + std::to_string(master_ifindex));
}

Result<> Link::SetHairpin(bool on) {
  // RTM_SETLINK for AF_BRIDGE with IFLA_PROTINFO{IFLA_BRPORT_MODE}: what `bridge link set dev X
  // hairpin on` sends. Built by hand because libnl's bridge af-ops differ between versions.
  nl_msg* msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK);
  if (!msg) return base::Fail("set hairpin of " + Describe() + ": out of memory", ENOMEM);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_BRIDGE;
  ifi.ifi_index = index();
  int err = nlmsg_append(msg, &ifi, sizeof ifi, NLMSG_ALIGNTO);
  nlattr* pi = err < 0 ? nullptr : nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED);
  if (!pi || nla_put_u8(msg, IFLA_BRPORT_MODE, on ? 1 : 0) < 0) {
    nlmsg_free(msg);
    return base::Fail("set hairpin of " + Describe() + ": message too large", ENOMEM);
  }
  nla_nest_end(msg, pi);
  err = nl_send_sync(sock_->get(), msg);  // frees msg
  if (err < 0)
    return NlFail(err, std::string("set hairpin ") + (on ? "on" : "off") + " on " + Describe());
  return {};
}

Result<> Link::SetAlias(const std::string& alias) {
  if (this->alias() == alias) return {};
  LinkPtr c(rtnl_link_alloc());
  rtnl_link_set_ifalias(c.get(), alias.c_str());
  return Change(c.get(), "set alias \"" + alias + "\"");
}

Result<> Link::Delete() {
  if (!link_) return {};
  LinkPtr d(rtnl_link_alloc());
  rtnl_link_set_ifindex(d.get(), index());
  int err = rtnl_link_delete(sock_->get(), d.get());
  if (err < 0 && !NotFound(err)) return NlFail(err, "delete " + Describe());
  return {};
}

// ---- Bridge ----

Result<std::optional<Bridge>> Bridge::Find(NetlinkSocket& sock, const std::string& name) {
  auto l = Link::Find(sock, name);
  if (!l) return tl::unexpected(l.error());
  if (!*l) return std::optional<Bridge>();
  if ((*l)->kind() != "bridge") {
    return base::Fail("link " + name + " in " + sock.where() + " is a " +
                          ((*l)->kind().empty() ? "device" : (*l)->kind()) + ", not a bridge",
                      EEXIST);
  }
  return std::optional<Bridge>(Bridge(std::move(**l)));
}

Result<Bridge> Bridge::Ensure(NetlinkSocket& sock, const Spec& spec) {
  auto found = Find(sock, spec.name);
  if (!found) return tl::unexpected(found.error());
  if (!*found) {
    LinkPtr l(rtnl_link_alloc());
    int err = rtnl_link_set_type(l.get(), "bridge");
    if (err < 0) return NlFail(err, "create bridge " + spec.name);
    rtnl_link_set_name(l.get(), spec.name.c_str());
    rtnl_link_set_mtu(l.get(), spec.mtu);
    AddrPtr mac;
    if (!spec.mac.empty()) {
      auto m = ParseMac(spec.mac);
      if (!m) return tl::unexpected(m.error().Wrap("create bridge " + spec.name));
      mac = std::move(*m);
      rtnl_link_set_addr(l.get(), mac.get());
    }
    err = rtnl_link_add(sock.get(), l.get(), NLM_F_CREATE | NLM_F_EXCL);
    // EEXIST: another thread/process won the race; use theirs.
    if (err < 0 && err != -NLE_EXIST) {
      return NlFail(err, "create bridge " + spec.name + " in " + sock.where());
    }
    base::log::Info("created bridge", {{"bridge", spec.name}, {"netns", sock.where()}});
    found = Find(sock, spec.name);
    if (!found) return tl::unexpected(found.error());
    if (!*found) return base::Fail("bridge " + spec.name + " vanished after creation", ENODEV);
  }
  Bridge br = std::move(**found);
  CUBELET_TRY(br.link_.SetMtu(spec.mtu));
  if (!spec.mac.empty()) CUBELET_TRY(br.link_.SetMac(spec.mac));
  CUBELET_TRY(br.link_.SetUp());
  return br;
}

Result<> Bridge::AddPort(Link& port, bool hairpin) {
  CUBELET_TRY(port.SetMaster(index()));
  CUBELET_TRY(port.SetHairpin(hairpin));
  return {};
}

// ---- VethPair ----

Result<VethPair> VethPair::Create(NetlinkSocket& sock, const Spec& spec) {
  std::string what = "create veth pair " + spec.host_name + " (" + sock.where() + ") / " +
                     spec.peer_name + " (netns " + spec.peer_ns->path() + ")";
  if (spec.host_name.empty() || spec.host_name.size() >= IFNAMSIZ || spec.peer_name.empty() ||
      spec.peer_name.size() >= IFNAMSIZ) {
    return base::Fail(what + ": invalid interface name", EINVAL);
  }
  LinkPtr host(rtnl_link_veth_alloc());
  if (!host) return base::Fail(what + ": out of memory", ENOMEM);
  LinkPtr peer(rtnl_link_veth_get_peer(host.get()));  // takes a reference
  rtnl_link_set_name(host.get(), spec.host_name.c_str());
  rtnl_link_set_mtu(host.get(), spec.mtu);
  rtnl_link_set_name(peer.get(), spec.peer_name.c_str());
  rtnl_link_set_mtu(peer.get(), spec.mtu);
  rtnl_link_set_ns_fd(peer.get(), spec.peer_ns->fd());
  AddrPtr mac;
  if (!spec.peer_mac.empty()) {
    auto m = ParseMac(spec.peer_mac);
    if (!m) return tl::unexpected(m.error().Wrap(what));
    mac = std::move(*m);
    rtnl_link_set_addr(peer.get(), mac.get());
  }
  int err = rtnl_link_add(sock.get(), host.get(), NLM_F_CREATE | NLM_F_EXCL);
  if (err < 0) return NlFail(err, what);
  auto l = Link::Get(sock, spec.host_name);
  if (!l) return tl::unexpected(l.error().Wrap(what));
  return VethPair(std::move(*l));
}

VethPair::~VethPair() {
  if (keep_) return;
  if (auto r = host_.Delete(); !r) {
    base::log::Warn("cannot roll back veth pair",
                    {{"veth", host_.name()}, {"err", r.error().message}});
  }
}

}  // namespace runtime::net
