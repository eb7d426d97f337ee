#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/pod_model.h"
#include "agent/runtime_config.h"

using namespace agent;
using nlohmann::json;

namespace {

// Body of a real captured response (sample 32), the pod as a real API server returns it.
json SamplePod() {
  std::ifstream f(std::string(CUBELET_SAMPLES_DIR) + "/32-admin-get-pod-after-create-200.http");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string text = ss.str();
  return json::parse(text.substr(text.find("\n{") + 1));
}

}  // namespace

TEST_CASE("a real API server pod decodes with its defaults") {
  auto pod = DecodePod(SamplePod());
  REQUIRE(pod);
  CHECK(pod->name == "sample-pod");
  CHECK(pod->ns == "samples");
  CHECK(pod->uid == "7d18e496-7af9-4b13-819c-c342914d44a0");
  CHECK(pod->restart_policy == "Always");
  CHECK(pod->termination_grace_period_seconds == 30);
  REQUIRE(pod->containers.size() == 1);
  const Container& c = pod->containers[0];
  CHECK(c.command == std::vector<std::string>{"sleep", "3600"});
  CHECK(*c.resources.requests.cpu_milli == 100);
  CHECK(*c.resources.limits.memory_bytes == 128LL * 1024 * 1024);
  CHECK(c.image_pull_policy == "Always");
  REQUIRE(pod->volumes.size() == 1);
  const Volume& v = pod->volumes[0];
  CHECK(v.kind == Volume::Kind::kProjected);
  CHECK(v.default_mode == 420);
  // Any number of projected sources (this capture has a fourth, OpenShift's service CA).
  REQUIRE(v.sources.size() == 4);
  CHECK(v.sources[0].kind == ProjectionSource::Kind::kServiceAccountToken);
  CHECK(v.sources[0].expiration_seconds == 3607);
  CHECK(v.sources[0].path == "token");
  CHECK(v.sources[1].kind == ProjectionSource::Kind::kConfigMap);
  CHECK(v.sources[1].name == "kube-root-ca.crt");
  CHECK(v.sources[2].kind == ProjectionSource::Kind::kDownwardAPI);
  CHECK(v.sources[2].fields[0] == std::make_pair(std::string("namespace"), std::string("metadata.namespace")));
  CHECK(ComputeQos(*pod) == QosClass::kBurstable);
}

TEST_CASE("cgroup parent and pod resources follow the QoS class") {
  auto pod = DecodePod(SamplePod());
  REQUIRE(pod);
  NodeConfig node;
  node.memory_capacity_bytes = 4LL << 30;
  CHECK(PodCgroupParent(*pod, node) == "kubepods/burstable/pod7d18e496-7af9-4b13-819c-c342914d44a0");
  auto r = PodResources(*pod, node);
  CHECK(r.cpu_shares == 102);            // 100m * 1024 / 1000
  CHECK(r.cpu_quota == 20000);           // 200m of a 100 ms period
  CHECK(r.memory_limit_in_bytes == 128LL * 1024 * 1024);

  Pod be = *pod;
  be.containers[0].resources = {};
  CHECK(PodCgroupParent(be, node) == "kubepods/besteffort/pod7d18e496-7af9-4b13-819c-c342914d44a0");
  CHECK(PodResources(be, node).cpu_shares == 2);
  CHECK(OomScoreAdj(be, be.containers[0], node) == 1000);

  Pod g = *pod;
  g.containers[0].resources.requests = g.containers[0].resources.limits;
  CHECK(PodCgroupParent(g, node) == "kubepods/pod7d18e496-7af9-4b13-819c-c342914d44a0");
  CHECK(OomScoreAdj(g, g.containers[0], node) == -997);
  // Burstable: 1000 - 1000*64Mi/4Gi = 985
  CHECK(OomScoreAdj(*pod, pod->containers[0], node) == 985);
}

