#include "netproxy/proxier.h"

#include <algorithm>
#include <utility>

#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "netproxy/conntrack.h"
#include "netproxy/iptables_restore_backend.h"
#include "netproxy/libiptc_backend.h"
#include "netproxy/nftables_engine.h"
#include "netproxy/proxy_engine.h"
#include "netproxy/userspace_proxy.h"

namespace netproxy {

namespace log = base::log;
using Clock = std::chrono::steady_clock;

std::string_view ProxyModeName(ProxyMode m) {
  switch (m) {
    case ProxyMode::kIptables:
      return "iptables";
    case ProxyMode::kNftables:
      return "nftables";
    case ProxyMode::kUserspace:
      return "userspace";
  }
  return "iptables";
}

std::optional<ProxyMode> ParseProxyMode(std::string_view s) {
  if (s == "iptables" || s.empty()) return ProxyMode::kIptables;
  if (s == "nftables") return ProxyMode::kNftables;
  if (s == "userspace") return ProxyMode::kUserspace;
  return std::nullopt;
}

namespace {

constexpr std::chrono::milliseconds kPrebuildPeriod{50};

// Folds a later update into an earlier one: the earlier "previous" states stay (they are what
// the kernel held before both).
void Absorb(StateUpdateResult& earlier, StateUpdateResult later) {
  earlier.updated_services.merge(later.updated_services);
  for (auto& [svc, times] : later.trigger_times) {
    auto& v = earlier.trigger_times[svc];
    v.insert(v.end(), times.begin(), times.end());
  }
  earlier.service_changes += later.service_changes;
  earlier.endpoint_changes += later.endpoint_changes;
  earlier.udp_changed = earlier.udp_changed || later.udp_changed;
  earlier.previous_ports.merge(later.previous_ports);
  earlier.previous_endpoints.merge(later.previous_endpoints);
}

double UnixSeconds(WallTime t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

bool SysctlIsSet(const std::string& path) {
  auto v = base::ReadFile(path);
  return v && base::Trim(*v) != "0" && !base::Trim(*v).empty();
}

}  // namespace

namespace {

base::Result<> CheckOptions(const ProxierOptions& options) {
  if (options.min_sync_period.count() < 0 || options.sync_period.count() <= 0) {
    return base::Fail("proxy options: sync periods must be positive");
  }
  if (!options.cluster_cidr.empty()) {
    auto slash = options.cluster_cidr.find('/');
    if (slash == std::string::npos || !IsIPv4(options.cluster_cidr.substr(0, slash))) {
      return base::Fail("proxy options: cluster CIDR '" + options.cluster_cidr +
                        "' is not an IPv4 CIDR");
    }
  }
  for (const auto& c : options.nodeport_addresses) {
    if (c.find('/') == std::string::npos || !IsIPv4(c.substr(0, c.find('/')))) {
      return base::Fail("proxy options: nodeport address '" + c + "' is not an IPv4 CIDR");
    }
  }
  if (options.masquerade_bit < 0 || options.masquerade_bit > 31) {
    return base::Fail("proxy options: masquerade bit must be in 0..31");
  }
  return {};
}

std::string FirstIPv4(const std::vector<std::string>& ips) {
  for (const auto& ip : ips) {
    if (IsIPv4(ip)) return ip;
  }
  return {};
}

}  // namespace

IptablesRendererConfig IptablesConfigFor(const ProxierOptions& options) {
  IptablesRendererConfig cfg;
  cfg.cluster_cidr = options.cluster_cidr;
  cfg.masquerade_all = options.masquerade_all;
  cfg.masquerade_bit = options.masquerade_bit;
  cfg.topology_zone = options.topology_zone;
  cfg.node_ip = FirstIPv4(options.node_ips);
  // localhost NodePorts need loopback among the NodePort addresses.
  cfg.localhost_nodeports = options.localhost_nodeports;
  if (!NodePortMatchAll(options.nodeport_addresses)) {
    bool has_loopback = false;
    for (const auto& c : options.nodeport_addresses) {
      if (CidrContainsIPv4(c, "127.0.0.1")) has_loopback = true;
    }
    if (!has_loopback) cfg.localhost_nodeports = false;
  }
  cfg.conntrack_tcp_be_liberal = SysctlIsSet("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal");
  return cfg;
}

base::Result<std::unique_ptr<Proxier>> Proxier::Create(ProxierOptions options,
                                                       RulesBackendPtr backend) {
  CUBELET_TRY(CheckOptions(options));
  const bool real_host = backend == nullptr;
  if (options.mode == ProxyMode::kNftables) {
    if (!real_host) return base::Fail("proxy mode nftables takes no iptables backend");
    if (options.cleanup_at_start) {
      // Switching from iptables mode: its rules would still catch service traffic first.
      auto ipt = MakeIptablesBackend(DetectIptablesVariant(), options.iptables_commit);
      CUBELET_TRY_CTX(CleanupLeftovers(*ipt), "remove iptables-mode proxy rules");
    }
    NftRendererConfig cfg;
    cfg.cluster_cidr = options.cluster_cidr;
    cfg.masquerade_all = options.masquerade_all;
    cfg.masquerade_bit = options.masquerade_bit;
    cfg.node_ip = FirstIPv4(options.node_ips);
    cfg.topology_zone = options.topology_zone;
    cfg.shards = options.nft_shards;
    cfg.conntrack_tcp_be_liberal =
        SysctlIsSet("/proc/sys/net/netfilter/nf_conntrack_tcp_be_liberal");
    auto engine = MakeNftablesEngine(MakeNetlinkNftBackend(), cfg, options.nodeport_addresses);
    return CreateWithEngine(std::move(options), std::move(engine));
  }
  if (real_host && options.cleanup_at_start) {
    auto nft = MakeNetlinkNftBackend();
    CUBELET_TRY_CTX(CleanupNftables(*nft), "remove nftables-mode proxy rules");
  }
  IptablesRendererConfig cfg = IptablesConfigFor(options);
  if (cfg.localhost_nodeports) {
    // Lets NodePorts answer on 127.0.0.1 (k8s issue 90259; KUBE-FIREWALL closes the hole).
    auto w = base::WriteFile("/proc/sys/net/ipv4/conf/all/route_localnet", "1");
    if (!w) return tl::unexpected(w.error().Wrap("set net.ipv4.conf.all.route_localnet=1"));
  }
  if (!real_host) options.conntrack_cleanup = false;
  if (!backend) {
    backend = MakeIptablesBackend(DetectIptablesVariant(), options.iptables_commit);
  }
  if (options.mode == ProxyMode::kUserspace) {
    UserspaceOptions u;
    u.cluster_cidr = options.cluster_cidr;
    u.udp_idle_timeout = options.udp_idle_timeout;
    return CreateWithEngine(std::move(options), MakeUserspaceEngine(std::move(backend), u));
  }
  auto engine = MakeIptablesEngine(std::move(backend), cfg, options.nodeport_addresses);
  return CreateWithEngine(std::move(options), std::move(engine));
}

base::Result<std::unique_ptr<Proxier>> Proxier::CreateWithEngine(ProxierOptions options,
                                                                 ProxyEnginePtr engine) {
  CUBELET_TRY(CheckOptions(options));
  log::Info("service proxy starting",
            {{"mode", ProxyModeName(options.mode)},
             {"engine", engine->Name()},
             {"node", options.node_name},
             {"clusterCIDR", options.cluster_cidr},
             {"minSyncPeriod", std::to_string(options.min_sync_period.count()) + "ms"}});
  if (options.cleanup_at_start) {
    auto c = engine->Cleanup();
    if (!c) return tl::unexpected(c.error().Wrap("remove proxy rules of a previous run"));
  }
  std::unique_ptr<Proxier> p(new Proxier(std::move(options), std::move(engine)));
  if (!p->options_.healthz_bind_address.empty() || !p->options_.metrics_bind_address.empty() ||
      p->options_.health_check_node_ports) {
    auto hs = HealthServer::Start(
        p->options_.healthz_bind_address, [raw = p.get()] { return raw->Health(); },
        p->options_.metrics_bind_address, [raw = p.get()] { return raw->MetricsText(); });
    if (!hs) return tl::unexpected(hs.error());
    p->health_server_ = std::move(*hs);
  }
  p->thread_ = std::thread([raw = p.get()] { raw->SyncLoop(); });
  return p;
}

Proxier::Proxier(ProxierOptions options, ProxyEnginePtr engine)
    : options_(std::move(options)),
      engine_(std::move(engine)),
      state_(options_.node_name, std::chrono::system_clock::now()) {}

Proxier::~Proxier() {
  Stop();
  health_server_.reset();
}

int Proxier::healthz_port() const { return health_server_ ? health_server_->healthz_port() : 0; }
int Proxier::metrics_port() const { return health_server_ ? health_server_->metrics_port() : 0; }

void Proxier::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Proxier::Changed(bool pending) {
  if (!pending) return;
  std::lock_guard lock(mu_);
  pending_ = true;
  if (oldest_pending_ == WallTime{}) oldest_pending_ = std::chrono::system_clock::now();
  metrics_.SetLastQueued(UnixSeconds(std::chrono::system_clock::now()));
  cv_.notify_all();
}

void Proxier::OnServiceAdd(const Service& svc) {
  Changed(state_.service_changes().Update(nullptr, &svc));
}
void Proxier::OnServiceUpdate(const Service& old_svc, const Service& svc) {
  Changed(state_.service_changes().Update(&old_svc, &svc));
}
void Proxier::OnServiceDelete(const Service& svc) {
  Changed(state_.service_changes().Update(&svc, nullptr));
}
void Proxier::OnEndpointSliceAdd(const EndpointSlice& slice) {
  Changed(state_.endpoint_changes().EndpointSliceUpdate(slice, false,
                                                        std::chrono::system_clock::now()));
}
void Proxier::OnEndpointSliceUpdate(const EndpointSlice&, const EndpointSlice& slice) {
  Changed(state_.endpoint_changes().EndpointSliceUpdate(slice, false,
                                                        std::chrono::system_clock::now()));
}
void Proxier::OnEndpointSliceDelete(const EndpointSlice& slice) {
  Changed(
      state_.endpoint_changes().EndpointSliceUpdate(slice, true, std::chrono::system_clock::now()));
}

void Proxier::OnServicesSynced() {
  std::lock_guard lock(mu_);
  services_synced_ = true;
  cv_.notify_all();
}

void Proxier::OnEndpointSlicesSynced() {
  std::lock_guard lock(mu_);
  slices_synced_ = true;
  cv_.notify_all();
}

void Proxier::ForceFullSync() {
  std::lock_guard lock(mu_);
  need_full_ = true;
  pending_ = true;
  cv_.notify_all();
}

ProxierHealth Proxier::Health() const {
  std::lock_guard lock(mu_);
  ProxierHealth h;
  h.last_updated = last_updated_;
  h.oldest_pending = oldest_pending_;
  h.last_error = last_error_;
  if (oldest_pending_ != WallTime{} &&
      std::chrono::system_clock::now() - oldest_pending_ > 2 * options_.sync_period) {
    h.healthy = false;
  }
  return h;
}

std::string Proxier::MetricsText() const { return metrics_.Text(); }

bool Proxier::WaitForSync(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] {
    return services_synced_ && slices_synced_ && synced_once_ && !syncing_ && !pending_ &&
           !need_full_ && last_error_.empty() && !state_.HasPending();
  });
}

