#include "netproxy/nftables_engine.h"

#include <nftables/libnftables.h>

#include "base/log.h"
#include "base/strings.h"

#include <algorithm>

namespace netproxy {

namespace {

class LibNftablesBackend final : public NftScriptBackend {
 public:
  ~LibNftablesBackend() override {
    if (ctx_) nft_ctx_free(ctx_);
  }
  std::string Name() const override { return "nftables"; }
  base::Result<> Run(const std::string& script) override {
    if (!ctx_) {
      ctx_ = nft_ctx_new(NFT_CTX_DEFAULT);
      if (!ctx_) return base::Fail("nftables: cannot create a libnftables context");
      nft_ctx_buffer_output(ctx_);
      nft_ctx_buffer_error(ctx_);
    }
    int rc = nft_run_cmd_from_buffer(ctx_, script.c_str());
    if (rc == 0) return {};
    std::string err = nft_ctx_get_error_buffer(ctx_);
    // The error names the failing line of the script: keep it short in logs.
    if (err.size() > 2000) err = err.substr(0, 2000) + "...";
    return base::Fail("nftables: " + std::string(base::Trim(err)));
  }

 private:
  nft_ctx* ctx_ = nullptr;
};

class NftablesEngine final : public ProxyEngine {
 public:
  NftablesEngine(NftBackendPtr backend, NftRendererConfig config,
                 std::vector<std::string> nodeport_cidrs)
      : backend_(std::move(backend)),
        config_(std::move(config)),
        requested_shards_(config_.shards),
        nodeport_cidrs_(std::move(nodeport_cidrs)) {}

  std::string Name() const override { return backend_->Name(); }
  base::Result<> Cleanup() override {
    applied_.clear();
    hairpin_refs_.clear();
    return CleanupNftables(*backend_);
  }

  base::Result<EngineSyncStats> Sync(const ProxyState& state, const StateUpdateResult& update,
                                     bool full) override {
    if (!NodePortMatchAll(nodeport_cidrs_)) {
      auto ips = LocalAddressesIn(nodeport_cidrs_);
      if (ips != config_.nodeport_ips) {
        config_.nodeport_ips = std::move(ips);
        full = true;  // the base chains change
      }
    }
    // Auto sharding: about 1000 service ports per table (a change then costs ~10 ms of kernel
    // validation whatever the cluster size); re-shard at a full sync when that grows 2x.
    const size_t n = state.service_ports().size();
    if (requested_shards_ <= 0 && !full &&
        n > 2000 * static_cast<size_t>(std::max(1, config_.shards))) {
      full = true;
    }
    if (full && requested_shards_ <= 0) {
      config_.shards = static_cast<int>(std::clamp<size_t>((n + 999) / 1000, 1, kNftMaxShards));
    }
    EngineSyncStats stats;
    if (full) {
      NftServiceMap services;
      for (const auto& [spn, svc] : state.service_ports()) {
        services.emplace(spn, RenderNftService(config_, svc, state.EndpointsFor(spn)));
      }
      auto r = backend_->ReplaceTable(config_, services);
      if (!r) return tl::unexpected(r.error());
      stats.commits = 1;
      applied_ = std::move(services);
      hairpin_refs_.clear();
      for (const auto& [_, o] : applied_) {
        for (const auto& e : o.elements) {
          if (e.map == kNftHairpinSet) ++hairpin_refs_[e.key];
        }
      }
    } else {
      // The ports of each changed service, before and after.
      NftServiceMap rendered;
      std::vector<ServicePortName> touched;
      for (const auto& name : update.updated_services) {
        ServicePortName lo{name, "", Protocol::kTCP};
        for (auto it = state.service_ports().lower_bound(lo);
             it != state.service_ports().end() && it->first.service == name; ++it) {
          rendered.emplace(it->first,
                           RenderNftService(config_, it->second, state.EndpointsFor(it->first)));
          touched.push_back(it->first);
        }
        for (auto it = applied_.lower_bound(lo); it != applied_.end() && it->first.service == name;
             ++it) {
          if (!rendered.count(it->first)) touched.push_back(it->first);
        }
      }
      std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>> changes;
      for (const auto& spn : touched) {
        auto a = applied_.find(spn);
        auto r = rendered.find(spn);
        changes.push_back({a == applied_.end() ? nullptr : &a->second,
                           r == rendered.end() ? nullptr : &r->second});
      }
      // Updated in place: a failure forces a full sync, which recounts.
      NftDiff diff = ComputeNftDiff(changes, hairpin_refs_);
      if (!diff.empty()) {
        auto r = backend_->ApplyDiff(diff);
        if (!r) return tl::unexpected(r.error());
        stats.commits = 1;
      }
      for (const auto& spn : touched) {
        auto r = rendered.find(spn);
        if (r == rendered.end()) {
          applied_.erase(spn);
        } else {
          applied_[spn] = std::move(r->second);
        }
      }
    }
    size_t chains = 0, elements = 0;
    for (const auto& [_, o] : applied_) {
      chains += o.chains.size();
      elements += o.elements.size();
    }
    stats.rules["nft_chains"] = chains;
    stats.rules["nft_tables"] = std::max(1, config_.shards) + (config_.shards > 1 ? 1 : 0);
    stats.rules["nft_elements"] = elements;
    return stats;
  }

 private:
  NftBackendPtr backend_;
  NftRendererConfig config_;
  int requested_shards_;  // <= 0: automatic
  std::vector<std::string> nodeport_cidrs_;
  NftServiceMap applied_;
  std::map<std::string, int> hairpin_refs_;
};

}  // namespace

NftBackendPtr MakeLibNftablesBackend() { return std::make_unique<LibNftablesBackend>(); }

base::Result<> NftScriptBackend::ReplaceTable(const NftRendererConfig& config,
                                              const NftServiceMap& services) {
  return Run(NftFullScript(config, services));
}

base::Result<> NftScriptBackend::ApplyDiff(const NftDiff& diff) { return Run(NftDiffText(diff)); }

base::Result<> NftScriptBackend::DeleteTable() {
  std::string script;
  NftRendererConfig all;
  all.shards = kNftMaxShards;
  for (const auto& t : NftShardTables(all)) {
    script += "add table ip " + t + "\ndelete table ip " + t + "\n";
  }
  return Run(script + "add table ip " + kNftTable + "\ndelete table ip " + kNftTable + "\n");
}

base::Result<> FakeNftBackend::Run(const std::string& script) {
  std::lock_guard lock(mu_);
  scripts_.push_back(script);
  if (fail_next_ > 0) {
    --fail_next_;
    return base::Fail("nftables (fake): injected failure");
  }
  return {};
}

std::vector<std::string> FakeNftBackend::scripts() const {
  std::lock_guard lock(mu_);
  return scripts_;
}

std::string FakeNftBackend::last() const {
  std::lock_guard lock(mu_);
  return scripts_.empty() ? std::string() : scripts_.back();
}

void FakeNftBackend::FailNext(int n) {
  std::lock_guard lock(mu_);
  fail_next_ = n;
}

ProxyEnginePtr MakeNftablesEngine(NftBackendPtr backend, const NftRendererConfig& config,
                                  std::vector<std::string> nodeport_cidrs) {
  return std::make_unique<NftablesEngine>(std::move(backend), config, std::move(nodeport_cidrs));
}

}  // namespace netproxy
