#include "agent/runtime_config.h"

#include <algorithm>
#include <sstream>

#include "base/quantity.h"
#include "base/strings.h"
#include "cgroups/driver.h"

namespace agent {
namespace {

constexpr int64_t kCpuPeriod = 100000;

struct Totals {
  int64_t cpu_req = 0, mem_req = 0, cpu_lim = 0, mem_lim = 0;
  bool all_cpu_lim = true, all_mem_lim = true;
};

// max(sum(app containers), max(init containers)) per resource, as the kubelet computes the pod's
// effective requests and limits.
Totals PodTotals(const Pod& pod) {
  Totals app;
  for (const auto& c : pod.containers) {
    app.cpu_req += c.resources.requests.cpu_milli.value_or(0);
    app.mem_req += c.resources.requests.memory_bytes.value_or(0);
    if (c.resources.limits.cpu_milli) app.cpu_lim += *c.resources.limits.cpu_milli;
    else app.all_cpu_lim = false;
    if (c.resources.limits.memory_bytes) app.mem_lim += *c.resources.limits.memory_bytes;
    else app.all_mem_lim = false;
  }
  for (const auto& c : pod.init_containers) {
    app.cpu_req = std::max(app.cpu_req, c.resources.requests.cpu_milli.value_or(0));
    app.mem_req = std::max(app.mem_req, c.resources.requests.memory_bytes.value_or(0));
    if (c.resources.limits.cpu_milli) app.cpu_lim = std::max(app.cpu_lim, *c.resources.limits.cpu_milli);
    else app.all_cpu_lim = false;
    if (c.resources.limits.memory_bytes) app.mem_lim = std::max(app.mem_lim, *c.resources.limits.memory_bytes);
    else app.all_mem_lim = false;
  }
  return app;
}

cri::NamespaceOption NamespaceOptions(const Pod& pod) {
  cri::NamespaceOption ns;
  ns.network = pod.host_network ? cri::NamespaceMode::kNode : cri::NamespaceMode::kPod;
  ns.pid = pod.host_pid ? cri::NamespaceMode::kNode
                        : (pod.share_process_namespace ? cri::NamespaceMode::kPod : cri::NamespaceMode::kContainer);
  ns.ipc = pod.host_ipc ? cri::NamespaceMode::kNode : cri::NamespaceMode::kPod;
  return ns;
}

cri::SecurityProfile Seccomp(const std::string& type, const std::string& localhost, bool privileged) {
  cri::SecurityProfile p;
  // Kubernetes default is Unconfined unless the pod asks (or SeccompDefault is enabled);
  // cubelet follows the kubelet default and applies RuntimeDefault only when requested.
  if (type == "RuntimeDefault") {
    p.profile_type = cri::SecurityProfile::Type::kRuntimeDefault;
  } else if (type == "Localhost") {
    p.profile_type = cri::SecurityProfile::Type::kLocalhost;
    p.localhost_ref = localhost;
  } else {
    p.profile_type = cri::SecurityProfile::Type::kUnconfined;
  }
  if (privileged) p.profile_type = cri::SecurityProfile::Type::kUnconfined;
  return p;
}

std::string FieldValue(const Pod& pod, const std::string& path, const NodeConfig& node,
                       const PodRuntimeFacts& facts, bool* ok) {
  *ok = true;
  if (path == "metadata.name") return pod.name;
  if (path == "metadata.namespace") return pod.ns;
  if (path == "metadata.uid") return pod.uid;
  if (path == "spec.nodeName") return node.node_name;
  if (path == "spec.serviceAccountName") return pod.service_account_name;
  if (path == "status.hostIP") return node.node_ips.empty() ? "" : node.node_ips.front();
  if (path == "status.hostIPs") return base::Join(node.node_ips, ",");
  if (path == "status.podIP") return facts.pod_ip;
  if (path == "status.podIPs") return base::Join(facts.pod_ips, ",");
  auto bracket = [&](const std::string& prefix, const std::map<std::string, std::string>& m) -> std::optional<std::string> {
    if (!base::StartsWith(path, prefix + "['") || !base::EndsWith(path, "']")) return std::nullopt;
    std::string key = path.substr(prefix.size() + 2, path.size() - prefix.size() - 4);
    auto it = m.find(key);
    return it == m.end() ? std::string() : it->second;
  };
  if (auto v = bracket("metadata.labels", pod.labels)) return *v;
  if (auto v = bracket("metadata.annotations", pod.annotations)) return *v;
  auto render = [](const std::map<std::string, std::string>& m) {
    std::string out;
    for (const auto& [k, v] : m) out += k + "=\"" + v + "\"\n";
    return out;
  };
  if (path == "metadata.labels") return render(pod.labels);
  if (path == "metadata.annotations") return render(pod.annotations);
  *ok = false;
  return "";
}

std::string ResourceValue(const Pod& pod, const Container& self, const EnvVar& v, const NodeConfig& node) {
  const Container* c = &self;
  if (!v.resource_container.empty()) {
    for (const auto& x : pod.containers) {
      if (x.name == v.resource_container) c = &x;
    }
  }
  int64_t divisor = 1;
  bool cpu = v.resource.find("cpu") != std::string::npos;
  if (!v.resource_divisor.empty()) {
    auto d = cpu ? base::ParseQuantityMilli(v.resource_divisor) : base::ParseQuantity(v.resource_divisor);
    if (d && *d > 0) divisor = *d;
  } else if (cpu) {
    divisor = 1000;  // cores
  }
  std::optional<int64_t> val;
  if (v.resource == "limits.cpu") val = c->resources.limits.cpu_milli;
  else if (v.resource == "requests.cpu") val = c->resources.requests.cpu_milli;
  else if (v.resource == "limits.memory") val = c->resources.limits.memory_bytes;
  else if (v.resource == "requests.memory") val = c->resources.requests.memory_bytes;
  else if (v.resource == "limits.ephemeral-storage") val = c->resources.limits.ephemeral_storage_bytes;
  else if (v.resource == "requests.ephemeral-storage") val = c->resources.requests.ephemeral_storage_bytes;
  if (!val) {
    // Unset limits expose node allocatable (the kubelet's behaviour).
    if (v.resource == "limits.memory") val = node.memory_capacity_bytes;
    else val = 0;
  }
  int64_t out = (*val + divisor - 1) / divisor;  // ceil, like the kubelet
  if (cpu && out == 0 && *val > 0) out = 1;
  return std::to_string(out);
}

}  // namespace

HostDns ParseResolvConf(const std::string& text) {
  HostDns d;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto hash = line.find_first_of("#;");
    if (hash != std::string::npos) line = line.substr(0, hash);
    auto parts = base::Split(base::Trim(line), ' ', true);
    if (parts.empty()) continue;
    if (parts[0] == "nameserver" && parts.size() > 1) d.nameservers.push_back(parts[1]);
    if (parts[0] == "search") d.searches.assign(parts.begin() + 1, parts.end());
    if (parts[0] == "options") d.options.assign(parts.begin() + 1, parts.end());
  }
  return d;
}

