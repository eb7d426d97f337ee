#pragma once
// Pure rendering of kube-proxy's iptables ruleset (pkg/proxy/iptables/proxier.go
// syncProxyRules) from the proxy state: no kernel access, so it is tested with golden files.
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "netproxy/iptables_ruleset.h"
#include "netproxy/proxy_state.h"

namespace netproxy {

struct IptablesRendererConfig {
  // Local-traffic detector: traffic from outside this CIDR to a cluster IP is masqueraded.
  // "" = no detector (then only masquerade_all masquerades cluster-IP traffic).
  std::string cluster_cidr;
  bool masquerade_all = false;
  int masquerade_bit = 14;  // mark 1<<14 = 0x4000
  // NodePorts answer on 127.0.0.1 (needs route_localnet=1; adds the KUBE-FIREWALL guard).
  bool localhost_nodeports = true;
  // --nodeport-addresses resolved: empty = every local address (addrtype LOCAL); else the node
  // IPs that NodePorts answer on.
  std::vector<std::string> nodeport_ips;
  std::string node_ip;  // for loadBalancerSourceRanges that contain the node itself
  bool conntrack_tcp_be_liberal = false;  // no INVALID drop in KUBE-FORWARD when set
  bool random_fully = true;               // MASQUERADE --random-fully
  std::string topology_zone;              // this node's zone, for topology hints
  // Above this many endpoint chains, per-endpoint comments are left out (kube-proxy's
  // largeClusterEndpointsThreshold).
  size_t large_cluster_endpoints = 1000;
};

// The KUBE-* chains of the filter and nat tables that are not per service.
extern const std::vector<std::string> kFilterTopChains;
extern const std::vector<std::string> kNatTopChains;

// Jumps from the built-in chains into the KUBE-* chains, in kube-proxy's order.
std::vector<IptablesJump> IptablesJumps(bool localhost_nodeports);

class IptablesRenderer {
 public:
  explicit IptablesRenderer(IptablesRendererConfig config);

  // Renders the whole ruleset for `state`.
  //  - changed: when non-null (partial sync), the per-service chains (SVC/SVL/EXT/FW/SEP) of
  //    services not in this set are left out: they are already in the kernel and --noflush keeps
  //    them. The top-level chains are always written whole.
  //  - existing_nat_chains: chains that exist in the kernel's nat table now; per-service ones
  //    that are no longer active are flushed and deleted in the same commit.
  IptablesRuleset Render(const ProxyState& state, const std::set<ServiceName>* changed,
                         const std::set<std::string>& existing_nat_chains);

  const IptablesRendererConfig& config() const { return config_; }

 private:
  const std::string& Probability(size_t n);
  const std::string& SepChain(const ServicePort& svc, const EndpointInfo& ep);

  IptablesRendererConfig config_;
  std::string mark_;  // "0x00004000"
  std::vector<std::string> probabilities_;
  // Endpoint chain names are sha256 based: cached across syncs (dropped when it grows stale).
  std::unordered_map<std::string, std::string> sep_cache_;
  size_t sep_cache_hits_ = 0;
};

}  // namespace netproxy