void Proxier::Prebuild() {
  StateUpdateResult update = state_.Update();
  // What the services looked like before serves partial syncs only, and the first sync is full
  // (need_full_ until a full sync succeeded): not kept (~0.5 MiB a 1000 services).
  update.previous_ports.clear();
  update.previous_endpoints.clear();
  Absorb(prebuilt_, std::move(update));
}

void Proxier::SyncLoop() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (!(services_synced_ && slices_synced_)) {
      // Nothing is written before both lists are synced, but what has arrived is folded into
      // the state meanwhile (at most every kPrebuildPeriod): building the state of 30k
      // services takes ~0.6 s, which then overlaps the lists instead of delaying the rules.
      if (pending_ && !synced_once_) {
        const auto next = last_prebuild_ + kPrebuildPeriod;
        if (Clock::now() < next) {
          cv_.wait_until(lock, next);
          continue;
        }
        last_prebuild_ = Clock::now();
        pending_ = false;
        lock.unlock();
        Prebuild();
        lock.lock();
        continue;
      }
      cv_.wait(lock);
      continue;
    }
    auto now = Clock::now();
    // The earliest time the next sync may run, and whether one is due at all.
    auto earliest = std::max(last_sync_start_ + options_.min_sync_period, retry_at_);
    bool due = pending_ || need_full_ || !synced_once_;
    auto full_due = last_full_sync_ + options_.full_sync_period;
    if (!due && now >= full_due) {
      need_full_ = true;
      due = true;
    }
    if (!due && synced_once_ && now >= next_check_) {
      next_check_ = now + options_.sync_period;
      lock.unlock();
      auto intact = engine_->Intact();
      lock.lock();
      if (intact && !*intact) {
        log::Warn("proxy rules are gone from the kernel (flushed?): full resync",
                  {{"engine", engine_->Name()}});
        need_full_ = true;
      } else if (!intact) {
        log::Warn("cannot check the proxy rules", {{"error", intact.error().message}});
      }
      continue;
    }
    if (!due) {
      cv_.wait_until(lock, std::min(full_due, next_check_));
      continue;
    }
    if (now < earliest) {
      cv_.wait_until(lock, earliest);
      continue;
    }
    pending_ = false;
    syncing_ = true;
    last_sync_start_ = now;
    WallTime queued = oldest_pending_;
    oldest_pending_ = WallTime{};
    lock.unlock();
    bool ok = SyncProxyRules();
    lock.lock();
    syncing_ = false;
    if (ok) {
      if (!synced_once_) next_check_ = Clock::now() + options_.sync_period;
      synced_once_ = true;
      last_updated_ = std::chrono::system_clock::now();
      retry_at_ = {};
    } else {
      // Changes were checked out of the trackers already: only a full sync can recover them.
      need_full_ = true;
      retry_at_ = Clock::now() + options_.retry_period;
      if (oldest_pending_ == WallTime{} || (queued != WallTime{} && queued < oldest_pending_)) {
        oldest_pending_ = queued != WallTime{} ? queued : std::chrono::system_clock::now();
      }
    }
    cv_.notify_all();
  }
}

