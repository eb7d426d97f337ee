#pragma once
// Container log rotation as the kubelet does it (K:pkg/kubelet/logs/container_log_manager.go):
// every monitor interval, for each running container whose log file has reached max_size, the
// oldest rotated files beyond max_files - 2 are removed, the current file is renamed to
// "<log>.<YYYYMMDD-HHMMSS>" and the runtime is asked to ReopenContainerLog, so that it creates
// a new current file. Between the rename and the reopen the runtime keeps appending whole CRI
// entries to the renamed file (its fd follows the inode), so no entry is lost or split across
// files. When the reopen fails the file is renamed back, to be retried next round.
//
// As the kubelet's, before each rotation all rotated files but the newest are gzipped
// ("<log>.<stamp>.gz"), so the newest two stay plain.
// It works through cri::RuntimeService only, so any CRI runtime gets the same rotation.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "agent/periodic.h"
#include "base/result.h"
#include "base/time.h"
#include "cri/runtime_service.h"

namespace agent {

struct ContainerLogManagerOptions {
  int64_t max_size_bytes = 10 * 1024 * 1024;          // containerLogMaxSize "10Mi"
  int max_files = 5;                                  // containerLogMaxFiles, current file included
  std::chrono::milliseconds monitor_interval{10000};  // containerLogMonitorInterval
};

// gzips `path` into `path`.gz (through `path`.tmp), then removes `path`.
base::Result<> CompressLog(const std::string& path);

// The kubelet's validation: max_files > 1 and max_size > 0.
base::Result<> ValidateContainerLogOptions(const ContainerLogManagerOptions& o);

class ContainerLogManager {
 public:
  ContainerLogManager(cri::RuntimeService* runtime, ContainerLogManagerOptions options,
                      const base::Clock* clock);
  ~ContainerLogManager();  // Stop()
  ContainerLogManager(const ContainerLogManager&) = delete;
  ContainerLogManager& operator=(const ContainerLogManager&) = delete;

  // Starts the rotation loop on a thread of its own (a pass at once, then every interval).
  void Start();
  void Stop();

  // One pass over the running containers; per-container failures are logged and skipped.
  // Returns the number of files rotated.
  int RotateLogs();
  // Rotates one container's log now if it has reached max_size (true when it was rotated).
  base::Result<bool> RotateIfNeeded(const std::string& container_id, const std::string& log_path);

  // The rotated files of `log_path` ("<log>.<suffix>"), oldest first.
  static base::Result<std::vector<std::string>> RotatedFiles(const std::string& log_path);

 private:
  base::Result<> Rotate(const std::string& container_id, const std::string& log_path);

  cri::RuntimeService* runtime_;
  ContainerLogManagerOptions opts_;
  const base::Clock* clock_;
  Periodic loop_;  // last: stopped before the rest goes
};

}  // namespace agent
