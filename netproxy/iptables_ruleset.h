#pragma once
// A rendered iptables ruleset as data: tables -> chains -> rules, plus the jumps from the
// built-in chains, and its serialization to iptables-restore input (--noflush).
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace netproxy {

struct IptablesChain {
  std::string name;
  // Per-service chains carry the index of their service port (chains of one service must be
  // committed together); -1 for the top-level chains.
  int group = -1;
  // Each rule is the argument text after "-A <name> ", quoted as iptables-restore reads it.
  std::vector<std::string> rules;
};

struct IptablesTable {
  explicit IptablesTable(std::string n) : name(std::move(n)) {}
  std::string name;  // "filter" or "nat"
  // Chains this commit declares (which flushes them) and fills, in order. A deque so that
  // pointers to chains stay valid while more are added.
  std::deque<IptablesChain> chains;
  // Stale chains: declared (flushed) and then deleted with -X in the same commit.
  std::vector<std::string> deleted_chains;
  // Rules of this table's chains that a partial sync did not rewrite (they stay in the kernel).
  size_t skipped_rules = 0;

  IptablesChain* AddChain(std::string chain_name, int group = -1);
  const IptablesChain* Find(std::string_view chain_name) const;
  size_t WrittenRules() const;
  size_t TotalRules() const { return WrittenRules() + skipped_rules; }
};

// A jump from a built-in chain (PREROUTING, INPUT, ...) into one of ours. The built-in chains
// belong to everyone and are never flushed: the backend inserts the jumps that are missing.
struct IptablesJump {
  std::string table;
  std::string from_chain;  // built-in
  std::string to_chain;
  std::string comment;                  // "" = none
  std::vector<std::string> extra_args;  // matches before the comment
  // "-m conntrack --ctstate NEW -m comment --comment \"...\" -j KUBE-X"
  std::string RuleArgs() const;
};

struct IptablesRuleset {
  IptablesTable filter{"filter"};
  IptablesTable nat{"nat"};
  std::vector<IptablesJump> jumps;
  // Every per-service nat chain that must exist after this commit (including chains of
  // services a partial sync did not rewrite): the reference for stale-chain cleanup.
  std::set<std::string> active_nat_chains;
  bool partial = false;

  // iptables-restore input for --noflush: each table's declared chains, their rules, the
  // given jumps inserted at the top of their built-in chains (-I CHAIN 1), then the deletions.
  std::string Serialize(const std::vector<IptablesJump>& jumps_to_insert = {}) const;

  // The same content as several commits, for iptables-nft-restore --noflush whose cost grows
  // with the square of the chains in one input: first the per-service chains, whole services
  // at a time, about max_chains chains per commit (nothing references them yet, or the old
  // references see each service switch over atomically), then one commit with the top-level
  // chains, the jumps and the deletions. Without per-service chains this is one commit.
  std::vector<std::string> SerializeChunked(const std::vector<IptablesJump>& jumps_to_insert,
                                            size_t max_chains) const;
};

// Quotes an argument for iptables-restore when it holds spaces or quotes.
std::string QuoteArg(std::string_view arg);

}  // namespace netproxy
