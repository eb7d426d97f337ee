#pragma once
// CRI-shaped types (k8s.io/cri-api runtime/v1 api.proto), as plain C++ structs. Field names follow
// the proto so that a remote CRI runtime (containerd over gRPC) could later sit behind the same
// interface without touching agent/.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cri {

using Labels = std::map<std::string, std::string>;

struct KeyValue {
  std::string key;
  std::string value;
};

struct PodSandboxMetadata {
  std::string name;
  std::string uid;
  std::string namespace_;
  uint32_t attempt = 0;
};

struct DNSConfig {
  std::vector<std::string> servers;
  std::vector<std::string> searches;
  std::vector<std::string> options;
};

enum class Protocol { kTcp, kUdp, kSctp };

struct PortMapping {
  Protocol protocol = Protocol::kTcp;
  int32_t container_port = 0;
  int32_t host_port = 0;
  std::string host_ip;
};

// LinuxContainerResources: also used for the pod-level cgroup (overhead/pod resources).
struct LinuxContainerResources {
  int64_t cpu_period = 0;              // CFS period in us (0 = unset)
  int64_t cpu_quota = 0;               // CFS quota in us (0 = unset, -1 = unlimited)
  int64_t cpu_shares = 0;              // 0 = unset
  int64_t memory_limit_in_bytes = 0;   // 0 = unlimited
  int64_t oom_score_adj = 0;
  int64_t pids_limit = 0;              // 0 = unset (not in CRI; kubelet sets it on the pod cgroup)
  std::string cpuset_cpus;
  std::string cpuset_mems;
  std::map<std::string, std::string> unified;  // cgroup v2 raw settings
};

enum class NamespaceMode { kPod = 0, kContainer = 1, kNode = 2, kTarget = 3 };

struct NamespaceOption {
  NamespaceMode network = NamespaceMode::kPod;
  NamespaceMode pid = NamespaceMode::kContainer;
  NamespaceMode ipc = NamespaceMode::kPod;
  std::string target_id;
};

struct SecurityProfile {
  enum class Type { kRuntimeDefault = 0, kUnconfined = 1, kLocalhost = 2 };
  Type profile_type = Type::kRuntimeDefault;
  std::string localhost_ref;  // absolute path to a profile file for kLocalhost
};

struct Capability {
  std::vector<std::string> add_capabilities;   // "NET_ADMIN" or "CAP_NET_ADMIN"; "ALL" allowed
  std::vector<std::string> drop_capabilities;
};

struct LinuxSandboxSecurityContext {
  NamespaceOption namespace_options;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::vector<int64_t> supplemental_groups;
  bool readonly_rootfs = false;
  bool privileged = false;
  SecurityProfile seccomp;
};

struct LinuxPodSandboxConfig {
  std::string cgroup_parent;  // e.g. "kubepods/burstable/pod<UID>", relative to each hierarchy
  LinuxSandboxSecurityContext security_context;
  std::map<std::string, std::string> sysctls;
  std::optional<LinuxContainerResources> resources;  // pod cgroup limits
};

struct PodSandboxConfig {
  PodSandboxMetadata metadata;
  std::string hostname;
  std::string log_directory;  // /var/log/pods/<ns>_<name>_<uid>
  DNSConfig dns_config;
  std::vector<PortMapping> port_mappings;
  Labels labels;
  Labels annotations;
  LinuxPodSandboxConfig linux;
};

enum class PodSandboxState { kReady = 0, kNotReady = 1 };

struct PodIP {
  std::string ip;
};

struct PodSandboxNetworkStatus {
  std::string ip;
  std::vector<PodIP> additional_ips;
};

struct PodSandboxStatus {
  std::string id;
  PodSandboxMetadata metadata;
  PodSandboxState state = PodSandboxState::kNotReady;
  int64_t created_at = 0;  // unix ns
  PodSandboxNetworkStatus network;
  Labels labels;
  Labels annotations;
  std::string runtime_handler;
};

struct PodSandbox {
  std::string id;
  PodSandboxMetadata metadata;
  PodSandboxState state = PodSandboxState::kNotReady;
  int64_t created_at = 0;
  Labels labels;
  Labels annotations;
};

struct PodSandboxFilter {
  std::string id;
  std::optional<PodSandboxState> state;
  Labels label_selector;
};

struct ImageSpec {
  std::string image;  // reference as written in the pod spec or a resolved image ref
  Labels annotations;
};

struct AuthConfig {
  std::string username;
  std::string password;
  std::string auth;  // base64 user:pass
  std::string server_address;
  std::string identity_token;
  std::string registry_token;
};

struct Image {
  std::string id;  // "sha256:<config digest>"
  std::vector<std::string> repo_tags;
  std::vector<std::string> repo_digests;
  uint64_t size = 0;
  std::optional<int64_t> uid;
  std::string username;
  bool pinned = false;
};

