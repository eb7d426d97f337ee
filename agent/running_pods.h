#pragma once
// The kubelet's /runningpods/: the pods as the container runtime has them (not as the API server
// does): a v1 PodList whose items carry only the pod's name, namespace and UID and, per running
// container, its name and image (K:pkg/kubelet/container/runtime.go Pod.ToAPIPod, from
// GetPods(all=false): ready sandboxes and running containers), newest pod first.
#include <string>
#include <vector>

#include "cri/types.h"

namespace agent {

std::string RunningPodsJson(const std::vector<cri::PodSandbox>& ready_sandboxes,
                            const std::vector<cri::Container>& running_containers);

}  // namespace agent
