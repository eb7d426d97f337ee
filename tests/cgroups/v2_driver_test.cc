// cgroup v2 driver on the real kernel. This machine is a v1 hybrid: the cgroup2 tree at
// /sys/fs/cgroup/unified has no cpu/memory/io/pids controllers (they are bound to v1), so what is
// tested here is what v2 does without them: create, processes, cgroup.freeze, cgroup.kill and the
// freeze+kill fallback, BPF device programs, cpu.stat, remove, and the errors for controllers that
// are not enabled. Resource files are covered by fake_tree_test.cc. Where a controller IS
// available (another machine), the same tests also check its files.
#include "cgroups/v2_driver.h"

#include <fcntl.h>
#include <sys/vfs.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>

#include "cgroups/bpf_device_filter.h"
#include "cgroups/parse.h"
#include "tests/cgroups/proc_util.h"
#include "tests/cgroups/test_child.h"
#include "tests/support/kernel_env.h"

using namespace cgroups;
using namespace cgtest;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr const char* kUnified = "/sys/fs/cgroup/unified";

int SleepForever() {
  for (;;) pause();
}

int Spin() {
  volatile uint64_t x = 0;
  for (;;) x = x + 1;
}

bool HaveUnified() {
  struct statfs fs;
  return statfs(kUnified, &fs) == 0 && fs.f_type == 0x63677270;
}

struct V2 {
  explicit V2(const std::string& name) : parent(name) {
    auto d = Detect(parent.path(), kUnified);
    REQUIRE(d);
    REQUIRE((*d)->version() == Version::kV2);
    driver = std::move(*d);
    v2 = static_cast<V2Driver*>(driver.get());
  }
  std::string Dir(const std::string& path) { return driver->ControllerPath("", path); }
  std::string File(const std::string& path, const std::string& file) {
    return Trimmed(Dir(path) + "/" + file);
  }
  bool Available(const std::string& path, const std::string& ctrl) {
    auto list = ParseControllerList(File(path, "cgroup.controllers"));
    return std::find(list.begin(), list.end(), ctrl) != list.end();
  }
  testsupport::CgroupParent parent;
  DriverPtr driver;
  V2Driver* v2 = nullptr;
};

}  // namespace

#define REQUIRE_UNIFIED()                                        \
  if (!HaveUnified()) {                                          \
    WARN("no cgroup2 mount at /sys/fs/cgroup/unified; skipped"); \
    return;                                                      \
  }

TEST_CASE("v2: create, processes, /proc/PID/cgroup", "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-create");
  std::string before = Trimmed(std::string(kUnified) + "/cgroup.subtree_control");
  REQUIRE(t.driver->Create("a/b"));
  CHECK(fs::is_directory(t.Dir("a/b")));
  CHECK(t.driver->Exists("a/b"));
  CHECK_FALSE(t.driver->Exists("a/c"));
  // The host's root cgroup is above the driver's root: never written.
  CHECK(Trimmed(std::string(kUnified) + "/cgroup.subtree_control") == before);
  // Below it, whatever is available got enabled (nothing on this machine).
  for (const auto& c : ParseControllerList(t.File("", "cgroup.controllers"))) {
    INFO(c);
    CHECK(t.File("", "cgroup.subtree_control").find(c) != std::string::npos);
  }
  CHECK(t.File("a/b", "cgroup.subtree_control").empty());  // the leaf stays a leaf

  TestChild child(SleepForever);
  REQUIRE(t.driver->AddProcess("a/b", child.pid()));
  child.Release();
  CHECK(t.driver->Procs("a/b").value() == std::vector<pid_t>{child.pid()});
  CHECK(t.driver->Procs("a")->empty());
  auto where = ParseProcCgroup(Slurp("/proc/" + std::to_string(child.pid()) + "/cgroup"));
  CHECK(where[""] == "/" + t.parent.path() + "/a/b");
}

