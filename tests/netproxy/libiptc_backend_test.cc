// LibiptcBackend on the real kernel (privileged; the test process runs in its own network
// namespace). Every comparison applies the same restore buffer twice, each time in a fresh
// network namespace of its own (a thread that unshares it: libiptc and the programs it starts
// see that namespace): once with iptables-legacy-restore, once with the libiptc backend. Then
// iptables-legacy-save's output and the kernel's rule bytes (read back through libiptc) must be
// the same, rule by rule, in every table.
#include "netproxy/libiptc_backend.h"

#include <dirent.h>
#include <libiptc/libiptc.h>
#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <set>
#include <thread>

#include "base/file.h"
#include "base/strings.h"
#include "netproxy/iptc_rule.h"
#include "tests/support/kernel_env.h"

using namespace netproxy;
using testsupport::Run;

namespace {

// Runs fn on a new thread in a fresh network namespace (empty legacy tables).
// A failed REQUIRE there is rethrown here.
void InFreshNetns(const std::function<void()>& fn) {
  std::string err;
  std::exception_ptr thrown;
  std::thread t([&] {
    if (unshare(CLONE_NEWNET) != 0) {
      err = strerror(errno);
      return;
    }
    try {
      fn();
    } catch (...) {
      thrown = std::current_exception();
    }
  });
  t.join();
  REQUIRE(err == "");
  if (thrown) std::rethrow_exception(thrown);
}

// iptables-legacy-save without its "# Generated/Completed" lines.
std::string LegacySave() {
  std::string out;
  Run("iptables-legacy-save 2>&1", &out);
  std::string kept;
  for (const auto& line : base::Split(out, '\n', true)) {
    if (line[0] == '#') continue;
    kept += line + "\n";
  }
  return kept;
}

// Every rule of every loaded table as the kernel returns it: chain, policy, the entry's bytes
// (counters included) and its target as libiptc names it.
std::string KernelRules() {
  std::string out;
  auto names = base::ReadFile("/proc/thread-self/net/ip_tables_names");
  if (!names) return "no tables";
  for (const auto& table : base::Split(*names, '\n', true)) {
    xtc_handle* h = iptc_init(table.c_str());
    if (!h) return "iptc_init " + table + ": " + iptc_strerror(errno);
    out += "*" + table + "\n";
    for (const char* c = iptc_first_chain(h); c; c = iptc_next_chain(h)) {
      out += std::string(":") + c + "\n";
      for (const ipt_entry* e = iptc_first_rule(c, h); e; e = iptc_next_rule(e, h)) {
        std::string hex;
        // The kernel writes extension names up to their NUL only: the bytes after it are
        // whatever the reading buffer held. Cleared in a copy.
        std::vector<unsigned char> copy(reinterpret_cast<const unsigned char*>(e),
                                        reinterpret_cast<const unsigned char*>(e) + e->next_offset);
        for (size_t off = sizeof(ipt_entry); off < e->next_offset;) {
          auto* m = reinterpret_cast<xt_entry_match*>(copy.data() + off);
          size_t len = strnlen(m->u.user.name, sizeof m->u.user.name);
          memset(m->u.user.name + len, 0, sizeof m->u.user.name - len);
          if (m->u.match_size == 0) break;
          off += m->u.match_size;
        }
        const unsigned char* b = copy.data();
        for (size_t i = 0; i < e->target_offset; ++i) {
          char buf[3];
          snprintf(buf, sizeof buf, "%02x", b[i]);
          hex += buf;
        }
        const auto* t = reinterpret_cast<const xt_entry_target*>(b + e->target_offset);
        hex += " -> ";
        hex += iptc_get_target(e, h);
        // Extension targets' data (a jump's verdict is an offset: compared through the name).
        if (t->u.user.name[0]) {
          hex += " ";
          for (size_t i = 0; i < t->u.target_size; ++i) {
            char buf[3];
            snprintf(buf, sizeof buf, "%02x", b[e->target_offset + i]);
            hex += buf;
          }
        }
        out += hex + "\n";
      }
    }
    iptc_free(h);
  }
  return out;
}

struct State {
  std::string save;
  std::string kernel;
  std::vector<std::string> errors;
};

// Applies buffers one after the other in a fresh netns through the given backend; the state
// after each step.
std::vector<State> Apply(bool libiptc, const std::vector<std::string>& buffers) {
  std::vector<State> states;
  InFreshNetns([&] {
    RulesBackendPtr b;
    if (libiptc) {
      b = std::make_unique<LibiptcBackend>();
    } else {
      b = std::make_unique<IptablesRestoreBackend>(IptablesVariant::kLegacy);
    }
    for (const auto& buf : buffers) {
      State s;
      auto r = b->Restore(buf);
      if (!r) s.errors.push_back(r.error().message);
      s.save = LegacySave();
      s.kernel = KernelRules();
      states.push_back(std::move(s));
    }
  });
  return states;
}

void CompareBackends(const std::vector<std::string>& buffers) {
  auto want = Apply(false, buffers);
  auto got = Apply(true, buffers);
  REQUIRE(want.size() == buffers.size());
  REQUIRE(got.size() == buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    INFO("step " << i << ", buffer:\n" << buffers[i]);
    REQUIRE(want[i].errors.empty());
    CHECK(got[i].errors == want[i].errors);
    // Line by line, for a readable difference.
    auto a = base::Split(want[i].save, '\n');
    auto b = base::Split(got[i].save, '\n');
    for (size_t k = 0; k < std::max(a.size(), b.size()); ++k) {
      INFO("save line " << k + 1);
      CHECK((k < b.size() ? b[k] : "<none>") == (k < a.size() ? a[k] : "<none>"));
    }
    auto ka = base::Split(want[i].kernel, '\n');
    auto kb = base::Split(got[i].kernel, '\n');
    CHECK(ka.size() == kb.size());
    for (size_t k = 0; k < std::min(ka.size(), kb.size()); ++k) {
      INFO("kernel rule line " << k + 1 << " (restore program: " << ka[k] << ")");
      CHECK(kb[k] == ka[k]);
    }
    // Not vacuous: rules were written.
    CHECK(want[i].save.find("-A KUBE-") != std::string::npos);
  }
}

std::string Golden(const std::string& name) {
  auto text = base::ReadFile(std::string(CUBELET_SOURCE_DIR) + "/tests/golden/iptables/" + name);
  REQUIRE(text);
  return *text;
}

// libiptc_shapes.rules: every rule shape the iptables renderer and the userspace mode write,
// and the variants of their options (inversions, ranges, defaults, counters, goto).
std::string TestFile(const std::string& name) {
  auto text = base::ReadFile(std::string(CUBELET_SOURCE_DIR) + "/tests/netproxy/" + name);
  REQUIRE(text);
  return *text;
}

}  // namespace

