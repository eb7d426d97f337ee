// Runtime: pod sandboxes.
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>

#include "base/file.h"
#include "base/scope_guard.h"
#include "base/log.h"
#include "base/strings.h"
#include "base/time.h"
#include "runtime/pod_namespaces.h"
#include "runtime/runtime.h"

namespace runtime {
namespace {

cgroups::Resources ToCgroupResources(const cri::LinuxContainerResources& r) {
  cgroups::Resources out;
  if (r.cpu_shares > 0) out.cpu_shares = static_cast<uint64_t>(r.cpu_shares);
  if (r.cpu_period > 0) out.cpu_period_us = static_cast<uint64_t>(r.cpu_period);
  if (r.cpu_quota != 0) out.cpu_quota_us = r.cpu_quota;
  if (r.memory_limit_in_bytes > 0) out.memory_limit_bytes = r.memory_limit_in_bytes;
  if (r.pids_limit != 0) out.pids_limit = r.pids_limit;
  if (!r.cpuset_cpus.empty()) out.cpuset_cpus = r.cpuset_cpus;
  if (!r.cpuset_mems.empty()) out.cpuset_mems = r.cpuset_mems;
  return out;
}

std::string JoinCgroup(const std::string& a, const std::string& b) {
  std::string x = a, y = b;
  while (!x.empty() && x.back() == '/') x.pop_back();
  while (!y.empty() && y.front() == '/') y.erase(y.begin());
  if (x.empty()) return y;
  if (y.empty()) return x;
  return x + "/" + y;
}

net::SandboxNetRequest NetRequest(const SandboxRecord& r) {
  net::SandboxNetRequest req;
  req.sandbox_id = r.id;
  req.netns_path = r.netns;
  req.pod_namespace = r.config.metadata.namespace_;
  req.pod_name = r.config.metadata.name;
  req.pod_uid = r.config.metadata.uid;
  for (const auto& p : r.config.port_mappings) {
    net::PortMapping pm;
    pm.protocol = p.protocol == cri::Protocol::kUdp ? "udp" : p.protocol == cri::Protocol::kSctp ? "sctp" : "tcp";
    pm.container_port = p.container_port;
    pm.host_port = p.host_port;
    pm.host_ip = p.host_ip;
    req.port_mappings.push_back(pm);
  }
  return req;
}

}  // namespace

cgroups::Resources ToCgroupResourcesForRuntime(const cri::LinuxContainerResources& r) {
  return ToCgroupResources(r);
}

std::string JoinCgroupPath(const std::string& a, const std::string& b) { return JoinCgroup(a, b); }

Result<> Runtime::SaveSandbox(const SandboxRecord& r) {
  return base::WriteFileAtomic(SandboxDir(r.id) + "/sandbox.json", EncodeSandboxRecord(r));
}

Result<> Runtime::WriteSandboxFiles(const SandboxRecord& r) {
  const auto& c = r.config;
  std::string dir = SandboxDir(r.id);
  bool host_net = r.netns.empty();
  std::string hostname = c.hostname.empty() ? c.metadata.name : c.hostname;
  if (host_net) {
    char buf[256] = {0};
    gethostname(buf, sizeof buf - 1);
    hostname = buf;
  }
  CUBELET_TRY(base::WriteFileAtomic(dir + "/hostname", hostname + "\n"));
  std::string hosts;
  if (host_net) {
    auto h = base::ReadFile("/etc/hosts");
    hosts = h ? *h : "127.0.0.1\tlocalhost\n";
  } else {
    hosts =
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n";
    if (!r.ip.empty()) hosts += r.ip + "\t" + hostname + "\n";
  }
  CUBELET_TRY(base::WriteFileAtomic(dir + "/hosts", hosts));
  std::string resolv;
  const auto& dns = c.dns_config;
  if (dns.servers.empty() && dns.searches.empty() && dns.options.empty()) {
    auto h = base::ReadFile("/etc/resolv.conf");
    resolv = h ? *h : "";
  } else {
    if (!dns.searches.empty()) resolv += "search " + base::Join(dns.searches, " ") + "\n";
    for (const auto& s : dns.servers) resolv += "nameserver " + s + "\n";
    if (!dns.options.empty()) resolv += "options " + base::Join(dns.options, " ") + "\n";
  }
  CUBELET_TRY(base::WriteFileAtomic(dir + "/resolv.conf", resolv));
  return {};
}

Result<std::string> Runtime::RunPodSandbox(const cri::PodSandboxConfig& config) {
  SandboxRecord r;
  r.id = base::RandomHexId();
  r.config = config;
  r.created_at = base::ToUnixNanos(std::chrono::system_clock::now());
  std::string parent = config.linux.cgroup_parent.empty() ? "cubelet-pod-" + r.id.substr(0, 12)
                                                          : config.linux.cgroup_parent;
  r.cgroup = JoinCgroup(opts_.cgroup_root, parent);
  const auto& nso = config.linux.security_context.namespace_options;
  bool host_net = nso.network == cri::NamespaceMode::kNode;
  bool host_ipc = nso.ipc == cri::NamespaceMode::kNode;
  std::string what = "run pod sandbox " + config.metadata.namespace_ + "/" + config.metadata.name;
  std::string dir = SandboxDir(r.id);
  CUBELET_TRY_CTX(base::MkdirAll(dir, 0700), what);
  // From here on every failure undoes what was done, so that nothing leaks.
  bool ok = false;
  auto undo = base::Defer([&] {
    if (!ok) {
      (void)CleanupSandboxResources(r);
      (void)base::RemoveAll(dir);
    }
  });
  CUBELET_TRY_CTX(opts_.cgroups->Create(r.cgroup), what);
  if (config.linux.resources) {
    CUBELET_TRY_CTX(opts_.cgroups->Apply(r.cgroup, ToCgroupResources(*config.linux.resources)), what);
  }
  PodNamespaceRequest nreq;
  nreq.run_dir = opts_.run_dir;
  nreq.sandbox_id = r.id;
  nreq.hostname = config.hostname.empty() ? config.metadata.name : config.hostname;
  nreq.new_net = !host_net;
  nreq.new_ipc = !host_ipc;
  nreq.new_uts = !host_net;  // host-network pods keep the node's hostname, as the kubelet does
  nreq.sysctls = config.linux.sysctls;
  auto ns = PinPodNamespaces(nreq);
  if (!ns) return tl::unexpected(ns.error().Wrap(what));
  r.netns = ns->net;
  r.ipcns = ns->ipc;
  r.utsns = ns->uts;
  // /dev/shm belongs to the IPC namespace: one tmpfs for the whole pod (the host's for hostIPC).
  if (host_ipc) {
    r.shm = "/dev/shm";
  } else {
    r.shm = opts_.run_dir + "/shm/" + r.id;
    CUBELET_TRY_CTX(base::MkdirAll(r.shm, 0755), what);
    if (mount("shm", r.shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=1777,size=65536k") != 0) {
      auto e = base::Errno(what + ": mount the pod's /dev/shm");
      (void)base::RemoveAll(r.shm);
      r.shm.clear();
      return e;
    }
  }
  // Persist before the network so that a crash after Setup still leads to a Teardown.
  CUBELET_TRY_CTX(SaveSandbox(r), what);
  if (!host_net && opts_.network) {
    auto st = opts_.network->Setup(NetRequest(r));
    r.network_setup = true;
    if (!st) return tl::unexpected(st.error().Wrap(what + ": set up pod network"));
    r.ip = st->ip;
    r.additional_ips = st->additional_ips;
  }
  CUBELET_TRY_CTX(WriteSandboxFiles(r), what);
  CUBELET_TRY_CTX(SaveSandbox(r), what);
  {
    std::lock_guard<std::mutex> lock(mu_);
    sandboxes_[r.id] = Sandbox{r};
  }
  ok = true;
  base::log::Info("pod sandbox ready", {{"id", r.id},
                                        {"pod", config.metadata.namespace_ + "/" + config.metadata.name},
                                        {"ip", r.ip}});
  return r.id;
}

Result<> Runtime::CleanupSandboxResources(const SandboxRecord& r) {
  Result<> first;
  auto keep = [&](Result<> res) {
    if (!res && first) first = std::move(res);
  };
  if (r.network_setup && opts_.network) keep(opts_.network->Teardown(NetRequest(r)));
  keep(UnpinPodNamespaces({r.netns, r.ipcns, r.utsns}));
  if (!r.shm.empty() && base::StartsWith(r.shm, opts_.run_dir + "/")) {
    if (umount2(r.shm.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      keep(base::Errno("unmount the pod's /dev/shm '" + r.shm + "'"));
    }
    if (rmdir(r.shm.c_str()) != 0 && errno != ENOENT) keep(base::Errno("remove '" + r.shm + "'"));
  }
  keep(opts_.cgroups->Remove(r.cgroup));
  return first;
}

Result<> Runtime::StopPodSandbox(const std::string& id) {
  std::vector<std::string> members;
  SandboxRecord rec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) return {};  // idempotent
    rec = it->second.rec;
    for (const auto& [cid, c] : containers_) {
      if (c.rec.sandbox_id == id) members.push_back(cid);
    }
  }
  std::string what = "stop pod sandbox " + id;
  for (const auto& cid : members) {
    CUBELET_TRY_CTX(StopContainerImpl(cid, std::chrono::seconds(0)), what);
  }
  if (rec.network_setup && opts_.network) {
    CUBELET_TRY_CTX(opts_.network->Teardown(NetRequest(rec)), what + ": tear down pod network");
  }
  rec.network_setup = false;
  rec.ready = false;
  CUBELET_TRY_CTX(SaveSandbox(rec), what);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sandboxes_.find(id);
  if (it != sandboxes_.end()) it->second.rec = rec;
  return {};
}

Result<> Runtime::RemovePodSandbox(const std::string& id) {
  std::string what = "remove pod sandbox " + id;
  CUBELET_TRY(StopPodSandbox(id));
  std::vector<std::string> members;
  std::optional<SandboxRecord> rec;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sandboxes_.find(id);
    if (it != sandboxes_.end()) rec = it->second.rec;
    for (const auto& [cid, c] : containers_) {
      if (c.rec.sandbox_id == id) members.push_back(cid);
    }
  }
  for (const auto& cid : members) CUBELET_TRY_CTX(RemoveContainer(cid), what);
  if (!rec) {
    // Unknown or half-created (crash before sandbox.json): clean by the well-known paths.
    if (!base::PathExists(SandboxDir(id))) return {};
    CUBELET_TRY_CTX(UnpinPodNamespaces(PodNamespacePaths(opts_.run_dir, id, true, true, true)), what);
    std::string shm = opts_.run_dir + "/shm/" + id;
    umount2(shm.c_str(), MNT_DETACH);
    rmdir(shm.c_str());
    return base::RemoveAll(SandboxDir(id));
  }
  CUBELET_TRY_CTX(CleanupSandboxResources(*rec), what);
  CUBELET_TRY_CTX(base::RemoveAll(SandboxDir(id)), what);
  std::lock_guard<std::mutex> lock(mu_);
  sandboxes_.erase(id);
  return {};
}

