// cgroup v1 driver on the real kernel (this machine: separate hierarchies under /sys/fs/cgroup).
// Each test works under its own testsupport::CgroupParent, which is the driver's root.
#include "cgroups/v1_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "cgroups/oom_watcher.h"
#include "cgroups/parse.h"
#include "cgroups/qos_tree.h"
#include "tests/cgroups/proc_util.h"
#include "tests/cgroups/test_child.h"
#include "tests/support/kernel_env.h"

using namespace cgroups;
using namespace cgtest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

int SleepForever() {
  for (;;) pause();
}

struct V1 {
  explicit V1(const std::string& name, DriverOptions opts = {}) : parent(name) {
    auto d = Detect(parent.path(), "/sys/fs/cgroup", opts);
    REQUIRE(d);
    REQUIRE((*d)->version() == Version::kV1);
    driver = std::move(*d);
    v1 = static_cast<V1Driver*>(driver.get());
  }
  std::string File(const std::string& ctrl, const std::string& path, const std::string& file) {
    return Trimmed(driver->ControllerPath(ctrl, path) + "/" + file);
  }
  testsupport::CgroupParent parent;
  DriverPtr driver;
  V1Driver* v1 = nullptr;
};

// "maj:min" of a real whole disk with a non-zero size, for blkio throttling.
std::optional<std::pair<int64_t, int64_t>> SomeDisk() {
  for (const auto& e : fs::directory_iterator("/sys/block")) {
    if (std::stoull("0" + Trimmed(e.path().string() + "/size")) == 0) continue;
    auto dev = Trimmed(e.path().string() + "/dev");
    auto colon = dev.find(':');
    if (colon == std::string::npos) continue;
    return std::make_pair(std::stoll(dev.substr(0, colon)), std::stoll(dev.substr(colon + 1)));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("v1: Detect finds the separate hierarchies", "[cgroups][v1][privileged]") {
  V1 t("v1-detect");
  const auto& h = t.v1->hierarchies();
  for (const char* c : {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                        "name=systemd"}) {
    INFO(c);
    CHECK(h.count(c) == 1);
  }
  CHECK(t.v1->ControllerPath("memory", "x") == "/sys/fs/cgroup/memory/" + t.parent.path() + "/x");
  CHECK(t.v1->ControllerPath("systemd", "") == "/sys/fs/cgroup/systemd/" + t.parent.path());
  CHECK(t.v1->ControllerPath("nope", "x").empty());
}

TEST_CASE("v1: Create makes the path in every hierarchy, cpuset filled in",
          "[cgroups][v1][privileged]") {
  V1 t("v1-create");
  REQUIRE(t.driver->Create("a/b"));
  for (const auto& m : t.v1->MountPoints()) {
    INFO(m);
    CHECK(fs::is_directory(m + "/" + t.parent.path() + "/a/b"));
  }
  std::string root_cpus = Trimmed("/sys/fs/cgroup/cpuset/cpuset.cpus");
  std::string root_mems = Trimmed("/sys/fs/cgroup/cpuset/cpuset.mems");
  REQUIRE_FALSE(root_cpus.empty());
  for (const char* p : {"", "a", "a/b"}) {
    INFO(p);
    CHECK(t.File("cpuset", p, "cpuset.cpus") == root_cpus);
    CHECK(t.File("cpuset", p, "cpuset.mems") == root_mems);
  }
  CHECK(t.File("memory", "a/b", "memory.use_hierarchy") == "1");
  CHECK(t.driver->Exists("a/b"));
  CHECK_FALSE(t.driver->Exists("a/c"));
  REQUIRE(t.driver->Create("a/b"));  // idempotent

  auto bad = t.driver->Create("../escape");
  REQUIRE_FALSE(bad);
  CHECK(bad.error().code == EINVAL);
}

TEST_CASE("v1: Create under an existing parent, and cpusets left empty by others",
          "[cgroups][v1][privileged]") {
  V1 t("v1-create-fast");
  std::string root_cpus = Trimmed("/sys/fs/cgroup/cpuset/cpuset.cpus");
  std::string root_mems = Trimmed("/sys/fs/cgroup/cpuset/cpuset.mems");
  REQUIRE(t.driver->Create("pod"));
  // The parent exists with values: the child is made directly and gets them.
  REQUIRE(t.driver->Create("pod/c1"));
  for (const auto& m : t.v1->MountPoints()) {
    INFO(m);
    CHECK(fs::is_directory(m + "/" + t.parent.path() + "/pod/c1"));
  }
  CHECK(t.File("cpuset", "pod/c1", "cpuset.cpus") == root_cpus);
  CHECK(t.File("cpuset", "pod/c1", "cpuset.mems") == root_mems);
  CHECK(t.File("memory", "pod/c1", "memory.use_hierarchy") == "1");
  // A child someone else made with empty cpuset values is filled in.
  std::string cs = t.driver->ControllerPath("cpuset", "pod");
  REQUIRE(mkdir((cs + "/c2").c_str(), 0755) == 0);
  REQUIRE(Trimmed(cs + "/c2/cpuset.cpus").empty());
  REQUIRE(t.driver->Create("pod/c2"));
  CHECK(t.File("cpuset", "pod/c2", "cpuset.cpus") == root_cpus);
  CHECK(t.File("cpuset", "pod/c2", "cpuset.mems") == root_mems);
  // A parent level someone else made with empty values: every level gets filled (the walk).
  std::string top = t.driver->ControllerPath("cpuset", "");
  REQUIRE(mkdir((top + "/other").c_str(), 0755) == 0);
  REQUIRE(Trimmed(top + "/other/cpuset.cpus").empty());
  REQUIRE(t.driver->Create("other/c"));
  for (const char* p : {"other", "other/c"}) {
    INFO(p);
    CHECK(t.File("cpuset", p, "cpuset.cpus") == root_cpus);
    CHECK(t.File("cpuset", p, "cpuset.mems") == root_mems);
  }
  CHECK(t.driver->Exists("other/c"));
  // And a process can join the new cgroups (an empty cpuset would refuse it with ENOSPC).
  for (const char* p : {"pod/c1", "pod/c2", "other/c"}) {
    INFO(p);
    TestChild child(SleepForever);
    CHECK(t.driver->AddProcess(p, child.pid()));
  }
}

TEST_CASE("v1: Apply writes each controller's files", "[cgroups][v1][privileged]") {
  V1 t("v1-apply");
  REQUIRE(t.driver->Create("pod"));
  Resources r;
  r.cpu_shares = 512;
  r.cpu_quota_us = 20000;
  r.cpu_period_us = 100000;
  r.memory_limit_bytes = 64 << 20;
  r.pids_limit = 10;
  r.blkio_weight = 500;
  r.cpuset_cpus = "0";
  auto disk = SomeDisk();
  if (disk) r.blkio_throttle.push_back({disk->first, disk->second, 1 << 20, 0, 0, 100});
  auto applied = t.driver->Apply("pod", r);
  INFO((applied ? "" : applied.error().message));
  REQUIRE(applied);

  CHECK(t.File("cpu", "pod", "cpu.shares") == "512");
  CHECK(t.File("cpu", "pod", "cpu.cfs_quota_us") == "20000");
  CHECK(t.File("cpu", "pod", "cpu.cfs_period_us") == "100000");
  CHECK(t.File("memory", "pod", "memory.limit_in_bytes") == "67108864");
  CHECK(t.File("pids", "pod", "pids.max") == "10");
  CHECK(t.File("cpuset", "pod", "cpuset.cpus") == "0");
  auto blkio = t.v1->Blkio("pod");
  REQUIRE(blkio);
  CHECK_FALSE(blkio->WeightFile().empty());
  CHECK(blkio->Weight().value() == 500u);
  if (disk) {
    std::string dev = std::to_string(disk->first) + ":" + std::to_string(disk->second);
    CHECK(blkio->Throttle("blkio.throttle.read_bps_device").value()[dev] == (1u << 20));
    CHECK(blkio->Throttle("blkio.throttle.write_iops_device").value()[dev] == 100u);
    CHECK(blkio->Throttle("blkio.throttle.write_bps_device").value().count(dev) == 0);  // 0 = none
  } else {
    WARN("no block device with a size: blkio throttling not tested");
  }
  // The typed readers agree with the files.
  CHECK(t.v1->Cpu("pod")->Shares().value() == 512u);
  CHECK(t.v1->Memory("pod")->Limit().value() == (64u << 20));
  CHECK(t.v1->Pids("pod")->Max().value() == 10);

  SECTION("unlimited values") {
    Resources u;
    u.cpu_quota_us = -1;
    u.memory_limit_bytes = -1;
    u.pids_limit = -1;
    REQUIRE(t.driver->Apply("pod", u));
    CHECK(t.File("cpu", "pod", "cpu.cfs_quota_us") == "-1");
    CHECK(t.v1->Memory("pod")->Limit().value() == 0u);  // the huge value reads as 0
    CHECK(t.File("pids", "pod", "pids.max") == "max");
  }
  SECTION("a value the kernel refuses: the error names file, value, cgroup and errno") {
    Resources bad;
    bad.cpu_quota_us = 500;  // below the kernel's 1 ms minimum
    auto e = t.driver->Apply("pod", bad);
    REQUIRE_FALSE(e);
    CHECK(e.error().code == EINVAL);
    CHECK(e.error().message == "write cpu.cfs_quota_us=500 to cgroup '/sys/fs/cgroup/cpu/" +
                                   t.parent.path() + "/pod': EINVAL (Invalid argument)");
  }
  SECTION("Apply on a cgroup that was never created") {
    auto e = t.driver->Apply("missing", r);
    REQUIRE_FALSE(e);
    CHECK(e.error().code == ENOENT);
    CHECK(e.error().message.find("/missing") != std::string::npos);
  }
}

TEST_CASE("v1: a process joins every hierarchy", "[cgroups][v1][privileged]") {
  V1 t("v1-join");
  REQUIRE(t.driver->Create("p"));
  TestChild child(SleepForever);
  REQUIRE(t.driver->AddProcess("p", child.pid()));
  child.Release();
  CHECK(t.driver->Procs("p").value() == std::vector<pid_t>{child.pid()});
  auto where = ParseProcCgroup(Slurp("/proc/" + std::to_string(child.pid()) + "/cgroup"));
  for (const auto& [ctrl, mount] : t.v1->hierarchies()) {
    INFO(ctrl);
    CHECK(where[ctrl] == "/" + t.parent.path() + "/p");
  }
  auto gone = t.driver->AddProcess("p", 999999999);
  REQUIRE_FALSE(gone);
  CHECK(gone.error().message.find("cgroup.procs=999999999") != std::string::npos);
}

TEST_CASE("v1: pids.max makes fork fail with EAGAIN", "[cgroups][v1][privileged]") {
  V1 t("v1-pids");
  REQUIRE(t.driver->Create("fork"));
  Resources r;
  r.pids_limit = 4;
  REQUIRE(t.driver->Apply("fork", r));
  // Forks until refused; exit code = successful forks when the refusal was EAGAIN.
  TestChild child([] {
    int ok = 0;
    for (int i = 0; i < 50; ++i) {
      pid_t p = fork();
      if (p == 0) SleepForever();
      if (p < 0) return errno == EAGAIN ? ok : 100 + errno;
      ++ok;
    }
    return 99;  // never refused
  });
  REQUIRE(t.driver->AddProcess("fork", child.pid()));
  child.Release();
  auto code = child.Wait();
  REQUIRE(code);
  CHECK(*code == 3);  // 4 = the child itself + 3 forks
  CHECK(Eventually([&] { return t.driver->GetStats("fork")->pids_current == 3; }));
  auto events = ParseFlatKeyed(Slurp(t.driver->ControllerPath("pids", "fork") + "/pids.events"));
  CHECK(Lookup(events, "max").value_or(0) >= 1);
  REQUIRE(t.driver->KillAll("fork"));
  CHECK(t.driver->Procs("fork")->empty());
}

TEST_CASE("v1: freeze puts tasks in D, thaw brings them back", "[cgroups][v1][privileged]") {
  V1 t("v1-freeze");
  REQUIRE(t.driver->Create("f"));
  TestChild child(TestChild::Exec({"/bin/busybox", "sleep", "1000"}));
  REQUIRE(t.driver->AddProcess("f", child.pid()));
  child.Release();
  REQUIRE(Eventually([&] { return Comm(child.pid()) == "busybox"; }));
  REQUIRE(t.driver->Freeze("f"));
  CHECK(t.File("freezer", "f", "freezer.state") == "FROZEN");
  char frozen = ProcState(child.pid());
  CHECK((frozen == 'D' || frozen == 'T'));
  REQUIRE(t.driver->Freeze("f"));  // again: no-op
  REQUIRE(t.driver->Thaw("f"));
  CHECK(t.File("freezer", "f", "freezer.state") == "THAWED");
  CHECK(Eventually([&] { return ProcState(child.pid()) == 'S'; }));
}

TEST_CASE("v1: a thaw that cannot complete times out with a clear error",
          "[cgroups][v1][privileged]") {
  DriverOptions quick;
  quick.freeze_timeout = 200ms;
  V1 t("v1-thaw-timeout", quick);
  REQUIRE(t.driver->Create("f/sub"));
  REQUIRE(t.driver->Freeze("f"));
  auto e = t.driver->Thaw("f/sub");  // its parent stays frozen
  REQUIRE_FALSE(e);
  CHECK(e.error().code == ETIMEDOUT);
  CHECK(e.error().message == "thaw cgroup '/sys/fs/cgroup/freezer/" + t.parent.path() +
                                 "/f/sub': freezer.state is still FROZEN after 200 ms (a parent "
                                 "cgroup is frozen)");
  REQUIRE(t.driver->Thaw("f"));
  REQUIRE(t.driver->Thaw("f/sub"));
}

TEST_CASE("v1: KillAll empties nested cgroups, frozen or not", "[cgroups][v1][privileged]") {
  V1 t("v1-kill");
  REQUIRE(t.driver->Create("k/sub"));
  TestChild a(SleepForever), b(SleepForever);
  REQUIRE(t.driver->AddProcess("k", a.pid()));
  REQUIRE(t.driver->AddProcess("k/sub", b.pid()));
  a.Release();
  b.Release();
  bool freeze_first = GENERATE(false, true);
  INFO("frozen before KillAll: " << freeze_first);
  if (freeze_first) REQUIRE(t.driver->Freeze("k"));
  REQUIRE(t.driver->KillAll("k"));
  CHECK(a.Wait(5s) == 128 + SIGKILL);
  CHECK(b.Wait(5s) == 128 + SIGKILL);
  CHECK(t.driver->Procs("k")->empty());
  CHECK(t.driver->Procs("k/sub")->empty());
  CHECK(t.File("freezer", "k", "freezer.state") == "THAWED");
  auto root = t.driver->KillAll("");
  // The driver's root is the test parent here, not a hierarchy root, so this is allowed.
  CHECK(root);
  CHECK(t.driver->KillAll("never-created"));  // nothing to kill
}

TEST_CASE("v1: memory limit OOM-kills and OomKillCount counts it", "[cgroups][v1][privileged]") {
  V1 t("v1-oom");
  REQUIRE(t.driver->Create("oom"));
  Resources r;
  r.memory_limit_bytes = 32 << 20;
  REQUIRE(t.driver->Apply("oom", r));
  REQUIRE(t.driver->OomKillCount("oom").value() == 0u);
  auto watcher = OomWatcher::Open(*t.driver, "oom");
  REQUIRE(watcher);
  pollfd idle{watcher->fd(), POLLIN, 0};
  CHECK(poll(&idle, 1, 0) == 0);

  TestChild child([] {
    const size_t size = 256 << 20;
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 2;
    for (size_t off = 0; off < size; off += 4096) static_cast<char*>(p)[off] = 1;
    return 0;  // not killed: the limit did not hold
  });
  REQUIRE(t.driver->AddProcess("oom", child.pid()));
  child.Release();
  auto code = child.Wait(30s);
  REQUIRE(code);
  CHECK(*code == 128 + SIGKILL);
  CHECK(t.driver->OomKillCount("oom").value() == 1u);
  CHECK(t.driver->GetStats("oom")->oom_kill_count == 1u);
  CHECK(t.driver->OomKillCount("").value() == 1u);  // the parent counts its subtree
  CHECK(Lookup(ParseFlatKeyed(t.File("memory", "oom", "memory.oom_control")), "oom_kill") == 1u);

  pollfd ready{watcher->fd(), POLLIN, 0};
  CHECK(poll(&ready, 1, 2000) == 1);
  auto kills = watcher->Check();
  REQUIRE(kills);
  CHECK(*kills == 1u);
  auto again = watcher->Check();
  REQUIRE(again);
  CHECK(*again == 0u);
}

TEST_CASE("v1: devices deny-all + /dev/null only", "[cgroups][v1][privileged]") {
  V1 t("v1-devices");
  REQUIRE(t.driver->Create("dev"));
  Resources r;
  r.devices = std::vector<DeviceRule>{{true, 'c', 1, 3, "rwm"}};
  REQUIRE(t.driver->Apply("dev", r));
  CHECK(t.File("devices", "dev", "devices.list") == "c 1:3 rwm");

  auto probe = [] {
    int zero = open("/dev/zero", O_RDONLY | O_CLOEXEC);
    int zero_errno = errno;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (zero >= 0) return 1;
    if (zero_errno != EPERM) return 2;
    if (null < 0) return 3;
    return 0;
  };
  TestChild child(probe);
  REQUIRE(t.driver->AddProcess("dev", child.pid()));
  child.Release();
  CHECK(child.Wait() == 0);

  // A child cgroup cannot allow what its parent denies.
  REQUIRE(t.driver->Create("dev/sub"));
  Resources more;
  more.devices = std::vector<DeviceRule>{{true, 'c', 1, 5, "rwm"}};
  auto e = t.driver->Apply("dev/sub", more);
  REQUIRE_FALSE(e);
  CHECK(e.error().code == EPERM);
  CHECK(e.error().message.find("parent cgroup does not allow") != std::string::npos);
  CHECK(e.error().message.find("c 1:5 rwm") != std::string::npos);

  // With children the default cannot change, but the exceptions can.
  Resources all;
  all.devices = std::vector<DeviceRule>{{true, 'a', -1, -1, "rwm"}};
  auto e2 = t.driver->Apply("dev", all);
  REQUIRE_FALSE(e2);
  CHECK(e2.error().message.find("cannot change once it has children") != std::string::npos);
  REQUIRE(t.driver->Apply("dev", more));
  CHECK(t.File("devices", "dev", "devices.list") == "c 1:5 rwm");
}

TEST_CASE("v1: GetStats of a running process", "[cgroups][v1][privileged]") {
  V1 t("v1-stats");
  REQUIRE(t.driver->Create("s"));
  Resources r;
  r.memory_limit_bytes = 128 << 20;
  REQUIRE(t.driver->Apply("s", r));
  // The child says when its 16 MiB are touched: on this VM a first touch of guest memory can cost
  // more CPU than any fixed budget, so CPU time is no sign that the pages are in.
  int touched[2];
  REQUIRE(pipe2(touched, O_CLOEXEC) == 0);
  TestChild child([w = touched[1]]() -> int {
    const size_t size = 16 << 20;
    auto* p = static_cast<char*>(
        mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    for (size_t off = 0; off < size; off += 4096) p[off] = 1;
    if (write(w, "t", 1) != 1) return 1;
    volatile uint64_t x = 0;
    for (;;) x = x + 1;  // burn CPU until killed
  });
  close(touched[1]);
  REQUIRE(t.driver->AddProcess("s", child.pid()));
  child.Release();
  pollfd pfd{touched[0], POLLIN, 0};
  REQUIRE(poll(&pfd, 1, 30'000) == 1);
  char c = 0;
  REQUIRE(read(touched[0], &c, 1) == 1);
  close(touched[0]);
  // The machine is shared: wait for 100 ms of CPU rather than for a wall-clock time.
  CHECK(Eventually([&] { return t.driver->GetStats("s")->cpu_usage_ns > 100'000'000u; }, 10s));
  auto s = t.driver->GetStats("s");
  REQUIRE(s);
  CHECK(s->memory_usage_bytes >= (16u << 20));
  // memory.stat is flushed from per-CPU counters lazily (up to 64 pages per CPU behind).
  CHECK(s->memory_rss_bytes >= (12u << 20));
  CHECK(s->memory_working_set_bytes <= s->memory_usage_bytes);
  CHECK(s->memory_working_set_bytes >= (12u << 20));
  CHECK(s->memory_limit_bytes == (128u << 20));
  CHECK(s->pids_current == 1u);
  CHECK(s->oom_kill_count == 0u);
  REQUIRE(t.driver->KillAll("s"));
}

TEST_CASE("v1: Remove leaves nothing in any hierarchy", "[cgroups][v1][privileged]") {
  DriverOptions quick;
  quick.remove_busy_timeout = 200ms;
  V1 t("v1-remove", quick);
  REQUIRE(t.driver->Create("r/x/y"));
  REQUIRE(t.driver->Create("r/z"));
  REQUIRE(t.driver->Remove("r"));
  for (const auto& m : t.v1->MountPoints()) {
    INFO(m);
    CHECK_FALSE(fs::exists(m + "/" + t.parent.path() + "/r"));
    CHECK(fs::exists(m + "/" + t.parent.path()));
  }
  REQUIRE(t.driver->Remove("r"));  // missing is fine

  REQUIRE(t.driver->Create("busy"));
  TestChild child(SleepForever);
  REQUIRE(t.driver->AddProcess("busy", child.pid()));
  child.Release();
  auto start = std::chrono::steady_clock::now();
  auto e = t.driver->Remove("busy");
  REQUIRE_FALSE(e);
  CHECK(std::chrono::steady_clock::now() - start < 3s);  // bounded
  CHECK(e.error().code == EBUSY);
  CHECK(e.error().message.find("still has 1 process(es), e.g. pid " +
                               std::to_string(child.pid())) != std::string::npos);
  REQUIRE(t.driver->KillAll("busy"));
  REQUIRE(t.driver->Remove("busy"));

  REQUIRE(t.driver->Remove(""));  // the driver's root itself (the test parent)
  for (const auto& m : t.v1->MountPoints()) CHECK_FALSE(fs::exists(m + "/" + t.parent.path()));
}

TEST_CASE("v1: QosTree on the real hierarchy", "[cgroups][v1][privileged]") {
  V1 t("v1-qos");
  QosTree qos(*t.driver);
  REQUIRE(qos.Ensure());
  for (const auto& m : t.v1->MountPoints()) {
    CHECK(fs::is_directory(m + "/" + t.parent.path() + "/kubepods/burstable"));
    CHECK(fs::is_directory(m + "/" + t.parent.path() + "/kubepods/besteffort"));
  }
  CHECK(t.File("cpu", "kubepods/besteffort", "cpu.shares") == "2");
  std::string pod = qos.PodPath(QosClass::kBurstable, "1234-abcd");
  REQUIRE(t.driver->Create(pod));
  CHECK(fs::is_directory("/sys/fs/cgroup/memory/" + t.parent.path() +
                         "/kubepods/burstable/pod1234-abcd"));
}
