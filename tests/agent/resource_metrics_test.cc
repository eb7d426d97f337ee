// /metrics/resource from a stats summary: metric names, labels, units and timestamps as the
// kubelet's resource metrics collector writes them (what metrics-server parses).
#include "agent/resource_metrics.h"

#include <catch2/catch.hpp>

TEST_CASE("resource metrics: node, pod and container samples with their times") {
  std::string summary = R"({
    "node": {"nodeName": "node-a",
             "cpu": {"time": "2026-11-24T10:00:00Z", "usageCoreNanoSeconds": 123500000000},
             "memory": {"time": "2026-11-24T10:00:00Z", "workingSetBytes": 1048576000}},
    "pods": [{"podRef": {"name": "web-1", "namespace": "default", "uid": "u1"},
              "cpu": {"time": "2026-11-24T10:00:01Z", "usageCoreNanoSeconds": 2500000000},
              "memory": {"time": "2026-11-24T10:00:01Z", "workingSetBytes": 4096},
              "containers": [{"name": "httpd", "startTime": "2026-11-24T09:00:00Z",
                              "cpu": {"time": "2026-11-24T10:00:01.5Z", "usageCoreNanoSeconds": 2500000000},
                              "memory": {"time": "2026-11-24T10:00:01.5Z", "workingSetBytes": 4096}}]}]})";
  std::string m = agent::ResourceMetricsText(summary);
  INFO(m);
  // 2026-11-24T10:00:00Z = 1795514400 s.
  CHECK(m.find("# TYPE node_cpu_usage_seconds_total counter\n"
               "node_cpu_usage_seconds_total 123.5 1795514400000\n") != std::string::npos);
  CHECK(m.find("node_memory_working_set_bytes 1048576000 1795514400000\n") != std::string::npos);
  CHECK(m.find("pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"web-1\"} 2.5 1795514401000\n") !=
        std::string::npos);
  CHECK(m.find("pod_memory_working_set_bytes{namespace=\"default\",pod=\"web-1\"} 4096 1795514401000\n") !=
        std::string::npos);
  CHECK(m.find("container_cpu_usage_seconds_total{container=\"httpd\",namespace=\"default\",pod=\"web-1\"} "
               "2.5 1795514401500\n") != std::string::npos);
  CHECK(m.find("container_memory_working_set_bytes{container=\"httpd\",namespace=\"default\",pod=\"web-1\"} "
               "4096 1795514401500\n") != std::string::npos);
  CHECK(m.find("container_start_time_seconds{container=\"httpd\",namespace=\"default\",pod=\"web-1\"} "
               "1795510800\n") != std::string::npos);
  CHECK(m.find("# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by "
               "the container in core-seconds\n") != std::string::npos);
  CHECK(m.find("resource_scrape_error 0\n") != std::string::npos);
}

TEST_CASE("resource metrics: a broken summary is a scrape error, not a crash") {
  std::string m = agent::ResourceMetricsText("not json");
  CHECK(m.find("resource_scrape_error 1\n") != std::string::npos);
  CHECK(m.find("node_cpu_usage_seconds_total") == std::string::npos);
  // Label values are escaped.
  std::string odd = agent::ResourceMetricsText(
      R"({"pods":[{"podRef":{"name":"a\"b","namespace":"n"},"memory":{"workingSetBytes":1}}]})");
  CHECK(odd.find("pod_memory_working_set_bytes{namespace=\"n\",pod=\"a\\\"b\"} 1\n") != std::string::npos);
}
