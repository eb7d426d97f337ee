#pragma once
// IPv4 addresses and prefixes as plain values (host byte order), so IPAM and rule rendering stay
// pure and testable without the kernel.
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace runtime::net {

using base::Result;

struct Ipv4 {
  uint32_t value = 0;  // host byte order

  static Result<Ipv4> Parse(std::string_view text);
  std::string ToString() const;
  // Locally administered MAC 0a:58:a.b.c.d, the convention of the CNI bridge plugin: stable per
  // IP, so neighbours' ARP caches stay right when an address is reused.
  std::string Mac() const;
  auto operator<=>(const Ipv4&) const = default;
};

struct Ipv4Cidr {
  Ipv4 network;    // address with host bits cleared
  int prefix = 0;  // 0..32

  // "10.244.1.0/24"; host bits must be zero unless allow_host_bits ("10.244.1.1/24").
  static Result<Ipv4Cidr> Parse(std::string_view text, bool allow_host_bits = false);
  std::string ToString() const;
  uint32_t Mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  Ipv4 Broadcast() const { return Ipv4{network.value | ~Mask()}; }
  // First usable address: the node's bridge (gateway) address.
  Ipv4 Gateway() const { return Ipv4{network.value + 1}; }
  bool Contains(Ipv4 ip) const { return (ip.value & Mask()) == network.value; }
  // Addresses a pod may get: all but network, gateway and broadcast.
  Ipv4 FirstPodIp() const { return Ipv4{network.value + 2}; }
  Ipv4 LastPodIp() const { return Ipv4{Broadcast().value - 1}; }
  uint64_t PodIpCount() const;
  // "10.244.1.0_24": the CIDR as a file name.
  std::string FileName() const;
  auto operator<=>(const Ipv4Cidr&) const = default;
};

}  // namespace runtime::net
