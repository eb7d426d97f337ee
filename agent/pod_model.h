#pragma once
// The parts of a v1.Pod the node agent acts on, decoded from the API's JSON once per change so
// that planning code (pod_actions, pod_status, runtime_config) works on plain structs.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"

namespace agent {

struct EnvVar {
  std::string name;
  std::string value;
  // valueFrom.fieldRef.fieldPath / resourceFieldRef / configMapKeyRef / secretKeyRef
  std::string field_path;
  std::string resource;         // resourceFieldRef.resource
  std::string resource_container;
  std::string resource_divisor;
  std::string configmap_name, configmap_key;
  std::string secret_name, secret_key;
  bool optional = false;
  bool has_value_from = false;
};

struct EnvFromSource {
  std::string prefix;
  std::string configmap_name;
  std::string secret_name;
  bool optional = false;
};

struct ContainerPort {
  std::string name;
  int32_t container_port = 0;
  int32_t host_port = 0;
  std::string host_ip;
  std::string protocol = "TCP";
};

struct VolumeMount {
  std::string name;
  std::string mount_path;
  std::string sub_path;
  bool read_only = false;
};

struct ResourceList {
  std::optional<int64_t> cpu_milli;
  std::optional<int64_t> memory_bytes;
  std::optional<int64_t> ephemeral_storage_bytes;
};

struct Resources {
  ResourceList requests;
  ResourceList limits;
};

struct ExecAction {
  std::vector<std::string> command;
};
struct HttpGetAction {
  std::string path = "/";
  std::string port;  // number or name
  std::string host;
  std::string scheme = "HTTP";
  std::vector<std::pair<std::string, std::string>> headers;
};
struct TcpSocketAction {
  std::string port;
  std::string host;
};

struct Probe {
  std::optional<ExecAction> exec;
  std::optional<HttpGetAction> http_get;
  std::optional<TcpSocketAction> tcp_socket;
  int32_t initial_delay_seconds = 0;
  int32_t timeout_seconds = 1;
  int32_t period_seconds = 10;
  int32_t success_threshold = 1;
  int32_t failure_threshold = 3;
};

struct Handler {  // lifecycle hook
  std::optional<ExecAction> exec;
  std::optional<HttpGetAction> http_get;
  std::optional<TcpSocketAction> tcp_socket;
  std::optional<int64_t> sleep_seconds;
};

struct SecurityContext {
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::optional<bool> run_as_non_root;
  std::optional<bool> privileged;
  std::optional<bool> read_only_root_filesystem;
  std::optional<bool> allow_privilege_escalation;
  std::vector<std::string> cap_add, cap_drop;
  std::string seccomp_type;  // RuntimeDefault | Unconfined | Localhost | "" (unset)
  std::string seccomp_localhost_profile;
};

struct Container {
  std::string name;
  std::string image;
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<EnvVar> env;
  std::vector<EnvFromSource> env_from;
  std::vector<ContainerPort> ports;
  std::vector<VolumeMount> volume_mounts;
  Resources resources;
  std::string image_pull_policy;  // Always | IfNotPresent | Never (defaulted by the API)
  std::string termination_message_path = "/dev/termination-log";
  std::string termination_message_policy = "File";
  std::optional<Probe> liveness_probe, readiness_probe, startup_probe;
  std::optional<Handler> post_start, pre_stop;
  SecurityContext security_context;
  bool has_security_context = false;
  std::string restart_policy;  // init containers: "Always" makes a sidecar
  bool stdin_ = false, tty = false;
  std::string hash;            // hash of the spec, to detect changes that require a restart
};

struct KeyToPath {
  std::string key;
  std::string path;
  std::optional<int32_t> mode;
};

struct ProjectionSource {
  enum class Kind { kServiceAccountToken, kConfigMap, kSecret, kDownwardAPI, kUnknown };
  Kind kind = Kind::kUnknown;
  // serviceAccountToken
  std::string audience;
  int64_t expiration_seconds = 3607;
  std::string path;
  // configMap / secret
  std::string name;
  std::vector<KeyToPath> items;
  bool optional = false;
  // downwardAPI: (path, fieldPath) pairs
  std::vector<std::pair<std::string, std::string>> fields;
};

struct Volume {
  std::string name;
  enum class Kind { kEmptyDir, kHostPath, kConfigMap, kSecret, kProjected, kDownwardAPI, kUnsupported };
  Kind kind = Kind::kUnsupported;
  std::string unsupported_type;  // e.g. "persistentVolumeClaim", for the error message
  // emptyDir
  std::string medium;
  std::optional<int64_t> size_limit;
  // hostPath
  std::string host_path;
  std::string host_path_type;
  // configMap / secret / projected / downwardAPI
  std::string source_name;
  std::vector<KeyToPath> items;
  std::vector<ProjectionSource> sources;  // projected (and downwardAPI as one source)
  int32_t default_mode = 0644;
  bool optional = false;
};

struct PodSecurityContext {
  std::optional<int64_t> run_as_user;
  std::optional<int64_t> run_as_group;
  std::optional<bool> run_as_non_root;
  std::optional<int64_t> fs_group;
  std::vector<int64_t> supplemental_groups;
  std::string seccomp_type;
  std::string seccomp_localhost_profile;
  std::map<std::string, std::string> sysctls;
};

struct DnsConfig {
  std::vector<std::string> nameservers;
  std::vector<std::string> searches;
  std::vector<std::pair<std::string, std::string>> options;  // name, value ("" = none)
};

struct Pod {
  // metadata
  std::string ns;
  std::string name;
  std::string uid;
  std::string resource_version;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::optional<std::string> deletion_timestamp;
  std::optional<int64_t> deletion_grace_period_seconds;
  // spec
  std::string node_name;
  std::vector<Container> init_containers;
  std::vector<Container> containers;
  std::vector<Volume> volumes;
  std::string restart_policy = "Always";
  int64_t termination_grace_period_seconds = 30;
  std::optional<int64_t> active_deadline_seconds;
  std::string dns_policy = "ClusterFirst";
  std::optional<DnsConfig> dns_config;
  bool host_network = false;
  bool host_pid = false;
  bool host_ipc = false;
  bool share_process_namespace = false;
  std::string hostname;
  std::string subdomain;
  std::string service_account_name;
  std::optional<bool> automount_service_account_token;
  PodSecurityContext security_context;
  std::vector<std::string> image_pull_secrets;
  std::string priority_class_name;
  std::optional<int32_t> priority;
  std::vector<std::pair<std::string, std::string>> host_aliases;  // ip, hostname (flattened)
  // status (as the API has it)
  std::string phase;
  std::string qos_class;
};

// Decodes a v1.Pod JSON object. Errors name the pod and the field.
base::Result<Pod> DecodePod(const nlohmann::json& j);

enum class QosClass { kGuaranteed, kBurstable, kBestEffort };
QosClass ComputeQos(const Pod& pod);
const char* QosName(QosClass q);

// A pod is terminal once the API says Succeeded/Failed.
inline bool IsTerminalPhase(const std::string& phase) { return phase == "Succeeded" || phase == "Failed"; }

}  // namespace agent
