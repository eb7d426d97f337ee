#pragma once
// kube-proxy's two health endpoints, served by one Asio thread:
//  - /healthz (and /livez) on --healthz-bind-address (kube-proxy: 0.0.0.0:10256): 200 while
//    rules are fresh, 503 when a change has waited more than 2 x sync period; JSON body with
//    lastUpdated and currentTime.
//  - /metrics on --metrics-bind-address (kube-proxy: 127.0.0.1:10249): the Prometheus text of
//    the kubeproxy_* metrics.
//  - one listener per healthCheckNodePort of LoadBalancer services with externalTrafficPolicy
//    Local: 200 when this node has local endpoints, else 503, so that cloud load balancers
//    send traffic only to nodes that can serve it. Body as kube-proxy:
//    {"service":{"namespace":"ns","name":"svc"},"localEndpoints":N,"serviceProxyHealthy":true}
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/result.h"
#include "netproxy/proxier_health.h"

namespace netproxy {

struct ServiceHealthInfo {
  std::string ns;
  std::string name;
  int local_endpoints = 0;
  bool operator==(const ServiceHealthInfo&) const = default;
};

class HealthServer {
 public:
  // healthz_address "IP:PORT" ("" = no /healthz listener; port 0 = any free port). `health` is
  // called for each request; `metrics` for each /metrics request on metrics_address ("" = none).
  static base::Result<std::unique_ptr<HealthServer>> Start(
      const std::string& healthz_address, std::function<ProxierHealth()> health,
      const std::string& metrics_address = "", std::function<std::string()> metrics = nullptr);
  ~HealthServer();
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // The port /healthz listens on (after port 0 was given), 0 when none.
  int healthz_port() const;
  int metrics_port() const;  // the /metrics listener's port, 0 when none

  // Opens listeners for new health check node ports, closes those no longer wanted, and updates
  // the local endpoint counts. Errors (a port in use) are returned but the others still work.
  base::Result<> SyncServices(const std::map<int, ServiceHealthInfo>& by_port);

 private:
  struct Impl;
  explicit HealthServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace netproxy
