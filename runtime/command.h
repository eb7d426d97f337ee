#pragma once
// How a container's process is derived from the image config and the CRI container config
// (containerd's CRI plugin rules, which the kubelet relies on).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "cri/types.h"
#include "runtime/image_store.h"

namespace runtime {

using base::Result;

// command replaces Entrypoint and then only args follow; args alone replace Cmd after
// Entrypoint; neither: Entrypoint + Cmd. Fails when the result is empty.
Result<std::vector<std::string>> ResolveCommand(const ImageConfig& image,
                                                const std::vector<std::string>& command,
                                                const std::vector<std::string>& args);

// Image Env first, then the container's envs; a later key replaces an earlier one in place.
std::vector<std::string> MergeEnv(const std::vector<std::string>& image_env,
                                  const std::vector<cri::KeyValue>& envs);

struct ProcessUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;  // supplementary
  std::string home = "/";
};

// Resolves the user from (in priority order) run_as_user/run_as_username, then the image User
// ("name", "uid", "uid:gid", "name:group"), by reading /etc/passwd and /etc/group in the merged
// view of the image's layer directories (bottom first; never the host's files: symlinks resolve
// inside the view). run_as_group overrides the gid.
Result<ProcessUser> ResolveUser(const std::vector<std::string>& layers,
                                const std::string& image_user,
                                const cri::LinuxContainerSecurityContext& sc);

}  // namespace runtime
