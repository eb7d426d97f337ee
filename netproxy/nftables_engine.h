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

// Runs nft scripts (the `nft -f` language) as one transaction each.
class NftBackend {
 public:
  virtual ~NftBackend() = default;
  virtual std::string Name() const = 0;
  virtual base::Result<> Run(const std::string& script) = 0;
};
using NftBackendPtr = std::unique_ptr<NftBackend>;

// In-process libnftables. Its netlink socket is opened on first use, in the network namespace
// of the calling thread.
NftBackendPtr MakeLibNftablesBackend();

// Records scripts for unit tests.
class FakeNftBackend final : public NftBackend {
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
base::Result<> CleanupNftables(NftBackend& backend);

}  // namespace netproxy
