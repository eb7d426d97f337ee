#pragma once
// Pod network seam inside the embedded runtime. The sandbox code creates the pod's network
// namespace (pinned by a bind mount at netns_path) and then asks a PodNetwork to plug it in.
// Implementations: BridgeNetwork (built-in: node bridge + veth + host-local IPAM via libnl) and
// CniNetwork (runs CNI plugins). Setup must be idempotent per sandbox_id after a crash (a second
// Setup for the same id returns the existing address), Teardown must be idempotent and work after
// a cubelet restart from what is persisted on disk.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"

namespace runtime::net {

using base::Result;

struct PortMapping {
  std::string protocol = "tcp";  // tcp|udp|sctp
  int container_port = 0;
  int host_port = 0;
  std::string host_ip;
};

struct SandboxNetRequest {
  std::string sandbox_id;  // 64-hex id
  std::string netns_path;  // e.g. /run/cubelet/netns/<id>
  std::string pod_namespace;
  std::string pod_name;
  std::string pod_uid;
  std::vector<PortMapping> port_mappings;
};

struct SandboxNetStatus {
  std::string ip;  // primary pod IPv4, "10.244.1.5"
  std::vector<std::string> additional_ips;
  std::string interface = "eth0";
  std::string gateway;
};

class PodNetwork {
 public:
  virtual ~PodNetwork() = default;
  // Node-level setup (bridge, forwarding, masquerade); called once at start and when the pod
  // CIDR becomes known (UpdateRuntimeConfig). Returns an error while no pod CIDR is known.
  virtual Result<> EnsureNodeNetwork(const std::string& pod_cidr) = 0;
  virtual Result<SandboxNetStatus> Setup(const SandboxNetRequest& req) = 0;
  virtual Result<> Teardown(const SandboxNetRequest& req) = 0;
  // "NetworkReady" condition: false with a reason until the node network is usable.
  virtual bool Ready(std::string* reason, std::string* message) const = 0;
  // Start-up recovery: releases what sandboxes not in live_sandbox_ids still hold (addresses,
  // host interfaces, port mappings, cached results). Returns how many sandboxes were cleaned.
  virtual Result<size_t> GarbageCollect(const std::set<std::string>& live_sandbox_ids) {
    (void)live_sandbox_ids;
    return size_t{0};
  }
};

using PodNetworkPtr = std::unique_ptr<PodNetwork>;

}  // namespace runtime::net
