#pragma once
// The userspace mode's data path (kube-proxy's pre-1.26 userspace proxier, rebuilt on Asio):
// one listener per service port on a free local port, round robin over the usable endpoints,
// ClientIP affinity, the next endpoint tried when a connect fails, TCP relayed with splice(2)
// (zero-copy) and UDP as per-client flows that end after an idle timeout. The engine
// (MakeUserspaceEngine) keeps the listeners in step with the state and redirects service
// traffic to them with iptables.
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "netproxy/proxy_engine.h"
#include "netproxy/rules_backend.h"

namespace netproxy {

struct UserspaceOptions {
  std::chrono::milliseconds udp_idle_timeout{250};  // kube-proxy's --udp-timeout default
  std::chrono::milliseconds connect_timeout{2000};  // per endpoint try
  std::string cluster_cidr;                         // for the redirect rules' comments only
};

class UserspaceProxy {
 public:
  struct Backend {
    std::string ip;
    int port = 0;
    bool operator==(const Backend&) const = default;
  };
  struct PortConfig {
    Protocol protocol = Protocol::kTCP;
    std::vector<Backend> endpoints;  // usable ones, in round-robin order
    bool affinity = false;
    std::chrono::seconds affinity_timeout{10800};
    bool operator==(const PortConfig&) const = default;
  };

  explicit UserspaceProxy(UserspaceOptions options);
  ~UserspaceProxy();
  UserspaceProxy(const UserspaceProxy&) = delete;
  UserspaceProxy& operator=(const UserspaceProxy&) = delete;

  // Makes the listeners match `ports` (keyed by service port name); returns the local port each
  // listens on. Existing listeners keep their port and connections.
  base::Result<std::map<ServicePortName, int>> Sync(
      const std::map<ServicePortName, PortConfig>& ports);

  // Counters for tests and metrics.
  uint64_t connections() const;
  uint64_t connect_failures() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// node_ips: where host-originated traffic to a cluster IP is sent (DNAT), first IPv4 used.
ProxyEnginePtr MakeUserspaceEngine(RulesBackendPtr backend, UserspaceOptions options);

}  // namespace netproxy
