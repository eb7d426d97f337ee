#include "netproxy/iptc_blob.h"

#include <libiptc/libiptc.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace netproxy::iptc {

namespace {

const char* const kHookNames[NF_INET_NUMHOOKS] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT",
                                                  "POSTROUTING"};
static_assert(XT_ALIGN(sizeof(ipt_entry)) == sizeof(ipt_entry));
constexpr uint32_t kStdTargetSize = XT_ALIGN(sizeof(xt_standard_target));
constexpr uint32_t kErrTargetSize = XT_ALIGN(sizeof(xt_error_target));
// A user chain's head (ERROR target naming it), a chain's foot (policy or RETURN), as libiptc
// writes them (IPTCB_CHAIN_START_SIZE, IPTCB_CHAIN_FOOT_SIZE).
constexpr uint32_t kHeadSize = sizeof(ipt_entry) + kErrTargetSize;
constexpr uint32_t kFootSize = sizeof(ipt_entry) + kStdTargetSize;

const xt_entry_target* TargetOf(const ipt_entry* e) {
  return reinterpret_cast<const xt_entry_target*>(reinterpret_cast<const unsigned char*>(e) +
                                                  e->target_offset);
}

bool StandardTarget(const ipt_entry* e) {
  return strcmp(TargetOf(e)->u.user.name, XT_STANDARD_TARGET) == 0;
}

int32_t VerdictOf(const ipt_entry* e) {
  return reinterpret_cast<const xt_standard_target*>(TargetOf(e))->verdict;
}

// libiptc's names of the standard verdicts.
bool VerdictByName(const std::string& name, int32_t& verdict) {
  if (name == "ACCEPT") {
    verdict = -NF_ACCEPT - 1;
  } else if (name == "DROP") {
    verdict = -NF_DROP - 1;
  } else if (name == "QUEUE") {
    verdict = -NF_QUEUE - 1;
  } else if (name == "RETURN") {
    verdict = XT_RETURN;
  } else {
    return false;
  }
  return true;
}

const char* VerdictName(int32_t verdict) {
  switch (verdict) {
    case -NF_ACCEPT - 1:
      return "ACCEPT";
    case -NF_DROP - 1:
      return "DROP";
    case -NF_QUEUE - 1:
      return "QUEUE";
    case XT_RETURN:
      return "RETURN";
    default:
      return "";
  }
}

void SetName(char* dst, size_t cap, std::string_view name) {
  memset(dst, 0, cap);
  memcpy(dst, name.data(), std::min(name.size(), cap - 1));
}

}  // namespace

Buffer::~Buffer() {
  if (p_) munmap(p_, cap_);
}

void* Buffer::Get(size_t bytes) {
  if (bytes <= cap_ && p_) return p_;
  if (p_) munmap(p_, cap_);
  p_ = nullptr;
  cap_ = 0;
  // Room to grow a little without a new mapping; whole huge pages.
  constexpr size_t kHuge = 2 << 20;
  size_t cap = (bytes + bytes / 8 + kHuge - 1) / kHuge * kHuge;
  void* p = mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, cap, MADV_HUGEPAGE);
  p_ = p;
  cap_ = cap;
  return p_;
}

