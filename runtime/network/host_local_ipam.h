#pragma once
// Host-local IPAM in the spirit of the CNI host-local plugin: pod addresses come from the node's
// pod CIDR and are persisted as one file per allocated IP, so they survive a cubelet restart and
// a crash in the middle of Setup.
//
//   <dir>/lock                           flock, shared by every range
//   <dir>/10.244.1.0_24/10.244.1.7       content: "<sandbox id>\n"
//   <dir>/10.244.1.0_24/last_reserved    content: "10.244.1.7\n" (next search starts after it,
//                                        so an address just released is not handed out again at
//                                        once)
//
// Files are written to a temp name and hard-linked into place: a reader never sees a partial file
// and link() fails if the address was taken. There is no fsync: the state has to survive a crash of
// cubelet, not of the machine (after a reboot no pod survives, and GarbageCollect frees them all).
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/network/cidr.h"

namespace runtime::net {

struct IpAllocation {
  Ipv4Cidr range;
  Ipv4 ip;
  std::string sandbox_id;
};

class HostLocalIpam {
 public:
  explicit HostLocalIpam(std::string dir);

  struct Allocated {
    Ipv4 ip;
    bool existing = false;  // the sandbox already held this address (re-Setup after a crash)
  };
  // The address held by sandbox_id in range, or a new one: the first free address after
  // last_reserved, wrapping around. Skips the network, gateway (.1) and broadcast addresses.
  Result<Allocated> Allocate(const Ipv4Cidr& range, const std::string& sandbox_id);
  Result<std::optional<Ipv4>> Lookup(const Ipv4Cidr& range, const std::string& sandbox_id);
  // Frees every address sandbox_id holds, in every range (the pod CIDR may not be known yet after a
  // restart). Returns what was freed; freeing nothing is not an error.
  Result<std::vector<IpAllocation>> Release(const std::string& sandbox_id);
  Result<std::vector<IpAllocation>> List();
  // Frees the addresses of sandboxes not in live_sandbox_ids; returns them.
  Result<std::vector<IpAllocation>> GarbageCollect(const std::set<std::string>& live_sandbox_ids);

  const std::string& dir() const { return dir_; }

 private:
  std::string RangeDir(const Ipv4Cidr& range) const;
  Result<std::vector<IpAllocation>> ListRange(const Ipv4Cidr& range) const;
  Result<std::vector<IpAllocation>> ListAll() const;
  Result<> Free(const IpAllocation& a) const;

  std::string dir_;
  std::mutex mu_;  // flock() serializes processes; this serializes the threads of one process
};

}  // namespace runtime::net
