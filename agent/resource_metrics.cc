#include "agent/resource_metrics.h"

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "base/time.h"

namespace agent {
namespace {

using json = nlohmann::json;

std::string Label(const std::string& v) { return base::PromLabelValue(v); }

// The sample time of a stats block ("time": RFC 3339), as Prometheus milliseconds; "" = none.
std::string TimestampMs(const json& block) {
  if (!block.is_object() || !block.contains("time") || !block["time"].is_string()) return "";
  auto t = base::ParseRfc3339(block["time"].get<std::string>());
  if (!t) return "";
  return " " + std::to_string(
                   std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch())
                       .count());
}

bool Has(const json& j, const char* block, const char* field) {
  return j.is_object() && j.contains(block) && j[block].is_object() &&
         j[block].contains(field) && j[block][field].is_number();
}

using Family = base::PromFamily;

}  // namespace

std::string ResourceMetricsText(const std::string& summary_json) {
  Family node_cpu{"node_cpu_usage_seconds_total", "counter",
                  "[STABLE] Cumulative cpu time consumed by the node in core-seconds", ""};
  Family node_mem{"node_memory_working_set_bytes", "gauge",
                  "[STABLE] Current working set of the node in bytes", ""};
  Family pod_cpu{"pod_cpu_usage_seconds_total", "counter",
                 "[STABLE] Cumulative cpu time consumed by the pod in core-seconds", ""};
  Family pod_mem{"pod_memory_working_set_bytes", "gauge",
                 "[STABLE] Current working set of the pod in bytes", ""};
  Family ctr_cpu{"container_cpu_usage_seconds_total", "counter",
                 "[STABLE] Cumulative cpu time consumed by the container in core-seconds", ""};
  Family ctr_mem{"container_memory_working_set_bytes", "gauge",
                 "[STABLE] Current working set of the container in bytes", ""};
  Family ctr_start{"container_start_time_seconds", "gauge",
                   "[STABLE] Start time of the container since unix epoch in seconds", ""};
  int scrape_error = 0;
  auto s = json::parse(summary_json, nullptr, false);
  if (s.is_discarded() || !s.is_object()) {
    scrape_error = 1;
    s = json::object();
  }
  // One object's cpu and memory samples (node, pod or container) with the given labels.
  auto usage = [](const json& of, const std::string& labels, Family* cpu, Family* mem) {
    if (Has(of, "cpu", "usageCoreNanoSeconds")) {
      cpu->Add(labels, of["cpu"]["usageCoreNanoSeconds"].get<double>() / 1e9, TimestampMs(of["cpu"]));
    }
    if (Has(of, "memory", "workingSetBytes")) {
      mem->Add(labels, of["memory"]["workingSetBytes"].get<double>(), TimestampMs(of["memory"]));
    }
  };
  usage(s.value("node", json::object()), "", &node_cpu, &node_mem);
  for (const auto& p : s.value("pods", json::array())) {
    if (!p.is_object() || !p.contains("podRef")) continue;
    std::string pod = p["podRef"].value("name", ""), ns = p["podRef"].value("namespace", "");
    usage(p, "{namespace=\"" + Label(ns) + "\",pod=\"" + Label(pod) + "\"}", &pod_cpu, &pod_mem);
    for (const auto& c : p.value("containers", json::array())) {
      if (!c.is_object()) continue;
      std::string cl = "{container=\"" + Label(c.value("name", "")) + "\",namespace=\"" +
                       Label(ns) + "\",pod=\"" + Label(pod) + "\"}";
      usage(c, cl, &ctr_cpu, &ctr_mem);
      if (c.contains("startTime") && c["startTime"].is_string()) {
        if (auto t = base::ParseRfc3339(c["startTime"].get<std::string>())) {
          double secs = std::chrono::duration<double>(t->time_since_epoch()).count();
          ctr_start.Add(cl, secs);
        }
      }
    }
  }
  std::string out;
  for (const Family* f : {&ctr_cpu, &ctr_mem, &ctr_start, &node_cpu, &node_mem, &pod_cpu,
                          &pod_mem}) {
    if (!f->samples.empty()) out += f->Render();
  }
  out += "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container "
         "metrics, 0 otherwise\n# TYPE resource_scrape_error gauge\nresource_scrape_error " +
         std::to_string(scrape_error) + "\n";
  return out;
}

}  // namespace agent
