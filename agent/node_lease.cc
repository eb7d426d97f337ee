#include "agent/node_lease.h"

#include <nlohmann/json.hpp>
#include <random>

#include "base/log.h"

namespace agent {
namespace {

using ojson = nlohmann::ordered_json;

std::string Describe(const Result<ApiResponse>& r) {
  if (!r) return r.error().message;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  std::string out = "HTTP " + std::to_string(r->status);
  if (j.is_object() && j.value("kind", "") == "Status") {
    std::string reason = j.value("reason", "");
    if (!reason.empty()) out += " " + reason;
    std::string msg = j.value("message", "");
    if (!msg.empty()) out += ": " + msg;
  }
  return out;
}

}  // namespace

NodeLeaseController::NodeLeaseController(NodeLeaseOptions options, ApiClientPtr api,
                                         const base::Clock* clock)
    : options_(std::move(options)), api_(std::move(api)), clock_(clock ? clock : &real_clock_) {}

NodeLeaseController::~NodeLeaseController() { Stop(); }

std::string NodeLeaseController::LeasePath() const {
  return "/apis/coordination.k8s.io/v1/namespaces/" + options_.lease_namespace + "/leases/" +
         options_.node_name;
}

void NodeLeaseController::Start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    std::mt19937_64 rng(std::random_device{}());
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    do {
      Sync();
      // wait.JitterUntil: period + rand * jitter * period, counted after the sync (sliding).
      auto jitter = std::chrono::duration_cast<std::chrono::milliseconds>(
          options_.renew_interval * (options_.jitter * unit(rng)));
      if (!WaitForTick(options_.renew_interval + jitter)) break;
    } while (true);
  });
}

void NodeLeaseController::Stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeLeaseController::RequestSync() {
  {
    std::lock_guard lk(mu_);
    sync_requested_ = true;
  }
  cv_.notify_all();
}

bool NodeLeaseController::WaitForTick(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return stopping_ || sync_requested_; });
  sync_requested_ = false;
  return !stopping_;
}

bool NodeLeaseController::Stopping() const {
  std::lock_guard lk(mu_);
  return stopping_;
}

bool NodeLeaseController::WaitFor(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  return !cv_.wait_for(lk, d, [&] { return stopping_; });
}

std::string NodeLeaseController::LatestLease() const {
  std::lock_guard lk(mu_);
  return latest_;
}

bool NodeLeaseController::Sync() {
  std::string latest = LatestLease();
  if (!latest.empty()) {
    // Optimistic: nobody else writes our Lease, so the last version we got is still current.
    auto r = RetryUpdateLease(latest);
    if (r) return true;
    base::log::Info("failed to update lease using latest lease, fallback to ensure lease",
                    {{"lease", options_.node_name}, {"error", r.error().message}});
  }
  Ensured e = BackoffEnsureLease();
  {
    std::lock_guard lk(mu_);
    latest_ = e.lease.value_or("");
  }
  if (!e.lease) return false;
  if (e.created) return true;  // a fresh lease needs no renewal
  auto r = RetryUpdateLease(*e.lease);
  if (!r) {
    base::log::Error("will retry updating lease", {{"lease", options_.node_name},
                                                   {"interval_ms", options_.renew_interval.count()},
                                                   {"error", r.error().message}});
    return false;
  }
  return true;
}

NodeLeaseController::Ensured NodeLeaseController::BackoffEnsureLease() {
  auto sleep = options_.backoff_initial;
  while (true) {
    auto r = EnsureLease();
    if (r) return *r;
    sleep = std::min(sleep * 2, options_.backoff_max);
    base::log::Error("failed to ensure lease exists, will retry", {{"lease", options_.node_name},
                                                                   {"interval_ms", sleep.count()},
                                                                   {"error", r.error().message}});
    if (!WaitFor(sleep)) return {};
  }
}

