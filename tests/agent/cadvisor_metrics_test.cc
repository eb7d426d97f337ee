// /metrics/cadvisor: cAdvisor's per-container families, names, labels and units.
#include "agent/cadvisor_metrics.h"

#include <catch2/catch.hpp>

TEST_CASE("cadvisor metrics: cAdvisor's families and labels for each running container") {
  agent::CadvisorContainer c;
  c.pod = "web-1";
  c.ns = "default";
  c.container = "httpd";
  c.id = "/kubepods/besteffort/pod1234/abcd";
  c.name = "abcd";
  c.image = "busybox:1.36";
  c.started_at_unix_ns = 1700000000123000000;
  c.stats.cpu.timestamp = 1700000005000000000;
  c.stats.cpu.usage_core_nano_seconds = 1500000000;  // 1.5 s
  c.stats.memory.timestamp = 1700000005000000000;
  c.stats.memory.working_set_bytes = 4096;
  c.stats.memory.rss_bytes = 2048;
  c.stats.memory.usage_bytes = 8192;
  c.stats.pids = 3;
  std::string text = agent::CadvisorMetricsText({c});
  INFO(text);
  const std::string l = R"(container="httpd",id="/kubepods/besteffort/pod1234/abcd",image="busybox:1.36",name="abcd",namespace="default",pod="web-1")";
  CHECK(text.find("# TYPE container_cpu_usage_seconds_total counter\n") != std::string::npos);
  CHECK(text.find(R"(container_cpu_usage_seconds_total{container="httpd",cpu="total",id="/kubepods/besteffort/pod1234/abcd",image="busybox:1.36",name="abcd",namespace="default",pod="web-1"} 1.5 1700000005000)") != std::string::npos);
  CHECK(text.find("container_memory_working_set_bytes{" + l + "} 4096 1700000005000\n") != std::string::npos);
  CHECK(text.find("container_memory_rss{" + l + "} 2048 1700000005000\n") != std::string::npos);
  CHECK(text.find("container_memory_usage_bytes{" + l + "} 8192 1700000005000\n") != std::string::npos);
  CHECK(text.find("container_processes{" + l + "} 3 1700000005000\n") != std::string::npos);
  CHECK(text.find("container_start_time_seconds{" + l + "} 1700000000.123 1700000005000\n") != std::string::npos);
  CHECK(text.find("# TYPE container_memory_working_set_bytes gauge\n") != std::string::npos);
  // A pod's cgroup: container, image and name empty, no start time.
  agent::CadvisorContainer pod;
  pod.pod = "web-1";
  pod.ns = "default";
  pod.id = "/kubepods/besteffort/pod1234";
  pod.stats.memory.working_set_bytes = 5000;
  std::string both = agent::CadvisorMetricsText({c, pod});
  CHECK(both.find(R"(container_memory_working_set_bytes{container="",id="/kubepods/besteffort/pod1234",image="",name="",namespace="default",pod="web-1"} 5000)") != std::string::npos);
  CHECK(both.find(R"(container_start_time_seconds{container="",)") == std::string::npos);
  // Label values are escaped; no containers: only the HELP/TYPE lines.
  c.pod = "we\"ird";
  CHECK(agent::CadvisorMetricsText({c}).find(R"(pod="we\"ird")") != std::string::npos);
  CHECK(agent::CadvisorMetricsText({}).find("{") == std::string::npos);
}

TEST_CASE("cadvisor metrics: the cgroup path from /proc/<pid>/cgroup, v1 memory or v2 unified") {
  const char v1[] =
      "12:pids:/kubepods/pod1/c1\n"
      "8:memory:/kubepods/pod1/c1\n"
      "4:cpu,cpuacct:/kubepods/pod1/c1\n"
      "1:name=systemd:/kubepods/pod1/c1\n"
      "0::/system.slice/cubelet.service\n";  // a hybrid host's small unified tree
  CHECK(agent::CgroupPathFromProcText(v1) == "/kubepods/pod1/c1");
  CHECK(agent::CgroupPathFromProcText("0::/kubepods.slice/pod2/c2\n") == "/kubepods.slice/pod2/c2");
  CHECK(agent::CgroupPathFromProcText("").empty());
  CHECK(agent::CgroupPathFromProcText("garbage\n").empty());
}
