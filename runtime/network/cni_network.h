#pragma once
// PodNetwork through CNI plugins (containernetworking SPEC 0.1.0 .. 1.x), as containerd and
// CRI-O run them: the first config in conf_dir, plugins from bin_dirs, ADD/CHECK in list order
// with prevResult chaining, DEL in reverse order. Every ADD's result is cached together with the
// exact config and arguments used (<cache_dir>/<sandbox id>-<ifname>.json), so DEL after a
// restart, or after the config changed, gets the same config and prevResult that ADD had.
//
// Setup is idempotent per sandbox: with a cached result it returns that result (with
// check_on_resetup, only after a CHECK passes; else it DELs and adds again), and an interrupted
// ADD (the cache file is written before ADD and completed after it) is cleaned up with DEL first.
// Plugins run in the network namespace of the constructing thread (the node's).
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runtime/network/cni_config.h"
#include "runtime/network/netns.h"
#include "runtime/network/pod_network.h"

namespace runtime::net {

struct CniNetworkOptions {
  std::string conf_dir = "/etc/cni/net.d";
  std::vector<std::string> bin_dirs = {"/opt/cni/bin", "/usr/lib/cni"};
  std::string cache_dir = "/var/lib/cubelet/network/cni";
  std::string interface_name = "eth0";
  // Optional: a config template written to conf_dir/conf_template_output when the pod CIDR is
  // known, with "{{.PodCIDR}}" replaced (containerd's conf_template convention).
  std::string conf_template;
  std::string conf_template_output = "10-cubelet.conflist";
  // Run CHECK when Setup finds a finished ADD, and DEL + ADD if it fails. Off by default: the
  // portmap plugin of containernetworking-plugins < 1.2 (Debian 12 ships 1.1.1) fails CHECK for
  // every IPv4-only pod (containernetworking/plugins#819), which would re-address pods.
  bool check_on_resetup = false;
};

class CniNetwork : public PodNetwork {
 public:
  explicit CniNetwork(CniNetworkOptions options);
  ~CniNetwork() override;

  // Renders the template (if any), then loads the config and checks its plugins exist. An empty
  // pod CIDR is fine without a template (the config may not need one, e.g. flannel's).
  Result<> EnsureNodeNetwork(const std::string& pod_cidr) override;
  Result<SandboxNetStatus> Setup(const SandboxNetRequest& req) override;
  Result<> Teardown(const SandboxNetRequest& req) override;
  bool Ready(std::string* reason, std::string* message) const override;
  // CNI CHECK with the cached result; an error says what the plugin found wrong.
  Result<> Check(const SandboxNetRequest& req);
  // DEL (with the cached config and result) for every cached sandbox not in live_sandbox_ids.
  Result<size_t> GarbageCollect(const std::set<std::string>& live_sandbox_ids) override;

  const CniNetworkOptions& options() const { return options_; }

 private:
  struct Cached {
    std::string config_text;
    std::string config_source;
    std::optional<std::string> result;  // none: ADD started but never finished
    CniInvocation inv;
  };
  std::string CachePath(const std::string& sandbox_id) const;
  Result<std::optional<Cached>> LoadCache(const std::string& sandbox_id) const;
  Result<> SaveCache(const std::string& sandbox_id, const CniNetworkConfig& net,
                     const CniInvocation& inv, const std::string* result) const;
  Result<> RemoveCache(const std::string& sandbox_id) const;

  Result<CniNetworkConfig> LoadConfig() const;
  Result<std::string> FindPlugin(const std::string& type) const;
  Result<std::string> RunPlugin(const CniNetworkConfig& net, size_t i, const std::string& command,
                                const CniInvocation& inv, const std::string* prev) const;
  Result<std::string> AddList(const CniNetworkConfig& net, const CniInvocation& inv) const;
  Result<> DelList(const CniNetworkConfig& net, const CniInvocation& inv,
                   const std::string* prev) const;
  Result<> CheckList(const CniNetworkConfig& net, const CniInvocation& inv,
                     const std::string& prev) const;
  CniInvocation Invocation(const SandboxNetRequest& req) const;
  void SetNotReady(std::string message);

  const CniNetworkOptions options_;
  std::optional<NetNamespace> node_ns_;
  std::string node_ns_error_;
  mutable std::mutex mu_;
  bool ready_ = false;
  std::string not_ready_message_ = "no CNI configuration loaded yet";
};

}  // namespace runtime::net
