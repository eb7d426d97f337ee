#include "netproxy/nftables_engine.h"

#include <nftables/libnftables.h>

#include <algorithm>
#include <set>

#include "base/log.h"
#include "base/strings.h"

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

constexpr size_t kNftPipelineMinTables = 8;

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
    hairpin_refs_.clear();
    return backend_->DeleteTable();
  }
  base::Result<bool> Intact() override { return backend_->Present(); }

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
      CUBELET_TRY(FullSync(state, stats));
    } else {
      CUBELET_TRY(PartialSync(state, update, stats));
    }
    stats.rules["nft_chains"] = chains_;
    stats.rules["nft_elements"] = elements_;
    stats.rules["nft_tables"] = config_.shards > 1 ? config_.shards + 1 : 1;
    return stats;
  }

 private:
  // One transaction per service table, rendered and sent one table at a time (the netlink
  // backend applies one while the next is rendered; the peak memory of a 30k-service sync is
  // about two tables' worth), then the main table with the refusals collected on the way and
  // the hairpin set, whose members are the keys of hairpin_refs_ (not copied).
  base::Result<> FullSync(const ProxyState& state, EngineSyncStats& stats) {
    hairpin_refs_.clear();
    chains_ = elements_ = 0;
    const auto shards = NftShardTables(config_);
    NftRendererConfig all = config_;
    all.shards = kNftMaxShards;
    auto all_tables = NftShardTables(all);
    std::vector<std::string> stale(all_tables.begin() + static_cast<long>(shards.size()),
                                   all_tables.end());
    CUBELET_TRY(backend_->DeleteTables(stale));

    std::map<std::string, std::vector<const ServicePort*>> by_table;
    for (const auto& [spn, svc] : state.service_ports()) {
      by_table[NftServiceTable(config_, spn.service)].push_back(&svc);
    }
    // One hairpin key per reachable endpoint at most: sized once, so that the table does not
    // grow (two copies at once) in the middle of the sync.
    size_t endpoints = 0;
    for (const auto& [_, eps] : state.endpoints()) endpoints += eps.size();
    hairpin_refs_.reserve(endpoints);
    std::vector<NftElement> main_elems;
    std::vector<NftElement> elems;
    // Renders one table's services one by one into the backend's sink; elements are moved to
    // `elems` (this table's maps) or `main_elems` (refusals), hairpin members counted only.
    auto source = [&](const std::string& table) -> NftServiceSource {
      elems.clear();
      return [&, table](const NftServiceSink& sink) {
        for (const ServicePort* svc : by_table[table]) {
          NftServiceObjects o = RenderNftService(config_, *svc, state.EndpointsFor(svc->name));
          chains_ += o.chains.size();
          for (auto& e : o.elements) {
            if (e.map == kNftHairpinSet) {
              if (hairpin_refs_.Add(NftHairpinKey(e.key)) == 0) ++elements_;
              continue;
            }
            ++elements_;
            (e.table == table ? elems : main_elems).push_back(std::move(e));
          }
          o.elements.clear();
          sink(o);
        }
        if (table == kNftTable) {
          elems.insert(elems.end(), std::make_move_iterator(main_elems.begin()),
                       std::make_move_iterator(main_elems.end()));
          main_elems = {};
        }
      };
    };
    // Pipelined (the next table built while the kernel applies this one) only from
    // kNftPipelineMinTables service tables: it holds a second transaction (~4.7 MiB a table of
    // 1000 service ports). Measured 2026-11-24 (load 3.4-4.8): at 5k services (5 tables) the
    // first sync took 0.74-0.96 s either way, with 25.8-26.5 MiB peak RSS sequential against
    // 29.1-30.3 MiB pipelined; at 10k 1.50-1.78 s sequential against 1.45-1.55 s pipelined.
    const bool pipeline = shards.size() >= kNftPipelineMinTables;
    for (const auto& t : shards) {
      CUBELET_TRY(backend_->ReplaceTable(config_, t, source(t), elems));
      if (!pipeline) CUBELET_TRY(backend_->Wait());
      ++stats.commits;
    }
    CUBELET_TRY(
        backend_->ReplaceTable(config_, kNftTable, source(kNftTable), elems, &hairpin_refs_));
    CUBELET_TRY(backend_->Flush());
    ++stats.commits;
    return {};
  }

  // The changed services' objects as they were rendered last time (from the state before the
  // update) and as they are now; the difference goes to the kernel in one transaction.
  base::Result<> PartialSync(const ProxyState& state, const StateUpdateResult& update,
                             EngineSyncStats& stats) {
    std::vector<NftServiceObjects> storage;
    std::vector<std::pair<size_t, size_t>> index;  // into storage; SIZE_MAX = absent
    constexpr size_t kNone = SIZE_MAX;
    storage.reserve(4 * update.updated_services.size() + 4);
    for (const auto& name : update.updated_services) {
      const ServicePortName lo{name, "", Protocol::kTCP};
      // Ports now.
      std::map<ServicePortName, const ServicePort*> now;
      for (auto it = state.service_ports().lower_bound(lo);
           it != state.service_ports().end() && it->first.service == name; ++it) {
        now[it->first] = &it->second;
      }
      // Ports before: from the update when the Service changed, else the same as now.
      std::map<ServicePortName, const ServicePort*> before = now;
      auto pp = update.previous_ports.find(name);
      if (pp != update.previous_ports.end()) {
        before.clear();
        for (const auto& [spn, sp] : pp->second) before[spn] = &sp;
      }
      auto pe = update.previous_endpoints.find(name);
      auto eps_before = [&](const ServicePortName& spn) -> const std::vector<EndpointInfo>& {
        static const std::vector<EndpointInfo> kNoEndpoints;
        if (pe == update.previous_endpoints.end()) return state.EndpointsFor(spn);
        auto it = pe->second.find(spn);
        return it == pe->second.end() ? kNoEndpoints : it->second;
      };
      std::set<ServicePortName> spns;
      for (const auto& [spn, _] : now) spns.insert(spn);
      for (const auto& [spn, _] : before) spns.insert(spn);
      for (const auto& spn : spns) {
        size_t b = kNone, a = kNone;
        if (auto it = before.find(spn); it != before.end()) {
          storage.push_back(RenderNftService(config_, *it->second, eps_before(spn)));
          b = storage.size() - 1;
        }
        if (auto it = now.find(spn); it != now.end()) {
          storage.push_back(RenderNftService(config_, *it->second, state.EndpointsFor(spn)));
          a = storage.size() - 1;
        }
        index.emplace_back(b, a);
      }
    }
    std::vector<std::pair<const NftServiceObjects*, const NftServiceObjects*>> changes;
    for (auto [b, a] : index) {
      changes.push_back({b == kNone ? nullptr : &storage[b], a == kNone ? nullptr : &storage[a]});
    }
    // Updated in place: a failure forces a full sync, which recounts.
    NftDiff diff = ComputeNftDiff(changes, hairpin_refs_);
    if (diff.empty()) return {};
    CUBELET_TRY(backend_->ApplyDiff(diff));
    ++stats.commits;
    chains_ += diff.chains_add.size();
    chains_ -= std::min(chains_, diff.chains_del.size());
    elements_ += diff.elems_add.size();
    elements_ -= std::min(elements_, diff.elems_del.size());
    return {};
  }

  NftBackendPtr backend_;
  NftRendererConfig config_;
  int requested_shards_;  // <= 0: automatic
  std::vector<std::string> nodeport_cidrs_;
  NftRefCounts hairpin_refs_;
  size_t chains_ = 0;
  size_t elements_ = 0;
};

}  // namespace

