#pragma once
// /metrics/resource: the kubelet's resource metrics (K:pkg/kubelet/metrics/collectors/
// resource_metrics.go), what metrics-server scrapes for `kubectl top` and the HPA. Rendered
// from the /stats/summary document (node, pods, containers; usage with their sample times).
#include <string>

namespace agent {

// Prometheus text (0.0.4) from a stats summary JSON; samples carry their timestamps (ms).
std::string ResourceMetricsText(const std::string& summary_json);

}  // namespace agent
