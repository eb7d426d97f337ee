#pragma once
// Network links (rtnl_link) as objects: Link (any link, looked up by name or index), Bridge (the
// node bridge, long-lived: never deleted implicitly) and VethPair (deleted on destruction unless
// kept, so a Setup that fails half-way leaves nothing behind).
//
// A Link refers to its NetlinkSocket, which must outlive it; every request goes to that socket's
// namespace.
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/network/netlink_socket.h"

struct rtnl_link;

namespace runtime::net {

class Link {
 public:
  // nullopt when no link has that name/index in the socket's namespace.
  static Result<std::optional<Link>> Find(NetlinkSocket& sock, const std::string& name);
  static Result<std::optional<Link>> FindByIndex(NetlinkSocket& sock, int ifindex);
  // Like Find, but a missing link is an error.
  static Result<Link> Get(NetlinkSocket& sock, const std::string& name);
  // Every link of the socket's namespace (one dump).
  static Result<std::vector<Link>> List(NetlinkSocket& sock);

  Link(Link&& o) noexcept;
  Link& operator=(Link&& o) noexcept;
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;
  ~Link();

  int index() const;
  std::string name() const;
  std::string kind() const;  // "veth", "bridge", "" for lo/physical
  bool is_up() const;        // administratively up (IFF_UP)
  int master() const;        // ifindex of the bridge it is attached to, 0 if none
  unsigned mtu() const;
  std::string mac() const;    // "0a:58:0a:f4:07:02"
  int peer_index() const;     // veth: IFLA_LINK, the peer's ifindex (in the peer's namespace)
  std::string alias() const;  // IFLA_IFALIAS; cubelet stores the owning sandbox id there

  Result<> SetUp();
  Result<> SetMtu(unsigned mtu);
  Result<> SetMac(const std::string& mac);
  Result<> SetMaster(int master_ifindex);
  Result<> SetAlias(const std::string& alias);
  // Bridge port flag: lets a frame go back out of the port it came in on, so a pod reaching a
  // service that lands on itself gets its reply (kube-proxy's hairpin case).
  Result<> SetHairpin(bool on);
  // Re-reads the link from the kernel.
  Result<> Refresh();
  // Deletes the link; already gone is not an error. The object stays usable for name() etc.
  Result<> Delete();

 private:
  Link(NetlinkSocket& sock, rtnl_link* link) : sock_(&sock), link_(link) {}
  Result<> Change(rtnl_link* changes, std::string_view what);
  std::string Describe() const;  // "link veth1234abcd in netns X"

  NetlinkSocket* sock_;
  rtnl_link* link_;  // one reference, released on destruction
};

class Bridge {
 public:
  struct Spec {
    std::string name;
    unsigned mtu = 1500;
    std::string mac;  // empty: kernel's choice (it then follows its ports' addresses)
  };
  // Returns the bridge with that name, creating it if missing, up, with spec's MTU and MAC.
  // A non-bridge link with that name is an error.
  static Result<Bridge> Ensure(NetlinkSocket& sock, const Spec& spec);
  static Result<std::optional<Bridge>> Find(NetlinkSocket& sock, const std::string& name);

  const Link& link() const { return link_; }
  Link& link() { return link_; }
  int index() const { return link_.index(); }
  // Attaches port (same namespace) and sets hairpin mode on it; idempotent.
  Result<> AddPort(Link& port, bool hairpin);
  Result<> Delete() { return link_.Delete(); }

 private:
  explicit Bridge(Link link) : link_(std::move(link)) {}
  Link link_;
};

class VethPair {
 public:
  struct Spec {
    std::string host_name;        // in the socket's namespace, e.g. "veth1234abcd"
    std::string peer_name;        // created directly in the peer namespace, e.g. "eth0"
    const NetNamespace* peer_ns;  // where the peer end goes (by fd)
    unsigned mtu = 1500;
    std::string peer_mac;  // empty: random
  };
  // Creates both ends in one request: the peer is made inside peer_ns (IFLA_NET_NS_FD), so its
  // name can never clash with a link of the node.
  static Result<VethPair> Create(NetlinkSocket& host_sock, const Spec& spec);

  VethPair(VethPair&& o) noexcept : host_(std::move(o.host_)), keep_(o.keep_) { o.keep_ = true; }
  VethPair& operator=(VethPair&&) = delete;
  ~VethPair();

  Link& host() { return host_; }
  // Keeps the pair past the object's lifetime (Setup succeeded).
  void Keep() { keep_ = true; }

 private:
  explicit VethPair(Link host) : host_(std::move(host)) {}
  Link host_;
  bool keep_ = false;
};

}  // namespace runtime::net
