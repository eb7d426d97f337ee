#include "netproxy/iptables_renderer.h"

#include <cstdio>

#include "netproxy/chain_names.h"

namespace netproxy {

namespace {

constexpr const char* kServices = "KUBE-SERVICES";
constexpr const char* kExternalServices = "KUBE-EXTERNAL-SERVICES";
constexpr const char* kNodePorts = "KUBE-NODEPORTS";
constexpr const char* kPostrouting = "KUBE-POSTROUTING";
constexpr const char* kMarkMasq = "KUBE-MARK-MASQ";
constexpr const char* kForward = "KUBE-FORWARD";
constexpr const char* kProxyFirewall = "KUBE-PROXY-FIREWALL";
constexpr const char* kKubeletFirewall = "KUBE-FIREWALL";

std::string Quoted(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  out.append(s);
  out.push_back('"');
  return out;
}

// Appends words separated by spaces.
struct Args {
  std::string s;
  Args& operator()(std::string_view w) {
    if (!s.empty()) s.push_back(' ');
    s.append(w);
    return *this;
  }
  Args& operator()(int n) { return (*this)(std::string_view(std::to_string(n))); }
};

// Where a service's per-service rules go: real chains, or (partial sync, unchanged service)
// nowhere, counting them only.
class Sink {
 public:
  Sink(IptablesTable& table, bool discard, int group)
      : table_(table), discard_(discard), group_(group) {}
  IptablesChain* Chain(const std::string& name) {
    return discard_ ? nullptr : table_.AddChain(name, group_);
  }
  bool discard() const { return discard_; }
  // `make` builds the rule text only when it is kept.
  template <class F>
  void Add(IptablesChain* chain, F&& make) {
    if (discard_) {
      ++table_.skipped_rules;
    } else {
      chain->rules.push_back(make());
    }
  }

