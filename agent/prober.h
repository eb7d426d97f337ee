#pragma once
// Runs one container probe or lifecycle hook, as the kubelet's K:pkg/kubelet/prober/prober.go and
// K:pkg/kubelet/lifecycle/handlers.go do: exec through cri::RuntimeService::ExecSync, httpGet and
// tcpSocket from cubelet's own network namespace (the node's) to the pod IP through the bridge.
// Timing, thresholds and results are ProbeManager's (probe_manager.h); this file only executes.
#include <chrono>
#include <string>
#include <vector>

#include "agent/pod_model.h"
#include "base/result.h"
#include "cri/runtime_service.h"

namespace agent {

enum class ProbeType { kLiveness, kReadiness, kStartup };
// "Liveness", "Readiness", "Startup": the event texts' prefix.
const char* ProbeTypeName(ProbeType t);

// K:pkg/probe Result. A warning counts as a success (e.g. an HTTP redirect to another host).
enum class ProbeResult { kSuccess, kWarning, kFailure, kUnknown };

struct ProbeOutcome {
  ProbeResult result = ProbeResult::kUnknown;
  std::string output;  // what "... probe failed: <output>" shows
  std::string error;   // set when the prober itself failed (bad port, exec error): no result
};

// What a probe needs to know about its container.
struct ProbeTarget {
  std::string pod_ip;                // status.podIP: the default host of httpGet and tcpSocket
  std::string container_id;
  std::vector<ContainerPort> ports;  // for ports given by name
};

// K:pkg/probe ResolveContainerPort: a number, or the name of one of the container's ports.
// Errors: "port http not found"-style then "strconv.Atoi: ..." as the kubelet, or
// "invalid port number: 0".
base::Result<int> ResolveContainerPort(const std::string& port, const std::vector<ContainerPort>& ports);

// K:pkg/probe/http DoHTTPProbe verdict on a finished GET: 200 <= code < 400 passes (3xx as a
// warning: a redirect the prober did not follow), else "HTTP probe failed with statuscode: N".
ProbeOutcome HttpProbeVerdict(int code, const std::string& body);

// K:pkg/probe/exec: exit 0 passes; a timeout is a failure ("command \"...\" timed out"); other
// runtime errors are prober errors.
ProbeOutcome ExecProbeVerdict(const base::Result<cri::ExecSyncResponse>& r, const std::vector<std::string>& cmd);

class Prober {
 public:
  explicit Prober(cri::RuntimeService* runtime) : runtime_(runtime) {}

  // One probe, retried up to 3 times while the prober errors (runProbeWithRetries).
  ProbeOutcome Run(const Probe& probe, const ProbeTarget& target) const;

  // A lifecycle hook (postStart / preStop): exec, httpGet or sleep. `timeout` bounds exec and
  // HTTP (0 = none for exec, as the kubelet runs postStart); sleep is capped by it when set.
  // Errors carry the kubelet's message ("Exec lifecycle hook ([sh -c exit 1]) for Container
  // \"c\" in Pod \"p_ns(uid)\" failed - error: ..., message: \"...\"").
  base::Result<> RunHandler(const Handler& h, const Pod& pod, const Container& c,
                            const ProbeTarget& target, std::chrono::seconds timeout) const;

 private:
  ProbeOutcome RunOnce(const Probe& probe, const ProbeTarget& target) const;
  cri::RuntimeService* runtime_;
};

}  // namespace agent