std::string PodCgroupParent(const Pod& pod, const NodeConfig& node) {
  std::string name = "pod" + pod.uid;
  if (!node.cgroups_per_qos) return "kubepods/" + name;
  switch (ComputeQos(pod)) {
    case QosClass::kGuaranteed: return "kubepods/" + name;
    case QosClass::kBurstable: return "kubepods/burstable/" + name;
    case QosClass::kBestEffort: return "kubepods/besteffort/" + name;
  }
  return "kubepods/" + name;
}

cri::LinuxContainerResources PodResources(const Pod& pod, const NodeConfig& node) {
  // K:pkg/kubelet/cm/helpers_linux.go ResourceConfigForPod.
  cri::LinuxContainerResources r;
  Totals t = PodTotals(pod);
  QosClass q = ComputeQos(pod);
  r.cpu_period = kCpuPeriod;
  if (q == QosClass::kBestEffort) {
    r.cpu_shares = 2;
  } else {
    r.cpu_shares = static_cast<int64_t>(cgroups::MilliCpuToShares(t.cpu_req));
    if (t.all_cpu_lim) r.cpu_quota = cgroups::MilliCpuToQuota(t.cpu_lim, kCpuPeriod);
    if (t.all_mem_lim) r.memory_limit_in_bytes = t.mem_lim;
  }
  if (node.pod_pids_limit > 0) r.pids_limit = node.pod_pids_limit;
  return r;
}

