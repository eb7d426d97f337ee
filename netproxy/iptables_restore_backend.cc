#include "netproxy/iptables_restore_backend.h"

#include <regex>

#include "base/log.h"
#include "base/strings.h"

namespace netproxy {

std::string_view IptablesVariantName(IptablesVariant v) {
  return v == IptablesVariant::kNft ? "nft" : "legacy";
}

namespace {

// Lines of iptables-save output that are rules ("-A ...").
size_t CountRules(const std::string& save) {
  size_t n = 0;
  size_t pos = 0;
  while (pos < save.size()) {
    if (save.compare(pos, 3, "-A ") == 0) ++n;
    pos = save.find('\n', pos);
    if (pos == std::string::npos) break;
    ++pos;
  }
  return n;
}

std::string SaveOutput(const std::vector<std::string>& argv) {
  auto r = RunCommand(argv, {}, std::chrono::seconds(30));
  if (!r || !r->ok()) return {};
  return r->out;
}

bool HasHint(const std::string& mangle) {
  return mangle.find(":KUBE-IPTABLES-HINT") != std::string::npos ||
         mangle.find(":KUBE-KUBELET-CANARY") != std::string::npos;
}

}  // namespace

IptablesVariant DetectIptablesVariant() {
  if (HasHint(SaveOutput({"iptables-nft-save", "-t", "mangle"}))) return IptablesVariant::kNft;
  if (HasHint(SaveOutput({"iptables-legacy-save", "-t", "mangle"}))) {
    return IptablesVariant::kLegacy;
  }
  size_t legacy = CountRules(SaveOutput({"iptables-legacy-save"}));
  size_t nft = CountRules(SaveOutput({"iptables-nft-save"}));
  return legacy > nft ? IptablesVariant::kLegacy : IptablesVariant::kNft;
}

IptablesRestoreBackend::IptablesRestoreBackend(IptablesVariant variant)
    : variant_(variant),
      save_(variant == IptablesVariant::kNft ? "iptables-nft-save" : "iptables-legacy-save"),
      restore_(variant == IptablesVariant::kNft ? "iptables-nft-restore"
                                                : "iptables-legacy-restore"),
      iptables_(variant == IptablesVariant::kNft ? "iptables-nft" : "iptables-legacy") {}

base::Result<bool> IptablesRestoreBackend::CanaryPresent() {
  auto r = RunCommand({iptables_, "-w", "5", "-t", "nat", "-S", "KUBE-PROXY-CANARY"}, {},
                      std::chrono::seconds(30));
  if (!r) return tl::unexpected(r.error().Wrap("check the proxy's canary chain"));
  // Exit 1 with "No chain/target/match by that name" when it is gone.
  return r->ok() && r->out.find("-A KUBE-PROXY-CANARY") != std::string::npos;
}

std::string IptablesRestoreBackend::Name() const {
  return "iptables-" + std::string(IptablesVariantName(variant_));
}

base::Result<IptablesSnapshot> IptablesRestoreBackend::Snapshot() {
  std::vector<std::string> argv = {save_};
  auto r = RunCommand(argv);
  if (!r) return tl::unexpected(r.error().Wrap("read iptables rules"));
  if (!r->ok()) {
    return base::Fail(save_ + " failed (exit " + std::to_string(r->exit_code) +
                      "): " + std::string(base::Trim(r->err)));
  }
  return IptablesSnapshot::Parse(r->out);
}

std::string ExcerptLines(const std::string& buffer, int line, int context) {
  auto lines = base::Split(buffer, '\n');
  std::string out;
  for (int i = std::max(1, line - context); i <= std::min<int>(lines.size(), line + context); ++i) {
    out += (i == line ? "> " : "  ") + std::to_string(i) + ": " + lines[i - 1] + "\n";
  }
  return out;
}

base::Result<> IptablesRestoreBackend::Restore(const std::string& buffer) {
  std::vector<std::string> argv = {restore_};
  // The legacy tables are guarded by the xtables lock (shared by every netns of the host).
  if (variant_ == IptablesVariant::kLegacy) {
    argv.insert(argv.end(), {"-w", "5"});
  }
  argv.insert(argv.end(), {"--noflush", "--counters"});
  auto r = RunCommand(argv, buffer);
  if (!r) return tl::unexpected(r.error().Wrap("apply iptables rules"));
  if (r->ok()) return {};
  std::string msg = restore_ + " failed (exit " + std::to_string(r->exit_code) +
                    "): " + std::string(base::Trim(r->err));
  // "iptables-restore: line 12 failed": show that part of the input.
  static const std::regex kLine("line ([0-9]+) failed");
  std::smatch m;
  if (std::regex_search(r->err, m, kLine)) {
    msg += "\n" + ExcerptLines(buffer, std::stoi(m[1].str()));
  }
  return base::Fail(msg);
}

}  // namespace netproxy
