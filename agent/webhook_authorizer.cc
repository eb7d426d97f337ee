#include "agent/webhook_authorizer.h"

#include <openssl/sha.h>

#include <nlohmann/json.hpp>

#include "base/log.h"

namespace agent {

using json = nlohmann::json;

std::string SubjectAccessReviewJson(const AuthorizationRequest& r) {
  json attrs = {{"verb", r.verb}, {"resource", r.resource}, {"name", r.name}};
  if (!r.subresource.empty()) attrs["subresource"] = r.subresource;
  // The request authenticator adds system:authenticated to every authenticated user.
  json groups = json::array();
  bool authenticated = false;
  for (const auto& g : r.user.groups) {
    groups.push_back(g);
    authenticated = authenticated || g == "system:authenticated";
  }
  if (!authenticated) groups.push_back("system:authenticated");
  json spec = {{"resourceAttributes", attrs}, {"user", r.user.name}, {"groups", groups}};
  json review = {{"apiVersion", "authorization.k8s.io/v1"},
                 {"kind", "SubjectAccessReview"},
                 {"metadata", {{"creationTimestamp", nullptr}}},
                 {"spec", spec},
                 {"status", {{"allowed", false}}}};
  return review.dump();
}

WebhookAuthorizer::WebhookAuthorizer(ApiClientPtr api, WebhookAuthorizerOptions options,
                                     const base::Clock* clock)
    : api_(std::move(api)), options_(options), clock_(clock) {}

base::Result<bool> WebhookAuthorizer::Authorize(const AuthorizationRequest& request,
                                                std::string* reason) {
  std::string review = SubjectAccessReviewJson(request);
  auto now = clock_->Monotonic();
  {
    std::lock_guard lk(mu_);
    auto it = cache_.find(review);
    if (it != cache_.end() && it->second.expires > now) {
      if (reason) *reason = it->second.reason;
      return it->second.allowed;
    }
  }
  auto resp = api_->Do("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review);
  if (!resp) return tl::unexpected(resp.error().Wrap("SubjectAccessReview"));
  if (!resp->ok()) {
    std::string msg = "SubjectAccessReview: HTTP " + std::to_string(resp->status);
    auto body = json::parse(resp->body, nullptr, false);
    if (!body.is_discarded() && body.is_object() && body.contains("message") &&
        body["message"].is_string()) {
      msg += ": " + body["message"].get<std::string>();
    }
    return base::Fail(msg);
  }
  auto body = json::parse(resp->body, nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("status") ||
      !body["status"].is_object()) {
    return base::Fail("SubjectAccessReview: the answer has no status");
  }
  const json& st = body["status"];
  Entry e;
  e.allowed = st.value("allowed", false) && !st.value("denied", false);
  e.reason = st.value("reason", "");
  std::string eval = st.value("evaluationError", "");
  if (!eval.empty()) e.reason += (e.reason.empty() ? "" : "; ") + eval;
  e.expires = now + (e.allowed ? options_.authorized_ttl : options_.unauthorized_ttl);
  {
    std::lock_guard lk(mu_);
    if (cache_.size() >= options_.max_cache_entries) {
      for (auto it = cache_.begin(); it != cache_.end();) {
        it = it->second.expires <= now ? cache_.erase(it) : std::next(it);
      }
      if (cache_.size() >= options_.max_cache_entries) cache_.clear();
    }
    cache_[review] = e;
  }
  if (reason) *reason = e.reason;
  return e.allowed;
}

WebhookTokenAuthenticator::WebhookTokenAuthenticator(ApiClientPtr api,
                                                     std::chrono::milliseconds ttl,
                                                     const base::Clock* clock,
                                                     size_t max_cache_entries)
    : api_(std::move(api)), ttl_(ttl), clock_(clock), max_entries_(max_cache_entries) {}

base::Result<std::optional<UserInfo>> WebhookTokenAuthenticator::Authenticate(
    const std::string& token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  std::string key(reinterpret_cast<const char*>(digest), sizeof digest);
  auto now = clock_->Monotonic();
  {
    std::lock_guard lk(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.expires > now) return it->second.user;
  }
  json review = {{"apiVersion", "authentication.k8s.io/v1"},
                 {"kind", "TokenReview"},
                 {"metadata", {{"creationTimestamp", nullptr}}},
                 {"spec", {{"token", token}}},
                 {"status", json::object()}};
  auto resp = api_->Do("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review.dump());
  if (!resp) return tl::unexpected(resp.error().Wrap("TokenReview"));
  auto body = json::parse(resp->body, nullptr, false);
  if (!resp->ok()) {
    std::string msg = "TokenReview: HTTP " + std::to_string(resp->status);
    if (!body.is_discarded() && body.is_object() && body.contains("message") &&
        body["message"].is_string()) {
      msg += ": " + body["message"].get<std::string>();
    }
    return base::Fail(msg);
  }
  if (body.is_discarded() || !body.is_object() || !body.contains("status") ||
      !body["status"].is_object()) {
    return base::Fail("TokenReview: the answer has no status");
  }
  const json& st = body["status"];
  Entry e;
  if (st.value("authenticated", false) && st.contains("user") && st["user"].is_object()) {
    const json& u = st["user"];
    UserInfo info;
    info.name = u.value("username", "");
    if (u.contains("groups") && u["groups"].is_array()) {
      for (const auto& g : u["groups"]) {
        if (g.is_string()) info.groups.push_back(g.get<std::string>());
      }
    }
    if (info.name.empty()) return base::Fail("TokenReview: authenticated without a username");
    e.user = info;
  }
  e.expires = now + ttl_;
  {
    std::lock_guard lk(mu_);
    if (cache_.size() >= max_entries_) {
      for (auto it = cache_.begin(); it != cache_.end();) {
        it = it->second.expires <= now ? cache_.erase(it) : std::next(it);
      }
      if (cache_.size() >= max_entries_) cache_.clear();
    }
    cache_[key] = e;
  }
  return e.user;
}

}  // namespace agent
