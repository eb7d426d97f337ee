#pragma once
// Pure translation of a Pod into CRI configs (the kubelet's kuberuntime generatePodSandboxConfig
// and generateContainerConfig): cgroup parent and pod resources by QoS, DNS per dnsPolicy,
// container resources and oom_score_adj, env (fieldRef, resourceFieldRef, configMap/secret refs),
// $(VAR) expansion, mounts, labels and annotations the agent reads back after a restart.
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/pod_model.h"
#include "base/result.h"
#include "cri/types.h"

namespace agent {

// Label and annotation keys (K:pkg/kubelet/kuberuntime/labels.go).
inline constexpr const char* kLabelPodName = "io.kubernetes.pod.name";
inline constexpr const char* kLabelPodNamespace = "io.kubernetes.pod.namespace";
inline constexpr const char* kLabelPodUid = "io.kubernetes.pod.uid";
inline constexpr const char* kLabelContainerName = "io.kubernetes.container.name";
inline constexpr const char* kAnnoContainerHash = "io.kubernetes.container.hash";
inline constexpr const char* kAnnoRestartCount = "io.kubernetes.container.restartCount";
inline constexpr const char* kAnnoTerminationMessagePath = "io.kubernetes.container.terminationMessagePath";
inline constexpr const char* kAnnoTerminationMessagePolicy = "io.kubernetes.container.terminationMessagePolicy";
inline constexpr const char* kAnnoGracePeriod = "io.kubernetes.pod.terminationGracePeriod";
inline constexpr const char* kAnnoInitContainer = "io.cubelet.container.init";
inline constexpr const char* kAnnoContainerImage = "io.cubelet.container.image";

struct NodeConfig {
  std::string node_name;
  std::vector<std::string> node_ips;
  std::vector<std::string> cluster_dns;    // --cluster-dns
  std::string cluster_domain = "cluster.local";
  std::string resolv_conf = "/etc/resolv.conf";  // --resolv-conf (host DNS for dnsPolicy Default)
  std::string pod_logs_dir = "/var/log/pods";
  int64_t memory_capacity_bytes = 0;       // for Burstable oom_score_adj
  int64_t pod_pids_limit = -1;             // --pod-max-pids
  bool cgroups_per_qos = true;
};

// Host resolv.conf contents, parsed (nameservers, search, options).
struct HostDns {
  std::vector<std::string> nameservers;
  std::vector<std::string> searches;
  std::vector<std::string> options;
};
HostDns ParseResolvConf(const std::string& text);

// Looks up configMap/secret keys for env vars: returns nullopt when the object or key is absent.
struct EnvLookup {
  std::function<std::optional<std::map<std::string, std::string>>(const std::string& ns, const std::string& name)> configmap;
  std::function<std::optional<std::map<std::string, std::string>>(const std::string& ns, const std::string& name)> secret;
};

// Per-pod facts known when containers are created.
struct PodRuntimeFacts {
  std::string pod_ip;
  std::vector<std::string> pod_ips;
  std::map<std::string, std::string> volume_host_paths;  // volume name -> host dir (or file)
  std::map<std::string, bool> volume_read_only;          // volumes that must be mounted ro (secrets…)
  std::string termination_log_dir;                       // host dir for termination message files
  std::vector<std::pair<std::string, std::string>> service_env;  // service-link env vars
};

std::string PodCgroupParent(const Pod& pod, const NodeConfig& node);
cri::LinuxContainerResources PodResources(const Pod& pod, const NodeConfig& node);
cri::PodSandboxConfig MakeSandboxConfig(const Pod& pod, uint32_t attempt, const NodeConfig& node,
                                        const HostDns& host_dns);
int64_t OomScoreAdj(const Pod& pod, const Container& c, const NodeConfig& node);

// Errors carry a kubelet reason in the message prefix? No: the caller maps them to
// CreateContainerConfigError; messages name the missing object ("configmap \"x\" not found").
base::Result<cri::ContainerConfig> MakeContainerConfig(const Pod& pod, const Container& c, bool init,
                                                       uint32_t attempt, const std::string& image_ref,
                                                       const NodeConfig& node, const PodRuntimeFacts& facts,
                                                       const EnvLookup& lookup);

// $(VAR) expansion as in K:third_party/forked/golang/expansion: $$ escapes, unknown refs stay.
std::string ExpandVars(const std::string& in, const std::map<std::string, std::string>& env);

}  // namespace agent
