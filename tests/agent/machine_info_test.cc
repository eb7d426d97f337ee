// MachineInfoReader on a fake /proc, /sys and /etc tree, and once on the real host.
#include "agent/machine_info.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>

#include "base/file.h"

namespace {

// A temporary directory removed at the end of the test.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/cubelet-machine-info-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { (void)base::RemoveAll(path); }
  void Write(const std::string& rel, const std::string& data) const {
    std::string full = path + rel;
    REQUIRE(base::MkdirAll(full.substr(0, full.find_last_of('/'))));
    REQUIRE(base::WriteFile(full, data));
  }
};

}  // namespace

TEST_CASE("machine info from a fake root") {
  TempDir root;
  root.Write("/proc/cpuinfo",
             "processor\t: 0\nvendor_id\t: GenuineIntel\n\nprocessor\t: 1\nvendor_id\t: x\n\n"
             "processor\t: 2\n");
  root.Write("/proc/meminfo",
             "MemTotal:       16318064 kB\nMemFree:         1000000 kB\n"
             "MemAvailable:    8123456 kB\n");
  root.Write("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "4\n");
  root.Write("/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages", "0\n");
  root.Write("/etc/machine-id", "5f3c0a0d1b2e4c6f8a9b0c1d2e3f4a5b\n");
  root.Write("/proc/sys/kernel/random/boot_id", "0b1a2c3d-4e5f-6071-8293-a4b5c6d7e8f9\n");
  root.Write("/proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
  root.Write("/etc/os-release",
             "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"
             "ID=debian\n");
  root.Write("/proc/loadavg", "0.12 0.18 0.16 1/92 9428\n");
  root.Write("/proc/sys/kernel/pid_max", "4194304\n");
  root.Write("/proc/sys/kernel/threads-max", "192729\n");

  agent::MachineInfoReader::Options o;
  o.root = root.path;
  o.fs_path = root.path + "/var/lib/cubelet/not/created/yet";  // nearest ancestor is used
  o.allow_syscalls = false;
  agent::MachineInfoReader reader(o);
  auto info = reader.Info();
  REQUIRE(info);
  CHECK(info->cpu_cores == 3);
  CHECK(info->memory_bytes == int64_t{16318064} * 1024);
  CHECK(info->hugepages ==
        std::map<std::string, int64_t>{{"hugepages-1Gi", 0}, {"hugepages-2Mi", 4 * 2048 * 1024}});
  CHECK(info->machine_id == "5f3c0a0d1b2e4c6f8a9b0c1d2e3f4a5b");
  CHECK(info->system_uuid == info->machine_id);  // no DMI product_uuid: falls back
  CHECK(info->boot_id == "0b1a2c3d-4e5f-6071-8293-a4b5c6d7e8f9");
  CHECK(info->kernel_version == "6.1.0-18-amd64");
  CHECK(info->os_image == "Debian GNU/Linux 12 (bookworm)");
  CHECK(info->operating_system == "linux");
  CHECK(info->architecture == agent::BinaryArch());
  CHECK(info->ephemeral_storage_bytes > 0);

  root.Write("/sys/class/dmi/id/product_uuid", "4c4c4544-0042-3510-8052-b3c04f4e3332\n");
  CHECK(reader.Info()->system_uuid == "4c4c4544-0042-3510-8052-b3c04f4e3332");

  auto u = reader.Usage();
  CHECK(u.memory_available_bytes == int64_t{8123456} * 1024);
  CHECK(u.pids_used == 92);
  CHECK(u.pid_max == 192729);  // min(pid_max, threads-max)
  CHECK(u.fs_capacity_bytes == info->ephemeral_storage_bytes);
  CHECK(u.fs_available_bytes >= 0);
  CHECK(u.fs_available_bytes <= u.fs_capacity_bytes);
}

TEST_CASE("machine info errors name what is missing") {
  TempDir root;
  root.Write("/proc/cpuinfo", "processor\t: 0\n");
  agent::MachineInfoReader::Options o;
  o.root = root.path;
  o.fs_path = root.path;
  o.allow_syscalls = false;
  auto info = agent::MachineInfoReader(o).Info();
  REQUIRE_FALSE(info);
  CHECK(info.error().message.find("memory capacity") != std::string::npos);
  CHECK(info.error().message.find("/proc/meminfo") != std::string::npos);
  // No readings: all unknown, never an exception.
  auto u = agent::MachineInfoReader(o).Usage();
  CHECK(u.memory_available_bytes == -1);
  CHECK(u.pid_max == -1);
}

TEST_CASE("parsers") {
  CHECK(agent::ParseOsReleasePrettyName("A=b\nPRETTY_NAME='Alpine \\\"x\\\" Linux'\n") ==
        "Alpine \"x\" Linux");
  CHECK(agent::ParseOsReleasePrettyName("PRETTY_NAME=Plain\n") == "Plain");
  CHECK(agent::ParseOsReleasePrettyName("NAME=x\n") == "");
  CHECK(agent::ParseMeminfoBytes("MemTotal:  10 kB\nMemAvailable: 5 kB\n", "MemAvailable") == 5120);
  CHECK(agent::ParseMeminfoBytes("MemTotal:  10 kB\n", "MemAvailable") == -1);
  CHECK(agent::KubeletVersion() == "v1.32.0+cubelet." + agent::CubeletVersion());
  CHECK(agent::ContainerRuntimeVersion() == "cubelet://" + agent::CubeletVersion());
}

TEST_CASE("machine info of this host") {
  agent::MachineInfoReader::Options o;
  o.fs_path = "/";
  auto info = agent::MachineInfoReader(o).Info();
  REQUIRE(info);
  CHECK(info->cpu_cores >= 1);
  CHECK(info->memory_bytes > 64 * 1024 * 1024);
  CHECK(info->ephemeral_storage_bytes > 0);
  CHECK_FALSE(info->kernel_version.empty());
  CHECK_FALSE(info->boot_id.empty());
  auto u = agent::MachineInfoReader(o).Usage();
  CHECK(u.memory_available_bytes > 0);
  CHECK(u.pids_used > 0);
  CHECK(u.pid_max > 0);
}

TEST_CASE("node IP detection") {
  auto literal = agent::DetectNodeIP("10.1.2.3");
  REQUIRE(literal);
  CHECK(*literal == "10.1.2.3");
  auto v6 = agent::DetectNodeIP("fd00::5");
  REQUIRE(v6);
  CHECK(*v6 == "fd00::5");
  // Whatever this host has, the answer is never a loopback address.
  auto detected = agent::DetectNodeIP("");
  if (detected) {
    CHECK(detected->rfind("127.", 0) != 0);
    CHECK(*detected != "::1");
  }
}

TEST_CASE("node usage from /proc/stat and /proc/meminfo (cAdvisor's root container)") {
  std::string stat =
      "cpu  1000 20 300 50000 400 5 6 7 0 0\ncpu0 500 10 150 25000 200 2 3 3 0 0\nintr 1 2 3\n";
  std::string meminfo =
      "MemTotal:       16000000 kB\nMemFree:         6000000 kB\nMemAvailable:   12000000 kB\n"
      "Inactive(file):  3000000 kB\n";
  auto u = agent::ParseNodeUsage(stat, meminfo, 100);
  REQUIRE(u);
  // busy = user+nice+system+irq+softirq+steal = 1000+20+300+5+6+7 = 1338 ticks of 10 ms.
  CHECK(u->cpu_usage_ns == 13'380'000'000ULL);
  CHECK(u->memory_usage_bytes == 10'000'000ULL * 1024);
  CHECK(u->memory_working_set_bytes == 7'000'000ULL * 1024);
  CHECK(u->memory_available_bytes == 12'000'000ULL * 1024);
  CHECK_FALSE(agent::ParseNodeUsage("intr 1\n", meminfo, 100));
  CHECK_FALSE(agent::ParseNodeUsage(stat, "MemAvailable: 1 kB\n", 100));
  auto real = agent::ReadNodeUsage();
  REQUIRE(real);
  CHECK(real->cpu_usage_ns > 0);
  CHECK(real->memory_working_set_bytes > 0);
  CHECK(real->memory_working_set_bytes <= real->memory_usage_bytes);
}