base::Result<std::unique_ptr<BlobTable>> BlobTable::Read(int sock, const std::string& table,
                                                        Scratch& scratch) {
  if (table.empty() || table.size() >= XT_TABLE_MAXNAMELEN) {
    return base::Fail("bad iptables table name " + table);
  }
  ipt_getinfo info{};
  SetName(info.name, sizeof info.name, table);
  socklen_t len = sizeof info;
  if (getsockopt(sock, SOL_IP, IPT_SO_GET_INFO, &info, &len) != 0) {
    return base::Errno("read iptables table " + table + " (IPT_SO_GET_INFO)");
  }
  std::unique_ptr<BlobTable> t(new BlobTable);
  t->table_ = table;
  t->valid_hooks_ = info.valid_hooks;
  t->old_entries_ = info.num_entries;
  const size_t total = sizeof(ipt_get_entries) + info.size;
  auto* ge = static_cast<ipt_get_entries*>(scratch.read.Get(total));
  if (!ge) return base::Errno("read iptables table " + table + ": mmap");
  memset(ge, 0, sizeof *ge);
  SetName(ge->name, sizeof ge->name, table);
  ge->size = info.size;
  len = static_cast<socklen_t>(total);
  if (getsockopt(sock, SOL_IP, IPT_SO_GET_ENTRIES, ge, &len) != 0) {
    return base::Errno("read iptables table " + table + " (IPT_SO_GET_ENTRIES)");
  }

  auto bad = [&](const std::string& why, uint32_t off) {
    return base::Fail("iptables table " + table + " at offset " + std::to_string(off) +
                      ": not a layout libiptc writes (" + why + ")");
  };
  const auto* base = reinterpret_cast<const unsigned char*>(ge->entrytable);
  std::vector<std::pair<uint32_t, uint32_t>> by_first;  // a user chain's first entry, chain
  t->old_rules_.reserve(info.num_entries);
  Chain* cur = nullptr;
  auto close = [&] {
    if (cur) cur->old_count = static_cast<uint32_t>(t->old_rules_.size()) - cur->old_begin;
    cur = nullptr;
  };
  auto open = [&](std::string_view name, int hook) {
    t->chains_.emplace_back();
    cur = &t->chains_.back();
    cur->name = name;
    cur->hook = hook;
    cur->old_begin = static_cast<uint32_t>(t->old_rules_.size());
    t->old_by_name_.emplace_back(name, static_cast<uint32_t>(t->chains_.size() - 1));
  };
  bool ended = false;
  uint32_t index = 0;
  for (uint32_t off = 0; off < info.size; ++index) {
    if (ended) return bad("entries after the final ERROR", off);
    if (info.size - off < sizeof(ipt_entry)) return bad("truncated entry", off);
    const auto* e = reinterpret_cast<const ipt_entry*>(base + off);
    if (e->next_offset < sizeof(ipt_entry) + sizeof(xt_entry_target) ||
        e->next_offset > info.size - off || e->target_offset < sizeof(ipt_entry) ||
        e->target_offset + sizeof(xt_entry_target) > e->next_offset ||
        e->target_offset + TargetOf(e)->u.target_size > e->next_offset) {
      return bad("bad entry sizes", off);
    }
    const uint32_t next = off + e->next_offset;
    for (int h = 0; h < NF_INET_NUMHOOKS; ++h) {
      if (!(info.valid_hooks & (1u << h)) || info.hook_entry[h] != off) continue;
      if (cur) return bad("built-in chain inside another chain", off);
      open(kHookNames[h], h);
    }
    const xt_entry_target* target = TargetOf(e);
    if (strcmp(target->u.user.name, XT_ERROR_TARGET) == 0) {
      if (target->u.target_size < sizeof(xt_error_target)) return bad("short ERROR entry", off);
      if (cur && cur->hook >= 0) return bad("ERROR entry inside a built-in chain", off);
      if (cur) {
        // The previous user chain's last entry is its RETURN.
        if (t->old_rules_.size() == cur->old_begin) {
          return bad("user chain " + std::string(cur->name) + " without RETURN", off);
        }
        const ipt_entry* foot = t->old_rules_.back().entry;
        if (!StandardTarget(foot) || VerdictOf(foot) != XT_RETURN) {
          return bad("user chain " + std::string(cur->name) + " does not end in RETURN", off);
        }
        t->old_rules_.pop_back();
        close();
      }
      const auto* err = reinterpret_cast<const xt_error_target*>(target);
      std::string_view name(err->errorname, strnlen(err->errorname, sizeof err->errorname));
      if (next == info.size) {
        ended = true;
      } else {
        if (name.empty()) return bad("chain without a name", off);
        open(name, -1);
        by_first.emplace_back(next, static_cast<uint32_t>(t->chains_.size() - 1));
      }
      off = next;
      continue;
    }
    if (!cur) return bad("rule outside a chain", off);
    const bool standard = StandardTarget(e);
    if (standard && target->u.target_size != kStdTargetSize) {
      return bad("standard target of size " + std::to_string(target->u.target_size), off);
    }
    if (cur->hook >= 0 && off == info.underflow[cur->hook]) {
      if (!standard || VerdictOf(e) >= 0) return bad("policy of " + std::string(cur->name), off);
      cur->policy = VerdictOf(e);
      cur->policy_old_index = static_cast<int32_t>(index);
      cur->policy_counters = e->counters;  // subtracted at the commit, as libiptc does
      close();
      off = next;
      continue;
    }
    Rule r;
    r.entry = e;
    r.old_index = static_cast<int32_t>(index);
    if (standard) {
      const int32_t v = VerdictOf(e);
      if (v < 0) {
        r.kind = Rule::Kind::kVerdict;
        r.verdict = v;
      } else if (static_cast<uint32_t>(v) == next) {
        r.kind = Rule::Kind::kFallThrough;
      } else {
        r.kind = Rule::Kind::kJump;
        r.verdict = v;  // resolved below, once every chain is known
      }
    }
    t->old_rules_.push_back(r);
    off = next;
  }
  if (!ended || cur) return bad("no final ERROR entry", info.size);
  if (index != info.num_entries) return bad("entry count", info.size);
  std::sort(t->old_by_name_.begin(), t->old_by_name_.end());
  for (size_t i = 1; i < t->old_by_name_.size(); ++i) {
    if (t->old_by_name_[i].first == t->old_by_name_[i - 1].first) {
      return bad("chain " + std::string(t->old_by_name_[i].first) + " twice", 0);
    }
  }
  for (int h = 0; h < NF_INET_NUMHOOKS; ++h) {
    if ((info.valid_hooks & (1u << h)) && !t->IsBuiltin(kHookNames[h])) {
      return bad(std::string("no chain ") + kHookNames[h], 0);
    }
  }
  // by_first is in offset order (chains are).
  for (auto& r : t->old_rules_) {
    if (r.kind != Rule::Kind::kJump) continue;
    const uint32_t to = static_cast<uint32_t>(r.verdict);
    auto it = std::lower_bound(by_first.begin(), by_first.end(),
                               std::pair<uint32_t, uint32_t>(to, 0));
    if (it == by_first.end() || it->first != to) return bad("jump to " + std::to_string(to), 0);
    r.jump = it->second;
    ++t->chains_[r.jump].references;
  }
  return t;
}

