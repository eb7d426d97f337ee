#pragma once
// Pure rendering for the nftables mode: one table of cubelet's own ("ip cubelet") where the
// per-packet work is O(1) verdict-map lookups keyed by (ip . proto . port), and a service port
// owns only a few objects (its chains and map elements), so an update touches just those.
//
//   services chain: ip daddr . meta l4proto . th dport vmap @service-ips
//                   fib daddr type local ... meta l4proto . th dport vmap @service-nodeports
//   service chain:  [masquerade off-cluster traffic] then one dnat through a numgen map
//                   (per-endpoint chains only for ClientIP affinity, which needs a set each)
//   hairpin:        postrouting masquerades DNATed packets whose (saddr . daddr) is in @hairpin
//   no endpoints:   filter hooks reject (or drop) via @no-endpoint-services / -nodeports
#include <map>
#include <set>
#include <string>
#include <vector>

#include "netproxy/proxy_state.h"

namespace netproxy {

inline constexpr const char* kNftTable = "cubelet";
inline constexpr const char* kNftHairpinSet = "hairpin";

struct NftRendererConfig {
  std::string cluster_cidr;  // "" = no local-traffic detector
  bool masquerade_all = false;
  int masquerade_bit = 14;
  std::vector<std::string> nodeport_ips;  // empty = every local address (fib daddr type local)
  bool conntrack_tcp_be_liberal = false;
  bool random_fully = true;
  std::string node_ip;
  std::string topology_zone;
};

struct NftChain {
  std::string name;
  std::vector<std::string> rules;
  bool operator==(const NftChain&) const = default;
};

struct NftElement {
  std::string map;    // map or set name
  std::string key;    // "10.96.0.10 . tcp . 80"
  std::string value;  // "goto service-..." ("" for sets)
  bool operator==(const NftElement&) const = default;
  auto operator<=>(const NftElement&) const = default;
};

// Everything one service port owns in the table.
struct NftServiceObjects {
  std::vector<std::string> sets;  // set declarations "NAME { type ...; }" (affinity)
  std::vector<NftChain> chains;
  std::vector<NftElement> elements;
  bool operator==(const NftServiceObjects&) const = default;
};

using NftServiceMap = std::map<ServicePortName, NftServiceObjects>;

// Chain-name base as kube-proxy's nftables mode: "<hash8>-<ns>/<svc>/<proto>/<port>".
std::string NftServiceBase(const ServicePort& svc);

NftServiceObjects RenderNftService(const NftRendererConfig& config, const ServicePort& svc,
                                   const std::vector<EndpointInfo>& endpoints);

// The table with its maps, sets and base chains, no service objects: "table ip cubelet { ... }".
std::string NftBaseTable(const NftRendererConfig& config);

// The whole table, replacing whatever is there in one transaction.
std::string NftFullScript(const NftRendererConfig& config, const NftServiceMap& services);

// Commands that turn `before` into `after` for the given service ports, in an order the kernel
// accepts within one transaction (chains exist before elements point at them, elements go
// before their chains). `hairpin_refs` counts, over all services, the users of each hairpin
// element; it is updated, and elements are added/removed only on 0 <-> 1 transitions.
std::string NftDiffScript(const std::vector<std::pair<const NftServiceObjects*,
                                                      const NftServiceObjects*>>& changes,
                          std::map<std::string, int>& hairpin_refs);

}  // namespace netproxy
