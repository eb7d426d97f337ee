#pragma once
// Wires the daemon together: API client, runtime, kubelet core, node status and lease, proxy,
// kubelet HTTP API. Start() returns once everything runs; Stop() shuts down in reverse order
// and leaves containers running (they belong to their monitors; a restarted cubelet re-adopts).
#include <memory>

#include "agent/cubelet_flags.h"
#include "base/result.h"

namespace agent {

class CubeletApp {
 public:
  explicit CubeletApp(CubeletFlags flags);
  ~CubeletApp();
  base::Result<> Start();
  void Stop();

 private:
  struct State;
  CubeletFlags flags_;
  std::unique_ptr<State> s_;
};

// The node's primary IPv4 address: the source address of the default route's interface, else the
// first global IPv4 address. "" when none.
std::string DetectNodeIp();

}  // namespace agent