TEST_CASE("v2: resources, or a clear error when the controller is not enabled",
          "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-apply");
  REQUIRE(t.driver->Create("pod"));
  Resources cpu;
  cpu.cpu_shares = 1024;
  cpu.cpu_quota_us = 20000;
  auto r = t.driver->Apply("pod", cpu);
  if (t.Available("pod", "cpu")) {
    REQUIRE(r);
    CHECK(t.File("pod", "cpu.weight") == "39");
    CHECK(t.File("pod", "cpu.max") == "20000 100000");
  } else {
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("cpu.weight=39") != std::string::npos);
    CHECK(r.error().message.find("the cpu controller is not enabled for this cgroup") !=
          std::string::npos);
  }
  Resources mem;
  mem.memory_limit_bytes = 64 << 20;
  auto m = t.driver->Apply("pod", mem);
  if (t.Available("pod", "memory")) {
    REQUIRE(m);
    CHECK(t.File("pod", "memory.max") == "67108864");
  } else {
    REQUIRE_FALSE(m);
    CHECK(m.error().message.find("memory controller is not enabled") != std::string::npos);
    auto oom = t.driver->OomKillCount("pod");
    REQUIRE_FALSE(oom);
    CHECK(oom.error().code == ENOTSUP);
  }
}

TEST_CASE("v2: freeze stops a busy process, thaw resumes it", "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-freeze");
  REQUIRE(t.driver->Create("f"));
  TestChild child(Spin);
  REQUIRE(t.driver->AddProcess("f", child.pid()));
  child.Release();
  REQUIRE(Eventually([&] { return CpuTicks(child.pid()) > 5; }));
  REQUIRE(t.driver->Freeze("f"));
  CHECK(Lookup(ParseFlatKeyed(t.File("f", "cgroup.events")), "frozen") == 1u);
  // v2 frozen tasks show as S (they sit in a signal-delivery trap), so progress is the proof.
  uint64_t at_freeze = CpuTicks(child.pid());
  std::this_thread::sleep_for(300ms);
  CHECK(CpuTicks(child.pid()) <= at_freeze + 1);
  REQUIRE(t.driver->Thaw("f"));
  CHECK(Lookup(ParseFlatKeyed(t.File("f", "cgroup.events")), "frozen") == 0u);
  CHECK(Eventually([&] { return CpuTicks(child.pid()) > at_freeze + 5; }));
}

TEST_CASE("v2: a thaw that cannot complete times out with a clear error",
          "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-thaw-timeout");
  DriverOptions quick;
  quick.freeze_timeout = 200ms;
  V2Driver d(kUnified, t.parent.path(), quick);
  REQUIRE(d.Create("f/sub"));
  REQUIRE(d.Freeze("f"));
  auto e = d.Thaw("f/sub");  // its parent stays frozen
  REQUIRE_FALSE(e);
  CHECK(e.error().code == ETIMEDOUT);
  CHECK(e.error().message ==
        "thaw cgroup '" + t.Dir("f/sub") + "': cgroup.events still has 'frozen 1' after 200 ms");
  REQUIRE(d.Thaw("f"));
  REQUIRE(d.Thaw("f/sub"));
}

TEST_CASE("v2: KillAll empties nested cgroups", "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-kill");
  bool use_kill_file = GENERATE(true, false);
  bool freeze_first = GENERATE(false, true);
  INFO("cgroup.kill: " << use_kill_file << ", frozen first: " << freeze_first);
  t.v2->set_use_cgroup_kill(use_kill_file);
  REQUIRE(t.driver->Create("k/sub"));
  TestChild a(SleepForever), b(Spin);
  REQUIRE(t.driver->AddProcess("k", a.pid()));
  REQUIRE(t.driver->AddProcess("k/sub", b.pid()));
  a.Release();
  b.Release();
  if (freeze_first) REQUIRE(t.driver->Freeze("k"));
  auto killed = t.driver->KillAll("k");
  INFO((killed ? "" : killed.error().message));
  REQUIRE(killed);
  CHECK(a.Wait(5s) == 128 + SIGKILL);
  CHECK(b.Wait(5s) == 128 + SIGKILL);
  CHECK(t.driver->Procs("k")->empty());
  CHECK(t.driver->Procs("k/sub")->empty());
  CHECK(Lookup(ParseFlatKeyed(t.File("k", "cgroup.events")), "populated") == 0u);
  CHECK(t.driver->KillAll("never-created"));  // nothing to kill
}

