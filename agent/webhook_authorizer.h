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
#include <optional>
#include <string>
#include <utility>

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

// A bounded map of answers that expire: what both webhooks cache. Thread-safe.
template <typename V>
class ExpiringCache {
 public:
  explicit ExpiringCache(size_t max_entries) : max_entries_(max_entries) {}
  std::optional<V> Get(const std::string& key, std::chrono::steady_clock::time_point now) {
    std::lock_guard lk(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.second <= now) return std::nullopt;
    return it->second.first;
  }
  // When full: expired answers go first, then all of them.
  void Put(const std::string& key, V value, std::chrono::steady_clock::time_point now,
           std::chrono::milliseconds ttl) {
    std::lock_guard lk(mu_);
    if (entries_.size() >= max_entries_) {
      for (auto it = entries_.begin(); it != entries_.end();) {
        it = it->second.second <= now ? entries_.erase(it) : std::next(it);
      }
      if (entries_.size() >= max_entries_) entries_.clear();
    }
    entries_[key] = {std::move(value), now + ttl};
  }

 private:
  size_t max_entries_;
  std::mutex mu_;
  std::map<std::string, std::pair<V, std::chrono::steady_clock::time_point>> entries_;
};

class WebhookAuthorizer final : public Authorizer {
 public:
  WebhookAuthorizer(ApiClientPtr api, WebhookAuthorizerOptions options, const base::Clock* clock);
  base::Result<bool> Authorize(const AuthorizationRequest& request, std::string* reason) override;

 private:
  struct Decision {
    bool allowed = false;
    std::string reason;
  };
  ApiClientPtr api_;
  WebhookAuthorizerOptions options_;
  const base::Clock* clock_;
  ExpiringCache<Decision> cache_;  // by the review's JSON
};

class WebhookTokenAuthenticator final : public TokenAuthenticator {
 public:
  WebhookTokenAuthenticator(ApiClientPtr api, std::chrono::milliseconds ttl,
                            const base::Clock* clock, size_t max_cache_entries = 10000);
  base::Result<std::optional<UserInfo>> Authenticate(const std::string& token) override;

 private:
  ApiClientPtr api_;
  std::chrono::milliseconds ttl_;
  const base::Clock* clock_;
  ExpiringCache<std::optional<UserInfo>> cache_;  // by the token's SHA-256, not the token itself
};

}  // namespace agent
