#pragma once
// Prepares a pod's volumes as host directories for the runtime to bind-mount:
// projected (serviceAccountToken via the TokenRequest API, configMap, secret, downwardAPI),
// configMap, secret, downwardAPI, emptyDir, hostPath. Secret-bearing volumes live on a tmpfs of
// their own (never on disk) and are written atomically (..data symlink swap, like the kubelet's
// AtomicWriter) so that refreshed tokens never appear half-written to the container.
// Layout: <root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<volume>.
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "agent/api_client.h"
#include "agent/pod_model.h"
#include "base/result.h"

namespace agent {

struct PreparedVolumes {
  std::map<std::string, std::string> host_paths;  // volume name -> host path
  std::map<std::string, bool> read_only;          // volumes the kubelet always mounts read-only
};

class VolumeManager {
 public:
  VolumeManager(ApiClientPtr api, std::string root_dir);

  // Idempotent: re-running refreshes contents (tokens near expiry, changed configmaps).
  // Errors name the volume and the cause (kubelet: "MountVolume.SetUp failed for volume ...").
  base::Result<PreparedVolumes> Setup(const Pod& pod, const std::vector<std::string>& node_ips);
  // Unmounts tmpfs volumes and removes <root>/pods/<uid>. Idempotent.
  base::Result<> Cleanup(const std::string& pod_uid);
  std::string PodDir(const std::string& pod_uid) const;
  // UIDs with a pod directory on disk (for orphan cleanup at start).
  std::vector<std::string> PodsOnDisk() const;

  // Fetchers shared with env var resolution (configMapKeyRef/secretKeyRef).
  std::optional<std::map<std::string, std::string>> GetConfigMap(const std::string& ns, const std::string& name,
                                                                 std::string* err = nullptr);
  std::optional<std::map<std::string, std::string>> GetSecret(const std::string& ns, const std::string& name,
                                                              std::string* err = nullptr);

 private:
  struct TokenState {
    std::string token;
    std::chrono::system_clock::time_point issued, expires;
  };
  base::Result<std::string> Token(const Pod& pod, const ProjectionSource& src);
  base::Result<> SetupWritable(const Pod& pod, const Volume& v, const std::string& dir,
                               const std::vector<std::string>& node_ips);

  ApiClientPtr api_;
  std::string root_;
  std::mutex mu_;
  std::map<std::string, TokenState> tokens_;  // key: uid/volume/path
};

// Writes `files` (relative path -> (content, mode)) into `dir` atomically: a new timestamped
// directory, then the `..data` symlink swapped with rename(2), then top-level symlinks.
base::Result<> AtomicWriteDir(const std::string& dir,
                              const std::map<std::string, std::pair<std::string, int>>& files,
                              std::optional<int64_t> gid);

}  // namespace agent
