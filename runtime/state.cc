#include "runtime/state.h"

#include <csignal>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/strings.h"

namespace runtime {

using nlohmann::json;

namespace {

json LabelsToJson(const cri::Labels& l) {
  json j = json::object();
  for (const auto& [k, v] : l) j[k] = v;
  return j;
}

cri::Labels LabelsFromJson(const json& j) {
  cri::Labels l;
  if (!j.is_object()) return l;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_string()) l[it.key()] = it.value().get<std::string>();
  }
  return l;
}

template <class F>
auto Parse(const std::string& text, const char* what, F f) -> decltype(f(json())) {
  try {
    return f(json::parse(text));
  } catch (const std::exception& e) {
    return base::Fail(std::string("parse ") + what + ": " + e.what());
  }
}

}  // namespace

std::string EncodeSandboxRecord(const SandboxRecord& r) {
  const auto& c = r.config;
  json ports = json::array();
  for (const auto& p : c.port_mappings) {
    ports.push_back({{"protocol", static_cast<int>(p.protocol)},
                     {"container_port", p.container_port},
                     {"host_port", p.host_port},
                     {"host_ip", p.host_ip}});
  }
  const auto& ns = c.linux.security_context.namespace_options;
  json j = {
      {"id", r.id},
      {"metadata",
       {{"name", c.metadata.name},
        {"uid", c.metadata.uid},
        {"namespace", c.metadata.namespace_},
        {"attempt", c.metadata.attempt}}},
      {"hostname", c.hostname},
      {"log_directory", c.log_directory},
      {"dns", {{"servers", c.dns_config.servers},
               {"searches", c.dns_config.searches},
               {"options", c.dns_config.options}}},
      {"port_mappings", ports},
      {"labels", LabelsToJson(c.labels)},
      {"annotations", LabelsToJson(c.annotations)},
      {"cgroup_parent", c.linux.cgroup_parent},
      {"namespace_options",
       {{"network", static_cast<int>(ns.network)},
        {"pid", static_cast<int>(ns.pid)},
        {"ipc", static_cast<int>(ns.ipc)}}},
      {"created_at", r.created_at},
      {"ready", r.ready},
      {"ip", r.ip},
      {"additional_ips", r.additional_ips},
      {"netns", r.netns},
      {"ipcns", r.ipcns},
      {"utsns", r.utsns},
      {"cgroup", r.cgroup},
      {"shm", r.shm},
      {"network_setup", r.network_setup},
  };
  return j.dump(2);
}

Result<SandboxRecord> DecodeSandboxRecord(const std::string& text) {
  return Parse(text, "sandbox record", [](const json& j) -> Result<SandboxRecord> {
    SandboxRecord r;
    r.id = j.at("id").get<std::string>();
    auto& c = r.config;
    const json& m = j.at("metadata");
    c.metadata.name = m.value("name", "");
    c.metadata.uid = m.value("uid", "");
    c.metadata.namespace_ = m.value("namespace", "");
    c.metadata.attempt = m.value("attempt", 0u);
    c.hostname = j.value("hostname", "");
    c.log_directory = j.value("log_directory", "");
    if (j.contains("dns")) {
      c.dns_config.servers = j["dns"].value("servers", std::vector<std::string>{});
      c.dns_config.searches = j["dns"].value("searches", std::vector<std::string>{});
      c.dns_config.options = j["dns"].value("options", std::vector<std::string>{});
    }
    for (const auto& p : j.value("port_mappings", json::array())) {
      cri::PortMapping pm;
      pm.protocol = static_cast<cri::Protocol>(p.value("protocol", 0));
      pm.container_port = p.value("container_port", 0);
      pm.host_port = p.value("host_port", 0);
      pm.host_ip = p.value("host_ip", "");
      c.port_mappings.push_back(pm);
    }
    c.labels = LabelsFromJson(j.value("labels", json::object()));
    c.annotations = LabelsFromJson(j.value("annotations", json::object()));
    c.linux.cgroup_parent = j.value("cgroup_parent", "");
    if (j.contains("namespace_options")) {
      auto& ns = c.linux.security_context.namespace_options;
      ns.network = static_cast<cri::NamespaceMode>(j["namespace_options"].value("network", 0));
      ns.pid = static_cast<cri::NamespaceMode>(j["namespace_options"].value("pid", 1));
      ns.ipc = static_cast<cri::NamespaceMode>(j["namespace_options"].value("ipc", 0));
    }
    r.created_at = j.value("created_at", int64_t{0});
    r.ready = j.value("ready", false);
    r.ip = j.value("ip", "");
    r.additional_ips = j.value("additional_ips", std::vector<std::string>{});
    r.netns = j.value("netns", "");
    r.ipcns = j.value("ipcns", "");
    r.utsns = j.value("utsns", "");
    r.cgroup = j.value("cgroup", "");
    r.shm = j.value("shm", "");
    r.network_setup = j.value("network_setup", false);
    return r;
  });
}