Result<cri::PodSandboxStatus> Runtime::PodSandboxStatus(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) return base::Fail("pod sandbox \"" + id + "\" not found", kErrNotFound);
  const auto& r = it->second.rec;
  cri::PodSandboxStatus st;
  st.id = id;
  st.metadata = r.config.metadata;
  st.state = r.ready ? cri::PodSandboxState::kReady : cri::PodSandboxState::kNotReady;
  st.created_at = r.created_at;
  st.network.ip = r.ip;
  for (const auto& ip : r.additional_ips) st.network.additional_ips.push_back({ip});
  st.labels = r.config.labels;
  st.annotations = r.config.annotations;
  return st;
}

std::vector<cri::PodSandbox> Runtime::ListPodSandbox(const cri::PodSandboxFilter& f) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<cri::PodSandbox> out;
  for (const auto& [id, s] : sandboxes_) {
    const auto& r = s.rec;
    if (!f.id.empty() && !base::StartsWith(id, f.id)) continue;
    auto state = r.ready ? cri::PodSandboxState::kReady : cri::PodSandboxState::kNotReady;
    if (f.state && *f.state != state) continue;
    bool match = true;
    for (const auto& [k, v] : f.label_selector) {
      auto l = r.config.labels.find(k);
      if (l == r.config.labels.end() || l->second != v) match = false;
    }
    if (!match) continue;
    out.push_back({id, r.config.metadata, state, r.created_at, r.config.labels, r.config.annotations});
  }
  return out;
}

}  // namespace runtime
