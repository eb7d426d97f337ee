#pragma once
// Chain names exactly as kube-proxy computes them (pkg/proxy/iptables/proxier.go), so that
// operators' tooling and habits (`iptables-save | grep KUBE-SVC-...`) keep working:
//   hash = base32.StdEncoding(sha256(servicePortName + protocol))[:16]
//   endpoint hash = base32(sha256(servicePortName + protocol + "ip:port"))[:16]
// with servicePortName "ns/svc" or "ns/svc:port" and protocol lowercase.
#include <string>
#include <string_view>

namespace netproxy {

inline constexpr std::string_view kServiceChainPrefix = "KUBE-SVC-";
inline constexpr std::string_view kLocalChainPrefix = "KUBE-SVL-";
inline constexpr std::string_view kFirewallChainPrefix = "KUBE-FW-";
inline constexpr std::string_view kExternalChainPrefix = "KUBE-EXT-";
inline constexpr std::string_view kEndpointChainPrefix = "KUBE-SEP-";

std::string PortProtoHash(std::string_view service_port_name, std::string_view protocol);
std::string ServiceChainName(std::string_view service_port_name, std::string_view protocol);
std::string LocalChainName(std::string_view service_port_name, std::string_view protocol);
std::string FirewallChainName(std::string_view service_port_name, std::string_view protocol);
std::string ExternalChainName(std::string_view service_port_name, std::string_view protocol);
std::string EndpointChainName(std::string_view service_port_name, std::string_view protocol,
                              std::string_view endpoint);
// True for the per-service chains (SVC, SVL, FW, EXT, SEP) that stale-chain cleanup may delete.
bool IsServiceChainName(std::string_view chain);

}  // namespace netproxy
