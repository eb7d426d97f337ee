#pragma once
// netproxy's own model of Services and EndpointSlices: plain structs that agent/ fills from the
// API objects (it owns the JSON decoding), so netproxy never sees JSON or the API client.
//
// Field meanings follow core/v1 Service and discovery.k8s.io/v1 EndpointSlice; where the API has
// a pointer with "nil means X" semantics that kube-proxy relies on, the field is std::optional.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace netproxy {

using WallTime = std::chrono::system_clock::time_point;

enum class Protocol { kTCP, kUDP, kSCTP };
enum class ServiceType { kClusterIP, kNodePort, kLoadBalancer, kExternalName };
enum class TrafficPolicy { kCluster, kLocal };
enum class SessionAffinity { kNone, kClientIP };
enum class AddressType { kIPv4, kIPv6, kFQDN };

// "TCP", "UDP", "SCTP" as the API spells them.
std::string_view ProtocolName(Protocol p);
// "tcp", "udp", "sctp" as iptables and the chain-name hashes spell them.
std::string_view ProtocolLower(Protocol p);
// Parses the API spelling; nullopt when unknown.
std::optional<Protocol> ParseProtocol(std::string_view s);
std::optional<ServiceType> ParseServiceType(std::string_view s);

// spec.ports[].targetPort: a number or the name of a container port. The proxy itself uses the
// port numbers of the EndpointSlices (the controller resolved names already); the userspace
// mode and diagnostics keep it.
struct TargetPort {
  int32_t number = 0;
  std::string name;
  bool operator==(const TargetPort&) const = default;
};

// One entry of a Service's spec.ports.
struct ServicePortSpec {
  std::string name;  // may be empty when the service has one port
  Protocol protocol = Protocol::kTCP;
  int32_t port = 0;
  TargetPort target_port;
  int32_t node_port = 0;  // 0 = none
  bool operator==(const ServicePortSpec&) const = default;
};

// A core/v1 Service as the proxy needs it.
struct Service {
  std::string ns;  // metadata.namespace
  std::string name;
  ServiceType type = ServiceType::kClusterIP;
  std::string cluster_ip;                // spec.clusterIP: "" or "None" = headless
  std::vector<std::string> cluster_ips;  // spec.clusterIPs (dual stack); may be empty
  std::vector<ServicePortSpec> ports;
  std::vector<std::string> external_ips;  // spec.externalIPs
  // status.loadBalancer.ingress[].ip, only entries in VIP mode (ipMode unset or "VIP").
  std::vector<std::string> load_balancer_ips;
  std::vector<std::string> load_balancer_source_ranges;  // spec.loadBalancerSourceRanges (CIDRs)
  SessionAffinity session_affinity = SessionAffinity::kNone;
  // spec.sessionAffinityConfig.clientIP.timeoutSeconds (API default 10800).
  int32_t session_affinity_timeout_seconds = 10800;
  TrafficPolicy external_traffic_policy = TrafficPolicy::kCluster;
  TrafficPolicy internal_traffic_policy = TrafficPolicy::kCluster;
  int32_t health_check_node_port = 0;  // spec.healthCheckNodePort
  bool operator==(const Service&) const = default;
};

// discovery.k8s.io/v1 EndpointConditions with the API's nil semantics kept: kube-proxy reads
// ready nil as true, serving nil as true, terminating nil as false.
struct EndpointConditions {
  std::optional<bool> ready;
  std::optional<bool> serving;
  std::optional<bool> terminating;
  bool operator==(const EndpointConditions&) const = default;
};

struct Endpoint {
  std::vector<std::string> addresses;  // only the first is used
  EndpointConditions conditions;
  std::optional<std::string> node_name;
  std::optional<std::string> zone;
  std::vector<std::string> hints_for_zones;  // hints.forZones[].name
  bool operator==(const Endpoint&) const = default;
};

struct EndpointPort {
  std::optional<std::string> name;  // API default ""; nil is ignored as kube-proxy does
  std::optional<int32_t> port;      // nil or 0 is ignored
  Protocol protocol = Protocol::kTCP;
  bool operator==(const EndpointPort&) const = default;
};

struct EndpointSlice {
  std::string ns;
  std::string name;
  std::string service_name;  // label kubernetes.io/service-name; slices without it are ignored
  AddressType address_type = AddressType::kIPv4;
  std::vector<Endpoint> endpoints;  // JSON null = empty
  std::vector<EndpointPort> ports;  // JSON null = empty
  // annotation endpoints.kubernetes.io/last-change-trigger-time, for the network programming
  // latency metric; when absent the time the proxy saw the change is used.
  std::optional<WallTime> last_change_trigger_time;
  bool operator==(const EndpointSlice&) const = default;
};

// namespace/name of a Service.
struct ServiceName {
  std::string ns;
  std::string name;
  std::string String() const { return ns + "/" + name; }
  auto operator<=>(const ServiceName&) const = default;
};

// Identifies one port of one service, as kube-proxy's ServicePortName. String() is
// "ns/name:port" or "ns/name" for an unnamed port: the text hashed into chain names and shown
// in rule comments.
struct ServicePortName {
  ServiceName service;
  std::string port;
  Protocol protocol = Protocol::kTCP;
  std::string String() const {
    return port.empty() ? service.String() : service.String() + ":" + port;
  }
  auto operator<=>(const ServicePortName&) const = default;
};

}  // namespace netproxy
