#pragma once
// The built-in pod network: one Linux bridge per node holding the pod CIDR's first address, one
// veth pair per pod (eth0 inside the pod), host-local IPAM, masquerade for traffic leaving the
// cluster CIDR, hostPort DNAT. Everything through netlink (libnl); iptables-restore runs only for
// the node's rules (once per pod CIDR) and for pods that ask for host ports.
//
// The "node" namespace is the network namespace of the thread that constructs the object; all
// node-side work happens there whatever thread later calls in (several nodes can run in one
// process's threads, each in its own namespace, which the tests use).
// Thread-safe: Setup/Teardown of different sandboxes run in parallel (each call opens its own
// netlink sockets; IPAM serializes with a mutex + flock).
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "runtime/network/cidr.h"
#include "runtime/network/host_local_ipam.h"
#include "runtime/network/host_ports.h"
#include "runtime/network/link.h"
#include "runtime/network/netns.h"
#include "runtime/network/node_rules.h"
#include "runtime/network/pod_network.h"

namespace runtime::net {

struct BridgeNetworkOptions {
  std::string bridge_name = "cubelet0";
  // Persistent state: IPAM in <state_dir>/ipam, host port mappings in <state_dir>/hostports
  // (e.g. state_dir = <root-dir>/network).
  std::string state_dir = "/var/lib/cubelet/network";
  // Destinations inside it keep the pod source address; empty: the pod CIDR only.
  std::string cluster_cidr;
  unsigned mtu = 1500;
  bool hairpin = true;
  bool masquerade = true;
  // Accept forwarding from/to the pod CIDR in filter/FORWARD (see node_rules.h).
  bool forward_accept = true;
  // hostPort DNAT (host_ports.h); off: mappings are ignored with a warning and no iptables runs
  // for them.
  bool host_ports = true;
  std::string interface_name = "eth0";  // inside the pod
  IptablesCommands iptables;
};

class BridgeNetwork : public PodNetwork {
 public:
  explicit BridgeNetwork(BridgeNetworkOptions options);
  ~BridgeNetwork() override;

  Result<> EnsureNodeNetwork(const std::string& pod_cidr) override;
  Result<SandboxNetStatus> Setup(const SandboxNetRequest& req) override;
  Result<> Teardown(const SandboxNetRequest& req) override;
  bool Ready(std::string* reason, std::string* message) const override;

  // Start-up recovery: frees the addresses and deletes the host veths of sandboxes not in
  // live_sandbox_ids. Returns how many sandboxes were cleaned.
  Result<size_t> GarbageCollect(const std::set<std::string>& live_sandbox_ids) override;

  // "veth" + first 8 hex digits of the sandbox id: the pod's host-side interface.
  static std::string HostVethName(const std::string& sandbox_id);
  const BridgeNetworkOptions& options() const { return options_; }
  HostLocalIpam& ipam() { return ipam_; }
  HostPortManager& host_ports() { return host_ports_; }

 private:
  Result<const NetNamespace*> NodeNs() const;
  std::optional<Ipv4Cidr> PodCidr() const;
  // Bridge up with the gateway address of cidr: creates or repairs it.
  Result<Bridge> EnsureBridge(NetlinkSocket& node_sock, const Ipv4Cidr& cidr) const;
  Result<SandboxNetStatus> DoSetup(const SandboxNetRequest& req, const Ipv4Cidr& cidr);

  const BridgeNetworkOptions options_;
  std::optional<NetNamespace> node_ns_;
  std::string node_ns_error_;
  HostLocalIpam ipam_;
  HostPortManager host_ports_;

  mutable std::mutex mu_;  // guards the fields below
  std::optional<Ipv4Cidr> pod_cidr_;
  std::string not_ready_message_ = "no pod CIDR";
  std::mutex node_setup_mu_;  // one EnsureNodeNetwork at a time
};

}  // namespace runtime::net