int64_t BlobTable::Lookup(std::string_view chain) const {
  if (!added_.empty()) {
    auto it = added_.find(chain);
    if (it != added_.end()) return it->second;
  }
  auto it = std::lower_bound(old_by_name_.begin(), old_by_name_.end(),
                             std::pair<std::string_view, uint32_t>(chain, 0));
  if (it != old_by_name_.end() && it->first == chain && !chains_[it->second].deleted) {
    return it->second;
  }
  return -1;
}

BlobTable::Chain* BlobTable::Get(std::string_view chain) {
  int64_t i = Lookup(chain);
  return i < 0 ? nullptr : &chains_[static_cast<size_t>(i)];
}

bool BlobTable::IsBuiltin(std::string_view chain) const {
  int64_t i = Lookup(chain);
  return i >= 0 && chains_[static_cast<size_t>(i)].hook >= 0;
}

std::span<const BlobTable::Rule> BlobTable::RulesOf(const Chain& c) const {
  if (c.edited) return c.rules;
  return std::span<const Rule>(old_rules_.data() + c.old_begin, c.old_count);
}

std::vector<BlobTable::Rule>& BlobTable::Edit(Chain& c) {
  if (!c.edited) {
    auto old = RulesOf(c);
    c.rules.assign(old.begin(), old.end());
    c.edited = true;
  }
  return c.rules;
}

size_t BlobTable::Rules(std::string_view chain) const {
  int64_t i = Lookup(chain);
  return i < 0 ? 0 : RulesOf(chains_[static_cast<size_t>(i)]).size();
}

std::vector<uint32_t> BlobTable::Order() const {
  std::vector<uint32_t> added;
  for (const auto& [_, i] : added_) added.push_back(i);
  std::sort(added.begin(), added.end(),
            [&](uint32_t a, uint32_t b) { return chains_[a].name < chains_[b].name; });
  std::vector<uint32_t> out;
  out.reserve(chains_.size());
  size_t next = 0;
  for (uint32_t i = 0; i < chains_.size(); ++i) {
    const Chain& c = chains_[i];
    if (c.added) break;  // the kernel's chains come first
    if (c.deleted) continue;
    if (c.hook < 0) {
      while (next < added.size() && chains_[added[next]].name < c.name) out.push_back(added[next++]);
    }
    out.push_back(i);
  }
  while (next < added.size()) out.push_back(added[next++]);
  return out;
}

