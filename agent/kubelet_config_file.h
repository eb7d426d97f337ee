#pragma once
// --config: a KubeletConfiguration file (kubelet.config.k8s.io/v1beta1, as kubeadm writes to
// /var/lib/kubelet/config.yaml). Its fields fill the settings whose flags were not given on the
// command line (flags win, as for the kubelet). Fields cubelet does not implement are reported,
// not fatal (the kubelet, too, decodes leniently with a warning); a malformed file, another
// kind, or a bad value of a field cubelet uses is an error naming the field.
#include <functional>
#include <string>
#include <vector>

#include "agent/cubelet_flags.h"
#include "base/result.h"

namespace agent {

// given(flag) says whether --flag was on the command line. Returns the warnings to log.
base::Result<std::vector<std::string>> ApplyKubeletConfig(
    const std::string& yaml_text, const std::function<bool(const std::string& flag)>& given,
    CubeletFlags* flags);

// The kubelet's /configz: {"kubeletconfig": {...}} with the KubeletConfiguration field names and
// forms (durations as Go prints them, eviction thresholds as maps) of the effective settings
// cubelet has, flags and --config merged, defaults filled in.
std::string KubeletConfigzJson(const CubeletFlags& flags);

}  // namespace agent
