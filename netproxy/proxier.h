#pragma once
// netproxy's entry point for the agent: informer events in, kernel rules out.
//
//   auto p = netproxy::Proxier::Create(opts);          // detects the host's iptables
//   informer callbacks -> p->OnServiceAdd(svc) ...      // any thread
//   after the initial lists -> p->OnServicesSynced(), p->OnEndpointSlicesSynced()
//   /healthz -> p->Health(); /metrics -> p->MetricsText()
//
// Nothing is written until both Services and EndpointSlices have synced (a partial picture
// would break live traffic). Then one full sync, and after that one sync per burst of changes:
// changes are coalesced and applied at most once per min_sync_period, on the proxier's own
// thread, each as one atomic commit that rewrites only the chains of the changed services.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/time.h"
#include "netproxy/health_server.h"
#include "netproxy/iptables_renderer.h"
#include "netproxy/libiptc_backend.h"
#include "netproxy/metrics.h"
#include "netproxy/model.h"
#include "netproxy/proxier_health.h"
#include "netproxy/proxy_engine.h"
#include "netproxy/proxy_state.h"
#include "netproxy/rules_backend.h"

namespace netproxy {

enum class ProxyMode { kIptables, kNftables, kUserspace };
std::string_view ProxyModeName(ProxyMode m);
std::optional<ProxyMode> ParseProxyMode(std::string_view s);  // "iptables", "nftables", ...

struct ProxierOptions {
  std::string node_name;              // endpoints with this nodeName are local
  std::vector<std::string> node_ips;  // this node's addresses (first IPv4 one is "the" node IP)
  // Pod CIDR of the cluster (--cluster-cidr): traffic to a service from outside it is
  // masqueraded. "" = unknown (then only masquerade_all masquerades cluster-IP traffic).
  std::string cluster_cidr;
  bool masquerade_all = false;
  ProxyMode mode = ProxyMode::kIptables;
  // Changes are applied at most this often (kube-proxy --iptables-min-sync-period, 1 s).
  std::chrono::milliseconds min_sync_period{1000};
  // kube-proxy --iptables-sync-period: healthz reports unhealthy when a change waited longer
  // than twice this without being applied; also how often the proxier checks that its rules
  // are still in the kernel (a flush triggers a full sync).
  std::chrono::milliseconds sync_period{30000};
  // After a failed commit, retry (as a full sync) this much later.
  std::chrono::milliseconds retry_period{5000};
  // A full resync (every chain rewritten, jumps checked) at least this often.
  std::chrono::milliseconds full_sync_period{std::chrono::hours(1)};
  int masquerade_bit = 14;
  // --nodeport-addresses as CIDRs; empty = every local address.
  std::vector<std::string> nodeport_addresses;
  // NodePorts also answer on 127.0.0.1 (sets net.ipv4.conf.all.route_localnet=1).
  bool localhost_nodeports = true;
  // Remove rules a previous run left (all of them) before the first sync.
  bool cleanup_at_start = true;
  std::string topology_zone;  // this node's topology.kubernetes.io/zone
  // /healthz listener "IP:PORT" (kube-proxy's default is "0.0.0.0:10256"; the agent sets it),
  // "" = none. Port 0 picks a free port (tests).
  std::string healthz_bind_address;
  // /metrics listener "IP:PORT" (kube-proxy's --metrics-bind-address, 127.0.0.1:10249), "" = none.
  std::string metrics_bind_address;
  // Serve the healthCheckNodePorts of LoadBalancer services with externalTrafficPolicy Local.
  bool health_check_node_ports = true;
  // Delete stale UDP conntrack entries after UDP services or their endpoints change. (Off when
  // Create() is given a fake backend: tests must not touch the host's conntrack table.)
  bool conntrack_cleanup = true;
  // userspace mode: a UDP flow ends after this long without packets (kube-proxy --udp-timeout).
  std::chrono::milliseconds udp_idle_timeout{250};
  // iptables and userspace modes on hosts with legacy iptables: commit in-process through
  // libiptc (kAuto; CUBELET_IPTABLES_RESTORE=1 in the environment forces the program) or with
  // iptables-legacy-restore (kRestoreProgram). nft hosts always use iptables-nft-restore.
  IptablesCommit iptables_commit = IptablesCommit::kAuto;
  // nftables mode: service tables (see NftRendererConfig::shards); 0 = about one per 1000
  // service ports.
  int nft_shards = 0;
};

// The iptables renderer settings that follow from the options (and the host's sysctls).
IptablesRendererConfig IptablesConfigFor(const ProxierOptions& options);

class Proxier {
 public:
  // backend == nullptr: MakeIptablesBackend for the iptables variant the host uses. The
  // sync thread starts at once (idle until both informers synced). Options are checked here.
  // For mode iptables; backend != nullptr replaces the host's iptables (tests). With the real
  // host, the rules of the other modes (of an earlier run) are removed too.
  static base::Result<std::unique_ptr<Proxier>> Create(ProxierOptions options,
                                                       RulesBackendPtr backend = nullptr);
  // With a given engine (any mode; tests and benchmarks).
  static base::Result<std::unique_ptr<Proxier>> CreateWithEngine(ProxierOptions options,
                                                                 ProxyEnginePtr engine);
  ~Proxier();
  Proxier(const Proxier&) = delete;
  Proxier& operator=(const Proxier&) = delete;

