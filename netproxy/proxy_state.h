#pragma once
// The proxy's picture of the cluster: service ports and their endpoints, updated from the change
// trackers at each sync. Also decides which endpoints each service port uses (kube-proxy's
// CategorizeEndpoints: ready endpoints, else serving+terminating ones; Local policies use only
// this node's).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "netproxy/change_tracker.h"
#include "netproxy/service_port.h"

namespace netproxy {

struct CategorizedEndpoints {
  std::vector<const EndpointInfo*> cluster;  // used with Cluster policy (empty if never used)
  std::vector<const EndpointInfo*> local;    // used with Local policy (empty if never used)
  // Union of both: every endpoint this node may DNAT to (one KUBE-SEP chain each), sorted by
  // address.
  std::vector<const EndpointInfo*> all_reachable;
  bool has_any = false;  // usable endpoints anywhere in the cluster
};

// topology_zone = this node's topology.kubernetes.io/zone label ("" if none).
CategorizedEndpoints CategorizeEndpoints(const std::vector<EndpointInfo>& endpoints,
                                         const ServicePort& svc, const std::string& topology_zone);

struct StateUpdateResult {
  std::set<ServiceName> updated_services;  // services whose chains must be rewritten
  std::map<ServiceName, std::vector<WallTime>> trigger_times;
  size_t service_changes = 0;
  size_t endpoint_changes = 0;
  // A UDP service port changed (service or endpoints): stale conntrack entries may need removal.
  bool udp_changed = false;
  // What changed services looked like before this update: their ports when the Service
  // changed, their endpoints when a slice changed (absent = unchanged). Lets an engine compute
  // the objects it wrote last time instead of keeping them.
  std::map<ServiceName, ServicePortMap> previous_ports;
  std::map<ServiceName, EndpointsMap> previous_endpoints;
};

class ProxyState {
 public:
  ProxyState(std::string node_name, WallTime start_time);

  ServiceChangeTracker& service_changes() { return service_changes_; }
  EndpointsChangeTracker& endpoint_changes() { return endpoint_changes_; }
  bool HasPending() const {
    return service_changes_.HasPending() || endpoint_changes_.HasPending();
  }

  // Applies every pending change to the maps.
  StateUpdateResult Update();

  const ServicePortMap& service_ports() const { return service_ports_; }
  const EndpointsMap& endpoints() const { return endpoints_; }
  // Endpoints of one service port (empty list if none).
  const std::vector<EndpointInfo>& EndpointsFor(const ServicePortName& name) const;
  const std::string& node_name() const { return node_name_; }

 private:
  const std::string node_name_;
  ServiceChangeTracker service_changes_;
  EndpointsChangeTracker endpoint_changes_;
  ServicePortMap service_ports_;
  EndpointsMap endpoints_;
};

}  // namespace netproxy
