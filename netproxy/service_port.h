#pragma once
// The per-port view of a Service that the proxy programs (kube-proxy's ServicePortInfo) and the
// per-endpoint view of EndpointSlices (kube-proxy's BaseEndpointInfo).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netproxy/model.h"

namespace netproxy {

// One port of one non-skipped Service, flattened for one IP family (IPv4).
struct ServicePort {
  ServicePortName name;     // ns, service, port name, protocol
  std::string name_string;  // name.String(), cached: hashed into chain names
  ServiceType type = ServiceType::kClusterIP;
  std::string cluster_ip;
  int32_t port = 0;
  int32_t node_port = 0;
  TargetPort target_port;
  std::vector<std::string> external_ips;
  std::vector<std::string> load_balancer_ips;
  std::vector<std::string> load_balancer_source_ranges;
  SessionAffinity session_affinity = SessionAffinity::kNone;
  int32_t sticky_max_age_seconds = 0;  // only with ClientIP affinity
  TrafficPolicy external_traffic_policy = TrafficPolicy::kCluster;
  TrafficPolicy internal_traffic_policy = TrafficPolicy::kCluster;
  int32_t health_check_node_port = 0;  // only when NeedsHealthCheck (LoadBalancer + ETP Local)

  bool operator==(const ServicePort&) const = default;

  // NodePort, load-balancer IPs or external IPs: reachable from outside the cluster.
  bool ExternallyAccessible() const {
    return node_port != 0 || !load_balancer_ips.empty() || !external_ips.empty();
  }
  // externalTrafficPolicy Local applies to services the API calls externally accessible:
  // NodePort, LoadBalancer, and ClusterIP with externalIPs (k8s pkg/api/v1/service).
  bool ExternalPolicyLocal() const {
    bool accessible = type == ServiceType::kNodePort || type == ServiceType::kLoadBalancer ||
                      (type == ServiceType::kClusterIP && !external_ips.empty());
    return accessible && external_traffic_policy == TrafficPolicy::kLocal;
  }
  bool InternalPolicyLocal() const { return internal_traffic_policy == TrafficPolicy::kLocal; }
  // Cluster endpoints are needed for internal Cluster policy, and for any external traffic
  // (even with Local policy, pod-originated traffic short-circuits to the cluster chain).
  bool UsesClusterEndpoints() const { return !InternalPolicyLocal() || ExternallyAccessible(); }
  bool UsesLocalEndpoints() const {
    return InternalPolicyLocal() || (ExternalPolicyLocal() && ExternallyAccessible());
  }
};

using ServicePortMap = std::map<ServicePortName, ServicePort>;

// kube-proxy's ShouldSkipService: headless (clusterIP "" or "None") and ExternalName services
// are not proxied.
bool ShouldSkipService(const Service& svc);

// The IPv4 cluster IP of a service ("" when it has none).
std::string IPv4ClusterIP(const Service& svc);

// All ports of `svc` as ServicePorts (IPv4 family), or an empty map when it is skipped.
ServicePortMap ServicePortsOf(const Service& svc);

// hints.forZones of an endpoint, interned: every distinct list is stored once for the life of
// the process (a cluster has a handful of zones), so endpoints share it through a pointer and
// equal lists have equal pointers. nullptr = no hints. Thread-safe.
using ZoneHints = std::vector<std::string>;
const ZoneHints* InternZoneHints(const std::vector<std::string>& hints);

// IPv4 text <-> number (host byte order); nullopt when `ip` is not a dotted-quad IPv4 address.
std::optional<uint32_t> ParseIPv4(std::string_view ip);
std::string FormatIPv4(uint32_t ip);
// "ip:port" into `out` (at least kMaxAddressText bytes), NUL-terminated; returns its length.
inline constexpr size_t kMaxAddressText = 24;  // "255.255.255.255:65535" and the NUL
size_t FormatAddress(uint32_t ip, uint16_t port, char* out);

// One endpoint of one service port, merged from the slices. 24 bytes and no allocation of its
// own (the proxy keeps one per endpoint and port: 300k at 30k services): the address is packed
// (this proxier programs the IPv4 family; the change tracker ignores other slices) and the text
// forms are made when a renderer needs them.
struct EndpointInfo {
  uint32_t ipv4 = 0;  // host byte order
  uint16_t port = 0;
  bool is_local = false;
  bool ready = false;
  bool serving = false;
  bool terminating = false;
  const ZoneHints* zone_hints = nullptr;  // interned (InternZoneHints)
  std::string Ip() const { return FormatIPv4(ipv4); }  // "10.0.0.1"
  // "ip:port": sort key, DNAT target and chain-name hash input.
  std::string Address() const;
  bool HasZoneHint(const std::string& zone) const;
  bool operator==(const EndpointInfo&) const = default;
};

// Endpoints per service port, each list sorted by address (as kube-proxy, to keep rules stable).
using EndpointsMap = std::map<ServicePortName, std::vector<EndpointInfo>>;

bool IsIPv4(std::string_view ip);
bool IsIPv6(std::string_view ip);
// "10.0.0.0/8" contains "10.1.2.3"; false for anything unparsable or not IPv4.
bool CidrContainsIPv4(std::string_view cidr, std::string_view ip);

}  // namespace netproxy
