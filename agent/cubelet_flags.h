#pragma once
// cubelet's command line: the kubelet's and kube-proxy's flag names for what cubelet supports.
#include <chrono>
#include <string>

#include "base/time.h"
#include <vector>

namespace agent {

struct CubeletFlags {
  // kubelet
  std::string kubeconfig;
  std::string hostname_override;
  std::vector<std::string> node_ip;      // --node-ip (comma-separated accepted)
  std::string root_dir = "/var/lib/cubelet";
  std::string run_dir = "/run/cubelet";
  std::string pod_cidr;
  std::string cluster_cidr;
  std::vector<std::string> cluster_dns;
  std::string cluster_domain = "cluster.local";
  std::string resolv_conf = "/etc/resolv.conf";
  std::string client_ca_file;
  // Webhook: SubjectAccessReview per request (as KubeletConfiguration's default); AlwaysAllow:
  // any authenticated client (the kubelet's flag default).
  std::string authorization_mode = "Webhook";
  // Bearer tokens on the kubelet API, checked with a TokenReview (KubeletConfiguration's default).
  bool authentication_token_webhook = true;
  std::chrono::milliseconds authentication_token_webhook_cache_ttl{2 * 60 * 1000};
  std::chrono::milliseconds authorization_webhook_cache_authorized_ttl{5 * 60 * 1000};
  std::chrono::milliseconds authorization_webhook_cache_unauthorized_ttl{30 * 1000};
  std::string tls_cert_file, tls_private_key_file;
  std::string address = "0.0.0.0";
  int port = 10250;
  std::string healthz_bind_address = "127.0.0.1";
  int healthz_port = 10248;
  std::string cgroup_root;               // --cgroup-root ("" = /)
  bool cgroups_per_qos = true;
  std::string node_labels;               // k=v,k2=v2
  std::vector<std::string> register_with_taints;
  bool register_node = true;
  int max_pods = 110;
  long pod_max_pids = -1;
  std::string pod_logs_dir = "/var/log/pods";
  int node_status_update_frequency = 10;
  int v = -1;                            // klog verbosity
  std::string log_level = "info";
  std::string image_dir;                 // "" = <root-dir>/images
  std::string container_log_max_size = "10Mi";  // rotate a container's log at this size
  int container_log_max_files = 5;       // log files kept per container, current included
  int image_gc_high_threshold = 85;      // percent of the image fs; 100 disables image GC
  int image_gc_low_threshold = 80;       // image GC frees down to this percent
  std::chrono::milliseconds minimum_image_gc_age{120000};  // unused images younger stay
  std::chrono::milliseconds image_maximum_gc_age{0};  // config file only; 0 = off
  std::string pod_manifest_path;         // --pod-manifest-path: static pods ("" = none)
  // --eviction-hard "memory.available<100Mi,..." ("" = the kubelet's defaults).
  std::string eviction_hard;
  std::chrono::milliseconds eviction_pressure_transition_period{300000};
  std::string eviction_soft;               // --eviction-soft "memory.available<1.5Gi"
  std::string eviction_soft_grace_period;  // --eviction-soft-grace-period "memory.available=1m30s"
  int eviction_max_pod_grace_period = 0;   // seconds, for soft evictions
  std::string config;                    // --config: a KubeletConfiguration file
  std::vector<std::string> config_warnings;  // what --config had that cubelet ignores
  std::string registry_config;           // --registry-config: mirrors, insecure, credentials
  std::string debug_socket;              // "" = <run-dir>/cubelet.sock
  // networking
  std::string network_plugin = "bridge"; // bridge | cni
  std::string bridge_name = "cubelet0";
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_bin_dir = {"/opt/cni/bin", "/usr/lib/cni"};
  bool host_gw_routes = true;
  // kube-proxy
  std::string proxy_mode = "iptables";   // iptables | nftables | userspace | none
  std::string proxy_kubeconfig;
  bool masquerade_all = false;
  std::vector<std::string> nodeport_addresses;
  std::string healthz_bind_address_proxy = "0.0.0.0:10256";
  std::string metrics_bind_address = "127.0.0.1:10249";
  std::string monitor_path;
};

// A Go time.Duration string ("2m0s", "90s", "1h30m", "1.5h", "0"); false when malformed or
// negative.
using base::ParseGoDuration;

// Parses argv; on --help/--version prints and exits 0; on bad input prints the error and exits 2.
CubeletFlags ParseFlags(int argc, char** argv);

}  // namespace agent
