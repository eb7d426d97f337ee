#include "agent/node_status.h"

#include <nlohmann/json.hpp>

#include "base/log.h"

namespace agent {
namespace {

constexpr std::string_view kStrategicMergePatch = "application/strategic-merge-patch+json";

// "HTTP 403 Forbidden: nodes \"x\" is forbidden: ..." or the transport error.
std::string Describe(const Result<ApiResponse>& r) {
  if (!r) return r.error().message;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  std::string out = "HTTP " + std::to_string(r->status);
  if (j.is_object() && j.value("kind", "") == "Status") {
    std::string reason = j.value("reason", "");
    if (!reason.empty()) out += " " + reason;
    std::string msg = j.value("message", "");
    if (!msg.empty()) out += ": " + msg;
  } else if (!r->body.empty()) {
    out += ": " + r->body.substr(0, 256);
  }
  return out;
}

}  // namespace

NodeStatusManager::NodeStatusManager(NodeStatusOptions options, ApiClientPtr api,
                                     NodeStatusHooks hooks, MachineInfoSourcePtr machine,
                                     EventRecorderPtr events, const base::Clock* clock)
    : options_(std::move(options)),
      api_(std::move(api)),
      hooks_(std::move(hooks)),
      machine_(std::move(machine)),
      events_(std::move(events)),
      clock_(clock ? clock : &real_clock_) {
  if (!machine_) {
    MachineInfoReader::Options mo;
    mo.fs_path = options_.state_dir;
    machine_ = std::make_shared<MachineInfoReader>(mo);
  }
  if (options_.node.hostname.empty()) options_.node.hostname = options_.node.node_name;
}

NodeStatusManager::~NodeStatusManager() { Stop(); }

void NodeStatusManager::Start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Run(); });
}

void NodeStatusManager::Stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeStatusManager::RequestUpdate() {
  {
    std::lock_guard lk(mu_);
    update_requested_ = true;
  }
  cv_.notify_all();
}

std::string NodeStatusManager::NodeUid() const {
  std::lock_guard lk(mu_);
  return node_uid_;
}

bool NodeStatusManager::Registered() const {
  std::lock_guard lk(mu_);
  return registered_;
}

std::string NodeStatusManager::PodCidrs() const {
  std::lock_guard lk(mu_);
  return pod_cidrs_;
}

bool NodeStatusManager::WaitFor(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return stopping_ || update_requested_; });
  update_requested_ = false;
  return !stopping_;
}

void NodeStatusManager::Run() {
  if (!options_.pod_cidr.empty()) UpdatePodCidr(options_.pod_cidr);
  if (events_) {
    events_->Event(NodeReference(options_.node.node_name), kEventNormal, "Starting",
                   "Starting kubelet.");
  }
  while (true) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
    }
    if (options_.register_node && !Registered()) {
      if (!RegisterWithApiServer()) return;  // stopping
    }
    if (auto r = UpdateNodeStatus(); !r) {
      base::log::Error("node status not updated",
                       {{"node", options_.node.node_name}, {"error", r.error().message}});
    }
    if (!WaitFor(options_.update_frequency)) return;
  }
}

void NodeStatusManager::EnsureNodeIPs() {
  if (node_ips_checked_) return;
  node_ips_checked_ = true;
  if (!options_.node.node_ips.empty()) return;
  auto ip = DetectNodeIP(options_.node.hostname);
  if (!ip) {
    base::log::Warn("node has no InternalIP",
                    {{"node", options_.node.node_name}, {"error", ip.error().message}});
    return;
  }
  base::log::Info("detected node IP", {{"node", options_.node.node_name}, {"ip", *ip}});
  options_.node.node_ips = {*ip};
}

NodeObservation NodeStatusManager::Observe() {
  EnsureNodeIPs();
  NodeObservation obs;
  obs.now = clock_->Now();
  if (auto info = machine_->Info()) {
    machine_info_ = std::move(*info);
  } else {
    base::log::Warn("machine info not read", {{"error", info.error().message}});
  }
  obs.machine = machine_info_;
  obs.usage = machine_->Usage();
  if (hooks_.pressure_conditions) obs.pressure = hooks_.pressure_conditions();

  Result<cri::RuntimeStatus> status =
      hooks_.runtime_status ? hooks_.runtime_status()
                            : Result<cri::RuntimeStatus>(base::Fail("no runtime status source"));
  if (!status) {
    base::log::Warn("container runtime sanity check failed", {{"error", status.error().message}});
  }
  readiness_.Observe(status, obs.now);
  obs.readiness_errors = readiness_.Errors(obs.now);

  if (hooks_.list_images) {
    if (auto images = hooks_.list_images()) {
      obs.images = std::move(*images);
    } else {
      // Keep what the node reports rather than flapping the list to empty.
      base::log::Warn("image list not read", {{"error", images.error().message}});
    }
  }
  return obs;
}

bool NodeStatusManager::UpdatePodCidr(const std::string& cidrs) {
  if (cidrs.empty()) return false;
  {
    std::lock_guard lk(mu_);
    if (pod_cidrs_ == cidrs) return false;
    pod_cidrs_ = cidrs;
  }
  base::log::Info("pod CIDR updated", {{"node", options_.node.node_name}, {"podCIDRs", cidrs}});
  if (hooks_.on_pod_cidr) hooks_.on_pod_cidr(cidrs);
  return true;
}

