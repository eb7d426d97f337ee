#include "netproxy/proxy_state.h"

#include <algorithm>

namespace netproxy {

namespace {

// kube-proxy's topologyModeFromHints, zone part: use hints only when every ready endpoint has
// one and at least one is for this node's zone.
bool UseZoneHints(const std::vector<EndpointInfo>& endpoints, const std::string& zone) {
  if (zone.empty()) return false;
  bool has_for_zone = false;
  for (const auto& ep : endpoints) {
    if (!ep.ready) continue;
    if (!ep.zone_hints) return false;
    if (ep.HasZoneHint(zone)) has_for_zone = true;
  }
  return has_for_zone;
}

}  // namespace

CategorizedEndpoints CategorizeEndpoints(const std::vector<EndpointInfo>& endpoints,
                                         const ServicePort& svc, const std::string& zone) {
  CategorizedEndpoints out;
  bool zone_mode = false;
  if (svc.UsesClusterEndpoints()) {
    zone_mode = UseZoneHints(endpoints, zone);
    for (const auto& ep : endpoints) {
      if (ep.ready && (!zone_mode || ep.HasZoneHint(zone))) out.cluster.push_back(&ep);
    }
    // No ready endpoint anywhere: fall back to those still serving while terminating.
    if (out.cluster.empty()) {
      for (const auto& ep : endpoints) {
        if (ep.serving && ep.terminating) out.cluster.push_back(&ep);
      }
    }
    out.has_any = !out.cluster.empty();
  }
  if (!svc.UsesLocalEndpoints()) {
    out.all_reachable = out.cluster;
    return out;
  }

  bool local_ready = false, local_serving_terminating = false;
  for (const auto& ep : endpoints) {
    if (ep.ready) {
      out.has_any = true;
      if (ep.is_local) local_ready = true;
    } else if (ep.serving && ep.terminating) {
      out.has_any = true;
      if (ep.is_local) local_serving_terminating = true;
    }
  }
  bool use_serving_terminating = false;
  if (local_ready) {
    for (const auto& ep : endpoints) {
      if (ep.is_local && ep.ready) out.local.push_back(&ep);
    }
  } else if (local_serving_terminating) {
    use_serving_terminating = true;
    for (const auto& ep : endpoints) {
      if (ep.is_local && ep.serving && ep.terminating) out.local.push_back(&ep);
    }
  }
  if (!svc.UsesClusterEndpoints()) {
    out.all_reachable = out.local;
    return out;
  }
  if (!zone_mode && !use_serving_terminating) {
    // Every ready endpoint is in `cluster`, so it is a superset of `local`.
    out.all_reachable = out.cluster;
    return out;
  }
  // Union, kept in address order (both inputs point into the same sorted vector).
  out.all_reachable = out.cluster;
  for (const EndpointInfo* ep : out.local) {
    if (std::find(out.all_reachable.begin(), out.all_reachable.end(), ep) ==
        out.all_reachable.end()) {
      out.all_reachable.push_back(ep);
    }
  }
  std::sort(out.all_reachable.begin(), out.all_reachable.end());  // same vector: pointer order
  return out;
}

ProxyState::ProxyState(std::string node_name, WallTime start_time)
    : node_name_(node_name), endpoint_changes_(std::move(node_name), start_time) {}

StateUpdateResult ProxyState::Update() {
  StateUpdateResult result;
  auto svc_changes = service_changes_.Checkout();
  result.service_changes = svc_changes.size();
  for (auto& [name, change] : svc_changes) {
    result.updated_services.insert(name);
    for (const auto& [spn, sp] : change.previous) {
      if (spn.protocol == Protocol::kUDP) result.udp_changed = true;
      if (!change.current.count(spn)) service_ports_.erase(spn);
    }
    // The tracker's nodes move into the state as they are (no allocation and free per port:
    // the informer thread allocated them, and freeing them here left its arena fragmented).
    while (!change.current.empty()) {
      auto node = change.current.extract(change.current.begin());
      if (node.key().protocol == Protocol::kUDP) result.udp_changed = true;
      auto ins = service_ports_.insert(std::move(node));
      if (!ins.inserted) ins.position->second = std::move(ins.node.mapped());
    }
    result.previous_ports.emplace(name, std::move(change.previous));
  }

  auto ep_checkout = endpoint_changes_.CheckoutChanges();
  result.endpoint_changes = ep_checkout.changes.size();
  for (auto& [name, change] : ep_checkout.changes) {
    result.updated_services.insert(name);
    for (const auto& [spn, eps] : change.previous) {
      if (spn.protocol == Protocol::kUDP) result.udp_changed = true;
      if (!change.current.count(spn)) endpoints_.erase(spn);
    }
    while (!change.current.empty()) {
      auto node = change.current.extract(change.current.begin());
      if (node.key().protocol == Protocol::kUDP) result.udp_changed = true;
      auto ins = endpoints_.insert(std::move(node));
      if (!ins.inserted) ins.position->second = std::move(ins.node.mapped());
    }
    result.previous_endpoints.emplace(name, std::move(change.previous));
  }
  result.trigger_times = std::move(ep_checkout.trigger_times);
  return result;
}

const std::vector<EndpointInfo>& ProxyState::EndpointsFor(const ServicePortName& name) const {
  static const std::vector<EndpointInfo> kNone;
  auto it = endpoints_.find(name);
  return it == endpoints_.end() ? kNone : it->second;
}

}  // namespace netproxy
