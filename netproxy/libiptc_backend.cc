#include "netproxy/libiptc_backend.h"

#include <fcntl.h>
#include <libiptc/libiptc.h>
#include <sys/file.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "base/fd.h"
#include "base/file.h"
#include "base/log.h"
#include "base/strings.h"
#include "netproxy/iptc_rule.h"

namespace netproxy {

namespace {

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

// Marks the errors of rules this file cannot encode (Restore falls back to the program).
constexpr int kCannotEncode = ENOTSUP;

// One table's commands applied to a libiptc handle; h == nullptr: only check that every rule
// can be encoded (nothing is read or written).
class TableWriter {
 public:
  explicit TableWriter(xtc_handle* h) : h_(h) {}

  // ":CHAIN POLICY [p:b]": a user chain is created, or flushed when it exists (--noflush).
  base::Result<> Declare(const std::vector<std::string>& w) {
    if (w.empty() || w[0].size() < 2) return base::Fail("chain name missing");
    std::string chain = w[0].substr(1);
    if (chain.size() >= sizeof(xt_chainlabel)) return base::Fail("chain name too long");
    if (!h_) return {};
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
    if (!h_) return Check(w);
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
  // Dry run: the rule of -A/-I/-D encodes; the command is one Command() knows.
  base::Result<> Check(const std::vector<std::string>& w) {
    const std::string& cmd = w[0];
    size_t first = 0;
    if (cmd == "-A" || cmd == "--append") {
      first = 2;
    } else if (cmd == "-I" || cmd == "--insert") {
      first = w.size() > 2 && IsNumber(w[2]) ? 3 : 2;
    } else if (cmd == "-D" || cmd == "--delete") {
      if (w.size() == 3 && IsNumber(w[2])) return {};
      first = 2;
    } else if (cmd == "-X" || cmd == "--delete-chain" || cmd == "-F" || cmd == "--flush" ||
               cmd == "-N" || cmd == "--new-chain" || cmd == "-P" || cmd == "--policy") {
      return {};
    } else {
      return base::Fail("unsupported command " + cmd, kCannotEncode);
    }
    auto e = iptc::BuildEntry(w, first);
    if (!e) return base::Fail(e.error().message, kCannotEncode);
    return {};
  }

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

// Applies a restore buffer; dry_run: only checks that every rule can be encoded.
base::Result<> Apply(const std::string& buffer, bool dry_run) {
  // libiptc holds a whole table two or three times over while it works (the kernel's copy, its
  // cache, the blob it commits). No malloc_trim() afterwards: faulting those pages in again at
  // the next sync cost more than the commit itself (400 services: 106 ms per change with a trim,
  // 74 ms without); glibc keeps at most about twice its dynamic mmap threshold (<= 32 MiB) and
  // unmaps larger blocks at once.
  Handle handle;
  bool in_table = false;
  std::string table;
  std::vector<std::string> words;
  int line_no = 0;
  size_t pos = 0;
  while (pos < buffer.size()) {
    size_t end = buffer.find('\n', pos);
    if (end == std::string::npos) end = buffer.size();
    std::string_view line = base::Trim(std::string_view(buffer).substr(pos, end - pos));
    pos = end + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;

    auto fail = [&](const std::string& cause, std::string_view chain = {},
                    std::string_view rule = {}, int code = 0) {
      std::string msg = "iptables (libiptc) line " + std::to_string(line_no) + ": table " +
                        (table.empty() ? std::string("-") : table);
      if (!chain.empty()) msg += ", chain " + std::string(chain);
      if (!rule.empty()) msg += ", rule \"" + std::string(rule) + "\"";
      msg += ": " + cause;
      if (handle) msg += " (table " + table + " left unchanged)";
      return base::Fail(msg, code);
    };

    if (line[0] == '*') {
      if (in_table) return fail("*" + std::string(line.substr(1)) + " before COMMIT");
      table = std::string(line.substr(1));
      in_table = true;
      if (dry_run) continue;
      auto h = Open(table);
      if (!h) return fail(h.error().message);
      handle = std::move(*h);
      continue;
    }
    if (!in_table) return fail("\"" + std::string(line) + "\" outside a table");
    if (line == "COMMIT") {
      in_table = false;
      if (dry_run) continue;
      if (!iptc_commit(handle.get())) return fail("commit: " + IptcError());
      handle.reset();
      continue;
    }
    xt_counters counters{};
    const xt_counters* with_counters = nullptr;
    if (line[0] == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos || !ParseCounters(line.substr(0, close + 1), counters)) {
        return fail("bad counters");
      }
      with_counters = &counters;
      line = base::Trim(line.substr(close + 1));
    }
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

}  // namespace

base::Result<> LibiptcBackend::Restore(const std::string& buffer) {
  std::lock_guard guard(g_iptc_mu);
  // First every rule is encoded once without touching the kernel: a rule this backend cannot
  // encode (a match or target the proxy does not write today) goes, with the whole buffer, to
  // iptables-legacy-restore, before any table of it is committed here.
  if (auto v = Apply(buffer, true); !v) {
    if (v.error().code != kCannotEncode || !fallback_) return v;
    base::log::Warn(
        "libiptc backend cannot encode a rule: this commit goes through "
        "iptables-legacy-restore",
        {{"cause", v.error().message}});
    IptablesRestoreBackend program(IptablesVariant::kLegacy);
    auto r = program.Restore(buffer);
    if (!r) return base::Fail(v.error().message + "; " + r.error().message);
    return {};
  }
  auto lock = XtablesLock(lock_wait_);
  if (!lock) return tl::unexpected(lock.error().Wrap("apply iptables rules (libiptc)"));
  return Apply(buffer, false);
}

base::Result<IptablesSnapshot> LibiptcBackend::Snapshot() {
  std::lock_guard guard(g_iptc_mu);
  IptablesSnapshot snap;
  for (const auto& table : LoadedTables()) {
    auto h = Open(table);
    if (!h) return tl::unexpected(h.error().Wrap("read iptables rules"));
    auto& t = snap.tables[table];
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
  }
  return snap;
}

base::Result<bool> LibiptcBackend::CanaryPresent() {
  std::lock_guard guard(g_iptc_mu);
  auto tables = LoadedTables();
  if (std::find(tables.begin(), tables.end(), "nat") == tables.end()) return false;
  auto h = Open("nat");
  if (!h) return tl::unexpected(h.error().Wrap("check the proxy's canary chain"));
  const char* canary = "KUBE-PROXY-CANARY";
  return iptc_is_chain(canary, h->get()) && iptc_first_rule(canary, h->get()) != nullptr;
}

RulesBackendPtr MakeIptablesBackend(IptablesVariant variant, IptablesCommit commit) {
  if (variant == IptablesVariant::kLegacy && commit == IptablesCommit::kAuto) {
    const char* env = getenv("CUBELET_IPTABLES_RESTORE");
    if (!(env && std::string_view(env) == "1")) return std::make_unique<LibiptcBackend>();
  }
  return std::make_unique<IptablesRestoreBackend>(variant);
}

}  // namespace netproxy
