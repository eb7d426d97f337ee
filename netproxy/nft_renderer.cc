#include "netproxy/nft_renderer.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>

#include "netproxy/chain_names.h"

namespace netproxy {

namespace {

std::string Prefix(const std::string& table = kNftTable) { return "ip " + table + " "; }

std::string MarkHex(int bit) {
  char buf[16];
  snprintf(buf, sizeof buf, "0x%x", 1u << bit);
  return buf;
}

NftRule Rule(NftRule::Kind k, std::string target = {}) {
  NftRule r;
  r.kind = k;
  r.target = std::move(target);
  return r;
}

// One rule per endpoint: endpoint i of n with probability 1/(n-i), the last unconditionally.
std::vector<NftRule> DnatRules(const std::string& proto,
                               const std::vector<const EndpointInfo*>& eps) {
  std::vector<NftRule> out;
  for (size_t i = 0; i < eps.size(); ++i) {
    NftRule r = Rule(NftRule::Kind::kDnat);
    r.proto = proto;
    r.endpoints.emplace_back(eps[i]->Ip(), eps[i]->port);
    r.mod = i + 1 < eps.size() ? static_cast<int>(eps.size() - i) : 0;
    out.push_back(std::move(r));
  }
  return out;
}

std::string NumgenPrefix(int mod) {
  return mod ? "numgen random mod " + std::to_string(mod) + " == 0 " : "";
}

}  // namespace

std::string NftRuleText(const NftRule& r) {
  using K = NftRule::Kind;
  switch (r.kind) {
    case K::kMasqOffCluster: {
      std::string t = "ip daddr " + r.ip + " " + r.proto + " dport " + std::to_string(r.port);
      if (!r.cidr.empty()) t += " ip saddr != " + r.cidr;
      return t + " jump " + kNftMarkChain;
    }
    case K::kDnat:
      return NumgenPrefix(r.mod) + "meta l4proto " + r.proto + " dnat ip to " +
             r.endpoints[0].first + ":" + std::to_string(r.endpoints[0].second);
    case K::kJump:
      return "jump " + r.target;
    case K::kGoto:
      return NumgenPrefix(r.mod) + "goto " + r.target;
    case K::kDrop:
      return "drop";
    case K::kSaddrGoto:
      return "ip saddr " + r.cidr + " goto " + r.target;
    case K::kLocalSrcJump:
      return "fib saddr type local jump " + r.target;
    case K::kLocalSrcGoto:
      return "fib saddr type local goto " + r.target;
    case K::kAffinityGoto:
      return "ip saddr @" + r.target + " goto " + r.target2;
    case K::kAffinityUpdate:
      return "update @" + r.target + " { ip saddr }";
  }
  return "";
}

uint64_t NftHairpinKey(std::string_view key) {
  auto ip = [](std::string_view s) {
    char buf[INET_ADDRSTRLEN] = {};
    s.copy(buf, std::min(s.size(), sizeof buf - 1));
    in_addr a{};
    inet_pton(AF_INET, buf, &a);
    return uint64_t{ntohl(a.s_addr)};
  };
  size_t dot = key.find(" . ");
  if (dot == std::string_view::npos) return ip(key) << 32;
  return ip(key.substr(0, dot)) << 32 | ip(key.substr(dot + 3));
}

std::string NftHairpinText(uint64_t key) {
  char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
  in_addr x{htonl(static_cast<uint32_t>(key >> 32))}, y{htonl(static_cast<uint32_t>(key))};
  inet_ntop(AF_INET, &x, a, sizeof a);
  inet_ntop(AF_INET, &y, b, sizeof b);
  return std::string(a) + " . " + b;
}

std::string NftSetText(const NftAffinitySet& s) {
  return s.name + " { type ipv4_addr; flags dynamic,timeout; timeout " +
         std::to_string(s.timeout_seconds) + "s; }";
}

std::string NftServiceTable(const NftRendererConfig& config, const ServiceName& svc) {
  if (config.shards <= 1) return kNftTable;
  // FNV-1a: stable across runs and builds.
  uint64_t h = 1469598103934665603ull;
  for (char c : svc.ns + "/" + svc.name) {
    h ^= static_cast<uint8_t>(c);
    h *= 1099511628211ull;
  }
  char buf[32];
  snprintf(buf, sizeof buf, "%s-svc-%02d", kNftTable, static_cast<int>(h % config.shards));
  return buf;
}

std::vector<std::string> NftShardTables(const NftRendererConfig& config) {
  std::vector<std::string> out;
  for (int i = 0; config.shards > 1 && i < config.shards; ++i) {
    char buf[32];
    snprintf(buf, sizeof buf, "%s-svc-%02d", kNftTable, i);
    out.push_back(buf);
  }
  return out;
}

std::string NftServiceBase(const ServicePort& svc) {
  std::string proto(ProtocolLower(svc.name.protocol));
  return PortProtoHash(svc.name_string, proto).substr(0, 8) + "-" + svc.name.service.ns + "/" +
         svc.name.service.name + "/" + proto + "/" + svc.name.port;
}

NftServiceObjects RenderNftService(const NftRendererConfig& config, const ServicePort& svc,
                                   const std::vector<EndpointInfo>& endpoints) {
  NftServiceObjects out;
  out.table = NftServiceTable(config, svc.name.service);
  const std::string proto(ProtocolLower(svc.name.protocol));
  const std::string port = std::to_string(svc.port);
  const std::string base = NftServiceBase(svc);
  const std::string cluster_chain = "service-" + base;
  const std::string local_chain = "local-" + base;
  const std::string ext_chain = "external-" + base;
  const std::string fw_chain = "firewall-" + base;
  CategorizedEndpoints cat = CategorizeEndpoints(endpoints, svc, config.topology_zone);

  const bool uses_cluster_chain = !cat.cluster.empty() && svc.UsesClusterEndpoints();
  const bool uses_local_chain = !cat.local.empty() && svc.UsesLocalEndpoints();
  std::string internal_chain = cluster_chain;
  bool has_internal = cat.has_any;
  if (svc.InternalPolicyLocal()) {
    internal_chain = local_chain;
    if (cat.local.empty()) has_internal = false;
  }
  std::string external_policy_chain = cluster_chain;
  bool has_external = cat.has_any;
  if (svc.ExternalPolicyLocal()) {
    external_policy_chain = local_chain;
    if (cat.local.empty()) has_external = false;
  }
  const bool uses_ext_chain = cat.has_any && svc.ExternallyAccessible();
  const bool uses_fw_chain =
      cat.has_any && !svc.load_balancer_ips.empty() && !svc.load_balancer_source_ranges.empty();
  // No usable endpoint anywhere: reject (the client sees a refusal at once); endpoints exist but
  // none for this policy: drop, as kube-proxy.
  const std::string no_ep_verdict = cat.has_any ? "drop" : "goto reject-chain";
  const bool has_detector = !config.cluster_cidr.empty();

  auto key = [&](const std::string& ip) { return ip + " . " + proto + " . " + port; };

  // Map elements.
  if (has_internal) {
    out.elements.push_back({"service-ips", key(svc.cluster_ip), "goto " + internal_chain});
  } else {
    out.elements.push_back({"no-endpoint-services", key(svc.cluster_ip), no_ep_verdict});
  }
  for (const auto& ip : svc.external_ips) {
    if (cat.has_any) out.elements.push_back({"service-ips", key(ip), "goto " + ext_chain});
    if (!has_external) out.elements.push_back({"no-endpoint-services", key(ip), no_ep_verdict});
  }
  for (const auto& ip : svc.load_balancer_ips) {
    if (cat.has_any) {
      out.elements.push_back(
          {"service-ips", key(ip), "goto " + (uses_fw_chain ? fw_chain : ext_chain)});
    }
    if (!has_external) out.elements.push_back({"no-endpoint-services", key(ip), no_ep_verdict});
  }
  if (svc.node_port != 0) {
    std::string np_key = proto + " . " + std::to_string(svc.node_port);
    if (cat.has_any) out.elements.push_back({"service-nodeports", np_key, "goto " + ext_chain});
    if (!has_external) out.elements.push_back({"no-endpoint-nodeports", np_key, no_ep_verdict});
  }
  for (const EndpointInfo* ep : cat.all_reachable) {
    const std::string ip = ep->Ip();
    out.elements.push_back({kNftHairpinSet, ip + " . " + ip, ""});
  }
  for (auto& e : out.elements) {
    if (e.map == "service-ips" || e.map == "service-nodeports") e.table = out.table;
  }

  // Chains.
  if (uses_ext_chain) {
    NftChain ext{ext_chain, {}};
    if (!svc.ExternalPolicyLocal()) {
      ext.rules.push_back(Rule(NftRule::Kind::kJump, kNftMarkChain));
    } else {
      if (has_detector) {
        NftRule r = Rule(NftRule::Kind::kSaddrGoto, cluster_chain);
        r.cidr = config.cluster_cidr;
        ext.rules.push_back(r);
      }
      ext.rules.push_back(Rule(NftRule::Kind::kLocalSrcJump, kNftMarkChain));
      ext.rules.push_back(Rule(NftRule::Kind::kLocalSrcGoto, cluster_chain));
    }
    if (has_external) ext.rules.push_back(Rule(NftRule::Kind::kGoto, external_policy_chain));
    out.chains.push_back(std::move(ext));
  }
  if (uses_fw_chain) {
    std::vector<std::string> allowed = svc.load_balancer_source_ranges;
    bool allow_from_node = false;
    for (const auto& c : svc.load_balancer_source_ranges) {
      if (CidrContainsIPv4(c, config.node_ip)) allow_from_node = true;
    }
    if (allow_from_node) {
      allowed.insert(allowed.end(), svc.load_balancer_ips.begin(), svc.load_balancer_ips.end());
    }
    NftChain fw{fw_chain, {}};
    for (const auto& c : allowed) {
      NftRule r = Rule(NftRule::Kind::kSaddrGoto, ext_chain);
      r.cidr = c;
      fw.rules.push_back(r);
    }
    fw.rules.push_back(Rule(NftRule::Kind::kDrop));
    out.chains.push_back(std::move(fw));
  }

  auto service_chain = [&](const std::string& name, const std::vector<const EndpointInfo*>& eps,
                           bool internal) {
    NftChain c{name, {}};
    if (internal && (config.masquerade_all || has_detector)) {
      NftRule r = Rule(NftRule::Kind::kMasqOffCluster);
      r.ip = svc.cluster_ip;
      r.proto = proto;
      r.port = svc.port;
      if (!config.masquerade_all) r.cidr = config.cluster_cidr;
      c.rules.push_back(r);
    }
    if (svc.session_affinity != SessionAffinity::kClientIP) {
      for (auto& r : DnatRules(proto, eps)) c.rules.push_back(std::move(r));
      return c;
    }
    // ClientIP affinity: a timeout set and a chain per endpoint, as kube-proxy.
    std::vector<std::string> ep_chains;
    for (const EndpointInfo* ep : eps) {
      std::string ep_hash = PortProtoHash(svc.name_string, proto + ep->Address()).substr(0, 8);
      std::string suffix = ep_hash + "-" + base + "__" + ep->Ip() + "/" + std::to_string(ep->port);
      std::string ep_chain = "endpoint-" + suffix;
      std::string set_name = "affinity-" + suffix;
      if (std::none_of(out.sets.begin(), out.sets.end(),
                       [&](const NftAffinitySet& x) { return x.name == set_name; })) {
        out.sets.push_back({set_name, svc.sticky_max_age_seconds});
        NftRule update = Rule(NftRule::Kind::kAffinityUpdate, set_name);
        out.chains.push_back({ep_chain, {update, DnatRules(proto, {ep})[0]}});
      }
      NftRule check = Rule(NftRule::Kind::kAffinityGoto, set_name);
      check.target2 = ep_chain;
      c.rules.push_back(check);
      ep_chains.push_back(ep_chain);
    }
    for (size_t i = 0; i < ep_chains.size(); ++i) {
      NftRule r = Rule(NftRule::Kind::kGoto, ep_chains[i]);
      r.mod = i + 1 < ep_chains.size() ? static_cast<int>(ep_chains.size() - i) : 0;
      c.rules.push_back(std::move(r));
    }
    return c;
  };
  if (uses_cluster_chain) {
    out.chains.push_back(
        service_chain(cluster_chain, cat.cluster, internal_chain == cluster_chain && has_internal));
  }
  if (uses_local_chain) {
    out.chains.push_back(
        service_chain(local_chain, cat.local, internal_chain == local_chain && has_internal));
  }
  return out;
}

namespace {

std::string NodePortMatch(const NftRendererConfig& config) {
  if (config.nodeport_ips.empty()) return "fib daddr type local ip daddr != 127.0.0.0/8";
  std::string m = "ip daddr { ";
  for (size_t i = 0; i < config.nodeport_ips.size(); ++i) {
    m += (i ? ", " : "") + config.nodeport_ips[i];
  }
  return m + " }";
}

// The parts of a table that route service traffic: maps, the services chain and nat hooks.
std::string ServiceRouting(const NftRendererConfig& config) {
  std::string t;
  t += "  map service-ips {\n    type ipv4_addr . inet_proto . inet_service : verdict\n  }\n";
  t += "  map service-nodeports {\n    type inet_proto . inet_service : verdict\n  }\n";
  t += "  chain services {\n    ip daddr . meta l4proto . th dport vmap @service-ips\n";
  t += "    " + NodePortMatch(config) + " meta l4proto . th dport vmap @service-nodeports\n  }\n";
  t += "  chain nat-prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n"
       "    jump services\n  }\n";
  t += "  chain nat-output {\n    type nat hook output priority -100; policy accept;\n"
       "    jump services\n  }\n";
  return t;
}

std::string MarkChain(const NftRendererConfig& config) {
  return std::string("  chain ") + kNftMarkChain + " {\n    meta mark set meta mark or " +
         MarkHex(config.masquerade_bit) + "\n  }\n";
}

}  // namespace

std::string NftBaseTable(const NftRendererConfig& config) {
  const std::string mark = MarkHex(config.masquerade_bit);
  std::string t = std::string("table ip ") + kNftTable + " {\n";
  if (config.shards <= 1) t += ServiceRouting(config);
  t += "  map no-endpoint-services {\n"
       "    type ipv4_addr . inet_proto . inet_service : verdict\n  }\n";
  t += "  map no-endpoint-nodeports {\n    type inet_proto . inet_service : verdict\n  }\n";
  t += std::string("  set ") + kNftHairpinSet + " {\n    type ipv4_addr . ipv4_addr\n  }\n";
  t += "  chain reject-chain {\n    reject\n  }\n";
  t += MarkChain(config);
  t += "  chain masquerading {\n";
  // A pod reaching itself through its service: masquerade so the reply comes back through NAT.
  t += std::string("    ct status dnat ip saddr . ip daddr @") + kNftHairpinSet +
       " jump mark-for-masquerade\n";
  t += "    meta mark & " + mark + " == 0 return\n";
  t += "    meta mark set meta mark xor " + mark + "\n";
  t += std::string("    masquerade") + (config.random_fully ? " fully-random" : "") + "\n  }\n";
  t += "  chain endpoints-check {\n"
       "    ip daddr . meta l4proto . th dport vmap @no-endpoint-services\n";
  t += "    " + NodePortMatch(config) +
       " meta l4proto . th dport vmap @no-endpoint-nodeports\n  }\n";
  t += "  chain nat-postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n"
       "    jump masquerading\n  }\n";
  // After DNAT (input/forward come after prerouting, output at 0 after nat output at -100): a
  // DNATed packet no longer matches a service address, only refused ones do.
  t += "  chain filter-input {\n    type filter hook input priority 0; policy accept;\n"
       "    ct state new jump endpoints-check\n  }\n";
  t += "  chain filter-forward {\n    type filter hook forward priority 0; policy accept;\n";
  if (!config.conntrack_tcp_be_liberal) t += "    ct state invalid drop\n";
  t += "    ct state new jump endpoints-check\n  }\n";
  t += "  chain filter-output {\n    type filter hook output priority 0; policy accept;\n"
       "    ct state new jump endpoints-check\n  }\n";
  t += "}\n";
  return t;
}

std::string NftShardBase(const NftRendererConfig& config, const std::string& table) {
  return "table ip " + table + " {\n" + ServiceRouting(config) + MarkChain(config) + "}\n";
}

namespace {

void AppendElements(std::string& out, const char* verb, const std::vector<NftElement>& elems) {
  // Grouped per map: one command per map keeps the script (and its parsing) small.
  std::map<std::pair<std::string, std::string>, std::vector<const NftElement*>> by_map;
  for (const auto& e : elems) by_map[{e.table, e.map}].push_back(&e);
  for (const auto& [tm, list] : by_map) {
    out += std::string(verb) + " element " + Prefix(tm.first) + tm.second + " { ";
    for (size_t i = 0; i < list.size(); ++i) {
      if (i) out += ", ";
      out += list[i]->key;
      if (!list[i]->value.empty() && std::string(verb) == "add") out += " : " + list[i]->value;
    }
    out += " }\n";
  }
}

std::string ReplaceTable(const std::string& table) {
  return "add table ip " + table + "\ndelete table ip " + table + "\n";
}

}  // namespace

std::string NftTableScript(const NftRendererConfig& config, const std::string& table,
                           const std::vector<const NftServiceObjects*>& services,
                           const std::vector<NftElement>& elements) {
  std::string out = ReplaceTable(table);
  std::string block = table == kNftTable ? NftBaseTable(config) : NftShardBase(config, table);
  block.resize(block.size() - 2);  // reopen the table block: "}\n"
  for (const NftServiceObjects* o : services) {
    for (const auto& s : o->sets) block += "  set " + NftSetText(s) + "\n";
    for (const auto& c : o->chains) {
      block += "  chain " + c.name + " {\n";
      for (const auto& r : c.rules) block += "    " + NftRuleText(r) + "\n";
      block += "  }\n";
    }
  }
  out += block + "}\n";
  AppendElements(out, "add", elements);
  return out;
}

std::string NftFullScript(const NftRendererConfig& config, const NftServiceMap& services) {
  std::string out;
  // Tables of another shard count go; the current ones are rebuilt.
  std::vector<std::string> shards = NftShardTables(config);
  NftRendererConfig all = config;
  all.shards = kNftMaxShards;
  auto all_tables = NftShardTables(all);
  for (size_t i = shards.size(); i < all_tables.size(); ++i) out += ReplaceTable(all_tables[i]);
  std::map<std::string, std::vector<const NftServiceObjects*>> by_table;
  std::map<std::string, std::vector<NftElement>> elems;
  std::set<std::string> hairpin;
  for (const auto& [_, o] : services) {
    by_table[o.table].push_back(&o);
    for (const auto& e : o.elements) {
      if (e.map == kNftHairpinSet && !hairpin.insert(e.key).second) continue;
      elems[e.table].push_back(e);
    }
  }
  out += NftTableScript(config, kNftTable, by_table[kNftTable], elems[kNftTable]);
  for (const auto& t : shards) out += NftTableScript(config, t, by_table[t], elems[t]);
  return out;
}

NftDiff ComputeNftDiff(
    const std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>>& changes,
    NftRefCounts& hairpin_refs) {
  static const NftServiceObjects kEmpty;
  NftDiff d;
  std::vector<NftElement> elems_del;
  for (auto [before_p, after_p] : changes) {
    const NftServiceObjects& before = before_p ? *before_p : kEmpty;
    const NftServiceObjects& after = after_p ? *after_p : kEmpty;
    if (before == after) continue;
    auto has_set = [](const std::vector<NftAffinitySet>& v, const NftAffinitySet& s) {
      return std::find(v.begin(), v.end(), s) != v.end();
    };
    for (const auto& s : after.sets) {
      if (!has_set(before.sets, s)) d.sets_add.emplace_back(after.table, s);
    }
    for (const auto& s : before.sets) {
      if (!has_set(after.sets, s)) d.sets_del.push_back({before.table, s.name});
    }
    for (const auto& c : after.chains) {
      auto old = std::find_if(before.chains.begin(), before.chains.end(),
                              [&](const NftChain& x) { return x.name == c.name; });
      // A service moved to another table (new shard count) is removed and added again.
      if (old == before.chains.end() || before.table != after.table) {
        d.chains_add.push_back({after.table, c.name});
      } else if (old->rules == c.rules) {
        continue;
      } else {
        d.chains_flush.push_back({after.table, c.name});
      }
      for (const auto& r : c.rules) d.rules_add.push_back({{after.table, c.name}, r});
    }
    for (const auto& c : before.chains) {
      if (before.table != after.table ||
          std::none_of(after.chains.begin(), after.chains.end(),
                       [&](const NftChain& x) { return x.name == c.name; })) {
        d.chains_del.push_back({before.table, c.name});
      }
    }
    for (const auto& e : before.elements) {
      if (std::find(after.elements.begin(), after.elements.end(), e) != after.elements.end()) {
        continue;
      }
      if (e.map == kNftHairpinSet) {
        if (hairpin_refs.Release(NftHairpinKey(e.key)) > 0) continue;
      }
      elems_del.push_back(e);
    }
    for (const auto& e : after.elements) {
      if (std::find(before.elements.begin(), before.elements.end(), e) != before.elements.end()) {
        continue;
      }
      if (e.map == kNftHairpinSet && hairpin_refs.Add(NftHairpinKey(e.key)) > 0) continue;
      d.elems_add.push_back(e);
    }
  }
  // A hairpin element removed by one service and added by another in the same diff cancels.
  for (const auto& e : elems_del) {
    auto it = std::find(d.elems_add.begin(), d.elems_add.end(), e);
    if (e.map == kNftHairpinSet && it != d.elems_add.end()) {
      d.elems_add.erase(it);
      continue;
    }
    d.elems_del.push_back(e);
  }
  return d;
}

std::string NftDiffText(const NftDiff& d) {
  std::string out;
  for (const auto& [t, s] : d.sets_add) out += "add set " + Prefix(t) + NftSetText(s) + "\n";
  for (const auto& c : d.chains_add) out += "add chain " + Prefix(c.table) + c.name + "\n";
  for (const auto& c : d.chains_flush) out += "flush chain " + Prefix(c.table) + c.name + "\n";
  for (const auto& [c, r] : d.rules_add) {
    out += "add rule " + Prefix(c.table) + c.name + " " + NftRuleText(r) + "\n";
  }
  AppendElements(out, "delete", d.elems_del);
  AppendElements(out, "add", d.elems_add);
  // Flushed first: removed chains may jump to each other.
  for (const auto& c : d.chains_del) out += "flush chain " + Prefix(c.table) + c.name + "\n";
  for (const auto& c : d.chains_del) out += "delete chain " + Prefix(c.table) + c.name + "\n";
  for (const auto& s : d.sets_del) out += "delete set " + Prefix(s.table) + s.name + "\n";
  return out;
}

std::string NftDiffScript(
    const std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>>& changes,
    NftRefCounts& hairpin_refs) {
  return NftDiffText(ComputeNftDiff(changes, hairpin_refs));
}

}  // namespace netproxy
