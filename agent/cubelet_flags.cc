#include "agent/cubelet_flags.h"

#include <CLI/CLI.hpp>

#include "agent/kubelet_config_file.h"
#include "base/file.h"
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <tuple>

namespace agent {

CubeletFlags ParseFlags(int argc, char** argv) {
  CubeletFlags f;
  std::string minimum_image_gc_age = "2m0s";
  std::string authz_authorized_ttl = "5m0s", authz_unauthorized_ttl = "30s", token_ttl = "2m0s";
  std::string eviction_transition = "5m0s";
  CLI::App app{"cubelet: a Kubernetes node agent (kubelet + kube-proxy) with an embedded container runtime"};
  app.set_version_flag("--version", "cubelet v0.1.0 (kubelet-compatible v1.32)");
  app.get_formatter()->column_width(42);
  // As the kubelet's flag parser: a flag given twice takes the last value (systemd drop-ins and
  // wrappers append flags); list flags collect every value.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  // kubelet flags
  app.add_option("--config", f.config, "KubeletConfiguration file (kubelet.config.k8s.io/v1beta1); flags on the command line override its fields");
  app.add_option("--kubeconfig", f.kubeconfig, "Path to a kubeconfig with the API server and the node's credentials")->required();
  app.add_option("--hostname-override", f.hostname_override, "Node name to use instead of the hostname");
  app.add_option("--node-ip", f.node_ip, "IP address(es) of the node (InternalIP); default: the address of the default route")->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--root-dir", f.root_dir, "Directory for cubelet state (pods, containers, images)")->capture_default_str();
  app.add_option("--pod-cidr", f.pod_cidr, "Pod CIDR for this node, used until the API sets spec.podCIDR");
  app.add_option("--cluster-cidr", f.cluster_cidr, "CIDR of all pods in the cluster (masquerade and proxy)");
  app.add_option("--cluster-dns", f.cluster_dns, "DNS server IP(s) for pods with dnsPolicy ClusterFirst")->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--cluster-domain", f.cluster_domain, "Cluster DNS domain")->capture_default_str();
  app.add_option("--resolv-conf", f.resolv_conf, "Resolver configuration for dnsPolicy Default")->capture_default_str();
  app.add_option("--client-ca-file", f.client_ca_file, "CA bundle that signs client certificates allowed on :10250 (the API server's kubelet client cert)");
  app.add_option("--authentication-token-webhook", f.authentication_token_webhook, "Authenticate bearer tokens on the kubelet API with a TokenReview to the API server")->capture_default_str();
  app.add_option("--authentication-token-webhook-cache-ttl", token_ttl, "How long TokenReview answers are cached (Go duration)")->capture_default_str();
  app.add_option("--authorization-mode", f.authorization_mode, "Authorization of the kubelet API: Webhook (a SubjectAccessReview to the API server per request, cached) or AlwaysAllow (any authenticated client)")->check(CLI::IsMember({"Webhook", "AlwaysAllow"}))->capture_default_str();
  app.add_option("--authorization-webhook-cache-authorized-ttl", authz_authorized_ttl, "How long allowed webhook answers are cached (Go duration)")->capture_default_str();
  app.add_option("--authorization-webhook-cache-unauthorized-ttl", authz_unauthorized_ttl, "How long denied webhook answers are cached (Go duration)")->capture_default_str();
  app.add_option("--tls-cert-file", f.tls_cert_file, "Serving certificate for :10250 (default: self-signed under <root-dir>/pki)");
  app.add_option("--tls-private-key-file", f.tls_private_key_file, "Key of --tls-cert-file");
  app.add_option("--address", f.address, "Address of the kubelet API")->capture_default_str();
  app.add_option("--port", f.port, "Port of the kubelet API (TLS)")->capture_default_str();
  app.add_option("--healthz-bind-address", f.healthz_bind_address, "Address of the plain HTTP healthz endpoint")->capture_default_str();
  app.add_option("--healthz-port", f.healthz_port, "Port of the plain HTTP healthz endpoint (0 = off)")->capture_default_str();
  app.add_option("--cgroup-root", f.cgroup_root, "Root cgroup for pods (kubepods is created below it)");
  app.add_option("--cgroups-per-qos", f.cgroups_per_qos, "Create the QoS cgroup hierarchy (kubepods/burstable, kubepods/besteffort)")->capture_default_str();
  app.add_option("--node-labels", f.node_labels, "Labels to add when registering the node (k=v,k2=v2)");
  app.add_option("--register-with-taints", f.register_with_taints, "Taints to add when registering (key=value:Effect)")->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--register-node", f.register_node, "Register the node with the API server")->capture_default_str();
  app.add_option("--pod-manifest-path", f.pod_manifest_path, "Directory of static pod manifests (one Pod per file, YAML or JSON; read every 20 s), mirrored in the API");
  app.add_option("--max-pods", f.max_pods, "Number of pods this node can run")->capture_default_str();
  app.add_option("--pod-max-pids", f.pod_max_pids, "Maximum number of processes per pod (-1 = unlimited)")->capture_default_str();
  app.add_option("--pod-logs-dir", f.pod_logs_dir, "Directory of container logs")->capture_default_str();
  app.add_option("--node-status-update-frequency", f.node_status_update_frequency, "Seconds between node status checks")->capture_default_str();
  app.add_option("-v,--v", f.v, "Log verbosity (klog style; 4 and above is debug)");
  app.add_option("--log-level", f.log_level, "Log level: debug, info, warn, error")->capture_default_str();
  app.add_option("--container-log-max-size", f.container_log_max_size, "Size (quantity, e.g. 10Mi) at which a container's log file is rotated")->capture_default_str();
  app.add_option("--container-log-max-files", f.container_log_max_files, "Log files kept per container, the current one included (at least 2)")->capture_default_str()->check(CLI::Range(2, 1000000));
  app.add_option("--image-gc-high-threshold", f.image_gc_high_threshold, "Image filesystem usage percent at which image garbage collection runs (100 disables it)")->capture_default_str()->check(CLI::Range(0, 100));
  app.add_option("--image-gc-low-threshold", f.image_gc_low_threshold, "Image filesystem usage percent image garbage collection frees down to")->capture_default_str()->check(CLI::Range(0, 100));
  app.add_option("--eviction-hard", f.eviction_hard, "Hard eviction thresholds, e.g. memory.available<100Mi,nodefs.available<10%,pid.available<5% (signals: memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, imagefs.inodesFree, pid.available; default: the kubelet's)");
  app.add_option("--eviction-soft", f.eviction_soft, "Soft eviction thresholds (same signals as --eviction-hard): evict once met for their grace period");
  app.add_option("--eviction-soft-grace-period", f.eviction_soft_grace_period, "Grace period of each soft threshold, e.g. memory.available=1m30s");
  app.add_option("--eviction-max-pod-grace-period", f.eviction_max_pod_grace_period, "Longest pod grace period (seconds) of a soft eviction (the pod's terminationGracePeriodSeconds if shorter)")->capture_default_str()->check(CLI::Range(0, 1000000000));
  app.add_option("--eviction-pressure-transition-period", eviction_transition, "How long the node keeps reporting a pressure condition after its threshold was last met (Go duration)")->capture_default_str();
  app.add_option("--minimum-image-gc-age", minimum_image_gc_age, "Minimum age of an unused image before image garbage collection may remove it (Go duration)")->capture_default_str();
  // cubelet-specific
  app.add_option("--registry-config", f.registry_config, "JSON file with registry mirrors, insecure (plain HTTP) registries and node-level credentials (docker config.json \"auths\")");
  app.add_option("--run-dir", f.run_dir, "Directory for volatile state (pinned namespaces, debug socket)")->capture_default_str();
  app.add_option("--image-dir", f.image_dir, "Image store directory (default <root-dir>/images)");
  app.add_option("--debug-socket", f.debug_socket, "Unix socket for cubectl (default <run-dir>/cubelet.sock)");
  app.add_option("--monitor-path", f.monitor_path, "Path of the cubelet-monitor binary (default: next to cubelet)");
  app.add_option("--network-plugin", f.network_plugin, "Pod network: bridge (built-in) or cni")->check(CLI::IsMember({"bridge", "cni"}))->capture_default_str();
  app.add_option("--bridge-name", f.bridge_name, "Node bridge of the built-in network")->capture_default_str();
  app.add_option("--cni-conf-dir", f.cni_conf_dir, "CNI configuration directory")->capture_default_str();
  app.add_option("--cni-bin-dir", f.cni_bin_dir, "CNI plugin directories")->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)->capture_default_str();
  app.add_option("--host-gw-routes", f.host_gw_routes, "Route other nodes' pod CIDRs to their InternalIPs")->capture_default_str();
  // kube-proxy flags
  app.add_option("--proxy-mode", f.proxy_mode, "Service proxy: iptables, nftables, userspace or none")->check(CLI::IsMember({"iptables", "nftables", "userspace", "none"}))->capture_default_str();
  app.add_option("--proxy-kubeconfig", f.proxy_kubeconfig, "Separate kubeconfig for the proxy (e.g. the kube-proxy identity)");
  app.add_option("--masquerade-all", f.masquerade_all, "SNAT all traffic sent via Service cluster IPs")->capture_default_str();
  app.add_option("--nodeport-addresses", f.nodeport_addresses, "CIDRs of the node addresses NodePorts answer on")->delimiter(',')->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--proxy-healthz-bind-address", f.healthz_bind_address_proxy, "kube-proxy healthz address")->capture_default_str();
  app.add_option("--metrics-bind-address", f.metrics_bind_address, "kube-proxy metrics address")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::exit(app.exit(e));
  }
  if (!ParseGoDuration(minimum_image_gc_age, &f.minimum_image_gc_age)) {
    std::cerr << "--minimum-image-gc-age: invalid duration \"" << minimum_image_gc_age
              << "\" (expected e.g. 2m0s, 90s, 1h)\n";
    std::exit(2);
  }
  for (auto [flag, text, out] :
       {std::tuple{"--authorization-webhook-cache-authorized-ttl", &authz_authorized_ttl,
                   &f.authorization_webhook_cache_authorized_ttl},
        std::tuple{"--authorization-webhook-cache-unauthorized-ttl", &authz_unauthorized_ttl,
                   &f.authorization_webhook_cache_unauthorized_ttl},
        std::tuple{"--authentication-token-webhook-cache-ttl", &token_ttl,
                   &f.authentication_token_webhook_cache_ttl},
        std::tuple{"--eviction-pressure-transition-period", &eviction_transition,
                   &f.eviction_pressure_transition_period}}) {
    if (!ParseGoDuration(*text, out)) {
      std::cerr << flag << ": invalid duration \"" << *text << "\" (expected e.g. 5m0s, 30s)\n";
      std::exit(2);
    }
  }
  if (!f.config.empty()) {
    auto text = base::ReadFile(f.config);
    auto applied = text ? ApplyKubeletConfig(
                              *text,
                              [&](const std::string& flag) {
                                auto* o = app.get_option_no_throw("--" + flag);
                                return o != nullptr && o->count() > 0;
                              },
                              &f)
                        : tl::unexpected(text.error());
    if (!applied) {
      std::cerr << "failed to load kubelet config file " << f.config << ": "
                << applied.error().message << "\n";
      std::exit(1);
    }
    f.config_warnings = *applied;
    // The flags' own range checks, for values that came from the file.
    auto bad = [&](const std::string& field, const std::string& why) {
      std::cerr << "failed to load kubelet config file " << f.config << ": " << field << ": "
                << why << "\n";
      std::exit(1);
    };
    if (f.image_gc_high_threshold < 0 || f.image_gc_high_threshold > 100)
      bad("imageGCHighThresholdPercent", "must be in [0, 100]");
    if (f.image_gc_low_threshold < 0 || f.image_gc_low_threshold > 100)
      bad("imageGCLowThresholdPercent", "must be in [0, 100]");
    if (f.container_log_max_files < 2) bad("containerLogMaxFiles", "must be at least 2");
    if (f.max_pods < 1) bad("maxPods", "must be at least 1");
    if (f.port < 0 || f.port > 65535) bad("port", "must be in [0, 65535]");
  }
  if (f.image_gc_low_threshold > f.image_gc_high_threshold) {
    std::cerr << "--image-gc-low-threshold (" << f.image_gc_low_threshold
              << ") must not be greater than --image-gc-high-threshold (" << f.image_gc_high_threshold
              << ")\n";
    std::exit(2);
  }
  if (f.debug_socket.empty()) f.debug_socket = f.run_dir + "/cubelet.sock";
  if (f.image_dir.empty()) f.image_dir = f.root_dir + "/images";
  return f;
}

}  // namespace agent