std::vector<const BlobTable::Chain*> BlobTable::ChainList() const {
  std::vector<const Chain*> out;
  for (uint32_t i : Order()) out.push_back(&chains_[i]);
  return out;
}

std::string BlobTable::TargetName(const Rule& r) const {
  switch (r.kind) {
    case Rule::Kind::kJump:
      return std::string(chains_[r.jump].name);
    case Rule::Kind::kVerdict:
      return VerdictName(r.verdict);
    case Rule::Kind::kFallThrough:
      return "";
    case Rule::Kind::kExtension:
      break;
  }
  const xt_entry_target* t = TargetOf(r.entry);
  return std::string(t->u.user.name, strnlen(t->u.user.name, sizeof t->u.user.name));
}

bool BlobTable::Classify(const Entry& e, Rule& r) {
  r.entry = e.get();
  r.old_index = -1;
  if (!e.standard_target()) {
    r.kind = Rule::Kind::kExtension;
    return true;
  }
  const std::string& t = e.target();
  if (t.empty()) {
    r.kind = Rule::Kind::kFallThrough;
  } else if (VerdictByName(t, r.verdict)) {
    r.kind = Rule::Kind::kVerdict;
  } else {
    int64_t i = Lookup(t);
    // Unknown target, or a jump to a built-in chain.
    if (i < 0 || chains_[static_cast<size_t>(i)].hook >= 0) return false;
    r.kind = Rule::Kind::kJump;
    r.jump = static_cast<uint32_t>(i);
  }
  return true;
}

void BlobTable::Drop(const Rule& r) {
  if (r.kind == Rule::Kind::kJump) --chains_[r.jump].references;
}

bool BlobTable::Declare(const std::string& chain, const std::string& policy,
                        const xt_counters* counters) {
  Chain* c = Get(chain);
  if (c && c->hook >= 0) {
    if (policy.empty() || policy == "-") return true;
    return SetPolicy(chain, policy, counters);
  }
  return c ? Flush(chain) : NewChain(chain);
}

bool BlobTable::NewChain(const std::string& chain) {
  int32_t v;
  if (chain.empty() || chain.size() >= sizeof(xt_chainlabel) || IsChain(chain) ||
      VerdictByName(chain, v)) {
    return false;
  }
  added_names_.push_back(chain);
  chains_.emplace_back();
  Chain& c = chains_.back();
  c.name = added_names_.back();
  c.added = true;
  c.edited = true;
  added_.emplace(c.name, static_cast<uint32_t>(chains_.size() - 1));
  return true;
}

bool BlobTable::Flush(const std::string& chain) {
  Chain* c = Get(chain);
  if (!c) return false;
  for (const auto& r : RulesOf(*c)) Drop(r);
  c->rules.clear();
  c->edited = true;
  return true;
}

bool BlobTable::FlushAll() {
  for (auto& c : chains_) {
    if (c.deleted) continue;
    for (const auto& r : RulesOf(c)) Drop(r);
    c.rules.clear();
    c.edited = true;
  }
  return true;
}

bool BlobTable::DeleteChain(const std::string& chain) {
  Chain* c = Get(chain);
  if (!c || c->hook >= 0 || c->references > 0 || !RulesOf(*c).empty()) return false;
  c->deleted = true;
  if (c->added) added_.erase(c->name);
  return true;
}

bool BlobTable::SetPolicy(const std::string& chain, const std::string& policy,
                          const xt_counters* counters) {
  Chain* c = Get(chain);
  if (!c || c->hook < 0) return false;
  if (policy == "ACCEPT") {
    c->policy = -NF_ACCEPT - 1;
  } else if (policy == "DROP") {
    c->policy = -NF_DROP - 1;
  } else {
    return false;
  }
  // iptc_set_policy: the given counters, or zero.
  c->policy_old_index = -1;
  c->policy_counters = counters ? *counters : xt_counters{};
  return true;
}

