#pragma once
// hostPort support: DNAT from a port of the node to a pod, as the kubelet's hostport manager and
// the CNI portmap plugin do. All mappings of the node live in one nat chain of cubelet's own,
// rendered whole from the persisted mappings and applied with one `iptables-restore --noflush`
// whenever a pod with host ports comes or goes (pods without host ports cost nothing):
//   CUBELET-HOSTPORTS       (from PREROUTING and OUTPUT, local destinations only): one DNAT rule
//                           per mapping;
//   CUBELET-HOSTPORTS-MASQ  (from POSTROUTING): a pod reaching its own host port through the
//                           node gets masqueraded, or its reply would bypass the DNAT.
// Mappings are persisted per sandbox (<dir>/<sandbox id>, one line per mapping), so a restarted
// cubelet renders the same chain and Teardown after a restart removes the right rules.
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/network/cidr.h"
#include "runtime/network/node_rules.h"
#include "runtime/network/pod_network.h"

namespace runtime::net {

inline constexpr const char* kHostPortsChain = "CUBELET-HOSTPORTS";
inline constexpr const char* kHostPortsMasqChain = "CUBELET-HOSTPORTS-MASQ";

struct HostPortEntry {
  std::string sandbox_id;
  std::string protocol;  // tcp|udp|sctp
  std::string host_ip;   // empty: every local address
  int host_port = 0;
  Ipv4 pod_ip;
  int container_port = 0;
  std::string Describe() const;  // "8080/tcp"
};

// Validates and normalizes a pod's mappings (protocol lower-cased, host_ip "0.0.0.0" -> ""),
// dropping those with host_port 0 (no host port asked for).
Result<std::vector<HostPortEntry>> HostPortEntries(const std::string& sandbox_id, Ipv4 pod_ip,
                                                   const std::vector<PortMapping>& mappings);

// Error if any of mine takes a (protocol, port, address) that one of others holds.
Result<> CheckHostPortConflicts(const std::vector<HostPortEntry>& mine,
                                const std::vector<HostPortEntry>& others);

struct HostPortJumps {  // which jumps to our chains are missing and must be inserted
  bool prerouting = false, output = false, postrouting = false;
};
// iptables-restore input for the two chains (pure).
std::string RenderHostPortRules(const std::vector<HostPortEntry>& entries,
                                const HostPortJumps& add);

class HostPortManager {
 public:
  HostPortManager(std::string dir, IptablesCommands commands);

  // Entries of every sandbox but `except`.
  Result<std::vector<HostPortEntry>> LoadAll(const std::string& except = "") const;
  bool Has(const std::string& sandbox_id) const;
  // Checks conflicts with the other sandboxes, persists the sandbox's entries (empty: forgets it)
  // and applies the node's whole chain, in the calling thread's network namespace.
  Result<> Set(const std::string& sandbox_id, const std::vector<HostPortEntry>& entries);
  // Re-applies what is persisted (node start-up, after someone flushed the chains).
  Result<> Apply();

 private:
  Result<> ApplyLocked();
  std::string dir_;
  IptablesCommands commands_;
  mutable std::mutex mu_;
};

}  // namespace runtime::net