 private:
  IptablesTable& table_;
  bool discard_;
  int group_;
};

}  // namespace

const std::vector<std::string> kFilterTopChains = {kServices, kExternalServices, kForward,
                                                   kNodePorts, kProxyFirewall};
const std::vector<std::string> kNatTopChains = {kServices, kNodePorts, kPostrouting, kMarkMasq};

std::vector<IptablesJump> IptablesJumps(bool localhost_nodeports) {
  const std::vector<std::string> ct_new = {"-m", "conntrack", "--ctstate", "NEW"};
  std::vector<IptablesJump> j = {
      {"filter", "INPUT", kExternalServices, "kubernetes externally-visible service portals",
       ct_new},
      {"filter", "FORWARD", kExternalServices, "kubernetes externally-visible service portals",
       ct_new},
      {"filter", "INPUT", kNodePorts, "kubernetes health check service ports", {}},
      {"filter", "FORWARD", kServices, "kubernetes service portals", ct_new},
      {"filter", "OUTPUT", kServices, "kubernetes service portals", ct_new},
      {"filter", "FORWARD", kForward, "kubernetes forwarding rules", {}},
      {"filter", "INPUT", kProxyFirewall, "kubernetes load balancer firewall", ct_new},
      {"filter", "OUTPUT", kProxyFirewall, "kubernetes load balancer firewall", ct_new},
      {"filter", "FORWARD", kProxyFirewall, "kubernetes load balancer firewall", ct_new},
      {"nat", "OUTPUT", kServices, "kubernetes service portals", {}},
      {"nat", "PREROUTING", kServices, "kubernetes service portals", {}},
      {"nat", "POSTROUTING", kPostrouting, "kubernetes postrouting rules", {}},
  };
  if (localhost_nodeports) {
    j.push_back({"filter", "INPUT", kKubeletFirewall, "", {}});
    j.push_back({"filter", "OUTPUT", kKubeletFirewall, "", {}});
  }
  return j;
}

IptablesRenderer::IptablesRenderer(IptablesRendererConfig config) : config_(std::move(config)) {
  char buf[32];
  snprintf(buf, sizeof buf, "0x%08x", 1u << config_.masquerade_bit);
  mark_ = buf;
}

const std::string& IptablesRenderer::Probability(size_t n) {
  while (probabilities_.size() <= n) {
    char buf[32];
    size_t i = probabilities_.size();
    snprintf(buf, sizeof buf, "%0.10f", i == 0 ? 0.0 : 1.0 / static_cast<double>(i));
    probabilities_.emplace_back(buf);
  }
  return probabilities_[n];
}

const std::string& IptablesRenderer::SepChain(const ServicePort& svc, const EndpointInfo& ep) {
  std::string key = svc.name_string;
  key += '|';
  key += ProtocolLower(svc.name.protocol);
  key += '|';
  key += ep.Address();
  auto it = sep_cache_.find(key);
  if (it != sep_cache_.end()) {
    ++sep_cache_hits_;
    return it->second;
  }
  auto chain = EndpointChainName(svc.name_string, ProtocolLower(svc.name.protocol), ep.Address());
  return sep_cache_.emplace(std::move(key), std::move(chain)).first->second;
}

IptablesRuleset IptablesRenderer::Render(const ProxyState& state,
                                         const std::set<ServiceName>* changed,
                                         const std::set<std::string>& existing_nat_chains) {
  IptablesRuleset rs;
  rs.partial = changed != nullptr;
  rs.jumps = IptablesJumps(config_.localhost_nodeports);
  // Keep the SEP-name cache from growing without bound as endpoints come and go.
  if (sep_cache_.size() > 4 * (state.endpoints().size() * 4 + 1024)) sep_cache_.clear();

  IptablesTable& filter = rs.filter;
  IptablesTable& nat = rs.nat;
  IptablesChain* f_services = filter.AddChain(kServices);
  IptablesChain* f_external = filter.AddChain(kExternalServices);
  IptablesChain* f_forward = filter.AddChain(kForward);
  IptablesChain* f_nodeports = filter.AddChain(kNodePorts);
  IptablesChain* f_proxy_firewall = filter.AddChain(kProxyFirewall);
  IptablesChain* n_services = nat.AddChain(kServices);
  IptablesChain* n_nodeports = nat.AddChain(kNodePorts);
  IptablesChain* n_postrouting = nat.AddChain(kPostrouting);
  IptablesChain* n_mark_masq = nat.AddChain(kMarkMasq);

  const std::string mark_match = mark_ + "/" + mark_;
  n_postrouting->rules.push_back(Args()("-m mark !")("--mark")(mark_match)("-j RETURN").s);
  // Clear the mark so that a packet re-traversing the stack is not masqueraded twice.
  n_postrouting->rules.push_back(Args()("-j MARK --xor-mark")(mark_).s);
  {
    Args masq;
    masq("-m comment --comment")(Quoted("kubernetes service traffic requiring SNAT"))(
        "-j MASQUERADE");
    if (config_.random_fully) masq("--random-fully");
    n_postrouting->rules.push_back(masq.s);
  }
  n_mark_masq->rules.push_back(Args()("-j MARK --or-mark")(mark_).s);

  if (config_.localhost_nodeports) {
    // route_localnet makes 127.0.0.1 NodePorts work and opens a hole (k8s issue 90259) that
    // this rule closes.
    IptablesChain* fw = filter.AddChain(kKubeletFirewall);
    fw->rules.push_back(
        Args()("-m comment --comment")(Quoted("block incoming localnet connections"))(
            "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT")(
            "-j DROP")
            .s);
  }

  const bool has_detector = !config_.cluster_cidr.empty();
  size_t total_endpoints = 0;
  for (const auto& [name, _] : state.service_ports()) {
    total_endpoints += state.EndpointsFor(name).size();
  }
  const bool large_cluster = total_endpoints > config_.large_cluster_endpoints;

  int group = 0;
  for (const auto& [spn, svc] : state.service_ports()) {
    const std::string proto(ProtocolLower(spn.protocol));
    const std::string& name = svc.name_string;
    const std::string port = std::to_string(svc.port);
    const auto& endpoints = state.EndpointsFor(spn);
    CategorizedEndpoints cat = CategorizeEndpoints(endpoints, svc, config_.topology_zone);

    const std::string hash = PortProtoHash(name, proto);
    const std::string cluster_chain = std::string(kServiceChainPrefix) + hash;
    const std::string local_chain = std::string(kLocalChainPrefix) + hash;
    const std::string ext_chain = std::string(kExternalChainPrefix) + hash;
    const std::string fw_chain = std::string(kFirewallChainPrefix) + hash;

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
    // Even without external endpoints the EXT chain carries the short-circuit rules for
    // traffic from this node and its pods.
    const bool uses_ext_chain = cat.has_any && svc.ExternallyAccessible();
    const bool uses_fw_chain =
        cat.has_any && !svc.load_balancer_ips.empty() && !svc.load_balancer_source_ranges.empty();
    const std::string& lb_chain = uses_fw_chain ? fw_chain : ext_chain;

    std::string internal_target, internal_comment, external_target, external_comment;
    if (!cat.has_any) {
      internal_target = external_target = "REJECT";
      internal_comment = external_comment = Quoted(name + " has no endpoints");
    } else {
      if (!has_internal) {
        internal_target = "DROP";
        internal_comment = Quoted(name + " has no local endpoints");
      }
      if (!has_external) {
        external_target = "DROP";
        external_comment = Quoted(name + " has no local endpoints");
      }
    }

    auto match = [&](std::string_view dst, std::string_view dport) {
      Args a;
      a("-m")(proto)("-p")(proto);
      if (!dst.empty()) a("-d")(dst);
      a("--dport")(dport);
      return a.s;
    };

    // Cluster IP.
    if (has_internal) {
      n_services->rules.push_back(Args()("-m comment --comment")(Quoted(name + " cluster IP"))(
                                      match(svc.cluster_ip, port))("-j")(internal_chain)
                                      .s);
    } else {
      f_services->rules.push_back(Args()("-m comment --comment")(internal_comment)(match(
          svc.cluster_ip, port))("-j")(internal_target)
                                      .s);
    }
    // External IPs.
    for (const auto& ip : svc.external_ips) {
      if (cat.has_any) {
        n_services->rules.push_back(Args()("-m comment --comment")(Quoted(name + " external IP"))(
                                        match(ip, port))("-j")(ext_chain)
                                        .s);
      }
      if (!has_external) {
        f_external->rules.push_back(
            Args()("-m comment --comment")(external_comment)(match(ip, port))("-j")(external_target)
                .s);
      }
    }
    // Load-balancer ingress IPs.
    for (const auto& ip : svc.load_balancer_ips) {
      if (cat.has_any) {
        n_services->rules.push_back(Args()("-m comment --comment")(Quoted(
            name + " loadbalancer IP"))(match(ip, port))("-j")(lb_chain)
                                        .s);
      }
      if (uses_fw_chain) {
        f_proxy_firewall->rules.push_back(Args()("-m comment --comment")(Quoted(
            name + " traffic not accepted by " + fw_chain))(match(ip, port))("-j DROP")
                                              .s);
      }
    }
    if (!has_external) {
      for (const auto& ip : svc.load_balancer_ips) {
        f_external->rules.push_back(
            Args()("-m comment --comment")(external_comment)(match(ip, port))("-j")(external_target)
                .s);
      }
    }
    // Node port.
    if (svc.node_port != 0) {
      const std::string node_port = std::to_string(svc.node_port);
      if (cat.has_any) {
        n_nodeports->rules.push_back(
            Args()("-m comment --comment")(name)(match("", node_port))("-j")(ext_chain).s);
      }
      if (!has_external) {
        f_external->rules.push_back(
            Args()("-m comment --comment")(external_comment)("-m addrtype --dst-type LOCAL")(
                match("", node_port))("-j")(external_target)
                .s);
      }
    }
    // Health check node port: accepted whether or not this node has local endpoints.
    if (svc.health_check_node_port != 0) {
      f_nodeports->rules.push_back(
          Args()("-m comment --comment")(Quoted(name + " health check node port"))(
              "-m tcp -p tcp --dport")(svc.health_check_node_port)("-j ACCEPT")
              .s);
    }

    // The per-service chains. Their names are active whether or not they are rewritten now.
    if (uses_ext_chain) rs.active_nat_chains.insert(ext_chain);
    if (uses_fw_chain) rs.active_nat_chains.insert(fw_chain);
    if (uses_cluster_chain) rs.active_nat_chains.insert(cluster_chain);
    if (uses_local_chain) rs.active_nat_chains.insert(local_chain);
    const bool skip = changed && !changed->count(spn.service);
    Sink sink(nat, skip, group++);

    IptablesChain* ext = uses_ext_chain ? sink.Chain(ext_chain) : nullptr;
    IptablesChain* fw = uses_fw_chain ? sink.Chain(fw_chain) : nullptr;
    IptablesChain* cluster = uses_cluster_chain ? sink.Chain(cluster_chain) : nullptr;
    IptablesChain* local = uses_local_chain ? sink.Chain(local_chain) : nullptr;

    // Internal traffic: masquerade what comes from outside the cluster (or everything).
    if (has_internal && (config_.masquerade_all || has_detector)) {
      IptablesChain* chain = svc.InternalPolicyLocal() ? local : cluster;
      sink.Add(chain, [&] {
        Args a;
        a("-m comment --comment")(Quoted(name + " cluster IP"))(match(svc.cluster_ip, port));
        if (!config_.masquerade_all) a("!")("-s")(config_.cluster_cidr);
        a("-j")(kMarkMasq);
        return a.s;
      });
    }

    if (uses_ext_chain) {
      if (!svc.ExternalPolicyLocal()) {
        // Endpoints may be on other nodes: masquerade so that replies come back through here.
        sink.Add(ext, [&] {
          return Args()("-m comment --comment")(Quoted("masquerade traffic for " + name +
                                                       " external destinations"))("-j")(kMarkMasq)
              .s;
        });
      } else {
        // Local endpoints only: keep the client's address, except for traffic from pods and
        // from this node, which is treated as if it went out to a load balancer and back.
        if (has_detector) {
          sink.Add(ext, [&] {
            return Args()("-m comment --comment")(
                       Quoted("pod traffic for " + name + " external destinations"))("-s")(
                       config_.cluster_cidr)("-j")(cluster_chain)
                .s;
          });
        }
        sink.Add(ext, [&] {
          return Args()("-m comment --comment")(
                     Quoted("masquerade LOCAL traffic for " + name + " external destinations"))(
                     "-m addrtype --src-type LOCAL -j")(kMarkMasq)
              .s;
        });
        sink.Add(ext, [&] {
          return Args()("-m comment --comment")(
                     Quoted("route LOCAL traffic for " + name + " external destinations"))(
                     "-m addrtype --src-type LOCAL -j")(cluster_chain)
              .s;
        });
      }
      if (has_external) {
        sink.Add(ext, [&] { return Args()("-j")(external_policy_chain).s; });
      }
    }

    if (uses_fw_chain) {
      const std::string prefix =
          Args()("-m comment --comment")(Quoted(name + " loadbalancer IP")).s;
      bool allow_from_node = false;
      for (const auto& cidr : svc.load_balancer_source_ranges) {
        sink.Add(fw, [&] { return Args()(prefix)("-s")(cidr)("-j")(ext_chain).s; });
        if (CidrContainsIPv4(cidr, config_.node_ip)) allow_from_node = true;
      }
      if (allow_from_node) {
        for (const auto& ip : svc.load_balancer_ips) {
          sink.Add(fw, [&] { return Args()(prefix)("-s")(ip)("-j")(ext_chain).s; });
        }
      }
      sink.Add(fw, [&] {
        return Args()("-m comment --comment")(
                   Quoted("other traffic to " + name + " will be dropped by KUBE-PROXY-FIREWALL"))
            .s;
      });
    }

    // Service chains: affinity rules first, then one probabilistic jump per endpoint.
    auto write_service_chain = [&](IptablesChain* chain,
                                   const std::vector<const EndpointInfo*>& eps) {
      if (svc.session_affinity == SessionAffinity::kClientIP) {
        for (const EndpointInfo* ep : eps) {
          sink.Add(chain, [&] {
            const std::string& sep = SepChain(svc, *ep);
            Args a;
            if (!large_cluster) a("-m comment --comment")(Quoted(name + " -> " + ep->Address()));
            a("-m recent --name")(sep)("--rcheck --seconds")(svc.sticky_max_age_seconds)(
                "--reap -j")(sep);
            return a.s;
          });
        }
      }
      const size_t n = eps.size();
      for (size_t i = 0; i < n; ++i) {
        const EndpointInfo* ep = eps[i];
        sink.Add(chain, [&] {
          Args a;
          if (!large_cluster) a("-m comment --comment")(Quoted(name + " -> " + ep->Address()));
          if (i + 1 < n) a("-m statistic --mode random --probability")(Probability(n - i));
          a("-j")(SepChain(svc, *ep));
          return a.s;
        });
      }
    };
    if (uses_cluster_chain) write_service_chain(cluster, cat.cluster);
    if (uses_local_chain) write_service_chain(local, cat.local);

    // Endpoint chains.
    for (const EndpointInfo* ep : cat.all_reachable) {
      const std::string& sep = SepChain(svc, *ep);
      rs.active_nat_chains.insert(sep);
      IptablesChain* chain = sink.Chain(sep);
      std::string comment;
      if (!large_cluster) comment = Args()("-m comment --comment")(name).s;
      // Hairpin: a pod reaching itself through the service must be masqueraded.
      sink.Add(chain, [&] { return Args()(comment)("-s")(ep->Ip())("-j")(kMarkMasq).s; });
      sink.Add(chain, [&] {
        Args a;
        a(comment);
        if (svc.session_affinity == SessionAffinity::kClientIP) a("-m recent --name")(sep)("--set");
        a("-m")(proto)("-p")(proto)("-j DNAT --to-destination")(ep->Address());
        return a.s;
      });
    }
  }

  // Stale per-service chains: flushed and deleted in this same commit.
  for (const auto& chain : existing_nat_chains) {
    if (IsServiceChainName(chain) && !rs.active_nat_chains.count(chain)) {
      nat.deleted_chains.push_back(chain);
    }
  }

  // NodePorts: the last rule of KUBE-SERVICES, after every service portal.
  const std::string np_comment =
      Quoted("kubernetes service nodeports; NOTE: this must be the last rule in this chain");
  if (config_.nodeport_ips.empty()) {
    Args a;
    a("-m comment --comment")(np_comment)("-m addrtype --dst-type LOCAL");
    if (!config_.localhost_nodeports) a("! -d 127.0.0.0/8");
    a("-j")(kNodePorts);
    n_services->rules.push_back(a.s);
  } else {
    for (const auto& ip : config_.nodeport_ips) {
      if (!config_.localhost_nodeports && ip.rfind("127.", 0) == 0) continue;
      n_services->rules.push_back(
          Args()("-m comment --comment")(np_comment)("-d")(ip)("-j")(kNodePorts).s);
    }
  }

  if (!config_.conntrack_tcp_be_liberal) {
    // INVALID packets would otherwise reach pods un-NATed and cause spurious resets
    // (k8s issues 74839, 117924).
    f_forward->rules.push_back("-m conntrack --ctstate INVALID -j DROP");
  }
  f_forward->rules.push_back(Args()("-m comment --comment")(Quoted("kubernetes forwarding rules"))(
                                 "-m mark --mark")(mark_match)("-j ACCEPT")
                                 .s);
  f_forward->rules.push_back(
      Args()("-m comment --comment")(Quoted("kubernetes forwarding conntrack rule"))(
          "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT")
          .s);
  return rs;
}

}  // namespace netproxy