TEST_CASE("libiptc backend writes what iptables-legacy-restore writes: every rule shape") {
  CompareBackends({TestFile("libiptc_shapes.rules")});
}

TEST_CASE("libiptc backend writes what iptables-legacy-restore writes: golden rulesets") {
  DIR* d = opendir((std::string(CUBELET_SOURCE_DIR) + "/tests/golden/iptables").c_str());
  REQUIRE(d);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (base::EndsWith(e->d_name, ".rules")) names.emplace_back(e->d_name);
  }
  closedir(d);
  REQUIRE(names.size() >= 5);
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    INFO("golden " << n);
    const std::string golden = Golden(n);
    // A partial sync's golden jumps to chains of unchanged services: they exist beforehand.
    std::set<std::string> declared, referenced;
    for (const auto& line : base::Split(golden, '\n', true)) {
      if (line[0] == ':') declared.insert(line.substr(1, line.find(' ') - 1));
      size_t j = line.rfind(" -j KUBE-");
      if (j != std::string::npos) {
        std::string t = line.substr(j + 4);
        referenced.insert(t.substr(0, t.find(' ')));
      }
    }
    std::string before = "*nat\n:KUBE-SERVICES - [0:0]\n";
    for (const auto& c : referenced) {
      if (!declared.count(c)) before += ":" + c + " - [0:0]\n";
    }
    before += "-A KUBE-SERVICES -j RETURN\nCOMMIT\n";
    // As the engine's first sync sends it: the ruleset, then the hint and the canary.
    CompareBackends(
        {before, golden + "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n" + kCanaryRestore});
  }
}

