// The drivers against a plain directory tree laid out like cgroupfs. This checks exactly which
// files get which values, including what the real kernel here cannot show: this machine's small
// cgroup2 tree has no cpu/memory/io/pids controllers, so v2 resource files are proven here and the
// kernel behaviour of v2 (freeze, kill, devices) in the privileged test.
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cgroups/v1_driver.h"
#include "cgroups/v2_driver.h"

using namespace cgroups;
namespace fs = std::filesystem;

namespace {

class TempTree {
 public:
  TempTree() {
    char tmpl[] = "/tmp/cubelet-cgroups-tree-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    root_ = tmpl;
  }
  ~TempTree() { fs::remove_all(root_); }
  const std::string& root() const { return root_; }
  void Put(const std::string& rel, const std::string& content) {
    fs::create_directories(fs::path(root_ + "/" + rel).parent_path());
    std::ofstream(root_ + "/" + rel) << content;
  }
  std::string Get(const std::string& rel) const {
    std::ifstream in(root_ + "/" + rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // A v2 cgroup directory with the given controllers available and the usual files.
  void V2Cgroup(const std::string& rel, const std::string& controllers) {
    std::string p = rel.empty() ? "" : rel + "/";
    Put(p + "cgroup.controllers", controllers + "\n");
    Put(p + "cgroup.subtree_control", "");
  }

 private:
  std::string root_;
};

}  // namespace

TEST_CASE("v2: controllers are enabled from the driver's root down, not above, not in the leaf",
          "[cgroups][unit]") {
  TempTree t;
  t.V2Cgroup("", "cpuset cpu io memory hugetlb pids rdma");
  t.V2Cgroup("r", "cpuset cpu io memory hugetlb pids rdma");
  t.V2Cgroup("r/kubepods", "cpu io memory pids");
  t.V2Cgroup("r/kubepods/pod1", "cpu io memory pids");
  V2Driver d(t.root(), "r");
  REQUIRE(d.Create("kubepods/pod1"));
  CHECK(t.Get("cgroup.subtree_control").empty());  // above the driver's root: untouched
  CHECK(t.Get("r/cgroup.subtree_control") == "+cpu +cpuset +io +memory +pids +hugetlb");
  CHECK(t.Get("r/kubepods/cgroup.subtree_control") == "+cpu +io +memory +pids");
  CHECK(t.Get("r/kubepods/pod1/cgroup.subtree_control").empty());  // leaf

  SECTION("already enabled controllers are not written again") {
    t.Put("r/kubepods/cgroup.subtree_control", "cpu io memory pids\n");
    REQUIRE(d.Create("kubepods/pod1"));
    CHECK(t.Get("r/kubepods/cgroup.subtree_control") == "cpu io memory pids\n");
  }
  SECTION("a driver given the top writes the top's subtree_control") {
    V2Driver top(t.root(), "");
    REQUIRE(top.Create("r/kubepods/pod1"));
    CHECK(t.Get("cgroup.subtree_control") == "+cpu +cpuset +io +memory +pids +hugetlb");
  }
}

TEST_CASE("v2: Apply writes v2 names and converted values", "[cgroups][unit]") {
  TempTree t;
  t.V2Cgroup("", "cpu io memory pids");
  t.V2Cgroup("pod", "cpu io memory pids");
  for (auto f : {"cpu.weight", "memory.max", "memory.high", "memory.min", "pids.max", "io.weight",
                 "io.max", "cpuset.cpus", "cpuset.mems"})
    t.Put(std::string("pod/") + f, "");
  t.Put("pod/cpu.max", "max 100000\n");
  V2Driver d(t.root(), "");

  Resources r;
  r.cpu_shares = 1024;
  r.cpu_quota_us = 20000;  // period kept from cpu.max
  r.memory_limit_bytes = 64 << 20;
  r.memory_high_bytes = -1;
  r.memory_min_bytes = 1 << 20;
  r.pids_limit = 10;
  r.blkio_weight = 500;
  r.blkio_throttle.push_back({8, 0, 1048576, 0, 0, 0});
  r.cpuset_cpus = "0";
  r.cpuset_mems = "0";
  REQUIRE(d.Apply("pod", r));
  CHECK(t.Get("pod/cpu.weight") == "39");
  CHECK(t.Get("pod/cpu.max") == "20000 100000");
  CHECK(t.Get("pod/memory.max") == "67108864");
  CHECK(t.Get("pod/memory.high") == "max");
  CHECK(t.Get("pod/memory.min") == "1048576");
  CHECK(t.Get("pod/pids.max") == "10");
  CHECK(t.Get("pod/io.weight") == "default 4950");
  CHECK(t.Get("pod/io.max") == "8:0 rbps=1048576 wbps=max riops=max wiops=max");
  CHECK(t.Get("pod/cpuset.cpus") == "0");

  Resources period;
  period.cpu_period_us = 50000;  // quota kept
  REQUIRE(d.Apply("pod", period));
  CHECK(t.Get("pod/cpu.max") == "20000 50000");
  Resources unlimited;
  unlimited.cpu_quota_us = -1;
  unlimited.memory_limit_bytes = -1;
  unlimited.pids_limit = -1;
  REQUIRE(d.Apply("pod", unlimited));
  CHECK(t.Get("pod/cpu.max") == "max 50000");
  CHECK(t.Get("pod/memory.max") == "max");
  CHECK(t.Get("pod/pids.max") == "max");

  SECTION("io.bfq.weight takes the blkio weight unconverted") {
    t.Put("pod/io.bfq.weight", "100\n");
    Resources w;
    w.blkio_weight = 500;
    REQUIRE(d.Apply("pod", w));
    CHECK(t.Get("pod/io.bfq.weight") == "500");
  }
  SECTION("a controller that is not enabled gives an error that says so") {
    t.V2Cgroup("bare", "cpu");
    Resources m;
    m.memory_limit_bytes = 1 << 20;
    auto e = d.Apply("bare", m);
    REQUIRE_FALSE(e);
    CHECK(e.error().code == ENOENT);
    INFO(e.error().message);
    CHECK(e.error().message.find("memory.max=1048576") != std::string::npos);
    CHECK(e.error().message.find("memory controller is not enabled") != std::string::npos);
    CHECK(e.error().message.find("'cpu'") != std::string::npos);
  }
}

TEST_CASE("v2: GetStats reads cpu.stat, memory.*, pids.current", "[cgroups][unit]") {
  TempTree t;
  t.V2Cgroup("c", "cpu memory pids");
  t.Put("c/cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
  t.Put("c/memory.current", "1000\n");
  t.Put("c/memory.stat", "anon 300\nfile 600\ninactive_file 400\n");
  t.Put("c/memory.max", "max\n");
  t.Put("c/memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n");
  t.Put("c/pids.current", "3\n");
  V2Driver d(t.root(), "");
  auto s = d.GetStats("c");
  REQUIRE(s);
  CHECK(s->cpu_usage_ns == 1500000u);
  CHECK(s->memory_usage_bytes == 1000u);
  CHECK(s->memory_working_set_bytes == 600u);
  CHECK(s->memory_rss_bytes == 300u);
  CHECK(s->memory_limit_bytes == 0u);
  CHECK(s->oom_kill_count == 2u);
  CHECK(s->pids_current == 3u);
  t.Put("c/memory.max", "4096\n");
  t.Put("c/memory.stat", "anon 300\ninactive_file 4000\n");
  s = d.GetStats("c");
  REQUIRE(s);
  CHECK(s->memory_limit_bytes == 4096u);
  CHECK(s->memory_working_set_bytes == 0u);  // clamped
}

TEST_CASE("v1: GetStats on a cgroupfs-like tree, OOM count summed over the subtree",
          "[cgroups][unit]") {
  TempTree t;
  t.Put("cpuacct/p/cpuacct.usage", "123456789\n");
  t.Put("memory/p/memory.usage_in_bytes", "8192\n");
  t.Put("memory/p/memory.stat", "rss 1\ntotal_rss 4096\ntotal_inactive_file 1024\n");
  t.Put("memory/p/memory.limit_in_bytes", "9223372036854771712\n");
  t.Put("memory/p/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  t.Put("memory/p/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  t.Put("pids/p/pids.current", "7\n");
  V1Driver d({{"cpuacct", t.root() + "/cpuacct"},
              {"memory", t.root() + "/memory"},
              {"pids", t.root() + "/pids"}},
             "", t.root());
  auto s = d.GetStats("p");
  REQUIRE(s);
  CHECK(s->cpu_usage_ns == 123456789u);
  CHECK(s->memory_usage_bytes == 8192u);
  CHECK(s->memory_working_set_bytes == 7168u);
  CHECK(s->memory_rss_bytes == 4096u);
  CHECK(s->memory_limit_bytes == 0u);  // the "unlimited" value
  CHECK(s->oom_kill_count == 3u);
  CHECK(s->pids_current == 7u);

  SECTION("a kernel without the oom_kill line: ENOTSUP that says why, stats report 0") {
    t.Put("memory/p/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
    auto n = d.OomKillCount("p");
    REQUIRE_FALSE(n);
    CHECK(n.error().code == ENOTSUP);
    CHECK(n.error().message.find("no oom_kill line") != std::string::npos);
    auto s2 = d.GetStats("p");
    REQUIRE(s2);
    CHECK(s2->oom_kill_count == 0u);
  }
}

TEST_CASE("v1: co-mounted cpu,cpuacct is one hierarchy", "[cgroups][unit]") {
  TempTree t;
  t.Put("cpu,cpuacct/.keep", "");
  t.Put("memory/.keep", "");
  std::string both = t.root() + "/cpu,cpuacct";
  V1Driver d({{"cpu", both}, {"cpuacct", both}, {"memory", t.root() + "/memory"}}, "root",
             t.root());
  CHECK(d.MountPoints() == std::vector<std::string>{both, t.root() + "/memory"});
  REQUIRE(d.Create("pod/c"));
  CHECK(fs::is_directory(both + "/root/pod/c"));
  CHECK(fs::is_directory(t.root() + "/memory/root/pod/c"));
  CHECK(d.Exists("pod/c"));
  CHECK(d.ControllerPath("cpu", "pod") == d.ControllerPath("cpuacct", "pod"));

  // Settings of both controllers land in the one directory.
  t.Put("cpu,cpuacct/root/pod/cpu.shares", "1024\n");
  t.Put("cpu,cpuacct/root/pod/cpuacct.usage", "42\n");
  Resources r;
  r.cpu_shares = 256;
  REQUIRE(d.Apply("pod", r));
  CHECK(t.Get("cpu,cpuacct/root/pod/cpu.shares") == "256");
  CHECK(d.Cpuacct("pod")->UsageNs().value() == 42u);
  // A controller that is not mounted at all: ENODEV naming it.
  auto pids = d.Pids("pod");
  REQUIRE_FALSE(pids);
  CHECK(pids.error().code == ENODEV);
  CHECK(pids.error().message.find("pids hierarchy is not mounted") != std::string::npos);
}
