#pragma once
// What the runtime persists per sandbox (<root>/sandboxes/<id>/sandbox.json) and per container
// (<root>/containers/<id>/container.json). The monitor's files (spec, started, exit) sit beside
// container.json; together they let a restarted cubelet rebuild everything.
#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "cri/types.h"

namespace runtime {

using base::Result;

struct SandboxRecord {
  std::string id;
  cri::PodSandboxConfig config;  // linux.resources and security context are not persisted
  int64_t created_at = 0;
  bool ready = true;  // false once stopped
  std::string ip;
  std::vector<std::string> additional_ips;
  std::string netns;  // pinned namespace files ("" = the host's)
  std::string ipcns;
  std::string utsns;
  std::string cgroup;  // driver-relative pod cgroup
  std::string shm;     // tmpfs shared by the pod's containers at /dev/shm ("" = private ones)
  bool network_setup = false;
};

struct ContainerRecord {
  std::string id;
  std::string sandbox_id;
  cri::ContainerMetadata metadata;
  cri::ImageSpec image;
  std::string image_ref;  // repo digest or sha256:<id>
  std::string image_id;   // 64 hex
  int64_t created_at = 0;
  cri::Labels labels;
  cri::Labels annotations;
  std::string log_path;  // absolute ("" = none)
  std::vector<cri::Mount> mounts;
  std::string cgroup;    // driver-relative container cgroup
  int stop_signal = 15;
};

std::string EncodeSandboxRecord(const SandboxRecord& r);
Result<SandboxRecord> DecodeSandboxRecord(const std::string& json);
std::string EncodeContainerRecord(const ContainerRecord& r);
Result<ContainerRecord> DecodeContainerRecord(const std::string& json);

// "SIGTERM", "TERM", "15" -> 15; -1 if unknown.
int SignalFromName(const std::string& name);

}  // namespace runtime