TEST_CASE("libiptc backend: partial syncs, deletions, jumps, cleanup like iptables-restore") {
  const std::string full = Golden("external_local.rules") +
                           "*nat\n-I PREROUTING 1 -m comment --comment \"kubernetes service "
                           "portals\" -j KUBE-SERVICES\nCOMMIT\n" +
                           kCanaryRestore;
  // A partial sync: KUBE-SERVICES rewritten, one service's chains rewritten (one endpoint gone,
  // a new one), the stale endpoint chain deleted in the same commit, a jump added.
  const std::string partial = TestFile("libiptc_partial.rules");
  // What CleanupLeftovers sends after that (from iptables-save's view of it).
  std::string cleanup;
  InFreshNetns([&] {
    IptablesRestoreBackend ref(IptablesVariant::kLegacy);
    REQUIRE(ref.Restore(full));
    REQUIRE(ref.Restore(partial));
    auto snap = ref.Snapshot();
    REQUIRE(snap);
    cleanup = CleanupBuffer(*snap);
  });
  REQUIRE(cleanup.find("-D PREROUTING") != std::string::npos);
  REQUIRE(cleanup.find("-D OUTPUT") != std::string::npos);
  auto want = Apply(false, {full, partial, cleanup});
  auto got = Apply(true, {full, partial, cleanup});
  for (size_t i = 0; i < 3; ++i) {
    INFO("step " << i);
    CHECK(got[i].errors == want[i].errors);
    CHECK(got[i].save == want[i].save);
    CHECK(got[i].kernel == want[i].kernel);
  }
  CHECK(got[1].save.find("KUBE-SEP-ZF7KTA5PSJ7RYGAK") == std::string::npos);
  CHECK(got[1].save.find(":KUBE-SEP-NEWNEWNEWNEWNEWN") != std::string::npos);
  CHECK(got[2].save.find("KUBE-") == std::string::npos);
}

TEST_CASE("libiptc backend: snapshot and canary read the kernel as iptables-save shows it") {
  const std::string shapes = TestFile("libiptc_shapes.rules");
  InFreshNetns([&] {
    LibiptcBackend b;
    auto c0 = b.CanaryPresent();
    REQUIRE(c0);
    CHECK_FALSE(*c0);
    auto empty = b.Snapshot();
    REQUIRE(empty);
    CHECK_FALSE(empty->HasChain("nat", "KUBE-SERVICES"));

    REQUIRE(b.Restore(shapes));
    auto snap = b.Snapshot();
    REQUIRE(snap);
    IptablesSnapshot want = IptablesSnapshot::Parse(LegacySave());
    REQUIRE(want.tables.size() == 3);
    CHECK(snap->tables.size() == want.tables.size());
    for (const auto& [name, t] : want.tables) {
      INFO("table " << name);
      REQUIRE(snap->tables.count(name));
      CHECK(snap->tables.at(name).chains == t.chains);
      // The jumps are printed exactly as iptables-save prints them.
      CHECK(snap->tables.at(name).kube_jumps == t.kube_jumps);
    }
    CHECK(snap->tables.at("nat").kube_jumps.size() == 5);
    CHECK(snap->HasChain("mangle", "KUBE-IPTABLES-HINT"));

    auto c1 = b.CanaryPresent();
    REQUIRE(c1);
    CHECK(*c1);
    REQUIRE(Run("iptables-legacy -t nat -F KUBE-PROXY-CANARY") == 0);
    auto c2 = b.CanaryPresent();
    REQUIRE(c2);
    CHECK_FALSE(*c2);
    REQUIRE(Run("iptables-legacy -t nat -X KUBE-PROXY-CANARY") == 0);
    auto c3 = b.CanaryPresent();
    REQUIRE(c3);
    CHECK_FALSE(*c3);

    // The cleanup computed from this snapshot removes everything through this backend.
    REQUIRE(CleanupLeftovers(b));
    std::string save = LegacySave();
    INFO(save);
    CHECK(save.find("KUBE-SERVICES") == std::string::npos);
    CHECK(save.find("-j KUBE-") == std::string::npos);
  });
}