std::string EncodeContainerRecord(const ContainerRecord& r) {
  json mounts = json::array();
  for (const auto& m : r.mounts) {
    mounts.push_back({{"container_path", m.container_path},
                      {"host_path", m.host_path},
                      {"readonly", m.readonly},
                      {"propagation", static_cast<int>(m.propagation)}});
  }
  json j = {{"id", r.id},
            {"sandbox_id", r.sandbox_id},
            {"metadata", {{"name", r.metadata.name}, {"attempt", r.metadata.attempt}}},
            {"image", {{"image", r.image.image}, {"annotations", LabelsToJson(r.image.annotations)}}},
            {"image_ref", r.image_ref},
            {"image_id", r.image_id},
            {"created_at", r.created_at},
            {"labels", LabelsToJson(r.labels)},
            {"annotations", LabelsToJson(r.annotations)},
            {"log_path", r.log_path},
            {"mounts", mounts},
            {"cgroup", r.cgroup},
            {"stop_signal", r.stop_signal}};
  return j.dump(2);
}

Result<ContainerRecord> DecodeContainerRecord(const std::string& text) {
  return Parse(text, "container record", [](const json& j) -> Result<ContainerRecord> {
    ContainerRecord r;
    r.id = j.at("id").get<std::string>();
    r.sandbox_id = j.value("sandbox_id", "");
    r.metadata.name = j.at("metadata").value("name", "");
    r.metadata.attempt = j.at("metadata").value("attempt", 0u);
    if (j.contains("image")) {
      r.image.image = j["image"].value("image", "");
      r.image.annotations = LabelsFromJson(j["image"].value("annotations", json::object()));
    }
    r.image_ref = j.value("image_ref", "");
    r.image_id = j.value("image_id", "");
    r.created_at = j.value("created_at", int64_t{0});
    r.labels = LabelsFromJson(j.value("labels", json::object()));
    r.annotations = LabelsFromJson(j.value("annotations", json::object()));
    r.log_path = j.value("log_path", "");
    for (const auto& m : j.value("mounts", json::array())) {
      cri::Mount mm;
      mm.container_path = m.value("container_path", "");
      mm.host_path = m.value("host_path", "");
      mm.readonly = m.value("readonly", false);
      mm.propagation = static_cast<cri::Mount::Propagation>(m.value("propagation", 0));
      r.mounts.push_back(mm);
    }
    r.cgroup = j.value("cgroup", "");
    r.stop_signal = j.value("stop_signal", 15);
    return r;
  });
}

int SignalFromName(const std::string& raw) {
  if (raw.empty()) return -1;
  if (raw.find_first_not_of("0123456789") == std::string::npos) {
    int n = atoi(raw.c_str());
    return n > 0 && n < 65 ? n : -1;
  }
  std::string n = raw;
  for (auto& ch : n) ch = static_cast<char>(toupper(static_cast<unsigned char>(ch)));
  if (base::StartsWith(n, "SIG")) n = n.substr(3);
  static const std::pair<const char*, int> kSignals[] = {
      {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"ILL", SIGILL},
      {"TRAP", SIGTRAP}, {"ABRT", SIGABRT},   {"BUS", SIGBUS},   {"FPE", SIGFPE},
      {"KILL", SIGKILL}, {"USR1", SIGUSR1},   {"SEGV", SIGSEGV}, {"USR2", SIGUSR2},
      {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},   {"TERM", SIGTERM}, {"CHLD", SIGCHLD},
      {"CONT", SIGCONT}, {"STOP", SIGSTOP},   {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN},
      {"TTOU", SIGTTOU}, {"URG", SIGURG},     {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ},
      {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
      {"PWR", SIGPWR},   {"SYS", SIGSYS}};
  for (const auto& [name, sig] : kSignals) {
    if (n == name) return sig;
  }
  return -1;
}

}  // namespace runtime
