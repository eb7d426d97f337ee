#pragma once
// Builders for Services and EndpointSlices in netproxy tests, shaped like the API objects in
// /work/shared/k8s-samples (50-54, 63-69, 75).
#include <optional>
#include <string>
#include <vector>

#include "netproxy/model.h"
#include "netproxy/service_port.h"

namespace netproxy::testing {

inline ServicePortSpec Port(std::string name, int32_t port, int32_t target,
                            Protocol proto = Protocol::kTCP, int32_t node_port = 0) {
  ServicePortSpec p;
  p.name = std::move(name);
  p.port = port;
  p.protocol = proto;
  p.target_port.number = target;
  p.node_port = node_port;
  return p;
}

inline Service ClusterIPService(std::string ns, std::string name, std::string ip,
                                std::vector<ServicePortSpec> ports) {
  Service s;
  s.ns = std::move(ns);
  s.name = std::move(name);
  s.type = ServiceType::kClusterIP;
  s.cluster_ip = ip;
  s.cluster_ips = {ip};
  s.ports = std::move(ports);
  return s;
}

inline Endpoint Ep(std::string ip, std::optional<bool> ready = true,
                   std::optional<std::string> node = std::nullopt,
                   std::optional<bool> serving = true, std::optional<bool> terminating = false) {
  Endpoint e;
  e.addresses = {std::move(ip)};
  e.conditions.ready = ready;
  e.conditions.serving = serving;
  e.conditions.terminating = terminating;
  e.node_name = std::move(node);
  return e;
}

inline EndpointPort EpPort(std::string name, int32_t port, Protocol proto = Protocol::kTCP) {
  EndpointPort p;
  p.name = std::move(name);
  p.port = port;
  p.protocol = proto;
  return p;
}

inline EndpointSlice Slice(std::string ns, std::string service, std::string name,
                           std::vector<Endpoint> eps, std::vector<EndpointPort> ports) {
  EndpointSlice s;
  s.ns = std::move(ns);
  s.service_name = std::move(service);
  s.name = std::move(name);
  s.endpoints = std::move(eps);
  s.ports = std::move(ports);
  return s;
}

// Ready endpoints (ip, is this node's) on one port, as the proxy's state hands them to renderers.
inline std::vector<EndpointInfo> Eps(std::vector<std::pair<std::string, bool>> ips,
                                     int port = 8080) {
  std::vector<EndpointInfo> out;
  for (auto& [ip, local] : ips) {
    EndpointInfo e;
    e.ipv4 = *ParseIPv4(ip);
    e.port = static_cast<uint16_t>(port);
    e.ready = e.serving = true;
    e.is_local = local;
    out.push_back(e);
  }
  return out;
}

}  // namespace netproxy::testing
