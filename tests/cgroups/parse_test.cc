// Pure parts of cgroups/: conversions, control-file parsing, mountinfo, paths.
#include "cgroups/parse.h"

#include <catch2/catch.hpp>

#include "cgroups/cgroup_dir.h"
#include "cgroups/driver.h"
#include "cgroups/mountinfo.h"

using namespace cgroups;

TEST_CASE("MilliCpuToShares follows the kubelet", "[cgroups][unit]") {
  struct Row {
    int64_t milli;
    uint64_t shares;
  };
  for (auto [milli, shares] : std::vector<Row>{{0, 2},
                                               {1, 2},
                                               {2, 2},
                                               {3, 3},
                                               {100, 102},
                                               {250, 256},
                                               {1000, 1024},
                                               {1500, 1536},
                                               {256000, 262144},
                                               {1000000, 262144},
                                               {-5, 2}}) {
    INFO("milli=" << milli);
    CHECK(MilliCpuToShares(milli) == shares);
  }
}

TEST_CASE("MilliCpuToQuota follows the kubelet", "[cgroups][unit]") {
  CHECK(MilliCpuToQuota(0, 100000) == 0);
  CHECK(MilliCpuToQuota(1, 100000) == 1000);  // 100 → clamped to the 1 ms minimum
  CHECK(MilliCpuToQuota(10, 100000) == 1000);
  CHECK(MilliCpuToQuota(200, 100000) == 20000);
  CHECK(MilliCpuToQuota(1500, 100000) == 150000);
  CHECK(MilliCpuToQuota(500, 50000) == 25000);
}

TEST_CASE("SharesToWeight is runc's conversion", "[cgroups][unit]") {
  CHECK(SharesToWeight(2) == 1);
  CHECK(SharesToWeight(1024) == 39);  // 1 + 1022*9999/262142 = 1 + 38
  CHECK(SharesToWeight(262144) == 10000);
  CHECK(SharesToWeight(0) == 1);  // clamped, never an invalid cpu.weight
  CHECK(SharesToWeight(1 << 30) == 10000);
}

TEST_CASE("ParseFlatKeyed reads memory.stat and skips junk", "[cgroups][unit]") {
  auto m = ParseFlatKeyed(
      "cache 4096\nrss 123\ntotal_inactive_file 8192\nhierarchical_memory_limit "
      "9223372036854771712\nbogus line here\nnovalue\n");
  CHECK(Lookup(m, "cache") == 4096u);
  CHECK(Lookup(m, "rss") == 123u);
  CHECK(Lookup(m, "total_inactive_file") == 8192u);
  CHECK(Lookup(m, "hierarchical_memory_limit") == 9223372036854771712u);
  CHECK_FALSE(Lookup(m, "bogus").has_value());
  CHECK_FALSE(Lookup(m, "novalue").has_value());
}

TEST_CASE("ParseOomControl with and without oom_kill", "[cgroups][unit]") {
  auto newer = ParseOomControl("oom_kill_disable 0\nunder_oom 1\noom_kill 3\n");
  CHECK_FALSE(newer.oom_kill_disable);
  CHECK(newer.under_oom);
  CHECK(newer.oom_kill == 3u);
  auto older = ParseOomControl("oom_kill_disable 1\nunder_oom 0\n");
  CHECK(older.oom_kill_disable);
  CHECK_FALSE(older.oom_kill.has_value());
}

TEST_CASE("cpu.max parse and format", "[cgroups][unit]") {
  auto a = ParseCpuMax("max 100000\n");
  REQUIRE(a);
  CHECK(a->quota_us == -1);
  CHECK(a->period_us == 100000u);
  auto b = ParseCpuMax("20000 50000");
  REQUIRE(b);
  CHECK(b->quota_us == 20000);
  CHECK(b->period_us == 50000u);
  auto c = ParseCpuMax("max");
  REQUIRE(c);
  CHECK(c->period_us == 100000u);
  CHECK_FALSE(ParseCpuMax(""));
  CHECK_FALSE(ParseCpuMax("lots 100"));
  CHECK_FALSE(ParseCpuMax("1 2 3"));
  CHECK(FormatCpuMax({-1, 100000}) == "max 100000");
  CHECK(FormatCpuMax({20000, 100000}) == "20000 100000");
}

TEST_CASE("max-or-number values and v1 unlimited memory", "[cgroups][unit]") {
  CHECK(ParseMaxOrNumber("max\n") == -1);
  CHECK(ParseMaxOrNumber(" 42 ") == 42);
  CHECK_FALSE(ParseMaxOrNumber("forty"));
  CHECK(FormatMaxOrNumber(-1) == "max");
  CHECK(FormatMaxOrNumber(0) == "0");
  CHECK(FormatMaxOrNumber(1024) == "1024");
  CHECK(V1MemoryLimitOrZero(9223372036854771712ull) == 0);  // 4 KiB pages
  CHECK(V1MemoryLimitOrZero(9223372036854710272ull) == 0);  // 64 KiB pages
  CHECK(V1MemoryLimitOrZero(64ull << 20) == (64ull << 20));
}

