#pragma once
// The nftables engine: cubelet's own table "ip cubelet", written through libnftables. A full
// sync replaces the table in one transaction; later syncs send only the changed services'
// chains and map elements.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "netproxy/nft_renderer.h"
#include "netproxy/proxy_engine.h"

namespace netproxy {

// Writes the cubelet table, each call one kernel transaction.
class NftBackend {
 public:
  virtual ~NftBackend() = default;
  virtual std::string Name() const = 0;
  // Replaces the whole table (created when missing).
  virtual base::Result<> ReplaceTable(const NftRendererConfig& config,
                                      const NftServiceMap& services) = 0;
  virtual base::Result<> ApplyDiff(const NftDiff& diff) = 0;
  // Removes the table; no error when it does not exist.
  virtual base::Result<> DeleteTable() = 0;
};
using NftBackendPtr = std::unique_ptr<NftBackend>;

// Text backends render nft scripts (the `nft -f` language) and run them.
class NftScriptBackend : public NftBackend {
 public:
  base::Result<> ReplaceTable(const NftRendererConfig& config,
                              const NftServiceMap& services) override;
  base::Result<> ApplyDiff(const NftDiff& diff) override;
  base::Result<> DeleteTable() override;
  virtual base::Result<> Run(const std::string& script) = 0;
};

// In-process libnftables (parses text; re-reads the table's cache on every call). Its netlink
// socket is opened on first use, in the network namespace of the calling thread.
NftBackendPtr MakeLibNftablesBackend();

// Direct netlink batches (libnftnl + libmnl): no parsing, no cache reads. Default backend.
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
