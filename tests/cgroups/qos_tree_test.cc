#include "cgroups/qos_tree.h"

#include <catch2/catch.hpp>

#include "cgroups/fake_driver.h"

using namespace cgroups;

TEST_CASE("QoS cgroup paths", "[cgroups][unit]") {
  struct Row {
    QosClass qos;
    const char* kubepods;
    const char* qos_path;
    const char* pod_path;
  };
  const char* uid = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc";
  for (const auto& row : std::vector<Row>{
           {QosClass::kGuaranteed, "kubepods", "kubepods",
            "kubepods/pod0f1e2d3c-aaaa-bbbb-cccc-123456789abc"},
           {QosClass::kBurstable, "kubepods", "kubepods/burstable",
            "kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-123456789abc"},
           {QosClass::kBestEffort, "kubepods", "kubepods/besteffort",
            "kubepods/besteffort/pod0f1e2d3c-aaaa-bbbb-cccc-123456789abc"},
           {QosClass::kBurstable, "node1/kubepods", "node1/kubepods/burstable",
            "node1/kubepods/burstable/pod0f1e2d3c-aaaa-bbbb-cccc-123456789abc"},
       }) {
    INFO(QosClassName(row.qos) << " under " << row.kubepods);
    CHECK(QosCgroupPath(row.qos, row.kubepods) == row.qos_path);
    CHECK(PodCgroupPath(row.qos, uid, row.kubepods) == row.pod_path);
    CHECK(ContainerCgroupPath(row.qos, uid, "abc123", row.kubepods) ==
          std::string(row.pod_path) + "/abc123");
  }
  CHECK(QosClassName(QosClass::kBestEffort) == "BestEffort");
}

TEST_CASE("QosTree::Ensure creates the three levels, besteffort gets 2 shares", "[cgroups][unit]") {
  FakeDriver fake;
  QosTree tree(fake);
  REQUIRE(tree.Ensure());
  CHECK(fake.Exists("kubepods"));
  CHECK(fake.Exists("kubepods/burstable"));
  CHECK(fake.Exists("kubepods/besteffort"));
  CHECK(fake.cgroups["kubepods/besteffort"].resources.cpu_shares == 2u);
  CHECK_FALSE(fake.cgroups["kubepods/burstable"].resources.cpu_shares.has_value());
  REQUIRE(tree.SetBurstableCpuRequests(1500));
  CHECK(fake.cgroups["kubepods/burstable"].resources.cpu_shares == 1536u);
  CHECK(tree.PodPath(QosClass::kGuaranteed, "u1") == "kubepods/podu1");
  // Idempotent.
  REQUIRE(tree.Ensure());
}

TEST_CASE("QosTree::Ensure reports the driver's error", "[cgroups][unit]") {
  FakeDriver fake;
  fake.fail_next["Apply"] = base::Error{EINVAL, "write cpu.shares=2: EINVAL"};
  QosTree tree(fake);
  auto r = tree.Ensure();
  REQUIRE_FALSE(r);
  CHECK(r.error().code == EINVAL);
}

TEST_CASE("FakeDriver records calls and keeps state", "[cgroups][unit]") {
  FakeDriver fake;
  REQUIRE(fake.Create("kubepods/pod1/c1"));
  Resources r;
  r.memory_limit_bytes = 1 << 20;
  REQUIRE(fake.Apply("kubepods/pod1/c1", r));
  Resources r2;
  r2.cpu_shares = 512;
  REQUIRE(fake.Apply("kubepods/pod1/c1", r2));
  CHECK(fake.cgroups["kubepods/pod1/c1"].resources.memory_limit_bytes == (1 << 20));
  CHECK(fake.cgroups["kubepods/pod1/c1"].resources.cpu_shares == 512u);
  REQUIRE(fake.AddProcess("kubepods/pod1/c1", 42));
  CHECK(fake.Procs("kubepods/pod1/c1").value() == std::vector<pid_t>{42});
  CHECK_FALSE(fake.Remove("kubepods/pod1"));  // busy
  REQUIRE(fake.KillAll("kubepods/pod1"));
  REQUIRE(fake.Remove("kubepods/pod1"));
  CHECK_FALSE(fake.Exists("kubepods/pod1/c1"));
  CHECK(fake.Exists("kubepods"));
  CHECK_FALSE(fake.Apply("nope", r));
  CHECK(fake.calls.front() == "Create kubepods/pod1/c1");
}