TEST_CASE("libiptc backend: a bad rule fails naming the chain and the rule, table unchanged") {
  InFreshNetns([&] {
    LibiptcBackend b(/*fallback=*/false);
    REQUIRE(b.Restore("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n"));
    const std::string before = LegacySave();

    struct Case {
      std::string rule;
      std::string cause;
    };
    const std::vector<Case> cases = {
        {"-m foo --bar 1 -j RETURN", "unknown match \"foo\""},
        {"-m tcp -p tcp --dport 99999 -j RETURN", "bad value \"99999\" for --dport"},
        {"-j KUBE-MISSING", "target KUBE-MISSING is neither a chain"},
        {"-m comment --comment", "needs an argument"},
        {"-s 10.0.0.300 -j RETURN", "bad address"},
        {"-j DNAT --to-destination 10.0.0.1:80", "port specification"},
        {"-m statistic --mode random --probability 2 -j RETURN", "bad value \"2\""},
        {"-m tcp -p tcp --frobnicate -j RETURN", "unknown option \"--frobnicate\""},
    };
    for (const auto& c : cases) {
      std::string buf = "*nat\n:KUBE-A - [0:0]\n:KUBE-B - [0:0]\n-A KUBE-A -j KUBE-B\n-A KUBE-B " +
                        c.rule + "\nCOMMIT\n";
      auto r = b.Restore(buf);
      REQUIRE_FALSE(r);
      const std::string& msg = r.error().message;
      INFO(msg);
      CHECK(msg.find("line 5") != std::string::npos);
      CHECK(msg.find("table nat") != std::string::npos);
      CHECK(msg.find("chain KUBE-B") != std::string::npos);
      CHECK(msg.find("rule \"" + c.rule + "\"") != std::string::npos);
      CHECK(msg.find(c.cause) != std::string::npos);
      // Nothing of the failed table was committed (KUBE-A keeps its rule, no KUBE-B).
      CHECK(LegacySave() == before);
    }

    // A rule that cannot be encoded is found before any table is committed.
    auto r0 = b.Restore(
        "*filter\n:KUBE-F - [0:0]\n-A KUBE-F -j ACCEPT\nCOMMIT\n*nat\n-A KUBE-A -m nope\nCOMMIT\n");
    REQUIRE_FALSE(r0);
    CHECK(LegacySave() == before);
    // A table committed before one the kernel state refuses stays committed (as
    // iptables-restore).
    auto r = b.Restore(
        "*filter\n:KUBE-F - [0:0]\n-A KUBE-F -j ACCEPT\nCOMMIT\n*nat\n-A KUBE-A -j "
        "KUBE-NO\nCOMMIT\n");
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("KUBE-NO is neither a chain") != std::string::npos);
    CHECK(LegacySave().find("-A KUBE-F -j ACCEPT") != std::string::npos);
    // Missing COMMIT.
    auto r2 = b.Restore("*nat\n:KUBE-C - [0:0]\n");
    REQUIRE_FALSE(r2);
    CHECK(r2.error().message.find("no COMMIT") != std::string::npos);
    CHECK(LegacySave().find("KUBE-C") == std::string::npos);
    // The kernel refusing the table (MASQUERADE reachable from OUTPUT) names the commit.
    auto r3 = b.Restore("*nat\n-I KUBE-A 1 -j MASQUERADE\n-I OUTPUT 1 -j KUBE-A\nCOMMIT\n");
    CHECK_FALSE(r3);
    if (!r3) CHECK(r3.error().message.find("commit") != std::string::npos);
  });
}

TEST_CASE("libiptc backend: a rule it cannot encode goes to iptables-legacy-restore") {
  // multiport and a port given by its service name: iptables knows them, this backend not.
  const std::string buf =
      "*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n"
      "*filter\n:KUBE-F - [0:0]\n-A KUBE-F -p tcp -m multiport --dports 80,443 -j ACCEPT\n"
      "-A KUBE-F -p tcp --dport http -j ACCEPT\nCOMMIT\n";
  InFreshNetns([&] {
    LibiptcBackend strict(/*fallback=*/false);
    auto r = strict.Restore(buf);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("unknown match \"multiport\"") != std::string::npos);
    // Checked before anything was committed: not even the nat table of the buffer.
    CHECK(LegacySave().find("KUBE-A") == std::string::npos);
  });
  auto want = Apply(false, {buf});
  auto got = Apply(true, {buf});
  CHECK(got[0].errors.empty());
  CHECK(got[0].save == want[0].save);
  CHECK(got[0].kernel == want[0].kernel);
  CHECK(got[0].save.find("--dports 80,443") != std::string::npos);
  // Bad for both: both errors are reported, the rule named by the first.
  InFreshNetns([&] {
    LibiptcBackend b;
    auto r = b.Restore("*filter\n:KUBE-F - [0:0]\n-A KUBE-F -m nosuchmatch -j ACCEPT\nCOMMIT\n");
    REQUIRE_FALSE(r);
    INFO(r.error().message);
    CHECK(r.error().message.find("chain KUBE-F") != std::string::npos);
    CHECK(r.error().message.find("iptables-legacy-restore failed") != std::string::npos);
  });
}

