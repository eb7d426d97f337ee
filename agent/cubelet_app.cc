#include "agent/cubelet_app.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "agent/cadvisor_metrics.h"
#include "agent/event_recorder.h"
#include "agent/eviction.h"
#include "agent/https_api_client.h"
#include "agent/informer.h"
#include "agent/kubeconfig.h"
#include "agent/kubelet.h"
#include "agent/kubelet_config_file.h"
#include "agent/kubelet_server.h"
#include "agent/running_pods.h"
#include "agent/node_setters.h"
#include "agent/webhook_authorizer.h"
#include "agent/machine_info.h"
#include "agent/node_lease.h"
#include "agent/node_status.h"
#include "agent/periodic.h"
#include "agent/static_pods.h"
#include "agent/proxy_feed.h"
#include "agent/registry_config.h"
#include "agent/runtime_config.h"
#include "base/file.h"
#include "base/log.h"
#include "base/quantity.h"
#include "base/strings.h"
#include "cgroups/driver.h"
#include "cri/embedded_runtime.h"
#include "netproxy/proxier.h"
#include "runtime/network/bridge_network.h"
#include "runtime/network/cni_network.h"
#include "runtime/network/route_sync.h"

namespace agent {

using nlohmann::json;

std::string DetectNodeIp() {
  std::string dev;
  std::ifstream route("/proc/net/route");
  std::string line;
  std::getline(route, line);  // header
  while (std::getline(route, line)) {
    std::istringstream in(line);
    std::string iface, dest;
    in >> iface >> dest;
    if (dest == "00000000") {
      dev = iface;
      break;
    }
  }
  struct ifaddrs* ifs = nullptr;
  if (getifaddrs(&ifs) != 0) return "";
  std::string first, on_dev;
  for (auto* i = ifs; i; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    if (i->ifa_flags & IFF_LOOPBACK) continue;
    char buf[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, buf, sizeof buf);
    if (first.empty()) first = buf;
    if (!dev.empty() && dev == i->ifa_name && on_dev.empty()) on_dev = buf;
  }
  freeifaddrs(ifs);
  return on_dev.empty() ? first : on_dev;
}

namespace {

std::string NodeName(const CubeletFlags& f) {
  if (!f.hostname_override.empty()) return base::ToLower(f.hostname_override);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return base::ToLower(host);
}

// The kubelet server's data, from the kubelet core and the proxy.
class Backend final : public KubeletServerBackend {
 public:
  Backend(Kubelet* k, netproxy::Proxier* p, cri::RuntimeService* rt, std::string node_name)
      : k_(k), p_(p), rt_(rt), node_name_(std::move(node_name)) {}
  std::string PodsJson() override { return k_->PodList().dump(); }
  base::Result<ContainerLogRef> FindContainerLog(const std::string& ns, const std::string& pod,
                                                 const std::string& container, bool previous) override {
    auto r = k_->ContainerLogPath(ns, pod, container, previous);
    if (!r) return tl::unexpected(r.error());
    ContainerLogRef ref;
    ref.path = r->first;
    ref.running = r->second;
    return ref;
  }
  bool Healthy(std::string* reason) override {
    auto st = rt_->Status();
    if (!st) {
      *reason = "runtime: " + st.error().message;
      return false;
    }
    for (const auto& c : st->conditions) {
      if (c.type == "RuntimeReady" && !c.status) {
        *reason = "runtime not ready: " + c.reason + " " + c.message;
        return false;
      }
    }
    return true;
  }
  std::string MetricsText() override {
    std::string out = k_->MetricsText();
    if (p_) out += p_->MetricsText();
    return out;
  }
  std::string StatsSummaryJson() override {
    auto now = std::chrono::system_clock::now();
    std::string now_text = base::FormatRfc3339(now);
    auto ns_time = [&](int64_t unix_ns) {
      return unix_ns > 0 ? base::FormatRfc3339(base::WallTime(std::chrono::duration_cast<
                                                   base::WallTime::duration>(
                               std::chrono::nanoseconds(unix_ns))))
                         : now_text;
    };
    json node = {{"nodeName", node_name_}};
    if (auto u = ReadNodeUsage()) {
      node["cpu"] = {{"time", now_text}, {"usageCoreNanoSeconds", u->cpu_usage_ns}};
      node["memory"] = {{"time", now_text},
                        {"availableBytes", u->memory_available_bytes},
                        {"usageBytes", u->memory_usage_bytes},
                        {"workingSetBytes", u->memory_working_set_bytes}};
    }
    // Running containers only, as the kubelet's summary: one listing and one stats call for
    // the node, grouped by the pod UID label (their start times from the listing).
    cri::ContainerFilter running;
    running.state = cri::ContainerState::kRunning;
    std::map<std::string, std::pair<std::string, int64_t>> pod_of;  // id -> (pod uid, created)
    if (auto cs = rt_->ListContainers(running)) {
      for (const auto& c : *cs) {
        auto uid = c.labels.find(kLabelPodUid);
        if (uid != c.labels.end()) pod_of[c.id] = {uid->second, c.created_at};
      }
    }
    std::map<std::string, std::vector<cri::ContainerStats>> stats_of;  // by pod uid
    if (auto stats = rt_->ListContainerStats(running)) {
      for (auto& st : *stats) {
        auto it = pod_of.find(st.id);
        if (it != pod_of.end()) stats_of[it->second.first].push_back(std::move(st));
      }
    }
    json pods = json::array();
    // Container filesystem stats as the kubelet's FsStats, with their filesystems' totals
    // (read once per summary: every writable layer is on the image filesystem, every log
    // directory under the pod logs directory).
    FsUsage image_fs = ReadFsUsage(image_fs_), logs_fs = ReadFsUsage(logs_fs_);
    auto fs_block = [](const FsUsage& fs, std::string time, uint64_t used, uint64_t inodes) {
      json b = {{"time", std::move(time)}, {"usedBytes", used}, {"inodesUsed", inodes}};
      if (fs.capacity_bytes >= 0) {
        b["capacityBytes"] = fs.capacity_bytes;
        b["availableBytes"] = fs.available_bytes;
      }
      if (fs.inodes >= 0) {
        b["inodes"] = fs.inodes;
        b["inodesFree"] = fs.inodes_free;
      }
      return b;
    };
    auto list = k_->PodList();
    for (const auto& p : list["items"]) {
      std::string uid = p["metadata"].value("uid", "");
      json ps;
      ps["podRef"] = {{"name", p["metadata"].value("name", "")}, {"namespace", p["metadata"].value("namespace", "")},
                      {"uid", uid}};
      json containers = json::array();
      uint64_t cpu = 0, mem = 0;
      for (const auto& s : stats_of[uid]) {
        std::string cpu_time = ns_time(s.cpu.timestamp);
        std::string mem_time = ns_time(s.memory.timestamp);
        json ctr = {{"name", s.metadata.name},
                    {"startTime", ns_time(pod_of[s.id].second)},
                    {"cpu", {{"time", cpu_time},
                             {"usageCoreNanoSeconds", s.cpu.usage_core_nano_seconds}}},
                    {"memory", {{"time", mem_time},
                                {"workingSetBytes", s.memory.working_set_bytes},
                                {"rssBytes", s.memory.rss_bytes},
                                {"usageBytes", s.memory.usage_bytes}}}};
        // The writable layer (rootfs) and the container's log directory (logs).
        if (s.writable_layer_timestamp > 0) {
          ctr["rootfs"] = fs_block(image_fs, ns_time(s.writable_layer_timestamp),
                                   s.writable_layer_bytes, s.writable_layer_inodes);
        }
        if (auto st = rt_->ContainerStatus(s.id); st && !st->log_path.empty()) {
          std::string dir = st->log_path.substr(0, st->log_path.rfind('/'));
          auto u = base::DirDiskUsage(dir);
          ctr["logs"] = fs_block(logs_fs, now_text, u.bytes, u.inodes);
        }
        containers.push_back(std::move(ctr));
        cpu += s.cpu.usage_core_nano_seconds;
        mem += s.memory.working_set_bytes;
      }
      ps["containers"] = containers;
      ps["cpu"] = {{"time", now_text}, {"usageCoreNanoSeconds", cpu}};
      ps["memory"] = {{"time", now_text}, {"workingSetBytes", mem}};
      pods.push_back(ps);
    }
    return json{{"node", node}, {"pods", pods}}.dump();
  }
  std::string DebugPodsJson() override { return k_->DebugPods().dump(); }
  std::string ConfigzJson() override { return configz_; }
  std::string CadvisorMetricsText() override {
    cri::ContainerFilter running;
    running.state = cri::ContainerState::kRunning;
    auto cs = rt_->ListContainers(running);
    auto stats = rt_->ListContainerStats(running);
    if (!cs || !stats) return "";
    std::map<std::string, cri::ContainerStats> stats_of;
    for (auto& st : *stats) stats_of[st.id] = std::move(st);
    std::vector<CadvisorContainer> out;
    std::map<std::string, size_t> pod_of_sandbox;  // sandbox id -> one of its containers in out
    for (const auto& c : *cs) {
      auto st = stats_of.find(c.id);
      auto pod = c.labels.find(kLabelPodName);
      auto ns = c.labels.find(kLabelPodNamespace);
      if (st == stats_of.end() || pod == c.labels.end() || ns == c.labels.end()) continue;
      CadvisorContainer m;
      m.pod = pod->second;
      m.ns = ns->second;
      m.container = c.metadata.name;
      m.name = c.id;
      m.image = c.image.image;
      if (auto status = rt_->ContainerStatus(c.id)) {
        m.started_at_unix_ns = status->started_at;
        std::string text;
        if (status->pid > 0) {
          if (auto t = base::ReadFile("/proc/" + std::to_string(status->pid) + "/cgroup")) text = *t;
        }
        m.id = CgroupPathFromProcText(text);
      }
      m.stats = std::move(st->second);
      out.push_back(std::move(m));
      pod_of_sandbox.emplace(c.pod_sandbox_id, out.size() - 1);
    }
    // The pods' own cgroups (cAdvisor's series with container=""): the parent of a running
    // container's cgroup, with the pod sandbox's stats.
    for (const auto& [sandbox, i] : pod_of_sandbox) {
      const CadvisorContainer& first = out[i];
      auto slash = first.id.rfind('/');
      auto ps = rt_->PodSandboxStats(sandbox);
      if (!ps || slash == std::string::npos || slash == 0) continue;
      CadvisorContainer p;
      p.pod = first.pod;
      p.ns = first.ns;
      p.id = first.id.substr(0, slash);
      p.stats.cpu = ps->cpu;
      p.stats.memory = ps->memory;
      p.stats.pids = ps->pids;
      out.push_back(std::move(p));
    }
    return agent::CadvisorMetricsText(out);
  }
  std::string RunningPodsJson() override {
    cri::PodSandboxFilter ready;
    ready.state = cri::PodSandboxState::kReady;
    cri::ContainerFilter running;
    running.state = cri::ContainerState::kRunning;
    auto sandboxes = rt_->ListPodSandbox(ready);
    auto containers = rt_->ListContainers(running);
    if (!sandboxes || !containers) return "";
    return agent::RunningPodsJson(*sandboxes, *containers);
  }
  void SetConfigz(std::string json) { configz_ = std::move(json); }
  void SetFilesystems(std::string image_fs, std::string logs_fs) {
    image_fs_ = std::move(image_fs);
    logs_fs_ = std::move(logs_fs);
  }
  // As the kubelet's GetExec: the pod from the pods bound here, then its running container.
  base::Result<std::string> FindExecContainer(const std::string& ns, const std::string& pod,
                                              const std::string& container) override {
    std::string uid = k_->PodUid(ns, pod);
    if (uid.empty()) return base::Fail("pod does not exist", ENOENT);
    cri::ContainerFilter f;
    f.state = cri::ContainerState::kRunning;
    f.label_selector[kLabelPodUid] = uid;
    f.label_selector["io.kubernetes.container.name"] = container;
    auto cs = rt_->ListContainers(f);
    if (!cs) return tl::unexpected(cs.error());
    if (cs->empty()) return base::Fail("container not found (\"" + container + "\")");
    return cs->front().id;
  }
  // As the kubelet's getPortForward + GetPortForward.
  base::Result<std::string> FindPodSandbox(const std::string& ns, const std::string& pod,
                                           const std::string& uid) override {
    std::string have = k_->PodUid(ns, pod);
    if (have.empty()) return base::Fail("pod does not exist", ENOENT);
    if (!uid.empty() && uid != have) return base::Fail("pod not found", ENOENT);
    cri::PodSandboxFilter f;
    f.state = cri::PodSandboxState::kReady;
    f.label_selector[kLabelPodUid] = have;
    auto sandboxes = rt_->ListPodSandbox(f);
    if (!sandboxes) return tl::unexpected(sandboxes.error());
    if (sandboxes->empty()) return base::Fail("pod not found (\"" + pod + "_" + ns + "\")");
    return sandboxes->front().id;
  }