struct Mount {
  std::string container_path;
  std::string host_path;
  bool readonly = false;
  bool selinux_relabel = false;
  enum class Propagation { kPrivate = 0, kHostToContainer = 1, kBidirectional = 2 };
  Propagation propagation = Propagation::kPrivate;
};

struct Device {
  std::string container_path;
  std::string host_path;
  std::string permissions;  // "rwm"
};

struct LinuxContainerSecurityContext {
  Capability capabilities;
  bool privileged = false;
  NamespaceOption namespace_options;
  SecurityProfile seccomp;
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::string run_as_username;
  bool readonly_rootfs = false;
  std::vector<int64_t> supplemental_groups;
  bool no_new_privs = false;
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
};

struct LinuxContainerConfig {
  LinuxContainerResources resources;
  LinuxContainerSecurityContext security_context;
};

struct ContainerMetadata {
  std::string name;
  uint32_t attempt = 0;
};

struct ContainerConfig {
  ContainerMetadata metadata;
  ImageSpec image;
  std::vector<std::string> command;  // overrides image Entrypoint when non-empty
  std::vector<std::string> args;     // overrides image Cmd when non-empty
  std::string working_dir;
  std::vector<KeyValue> envs;
  std::vector<Mount> mounts;
  std::vector<Device> devices;
  Labels labels;
  Labels annotations;
  std::string log_path;  // relative to PodSandboxConfig.log_directory, e.g. "main/0.log"
  bool stdin_ = false;
  bool stdin_once = false;
  bool tty = false;
  LinuxContainerConfig linux;
  std::string stop_signal;  // e.g. "SIGTERM" (default)
};

enum class ContainerState { kCreated = 0, kRunning = 1, kExited = 2, kUnknown = 3 };

struct ContainerStatus {
  std::string id;
  ContainerMetadata metadata;
  ContainerState state = ContainerState::kUnknown;
  int64_t created_at = 0;   // unix ns
  int64_t started_at = 0;
  int64_t finished_at = 0;
  int32_t exit_code = 0;
  ImageSpec image;
  std::string image_ref;     // resolved, e.g. "docker.io/library/busybox@sha256:..."
  std::string reason;        // "Completed", "Error", "OOMKilled"
  std::string message;
  Labels labels;
  Labels annotations;
  std::vector<Mount> mounts;
  std::string log_path;      // absolute
  int32_t pid = 0;           // host pid of the container's init while running (embedded runtime)
};

struct Container {
  std::string id;
  std::string pod_sandbox_id;
  ContainerMetadata metadata;
  ImageSpec image;
  std::string image_ref;
  ContainerState state = ContainerState::kUnknown;
  int64_t created_at = 0;
  Labels labels;
  Labels annotations;
};

struct ContainerFilter {
  std::string id;
  std::optional<ContainerState> state;
  std::string pod_sandbox_id;
  Labels label_selector;
};

struct ExecSyncResponse {
  std::string stdout_;
  std::string stderr_;
  int32_t exit_code = 0;
};

struct CpuUsage {
  int64_t timestamp = 0;
  uint64_t usage_core_nano_seconds = 0;
};

struct MemoryUsage {
  int64_t timestamp = 0;
  uint64_t working_set_bytes = 0;
  uint64_t usage_bytes = 0;
  uint64_t rss_bytes = 0;
  uint64_t page_faults = 0;
  uint64_t major_page_faults = 0;
};

struct ContainerStats {
  std::string id;
  ContainerMetadata metadata;
  CpuUsage cpu;
  MemoryUsage memory;
  uint64_t pids = 0;
  // The container's writable layer (overlay upper directory) on the image filesystem, measured
  // at writable_layer_timestamp (unix ns; 0 = not measured).
  int64_t writable_layer_timestamp = 0;
  uint64_t writable_layer_bytes = 0;
  uint64_t writable_layer_inodes = 0;
};

struct PodSandboxStats {
  std::string id;
  CpuUsage cpu;
  MemoryUsage memory;
  uint64_t pids = 0;
};

struct RuntimeCondition {
  std::string type;  // "RuntimeReady", "NetworkReady"
  bool status = false;
  std::string reason;
  std::string message;
};

struct RuntimeStatus {
  std::vector<RuntimeCondition> conditions;
};

struct VersionResponse {
  std::string version = "0.1.0";
  std::string runtime_name;
  std::string runtime_version;
  std::string runtime_api_version = "v1";
};

struct FilesystemUsage {
  int64_t timestamp = 0;
  std::string mountpoint;
  uint64_t used_bytes = 0;
  uint64_t inodes_used = 0;
  uint64_t capacity_bytes = 0;
  uint64_t available_bytes = 0;
};

// GetContainerEvents (Evented PLEG): the runtime pushes these as they happen.
struct ContainerEvent {
  enum class Type { kCreated = 0, kStarted = 1, kStopped = 2, kDeleted = 3 };
  std::string container_id;
  Type type = Type::kStopped;
  int64_t created_at = 0;
  std::string pod_sandbox_id;
};

}  // namespace cri
