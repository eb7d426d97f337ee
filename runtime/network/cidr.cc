#include "runtime/network/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdio>

namespace runtime::net {

Result<Ipv4> Ipv4::Parse(std::string_view text) {
  std::string s(text);
  in_addr a{};
  if (s.empty() || inet_pton(AF_INET, s.c_str(), &a) != 1) {
    return base::Fail("invalid IPv4 address \"" + s + "\"");
  }
  return Ipv4{ntohl(a.s_addr)};
}

std::string Ipv4::ToString() const {
  char buf[INET_ADDRSTRLEN];
  in_addr a{htonl(value)};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string Ipv4::Mac() const {
  char buf[18];
  snprintf(buf, sizeof buf, "0a:58:%02x:%02x:%02x:%02x", (value >> 24) & 0xff, (value >> 16) & 0xff,
           (value >> 8) & 0xff, value & 0xff);
  return buf;
}

Result<Ipv4Cidr> Ipv4Cidr::Parse(std::string_view text, bool allow_host_bits) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) {
    return base::Fail("invalid IPv4 CIDR \"" + std::string(text) + "\": missing /prefix");
  }
  auto ip = Ipv4::Parse(text.substr(0, slash));
  if (!ip)
    return tl::unexpected(ip.error().Wrap("invalid IPv4 CIDR \"" + std::string(text) + "\""));
  std::string_view p = text.substr(slash + 1);
  int prefix = -1;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
  if (ec != std::errc() || end != p.data() + p.size() || prefix < 0 || prefix > 32) {
    return base::Fail("invalid IPv4 CIDR \"" + std::string(text) + "\": bad prefix length");
  }
  Ipv4Cidr c{*ip, prefix};
  c.network.value &= c.Mask();
  if (!allow_host_bits && c.network != *ip) {
    return base::Fail("invalid IPv4 CIDR \"" + std::string(text) +
                      "\": host bits set (network is " + c.ToString() + ")");
  }
  return c;
}

std::string Ipv4Cidr::ToString() const { return network.ToString() + "/" + std::to_string(prefix); }

uint64_t Ipv4Cidr::PodIpCount() const {
  if (prefix > 30) return 0;
  return (uint64_t{1} << (32 - prefix)) - 3;
}

std::string Ipv4Cidr::FileName() const { return network.ToString() + "_" + std::to_string(prefix); }

}  // namespace runtime::net
