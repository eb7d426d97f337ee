#pragma once
// The seam between the proxy and the kernel's iptables: read what is there (chains, our jumps
// from the built-in chains) and apply one iptables-restore buffer atomically (--noflush).
// IptablesRestoreBackend (iptables_restore_backend.h) runs the host's iptables-restore;
// FakeRulesBackend (below) records what it was asked, for unit tests.
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "netproxy/iptables_ruleset.h"

namespace netproxy {

// What iptables-save shows of the tables the proxy uses.
struct IptablesSnapshot {
  struct Table {
    std::set<std::string> chains;
    // Rules of built-in chains that jump to a KUBE-* chain, as iptables-save prints them
    // ("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES").
    std::vector<std::string> kube_jumps;
  };
  std::map<std::string, Table> tables;  // "filter", "nat", "mangle", ...

  // Parses iptables-save output.
  static IptablesSnapshot Parse(std::string_view save_output);
  bool HasChain(const std::string& table, const std::string& chain) const;
};

class RulesBackend {
 public:
  virtual ~RulesBackend() = default;
  // "iptables-nft", "iptables-legacy", "fake": for logs and metrics.
  virtual std::string Name() const = 0;
  virtual base::Result<IptablesSnapshot> Snapshot() = 0;
  // Applies an iptables-restore buffer with --noflush --counters as one transaction per table.
  virtual base::Result<> Restore(const std::string& buffer) = 0;
  // > 0: large full syncs go in commits of about this many per-service chains (see
  // IptablesRuleset::SerializeChunked). 0: always one commit.
  virtual size_t ChunkChains() const { return 0; }
  // Whether nat's KUBE-PROXY-CANARY chain still holds its rule: a cheap check (one small
  // listing) that nobody flushed or deleted the proxy's rules (firewall reloads do).
  virtual base::Result<bool> CanaryPresent() = 0;
};

// Written at each full sync (in the nat commit of the ruleset); see RulesBackend::CanaryPresent.
inline constexpr const char* kCanaryChain = "KUBE-PROXY-CANARY";
inline constexpr const char* kCanaryRule = "-j RETURN";
inline constexpr const char* kCanaryRestore =
    "*nat\n:KUBE-PROXY-CANARY - [0:0]\n-A KUBE-PROXY-CANARY -j RETURN\nCOMMIT\n";
using RulesBackendPtr = std::unique_ptr<RulesBackend>;

// The jumps of `wanted` that the snapshot lacks (matched by table, built-in chain and target).
std::vector<IptablesJump> MissingJumps(const IptablesSnapshot& snap,
                                       const std::vector<IptablesJump>& wanted);

// A restore buffer that removes everything the proxy may have created: jumps from the built-in
// chains into KUBE-* chains of the proxy, and the proxy's chains in filter and nat (including
// per-service ones). Empty when there is nothing to remove.
std::string CleanupBuffer(const IptablesSnapshot& snap);

// Removes everything a previous run left (kube-proxy's CleanupLeftovers), in one commit.
base::Result<> CleanupLeftovers(RulesBackend& backend);

// Records calls for unit tests; the snapshot it returns reflects the chains restored so far.
class FakeRulesBackend final : public RulesBackend {
 public:
  std::string Name() const override { return "fake"; }
  base::Result<IptablesSnapshot> Snapshot() override;
  base::Result<> Restore(const std::string& buffer) override;
  base::Result<bool> CanaryPresent() override;

  std::string last_buffer() const;
  std::vector<std::string> buffers() const;
  size_t restore_count() const;
  // The next n Restore() calls fail.
  void FailNext(int n = 1);
  void SetSnapshot(IptablesSnapshot s);
  void SetChunkChains(size_t n) { chunk_chains_ = n; }
  size_t ChunkChains() const override { return chunk_chains_; }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> buffers_;
  IptablesSnapshot snapshot_;
  int fail_next_ = 0;
  size_t chunk_chains_ = 0;
};

}  // namespace netproxy
