// --config: a KubeletConfiguration file as kubeadm writes it, merged under the command line.
#include "agent/kubelet_config_file.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <set>

namespace {

// What kubeadm 1.32 writes to /var/lib/kubelet/config.yaml (values of a test cluster).
const char kKubeadm[] = R"(apiVersion: kubelet.config.k8s.io/v1beta1
authentication:
  anonymous:
    enabled: false
  webhook:
    cacheTTL: 0s
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 0s
    cacheUnauthorizedTTL: 0s
cgroupDriver: systemd
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: ""
cpuManagerReconcilePeriod: 0s
evictionPressureTransitionPeriod: 0s
fileCheckFrequency: 0s
healthzBindAddress: 127.0.0.1
healthzPort: 10248
httpCheckFrequency: 0s
imageMaximumGCAge: 0s
imageMinimumGCAge: 0s
kind: KubeletConfiguration
logging:
  flushFrequency: 0
  options:
    json:
      infoBufferSize: "0"
  verbosity: 0
memorySwap: {}
nodeStatusReportFrequency: 0s
nodeStatusUpdateFrequency: 0s
resolvConf: /run/systemd/resolve/resolv.conf
rotateCertificates: true
runtimeRequestTimeout: 0s
shutdownGracePeriod: 0s
shutdownGracePeriodCriticalPods: 0s
staticPodPath: /etc/kubernetes/manifests
streamingConnectionIdleTimeout: 0s
syncFrequency: 0s
volumeStatsAggPeriod: 0s
)";

auto None = [](const std::string&) { return false; };

}  // namespace

TEST_CASE("kubelet config: kubeadm's file") {
  agent::CubeletFlags f;
  // kubeadm writes zero durations for what it leaves to the kubelet's defaults (0s = unset for
  // the kubelet's non-pointer fields): the defaults stay.
  auto r = agent::ApplyKubeletConfig(kKubeadm, None, &f);
  REQUIRE(r);
  CHECK(f.client_ca_file == "/etc/kubernetes/pki/ca.crt");
  CHECK(f.authorization_mode == "Webhook");
  CHECK(f.cluster_dns == std::vector<std::string>{"10.96.0.10"});
  CHECK(f.cluster_domain == "cluster.local");
  CHECK(f.resolv_conf == "/run/systemd/resolve/resolv.conf");
  CHECK(f.healthz_port == 10248);
  CHECK(f.node_status_update_frequency == 10);
  CHECK(f.minimum_image_gc_age == std::chrono::minutes(2));
  CHECK(f.authorization_webhook_cache_authorized_ttl == std::chrono::minutes(5));
  CHECK(f.authorization_webhook_cache_unauthorized_ttl == std::chrono::seconds(30));
  CHECK(f.image_maximum_gc_age.count() == 0);
  // What cubelet does not do is said, in one line, with the file's paths.
  REQUIRE(r->size() == 1);
  const std::string& w = (*r)[0];
  INFO(w);
  CHECK(w.rfind("KubeletConfiguration fields cubelet does not implement (ignored): ", 0) == 0);
  CHECK(w == "KubeletConfiguration fields cubelet does not implement (ignored): "
             "cgroupDriver, rotateCertificates");
  CHECK(f.pod_manifest_path == "/etc/kubernetes/manifests");
  CHECK(f.authentication_token_webhook);
  CHECK(f.authentication_token_webhook_cache_ttl == std::chrono::minutes(2));
  // Not what it matches (anonymous off), applies, or what is left at its default (0s, {}).
}