TEST_CASE("iptables backend selection: libiptc for legacy unless forced to the program") {
  CHECK(MakeIptablesBackend(IptablesVariant::kLegacy)->Name() == "iptables-legacy-libiptc");
  CHECK(MakeIptablesBackend(IptablesVariant::kLegacy, IptablesCommit::kRestoreProgram)->Name() ==
        "iptables-legacy");
  CHECK(MakeIptablesBackend(IptablesVariant::kNft)->Name() == "iptables-nft");
  setenv("CUBELET_IPTABLES_RESTORE", "1", 1);
  CHECK(MakeIptablesBackend(IptablesVariant::kLegacy)->Name() == "iptables-legacy");
  unsetenv("CUBELET_IPTABLES_RESTORE");
}

TEST_CASE("iptc rule encoding: -D finds the rule that FormatRule printed") {
  std::vector<std::string> w;
  REQUIRE(iptc::SplitWords(R"(-m conntrack --ctstate NEW -m comment --comment "a \"b\"" )"
                           "-m statistic --mode random --probability 0.5 -j KUBE-X",
                           w));
  CHECK(w[6] == "--comment");
  CHECK(w[7] == "a \"b\"");
  auto e = iptc::BuildEntry(w);
  REQUIRE(e);
  std::string line = iptc::FormatRule("INPUT", e->get(), "KUBE-X");
  // statistic is not printed as iptables-save does but read back the same.
  CHECK(line.find("-A INPUT -m conntrack --ctstate NEW -m comment --comment \"a \\\"b\\\"\" -m "
                  "statistic --xt-raw 0:") == 0);
  REQUIRE(iptc::SplitWords(line, w));
  auto back = iptc::BuildEntry(w, 2);
  REQUIRE(back);
  CHECK(iptc::SameRule(e->get(), "KUBE-X", *back));
  CHECK_FALSE(iptc::SameRule(e->get(), "KUBE-Y", *back));
}

namespace {

// iptables-legacy-save -c (counters) without its "# Generated/Completed" lines.
std::string LegacySaveCounters() {
  std::string out;
  Run("iptables-legacy-save -c 2>&1", &out);
  std::string kept;
  for (const auto& line : base::Split(out, '\n', true)) {
    if (line[0] != '#') kept += line + "\n";
  }
  return kept;
}

// Rules and chains of other programs, with counters, in nat, filter and mangle: what the proxy's
// commits must leave exactly as they are.
const char* kForeign =
    "*nat\n"
    ":PREROUTING ACCEPT [7:700]\n"
    ":OUTPUT ACCEPT [8:800]\n"
    ":DOCKER - [0:0]\n"
    ":ZZ-LAST - [0:0]\n"
    "[3:300] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER\n"
    "[4:400] -A DOCKER -i docker0 -j RETURN\n"
    "[5:500] -A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80\n"
    "[6:600] -A ZZ-LAST -j DOCKER\n"
    "[9:900] -A ZZ-LAST -m mark --mark 0x1/0x1\n"
    "COMMIT\n"
    "*filter\n"
    ":FORWARD DROP [11:1100]\n"
    ":DOCKER-USER - [0:0]\n"
    "[12:1200] -A FORWARD -j DOCKER-USER\n"
    "[13:1300] -A DOCKER-USER -j RETURN\n"
    "COMMIT\n"
    "*mangle\n"
    "[14:1400] -A PREROUTING -j MARK --set-xmark 0x2/0xffffffff\n"
    "COMMIT\n";

struct Step {
  std::string save;  // iptables-legacy-save -c
  std::string error;
  LibiptcBackend::Stats stats;
};

std::vector<Step> ApplyWith(IptcWriter writer, const std::vector<std::string>& buffers) {
  std::vector<Step> steps;
  InFreshNetns([&] {
    std::string out;
    const std::string file = "/tmp/cubelet_iptc_foreign_" + std::to_string(getpid()) + ".rules";
    REQUIRE(base::WriteFile(file, kForeign));
    const int rc = Run("iptables-legacy-restore -c < " + file + " 2>&1", &out);
    unlink(file.c_str());
    INFO(out);
    REQUIRE(rc == 0);
    LibiptcBackend b(/*fallback=*/false, std::chrono::seconds(5), writer);
    for (const auto& buf : buffers) {
      Step s;
      if (auto r = b.Restore(buf); !r) s.error = r.error().message;
      s.save = LegacySaveCounters();
      s.stats = b.stats();
      steps.push_back(std::move(s));
    }
  });
  return steps;
}

}  // namespace