int64_t OomScoreAdj(const Pod& pod, const Container& c, const NodeConfig& node) {
  // K:pkg/kubelet/qos/policy.go
  switch (ComputeQos(pod)) {
    case QosClass::kGuaranteed: return -997;
    case QosClass::kBestEffort: return 1000;
    case QosClass::kBurstable: break;
  }
  int64_t req = c.resources.requests.memory_bytes.value_or(0);
  int64_t cap = node.memory_capacity_bytes > 0 ? node.memory_capacity_bytes : 1;
  int64_t adj = 1000 - (1000 * req) / cap;
  if (adj < 1000 - 997) return 1000 - 997;
  if (adj == 1000) return 999;
  return adj;
}

cri::PodSandboxConfig MakeSandboxConfig(const Pod& pod, uint32_t attempt, const NodeConfig& node,
                                        const HostDns& host_dns) {
  cri::PodSandboxConfig sc;
  sc.metadata = {pod.name, pod.uid, pod.ns, attempt};
  std::string hostname = pod.hostname.empty() ? pod.name : pod.hostname;
  if (pod.host_network) hostname = node.node_name;
  if (hostname.size() > 63) hostname = hostname.substr(0, 63);
  while (!hostname.empty() && (hostname.back() == '-' || hostname.back() == '.')) hostname.pop_back();
  sc.hostname = hostname;
  sc.log_directory = node.pod_logs_dir + "/" + pod.ns + "_" + pod.name + "_" + pod.uid;

  // DNS (K:pkg/kubelet/network/dns/dns.go).
  std::string policy = pod.dns_policy;
  if (policy == "ClusterFirst" && pod.host_network) policy = "Default";
  if (policy == "ClusterFirstWithHostNet") policy = "ClusterFirst";
  if (policy == "ClusterFirst" && node.cluster_dns.empty()) policy = "Default";  // kubelet falls back
  if (policy == "ClusterFirst") {
    sc.dns_config.servers = node.cluster_dns;
    sc.dns_config.searches = {pod.ns + ".svc." + node.cluster_domain, "svc." + node.cluster_domain,
                              node.cluster_domain};
    for (const auto& s : host_dns.searches) sc.dns_config.searches.push_back(s);
    sc.dns_config.options = {"ndots:5"};
  } else if (policy == "Default") {
    sc.dns_config.servers = host_dns.nameservers;
    sc.dns_config.searches = host_dns.searches;
    sc.dns_config.options = host_dns.options;
  }
  if (pod.dns_config) {  // dnsConfig is merged on top (and is all there is for None)
    for (const auto& s : pod.dns_config->nameservers) sc.dns_config.servers.push_back(s);
    for (const auto& s : pod.dns_config->searches) sc.dns_config.searches.push_back(s);
    for (const auto& [name, value] : pod.dns_config->options) {
      std::string opt = value.empty() ? name : name + ":" + value;
      auto& opts = sc.dns_config.options;
      opts.erase(std::remove_if(opts.begin(), opts.end(), [&](const std::string& o) {
                   return o == name || base::StartsWith(o, name + ":");
                 }), opts.end());
      opts.push_back(opt);
    }
  }
  if (sc.dns_config.searches.size() > 32) sc.dns_config.searches.resize(32);

  for (const auto& c : pod.containers) {
    for (const auto& p : c.ports) {
      if (p.host_port == 0) continue;
      cri::PortMapping m;
      m.protocol = p.protocol == "UDP" ? cri::Protocol::kUdp : (p.protocol == "SCTP" ? cri::Protocol::kSctp : cri::Protocol::kTcp);
      m.container_port = p.container_port;
      m.host_port = p.host_port;
      m.host_ip = p.host_ip;
      sc.port_mappings.push_back(m);
    }
  }
  sc.labels = pod.labels;
  sc.labels[kLabelPodName] = pod.name;
  sc.labels[kLabelPodNamespace] = pod.ns;
  sc.labels[kLabelPodUid] = pod.uid;
  sc.annotations = pod.annotations;
  sc.linux.cgroup_parent = PodCgroupParent(pod, node);
  sc.linux.security_context.namespace_options = NamespaceOptions(pod);
  sc.linux.security_context.run_as_user = pod.security_context.run_as_user;
  sc.linux.security_context.run_as_group = pod.security_context.run_as_group;
  sc.linux.security_context.supplemental_groups = pod.security_context.supplemental_groups;
  sc.linux.security_context.seccomp = Seccomp(pod.security_context.seccomp_type,
                                              pod.security_context.seccomp_localhost_profile, false);
  sc.linux.sysctls = pod.security_context.sysctls;
  sc.linux.resources = PodResources(pod, node);
  return sc;
}