Result<NodeLeaseController::Ensured> NodeLeaseController::EnsureLease() {
  auto got = api_->Do("GET", LeasePath(), {}, "application/json");
  if (!got) return base::Fail("get lease '" + options_.node_name + "': " + Describe(got));
  if (got->status == 404) {
    auto [lease, owner] = NewLease(std::nullopt);
    if (!owner) {
      // Never create an orphan Lease; the next tick tries again once the Node exists.
      base::log::Info("lease not created yet: node owner unknown",
                      {{"lease", options_.node_name}, {"error", owner.error().message}});
      return Ensured{};
    }
    auto created = api_->Do(
        "POST", "/apis/coordination.k8s.io/v1/namespaces/" + options_.lease_namespace + "/leases",
        lease, "application/json");
    if (!created || !created->ok()) {
      return base::Fail("create lease '" + options_.node_name + "': " + Describe(created));
    }
    base::log::Info("node lease created", {{"lease", options_.node_name}});
    return Ensured{created->body, true};
  }
  if (!got->ok()) return base::Fail("get lease '" + options_.node_name + "': " + Describe(got));
  return Ensured{got->body, false};
}

Result<> NodeLeaseController::RetryUpdateLease(std::string base) {
  for (int i = 0; i < options_.max_update_retries; ++i) {
    auto [lease, owner_ignored] = NewLease(base);  // a missing owner never blocks a renewal
    auto r = api_->Do("PUT", LeasePath(), lease, "application/json");
    if (r && r->ok()) {
      std::lock_guard lk(mu_);
      latest_ = r->body;
      return {};
    }
    base::log::Error("failed to update lease",
                     {{"lease", options_.node_name}, {"attempt", i + 1}, {"error", Describe(r)}});
    if (r && r->status == 409) {
      // Our copy is stale (someone else wrote the Lease): fetch the current one.
      Ensured e = BackoffEnsureLease();
      if (!e.lease) return base::Fail("lease '" + options_.node_name + "' gone or stopping");
      base = *e.lease;
      continue;
    }
    if (Stopping()) break;
  }
  return base::Fail("failed " + std::to_string(options_.max_update_retries) +
                    " attempts to update lease '" + options_.node_name + "'");
}

std::string NodeLeaseController::NodeUid() {
  if (options_.node_uid) {
    std::string uid = options_.node_uid();
    if (!uid.empty()) return uid;
  }
  auto got = api_->Do("GET", "/api/v1/nodes/" + options_.node_name, {}, "application/json");
  if (!got || !got->ok()) {
    base::log::Warn("failed to get node when trying to set owner ref to the node lease",
                    {{"node", options_.node_name}, {"error", Describe(got)}});
    return "";
  }
  auto j = nlohmann::json::parse(got->body, nullptr, false);
  if (!j.is_object() || !j.contains("metadata") || !j["metadata"].is_object()) return "";
  return j["metadata"].value("uid", "");
}

std::pair<std::string, Result<>> NodeLeaseController::NewLease(
    const std::optional<std::string>& base) {
  ojson lease;
  if (base) {
    lease = ojson::parse(*base, nullptr, false);
    if (lease.is_discarded() || !lease.is_object()) lease = ojson::object();
  }
  if (!base || lease.empty()) {
    // The bare minimum, in Go's field order (k8s-samples 20).
    lease = ojson::object();
    lease["kind"] = "Lease";
    lease["apiVersion"] = "coordination.k8s.io/v1";
    lease["metadata"] =
        ojson{{"name", options_.node_name}, {"namespace", options_.lease_namespace}};
    lease["spec"] = ojson{{"holderIdentity", options_.node_name},
                          {"leaseDurationSeconds", options_.lease_duration_seconds}};
  }
  if (!lease.contains("metadata") || !lease["metadata"].is_object()) {
    lease["metadata"] = ojson::object();
  }
  if (!lease.contains("spec") || !lease["spec"].is_object()) lease["spec"] = ojson::object();
  // The server keeps its managedFields when a PUT leaves them out (k8s-samples 22).
  lease["metadata"].erase("managedFields");
  lease["spec"]["renewTime"] = base::FormatRfc3339Micro(clock_->Now());

  Result<> owner = {};
  ojson& meta = lease["metadata"];
  bool has_owner = meta.contains("ownerReferences") && meta["ownerReferences"].is_array() &&
                   !meta["ownerReferences"].empty();
  if (!has_owner) {
    std::string uid = NodeUid();
    if (uid.empty()) {
      owner = base::Fail("node '" + options_.node_name + "' uid unknown");
    } else {
      ojson ref = ojson::object();
      ref["apiVersion"] = "v1";
      ref["kind"] = "Node";
      ref["name"] = options_.node_name;
      ref["uid"] = uid;
      meta["ownerReferences"] = ojson::array({ref});
    }
  }
  return {lease.dump(), owner};
}

}  // namespace agent
