// cubelet's command line, parsed as the kubelet parses its own: repeated flags take the last
// value, list flags collect every value.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "agent/cubelet_flags.h"

namespace {

agent::CubeletFlags Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "cubelet");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  return agent::ParseFlags(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("flags: a repeated flag takes the last value") {
  auto f = Parse({"--kubeconfig", "/a", "--resolv-conf", "/dev/null", "--resolv-conf",
                  "/etc/custom-resolv.conf", "--kubeconfig", "/b"});
  CHECK(f.resolv_conf == "/etc/custom-resolv.conf");
  CHECK(f.kubeconfig == "/b");
}

TEST_CASE("flags: list flags take comma lists and collect repeats") {
  auto f = Parse({"--kubeconfig", "/k", "--cluster-dns", "10.96.0.10,10.96.0.11", "--cluster-dns",
                  "10.96.0.12", "--node-ip", "10.0.0.5"});
  CHECK(f.cluster_dns == std::vector<std::string>{"10.96.0.10", "10.96.0.11", "10.96.0.12"});
  CHECK(f.node_ip == std::vector<std::string>{"10.0.0.5"});
  CHECK(f.debug_socket == f.run_dir + "/cubelet.sock");
}

TEST_CASE("flags: log rotation, image GC and registry flags (kubelet names and defaults)") {
  auto d = Parse({"--kubeconfig", "/k"});
  CHECK(d.container_log_max_size == "10Mi");
  CHECK(d.container_log_max_files == 5);
  CHECK(d.image_gc_high_threshold == 85);
  CHECK(d.image_gc_low_threshold == 80);
  CHECK(d.minimum_image_gc_age == std::chrono::minutes(2));
  CHECK(d.registry_config.empty());
  auto f = Parse({"--kubeconfig", "/k", "--container-log-max-size", "1Mi",
                  "--container-log-max-files", "3", "--image-gc-high-threshold", "90",
                  "--image-gc-low-threshold", "50", "--minimum-image-gc-age", "1h30m",
                  "--registry-config", "/etc/cubelet/registries.json"});
  CHECK(f.container_log_max_size == "1Mi");
  CHECK(f.container_log_max_files == 3);
  CHECK(f.image_gc_high_threshold == 90);
  CHECK(f.image_gc_low_threshold == 50);
  CHECK(f.minimum_image_gc_age == std::chrono::minutes(90));
  CHECK(f.registry_config == "/etc/cubelet/registries.json");

  std::chrono::milliseconds ms{};
  auto parse = [&](const std::string& s) {
    return agent::ParseGoDuration(s, &ms) ? static_cast<int64_t>(ms.count()) : int64_t{-1};
  };
  CHECK(parse("2m0s") == 120000);
  CHECK(parse("90s") == 90000);
  CHECK(parse("1.5h") == 5400000);
  CHECK(parse("300ms") == 300);
  CHECK(parse("1m30s500ms") == 90500);
  CHECK(parse("0") == 0);
  for (const char* bad : {"", "5", "m", "-1s", "1d", "1s2"}) {
    INFO(bad);
    CHECK(parse(bad) == -1);
  }
}