TEST_CASE("direct table writer: iptables-legacy-save -c after it equals after libiptc") {
  // A first sync (goldens of every shape, one commit per table as the engine sends it), a
  // partial sync with a deletion, then the cleanup of everything of the proxy's.
  const std::string full = Golden("external_local.rules") +
                           "*nat\n-I PREROUTING 1 -m comment --comment \"kubernetes service "
                           "portals\" -j KUBE-SERVICES\nCOMMIT\n" +
                           kCanaryRestore;
  const std::string shapes = TestFile("libiptc_shapes.rules");
  const std::string partial = TestFile("libiptc_partial.rules");
  std::string cleanup;
  InFreshNetns([&] {
    LibiptcBackend ref(false, std::chrono::seconds(5), IptcWriter::kLibiptc);
    REQUIRE(ref.Restore(full));
    REQUIRE(ref.Restore(partial));
    REQUIRE(ref.Restore(shapes));
    auto snap = ref.Snapshot();
    REQUIRE(snap);
    cleanup = CleanupBuffer(*snap);
  });
  const std::vector<std::string> buffers = {full, partial, shapes, cleanup};
  auto want = ApplyWith(IptcWriter::kLibiptc, buffers);
  auto got = ApplyWith(IptcWriter::kBlob, buffers);
  REQUIRE(want.size() == buffers.size());
  REQUIRE(got.size() == buffers.size());
  for (size_t i = 0; i < buffers.size(); ++i) {
    INFO("step " << i);
    REQUIRE(want[i].error == "");
    CHECK(got[i].error == "");
    auto a = base::Split(want[i].save, '\n');
    auto b = base::Split(got[i].save, '\n');
    for (size_t k = 0; k < std::max(a.size(), b.size()); ++k) {
      INFO("save -c line " << k + 1);
      CHECK((k < b.size() ? b[k] : "<none>") == (k < a.size() ? a[k] : "<none>"));
    }
    // Foreign rules, chains, policies and their counters are there, untouched.
    // (Built-in chains' policy counters restart at each commit, with libiptc as here.)
    for (const char* line :
         {":PREROUTING ACCEPT [0:0]", ":DOCKER - [0:0]", ":ZZ-LAST - [0:0]",
          "[3:300] -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
          "[5:500] -A DOCKER -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80",
          "[6:600] -A ZZ-LAST -j DOCKER", "[9:900] -A ZZ-LAST -m mark --mark 0x1/0x1",
          ":FORWARD DROP [0:0]", "[13:1300] -A DOCKER-USER -j RETURN",
          "[14:1400] -A PREROUTING -j MARK --set-xmark 0x2/0xffffffff"}) {
      INFO(line);
      CHECK(got[i].save.find(line) != std::string::npos);
    }
    // Every table went through the direct writer, none through libiptc.
    CHECK(got[i].stats.libiptc_tables == 0);
    CHECK(want[i].stats.blob_tables == 0);
  }
  CHECK(got.back().stats.blob_tables >= 7);
  CHECK(got[0].save.find("-j KUBE-SERVICES") != std::string::npos);
  CHECK(got[1].save.find(":KUBE-SEP-NEWNEWNEWNEWNEWN") != std::string::npos);
  CHECK(got[3].save.find("-A KUBE-SERVICES") == std::string::npos);
}

TEST_CASE("direct table writer: a command libiptc refuses goes to libiptc, which names it") {
  InFreshNetns([&] {
    LibiptcBackend b(/*fallback=*/false);
    REQUIRE(b.Restore("*nat\n:KUBE-A - [0:0]\n-A KUBE-A -j RETURN\nCOMMIT\n"));
    CHECK(b.stats().blob_tables == 1);
    // KUBE-A is still referenced when deleted.
    auto r = b.Restore("*nat\n:KUBE-B - [0:0]\n-A KUBE-B -j KUBE-A\n-X KUBE-A\nCOMMIT\n");
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("line 4") != std::string::npos);
    CHECK(b.stats().libiptc_tables == 1);
    CHECK(LegacySave().find("KUBE-B") == std::string::npos);
  });
}