TEST_CASE("container config: command, env expansion, mounts, labels, log path") {
  auto pod = DecodePod(SamplePod());
  REQUIRE(pod);
  Container c = pod->containers[0];
  c.args = {"$(GREETING) from $(POD)", "$$(GREETING)"};
  c.env = {EnvVar{}, EnvVar{}};
  c.env[0].name = "POD";
  c.env[0].has_value_from = true;
  c.env[0].field_path = "metadata.name";
  c.env[1].name = "GREETING";
  c.env[1].value = "hi $(POD)";
  NodeConfig node;
  node.node_name = "n1";
  PodRuntimeFacts facts;
  facts.volume_host_paths["kube-api-access-vx8j5"] = "/var/lib/cubelet/pods/u/volumes/x";
  facts.volume_read_only["kube-api-access-vx8j5"] = true;
  auto cfg = MakeContainerConfig(*pod, c, false, 2, "docker.io/library/busybox@sha256:1", node, facts, {});
  REQUIRE(cfg);
  CHECK(cfg->args[0] == "hi sample-pod from sample-pod");
  CHECK(cfg->args[1] == "$(GREETING)");
  CHECK(cfg->log_path == "main/2.log");
  CHECK(cfg->metadata.attempt == 2);
  CHECK(cfg->labels.at(kLabelPodUid) == pod->uid);
  CHECK(cfg->annotations.at(kAnnoRestartCount) == "2");
  REQUIRE(cfg->mounts.size() == 1);
  CHECK(cfg->mounts[0].container_path == "/var/run/secrets/kubernetes.io/serviceaccount");
  CHECK(cfg->mounts[0].readonly);
  CHECK(cfg->linux.resources.cpu_quota == 20000);
  CHECK(cfg->linux.resources.memory_limit_in_bytes == 128LL * 1024 * 1024);
}

TEST_CASE("missing configmap for env is a config error naming it") {
  auto pod = DecodePod(SamplePod());
  REQUIRE(pod);
  Container c = pod->containers[0];
  EnvVar v;
  v.name = "X";
  v.has_value_from = true;
  v.configmap_name = "settings";
  v.configmap_key = "x";
  c.env = {v};
  EnvLookup lookup;
  lookup.configmap = [](const std::string&, const std::string&) { return std::optional<std::map<std::string, std::string>>(); };
  auto cfg = MakeContainerConfig(*pod, c, false, 0, "", NodeConfig{}, PodRuntimeFacts{}, lookup);
  REQUIRE_FALSE(cfg);
  CHECK(cfg.error().message == "configmap \"settings\" not found");
}

TEST_CASE("DNS config per dnsPolicy") {
  auto pod = DecodePod(SamplePod());
  REQUIRE(pod);
  NodeConfig node;
  node.cluster_dns = {"10.96.0.10"};
  HostDns host = ParseResolvConf("nameserver 1.1.1.1\nsearch example.com\noptions edns0\n");
  auto sc = MakeSandboxConfig(*pod, 0, node, host);
  CHECK(sc.dns_config.servers == std::vector<std::string>{"10.96.0.10"});
  CHECK(sc.dns_config.searches ==
        std::vector<std::string>{"samples.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.com"});
  CHECK(sc.dns_config.options == std::vector<std::string>{"ndots:5"});
  CHECK(sc.log_directory == "/var/log/pods/samples_sample-pod_7d18e496-7af9-4b13-819c-c342914d44a0");
  pod->dns_policy = "Default";
  sc = MakeSandboxConfig(*pod, 0, node, host);
  CHECK(sc.dns_config.servers == std::vector<std::string>{"1.1.1.1"});
  pod->dns_policy = "None";
  pod->dns_config = DnsConfig{{"9.9.9.9"}, {"a.b"}, {{"ndots", "2"}}};
  sc = MakeSandboxConfig(*pod, 0, node, host);
  CHECK(sc.dns_config.servers == std::vector<std::string>{"9.9.9.9"});
  CHECK(sc.dns_config.options == std::vector<std::string>{"ndots:2"});
}