NftBackendPtr MakeLibNftablesBackend() { return std::make_unique<LibNftablesBackend>(); }

base::Result<> NftScriptBackend::ReplaceTable(const NftRendererConfig& config,
                                              const std::string& table,
                                              const NftServiceSource& services,
                                              const std::vector<NftElement>& elements,
                                              const NftRefCounts* hairpin) {
  std::vector<NftServiceObjects> objs;
  services([&](const NftServiceObjects& o) { objs.push_back(o); });
  std::vector<const NftServiceObjects*> ptrs;
  for (const auto& o : objs) ptrs.push_back(&o);
  if (!hairpin) return Run(NftTableScript(config, table, ptrs, elements));
  std::vector<NftElement> all = elements;
  std::vector<uint64_t> keys;
  for (const auto& [key, _] : *hairpin) keys.push_back(key);
  std::sort(keys.begin(), keys.end());  // a stable script
  for (uint64_t k : keys) all.push_back({kNftHairpinSet, NftHairpinText(k), ""});
  return Run(NftTableScript(config, table, ptrs, all));
}

NftServiceSource NftServicesOf(const std::vector<const NftServiceObjects*>& services) {
  return [&services](const NftServiceSink& sink) {
    for (const NftServiceObjects* o : services) sink(*o);
  };
}

base::Result<> NftScriptBackend::ApplyDiff(const NftDiff& diff) { return Run(NftDiffText(diff)); }

base::Result<> NftScriptBackend::DeleteTables(const std::vector<std::string>& tables) {
  std::string script;
  for (const auto& t : tables) script += "add table ip " + t + "\ndelete table ip " + t + "\n";
  if (script.empty()) return {};
  return Run(script);
}

base::Result<> NftBackend::DeleteTable() {
  NftRendererConfig all;
  all.shards = kNftMaxShards;
  auto tables = NftShardTables(all);
  tables.push_back(kNftTable);
  return DeleteTables(tables);
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
