#include "agent/cadvisor_metrics.h"

#include <sstream>

#include "base/strings.h"

namespace agent {
namespace {

std::string Num(double v) { return base::PromValue(v); }
std::string Escape(const std::string& v) { return base::PromLabelValue(v); }

std::string Ms(int64_t unix_ns) { return unix_ns > 0 ? " " + std::to_string(unix_ns / 1000000) : ""; }

}  // namespace

std::string CadvisorMetricsText(const std::vector<CadvisorContainer>& containers) {
  struct Family {
    const char* name;
    const char* type;
    const char* help;
    std::string samples;
  };
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
    // cAdvisor's label order (sorted by name).
    std::string labels = "container=\"" + Escape(c.container) + "\",id=\"" + Escape(c.id) +
                         "\",image=\"" + Escape(c.image) + "\",name=\"" + Escape(c.name) +
                         "\",namespace=\"" + Escape(c.ns) + "\",pod=\"" + Escape(c.pod) + "\"";
    const auto& s = c.stats;
    std::string cpu_labels = "container=\"" + Escape(c.container) + "\",cpu=\"total\"" +
                             labels.substr(labels.find(",id="));
    cpu.samples += std::string(cpu.name) + "{" + cpu_labels + "} " +
                   Num(static_cast<double>(s.cpu.usage_core_nano_seconds) / 1e9) +
                   Ms(s.cpu.timestamp) + "\n";
    std::string mt = Ms(s.memory.timestamp);
    mem_ws.samples += std::string(mem_ws.name) + "{" + labels + "} " +
                      Num(static_cast<double>(s.memory.working_set_bytes)) + mt + "\n";
    mem_rss.samples += std::string(mem_rss.name) + "{" + labels + "} " +
                       Num(static_cast<double>(s.memory.rss_bytes)) + mt + "\n";
    mem_usage.samples += std::string(mem_usage.name) + "{" + labels + "} " +
                         Num(static_cast<double>(s.memory.usage_bytes)) + mt + "\n";
    procs.samples += std::string(procs.name) + "{" + labels + "} " +
                     Num(static_cast<double>(s.pids)) + mt + "\n";
    if (c.started_at_unix_ns > 0) {
      start.samples += std::string(start.name) + "{" + labels + "} " +
                       Num(static_cast<double>(c.started_at_unix_ns / 1000000) / 1e3) + mt + "\n";
    }
  }
  std::string out;
  for (const Family* f : {&cpu, &mem_rss, &mem_usage, &mem_ws, &procs, &start}) {
    out += std::string("# HELP ") + f->name + " " + f->help + "\n";
    out += std::string("# TYPE ") + f->name + " " + f->type + "\n";
    out += f->samples;
  }
  return out;
}

std::string CgroupPathFromProcText(const std::string& proc_cgroup) {
  std::istringstream in(proc_cgroup);
  std::string line, memory;
  while (std::getline(in, line)) {
    // hierarchy-ID:controller-list:path
    auto a = line.find(':');
    auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string id = line.substr(0, a), controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (id == "0" && controllers.empty()) {
      // v2 (or a hybrid host's small unified tree): the container's path only on a pure v2
      // host, where no v1 memory line exists.
      if (memory.empty()) memory = "v2:" + path;
      continue;
    }
    for (const auto& ctrl : base::Split(controllers, ',')) {
      if (ctrl == "memory") memory = path;
    }
  }
  if (base::StartsWith(memory, "v2:")) return memory.substr(3);
  return memory;
}

}  // namespace agent
