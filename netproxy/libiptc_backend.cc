#include "netproxy/libiptc_backend.h"

#include <fcntl.h>
#include <libiptc/libiptc.h>
#include <sys/file.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "netproxy/iptc_blob.h"
#include "netproxy/iptc_rule.h"

namespace netproxy {

namespace {

// "iptables (libiptc) line 12: table nat, chain KUBE-SVC-X, rule \"-A ...\": <cause>"
std::string LineError(int line_no, const std::string& table, std::string_view chain,
                      std::string_view rule, const std::string& cause) {
  std::string msg = "iptables (libiptc) line " + std::to_string(line_no) + ": table " +
                    (table.empty() ? std::string("-") : table);
  if (!chain.empty()) msg += ", chain " + std::string(chain);
  if (!rule.empty()) msg += ", rule \"" + std::string(rule) + "\"";
  return msg + ": " + cause;
}

// libiptc keeps the function of its last error in a global (for iptc_strerror): one caller at
// a time in this process. Other processes are kept out by the xtables lock.
std::mutex g_iptc_mu;

struct HandleFree {
  void operator()(xtc_handle* h) const { iptc_free(h); }
};
using Handle = std::unique_ptr<xtc_handle, HandleFree>;

std::string IptcError() { return iptc_strerror(errno); }

// The lock iptables -w takes around every change of the legacy tables (one for the host: the
// file is the same in every network namespace).
base::Result<base::UniqueFd> XtablesLock(std::chrono::milliseconds wait) {
  const char* env = getenv("XTABLES_LOCKFILE");
  std::string path = env && *env ? env : "/run/xtables.lock";
  base::UniqueFd fd(open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) return base::Errno("open the xtables lock " + path);
  auto deadline = std::chrono::steady_clock::now() + wait;
  while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) return base::Errno("lock " + path);
    if (std::chrono::steady_clock::now() >= deadline) {
      return base::Fail("another app holds the xtables lock " + path + " (waited " +
                        std::to_string(wait.count()) + " ms)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return fd;
}

// The tables loaded in the calling thread's network namespace (what iptables-save lists).
// Opening one that is not loaded would load it.
std::vector<std::string> LoadedTables() {
  auto text = base::ReadFile("/proc/thread-self/net/ip_tables_names");
  if (!text) return {};
  return base::Split(*text, '\n', true);
}

base::Result<Handle> Open(const std::string& table) {
  Handle h(iptc_init(table.c_str()));
  if (!h) return base::Fail("open iptables table " + table + ": " + IptcError(), errno);
  return h;
}

bool IsNumber(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// "[pkts:bytes]"
bool ParseCounters(std::string_view s, xt_counters& c) {
  if (s.size() < 5 || s.front() != '[' || s.back() != ']') return false;
  s = s.substr(1, s.size() - 2);
  size_t colon = s.find(':');
  if (colon == std::string_view::npos) return false;
  std::string a(s.substr(0, colon)), b(s.substr(colon + 1));
  if (!IsNumber(a) || !IsNumber(b)) return false;
  c.pcnt = strtoull(a.c_str(), nullptr, 10);
  c.bcnt = strtoull(b.c_str(), nullptr, 10);
  return true;
}

// A restore line's leading "[packets:bytes]": parsed into *counters and taken off *line
// (*with_counters then points at them). False when it is malformed.
bool TakeCounters(std::string_view* line, xt_counters* counters,
                  const xt_counters** with_counters) {
  if (line->empty() || (*line)[0] != '[') return true;
  size_t close = line->find(']');
  if (close == std::string_view::npos || !ParseCounters(line->substr(0, close + 1), *counters)) {
    return false;
  }
  *with_counters = counters;
  *line = base::Trim(line->substr(close + 1));
  return true;
}

// Marks the errors of rules this file cannot encode (Restore falls back to the program).
constexpr int kCannotEncode = ENOTSUP;

// One table's commands applied to a libiptc handle.
class TableWriter {
 public:
  explicit TableWriter(xtc_handle* h) : h_(h) {}

  // ":CHAIN POLICY [p:b]": a user chain is created, or flushed when it exists (--noflush).
  base::Result<> Declare(const std::vector<std::string>& w) {
    if (w.empty() || w[0].size() < 2) return base::Fail("chain name missing");
    std::string chain = w[0].substr(1);
    if (chain.size() >= sizeof(xt_chainlabel)) return base::Fail("chain name too long");
    if (iptc_builtin(chain.c_str(), h_)) {
      if (w.size() < 2 || w[1] == "-") return {};
      xt_counters c{};
      if (w.size() > 2 && !ParseCounters(w[2], c)) return base::Fail("bad counters " + w[2]);
      if (!iptc_set_policy(chain.c_str(), w[1].c_str(), w.size() > 2 ? &c : nullptr, h_)) {
        return base::Fail("set policy " + w[1] + ": " + IptcError());
      }
      return {};
    }
    if (iptc_is_chain(chain.c_str(), h_)) {
      if (!iptc_flush_entries(chain.c_str(), h_)) return base::Fail("flush: " + IptcError());
    } else if (!iptc_create_chain(chain.c_str(), h_)) {
      return base::Fail("create: " + IptcError());
    }
    return {};
  }

  // words: "-A", "CHAIN", args...
  base::Result<> Command(const std::vector<std::string>& w, const xt_counters* counters) {
    const std::string& cmd = w[0];
    if (w.size() < 2) {
      if (cmd == "-F") return FlushAll();
      return base::Fail(cmd + " needs a chain");
    }
    const char* chain = w[1].c_str();
    if (w[1].size() >= sizeof(xt_chainlabel)) return base::Fail("chain name too long");
    if (cmd == "-A" || cmd == "--append") {
      auto e = Build(w, 2, counters);
      if (!e) return tl::unexpected(e.error());
      if (!iptc_append_entry(chain, e->get(), h_)) return base::Fail(IptcError());
    } else if (cmd == "-I" || cmd == "--insert") {
      size_t first = 2;
      unsigned num = 0;
      if (w.size() > 2 && IsNumber(w[2])) {
        num = static_cast<unsigned>(std::stoul(w[2]));
        if (num == 0) return base::Fail("rule number 0 (they start at 1)");
        --num;
        first = 3;
      }
      auto e = Build(w, first, counters);
      if (!e) return tl::unexpected(e.error());
      if (!iptc_insert_entry(chain, e->get(), num, h_)) return base::Fail(IptcError());
    } else if (cmd == "-D" || cmd == "--delete") {
      return Delete(w);
    } else if (cmd == "-X" || cmd == "--delete-chain") {
      if (!iptc_delete_chain(chain, h_)) return base::Fail(IptcError());
    } else if (cmd == "-F" || cmd == "--flush") {
      if (!iptc_flush_entries(chain, h_)) return base::Fail(IptcError());
    } else if (cmd == "-N" || cmd == "--new-chain") {
      if (!iptc_create_chain(chain, h_)) return base::Fail(IptcError());
    } else if (cmd == "-P" || cmd == "--policy") {
      if (w.size() != 3) return base::Fail("-P CHAIN POLICY");
      if (!iptc_set_policy(chain, w[2].c_str(), nullptr, h_)) return base::Fail(IptcError());
    } else {
      return base::Fail("unsupported command " + cmd);
    }
    return {};
  }

 private:
  base::Result<iptc::Entry> Build(const std::vector<std::string>& w, size_t first,
                                  const xt_counters* counters) {
    auto e = iptc::BuildEntry(w, first);
    if (!e) return e;
    const std::string& t = e->target();
    // libiptc would take an unknown name for a target extension and the kernel would refuse
    // the whole table at commit time: name the culprit here.
    if (e->standard_target() && !t.empty() && t != "ACCEPT" && t != "DROP" && t != "RETURN" &&
        t != "QUEUE" && !iptc_is_chain(t.c_str(), h_)) {
      return base::Fail("target " + t + " is neither a chain of this table nor a known target");
    }
    if (counters) e->get()->counters = *counters;
    return e;
  }

  base::Result<> Delete(const std::vector<std::string>& w) {
    const char* chain = w[1].c_str();
    if (!iptc_is_chain(chain, h_)) return base::Fail(IptcError());
    if (w.size() == 3 && IsNumber(w[2])) {
      unsigned num = static_cast<unsigned>(std::stoul(w[2]));
      if (num == 0 || !iptc_delete_num_entry(chain, num - 1, h_)) {
        return base::Fail("delete rule " + w[2] + ": " + IptcError());
      }
      return {};
    }
    auto want = iptc::BuildEntry(w, 2);
    if (!want) return tl::unexpected(want.error());
    unsigned num = 0;
    for (const ipt_entry* e = iptc_first_rule(chain, h_); e; e = iptc_next_rule(e, h_), ++num) {
      if (iptc::SameRule(e, iptc_get_target(e, h_), *want)) {
        if (!iptc_delete_num_entry(chain, num, h_)) return base::Fail(IptcError());
        return {};
      }
    }
    return base::Fail("no such rule in the chain");
  }

  base::Result<> FlushAll() {
    std::vector<std::string> chains;
    for (const char* c = iptc_first_chain(h_); c; c = iptc_next_chain(h_)) chains.emplace_back(c);
    for (const auto& c : chains) {
      if (!iptc_flush_entries(c.c_str(), h_)) return base::Fail("flush " + c + ": " + IptcError());
    }
    return {};
  }

  xtc_handle* h_;
};

// Applies (part of) a restore buffer through libiptc, one iptc_commit per table; its first line
// is line first_line of the whole buffer (for errors). Parse() has checked it.
base::Result<> Apply(std::string_view buffer, int first_line) {
  // libiptc holds a whole table two or three times over while it works (the kernel's copy, its
  // cache, the blob it commits). No malloc_trim() afterwards: faulting those pages in again at
  // the next sync cost more than the commit itself (400 services: 106 ms per change with a trim,
  // 74 ms without); glibc keeps at most about twice its dynamic mmap threshold (<= 32 MiB) and
  // unmaps larger blocks at once.
  Handle handle;
  bool in_table = false;
  std::string table;
  std::vector<std::string> words;
  int line_no = first_line - 1;
  size_t pos = 0;
  while (pos < buffer.size()) {
    size_t end = buffer.find('\n', pos);
    if (end == std::string::npos) end = buffer.size();
    std::string_view line = base::Trim(buffer.substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;

    auto fail = [&](const std::string& cause, std::string_view chain = {},
                    std::string_view rule = {}, int code = 0) {
      std::string msg = LineError(line_no, table, chain, rule, cause);
      if (handle) msg += " (table " + table + " left unchanged)";
      return base::Fail(msg, code);
    };

    if (line[0] == '*') {
      if (in_table) return fail("*" + std::string(line.substr(1)) + " before COMMIT");
      table = std::string(line.substr(1));
      in_table = true;
      auto h = Open(table);
      if (!h) return fail(h.error().message);
      handle = std::move(*h);
      continue;
    }
    if (!in_table) return fail("\"" + std::string(line) + "\" outside a table");
    if (line == "COMMIT") {
      in_table = false;
      if (!iptc_commit(handle.get())) return fail("commit: " + IptcError());
      handle.reset();
      continue;
    }
    xt_counters counters{};
    const xt_counters* with_counters = nullptr;
    if (!TakeCounters(&line, &counters, &with_counters)) return fail("bad counters");
    if (auto r = iptc::SplitWords(line, words); !r) return fail(r.error().message);
    if (words.empty()) continue;
    TableWriter writer(handle.get());
    if (line[0] == ':') {
      if (auto r = writer.Declare(words); !r) return fail(r.error().message, words[0].substr(1));
      continue;
    }
    if (auto r = writer.Command(words, with_counters); !r) {
      std::string_view chain = words.size() > 1 ? std::string_view(words[1]) : std::string_view();
      // The rule: the arguments after the command and chain.
      std::string_view rule;
      if (words.size() > 2) {
        size_t at = line.find(words[1]);
        if (at != std::string_view::npos) rule = base::Trim(line.substr(at + words[1].size()));
      }
      return fail(r.error().message, chain, rule, r.error().code);
    }
  }
  if (in_table) {
    return base::Fail("iptables (libiptc): table " + table +
                      " has no COMMIT (table left unchanged)");
  }
  return {};
}

// One command of a restore buffer, parsed and its rule encoded (Parse), for BlobTable.
struct Cmd {
  enum class Op : uint8_t {
    kDeclare,      // chain, policy ("" none), counters_text
    kAppend,       // chain, entry
    kInsert,       // chain, num (0-based), entry
    kDelete,       // chain, entry
    kDeleteNum,    // chain, num (0-based)
    kDeleteChain,  // chain
    kFlush,        // chain
    kFlushAll,
    kNewChain,  // chain
    kPolicy,    // chain, policy
    kLibiptc,   // a form only libiptc's path handles (it names the error)
  };
  Op op = Op::kLibiptc;
  std::string chain;
  std::string policy;
  std::string counters_text;
  unsigned num = 0;
  iptc::Entry entry;
};

// A table's part of the buffer: "*table" to COMMIT.
struct Section {
  std::string table;
  int first_line = 0;
  size_t begin = 0, end = 0;  // in the buffer
  std::vector<Cmd> cmds;
};

// Parses a restore buffer and encodes every rule, without touching the kernel: what the
// libiptc path checks before committing anything (structure errors, rules it cannot encode,
// flagged kCannotEncode), with the same messages.
base::Result<std::vector<Section>> Parse(const std::string& buffer) {
  std::vector<Section> sections;
  bool in_table = false;
  std::string table;
  std::vector<std::string> words;
  int line_no = 0;
  size_t pos = 0;
  while (pos < buffer.size()) {
    const size_t begin = pos;
    size_t end = buffer.find('\n', pos);
    if (end == std::string::npos) end = buffer.size();
    std::string_view line = base::Trim(std::string_view(buffer).substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;

    auto fail = [&](const std::string& cause, std::string_view chain = {},
                    std::string_view rule = {}, int code = 0) {
      return base::Fail(LineError(line_no, table, chain, rule, cause), code);
    };

    if (line[0] == '*') {
      if (in_table) return fail("*" + std::string(line.substr(1)) + " before COMMIT");
      table = std::string(line.substr(1));
      in_table = true;
      Section s;
      s.table = table;
      s.first_line = line_no;
      s.begin = begin;
      // About one command a line up to the next COMMIT.
      size_t commit = buffer.find("\nCOMMIT", pos);
      if (commit == std::string::npos) commit = buffer.size();
      s.cmds.reserve(static_cast<size_t>(
          std::count(buffer.begin() + static_cast<ptrdiff_t>(begin),
                     buffer.begin() + static_cast<ptrdiff_t>(commit), '\n')));
      sections.push_back(std::move(s));
      continue;
    }
    if (!in_table) return fail("\"" + std::string(line) + "\" outside a table");
    Section& sec = sections.back();
    if (line == "COMMIT") {
      in_table = false;
      sec.end = std::min(pos, buffer.size());
      continue;
    }
    xt_counters counters{};
    const xt_counters* with_counters = nullptr;
    if (!TakeCounters(&line, &counters, &with_counters)) return fail("bad counters");
    if (auto r = iptc::SplitWords(line, words); !r) return fail(r.error().message);
    if (words.empty()) continue;
    Cmd cmd;
    if (line[0] == ':') {
      if (words[0].size() < 2) return fail("chain name missing", words[0].substr(1));
      cmd.chain = words[0].substr(1);
      if (cmd.chain.size() >= sizeof(xt_chainlabel)) {
        return fail("chain name too long", words[0].substr(1));
      }
      cmd.op = Cmd::Op::kDeclare;
      if (words.size() > 1) cmd.policy = words[1];
      if (words.size() > 2) cmd.counters_text = words[2];
      sec.cmds.push_back(std::move(cmd));
      continue;
    }
    const std::string& c = words[0];
    std::string_view chain = words.size() > 1 ? std::string_view(words[1]) : std::string_view();
    auto rule_text = [&] {
      std::string_view rule;
      if (words.size() > 2) {
        size_t at = line.find(words[1]);
        if (at != std::string_view::npos) rule = base::Trim(line.substr(at + words[1].size()));
      }
      return rule;
    };
    if (words.size() < 2) {
      if (c == "-F" || c == "--flush") {
        cmd.op = Cmd::Op::kFlushAll;
        sec.cmds.push_back(std::move(cmd));
        continue;
      }
      return fail(c + " needs a chain");
    }
    if (words[1].size() >= sizeof(xt_chainlabel)) return fail("chain name too long", chain);
    cmd.chain = words[1];
    size_t first = 0;  // where the rule's arguments start (0: no rule)
    if (c == "-A" || c == "--append") {
      cmd.op = Cmd::Op::kAppend;
      first = 2;
    } else if (c == "-I" || c == "--insert") {
      cmd.op = Cmd::Op::kInsert;
      first = 2;
      if (words.size() > 2 && IsNumber(words[2])) {
        first = 3;
        unsigned long n = std::stoul(words[2]);
        if (n == 0 || n > UINT32_MAX) {
          cmd.op = Cmd::Op::kLibiptc;  // libiptc's path names the error
        } else {
          cmd.num = static_cast<unsigned>(n - 1);
        }
      }
    } else if (c == "-D" || c == "--delete") {
      if (words.size() == 3 && IsNumber(words[2])) {
        unsigned long n = std::stoul(words[2]);
        if (n == 0 || n > UINT32_MAX) {
          cmd.op = Cmd::Op::kLibiptc;
        } else {
          cmd.op = Cmd::Op::kDeleteNum;
          cmd.num = static_cast<unsigned>(n - 1);
        }
      } else {
        cmd.op = Cmd::Op::kDelete;
        first = 2;
      }
    } else if (c == "-X" || c == "--delete-chain") {
      cmd.op = Cmd::Op::kDeleteChain;
    } else if (c == "-F" || c == "--flush") {
      cmd.op = Cmd::Op::kFlush;
    } else if (c == "-N" || c == "--new-chain") {
      cmd.op = Cmd::Op::kNewChain;
    } else if (c == "-P" || c == "--policy") {
      if (words.size() == 3) {
        cmd.op = Cmd::Op::kPolicy;
        cmd.policy = words[2];
      }
    } else {
      return fail("unsupported command " + c, chain, rule_text(), kCannotEncode);
    }
    if (first > 0) {
      auto e = iptc::BuildEntry(words, first);
      if (!e) return fail(e.error().message, chain, rule_text(), kCannotEncode);
      if (with_counters) e->get()->counters = *with_counters;
      cmd.entry = std::move(*e);
    }
    sec.cmds.push_back(std::move(cmd));
  }
  if (in_table) {
    return base::Fail("iptables (libiptc): table " + table +
                      " has no COMMIT (table left unchanged)");
  }
  return sections;
}

// One command on a BlobTable; false: libiptc would refuse it (or may: its path decides).
bool ApplyCmd(iptc::BlobTable& t, const Cmd& c) {
  switch (c.op) {
    case Cmd::Op::kDeclare: {
      if (t.IsBuiltin(c.chain) && !c.policy.empty() && c.policy != "-") {
        xt_counters counters{};
        if (!c.counters_text.empty() && !ParseCounters(c.counters_text, counters)) return false;
        return t.SetPolicy(c.chain, c.policy, c.counters_text.empty() ? nullptr : &counters);
      }
      return t.Declare(c.chain, "-", nullptr);
    }
    case Cmd::Op::kAppend:
      return t.Append(c.chain, c.entry);
    case Cmd::Op::kInsert:
      return t.Insert(c.chain, c.entry, c.num);
    case Cmd::Op::kDelete:
      return t.Delete(c.chain, c.entry);
    case Cmd::Op::kDeleteNum:
      return t.DeleteNum(c.chain, c.num);
    case Cmd::Op::kDeleteChain:
      return t.DeleteChain(c.chain);
    case Cmd::Op::kFlush:
      return t.Flush(c.chain);
    case Cmd::Op::kFlushAll:
      return t.FlushAll();
    case Cmd::Op::kNewChain:
      return t.NewChain(c.chain);
    case Cmd::Op::kPolicy:
      return t.SetPolicy(c.chain, c.policy, nullptr);
    case Cmd::Op::kLibiptc:
      return false;
  }
  return false;
}

// Commits one table's section as one BlobTable. Returns "" when committed, else why it was
// declined (nothing reached the kernel: the caller applies it through libiptc). An error only
// once the kernel took the new table (restoring the counters failed).
base::Result<std::string> CommitBlob(int sock, const Section& s, iptc::Scratch& scratch) {
  auto t = iptc::BlobTable::Read(sock, s.table, scratch);
  if (!t) return t.error().message;
  for (const auto& c : s.cmds) {
    if (!ApplyCmd(**t, c)) return "a command libiptc would refuse, or may (chain " + c.chain + ")";
  }
  bool replaced = false;
  auto r = (*t)->Commit(sock, replaced, scratch);
  if (!r) {
    if (replaced) return tl::unexpected(r.error());
    return r.error().message;
  }
  return std::string();
}

}  // namespace

LibiptcBackend::LibiptcBackend(bool fallback, std::chrono::milliseconds lock_wait,
                               IptcWriter writer)
    : fallback_(fallback),
      lock_wait_(lock_wait),
      writer_(writer),
      scratch_(std::make_unique<iptc::Scratch>()) {}

LibiptcBackend::~LibiptcBackend() = default;

base::Result<> LibiptcBackend::Restore(const std::string& buffer) {
  std::lock_guard guard(g_iptc_mu);
  // First every rule is encoded once without touching the kernel: a rule this backend cannot
  // encode (a match or target the proxy does not write today) goes, with the whole buffer, to
  // iptables-legacy-restore, before any table of it is committed here.
  auto sections = Parse(buffer);
  if (!sections) {
    const auto& v = sections.error();
    if (v.code != kCannotEncode || !fallback_) return tl::unexpected(v);
    base::log::Warn(
        "libiptc backend cannot encode a rule: this commit goes through "
        "iptables-legacy-restore",
        {{"cause", v.message}});
    IptablesRestoreBackend program(IptablesVariant::kLegacy);
    auto r = program.Restore(buffer);
    if (!r) return base::Fail(v.message + "; " + r.error().message);
    return {};
  }
  auto lock = XtablesLock(lock_wait_);
  if (!lock) return tl::unexpected(lock.error().Wrap("apply iptables rules (libiptc)"));
  if (writer_ == IptcWriter::kLibiptc) {
    stats_.libiptc_tables += sections->size();
    return Apply(buffer, 1);
  }
  base::UniqueFd sock(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
  if (!sock) return base::Errno("apply iptables rules: raw socket");
  for (const auto& s : *sections) {
    auto declined = CommitBlob(sock.get(), s, *scratch_);
    if (!declined) {
      return tl::unexpected(declined.error().Wrap("iptables line " +
                                                  std::to_string(s.first_line) + ": table " +
                                                  s.table));
    }
    if (declined->empty()) {
      ++stats_.blob_tables;
      continue;
    }
    // libiptc names the error (or, were the direct writer wrong to decline, commits it).
    ++stats_.libiptc_tables;
    auto r = Apply(std::string_view(buffer).substr(s.begin, s.end - s.begin), s.first_line);
    if (!r) return r;
    base::log::Warn("iptables table committed through libiptc: the direct writer declined it",
                    {{"table", s.table}, {"cause", *declined}});
  }
  return {};
}

LibiptcBackend::Stats LibiptcBackend::stats() const {
  std::lock_guard guard(g_iptc_mu);
  return stats_;
}

namespace {

// Snapshot() of one table through libiptc.
base::Result<> SnapshotLibiptc(const std::string& table, IptablesSnapshot::Table& t) {
  auto h = Open(table);
  if (!h) return tl::unexpected(h.error().Wrap("read iptables rules"));
  for (const char* c = iptc_first_chain(h->get()); c; c = iptc_next_chain(h->get())) {
    t.chains.emplace(c);
    if (!iptc_builtin(c, h->get())) continue;
    for (const ipt_entry* e = iptc_first_rule(c, h->get()); e; e = iptc_next_rule(e, h->get())) {
      const char* target = iptc_get_target(e, h->get());
      if (target && base::StartsWith(target, "KUBE-")) {
        t.kube_jumps.push_back(iptc::FormatRule(c, e, target));
      }
    }
  }
  return {};
}

// The same from one IPT_SO_GET_ENTRIES (no libiptc cache built).
base::Result<> SnapshotBlob(int sock, const std::string& table, IptablesSnapshot::Table& t,
                            iptc::Scratch& scratch) {
  auto b = iptc::BlobTable::Read(sock, table, scratch);
  if (!b) return tl::unexpected(b.error());
  for (const auto* c : (*b)->ChainList()) {
    t.chains.emplace(c->name);
    if (c->hook < 0) continue;
    for (const auto& r : (*b)->RulesOf(*c)) {
      std::string target = (*b)->TargetName(r);
      if (base::StartsWith(target, "KUBE-")) {
        t.kube_jumps.push_back(iptc::FormatRule(c->name, r.entry, target));
      }
    }
  }
  return {};
}

}  // namespace

base::Result<IptablesSnapshot> LibiptcBackend::Snapshot() {
  std::lock_guard guard(g_iptc_mu);
  IptablesSnapshot snap;
  base::UniqueFd sock;
  if (writer_ == IptcWriter::kBlob) {
    sock = base::UniqueFd(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
    if (!sock) return base::Errno("read iptables rules: raw socket");
  }
  for (const auto& table : LoadedTables()) {
    auto& t = snap.tables[table];
    if (sock) {
      // A table libiptc would read but this reader not: read through libiptc.
      if (SnapshotBlob(sock.get(), table, t, *scratch_)) continue;
      t = {};
    }
    if (auto r = SnapshotLibiptc(table, t); !r) return tl::unexpected(r.error());
  }
  return snap;
}

base::Result<bool> LibiptcBackend::CanaryPresent() {
  std::lock_guard guard(g_iptc_mu);
  auto tables = LoadedTables();
  if (std::find(tables.begin(), tables.end(), "nat") == tables.end()) return false;
  if (writer_ == IptcWriter::kBlob) {
    base::UniqueFd sock(socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW));
    if (!sock) return base::Errno("check the proxy's canary chain: raw socket");
    if (auto b = iptc::BlobTable::Read(sock.get(), "nat", *scratch_)) {
      return (*b)->Rules(kCanaryChain) > 0;
    }
  }
  auto h = Open("nat");
  if (!h) return tl::unexpected(h.error().Wrap("check the proxy's canary chain"));
  return iptc_is_chain(kCanaryChain, h->get()) && iptc_first_rule(kCanaryChain, h->get()) != nullptr;
}

RulesBackendPtr MakeIptablesBackend(IptablesVariant variant, IptablesCommit commit) {
  if (variant == IptablesVariant::kLegacy && commit == IptablesCommit::kAuto) {
    const char* env = getenv("CUBELET_IPTABLES_RESTORE");
    if (!(env && std::string_view(env) == "1")) return std::make_unique<LibiptcBackend>();
  }
  return std::make_unique<IptablesRestoreBackend>(variant);
}

}  // namespace netproxy
