// cubelet's command line, parsed as the kubelet parses its own: repeated flags take the last
// value, list flags collect every value.
#include <catch2/catch.hpp>

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
