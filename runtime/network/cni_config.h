#pragma once
// CNI network configuration and results (CNI SPEC 0.1.0 .. 1.x), kept free of a JSON library in
// the header: plugin configs and results travel as JSON text.
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "runtime/network/pod_network.h"

namespace runtime::net {

struct CniPluginConfig {
  std::string type;
  std::string json;            // the plugin's object from the list, as written
  bool port_mappings = false;  // capabilities.portMappings
};

struct CniNetworkConfig {
  std::string name;
  std::string cni_version;
  bool disable_check = false;
  std::vector<CniPluginConfig> plugins;
  std::string source;  // file it came from
  std::string text;    // the file's content (cached with results, so DEL uses what ADD used)
};

// A .conflist, or a single-plugin .conf/.json (wrapped into a list of one).
Result<CniNetworkConfig> ParseCniConfig(const std::string& text, const std::string& source);
// The lexicographically first .conf/.conflist/.json in dir that parses (others are skipped with a
// warning, as the runtimes do); nullopt when there is none.
Result<std::optional<CniNetworkConfig>> LoadCniConfig(const std::string& dir);

struct CniInvocation {
  std::string container_id;
  std::string netns;
  std::string ifname;
  std::string args;  // CNI_ARGS
  std::vector<PortMapping> port_mappings;
};

// stdin for plugin i: its object plus name, cniVersion, runtimeConfig (declared capabilities)
// and prevResult when given.
Result<std::string> BuildPluginInput(const CniNetworkConfig& net, size_t i,
                                     const CniInvocation& inv, const std::string* prev_result);

// The sandbox status from a result: the first IPv4 on ifname (or any) is the pod IP.
Result<SandboxNetStatus> ParseCniResult(const std::string& result_json, const std::string& ifname);

// "msg: details (code N)" from a plugin's error output; falls back to the raw text.
std::string DescribeCniError(const std::string& out, const std::string& err);

// CNI_ARGS the Kubernetes runtimes pass.
std::string KubernetesCniArgs(const SandboxNetRequest& req);

// True for versions whose plugins implement CHECK (0.4.0 and later).
bool CniSupportsCheck(const std::string& version);

}  // namespace runtime::net
