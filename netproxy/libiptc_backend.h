#pragma once
// RulesBackend over libiptc (libip4tc), in-process, for hosts whose iptables is the legacy
// (x_tables) backend: no iptables-legacy-restore child. Restore() reads the same restore buffer
// (--noflush semantics: "*table", ":CHAIN" declares and flushes, -A/-I/-D/-X/-F/-N/-P, COMMIT),
// builds the kernel's rule structures itself (netproxy/iptc_rule.h) and commits each table
// with one atomic IPT_SO_SET_REPLACE, under the xtables lock as iptables -w takes it: by
// default the table blob is built directly (IptcWriter::kBlob, netproxy/iptc_blob.h), else
// through libiptc's iptc_commit. Snapshot() and CanaryPresent() read the tables the same way
// (no iptables-save).
// libiptc cannot reach nft tables: for iptables-nft hosts use IptablesRestoreBackend.
// Works in whatever network namespace the calling thread is in.
#include <chrono>
#include <memory>
#include <string>

#include "netproxy/iptables_restore_backend.h"
#include "netproxy/rules_backend.h"

namespace netproxy {

namespace iptc {
struct Scratch;
}

// How LibiptcBackend writes a table.
enum class IptcWriter {
  // The kernel's table blob built directly (netproxy/iptc_blob.h): the table read once, the
  // rules nobody changes copied as they are, one IPT_SO_SET_REPLACE. A table whose commands
  // libiptc would refuse goes through libiptc instead (which names the error).
  kBlob,
  kLibiptc,  // iptc_init, libiptc's chain and rule cache, iptc_commit
};

class LibiptcBackend final : public RulesBackend {
 public:
  // lock_wait: how long to wait for the xtables lock (iptables -w 5). fallback: a buffer with a
  // rule this backend cannot encode (checked before anything is committed) is applied by
  // iptables-legacy-restore instead, with a warning; without it, that is an error.
  explicit LibiptcBackend(bool fallback = true,
                          std::chrono::milliseconds lock_wait = std::chrono::seconds(5),
                          IptcWriter writer = IptcWriter::kBlob);
  ~LibiptcBackend() override;

  std::string Name() const override { return "iptables-legacy-libiptc"; }
  base::Result<IptablesSnapshot> Snapshot() override;
  // Errors name the line, table, chain and rule ("line 7: table nat, chain KUBE-SVC-X, rule
  // \"-m foo -j KUBE-SEP-Y\": unknown match \"foo\""). Every rule is encoded once before anything
  // is committed; after that, a table whose commit fails is left as it was, and tables committed
  // before it in the same buffer stay committed (as with iptables-restore).
  base::Result<> Restore(const std::string& buffer) override;
  base::Result<bool> CanaryPresent() override;

  // Tables committed by each writer (kBlob: the ones it declined went to libiptc).
  struct Stats {
    size_t blob_tables = 0;
    size_t libiptc_tables = 0;
  };
  Stats stats() const;

 private:
  bool fallback_;
  std::chrono::milliseconds lock_wait_;
  IptcWriter writer_;
  Stats stats_;
  // kBlob: the table buffers, kept from one commit to the next (iptc_blob.h).
  std::unique_ptr<iptc::Scratch> scratch_;
};

// How the iptables mode commits on legacy hosts.
enum class IptablesCommit {
  kAuto,            // libiptc on legacy hosts, unless CUBELET_IPTABLES_RESTORE=1 is set
  kRestoreProgram,  // always iptables-{legacy,nft}-restore (comparison, fallback)
};

// The backend for an iptables variant: LibiptcBackend for legacy (see IptablesCommit),
// IptablesRestoreBackend (iptables-nft-restore) for nft.
RulesBackendPtr MakeIptablesBackend(IptablesVariant variant,
                                    IptablesCommit commit = IptablesCommit::kAuto);

}  // namespace netproxy