TEST_CASE("v2: device rules through a BPF program", "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-devices");
  REQUIRE(t.driver->Create("dev"));
  auto probe = [](const char* path, int flags) {
    return [path, flags] {
      int fd = open(path, flags | O_CLOEXEC);
      if (fd >= 0) return 0;
      return errno == EPERM ? 1 : 2;
    };
  };
  auto run_in = [&](std::function<int()> body) {
    TestChild child(std::move(body));
    REQUIRE(t.driver->AddProcess("dev", child.pid()));
    child.Release();
    auto code = child.Wait();
    REQUIRE(code);
    return *code;
  };
  auto programs = [&] {
    auto dir = t.v2->Open("dev");
    REQUIRE(dir);
    auto ids = QueryDeviceFilters(dir->fd(), dir->path());
    REQUIRE(ids);
    return ids->size();
  };
  CHECK(programs() == 0u);

  Resources null_only;
  null_only.devices = std::vector<DeviceRule>{{true, 'c', 1, 3, "rwm"}};
  auto applied = t.driver->Apply("dev", null_only);
  INFO((applied ? "" : applied.error().message));
  REQUIRE(applied);
  CHECK(programs() == 1u);
  CHECK(run_in(probe("/dev/zero", O_RDONLY)) == 1);  // EPERM
  CHECK(run_in(probe("/dev/null", O_RDWR)) == 0);

  // Replacing the list replaces the program (the old one is detached).
  Resources zero_read;
  zero_read.devices = std::vector<DeviceRule>{{true, 'c', 1, 5, "r"}};
  REQUIRE(t.driver->Apply("dev", zero_read));
  CHECK(programs() == 1u);
  CHECK(run_in(probe("/dev/zero", O_RDONLY)) == 0);
  CHECK(run_in(probe("/dev/zero", O_RDWR)) == 1);  // write not granted
  CHECK(run_in(probe("/dev/null", O_RDWR)) == 1);

  // Allow-all detaches.
  Resources all;
  all.devices = std::vector<DeviceRule>{{true, 'a', -1, -1, "rwm"}};
  REQUIRE(t.driver->Apply("dev", all));
  CHECK(programs() == 0u);
  CHECK(run_in(probe("/dev/null", O_RDWR)) == 0);
  CHECK(run_in(probe("/dev/zero", O_RDONLY)) == 0);
}

TEST_CASE("v2: stats from cpu.stat; Remove leaves nothing", "[cgroups][v2][privileged]") {
  REQUIRE_UNIFIED();
  V2 t("v2-stats");
  REQUIRE(t.driver->Create("s/x"));
  TestChild child(Spin);
  REQUIRE(t.driver->AddProcess("s/x", child.pid()));
  child.Release();
  CHECK(Eventually([&] { return t.driver->GetStats("s/x")->cpu_usage_ns > 50'000'000u; }, 10s));
  auto parent_stats = t.driver->GetStats("s");  // hierarchical
  REQUIRE(parent_stats);
  CHECK(parent_stats->cpu_usage_ns > 50'000'000u);

  auto busy = t.driver->Remove("s");
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == EBUSY);
  REQUIRE(t.driver->KillAll("s"));
  REQUIRE(t.driver->Remove("s"));
  CHECK_FALSE(fs::exists(t.Dir("s")));
  REQUIRE(t.driver->Remove("s"));
  REQUIRE(t.driver->Remove(""));
  CHECK_FALSE(fs::exists(t.Dir("")));
}
