#pragma once
// A legacy iptables table edited and committed without libiptc's chain/rule cache: read once
// from the kernel (IPT_SO_GET_INFO + IPT_SO_GET_ENTRIES) and kept as chains whose rules point
// into that copy (a rule this commit does not touch is never decoded: only the offset of a jump
// or fall-through is relocated when the table is written back), edited with the operations of
// an iptables-restore --noflush buffer, written back whole with one IPT_SO_SET_REPLACE, then the
// counters of the rules and policies it kept restored with IPT_SO_SET_ADD_COUNTERS, as
// iptc_commit does. The layout is libiptc's (built-in chains in hook order, then user chains,
// a new one inserted before the first user chain whose name sorts after it), so that
// iptables-legacy-save lists the same table whichever of the two wrote it.
//
// Each edit returns false where libiptc would refuse it (unknown chain, rule number out of
// range, chain still referenced, ...): nothing has reached the kernel then, and the caller
// applies the table through libiptc instead, which names the error.
#include <linux/netfilter/x_tables.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "netproxy/iptc_rule.h"

struct ipt_entry;

namespace netproxy::iptc {

// Memory a table is read into or built in, kept from one commit to the next: at 5k services
// the nat table is ~50 MB, and faulting a fresh buffer of that size in costs more than the
// kernel's copy of it (a VM's page faults are expensive). Transparent huge pages where the
// host allows them (madvise).
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();
  // At least `bytes`, 8-byte aligned, contents undefined (nullptr when mmap fails).
  void* Get(size_t bytes);
  size_t capacity() const { return cap_; }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

struct Scratch {
  Buffer read;      // IPT_SO_GET_ENTRIES
  Buffer write;     // IPT_SO_SET_REPLACE
  Buffer counters;  // the old table's counters, then the ones to add
};

class BlobTable {
 public:
  // Reads `table` through `sock` (a raw IPv4 socket; the table is loaded if it was not) into
  // scratch.read, which must not be used for anything else while this BlobTable lives.
  // The layout must be one libiptc writes, else an error.
  static base::Result<std::unique_ptr<BlobTable>> Read(int sock, const std::string& table,
                                                       Scratch& scratch);

  struct Rule {
    enum class Kind : uint8_t { kExtension, kVerdict, kFallThrough, kJump };
    const ipt_entry* entry = nullptr;  // in the kernel's copy, or a new rule's Entry
    int32_t old_index = -1;            // the kernel's entry number (its counters are kept)
    Kind kind = Kind::kExtension;
    int32_t verdict = 0;  // kVerdict
    uint32_t jump = 0;    // kJump: the chain's index
  };
  struct Chain {
    std::string_view name;  // in the kernel's copy, or in added_names_
    int hook = -1;          // built-in: its NF_INET_* hook
    bool added = false;     // created by this commit
    bool deleted = false;
    // Until a command changes them, a chain's rules are old_rules_[old_begin, +old_count):
    // chains nobody touches cost no allocation of their own.
    bool edited = false;
    uint32_t old_begin = 0, old_count = 0;
    std::vector<Rule> rules;  // edited
    int references = 0;       // rules jumping here
    // Built-in chains: the policy and its counters: policy_old_index >= 0, the kernel's entry
    // and policy_counters as read; else policy_counters as set.
    int32_t policy = 0;
    int32_t policy_old_index = -1;
    xt_counters policy_counters{};
    uint32_t first = 0;  // where its first entry lands in the table written back
  };

  bool IsChain(std::string_view chain) const { return Lookup(chain) >= 0; }
  bool IsBuiltin(std::string_view chain) const;
  size_t Rules(std::string_view chain) const;
  // Chains in table order, as iptc_first_chain/iptc_next_chain list them.
  std::vector<const Chain*> ChainList() const;
  std::span<const Rule> RulesOf(const Chain& c) const;
  // The name iptc_get_target gives a rule's target ("" fall through, verdict, chain, extension).
  std::string TargetName(const Rule& r) const;

  // ":CHAIN POLICY [counters]": a user chain is flushed, or created; a built-in chain gets the
  // policy unless it is "-".
  bool Declare(const std::string& chain, const std::string& policy, const xt_counters* counters);
  bool NewChain(const std::string& chain);
  bool Flush(const std::string& chain);
  bool FlushAll();
  bool DeleteChain(const std::string& chain);
  bool SetPolicy(const std::string& chain, const std::string& policy,
                 const xt_counters* counters);
  // `e` must stay alive until Commit() returns. num: 0-based position (Insert).
  bool Append(const std::string& chain, const Entry& e);
  bool Insert(const std::string& chain, const Entry& e, unsigned num);
  bool DeleteNum(const std::string& chain, unsigned num);
  bool Delete(const std::string& chain, const Entry& want);

  // One IPT_SO_SET_REPLACE, then IPT_SO_SET_ADD_COUNTERS when a kept counter is not zero.
  // replaced: set once the kernel has taken the new table (an error after that is about the
  // counters only, and the table must not be committed again).
  base::Result<> Commit(int sock, bool& replaced, Scratch& scratch);

 private:
  BlobTable() = default;
  // The chain's index, -1 when there is none.
  int64_t Lookup(std::string_view chain) const;
  Chain* Get(std::string_view chain);
  std::vector<Rule>& Edit(Chain& c);
  // Chain indexes in table order: built-in chains, then the user chains of the kernel's copy
  // with the added ones each inserted before the first whose name sorts after it (libiptc's
  // iptc_insert_chain).
  std::vector<uint32_t> Order() const;
  // Classifies a new rule's target; false when it names neither a verdict nor a chain.
  bool Classify(const Entry& e, Rule& r);
  void Drop(const Rule& r);

  std::string table_;
  unsigned valid_hooks_ = 0;
  uint32_t old_entries_ = 0;
  std::vector<Chain> chains_;    // the kernel's, in its order, then the added ones
  std::vector<Rule> old_rules_;  // the kernel's rules, chain after chain
  std::vector<std::pair<std::string_view, uint32_t>> old_by_name_;  // sorted
  std::unordered_map<std::string_view, uint32_t> added_;
  std::deque<std::string> added_names_;
};

}  // namespace netproxy::iptc
