#pragma once
// The kubelet's /metrics/cadvisor, for what cubelet measures: per running container and per pod
// cgroup (container="", image="", name=""), cAdvisor's families
// container_cpu_usage_seconds_total, container_memory_working_set_bytes, container_memory_rss,
// container_memory_usage_bytes, container_processes and container_start_time_seconds (containers
// only) with cAdvisor's labels (container, id = the cgroup path, image, name = the runtime's
// container id, namespace, pod) and the sample times. What Prometheus setups (kube-prometheus)
// scrape for per-container and per-pod dashboards. Not emitted: the node's root and system
// cgroups, and cAdvisor's filesystem, network and spec families.
#include <cstdint>
#include <string>
#include <vector>

#include "cri/types.h"

namespace agent {

// One cgroup: a container's, or a pod's (container, name and image empty).
struct CadvisorContainer {
  std::string pod, ns, container;  // labels io.kubernetes.pod.name / .namespace, the name
  std::string id;                  // the container's cgroup path ("/kubepods/.../<id>")
  std::string name;                // the runtime's container id
  std::string image;               // as the pod spec names it
  int64_t started_at_unix_ns = 0;
  cri::ContainerStats stats;
};

std::string CadvisorMetricsText(const std::vector<CadvisorContainer>& containers);

// The cgroup path of a process from /proc/<pid>/cgroup's text: the unified hierarchy's ("0::")
// on cgroup v2, else the memory controller's (v1); "" when neither is there.
std::string CgroupPathFromProcText(const std::string& proc_cgroup);

}  // namespace agent
