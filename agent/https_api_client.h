#pragma once
// The real ApiClient: HTTPS (or plain HTTP) to the kube-apiserver with keep-alive connections,
// server certificate verification against the kubeconfig CA (hostname or IP SAN), bearer token or
// client certificate, per-request timeouts, and streamed GETs for watches. Boost.Beast stays in
// the .cc file.
#include <chrono>
#include <memory>
#include <string>

#include "agent/api_client.h"
#include "agent/kubeconfig.h"

namespace agent {

struct HttpsApiClientOptions {
  std::string user_agent = "cubelet/v0.1.0 (linux/amd64) cubelet";
  std::chrono::seconds request_timeout{30};
  std::chrono::seconds connect_timeout{10};
  // A stream with no bytes for this long is treated as dead (watches carry bookmarks/events).
  std::chrono::seconds stream_idle_timeout{600};
  int max_idle_connections = 4;
};

class HttpsApiClientImpl;

class HttpsApiClient final : public ApiClient {
 public:
  // Fails when the kubeconfig's TLS material is unusable (bad PEM, key mismatch).
  static Result<std::shared_ptr<HttpsApiClient>> Create(const Kubeconfig& kc,
                                                        HttpsApiClientOptions opts = {});
  ~HttpsApiClient() override;

  Result<ApiResponse> Do(std::string_view method, const std::string& path, const std::string& body,
                         std::string_view content_type) override;
  Result<int> Stream(const std::string& path,
                     const std::function<bool(std::string_view line)>& on_line,
                     StreamCancel* cancel, std::string* error_body) override;
  std::string Endpoint() const override;

 private:
  explicit HttpsApiClient(std::unique_ptr<HttpsApiClientImpl> impl);
  std::unique_ptr<HttpsApiClientImpl> impl_;
};

}  // namespace agent
