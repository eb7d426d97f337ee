#include "netproxy/iptables_ruleset.h"

namespace netproxy {

IptablesChain* IptablesTable::AddChain(std::string chain_name, int group) {
  chains.push_back(IptablesChain{std::move(chain_name), group, {}});
  return &chains.back();
}

const IptablesChain* IptablesTable::Find(std::string_view chain_name) const {
  for (const auto& c : chains) {
    if (c.name == chain_name) return &c;
  }
  return nullptr;
}

size_t IptablesTable::WrittenRules() const {
  size_t n = 0;
  for (const auto& c : chains) n += c.rules.size();
  return n;
}

std::string QuoteArg(std::string_view arg) {
  if (!arg.empty() && arg.find_first_of(" \t\"'") == std::string_view::npos) {
    return std::string(arg);
  }
  std::string out = "\"";
  for (char c : arg) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string IptablesJump::RuleArgs() const {
  std::string out;
  for (const auto& a : extra_args) {
    out += a;
    out += ' ';
  }
  if (!comment.empty()) {
    out += "-m comment --comment ";
    out += QuoteArg(comment);
    out += ' ';
  }
  out += "-j ";
  out += to_chain;
  return out;
}

namespace {

// Writes one table; with top_level_only, the per-service chains are left out.
void SerializeTable(const IptablesTable& t, const std::vector<IptablesJump>& jumps,
                    std::string& out, bool top_level_only = false) {
  auto selected = [&](const IptablesChain& c) { return !top_level_only || c.group < 0; };
  out += '*';
  out += t.name;
  out += '\n';
  for (const auto& c : t.chains) {
    if (!selected(c)) continue;
    out += ':';
    out += c.name;
    out += " - [0:0]\n";
  }

  for (const auto& name : t.deleted_chains) {
    out += ':';
    out += name;
    out += " - [0:0]\n";
  }
  for (const auto& c : t.chains) {
    if (!selected(c)) continue;
    for (const auto& r : c.rules) {
      out += "-A ";
      out += c.name;
      out += ' ';
      out += r;
      out += '\n';
    }
  }
  for (const auto& j : jumps) {
    if (j.table != t.name) continue;
    out += "-I ";
    out += j.from_chain;
    out += " 1 ";
    out += j.RuleArgs();
    out += '\n';
  }
  for (const auto& name : t.deleted_chains) {
    out += "-X ";
    out += name;
    out += '\n';
  }
  out += "COMMIT\n";
}

}  // namespace

std::vector<std::string> IptablesRuleset::SerializeChunked(
    const std::vector<IptablesJump>& jumps_to_insert, size_t max_chains) const {
  std::vector<std::string> out;
  // Per-service chains jump to KUBE-MARK-MASQ: it must exist from the first commit on.
  const IptablesChain* mark_masq = nat.Find("KUBE-MARK-MASQ");
  std::vector<const IptablesChain*> batch;
  auto flush = [&] {
    if (batch.empty()) return;
    if (out.empty() && mark_masq) batch.insert(batch.begin(), mark_masq);
    std::string buf = "*" + nat.name + "\n";
    for (const IptablesChain* c : batch) buf += ":" + c->name + " - [0:0]\n";
    for (const IptablesChain* c : batch) {
      for (const auto& r : c->rules) {
        buf += "-A ";
        buf += c->name;
        buf += ' ';
        buf += r;
        buf += '\n';
      }
    }
    buf += "COMMIT\n";
    out.push_back(std::move(buf));
    batch.clear();
  };
  int last = -1;
  for (const auto& c : nat.chains) {
    if (c.group < 0) continue;
    if (c.group != last && batch.size() >= max_chains) flush();
    last = c.group;
    batch.push_back(&c);
  }
  flush();
  std::string final_buf;
  SerializeTable(filter, jumps_to_insert, final_buf);
  SerializeTable(nat, jumps_to_insert, final_buf, true);
  out.push_back(std::move(final_buf));
  return out;
}

std::string IptablesRuleset::Serialize(const std::vector<IptablesJump>& jumps_to_insert) const {
  std::string out;
  size_t estimate = 64;
  for (const IptablesTable* t : {&filter, &nat}) {
    for (const auto& c : t->chains) {
      estimate += c.name.size() + 10;
      for (const auto& r : c.rules) estimate += r.size() + c.name.size() + 5;
    }
  }
  out.reserve(estimate);
  SerializeTable(filter, jumps_to_insert, out);
  SerializeTable(nat, jumps_to_insert, out);
  return out;
}

}  // namespace netproxy
