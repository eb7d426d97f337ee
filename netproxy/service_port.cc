#include "netproxy/service_port.h"

#include <arpa/inet.h>

#include <algorithm>
#include <mutex>
#include <set>

namespace netproxy {

std::string_view ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kTCP:
      return "TCP";
    case Protocol::kUDP:
      return "UDP";
    case Protocol::kSCTP:
      return "SCTP";
  }
  return "TCP";
}

std::string_view ProtocolLower(Protocol p) {
  switch (p) {
    case Protocol::kTCP:
      return "tcp";
    case Protocol::kUDP:
      return "udp";
    case Protocol::kSCTP:
      return "sctp";
  }
  return "tcp";
}

std::optional<Protocol> ParseProtocol(std::string_view s) {
  if (s == "TCP") return Protocol::kTCP;
  if (s == "UDP") return Protocol::kUDP;
  if (s == "SCTP") return Protocol::kSCTP;
  return std::nullopt;
}

std::optional<ServiceType> ParseServiceType(std::string_view s) {
  if (s == "ClusterIP" || s.empty()) return ServiceType::kClusterIP;
  if (s == "NodePort") return ServiceType::kNodePort;
  if (s == "LoadBalancer") return ServiceType::kLoadBalancer;
  if (s == "ExternalName") return ServiceType::kExternalName;
  return std::nullopt;
}

const ZoneHints* InternZoneHints(const std::vector<std::string>& hints) {
  if (hints.empty()) return nullptr;
  static std::mutex mu;
  static std::set<ZoneHints>* pool = new std::set<ZoneHints>;  // never freed: shared for good
  std::lock_guard lock(mu);
  return &*pool->insert(hints).first;
}

std::optional<uint32_t> ParseIPv4(std::string_view ip) {
  char buf[INET_ADDRSTRLEN];
  if (ip.size() >= sizeof buf) return std::nullopt;
  std::copy(ip.begin(), ip.end(), buf);
  buf[ip.size()] = 0;
  in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

namespace {

char* PutDecimal(char* p, unsigned v) {
  char tmp[10];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}

char* PutIPv4(char* p, uint32_t ip) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    p = PutDecimal(p, (ip >> shift) & 255);
    if (shift) *p++ = '.';
  }
  return p;
}

}  // namespace

std::string FormatIPv4(uint32_t ip) {
  char buf[kMaxAddressText];
  return std::string(buf, PutIPv4(buf, ip));
}

size_t FormatAddress(uint32_t ip, uint16_t port, char* out) {
  char* p = PutIPv4(out, ip);
  *p++ = ':';
  p = PutDecimal(p, port);
  *p = 0;
  return static_cast<size_t>(p - out);
}

std::string EndpointInfo::Address() const {
  char buf[kMaxAddressText];
  return std::string(buf, FormatAddress(ipv4, port, buf));
}

bool EndpointInfo::HasZoneHint(const std::string& zone) const {
  return zone_hints && std::find(zone_hints->begin(), zone_hints->end(), zone) != zone_hints->end();
}

bool IsIPv4(std::string_view ip) {
  std::string s(ip);
  in_addr a;
  return inet_pton(AF_INET, s.c_str(), &a) == 1;
}

bool IsIPv6(std::string_view ip) {
  std::string s(ip);
  in6_addr a;
  return inet_pton(AF_INET6, s.c_str(), &a) == 1;
}

bool CidrContainsIPv4(std::string_view cidr, std::string_view ip) {
  size_t slash = cidr.find('/');
  std::string net(cidr.substr(0, slash));
  int bits = 32;
  if (slash != std::string_view::npos) {
    std::string b(cidr.substr(slash + 1));
    if (b.empty() || b.size() > 2 || b.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    bits = std::stoi(b);
    if (bits > 32) return false;
  }
  std::string addr(ip);
  in_addr n, a;
  if (inet_pton(AF_INET, net.c_str(), &n) != 1 || inet_pton(AF_INET, addr.c_str(), &a) != 1) {
    return false;
  }
  uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return (ntohl(n.s_addr) & mask) == (ntohl(a.s_addr) & mask);
}

bool ShouldSkipService(const Service& svc) {
  if (svc.type == ServiceType::kExternalName) return true;
  return svc.cluster_ip.empty() || svc.cluster_ip == "None";
}

std::string IPv4ClusterIP(const Service& svc) {
  if (IsIPv4(svc.cluster_ip)) return svc.cluster_ip;
  for (const auto& ip : svc.cluster_ips) {
    if (IsIPv4(ip)) return ip;
  }
  return {};
}

namespace {

std::vector<std::string> OnlyIPv4(const std::vector<std::string>& ips) {
  std::vector<std::string> out;
  for (const auto& ip : ips) {
    if (IsIPv4(ip)) out.push_back(ip);
  }
  return out;
}

// CIDRs of the IPv4 family ("10.0.0.0/8"): the part before '/' must be an IPv4 address.
std::vector<std::string> OnlyIPv4Cidrs(const std::vector<std::string>& cidrs) {
  std::vector<std::string> out;
  for (const auto& c : cidrs) {
    if (IsIPv4(c.substr(0, c.find('/')))) out.push_back(c);
  }
  return out;
}

}  // namespace

ServicePortMap ServicePortsOf(const Service& svc) {
  ServicePortMap out;
  if (ShouldSkipService(svc)) return out;
  std::string cluster_ip = IPv4ClusterIP(svc);
  // An IPv6-only service has nothing for this (IPv4) proxier.
  if (cluster_ip.empty()) return out;
  for (const auto& spec : svc.ports) {
    ServicePort sp;
    sp.name = ServicePortName{ServiceName{svc.ns, svc.name}, spec.name, spec.protocol};
    sp.name_string = sp.name.String();
    sp.type = svc.type;
    sp.cluster_ip = cluster_ip;
    sp.port = spec.port;
    sp.node_port = spec.node_port;
    sp.target_port = spec.target_port;
    sp.external_ips = OnlyIPv4(svc.external_ips);
    sp.load_balancer_ips = OnlyIPv4(svc.load_balancer_ips);
    sp.load_balancer_source_ranges = OnlyIPv4Cidrs(svc.load_balancer_source_ranges);
    sp.session_affinity = svc.session_affinity;
    if (svc.session_affinity == SessionAffinity::kClientIP) {
      sp.sticky_max_age_seconds =
          svc.session_affinity_timeout_seconds > 0 ? svc.session_affinity_timeout_seconds : 10800;
    }
    sp.external_traffic_policy = svc.external_traffic_policy;
    sp.internal_traffic_policy = svc.internal_traffic_policy;
    // apiservice.NeedsHealthCheck: LoadBalancer with externalTrafficPolicy Local.
    if (svc.type == ServiceType::kLoadBalancer && sp.ExternalPolicyLocal()) {
      sp.health_check_node_port = svc.health_check_node_port;
    }
    out.emplace(sp.name, std::move(sp));
  }
  return out;
}

}  // namespace netproxy
