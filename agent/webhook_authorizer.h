#pragma once
// The kubelet API's webhooks to the API server.
//
// --authentication-token-webhook: a bearer token (e.g. metrics-server's or Prometheus's service
// account token) is authenticated with a TokenReview (authentication.k8s.io/v1); answers,
// authenticated or not, are cached for --authentication-token-webhook-cache-ttl (2m).
//
// --authorization-mode=Webhook for the kubelet API: as the kubelet's webhook authorizer, every
// decision is a SubjectAccessReview (authorization.k8s.io/v1) that the node creates with its own
// credentials (the Node authorizer lets nodes create them); answers are cached, allowed ones
// for --authorization-webhook-cache-authorized-ttl (5m), denied ones for
// --authorization-webhook-cache-unauthorized-ttl (30s). An unreachable API server or an error
// answer is an authorization error (the server replies 500), never an allow.
#include <chrono>
#include <map>
#include <mutex>
#include <string>

#include "agent/api_client.h"
#include "agent/kubelet_server.h"
#include "base/time.h"

namespace agent {

struct WebhookAuthorizerOptions {
  std::chrono::milliseconds authorized_ttl{5 * 60 * 1000};
  std::chrono::milliseconds unauthorized_ttl{30 * 1000};
  size_t max_cache_entries = 10000;
};

// The SubjectAccessReview the kubelet sends for `r` (JSON text; tests compare it).
std::string SubjectAccessReviewJson(const AuthorizationRequest& r);

class WebhookAuthorizer final : public Authorizer {
 public:
  WebhookAuthorizer(ApiClientPtr api, WebhookAuthorizerOptions options, const base::Clock* clock);
  base::Result<bool> Authorize(const AuthorizationRequest& request, std::string* reason) override;

 private:
  struct Entry {
    bool allowed = false;
    std::string reason;
    std::chrono::steady_clock::time_point expires;
  };
  ApiClientPtr api_;
  WebhookAuthorizerOptions options_;
  const base::Clock* clock_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // by the review's JSON
};

class WebhookTokenAuthenticator final : public TokenAuthenticator {
 public:
  WebhookTokenAuthenticator(ApiClientPtr api, std::chrono::milliseconds ttl,
                            const base::Clock* clock, size_t max_cache_entries = 10000);
  base::Result<std::optional<UserInfo>> Authenticate(const std::string& token) override;

 private:
  struct Entry {
    std::optional<UserInfo> user;
    std::chrono::steady_clock::time_point expires;
  };
  ApiClientPtr api_;
  std::chrono::milliseconds ttl_;
  const base::Clock* clock_;
  size_t max_entries_;
  std::mutex mu_;
  std::map<std::string, Entry> cache_;  // by the token's SHA-256, not the token itself
};

}  // namespace agent
