#pragma once
// Rendering for `cubectl pods` (pure functions, unit-tested). Input is the DebugPodsJson
// document described in agent/kubelet_server.h.
#include <chrono>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/time.h"

namespace agent::cubectl {

// One row per pod (NAMESPACE NAME UID PHASE IP CONTAINERS RESTARTS AGE), each followed by one
// indented row per container (NAME STATE RESTARTS CONTAINER-ID IMAGE); columns aligned like
// kubectl's tabwriter (3 spaces between columns). Pods sorted by namespace, name.
base::Result<std::string> RenderPodTable(std::string_view debug_pods_json, base::WallTime now);

// kubectl's age format (k8s.io/apimachinery/pkg/util/duration.HumanDuration): 45s, 5m3s, 3h,
// 2d4h, 1y20d ...
std::string HumanDuration(std::chrono::nanoseconds d);

// "cubelet://0123456789abcdef..." -> "0123456789ab"; "" -> "<none>".
std::string ShortContainerId(std::string_view id);

// Running | Waiting:<reason> | Terminated:<reason>(<exitCode>)
std::string ContainerStateText(std::string_view state, std::string_view reason, int exit_code);

}  // namespace agent::cubectl
