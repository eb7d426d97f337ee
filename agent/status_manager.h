#pragma once
// Writes pod status to the API server (K:pkg/kubelet/status/status_manager.go): a two-way
// strategic merge patch from the status the API has to the new one, plus metadata.uid as a
// precondition, sent only when something changed; and the final DELETE (grace 0, uid
// precondition) once a deleted pod's resources are reclaimed.
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/api_client.h"

namespace agent {

class StatusManager {
 public:
  explicit StatusManager(ApiClientPtr api) : api_(std::move(api)) {}

  // `api_pod` is the pod as last seen from the API (informer). Returns true when the API now has
  // `status` (patched or already equal). Errors are logged and retried on the next sync.
  bool SetPodStatus(const nlohmann::json& api_pod, const nlohmann::json& status);
  // DELETE with gracePeriodSeconds 0 and the uid precondition. True when gone.
  bool DeletePod(const std::string& ns, const std::string& name, const std::string& uid);
  void Forget(const std::string& uid);

  // Pure: the PATCH body for a status change, or null when there is nothing to send.
  static nlohmann::json BuildPatch(const std::string& uid, const nlohmann::json& old_status,
                                   const nlohmann::json& new_status);

 private:
  ApiClientPtr api_;
  std::mutex mu_;
  // The newest pod object the API returned to one of our PATCHes, by uid: newer than the
  // informer's copy until the watch catches up.
  std::map<std::string, nlohmann::json> patched_;
};

// Compares two resourceVersions as integers when both are (etcd), else by string inequality.
bool ResourceVersionNewer(const std::string& a, const std::string& b);

}  // namespace agent