TEST_CASE("kubelet config: the command line wins; every supported field") {
  agent::CubeletFlags f;
  f.max_pods = 50;  // as if --max-pods=50 was given
  std::set<std::string> given = {"max-pods"};
  auto r = agent::ApplyKubeletConfig(R"(apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 10.0.0.5
port: 11250
tlsCertFile: /pki/k.crt
tlsPrivateKeyFile: /pki/k.key
authentication:
  webhook: {enabled: false, cacheTTL: 30s}
authorization:
  mode: AlwaysAllow
  webhook: {cacheAuthorizedTTL: 1m, cacheUnauthorizedTTL: 5s}
podCIDR: 10.244.3.0/24
maxPods: 20
podPidsLimit: 1024
cgroupRoot: /cubelet
cgroupsPerQOS: false
registerNode: true
registerWithTaints:
- {key: dedicated, value: gpu, effect: NoSchedule}
- {key: edge, effect: NoExecute}
imageGCHighThresholdPercent: 90
imageGCLowThresholdPercent: 70
imageMinimumGCAge: 5m
imageMaximumGCAge: 168h
containerLogMaxSize: 50Mi
containerLogMaxFiles: 3
podLogsDir: /srv/pod-logs
evictionHard:
  memory.available: 500Mi
  nodefs.available: 5%
evictionPressureTransitionPeriod: 30s
evictionSoft: {memory.available: 1Gi}
evictionSoftGracePeriod: {memory.available: 1m30s}
evictionMaxPodGracePeriod: 60
)",
                                     [&](const std::string& flag) { return given.count(flag) > 0; },
                                     &f);
  REQUIRE(r);
  CHECK(r->empty());
  CHECK(f.max_pods == 50);  // --max-pods, not the file
  CHECK(f.address == "10.0.0.5");
  CHECK(f.port == 11250);
  CHECK(f.tls_cert_file == "/pki/k.crt");
  CHECK(f.tls_private_key_file == "/pki/k.key");
  CHECK(f.authorization_mode == "AlwaysAllow");
  CHECK_FALSE(f.authentication_token_webhook);
  CHECK(f.authentication_token_webhook_cache_ttl == std::chrono::seconds(30));
  CHECK(f.authorization_webhook_cache_authorized_ttl == std::chrono::minutes(1));
  CHECK(f.authorization_webhook_cache_unauthorized_ttl == std::chrono::seconds(5));
  CHECK(f.pod_cidr == "10.244.3.0/24");
  CHECK(f.pod_max_pids == 1024);
  CHECK(f.cgroup_root == "/cubelet");
  CHECK_FALSE(f.cgroups_per_qos);
  CHECK(f.register_with_taints ==
        std::vector<std::string>{"dedicated=gpu:NoSchedule", "edge:NoExecute"});
  CHECK(f.image_gc_high_threshold == 90);
  CHECK(f.image_gc_low_threshold == 70);
  CHECK(f.minimum_image_gc_age == std::chrono::minutes(5));
  CHECK(f.image_maximum_gc_age == std::chrono::hours(168));
  CHECK(f.container_log_max_size == "50Mi");
  CHECK(f.container_log_max_files == 3);
  CHECK(f.pod_logs_dir == "/srv/pod-logs");
  CHECK(f.eviction_hard == "memory.available<500Mi,nodefs.available<5%");
  CHECK(f.eviction_pressure_transition_period == std::chrono::seconds(30));
  CHECK(f.eviction_soft == "memory.available<1Gi");
  CHECK(f.eviction_soft_grace_period == "memory.available=1m30s");
  CHECK(f.eviction_max_pod_grace_period == 60);
}

