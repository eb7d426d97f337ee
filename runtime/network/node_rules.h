#pragma once
// The node's iptables rules for the pod network, in chains of cubelet's own:
//   nat    CUBELET-POSTROUTING (jumped from POSTROUTING): masquerade pod traffic that leaves the
//          cluster CIDR, keep the source for pod-to-pod and multicast;
//   filter CUBELET-FORWARD (jumped from FORWARD): accept forwarding from and to the pod CIDR, so
//          a FORWARD policy of DROP (Docker sets one) does not cut pods off (as flannel does).
// Rendering is pure (tested against exact text); applying runs one `iptables-restore --noflush`,
// which rewrites the two chains atomically, plus `iptables -C` checks so the jumps are added once.
// This runs when the pod CIDR is set, never per pod.
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/network/cidr.h"
#include "runtime/network/exec.h"

namespace runtime::net {

inline constexpr const char* kPostroutingChain = "CUBELET-POSTROUTING";
inline constexpr const char* kForwardChain = "CUBELET-FORWARD";

struct NodeRulesConfig {
  Ipv4Cidr pod_cidr;
  std::optional<Ipv4Cidr> cluster_cidr;  // none: only the pod CIDR counts as "inside"
  bool masquerade = true;
  bool forward_accept = true;
};

struct IptablesCommands {
  std::string iptables = "iptables";                  // for -C
  std::string iptables_restore = "iptables-restore";  // e.g. iptables-legacy-restore
};

// iptables-restore input (for --noflush). The jump rules are inserted only when asked for.
std::string RenderNodeRules(const NodeRulesConfig& config, bool add_nat_jump, bool add_filter_jump);

// Applies the rules in the calling thread's network namespace.
Result<> ApplyNodeRules(const NodeRulesConfig& config, const IptablesCommands& commands);

}  // namespace runtime::net
