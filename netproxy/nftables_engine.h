#pragma once
// The nftables engine: cubelet's own table "ip cubelet", written through libnftables. A full
// sync replaces the table in one transaction; later syncs send only the changed services'
// chains and map elements.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "netproxy/nft_renderer.h"
#include "netproxy/proxy_engine.h"

namespace netproxy {

// A table's services one at a time: the source calls the sink once per service.
using NftServiceSink = std::function<void(const NftServiceObjects&)>;
using NftServiceSource = std::function<void(const NftServiceSink&)>;
// A source over objects held elsewhere.
NftServiceSource NftServicesOf(const std::vector<const NftServiceObjects*>& services);

// Writes the cubelet table, each call one kernel transaction.
class NftBackend {
 public:
  virtual ~NftBackend() = default;
  virtual std::string Name() const = 0;
  // Replaces one table (main or service table) in one transaction, created when missing. The
  // services come from `services`, which calls its sink once per service (the engine renders
  // each on the fly, so a table's objects are never all in memory); `elements` and `hairpin`
  // are read after it returned (it may add to them). `hairpin` (main table only, may be null):
  // the members of its hairpin set, by key (one per endpoint: the largest set by far, not
  // copied into NftElements). A backend may still be applying the table on return (the caller
  // renders the next one meanwhile): its error then comes from the next call, or from Flush().
  virtual base::Result<> ReplaceTable(const NftRendererConfig& config, const std::string& table,
                                      const NftServiceSource& services,
                                      const std::vector<NftElement>& elements,
                                      const NftRefCounts* hairpin = nullptr) = 0;
  virtual base::Result<> ApplyDiff(const NftDiff& diff) = 0;
  // Waits until every transaction sent is applied; its error if one failed. Releases the
  // buffers of a full sync.
  virtual base::Result<> Flush() { return {}; }
  // The same wait, keeping the buffers for the next table: ReplaceTable then Wait sends tables
  // one after the other, with one transaction's buffer resident instead of two.
  virtual base::Result<> Wait() { return Flush(); }
  // Removes tables; no error for those that do not exist.
  virtual base::Result<> DeleteTables(const std::vector<std::string>& tables) = 0;
  // Removes the main table and every possible service table.
  base::Result<> DeleteTable();
  // Whether the main table still exists (`nft flush ruleset` and firewall reloads remove it).
  virtual base::Result<bool> Present() { return true; }
};
using NftBackendPtr = std::unique_ptr<NftBackend>;

// Text backends render nft scripts (the `nft -f` language) and run them.
class NftScriptBackend : public NftBackend {
 public:
  base::Result<> ReplaceTable(const NftRendererConfig& config, const std::string& table,
                              const NftServiceSource& services,
                              const std::vector<NftElement>& elements,
                              const NftRefCounts* hairpin = nullptr) override;
  base::Result<> ApplyDiff(const NftDiff& diff) override;
  base::Result<> DeleteTables(const std::vector<std::string>& tables) override;
  virtual base::Result<> Run(const std::string& script) = 0;
};

// In-process libnftables (parses text; re-reads the table's cache on every call). Its netlink
// socket is opened on first use, in the network namespace of the calling thread.
NftBackendPtr MakeLibNftablesBackend();

// Direct netlink batches (messages written by hand, libmnl): no parsing, no cache reads, full
// syncs pipelined (one table applied while the next is built). Default backend.
NftBackendPtr MakeNetlinkNftBackend();

// Records scripts for unit tests.
class FakeNftBackend final : public NftScriptBackend {
 public:
  std::string Name() const override { return "fake-nft"; }
  base::Result<> Run(const std::string& script) override;
  std::vector<std::string> scripts() const;
  std::string last() const;
  void FailNext(int n = 1);

 private:
  mutable std::mutex mu_;
  std::vector<std::string> scripts_;
  int fail_next_ = 0;
};

ProxyEnginePtr MakeNftablesEngine(NftBackendPtr backend, const NftRendererConfig& config,
                                  std::vector<std::string> nodeport_cidrs);

// Removes the cubelet table (mode switch, cleanup). No error when it does not exist.
inline base::Result<> CleanupNftables(NftBackend& backend) { return backend.DeleteTable(); }

}  // namespace netproxy
