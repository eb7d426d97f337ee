#pragma once
// How the proxy programs the kernel, one implementation per mode (iptables, nftables,
// userspace). The Proxier owns the informer side, pacing, health and metrics; an engine turns
// the proxy state into kernel state, all of it (full) or the changed services only.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "netproxy/proxy_state.h"
#include "netproxy/rules_backend.h"

namespace netproxy {

struct EngineSyncStats {
  std::map<std::string, size_t> rules;  // per table ("filter", "nat") or object kind
  size_t bytes = 0;                     // size of what was sent to the kernel
  size_t commits = 0;
};

class ProxyEngine {
 public:
  virtual ~ProxyEngine() = default;
  virtual std::string Name() const = 0;
  // full: rewrite everything this engine owns (first sync, periodic resync, after a failure);
  // otherwise only what `update.updated_services` touched. Runs on the proxier's sync thread.
  virtual base::Result<EngineSyncStats> Sync(const ProxyState& state,
                                             const StateUpdateResult& update, bool full) = 0;
  // Removes everything this engine may have written (also of earlier runs).
  virtual base::Result<> Cleanup() = 0;
  // Cheap check, run every sync period, that the kernel still holds what the engine wrote
  // (something may have flushed it). false: the proxier forces a full sync.
  virtual base::Result<bool> Intact() { return true; }
};
using ProxyEnginePtr = std::unique_ptr<ProxyEngine>;

struct IptablesRendererConfig;
// The kube-proxy compatible iptables engine over a RulesBackend. nodeport_cidrs are resolved to
// local addresses at each sync (empty = every local address).
ProxyEnginePtr MakeIptablesEngine(RulesBackendPtr backend, const IptablesRendererConfig& config,
                                  std::vector<std::string> nodeport_cidrs);

// This host's IPv4 addresses inside any of `cidrs` (kube-proxy's NodePortAddresses).
std::vector<std::string> LocalAddressesIn(const std::vector<std::string>& cidrs);
bool NodePortMatchAll(const std::vector<std::string>& cidrs);

}  // namespace netproxy