bool Proxier::TouchesHealthChecks(const StateUpdateResult& update) const {
  for (const auto& name : update.updated_services) {
    for (auto it = state_.service_ports().lower_bound(ServicePortName{name, "", Protocol::kTCP});
         it != state_.service_ports().end() && it->first.service == name; ++it) {
      if (it->second.health_check_node_port != 0) return true;
    }
    if (auto pp = update.previous_ports.find(name); pp != update.previous_ports.end()) {
      for (const auto& [_, sp] : pp->second) {
        if (sp.health_check_node_port != 0) return true;
      }
    }
  }
  return false;
}

bool Proxier::SyncProxyRules() {
  const auto start = Clock::now();
  bool full;
  {
    std::lock_guard lock(mu_);
    full = need_full_;
  }
  StateUpdateResult update = state_.Update();
  if (!prebuilt_.updated_services.empty()) {
    // The first sync (always full) also reports what Prebuild() folded in earlier.
    Absorb(prebuilt_, std::move(update));
    update = std::exchange(prebuilt_, {});
  }
  std::string error;
  auto stats = engine_->Sync(state_, update, full);
  if (!stats) {
    error = stats.error().message;
    metrics_.IncRestoreFailures();
  } else {
    for (const auto& [table, n] : stats->rules) metrics_.SetRules(table, n);
    log::Debug("proxy rules synced", {{"full", full ? "true" : "false"},
                                      {"services", state_.service_ports().size()},
                                      {"changedServices", update.updated_services.size()},
                                      {"bytes", stats->bytes},
                                      {"commits", stats->commits}});
  }

  const auto end = Clock::now();
  const double secs = std::chrono::duration<double>(end - start).count();
  metrics_.ObserveSync(secs, full);
  if (!error.empty()) {
    std::lock_guard lock(mu_);
    last_error_ = error;
    log::Error(
        "proxy rules sync failed",
        {{"error", error}, {"retryIn", std::to_string(options_.retry_period.count()) + "ms"}});
    return false;
  }
  {
    std::lock_guard lock(mu_);
    if (full) {
      need_full_ = false;
      last_full_sync_ = end;
    }
    last_error_.clear();
  }
  const auto wall_now = std::chrono::system_clock::now();
  metrics_.SetLastSync(UnixSeconds(wall_now));
  metrics_.IncSyncs();
  for (const auto& [svc, times] : update.trigger_times) {
    for (WallTime t : times) {
      metrics_.ObserveNetworkProgramming(std::chrono::duration<double>(wall_now - t).count());
    }
  }
  if (update.udp_changed && options_.conntrack_cleanup) {
    auto n = CleanStaleUdpConntrack(state_);
    if (!n) {
      log::Warn("stale UDP conntrack entries not removed", {{"error", n.error().message}});
    } else if (*n > 0) {
      log::Debug("removed stale UDP conntrack entries", {{"count", *n}});
    }
  }
  if (health_server_ && options_.health_check_node_ports &&
      (full || health_checks_stale_ || TouchesHealthChecks(update))) {
    // kube-proxy's LocalReadyEndpoints: ready endpoints on this node, per service.
    std::map<int, ServiceHealthInfo> checks;
    for (const auto& [spn, sp] : state_.service_ports()) {
      if (sp.health_check_node_port == 0) continue;
      auto& info = checks[sp.health_check_node_port];
      info.ns = spn.service.ns;
      info.name = spn.service.name;
      int local = 0;
      for (const auto& ep : state_.EndpointsFor(spn)) local += ep.is_local && ep.ready;
      info.local_endpoints = std::max(info.local_endpoints, local);
    }
    if (checks != health_checks_) {
      // Not under mu_: the server thread calls Health().
      auto r = health_server_->SyncServices(checks);
      health_checks_stale_ = !r;
      if (r) {
        health_checks_ = std::move(checks);
      } else {
        // Retried at the next sync.
        log::Error("health check node ports", {{"error", r.error().message}});
      }
    }
  }
  return true;
}

}  // namespace netproxy
