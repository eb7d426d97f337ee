#pragma once
// Registry credentials and node-level registry configuration.
//
// DockerKeyring is the kubelet's credentialprovider.BasicDockerKeyring: docker config files
// (".dockerconfigjson" {"auths": {...}} or the legacy ".dockercfg" {...}) indexed by registry
// key ("registry.example.com", "https://index.docker.io/v1/", "*.example.com:5000/team");
// Lookup(image) returns the most specific matching entry (host globs per label, equal port,
// key path a prefix of the image's repository path).
//
// RegistryConfig is what --registry-config FILE holds (JSON, a superset of docker's
// config.json so a plain /var/lib/kubelet/config.json works as is):
//   {
//     "mirrors": {"docker.io": "https://mirror.example.com", "example.test":
//     "http://10.0.0.5:5000"}, "insecureRegistries": ["registry.lan:5000"], "auths":
//     {"registry.example.com": {"username": "u", "password": "p"},
//               "registry.lan:5000": {"auth": "<base64 user:pass>"}}
//   }
// The credentials are the node's: used for an image only when the pod's imagePullSecrets have
// no entry for its registry (the kubelet's union keyring: pod secrets first).
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cri/types.h"

namespace agent {

class DockerKeyring {
 public:
  // Adds the entries of a docker config file (either form). `source` names it in errors.
  base::Result<> Add(std::string_view docker_config_json, const std::string& source);
  // Adds one entry ("auth" base64 user:pass is decoded into username/password).
  base::Result<> AddEntry(const std::string& key, cri::AuthConfig auth);
  std::optional<cri::AuthConfig> Lookup(const std::string& image) const;
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string host;  // lower case, may hold '*' labels
    std::string port;
    std::string path;  // repository path prefix, no leading or trailing '/'
    cri::AuthConfig auth;
  };
  std::vector<Entry> entries_;
};

struct RegistryConfig {
  std::map<std::string, std::string> mirrors;  // registry host[:port] -> base URL
  std::set<std::string> insecure_registries;   // host[:port] reached over plain HTTP
  DockerKeyring credentials;                   // node-level
  // The registry host of `image` ("busybox" -> "docker.io"), for mirror lookups.
  static std::string RegistryOf(const std::string& image);
  // Node-level credentials for `image`: its registry's entry, else (when it is mirrored) the
  // mirror host's entry.
  std::optional<cri::AuthConfig> NodeCredentials(const std::string& image) const;
};

// The credentials for pulling `image`: the pod's imagePullSecrets entry for its registry, else
// the node's (the kubelet's union keyring), else none (anonymous pull).
cri::AuthConfig SelectPullAuth(const DockerKeyring& pod_secrets, const RegistryConfig* node,
                               const std::string& image);

base::Result<RegistryConfig> ParseRegistryConfig(std::string_view json_text,
                                                 const std::string& source);
base::Result<RegistryConfig> LoadRegistryConfig(const std::string& path);

}  // namespace agent