void NodeStatusManager::RecordEvents(const std::vector<NodeEvent>& events) {
  if (!events_) return;
  for (const auto& e : events) {
    events_->Event(NodeReference(options_.node.node_name), e.type, e.reason, e.message);
  }
}

bool NodeStatusManager::RegisterWithApiServer() {
  auto step = options_.register_backoff_initial;
  while (true) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return false;
    }
    auto r = TryRegister();
    if (r && *r) return true;
    base::log::Warn("unable to register node with API server",
                    {{"node", options_.node.node_name},
                     {"endpoint", api_->Endpoint()},
                     {"error", r ? std::string("not registered") : r.error().message},
                     {"retry_in_ms", step.count()}});
    {
      std::unique_lock lk(mu_);
      if (cv_.wait_for(lk, step, [&] { return stopping_; })) return false;
    }
    step = std::min(step * 2, options_.register_backoff_max);
  }
}

Result<bool> NodeStatusManager::TryRegister() {
  const std::string& name = options_.node.node_name;
  std::vector<NodeEvent> events;
  NodeObservation obs = Observe();
  std::string body = BuildRegistrationNode(options_.node, obs, &events);
  auto created = api_->Do("POST", "/api/v1/nodes", body, "application/json");
  if (!created) return base::Fail("register node '" + name + "': " + Describe(created));

  std::string node_json;
  if (created->ok()) {
    node_json = created->body;
    base::log::Info("node registered", {{"node", name}});
  } else if (created->status == 409) {
    // AlreadyExists: adopt it; re-assert what the kubelet owns, never delete and re-create.
    auto existing = api_->Do("GET", NodePath(), {}, "application/json");
    if (!existing || !existing->ok()) {
      return base::Fail("register node '" + name +
                        "': it exists, but get failed: " + Describe(existing));
    }
    auto patch = ReconcileExistingNode(existing->body, body);
    if (!patch) return tl::unexpected(patch.error().Wrap("register node '" + name + "'"));
    node_json = existing->body;
    if (patch->has_value()) {
      auto patched = api_->Do("PATCH", NodePath() + "/status", **patch, kStrategicMergePatch);
      if (!patched || !patched->ok()) {
        return base::Fail("register node '" + name +
                          "': reconcile existing node: " + Describe(patched));
      }
      node_json = patched->body;
    }
    base::log::Info("node already registered, reconciled", {{"node", name}});
  } else {
    return base::Fail("register node '" + name + "': " + Describe(created));
  }

  auto meta = ParseNodeMeta(node_json);
  std::string uid = meta ? meta->uid : "";
  {
    std::lock_guard lk(mu_);
    registered_ = true;
    node_uid_ = uid;
  }
  if (created->ok()) RecordEvents(events);
  if (meta) UpdatePodCidr(meta->pod_cidrs);
  if (hooks_.on_registered) hooks_.on_registered(uid);
  return true;
}

Result<> NodeStatusManager::UpdateNodeStatus() {
  for (int i = 0; i < options_.update_retries; ++i) {
    auto r = TryUpdateNodeStatus(i);
    if (r) return {};
    base::log::Warn(
        "error updating node status, will retry",
        {{"node", options_.node.node_name}, {"attempt", i + 1}, {"error", r.error().message}});
    std::lock_guard lk(mu_);
    if (stopping_) break;
  }
  return base::Fail("update node '" + options_.node.node_name + "' status: exceeds retry count " +
                    std::to_string(options_.update_retries));
}

Result<bool> NodeStatusManager::TryUpdateNodeStatus(int attempt) {
  const std::string& name = options_.node.node_name;
  // The first try may be served from the API server's cache (cheap); retries read etcd.
  auto got = api_->Do("GET", NodePath() + (attempt == 0 ? "?resourceVersion=0" : ""), {},
                      "application/json");
  if (!got || !got->ok()) return base::Fail("get node '" + name + "': " + Describe(got));

  auto meta = ParseNodeMeta(got->body);
  if (!meta) return tl::unexpected(meta.error().Wrap("get node '" + name + "'"));
  bool cidr_changed = UpdatePodCidr(meta->pod_cidrs);
  if (!meta->uid.empty()) {
    std::lock_guard lk(mu_);
    node_uid_ = meta->uid;
  }

  NodeObservation obs = Observe();
  auto update = UpdateNode(got->body, options_.node, obs);
  if (!update) return tl::unexpected(update.error().Wrap("node '" + name + "'"));
  auto mono = clock_->Monotonic();
  bool report_due = !last_report_ || mono - *last_report_ >= options_.report_frequency;
  if (!update->changed && !cidr_changed && !report_due) return false;

  auto patched = api_->Do("PATCH", NodePath() + "/status", update->patch, kStrategicMergePatch);
  if (!patched || !patched->ok()) {
    return base::Fail("patch node '" + name + "' status: " + Describe(patched));
  }
  last_report_ = mono;
  RecordEvents(update->events);
  return true;
}

}  // namespace agent
