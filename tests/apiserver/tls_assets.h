#pragma once
// Certificates, keys, tokens and kubeconfigs of the test API server, created in the data
// directory on first start (kept and reused afterwards, so restarts keep clients working).
#include <string>
#include <vector>

namespace apiserver {

struct TokenEntry {
  std::string token, user, uid;
  std::vector<std::string> groups;
};

struct TlsAssets {
  std::string dir;
  std::string ca_crt, ca_key;               // paths
  std::string serving_crt, serving_key;     // paths
  std::string kubelet_client_crt, kubelet_client_key;
  std::string sa_key_pem;                   // service account signing key (PEM contents)
  std::string ca_pem;                       // CA certificate (PEM contents)
  std::vector<TokenEntry> tokens;
};

struct AssetOptions {
  std::string dir;
  std::vector<std::string> listen_ips;  // SANs besides 127.0.0.1/localhost
  std::vector<std::string> nodes;
  std::string server_url;               // for kubeconfigs
  std::string service_ip;               // first IP of the service CIDR (SAN)
  std::string kubelet_client_cert, kubelet_client_key;  // optional, given by the user
};

// Creates what is missing; throws std::runtime_error naming the file and the cause.
TlsAssets PrepareAssets(const AssetOptions& opts);

}  // namespace apiserver
