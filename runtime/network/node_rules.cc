#include "runtime/network/node_rules.h"

#include <vector>

#include "base/strings.h"
#include "runtime/network/exec.h"

namespace runtime::net {
namespace {

constexpr const char* kNatJumpComment = "cubelet: pod masquerade";
constexpr const char* kFilterJumpComment = "cubelet: pod forwarding";

std::string Quote(const char* s) { return std::string("\"") + s + "\""; }

}  // namespace

std::string RenderNodeRules(const NodeRulesConfig& c, bool add_nat_jump, bool add_filter_jump) {
  const std::string pod = c.pod_cidr.ToString();
  const std::string inside = (c.cluster_cidr ? *c.cluster_cidr : c.pod_cidr).ToString();
  std::string out;
  if (c.masquerade) {
    out += "*nat\n";
    out += std::string(":") + kPostroutingChain + " - [0:0]\n";
    out += std::string("-A ") + kPostroutingChain + " -s " + pod + " -d " + inside +
           " -m comment --comment \"cubelet: inside the cluster network, keep source\" -j RETURN\n";
    out += std::string("-A ") + kPostroutingChain + " -s " + pod +
           " -d 224.0.0.0/4 -m comment --comment \"cubelet: multicast, keep source\" -j RETURN\n";
    out += std::string("-A ") + kPostroutingChain + " -s " + pod +
           " -m comment --comment \"cubelet: pod leaving the cluster network\" -j MASQUERADE\n";
    if (add_nat_jump) {
      out += std::string("-I POSTROUTING -m comment --comment ") + Quote(kNatJumpComment) + " -j " +
             kPostroutingChain + "\n";
    }
    out += "COMMIT\n";
  }
  if (c.forward_accept) {
    out += "*filter\n";
    out += std::string(":") + kForwardChain + " - [0:0]\n";
    out += std::string("-A ") + kForwardChain + " -s " + pod +
           " -m comment --comment \"cubelet: from pods\" -j ACCEPT\n";
    out += std::string("-A ") + kForwardChain + " -d " + pod +
           " -m comment --comment \"cubelet: to pods\" -j ACCEPT\n";
    if (add_filter_jump) {
      out += std::string("-I FORWARD -m comment --comment ") + Quote(kFilterJumpComment) + " -j " +
             kForwardChain + "\n";
    }
    out += "COMMIT\n";
  }
  return out;
}

Result<> ApplyNodeRules(const NodeRulesConfig& c, const IptablesCommands& cmd) {
  if (!c.masquerade && !c.forward_accept) return {};
  // `-C` fails both when the jump is missing and when our chain does not exist yet; either way
  // the jump must be added.
  auto has_jump = [&](const char* table, const char* chain, const char* comment,
                      const char* target) -> Result<bool> {
    std::string out;
    auto rc = RunProgram({cmd.iptables, "-w", "-t", table, "-C", chain, "-m", "comment",
                          "--comment", comment, "-j", target},
                         "", &out);
    if (!rc) return tl::unexpected(rc.error());
    return *rc == 0;
  };
  bool nat_jump = false, filter_jump = false;
  if (c.masquerade) {
    auto h = has_jump("nat", "POSTROUTING", kNatJumpComment, kPostroutingChain);
    if (!h)
      return tl::unexpected(
          h.error().Wrap("check iptables jump to " + std::string(kPostroutingChain)));
    nat_jump = !*h;
  }
  if (c.forward_accept) {
    auto h = has_jump("filter", "FORWARD", kFilterJumpComment, kForwardChain);
    if (!h)
      return tl::unexpected(h.error().Wrap("check iptables jump to " + std::string(kForwardChain)));
    filter_jump = !*h;
  }
  std::string rules = RenderNodeRules(c, nat_jump, filter_jump);
  std::string out;
  auto rc = RunProgram({cmd.iptables_restore, "-w", "--noflush"}, rules, &out);
  if (!rc) return tl::unexpected(rc.error().Wrap("apply pod network iptables rules"));
  if (*rc != 0) {
    return base::Fail("apply pod network iptables rules: " + cmd.iptables_restore +
                      " exited with status " + std::to_string(*rc) + ": " +
                      std::string(base::Trim(out)));
  }
  return {};
}

}  // namespace runtime::net
