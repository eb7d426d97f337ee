#pragma once
// iptables rules as the kernel takes them (struct ipt_entry + xt_entry_match/xt_entry_target),
// built from the argument text iptables-restore reads ("-m tcp -p tcp --dport 80 -j KUBE-SVC-X")
// without libxtables: the matches and targets the proxy writes are encoded here, with the
// revisions and defaults iptables 1.8.9 (legacy) uses, so that iptables-legacy-save prints the
// same rules whichever wrote them. Anything else is an error naming the option.
// Also the reverse: a kernel rule printed as iptables-save does (for the snapshot's jumps).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

struct ipt_entry;

namespace netproxy::iptc {

// Splits an iptables-restore line into words: double quotes group, and inside them a backslash
// escapes the next character.
base::Result<> SplitWords(std::string_view line, std::vector<std::string>& words);

// One rule: ipt_entry, its matches, its target, contiguous and 8-byte aligned.
class Entry {
 public:
  const ipt_entry* get() const;
  ipt_entry* get();
  size_t size() const { return size_; }
  // "" (no -j: fall through), "ACCEPT", "DROP", "RETURN", "QUEUE", a chain name, or a target
  // extension ("DNAT", ...).
  const std::string& target() const { return target_; }
  // Whether the target is a standard one (verdict or jump to a chain) rather than an extension.
  bool standard_target() const { return standard_; }

 private:
  friend class EntryBuilder;
  std::vector<uint64_t> storage_;
  size_t size_ = 0;
  std::string target_;
  bool standard_ = true;
};

// Builds an Entry from iptables arguments: words[begin..]. Counters default to zero.
base::Result<Entry> BuildEntry(const std::vector<std::string>& words, size_t begin = 0);

// Whether kernel rule `e` whose target iptc_get_target() names `target` is the rule `want`
// (as iptables -D RULE decides: same addresses, interfaces, protocol, matches and target).
bool SameRule(const ipt_entry* e, std::string_view target, const Entry& want);

// "-A CHAIN ..." as iptables-save prints it, for the matches and targets the proxy uses in the
// built-in chains (comment, conntrack, addrtype, mark, tcp/udp ports, MARK); others are printed
// as "--xt-raw REVISION:HEX", which BuildEntry reads back (for -D of the same rule).
std::string FormatRule(std::string_view chain, const ipt_entry* e, std::string_view target);

}  // namespace netproxy::iptc
