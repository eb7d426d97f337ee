#include "netproxy/rules_backend.h"

#include <algorithm>

#include "base/log.h"
#include "base/strings.h"
#include "netproxy/chain_names.h"
#include "netproxy/iptables_renderer.h"

namespace netproxy {

namespace {

bool IsBuiltinChain(std::string_view c) {
  return c == "PREROUTING" || c == "INPUT" || c == "FORWARD" || c == "OUTPUT" || c == "POSTROUTING";
}

// The target of a rule line ("... -j KUBE-SERVICES" -> "KUBE-SERVICES"), or "".
std::string_view JumpTarget(std::string_view line) {
  size_t pos = line.rfind(" -j ");
  if (pos == std::string_view::npos) return {};
  std::string_view rest = line.substr(pos + 4);
  return rest.substr(0, rest.find(' '));
}

// The chain of an "-A CHAIN ..." line.
std::string_view RuleChain(std::string_view line) {
  std::string_view rest = line.substr(3);
  return rest.substr(0, rest.find(' '));
}

// Chains the proxy creates besides per-service ones (all modes).
bool IsProxyChain(const std::string& table, std::string_view chain) {
  if (IsServiceChainName(chain)) return table == "nat";
  const auto& tops = table == "nat" ? kNatTopChains : kFilterTopChains;
  if (std::find(tops.begin(), tops.end(), chain) != tops.end()) return true;
  if (table == "filter" && chain == "KUBE-FIREWALL") return true;
  if (table == "nat" && chain == "KUBE-PROXY-CANARY") return true;
  // Userspace mode's redirect chains.
  if (table == "nat" && base::StartsWith(chain, "KUBE-PORTALS-")) return true;
  if (base::StartsWith(chain, "KUBE-NODEPORT-")) return true;
  return false;
}

}  // namespace

IptablesSnapshot IptablesSnapshot::Parse(std::string_view text) {
  IptablesSnapshot snap;
  Table* table = nullptr;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '*') {
      table = &snap.tables[std::string(line.substr(1))];
    } else if (!table) {
      continue;
    } else if (line[0] == ':') {
      std::string_view rest = line.substr(1);
      table->chains.emplace(rest.substr(0, rest.find(' ')));
    } else if (base::StartsWith(line, "-A ")) {
      if (IsBuiltinChain(RuleChain(line)) && base::StartsWith(JumpTarget(line), "KUBE-")) {
        table->kube_jumps.emplace_back(line);
      }
    }
  }
  return snap;
}

bool IptablesSnapshot::HasChain(const std::string& table, const std::string& chain) const {
  auto it = tables.find(table);
  return it != tables.end() && it->second.chains.count(chain);
}

std::vector<IptablesJump> MissingJumps(const IptablesSnapshot& snap,
                                       const std::vector<IptablesJump>& wanted) {
  std::vector<IptablesJump> missing;
  for (const auto& j : wanted) {
    bool found = false;
    auto it = snap.tables.find(j.table);
    if (it != snap.tables.end()) {
      for (const auto& line : it->second.kube_jumps) {
        if (RuleChain(line) == j.from_chain && JumpTarget(line) == j.to_chain) {
          found = true;
          break;
        }
      }
    }
    if (!found) missing.push_back(j);
  }
  return missing;
}

std::string CleanupBuffer(const IptablesSnapshot& snap) {
  std::string out;
  for (const char* name : {"filter", "nat"}) {
    auto it = snap.tables.find(name);
    if (it == snap.tables.end()) continue;
    const auto& t = it->second;
    std::vector<std::string> chains;
    for (const auto& c : t.chains) {
      if (IsProxyChain(name, c)) chains.push_back(c);
    }
    std::vector<std::string> jumps;
    for (const auto& line : t.kube_jumps) {
      if (IsProxyChain(name, JumpTarget(line))) jumps.push_back("-D" + line.substr(2));
    }
    if (chains.empty() && jumps.empty()) continue;
    out += '*';
    out += name;
    out += '\n';
    for (const auto& c : chains) out += ":" + c + " - [0:0]\n";
    for (const auto& j : jumps) out += j + "\n";
    for (const auto& c : chains) out += "-X " + c + "\n";
    out += "COMMIT\n";
  }
  return out;
}

base::Result<> CleanupLeftovers(RulesBackend& backend) {
  auto snap = backend.Snapshot();
  if (!snap) return tl::unexpected(snap.error().Wrap("clean up proxy rules"));
  std::string buf = CleanupBuffer(*snap);
  if (buf.empty()) return {};
  base::log::Info("removing proxy rules", {{"backend", backend.Name()}});
  base::log::Debug("proxy cleanup commit", {{"rules", buf}});
  CUBELET_TRY_CTX(backend.Restore(buf), "clean up proxy rules");
  return {};
}

// --- FakeRulesBackend ---

base::Result<IptablesSnapshot> FakeRulesBackend::Snapshot() {
  std::lock_guard lock(mu_);
  return snapshot_;
}

base::Result<> FakeRulesBackend::Restore(const std::string& buffer) {
  std::lock_guard lock(mu_);
  buffers_.push_back(buffer);
  if (fail_next_ > 0) {
    --fail_next_;
    return base::Fail("iptables-restore (fake): injected failure");
  }
  // Track chains and jumps as the kernel would.
  IptablesSnapshot::Table* table = nullptr;
  for (const auto& line : base::Split(buffer, '\n', true)) {
    if (line[0] == '*') {
      table = &snapshot_.tables[line.substr(1)];
    } else if (!table) {
      continue;
    } else if (line[0] == ':') {
      table->chains.insert(line.substr(1, line.find(' ') - 1));
    } else if (base::StartsWith(line, "-X ")) {
      table->chains.erase(line.substr(3));
    } else if (base::StartsWith(line, "-I ")) {
      // "-I CHAIN 1 args" -> "-A CHAIN args"
      auto parts = base::Split(line, ' ');
      std::string rest = line.substr(3 + parts[1].size() + 1 + parts[2].size() + 1);
      table->kube_jumps.push_back("-A " + parts[1] + " " + rest);
    } else if (base::StartsWith(line, "-D ")) {
      std::string as_add = "-A" + line.substr(2);
      auto& j = table->kube_jumps;
      j.erase(std::remove(j.begin(), j.end(), as_add), j.end());
    }
  }
  return {};
}

base::Result<bool> FakeRulesBackend::CanaryPresent() {
  std::lock_guard lock(mu_);
  return snapshot_.HasChain("nat", "KUBE-PROXY-CANARY");
}

std::string FakeRulesBackend::last_buffer() const {
  std::lock_guard lock(mu_);
  return buffers_.empty() ? std::string() : buffers_.back();
}

std::vector<std::string> FakeRulesBackend::buffers() const {
  std::lock_guard lock(mu_);
  return buffers_;
}

size_t FakeRulesBackend::restore_count() const {
  std::lock_guard lock(mu_);
  return buffers_.size();
}

void FakeRulesBackend::FailNext(int n) {
  std::lock_guard lock(mu_);
  fail_next_ = n;
}

void FakeRulesBackend::SetSnapshot(IptablesSnapshot s) {
  std::lock_guard lock(mu_);
  snapshot_ = std::move(s);
}

}  // namespace netproxy