bool BlobTable::Append(const std::string& chain, const Entry& e) {
  Chain* c = Get(chain);
  Rule r;
  if (!c || !Classify(e, r)) return false;
  if (r.kind == Rule::Kind::kJump) ++chains_[r.jump].references;
  Edit(*c).push_back(r);
  return true;
}

bool BlobTable::Insert(const std::string& chain, const Entry& e, unsigned num) {
  Chain* c = Get(chain);
  Rule r;
  if (!c || num > RulesOf(*c).size() || !Classify(e, r)) return false;
  if (r.kind == Rule::Kind::kJump) ++chains_[r.jump].references;
  auto& rules = Edit(*c);
  rules.insert(rules.begin() + num, r);
  return true;
}

bool BlobTable::DeleteNum(const std::string& chain, unsigned num) {
  Chain* c = Get(chain);
  if (!c || num >= RulesOf(*c).size()) return false;
  auto& rules = Edit(*c);
  Drop(rules[num]);
  rules.erase(rules.begin() + num);
  return true;
}

bool BlobTable::Delete(const std::string& chain, const Entry& want) {
  Chain* c = Get(chain);
  if (!c) return false;
  auto rules = RulesOf(*c);
  for (size_t i = 0; i < rules.size(); ++i) {
    if (SameRule(rules[i].entry, TargetName(rules[i]), want)) {
      auto& edit = Edit(*c);
      Drop(edit[i]);
      edit.erase(edit.begin() + static_cast<ptrdiff_t>(i));
      return true;
    }
  }
  return false;
}

