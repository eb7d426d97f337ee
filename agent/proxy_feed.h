#pragma once
// Feeds netproxy from the API: informers on Services and EndpointSlices (with kube-proxy's label
// selector) decoded into netproxy's own model. netproxy knows nothing of JSON or the API.
#include <memory>
#include <nlohmann/json_fwd.hpp>

#include "agent/api_client.h"
#include "agent/informer.h"
#include "base/result.h"
#include "netproxy/model.h"
#include "netproxy/proxier.h"

namespace agent {

base::Result<netproxy::Service> DecodeService(const nlohmann::json& j);
base::Result<netproxy::EndpointSlice> DecodeEndpointSlice(const nlohmann::json& j);

class ProxyFeed {
 public:
  ProxyFeed(ApiClientPtr api, netproxy::Proxier* proxier);
  ~ProxyFeed();
  void Start();
  void Stop();
  bool Synced() const;

 private:
  ApiClientPtr api_;
  netproxy::Proxier* proxier_;
  std::unique_ptr<Informer> services_;
  std::unique_ptr<Informer> slices_;
};

}  // namespace agent