std::string ExpandVars(const std::string& in, const std::map<std::string, std::string>& env) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '$' || i + 1 >= in.size()) {
      out += in[i];
      continue;
    }
    char n = in[i + 1];
    if (n == '$') {
      out += '$';
      ++i;
    } else if (n == '(') {
      size_t close = in.find(')', i + 2);
      if (close == std::string::npos) {
        out += in.substr(i);
        break;
      }
      std::string name = in.substr(i + 2, close - i - 2);
      auto it = env.find(name);
      if (it != env.end()) out += it->second;
      else out += in.substr(i, close - i + 1);
      i = close;
    } else {
      out += in[i];
    }
  }
  return out;
}

base::Result<cri::ContainerConfig> MakeContainerConfig(const Pod& pod, const Container& c, bool init,
                                                       uint32_t attempt, const std::string& image_ref,
                                                       const NodeConfig& node, const PodRuntimeFacts& facts,
                                                       const EnvLookup& lookup) {
  cri::ContainerConfig cc;
  cc.metadata = {c.name, attempt};
  cc.image.image = image_ref.empty() ? c.image : image_ref;
  cc.working_dir = c.working_dir;
  std::string where = "container \"" + c.name + "\" in pod \"" + pod.ns + "/" + pod.name + "\"";

  // Environment: service links, envFrom, then env (later wins), with $(VAR) expansion against
  // what was defined before.
  std::vector<std::pair<std::string, std::string>> envs;
  std::map<std::string, std::string> envmap;
  auto set = [&](const std::string& k, const std::string& v) {
    auto it = std::find_if(envs.begin(), envs.end(), [&](auto& p) { return p.first == k; });
    if (it != envs.end()) it->second = v;
    else envs.emplace_back(k, v);
    envmap[k] = v;
  };
  for (const auto& [k, v] : facts.service_env) set(k, v);
  for (const auto& ef : c.env_from) {
    std::optional<std::map<std::string, std::string>> data;
    std::string kind = ef.configmap_name.empty() ? "secret" : "configmap";
    std::string name = ef.configmap_name.empty() ? ef.secret_name : ef.configmap_name;
    if (!ef.configmap_name.empty() && lookup.configmap) data = lookup.configmap(pod.ns, name);
    if (!ef.secret_name.empty() && lookup.secret) data = lookup.secret(pod.ns, name);
    if (!data) {
      if (ef.optional) continue;
      return base::Fail(kind + " \"" + name + "\" not found");
    }
    for (const auto& [k, v] : *data) set(ef.prefix + k, v);
  }
  for (const auto& e : c.env) {
    std::string value;
    if (!e.has_value_from) {
      value = ExpandVars(e.value, envmap);
    } else if (!e.field_path.empty()) {
      bool ok;
      value = FieldValue(pod, e.field_path, node, facts, &ok);
      if (!ok) return base::Fail(where + ": unsupported fieldRef " + e.field_path);
    } else if (!e.resource.empty()) {
      value = ResourceValue(pod, c, e, node);
    } else if (!e.configmap_name.empty() || !e.secret_name.empty()) {
      bool cm = !e.configmap_name.empty();
      std::string name = cm ? e.configmap_name : e.secret_name;
      std::string key = cm ? e.configmap_key : e.secret_key;
      std::optional<std::map<std::string, std::string>> data;
      if (cm && lookup.configmap) data = lookup.configmap(pod.ns, name);
      if (!cm && lookup.secret) data = lookup.secret(pod.ns, name);
      if (!data) {
        if (e.optional) continue;
        return base::Fail(std::string(cm ? "configmap" : "secret") + " \"" + name + "\" not found");
      }
      auto it = data->find(key);
      if (it == data->end()) {
        if (e.optional) continue;
        return base::Fail("couldn't find key " + key + " in " + (cm ? "ConfigMap " : "Secret ") + pod.ns + "/" + name);
      }
      value = it->second;
    }
    set(e.name, value);
  }
  for (const auto& [k, v] : envs) cc.envs.push_back({k, v});
  for (const auto& a : c.command) cc.command.push_back(ExpandVars(a, envmap));
  for (const auto& a : c.args) cc.args.push_back(ExpandVars(a, envmap));

  // Mounts.
  for (const auto& vm : c.volume_mounts) {
    auto it = facts.volume_host_paths.find(vm.name);
    if (it == facts.volume_host_paths.end())
      return base::Fail(where + ": volume \"" + vm.name + "\" is not prepared (unknown or unsupported volume)");
    cri::Mount m;
    m.container_path = vm.mount_path;
    m.host_path = it->second;
    if (!vm.sub_path.empty()) {
      if (vm.sub_path.find("..") != std::string::npos || vm.sub_path[0] == '/')
        return base::Fail(where + ": subPath \"" + vm.sub_path + "\" must be a relative path without '..'");
      m.host_path += "/" + vm.sub_path;
    }
    auto ro = facts.volume_read_only.find(vm.name);
    m.readonly = vm.read_only || (ro != facts.volume_read_only.end() && ro->second);
    cc.mounts.push_back(m);
  }
  if (!facts.termination_log_dir.empty() && !c.termination_message_path.empty()) {
    cri::Mount m;
    m.container_path = c.termination_message_path;
    m.host_path = facts.termination_log_dir + "/" + c.name + "-" + std::to_string(attempt);
    cc.mounts.push_back(m);
  }

  cc.labels[kLabelContainerName] = c.name;
  cc.labels[kLabelPodName] = pod.name;
  cc.labels[kLabelPodNamespace] = pod.ns;
  cc.labels[kLabelPodUid] = pod.uid;
  cc.annotations[kAnnoContainerHash] = c.hash;
  cc.annotations[kAnnoRestartCount] = std::to_string(attempt);
  cc.annotations[kAnnoTerminationMessagePath] = c.termination_message_path;
  cc.annotations[kAnnoTerminationMessagePolicy] = c.termination_message_policy;
  cc.annotations[kAnnoGracePeriod] = std::to_string(pod.termination_grace_period_seconds);
  cc.annotations[kAnnoContainerImage] = c.image;
  if (init) cc.annotations[kAnnoInitContainer] = "true";
  cc.log_path = c.name + "/" + std::to_string(attempt) + ".log";
  cc.stdin_ = c.stdin_;
  cc.tty = c.tty;

  // Resources (K:pkg/kubelet/kuberuntime/kuberuntime_container_linux.go).
  auto& r = cc.linux.resources;
  r.cpu_period = kCpuPeriod;
  int64_t cpu_req = c.resources.requests.cpu_milli.value_or(0);
  if (ComputeQos(pod) == QosClass::kBestEffort || cpu_req == 0) r.cpu_shares = 2;
  else r.cpu_shares = static_cast<int64_t>(cgroups::MilliCpuToShares(cpu_req));
  if (c.resources.limits.cpu_milli) r.cpu_quota = cgroups::MilliCpuToQuota(*c.resources.limits.cpu_milli, kCpuPeriod);
  if (c.resources.limits.memory_bytes) r.memory_limit_in_bytes = *c.resources.limits.memory_bytes;
  r.oom_score_adj = OomScoreAdj(pod, c, node);

  // Security context: container values override pod values.
  auto& s = cc.linux.security_context;
  const SecurityContext& csc = c.security_context;
  s.namespace_options = NamespaceOptions(pod);
  s.privileged = csc.privileged.value_or(false);
  s.capabilities.add_capabilities = csc.cap_add;
  s.capabilities.drop_capabilities = csc.cap_drop;
  s.run_as_user = csc.run_as_user ? csc.run_as_user : pod.security_context.run_as_user;
  s.run_as_group = csc.run_as_group ? csc.run_as_group : pod.security_context.run_as_group;
  s.supplemental_groups = pod.security_context.supplemental_groups;
  if (pod.security_context.fs_group) s.supplemental_groups.push_back(*pod.security_context.fs_group);
  s.readonly_rootfs = csc.read_only_root_filesystem.value_or(false);
  s.no_new_privs = csc.allow_privilege_escalation.has_value() && !*csc.allow_privilege_escalation;
  std::string st = csc.seccomp_type.empty() ? pod.security_context.seccomp_type : csc.seccomp_type;
  std::string sp = csc.seccomp_type.empty() ? pod.security_context.seccomp_localhost_profile : csc.seccomp_localhost_profile;
  s.seccomp = Seccomp(st, sp, s.privileged);
  bool non_root = csc.run_as_non_root.value_or(pod.security_context.run_as_non_root.value_or(false));
  if (non_root && s.run_as_user && *s.run_as_user == 0)
    return base::Fail(where + ": container's runAsUser breaks non-root policy");
  return cc;
}

}  // namespace agent
