// The iptables engine: renders the kube-proxy layout and commits it through a RulesBackend.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>

#include "base/log.h"
#include "netproxy/iptables_renderer.h"
#include "netproxy/proxy_engine.h"

namespace netproxy {

bool NodePortMatchAll(const std::vector<std::string>& cidrs) {
  if (cidrs.empty()) return true;
  return std::find(cidrs.begin(), cidrs.end(), "0.0.0.0/0") != cidrs.end();
}

std::vector<std::string> LocalAddressesIn(const std::vector<std::string>& cidrs) {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a; a = a->ifa_next) {
    if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    if (!inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) continue;
    for (const auto& c : cidrs) {
      if (CidrContainsIPv4(c, buf) && std::find(out.begin(), out.end(), buf) == out.end()) {
        out.emplace_back(buf);
      }
    }
  }
  freeifaddrs(list);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

class IptablesEngine final : public ProxyEngine {
 public:
  IptablesEngine(RulesBackendPtr backend, const IptablesRendererConfig& config,
                 std::vector<std::string> nodeport_cidrs)
      : backend_(std::move(backend)),
        renderer_(config),
        nodeport_cidrs_(std::move(nodeport_cidrs)) {}

  std::string Name() const override { return backend_->Name(); }

  base::Result<> Cleanup() override { return CleanupLeftovers(*backend_); }
  base::Result<bool> Intact() override { return backend_->CanaryPresent(); }

  base::Result<EngineSyncStats> Sync(const ProxyState& state, const StateUpdateResult& update,
                                     bool full) override {
    std::vector<IptablesJump> missing_jumps;
    bool need_hint = false;
    if (!NodePortMatchAll(nodeport_cidrs_)) {
      // Addresses come and go with interfaces: resolved at each sync as kube-proxy does.
      auto ips = LocalAddressesIn(nodeport_cidrs_);
      if (ips != renderer_.config().nodeport_ips) {
        IptablesRendererConfig cfg = renderer_.config();
        cfg.nodeport_ips = std::move(ips);
        renderer_ = IptablesRenderer(cfg);
      }
    }
    if (full) {
      auto snap = backend_->Snapshot();
      if (!snap) return tl::unexpected(snap.error());
      auto it = snap->tables.find("nat");
      existing_nat_chains_ = it == snap->tables.end() ? std::set<std::string>{} : it->second.chains;
      missing_jumps = MissingJumps(*snap, IptablesJumps(renderer_.config().localhost_nodeports));
      // The kubelet's hint for tools that pick the iptables variant (iptables-wrapper).
      need_hint = !snap->HasChain("mangle", "KUBE-IPTABLES-HINT");
    }
    IptablesRuleset rs =
        renderer_.Render(state, full ? nullptr : &update.updated_services, existing_nat_chains_);
    EngineSyncStats stats;
    stats.rules["filter"] = rs.filter.TotalRules();
    stats.rules["nat"] = rs.nat.TotalRules();
    // The canary goes into the same nat commit as the ruleset: a commit of its own would read
    // and replace the whole nat table once more (at 5k services as long as the ruleset's own).
    if (full) rs.nat.AddChain(kCanaryChain)->rules.emplace_back(kCanaryRule);
    std::vector<std::string> buffers;
    const size_t chunk = backend_->ChunkChains();
    if (chunk > 0 && rs.nat.chains.size() > 2 * chunk) {
      buffers = rs.SerializeChunked(missing_jumps, chunk);
    } else {
      buffers.push_back(rs.Serialize(missing_jumps));
    }
    if (need_hint) buffers.back() += "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n";
    for (auto& b : buffers) {
      stats.bytes += b.size();
      ++stats.commits;
      auto r = backend_->Restore(b);
      if (!r) return tl::unexpected(r.error());
      b = std::string();  // free as we go: the first sync of a large cluster is the peak
    }
    existing_nat_chains_ = std::move(rs.active_nat_chains);
    return stats;
  }

 private:
  RulesBackendPtr backend_;
  IptablesRenderer renderer_;
  std::vector<std::string> nodeport_cidrs_;
  std::set<std::string> existing_nat_chains_;
};

}  // namespace

ProxyEnginePtr MakeIptablesEngine(RulesBackendPtr backend, const IptablesRendererConfig& config,
                                  std::vector<std::string> nodeport_cidrs) {
  return std::make_unique<IptablesEngine>(std::move(backend), config, std::move(nodeport_cidrs));
}

}  // namespace netproxy
