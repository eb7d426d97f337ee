#pragma once
// RulesBackend over the host's iptables-restore / iptables-save programs: one child process per
// commit. Works in whatever network namespace the calling thread is in.
#include <string>

#include "netproxy/exec.h"
#include "netproxy/rules_backend.h"

namespace netproxy {

enum class IptablesVariant { kNft, kLegacy };
std::string_view IptablesVariantName(IptablesVariant v);  // "nft" / "legacy"

// Which iptables the host uses, decided as the Kubernetes iptables-wrapper does: the kubelet's
// KUBE-IPTABLES-HINT (or KUBE-KUBELET-CANARY) chain in mangle wins; otherwise the variant with
// more rules; nft when undecided (the Debian 12 default).
IptablesVariant DetectIptablesVariant();

class IptablesRestoreBackend final : public RulesBackend {
 public:
  explicit IptablesRestoreBackend(IptablesVariant variant);

  std::string Name() const override;
  base::Result<IptablesSnapshot> Snapshot() override;
  base::Result<> Restore(const std::string& buffer) override;
  base::Result<bool> CanaryPresent() override;
  // iptables-nft-restore --noflush spends time quadratic in the chains of one input (measured:
  // 250 services x 10 endpoints 2.0 s, 500 7.6 s, 1000 38 s); commits of ~1000 chains keep it
  // linear. iptables-legacy-restore rewrites whole tables and gains nothing from splitting.
  size_t ChunkChains() const override { return variant_ == IptablesVariant::kNft ? 1000 : 0; }
  IptablesVariant variant() const { return variant_; }

 private:
  IptablesVariant variant_;
  std::string save_;
  std::string restore_;
  std::string iptables_;
};

// The lines around `line` (1-based) of `buffer`, for error messages ("line 12 failed").
std::string ExcerptLines(const std::string& buffer, int line, int context = 2);

}  // namespace netproxy
