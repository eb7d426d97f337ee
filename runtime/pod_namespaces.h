#pragma once
// The pod's shared namespaces (network, IPC, UTS) live without any process: a short-lived
// helper child unshares them and sets the hostname, and its /proc/PID/ns/* files are bind
// mounted under the run dir (<run>/netns/<id>, <run>/ipcns/<id>, <run>/utsns/<id>).
#include <map>
#include <string>

#include "base/result.h"

namespace runtime {

using base::Result;

struct PodNamespaces {
  std::string net;  // "" = not created (host namespace)
  std::string ipc;
  std::string uts;
};

struct PodNamespaceRequest {
  std::string run_dir;
  std::string sandbox_id;
  std::string hostname;
  bool new_net = true;
  bool new_ipc = true;
  bool new_uts = true;
  // Namespaced sysctls (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*), set inside
  // the new namespaces: "net.ipv4.ip_unprivileged_port_start" -> "0".
  std::map<std::string, std::string> sysctls;
};

Result<PodNamespaces> PinPodNamespaces(const PodNamespaceRequest& req);
// Unmounts and deletes the pinned files; missing ones are fine.
Result<> UnpinPodNamespaces(const PodNamespaces& ns);
// The paths PinPodNamespaces uses, for cleaning up after a crash.
PodNamespaces PodNamespacePaths(const std::string& run_dir, const std::string& sandbox_id,
                                bool net, bool ipc, bool uts);

}  // namespace runtime
