#pragma once
// IPv4 interface addresses. They live and die with their link, so there is no owning object:
// Ensure/Remove act on the kernel, List reads it.
#include <vector>

#include "base/result.h"
#include "runtime/network/cidr.h"
#include "runtime/network/link.h"

namespace runtime::net {

struct Address {
  Ipv4 ip;
  int prefix = 32;
  std::string ToString() const { return ip.ToString() + "/" + std::to_string(prefix); }
  bool operator==(const Address&) const = default;

  // IPv4 addresses of link.
  static Result<std::vector<Address>> List(NetlinkSocket& sock, const Link& link);
  // Adds addr to link (already there is fine); with exclusive, removes every other IPv4 address
  // of the link, so a repaired interface ends up with exactly the address IPAM gave it.
  static Result<> Ensure(NetlinkSocket& sock, const Link& link, const Address& addr,
                         bool exclusive);
  // Already gone is not an error.
  static Result<> Remove(NetlinkSocket& sock, const Link& link, const Address& addr);
};

}  // namespace runtime::net