 private:
  Kubelet* k_;
  netproxy::Proxier* p_;
  cri::RuntimeService* rt_;
  std::string node_name_;
  std::string configz_;  // fixed at start-up (the effective flags and --config)
  std::string image_fs_;  // a path on the filesystem of the images and writable layers
  std::string logs_fs_;   // the pod logs directory
};

std::map<std::string, std::string> ParseLabels(const std::string& s) {
  std::map<std::string, std::string> out;
  for (const auto& kv : base::Split(s, ',', true)) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) out[kv] = "";
    else out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

}  // namespace

struct CubeletApp::State {
  base::RealClock clock;
  ApiClientPtr api;
  ApiClientPtr proxy_api;
  std::unique_ptr<cri::EmbeddedRuntime> runtime;
  std::unique_ptr<Kubelet> kubelet;
  std::shared_ptr<ApiEventRecorder> events;
  std::unique_ptr<NodeStatusManager> node_status;
  std::unique_ptr<NodeLeaseController> lease;
  std::unique_ptr<Informer> pods;
  std::unique_ptr<Informer> nodes;
  std::unique_ptr<netproxy::Proxier> proxier;
  std::unique_ptr<ProxyFeed> proxy_feed;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Authorizer> authorizer;
  std::unique_ptr<TokenAuthenticator> token_authenticator;
  std::unique_ptr<KubeletServer> server;
  std::unique_ptr<runtime::net::RouteSync> routes;
  std::mutex route_mu;
  std::string pod_cidr;
  std::unique_ptr<eviction::Manager> eviction;
  Periodic eviction_loop;  // after `eviction` and `kubelet`: stopped first
  std::mutex node_uid_mu;
  std::string node_uid;  // once registered
  std::unique_ptr<StaticPodSource> static_pods;  // after `kubelet`: stopped first
};

CubeletApp::CubeletApp(CubeletFlags flags) : flags_(std::move(flags)), s_(std::make_unique<State>()) {}

CubeletApp::~CubeletApp() { Stop(); }

base::Result<> CubeletApp::Start() {
  const CubeletFlags& f = flags_;
  if (!f.config.empty()) base::log::Info("kubelet config file applied", {{"path", f.config}});
  for (const auto& w : f.config_warnings) base::log::Warn(w, {{"path", f.config}});
  std::string node = NodeName(f);
  std::vector<std::string> node_ips = f.node_ip;
  if (node_ips.empty()) {
    std::string ip = DetectNodeIp();
    if (ip.empty()) return base::Fail("cannot determine the node IP: no IPv4 address found; set --node-ip");
    node_ips.push_back(ip);
  }
  base::log::Info("starting cubelet", {{"node", node}, {"nodeIP", base::Join(node_ips, ",")}, {"rootDir", f.root_dir}});

  // API clients.
  auto kc = LoadKubeconfig(f.kubeconfig);
  if (!kc) return tl::unexpected(kc.error());
  auto api = HttpsApiClient::Create(*kc);
  if (!api) return tl::unexpected(api.error());
  s_->api = *api;
  s_->proxy_api = s_->api;
  if (!f.proxy_kubeconfig.empty()) {
    auto pkc = LoadKubeconfig(f.proxy_kubeconfig);
    if (!pkc) return tl::unexpected(pkc.error());
    auto papi = HttpsApiClient::Create(*pkc);
    if (!papi) return tl::unexpected(papi.error());
    s_->proxy_api = *papi;
  }

  // Runtime: cgroups, pod network, embedded runtime.
  CUBELET_TRY(base::MkdirAll(f.root_dir, 0700));
  CUBELET_TRY(base::MkdirAll(f.run_dir, 0700));
  auto driver = cgroups::Detect(f.cgroup_root);
  if (!driver) return tl::unexpected(driver.error().Wrap("cgroups"));
  runtime::net::PodNetworkPtr network;
  if (f.network_plugin == "cni") {
    runtime::net::CniNetworkOptions o;
    o.conf_dir = f.cni_conf_dir;
    o.bin_dirs = f.cni_bin_dir;
    o.cache_dir = f.root_dir + "/network/cni";
    network = std::make_unique<runtime::net::CniNetwork>(o);
  } else {
    runtime::net::BridgeNetworkOptions o;
    o.bridge_name = f.bridge_name;
    o.state_dir = f.root_dir + "/network";
    o.cluster_cidr = f.cluster_cidr;
    network = std::make_unique<runtime::net::BridgeNetwork>(o);
  }
  // Registries: --registry-config (mirrors, plain-HTTP registries, node credentials), plus the
  // kubelet's node-level credentials file <root-dir>/config.json when present.
  auto registry = std::make_shared<RegistryConfig>();
  if (!f.registry_config.empty()) {
    auto rc = LoadRegistryConfig(f.registry_config);
    if (!rc) return tl::unexpected(rc.error().Wrap("--registry-config"));
    *registry = std::move(*rc);
  }
  if (std::string node_creds = f.root_dir + "/config.json"; base::PathExists(node_creds)) {
    auto text = base::ReadFile(node_creds);
    base::Result<> added = text ? registry->credentials.Add(*text, node_creds)
                                : base::Result<>(tl::unexpected(text.error()));
    if (!added) base::log::Warn("ignoring node registry credentials", {{"err", added.error().message}});
  }
  base::log::Info("registry configuration", {{"mirrors", registry->mirrors.size()},
                                             {"insecure", registry->insecure_registries.size()},
                                             {"credentials", registry->credentials.size()}});
  cri::EmbeddedRuntimeOptions ro;
  ro.registry.mirrors = registry->mirrors;
  ro.registry.insecure_registries = registry->insecure_registries;
  ro.root_dir = f.root_dir;
  ro.run_dir = f.run_dir;
  ro.image_dir = f.image_dir;
  ro.cgroup_driver = std::move(*driver);
  ro.pod_network = std::move(network);
  ro.monitor_path = f.monitor_path;
  auto rt = cri::EmbeddedRuntime::Create(std::move(ro));
  if (!rt) return tl::unexpected(rt.error().Wrap("embedded runtime"));
  s_->runtime = std::move(*rt);
  cri::EmbeddedRuntime* runtime = s_->runtime.get();
  if (!f.pod_cidr.empty()) {
    if (auto r = runtime->UpdateRuntimeConfig(f.pod_cidr); !r)
      base::log::Warn("pod network not ready yet", {{"podCIDR", f.pod_cidr}, {"err", r.error().message}});
    s_->pod_cidr = f.pod_cidr;
  }

  // Events.
  ApiEventRecorder::Options eo;
  eo.host = node;
  s_->events = std::make_shared<ApiEventRecorder>(s_->api, eo, &s_->clock);
  s_->events->Start();

  // Kubelet core.
  KubeletOptions ko;
  ko.root_dir = f.root_dir;
  ko.node.node_name = node;
  ko.node.node_ips = node_ips;
  ko.node.cluster_dns = f.cluster_dns;
  ko.node.cluster_domain = f.cluster_domain;
  ko.node.resolv_conf = f.resolv_conf;
  ko.node.pod_logs_dir = f.pod_logs_dir;
  ko.node.pod_pids_limit = f.pod_max_pids;
  ko.node.cgroups_per_qos = f.cgroups_per_qos;
  auto log_max_size = base::ParseQuantity(f.container_log_max_size);
  if (!log_max_size) {
    return tl::unexpected(log_max_size.error().Wrap("--container-log-max-size " + f.container_log_max_size));
  }
  ko.container_logs.max_size_bytes = *log_max_size;
  ko.container_logs.max_files = f.container_log_max_files;
  CUBELET_TRY(ValidateContainerLogOptions(ko.container_logs));
  ko.image_gc.high_threshold_percent = f.image_gc_high_threshold;
  ko.image_gc.low_threshold_percent = f.image_gc_low_threshold;
  ko.image_gc.min_age = std::chrono::duration_cast<std::chrono::seconds>(f.minimum_image_gc_age);
  ko.image_gc.max_age = std::chrono::duration_cast<std::chrono::seconds>(f.image_maximum_gc_age);
  CUBELET_TRY(ValidateImageGcPolicy(ko.image_gc));
  ko.registry = registry;
  if (auto mem = base::ReadFile("/proc/meminfo")) {
    std::istringstream in(*mem);
    std::string key;
    int64_t kb;
    while (in >> key >> kb) {
      if (key == "MemTotal:") ko.node.memory_capacity_bytes = kb * 1024;
      in.ignore(256, '\n');
    }
  }
  {
    State* st = s_.get();
    ko.node_uid = [st] {
      std::lock_guard lk(st->node_uid_mu);
      return st->node_uid;
    };
  }
  s_->kubelet = std::make_unique<Kubelet>(ko, s_->api, runtime, runtime, &s_->clock);
  auto events = s_->events;
  s_->kubelet->SetEventFn([events](const Pod& pod, const std::string& type, const std::string& reason,
                                   const std::string& message, const std::string& field_path) {
    ObjectReference ref;
    ref.kind = "Pod";
    ref.namespace_ = pod.ns;
    ref.name = pod.name;
    ref.uid = pod.uid;
    ref.api_version = "v1";
    ref.resource_version = pod.resource_version;
    ref.field_path = field_path;
    events->Event(ref, type, reason, message);
  });
  s_->kubelet->SetNodeEventFn([events, node](const std::string& type, const std::string& reason,
                                             const std::string& message) {
    events->Event(NodeReference(node), type, reason, message);
  });
  // Node-pressure eviction (K:pkg/kubelet/eviction): thresholds, admission, one pod per cycle.
  std::vector<eviction::Threshold> thresholds = eviction::DefaultThresholds();
  if (!f.eviction_hard.empty()) {
    auto t = eviction::ParseThresholds(f.eviction_hard);
    if (!t) return tl::unexpected(t.error().Wrap("--eviction-hard"));
    thresholds = *t;
  }
  if (!f.eviction_soft.empty()) {
    auto t = eviction::ParseSoftThresholds(f.eviction_soft, f.eviction_soft_grace_period);
    if (!t) return tl::unexpected(t.error().Wrap("--eviction-soft"));
    thresholds.insert(thresholds.end(), t->begin(), t->end());
  } else if (!f.eviction_soft_grace_period.empty()) {
    return base::Fail("--eviction-soft-grace-period given without --eviction-soft");
  }
  {
    Kubelet* kl = s_->kubelet.get();
    std::string root_dir = f.root_dir;
    std::string image_dir = f.image_dir.empty() ? f.root_dir + "/images" : f.image_dir;
    eviction::Manager::Deps d;
    d.observe = [root_dir, image_dir] {
      MachineInfoReader::Options mo;
      mo.fs_path = root_dir;
      ResourceUsage u = MachineInfoReader(mo).Usage();
      eviction::Observations obs;
      if (u.memory_available_bytes >= 0 && u.memory_capacity_bytes > 0) {
        obs[eviction::Signal::kMemoryAvailable] = {u.memory_available_bytes, u.memory_capacity_bytes};
      }
      if (u.fs_capacity_bytes > 0) {
        obs[eviction::Signal::kNodeFsAvailable] = {u.fs_available_bytes, u.fs_capacity_bytes};
      }
      if (u.fs_inodes > 0) obs[eviction::Signal::kNodeFsInodesFree] = {u.fs_inodes_free, u.fs_inodes};
      if (u.pid_max > 0 && u.pids_used >= 0) {
        obs[eviction::Signal::kPidAvailable] = {u.pid_max - u.pids_used, u.pid_max};
      }
      FsUsage image_fs = ReadFsUsage(image_dir);
      if (image_fs.capacity_bytes > 0) {
        obs[eviction::Signal::kImageFsAvailable] = {image_fs.available_bytes,
                                                    image_fs.capacity_bytes};
      }
      if (image_fs.inodes > 0) {
        obs[eviction::Signal::kImageFsInodesFree] = {image_fs.inodes_free, image_fs.inodes};
      }
      return obs;
    };
    d.candidates = [kl, runtime] {
      // Usage per pod uid and container name, from the running containers' stats.
      std::map<std::string, std::map<std::string, std::pair<int64_t, int64_t>>> use;  // mem, pids
      cri::ContainerFilter cf;
      cf.state = cri::ContainerState::kRunning;
      std::map<std::string, std::pair<std::string, std::string>> owner;  // id -> (uid, name)
      if (auto cs = runtime->ListContainers(cf)) {
        for (const auto& c : *cs) {
          auto uid = c.labels.find(kLabelPodUid);
          if (uid != c.labels.end()) owner[c.id] = {uid->second, c.metadata.name};
        }
      }
      if (auto stats = runtime->ListContainerStats(cf)) {
        for (const auto& st : *stats) {
          auto it = owner.find(st.id);
          if (it == owner.end()) continue;
          auto& u = use[it->second.first][it->second.second];
          u.first += static_cast<int64_t>(st.memory.working_set_bytes);
          u.second += static_cast<int64_t>(st.pids);
        }
      }
      std::vector<eviction::Candidate> out;
      for (const auto& p : kl->ActivePodsForEviction()) {
        eviction::Candidate c;
        c.uid = p.uid;
        c.ns = p.ns;
        c.name = p.name;
        c.priority = p.priority;
        c.critical = p.critical;
        c.termination_grace_seconds = p.termination_grace_seconds;
        for (const auto& [name, request] : p.memory_requests) {
          auto u = use[p.uid][name];
          c.containers.push_back({name, u.first, request});
          c.pids += u.second;
        }
        out.push_back(std::move(c));
      }
      return out;
    };
    d.evict = [kl](const eviction::Candidate& pod, const std::string& message, int64_t grace) {
      kl->FailPod(pod.uid, "Evicted", message, true, grace);
    };
    s_->eviction = std::make_unique<eviction::Manager>(
        thresholds,
        std::chrono::duration_cast<std::chrono::seconds>(f.eviction_pressure_transition_period),
        std::move(d), f.eviction_max_pod_grace_period);
    eviction::Manager* em = s_->eviction.get();
    s_->kubelet->SetAdmitFn([em](const Pod& pod, const json& api_pod)
                                -> std::optional<std::pair<std::string, std::string>> {
      bool tolerates = false;
      const json spec = api_pod.value("spec", json::object());
      for (const auto& t : spec.value("tolerations", json::array())) {
        std::string key = t.value("key", ""), op = t.value("operator", "Equal");
        std::string effect = t.value("effect", "");
        bool key_ok = key == "node.kubernetes.io/memory-pressure" || (key.empty() && op == "Exists");
        bool value_ok = op == "Exists" || t.value("value", "").empty();
        if (key_ok && value_ok && (effect.empty() || effect == "NoSchedule")) tolerates = true;
      }
      auto why = eviction::AdmissionRejection(pod, tolerates, em->Conditions());
      if (!why) return std::nullopt;
      return std::make_pair(std::string("Evicted"), *why);
    });
  }
  s_->kubelet->Start();
  // The kubelet's evictionMonitoringPeriod.
  s_->eviction_loop.Start(std::chrono::seconds(10), [em = s_->eviction.get()] { em->Synchronize(); });

  // Node status and lease.
  NodeStatusOptions no;
  no.node.node_name = node;
  no.node.hostname = node;
  no.node.node_ips = node_ips;
  no.node.node_labels = ParseLabels(f.node_labels);
  auto taints = ParseTaints(base::Join(f.register_with_taints, ","));
  if (!taints) return tl::unexpected(taints.error().Wrap("--register-with-taints"));
  no.node.register_with_taints = *taints;
  no.node.kubelet_port = f.port;
  no.node.max_pods = f.max_pods;
  no.register_node = f.register_node;
  no.pod_cidr = f.pod_cidr;
  no.state_dir = f.root_dir;  // disk capacity and DiskPressure are measured where pods live
  no.update_frequency = std::chrono::seconds(f.node_status_update_frequency);
  // Allocatable and the node's pressure follow the same thresholds as the eviction manager.
  for (const auto& t : thresholds) {
    if (t.soft) continue;  // allocatable subtracts the hard thresholds
    if (t.signal == eviction::Signal::kMemoryAvailable) {
      no.node.eviction_hard_memory_bytes = eviction::ThresholdValue(t, ko.node.memory_capacity_bytes);
    }
    if (t.signal == eviction::Signal::kNodeFsAvailable && t.percentage) {
      no.node.eviction_hard_nodefs_fraction = static_cast<float>(*t.percentage);
    }
  }
  NodeStatusHooks hooks;
  hooks.pressure_conditions = [em = s_->eviction.get()] { return em->Conditions(); };
  hooks.runtime_status = [runtime] { return runtime->Status(); };
  hooks.list_images = [runtime] { return runtime->ListImages(); };
  State* s = s_.get();
  hooks.on_pod_cidr = [runtime, s](const std::string& cidrs) {
    std::string first = cidrs.substr(0, cidrs.find(','));
    if (first.empty()) return;
    auto r = runtime->UpdateRuntimeConfig(first);
    if (!r) base::log::Warn("pod network setup failed", {{"podCIDR", first}, {"err", r.error().message}});
    else base::log::Info("pod CIDR set", {{"podCIDR", first}});
    std::lock_guard lk(s->route_mu);
    s->pod_cidr = first;
  };
  // The Lease is created once the Node's uid is known: renew right after registration.
  hooks.on_registered = [s](const std::string& uid) {
    {
      std::lock_guard lk(s->node_uid_mu);
      s->node_uid = uid;
    }
    if (s->kubelet) s->kubelet->OnNodeRegistered();
    if (s->lease) s->lease->RequestSync();
  };
  NodeLeaseOptions lo;
  lo.node_name = node;
  lo.node_uid = [s] { return s->node_status ? s->node_status->NodeUid() : std::string(); };
  s_->lease = std::make_unique<NodeLeaseController>(lo, s_->api, &s_->clock);
  s_->node_status = std::make_unique<NodeStatusManager>(no, s_->api, hooks, nullptr, s_->events, &s_->clock);
  s_->node_status->Start();
  s_->lease->Start();

  Kubelet* k = s_->kubelet.get();
  // Static pods, read before the API's pods so that a restart keeps them (orphan cleanup runs
  // once the API's pods are listed) and their mirror pods are recognised.
  if (!f.pod_manifest_path.empty()) {
    StaticPodSource::Handlers sh;
    sh.upsert = [k](const Json& p) { k->OnStaticPodUpsert(p); };
    sh.remove = [k](const Json& p) { k->OnStaticPodDelete(p); };
    s_->static_pods = std::make_unique<StaticPodSource>(f.pod_manifest_path, node, sh);
    s_->static_pods->Scan();
    s_->static_pods->Start(std::chrono::seconds(20));  // the kubelet's fileCheckFrequency
  }

  // Pods bound to this node.
  InformerHandlers ph;
  ph.on_add = [k](const Json& o) { k->OnPodUpsert(o); };
  ph.on_update = [k](const Json&, const Json& o) { k->OnPodUpsert(o); };
  ph.on_delete = [k](const Json& o) { k->OnPodDelete(o); };
  ph.on_synced = [k] { k->OnPodsSynced(); };
  InformerOptions po;
  po.resource_path = "/api/v1/pods";
  po.field_selector = "spec.nodeName=" + node;
  po.name = "pods";
  s_->pods = std::make_unique<Informer>(s_->api, po, ph);
  s_->pods->Start();

  // Other nodes' pod CIDRs routed to their InternalIPs (host-gw), for the built-in network.
  if (f.network_plugin == "bridge" && f.host_gw_routes) {
    s_->routes = std::make_unique<runtime::net::RouteSync>();
    auto resync = [s, node] {
      std::vector<runtime::net::PeerNode> peers;
      for (const auto& n : s->nodes->List()) {
        runtime::net::PeerNode p;
        p.name = n["metadata"].value("name", "");
        if (p.name == node) continue;
        p.pod_cidr = n.value("spec", json::object()).value("podCIDR", "");
        if (n.contains("status") && n["status"].contains("addresses")) {
          for (const auto& a : n["status"]["addresses"]) {
            if (a.value("type", "") == "InternalIP" && p.internal_ip.empty() &&
                a.value("address", "").find(':') == std::string::npos)
              p.internal_ip = a.value("address", "");
          }
        }
        if (!p.pod_cidr.empty() && !p.internal_ip.empty()) peers.push_back(p);
      }
      std::lock_guard lk(s->route_mu);
      std::optional<runtime::net::Ipv4Cidr> own;
      if (!s->pod_cidr.empty()) {
        if (auto c = runtime::net::Ipv4Cidr::Parse(s->pod_cidr)) own = *c;
      }
      auto r = s->routes->Sync(peers, own);
      if (!r) base::log::Warn("pod CIDR routes to other nodes", {{"err", r.error().message}});
    };
    InformerHandlers nh;
    nh.on_add = [resync](const Json&) { resync(); };
    nh.on_update = [resync](const Json& a, const Json& b) {
      if (a.value("spec", json::object()) != b.value("spec", json::object()) ||
          a["status"].value("addresses", json::array()) != b["status"].value("addresses", json::array()))
        resync();
    };
    nh.on_delete = [resync](const Json&) { resync(); };
    InformerOptions nopt;
    nopt.resource_path = "/api/v1/nodes";
    nopt.name = "nodes";
    s_->nodes = std::make_unique<Informer>(s_->api, nopt, nh);
    s_->nodes->Start();
  }

  // Service proxy.
  if (f.proxy_mode != "none") {
    netproxy::ProxierOptions po2;
    po2.node_name = node;
    po2.node_ips = node_ips;
    po2.cluster_cidr = f.cluster_cidr;
    po2.masquerade_all = f.masquerade_all;
    po2.nodeport_addresses = f.nodeport_addresses;
    po2.healthz_bind_address = f.healthz_bind_address_proxy;
    po2.metrics_bind_address = f.metrics_bind_address;
    auto mode = netproxy::ParseProxyMode(f.proxy_mode);
    if (!mode) return base::Fail("--proxy-mode " + f.proxy_mode + " is not supported");
    po2.mode = *mode;
    auto proxier = netproxy::Proxier::Create(po2);
    if (!proxier) return tl::unexpected(proxier.error().Wrap("service proxy"));
    s_->proxier = std::move(*proxier);
    s_->proxy_feed = std::make_unique<ProxyFeed>(s_->proxy_api, s_->proxier.get());
    s_->proxy_feed->Start();
  }

  // Kubelet HTTP API and debug socket.
  s_->backend = std::make_unique<Backend>(s_->kubelet.get(), s_->proxier.get(), runtime, node);
  s_->backend->SetFilesystems(f.image_dir.empty() ? f.root_dir + "/images" : f.image_dir,
                              f.pod_logs_dir);
  s_->backend->SetConfigz(KubeletConfigzJson(f));
  KubeletServerOptions so;
  so.node_name = node;
  so.address = f.address;
  so.port = f.port;
  so.tls_cert_file = f.tls_cert_file;
  so.tls_private_key_file = f.tls_private_key_file;
  so.cert_dir = f.root_dir + "/pki";
  so.cert_sans = {node};
  for (const auto& ip : node_ips) so.cert_sans.push_back(ip);
  so.client_ca_file = f.client_ca_file;
  so.healthz_address = f.healthz_bind_address;
  so.healthz_port = f.healthz_port;
  so.debug_socket = f.debug_socket;
  so.runtime = runtime;
  if (f.authorization_mode == "Webhook") {
    WebhookAuthorizerOptions wo;
    wo.authorized_ttl = f.authorization_webhook_cache_authorized_ttl;
    wo.unauthorized_ttl = f.authorization_webhook_cache_unauthorized_ttl;
    s_->authorizer = std::make_unique<WebhookAuthorizer>(s_->api, wo, &s_->clock);
  } else {
    s_->authorizer = std::make_unique<AllowAuthenticatedAuthorizer>();
  }
  so.authorizer = s_->authorizer.get();
  if (f.authentication_token_webhook) {
    s_->token_authenticator = std::make_unique<WebhookTokenAuthenticator>(
        s_->api, f.authentication_token_webhook_cache_ttl, &s_->clock);
    so.token_authenticator = s_->token_authenticator.get();
  }
  base::log::Info("kubelet API authorization", {{"mode", f.authorization_mode},
                                                {"tokenWebhook", f.authentication_token_webhook ? "true" : "false"}});
  s_->server = std::make_unique<KubeletServer>(so, s_->backend.get());
  CUBELET_TRY(s_->server->Start());
  base::log::Info("cubelet started", {{"node", node}, {"server", s_->api->Endpoint()}, {"port", f.port}});
  return {};
}

void CubeletApp::Stop() {
  if (!s_) return;
  if (s_->server) s_->server->Stop();
  if (s_->pods) s_->pods->Stop();
  if (s_->nodes) s_->nodes->Stop();
  if (s_->proxy_feed) s_->proxy_feed->Stop();
  if (s_->proxier) s_->proxier->Stop();
  s_->eviction_loop.Stop();
  if (s_->static_pods) s_->static_pods->Stop();
  if (s_->kubelet) s_->kubelet->Stop();
  if (s_->lease) s_->lease->Stop();
  if (s_->node_status) s_->node_status->Stop();
  if (s_->events) s_->events->Stop();
}

}  // namespace agent
