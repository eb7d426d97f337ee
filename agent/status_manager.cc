#include "agent/status_manager.h"

#include "agent/merge_patch.h"
#include "base/log.h"

namespace agent {

using nlohmann::json;

bool ResourceVersionNewer(const std::string& a, const std::string& b) {
  try {
    return std::stoull(a) > std::stoull(b);
  } catch (...) {
    return a != b;
  }
}

json StatusManager::BuildPatch(const std::string& uid, const json& old_status, const json& new_status) {
  json diff = CreateTwoWayMergePatch(old_status, new_status, PodStatusMergeKeys());
  if (diff.empty()) return nullptr;
  json patch = json::object();
  patch["metadata"] = {{"uid", uid}};
  patch["status"] = diff;
  return patch;
}

bool StatusManager::SetPodStatus(const json& api_pod, const json& status) {
  const json& md = api_pod["metadata"];
  std::string uid = md.value("uid", "");
  std::string ns = md.value("namespace", "");
  std::string name = md.value("name", "");
  json old_status = api_pod.contains("status") ? api_pod["status"] : json::object();
  {
    std::lock_guard lk(mu_);
    auto it = patched_.find(uid);
    if (it != patched_.end()) {
      std::string prv = it->second["metadata"].value("resourceVersion", "");
      if (ResourceVersionNewer(prv, md.value("resourceVersion", ""))) old_status = it->second["status"];
      else patched_.erase(it);
    }
  }
  json patch = BuildPatch(uid, old_status, status);
  if (patch.is_null()) return true;
  std::string path = "/api/v1/namespaces/" + ns + "/pods/" + name + "/status";
  auto r = api_->Do("PATCH", path, patch.dump(), "application/strategic-merge-patch+json");
  if (!r) {
    base::log::Warn("pod status update failed", {{"pod", ns + "/" + name}, {"err", r.error().message}});
    return false;
  }
  if (!r->ok()) {
    base::log::Warn("pod status update refused", {{"pod", ns + "/" + name}, {"status", DescribeStatus(*r)}});
    return false;
  }
  json updated = json::parse(r->body, nullptr, false);
  if (updated.is_object()) {
    std::lock_guard lk(mu_);
    patched_[uid] = std::move(updated);
  }
  base::log::Debug("pod status patched", {{"pod", ns + "/" + name}, {"phase", status.value("phase", "")}});
  return true;
}

bool StatusManager::DeletePod(const std::string& ns, const std::string& name, const std::string& uid) {
  nlohmann::ordered_json body;  // field order as the kubelet's DeleteOptions (sample 42)
  body["kind"] = "DeleteOptions";
  body["apiVersion"] = "v1";
  body["gracePeriodSeconds"] = 0;
  body["preconditions"]["uid"] = uid;
  auto r = api_->Do("DELETE", "/api/v1/namespaces/" + ns + "/pods/" + name, body.dump());
  if (!r) {
    base::log::Warn("pod delete failed", {{"pod", ns + "/" + name}, {"err", r.error().message}});
    return false;
  }
  if (r->ok() || r->status == 404) {
    Forget(uid);
    return true;
  }
  if (r->status == 409) {  // uid precondition: a new pod with the same name; ours is gone
    Forget(uid);
    return true;
  }
  base::log::Warn("pod delete refused", {{"pod", ns + "/" + name}, {"status", DescribeStatus(*r)}});
  return false;
}

void StatusManager::Forget(const std::string& uid) {
  std::lock_guard lk(mu_);
  patched_.erase(uid);
}

}  // namespace agent