TEST_CASE("kubelet config: errors name the field") {
  agent::CubeletFlags f;
  auto err = [&](const std::string& body) {
    auto r = agent::ApplyKubeletConfig(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n" + body, None, &f);
    return r ? std::string("ok") : r.error().message;
  };
  CHECK(err("maxPods: many\n") == "maxPods: expected an integer, got \"many\"");
  CHECK(err("nodeStatusUpdateFrequency: 500ms\n") == "nodeStatusUpdateFrequency: must be at least 1s");
  CHECK(err("cgroupsPerQOS: yes please\n") == "cgroupsPerQOS: expected true or false, got \"yes please\"");
  CHECK(err("imageMinimumGCAge: soon\n") ==
        "imageMinimumGCAge: invalid duration \"soon\" (expected e.g. 2m0s, 90s, 1h)");
  CHECK(err("authorization: {mode: RBAC}\n") ==
        "authorization.mode: \"RBAC\" is not supported (Webhook or AlwaysAllow)");
  CHECK(err("clusterDNS: 10.96.0.10\n") == "clusterDNS: expected a list of strings");
  CHECK(err("registerWithTaints: [{key: a}]\n") == "registerWithTaints: each taint needs a key and an effect");
  auto other = agent::ApplyKubeletConfig("apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\n", None, &f);
  REQUIRE_FALSE(other);
  CHECK(other.error().message ==
        "expected apiVersion kubelet.config.k8s.io/v1beta1 and kind KubeletConfiguration, got "
        "apiVersion \"kubeproxy.config.k8s.io/v1alpha1\" kind \"KubeProxyConfiguration\"");
  auto broken = agent::ApplyKubeletConfig("a: [", None, &f);
  REQUIRE_FALSE(broken);
  CHECK(broken.error().message.rfind("not YAML: ", 0) == 0);
}

TEST_CASE("kubelet config: /configz shows the effective settings as the kubelet does, and reads back") {
  agent::CubeletFlags f;
  f.max_pods = 50;  // --max-pods=50 on the command line
  REQUIRE(agent::ApplyKubeletConfig(kKubeadm, [](const std::string& flag) { return flag == "max-pods"; }, &f));
  f.register_with_taints = {"dedicated=infra:NoSchedule", "gpu:NoExecute"};
  f.eviction_soft = "memory.available<1Gi";
  f.eviction_soft_grace_period = "memory.available=1m30s";
  auto j = nlohmann::json::parse(agent::KubeletConfigzJson(f));
  REQUIRE(j.contains("kubeletconfig"));
  const auto& c = j["kubeletconfig"];
  CHECK_FALSE(c.contains("kind"));  // as the kubelet's: the object alone
  CHECK(c["staticPodPath"] == "/etc/kubernetes/manifests");
  CHECK(c["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt");
  CHECK(c["authentication"]["webhook"]["cacheTTL"] == "2m0s");
  CHECK(c["authentication"]["anonymous"]["enabled"] == false);
  CHECK(c["authorization"]["mode"] == "Webhook");
  CHECK(c["authorization"]["webhook"]["cacheAuthorizedTTL"] == "5m0s");
  CHECK(c["authorization"]["webhook"]["cacheUnauthorizedTTL"] == "30s");
  CHECK(c["nodeStatusUpdateFrequency"] == "10s");
  CHECK(c["imageMinimumGCAge"] == "2m0s");
  CHECK(c["evictionPressureTransitionPeriod"] == "5m0s");
  CHECK(c["clusterDNS"] == nlohmann::json::array({"10.96.0.10"}));
  CHECK(c["resolvConf"] == "/run/systemd/resolve/resolv.conf");
  CHECK(c["maxPods"] == 50);
  CHECK(c["cgroupDriver"] == "cgroupfs");  // what cubelet does, not what the file asked
  CHECK(c["evictionHard"]["memory.available"] == "100Mi");  // the kubelet's defaults
  CHECK(c["evictionHard"]["nodefs.available"] == "10%");
  CHECK(c["evictionSoft"]["memory.available"] == "1Gi");
  CHECK(c["evictionSoftGracePeriod"]["memory.available"] == "1m30s");
  REQUIRE(c["registerWithTaints"].size() == 2);
  CHECK(c["registerWithTaints"][0] ==
        nlohmann::json({{"key", "dedicated"}, {"value", "infra"}, {"effect", "NoSchedule"}}));
  CHECK(c["registerWithTaints"][1] == nlohmann::json({{"key", "gpu"}, {"effect", "NoExecute"}}));
  // As a config file (kind and apiVersion added), it gives the same settings back, with
  // nothing cubelet would ignore.
  auto file = c;
  file["kind"] = "KubeletConfiguration";
  file["apiVersion"] = "kubelet.config.k8s.io/v1beta1";
  agent::CubeletFlags g;
  auto r = agent::ApplyKubeletConfig(file.dump(), None, &g);
  REQUIRE(r);
  CHECK(r->empty());
  CHECK(agent::KubeletConfigzJson(g) == agent::KubeletConfigzJson(f));
  CHECK(g.max_pods == 50);
  CHECK(g.register_with_taints == f.register_with_taints);
  CHECK(g.authorization_webhook_cache_unauthorized_ttl == std::chrono::seconds(30));
}