  void OnServiceAdd(const Service& svc);
  void OnServiceUpdate(const Service& old_svc, const Service& svc);
  void OnServiceDelete(const Service& svc);
  void OnServicesSynced();
  void OnEndpointSliceAdd(const EndpointSlice& slice);
  void OnEndpointSliceUpdate(const EndpointSlice& old_slice, const EndpointSlice& slice);
  void OnEndpointSliceDelete(const EndpointSlice& slice);
  void OnEndpointSlicesSynced();

  // Unhealthy when a change waited more than 2 x sync_period (kube-proxy's /healthz rule).
  ProxierHealth Health() const;
  // Prometheus text exposition of the kubeproxy_* metrics.
  std::string MetricsText() const;

  // Blocks until every change received before the call is applied to the kernel (both
  // informers synced, nothing pending, last commit succeeded), or the timeout passes (false).
  // For tests and for start-up ordering.
  bool WaitForSync(std::chrono::milliseconds timeout);
  // Requests a full resync now (e.g. after something flushed the tables).
  void ForceFullSync();
  // Stops the sync thread (also done by the destructor). Rules stay in place.
  void Stop();

  const ProxierOptions& options() const { return options_; }
  // The ports /healthz and /metrics listen on (0 when not serving).
  int healthz_port() const;
  int metrics_port() const;
  const ProxyMetrics& metrics() const { return metrics_; }
  std::string engine_name() const { return engine_->Name(); }

 private:
  Proxier(ProxierOptions options, ProxyEnginePtr engine);
  void Changed(bool pending);
  void SyncLoop();
  // One sync: returns false on failure (already logged and counted).
  bool SyncProxyRules();
  // Before the first sync: folds what the informers delivered so far into the state, without
  // writing anything, so the first sync starts from a built state instead of from scratch.
  void Prebuild();

  const ProxierOptions options_;
  ProxyEnginePtr engine_;
  std::unique_ptr<HealthServer> health_server_;
  std::map<int, ServiceHealthInfo> health_checks_;  // sync thread only
  bool health_checks_stale_ = false;  // the last SyncServices failed: recompute at the next sync
  // Whether a service of `update` has, or had, a health check node port: only then can the
  // checks differ from the last ones (a partial sync need not walk every service port).
  bool TouchesHealthChecks(const StateUpdateResult& update) const;
  ProxyState state_;  // maps touched only by the sync thread; trackers by any thread
  ProxyMetrics metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool services_synced_ = false;
  bool slices_synced_ = false;
  bool stopping_ = false;
  bool pending_ = false;  // a change arrived since the last sync started
  bool need_full_ = true;
  bool syncing_ = false;
  bool synced_once_ = false;
  std::chrono::steady_clock::time_point last_sync_start_{};
  std::chrono::steady_clock::time_point last_full_sync_{};
  std::chrono::steady_clock::time_point retry_at_{};
  std::chrono::steady_clock::time_point next_check_{};
  std::chrono::steady_clock::time_point last_prebuild_{};
  StateUpdateResult prebuilt_;  // sync thread only: what Prebuild() folded in
  WallTime last_updated_{};
  WallTime oldest_pending_{};
  std::string last_error_;

  std::thread thread_;
};

}  // namespace netproxy