TEST_CASE("device rules parse and format", "[cgroups][unit]") {
  CHECK(FormatDeviceRule({true, 'c', 1, 3, "rwm"}) == "c 1:3 rwm");
  CHECK(FormatDeviceRule({true, 'b', 8, -1, "r"}) == "b 8:* r");
  CHECK(FormatDeviceRule({true, 'a', -1, -1, "rwm"}) == "a *:* rwm");
  auto list = ParseDevicesList("c 1:3 rwm\nc 136:* rw\nb 8:0 m\n");
  REQUIRE(list);
  REQUIRE(list->size() == 3);
  CHECK((*list)[1].major == 136);
  CHECK((*list)[1].minor == -1);
  CHECK((*list)[2].type == 'b');
  auto all = ParseDeviceRule("a *:* rwm");
  REQUIRE(all);
  CHECK(IsAllowAll(*all));
  CHECK(IsAllowAll(DeviceRule{true, 'a', -1, -1, "mwr"}));
  CHECK_FALSE(IsAllowAll(DeviceRule{false, 'a', -1, -1, "rwm"}));
  CHECK_FALSE(IsAllowAll(DeviceRule{true, 'a', -1, -1, "rw"}));
  CHECK_FALSE(ParseDeviceRule("x 1:3 rwm"));
  CHECK_FALSE(ParseDeviceRule("c 1-3 rwm"));
  CHECK_FALSE(ParseDeviceRule("c 1:3 rwx"));
}

TEST_CASE("io files: weight, io.max, throttle", "[cgroups][unit]") {
  CHECK(ParseWeightFile("100\n") == 100u);
  CHECK(ParseWeightFile("default 500\n8:0 200\n") == 500u);
  CHECK_FALSE(ParseWeightFile("8:0 200\n"));
  CHECK(FormatIoMax({8, 0, 1048576, 0, 0, 100}) == "8:0 rbps=1048576 wbps=max riops=max wiops=100");
  CHECK(BlkioWeightToIoWeight(10) == 1);
  CHECK(BlkioWeightToIoWeight(1000) == 10000);
  CHECK(BlkioWeightToIoWeight(500) == 1 + 490 * 9999 / 990);
  auto t = ParseThrottleFile("254:0 1048576\n8:16 5\n");
  CHECK(t["254:0"] == 1048576u);
  CHECK(t["8:16"] == 5u);
}

TEST_CASE("/proc/PID/cgroup parsing", "[cgroups][unit]") {
  auto m = ParseProcCgroup("9:name=systemd:/\n2:cpu,cpuacct:/a/b\n4:memory:/x\n0::/u\n");
  CHECK(m["cpu"] == "/a/b");
  CHECK(m["cpuacct"] == "/a/b");
  CHECK(m["memory"] == "/x");
  CHECK(m["name=systemd"] == "/");
  CHECK(m[""] == "/u");
}

TEST_CASE("controller lists", "[cgroups][unit]") {
  CHECK(ParseControllerList("cpu io memory pids\n") ==
        std::vector<std::string>{"cpu", "io", "memory", "pids"});
  CHECK(ParseControllerList("\n").empty());
}

TEST_CASE("mountinfo: separate, co-mounted and named v1 hierarchies", "[cgroups][unit]") {
  const char* text =
      "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup "
      "rw,cpu,cpuacct\n"
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "35 30 0:32 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup "
      "rw,cpuset,clone_children\n"
      "39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup "
      "rw,xattr,name=systemd,release_agent=/x\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
      "41 22 0:38 / /other/cgroup/pids rw - cgroup cgroup rw,pids\n"
      "42 22 0:39 / /mnt/with\\040space rw - ext4 /dev/vda rw\n";
  auto mounts = ParseMountInfo(text);
  REQUIRE(mounts.size() == 8);
  CHECK(mounts[1].fstype == "cgroup");  // optional field "shared:9" skipped
  CHECK(mounts[1].super_options == "rw,cpu,cpuacct");
  CHECK(mounts[7].mount_point == "/mnt/with space");
  CHECK(FsTypeAt(mounts, "/sys/fs/cgroup") == "tmpfs");
  CHECK(FsTypeAt(mounts, "/sys/fs/cgroup/unified/") == "cgroup2");

  auto h = V1Hierarchies(mounts, "/sys/fs/cgroup");
  CHECK(h.size() == 5);
  CHECK(h["cpu"] == "/sys/fs/cgroup/cpu,cpuacct");
  CHECK(h["cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct");
  CHECK(h["memory"] == "/sys/fs/cgroup/memory");
  CHECK(h["cpuset"] == "/sys/fs/cgroup/cpuset");
  CHECK(h["name=systemd"] == "/sys/fs/cgroup/systemd");
  CHECK(h.count("pids") == 0);   // not under the mount root
  CHECK(h.count("xattr") == 0);  // a mount option, not a controller
  CHECK(h.count("clone_children") == 0);
}

TEST_CASE("cgroup paths never leave the root", "[cgroups][unit]") {
  CHECK(JoinCgroupPath("", "") == std::string());
  CHECK(JoinCgroupPath("cubelet-test-x", "kubepods//pod1/") ==
        std::string("cubelet-test-x/kubepods/pod1"));
  CHECK(JoinCgroupPath("/a/", "/b") == std::string("a/b"));
  CHECK_FALSE(JoinCgroupPath("", "kubepods/../../etc"));
  CHECK_FALSE(JoinCgroupPath("..", "x"));
  CHECK_FALSE(JoinCgroupPath("", "./x"));
  auto e = JoinCgroupPath("", "a/..");
  REQUIRE_FALSE(e);
  CHECK(e.error().message.find("a/..") != std::string::npos);
}

TEST_CASE("errno text names the errno", "[cgroups][unit]") {
  CHECK(ErrnoText(EINVAL) == "EINVAL (Invalid argument)");
  base::Result<> e = SysFail("write cpu.shares=1 to cgroup '/x'", EBUSY);
  CHECK(e.error().code == EBUSY);
  CHECK(e.error().message == "write cpu.shares=1 to cgroup '/x': EBUSY (Device or resource busy)");
}
