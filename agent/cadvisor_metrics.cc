#include "agent/cadvisor_metrics.h"

#include <sstream>

#include "base/strings.h"

namespace agent {
namespace {

std::string Escape(const std::string& v) { return base::PromLabelValue(v); }

std::string Ms(int64_t unix_ns) { return unix_ns > 0 ? " " + std::to_string(unix_ns / 1000000) : ""; }

}  // namespace

std::string CadvisorMetricsText(const std::vector<CadvisorContainer>& containers) {
  using Family = base::PromFamily;
  Family cpu{"container_cpu_usage_seconds_total", "counter",
             "Cumulative cpu time consumed in seconds.", ""};
  Family mem_ws{"container_memory_working_set_bytes", "gauge", "Current working set in bytes.", ""};
  Family mem_rss{"container_memory_rss", "gauge", "Size of RSS in bytes.", ""};
  Family mem_usage{"container_memory_usage_bytes", "gauge",
                   "Current memory usage in bytes, including all memory regardless of when it "
                   "was accessed",
                   ""};
  Family procs{"container_processes", "gauge", "Number of processes running inside the container.",
               ""};
  Family start{"container_start_time_seconds", "gauge",
               "Start time of the container since unix epoch in seconds.", ""};
  for (const auto& c : containers) {
    // cAdvisor's label order (sorted by name); the cpu family has cpu="total" after container.
    std::string rest = ",id=\"" + Escape(c.id) + "\",image=\"" + Escape(c.image) + "\",name=\"" +
                       Escape(c.name) + "\",namespace=\"" + Escape(c.ns) + "\",pod=\"" +
                       Escape(c.pod) + "\"}";
    std::string container = "{container=\"" + Escape(c.container) + "\"";
    std::string labels = container + rest;
    const auto& s = c.stats;
    cpu.Add(container + ",cpu=\"total\"" + rest,
            static_cast<double>(s.cpu.usage_core_nano_seconds) / 1e9, Ms(s.cpu.timestamp));
    std::string mt = Ms(s.memory.timestamp);
    mem_ws.Add(labels, static_cast<double>(s.memory.working_set_bytes), mt);
    mem_rss.Add(labels, static_cast<double>(s.memory.rss_bytes), mt);
    mem_usage.Add(labels, static_cast<double>(s.memory.usage_bytes), mt);
    procs.Add(labels, static_cast<double>(s.pids), mt);
    if (c.started_at_unix_ns > 0) {
      start.Add(labels, static_cast<double>(c.started_at_unix_ns / 1000000) / 1e3, mt);
    }
  }
  std::string out;
  for (const Family* f : {&cpu, &mem_rss, &mem_usage, &mem_ws, &procs, &start}) out += f->Render();
  return out;
}

std::string CgroupPathFromProcText(const std::string& proc_cgroup) {
  std::istringstream in(proc_cgroup);
  std::string line, memory, unified;
  while (std::getline(in, line)) {
    // hierarchy-ID:controller-list:path
    auto a = line.find(':');
    auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (id == "0" && controllers.empty()) {
      unified = path;  // v2, or a hybrid host's small unified tree (then memory wins below)
      continue;
    }
    for (const auto& ctrl : base::Split(controllers, ',')) {
      if (ctrl == "memory") memory = path;
    }
  }
  return memory.empty() ? unified : memory;
}

}  // namespace agent