base::Result<> BlobTable::Commit(int sock, bool& replaced, Scratch& scratch) {
  replaced = false;
  // Offsets first: a jump's verdict is where its chain's first entry lands.
  const std::vector<uint32_t> order = Order();
  uint64_t size = 0;
  uint32_t entries = 0;
  for (uint32_t i : order) {
    Chain& c = chains_[i];
    if (c.hook < 0) {
      size += kHeadSize;
      ++entries;
    }
    c.first = static_cast<uint32_t>(size);
    auto rules = RulesOf(c);
    for (const auto& r : rules) size += r.entry->next_offset;
    entries += static_cast<uint32_t>(rules.size());
    size += kFootSize;
    ++entries;
  }
  size += kHeadSize;  // the final ERROR entry
  ++entries;
  if (size > UINT32_MAX / 2) return base::Fail("iptables table " + table_ + " too large");

  auto* repl = static_cast<ipt_replace*>(scratch.write.Get(sizeof(ipt_replace) + size));
  // The kernel returns the replaced table's counters in the first part (read at the switch);
  // the counters to add to the new table (it starts at zero) go after them: a kept rule's or
  // policy's from the old table, a new rule's or a set policy's as given.
  const size_t old_n = std::max<uint32_t>(old_entries_, 1);
  auto* counters = static_cast<xt_counters*>(
      scratch.counters.Get(sizeof(xt_counters_info) + (old_n + entries) * sizeof(xt_counters)));
  if (!repl || !counters) return base::Errno("build iptables table " + table_ + ": mmap");
  xt_counters* old_counters = counters;
  auto* info = reinterpret_cast<xt_counters_info*>(counters + old_n);
  xt_counters* add = info->counters;
  memset(repl, 0, sizeof *repl);
  SetName(repl->name, sizeof repl->name, table_);
  repl->valid_hooks = valid_hooks_;
  repl->num_entries = entries;
  repl->size = static_cast<uint32_t>(size);
  repl->num_counters = old_entries_;
  repl->counters = old_counters;

  std::vector<std::pair<uint32_t, uint32_t>> kept;  // new index, old index
  kept.reserve(old_entries_);
  auto* out = reinterpret_cast<unsigned char*>(repl->entries);
  uint32_t off = 0, idx = 0;
  uint32_t policy_index[NF_INET_NUMHOOKS] = {};
  auto head = [&](std::string_view name) {
    memset(out + off, 0, kHeadSize);
    auto* e = reinterpret_cast<ipt_entry*>(out + off);
    e->target_offset = sizeof(ipt_entry);
    e->next_offset = kHeadSize;
    auto* t = reinterpret_cast<xt_error_target*>(out + off + sizeof(ipt_entry));
    t->target.u.user.target_size = kErrTargetSize;
    SetName(t->target.u.user.name, sizeof t->target.u.user.name, XT_ERROR_TARGET);
    SetName(t->errorname, sizeof t->errorname, name);
    add[idx] = xt_counters{};
    off += kHeadSize;
    ++idx;
  };
  auto foot = [&](int32_t verdict) {
    memset(out + off, 0, kFootSize);
    auto* e = reinterpret_cast<ipt_entry*>(out + off);
    e->target_offset = sizeof(ipt_entry);
    e->next_offset = kFootSize;
    auto* t = reinterpret_cast<xt_standard_target*>(out + off + sizeof(ipt_entry));
    t->target.u.user.target_size = kStdTargetSize;
    t->verdict = verdict;
    off += kFootSize;
    ++idx;
  };
  for (uint32_t i : order) {
    const Chain& c = chains_[i];
    if (c.hook >= 0) {
      repl->hook_entry[c.hook] = off;
    } else {
      head(c.name);
    }
    for (const auto& r : RulesOf(c)) {
      const uint16_t n = r.entry->next_offset;
      memcpy(out + off, r.entry, n);
      auto* e = reinterpret_cast<ipt_entry*>(out + off);
      e->counters = xt_counters{};
      e->comefrom = 0;
      if (r.kind != Rule::Kind::kExtension) {
        auto* t = reinterpret_cast<xt_standard_target*>(out + off + e->target_offset);
        // As libiptc compiles a standard target: no name (a jump's chain is its offset).
        memset(t->target.u.user.name, 0, sizeof t->target.u.user.name);
        t->target.u.user.revision = 0;
        if (r.kind == Rule::Kind::kVerdict) {
          t->verdict = r.verdict;
        } else if (r.kind == Rule::Kind::kFallThrough) {
          t->verdict = static_cast<int32_t>(off + n);
        } else {
          t->verdict = static_cast<int32_t>(chains_[r.jump].first);
        }
      }
      if (r.old_index >= 0) {
        kept.emplace_back(idx, static_cast<uint32_t>(r.old_index));
      } else {
        add[idx] = r.entry->counters;
      }
      off += n;
      ++idx;
    }
    if (c.hook >= 0) {
      repl->underflow[c.hook] = off;
      policy_index[c.hook] = idx;
      if (c.policy_old_index >= 0) {
        kept.emplace_back(idx, static_cast<uint32_t>(c.policy_old_index));
      } else {
        add[idx] = c.policy_counters;
      }
      foot(c.policy);
    } else {
      add[idx] = xt_counters{};
      foot(XT_RETURN);
    }
  }
  head(XT_ERROR_TARGET);

  if (setsockopt(sock, SOL_IP, IPT_SO_SET_REPLACE, repl, sizeof(ipt_replace) + size) != 0) {
    return base::Errno("replace iptables table " + table_ + " (IPT_SO_SET_REPLACE)");
  }
  replaced = true;
  bool any = false;
  for (auto [n, o] : kept) add[n] = old_counters[o];
  // A kept policy: libiptc (COUNTER_MAP_ZEROED) sets it to what was counted between its read
  // and the switch, i.e. every legacy iptables commit restarts the built-in chains' policy
  // counters; iptables-legacy-save shows the same whichever wrote the table.
  for (const auto& c : chains_) {
    if (c.deleted || c.hook < 0 || c.policy_old_index < 0) continue;
    xt_counters& a = add[policy_index[c.hook]];
    a.pcnt -= c.policy_counters.pcnt;
    a.bcnt -= c.policy_counters.bcnt;
  }
  for (uint32_t i = 0; i < entries && !any; ++i) any = add[i].pcnt || add[i].bcnt;
  if (!any) return {};
  memset(info, 0, sizeof *info);
  SetName(info->name, sizeof info->name, table_);
  info->num_counters = entries;
  if (setsockopt(sock, SOL_IP, IPT_SO_SET_ADD_COUNTERS, info,
                 sizeof(xt_counters_info) + entries * sizeof(xt_counters)) != 0) {
    return base::Errno("restore the counters of iptables table " + table_ +
                       " (IPT_SO_SET_ADD_COUNTERS; the rules are committed)");
  }
  return {};
}

}  // namespace netproxy::iptc
