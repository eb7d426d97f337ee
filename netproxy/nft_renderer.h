#pragma once
// Pure rendering for the nftables mode: one table of cubelet's own ("ip cubelet") where the
// per-packet work is O(1) verdict-map lookups keyed by (ip . proto . port), and a service port
// owns only a few objects (its chains and map elements), so an update touches just those.
//
//   services chain: ip daddr . meta l4proto . th dport vmap @service-ips
//                   fib daddr type local ... meta l4proto . th dport vmap @service-nodeports
//   service chain:  [masquerade off-cluster traffic] then one dnat rule per endpoint, picked
//                   with numgen (per-endpoint chains only for ClientIP affinity, which needs a
//                   set each)
//   hairpin:        postrouting masquerades DNATed packets whose (saddr . daddr) is in @hairpin
//   no endpoints:   filter hooks reject (or drop) via @no-endpoint-services / -nodeports
//
// Rules are data (NftRule) so that they can be written as nft text (libnftables, goldens) or
// as netlink messages directly (nft_netlink.h).
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "netproxy/ref_counts.h"
#include "netproxy/proxy_state.h"

namespace netproxy {

inline constexpr const char* kNftTable = "cubelet";
inline constexpr const char* kNftHairpinSet = "hairpin";
inline constexpr const char* kNftMarkChain = "mark-for-masquerade";

struct NftRendererConfig {
  // Service tables: 1 = everything in "ip cubelet"; n > 1 = services spread by a hash of their
  // name over tables "ip cubelet-svc-00".."-nn", each with its own nat hooks and maps. The
  // kernel re-validates a whole table after every change that adds a jump or a NAT rule, so
  // smaller tables keep a change cheap at any cluster size (measured: ~11 us per service).
  int shards = 1;
  std::string cluster_cidr;  // "" = no local-traffic detector
  bool masquerade_all = false;
  int masquerade_bit = 14;
  std::vector<std::string> nodeport_ips;  // empty = every local address (fib daddr type local)
  bool conntrack_tcp_be_liberal = false;
  bool random_fully = true;
  std::string node_ip;
  std::string topology_zone;
};

// One rule of a per-service chain.
struct NftRule {
  enum class Kind {
    kMasqOffCluster,  // ip daddr IP PROTO dport PORT [ip saddr != CIDR] jump mark-for-masquerade
    kDnat,            // [numgen random mod MOD == 0] meta l4proto PROTO dnat ip to IP:PORT
    kJump,            // jump TARGET
    kGoto,            // [numgen random mod MOD == 0] goto TARGET
    kDrop,            // drop
    kSaddrGoto,       // ip saddr CIDR goto TARGET
    kLocalSrcJump,    // fib saddr type local jump TARGET
    kLocalSrcGoto,    // fib saddr type local goto TARGET
    kAffinityGoto,    // ip saddr @SET goto TARGET
    kAffinityUpdate,  // update @SET { ip saddr }
  };
  Kind kind = Kind::kJump;
  std::string ip;     // cluster IP (kMasqOffCluster)
  std::string cidr;   // kMasqOffCluster ("" = masquerade all), kSaddrGoto
  std::string proto;  // "tcp", "udp", "sctp"
  int port = 0;
  std::string target;   // chain, or set name for the affinity kinds
  std::string target2;  // chain for kAffinityGoto
  // Endpoint i of n is picked by "numgen random mod (n-i) == 0" (the last one unconditionally),
  // one rule each, like iptables' statistic match: no anonymous maps, whose creation costs the
  // kernel time in proportion to the sets of the table on every change.
  int mod = 0;                                         // 0 = unconditional
  std::vector<std::pair<std::string, int>> endpoints;  // kDnat: one (ip, port)
  bool operator==(const NftRule&) const = default;
};

std::string NftRuleText(const NftRule& r);

struct NftChain {
  std::string name;
  std::vector<NftRule> rules;
  bool operator==(const NftChain&) const = default;
};

struct NftElement {
  std::string map;    // map or set name
  std::string key;    // "10.96.0.10 . tcp . 80"
  std::string value;  // "goto service-...", "drop" ("" for sets)
  std::string table = kNftTable;
  bool operator==(const NftElement&) const = default;
  auto operator<=>(const NftElement&) const = default;
};

// A ClientIP affinity set: source addresses with a timeout.
struct NftAffinitySet {
  std::string name;
  int timeout_seconds = 10800;
  bool operator==(const NftAffinitySet&) const = default;
};
std::string NftSetText(const NftAffinitySet& s);  // "NAME { type ipv4_addr; ... }"

// Everything one service port owns.
struct NftServiceObjects {
  std::string table = kNftTable;  // of its chains, sets and service-ips/-nodeports elements
  std::vector<NftAffinitySet> sets;
  std::vector<NftChain> chains;
  std::vector<NftElement> elements;
  bool operator==(const NftServiceObjects&) const = default;
};

using NftServiceMap = std::map<ServicePortName, NftServiceObjects>;

// Chain-name base as kube-proxy's nftables mode: "<hash8>-<ns>/<svc>/<proto>/<port>".
std::string NftServiceBase(const ServicePort& svc);

// The table a service's objects live in, and all service tables of a configuration (empty when
// shards == 1: the main table holds the services).
std::string NftServiceTable(const NftRendererConfig& config, const ServiceName& svc);
std::vector<std::string> NftShardTables(const NftRendererConfig& config);
inline constexpr int kNftMaxShards = 64;

NftServiceObjects RenderNftService(const NftRendererConfig& config, const ServicePort& svc,
                                   const std::vector<EndpointInfo>& endpoints);

// The main table with its maps, sets and base chains, no service objects.
std::string NftBaseTable(const NftRendererConfig& config);
// A service table's maps and base chains (shards > 1).
std::string NftShardBase(const NftRendererConfig& config, const std::string& table);

// One table as nft text, replaced whole: the main table (kNftTable) or a service table, with the
// given services' sets and chains and the given elements (of any table).
std::string NftTableScript(const NftRendererConfig& config, const std::string& table,
                           const std::vector<const NftServiceObjects*>& services,
                           const std::vector<NftElement>& elements);

// All tables as nft text, replacing whatever is there (tables of other shard counts removed).
std::string NftFullScript(const NftRendererConfig& config, const NftServiceMap& services);

// What turns one state of some service ports into another, in the order the kernel accepts in
// one transaction: sets and chains are added, changed chains flushed, rules added, elements
// deleted then added, removed chains flushed then deleted, removed sets deleted.
struct NftRef {
  std::string table;
  std::string name;
  bool operator==(const NftRef&) const = default;
};
struct NftDiff {
  std::vector<std::pair<std::string, NftAffinitySet>> sets_add;  // (table, set)
  std::vector<NftRef> chains_add;
  std::vector<NftRef> chains_flush;
  std::vector<std::pair<NftRef, NftRule>> rules_add;  // (chain, rule)
  std::vector<NftElement> elems_del;
  std::vector<NftElement> elems_add;
  std::vector<NftRef> chains_del;
  std::vector<NftRef> sets_del;
  bool empty() const {
    return sets_add.empty() && chains_add.empty() && chains_flush.empty() && rules_add.empty() &&
           elems_del.empty() && elems_add.empty() && chains_del.empty() && sets_del.empty();
  }
};

// A hairpin element ("a . b", two IPv4 addresses) as one number (a in the high half, network
// order): the reference counts hold one per endpoint of the cluster (300k at 30k services),
// about 3x less memory than string keys.
uint64_t NftHairpinKey(std::string_view key);
std::string NftHairpinText(uint64_t key);

// Users of each hairpin element, over all services.
using NftRefCounts = RefCounts;

// `changes` pairs (before, after) per service port (nullptr = absent). `hairpin_refs` counts,
// over all services, the users of each hairpin element; it is updated, and hairpin elements are
// added/removed only on 0 <-> 1 transitions.
NftDiff ComputeNftDiff(
    const std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>>& changes,
    NftRefCounts& hairpin_refs);
std::string NftDiffText(const NftDiff& diff);

// Text form of ComputeNftDiff (tests, libnftables backend).
std::string NftDiffScript(
    const std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>>& changes,
    NftRefCounts& hairpin_refs);

}  // namespace netproxy
