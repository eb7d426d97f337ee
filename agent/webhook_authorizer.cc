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

namespace {

// POSTs a review and returns its answer's status object; an error names the review kind and
// the API server's message when there is no usable answer.
base::Result<json> PostReview(ApiClient& api, const std::string& kind, const std::string& path,
                              const std::string& review) {
  auto resp = api.Do("POST", path, review);
  if (!resp) return tl::unexpected(resp.error().Wrap(kind));
  auto body = json::parse(resp->body, nullptr, false);
  bool object = !body.is_discarded() && body.is_object();
  if (!resp->ok()) {
    std::string msg = kind + ": HTTP " + std::to_string(resp->status);
    if (object && body.contains("message") && body["message"].is_string()) {
      msg += ": " + body["message"].get<std::string>();
    }
    return base::Fail(msg);
  }
  if (!object || !body.contains("status") || !body["status"].is_object()) {
    return base::Fail(kind + ": the answer has no status");
  }
  return body["status"];
}

}  // namespace

WebhookAuthorizer::WebhookAuthorizer(ApiClientPtr api, WebhookAuthorizerOptions options,
                                     const base::Clock* clock)
    : api_(std::move(api)), options_(options), clock_(clock), cache_(options.max_cache_entries) {}

base::Result<bool> WebhookAuthorizer::Authorize(const AuthorizationRequest& request,
                                                std::string* reason) {
  std::string review = SubjectAccessReviewJson(request);
  auto now = clock_->Monotonic();
  if (auto hit = cache_.Get(review, now)) {
    if (reason) *reason = hit->reason;
    return hit->allowed;
  }
  auto st = PostReview(*api_, "SubjectAccessReview",
                       "/apis/authorization.k8s.io/v1/subjectaccessreviews", review);
  if (!st) return tl::unexpected(st.error());
  Decision d;
  d.allowed = st->value("allowed", false) && !st->value("denied", false);
  d.reason = st->value("reason", "");
  std::string eval = st->value("evaluationError", "");
  if (!eval.empty()) d.reason += (d.reason.empty() ? "" : "; ") + eval;
  cache_.Put(review, d, now, d.allowed ? options_.authorized_ttl : options_.unauthorized_ttl);
  if (reason) *reason = d.reason;
  return d.allowed;
}

WebhookTokenAuthenticator::WebhookTokenAuthenticator(ApiClientPtr api,
                                                     std::chrono::milliseconds ttl,
                                                     const base::Clock* clock,
                                                     size_t max_cache_entries)
    : api_(std::move(api)), ttl_(ttl), clock_(clock), cache_(max_cache_entries) {}

base::Result<std::optional<UserInfo>> WebhookTokenAuthenticator::Authenticate(
    const std::string& token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  std::string key(reinterpret_cast<const char*>(digest), sizeof digest);
  auto now = clock_->Monotonic();
  if (auto hit = cache_.Get(key, now)) return *hit;
  json review = {{"apiVersion", "authentication.k8s.io/v1"},
                 {"kind", "TokenReview"},
                 {"metadata", {{"creationTimestamp", nullptr}}},
                 {"spec", {{"token", token}}},
                 {"status", json::object()}};
  auto st = PostReview(*api_, "TokenReview", "/apis/authentication.k8s.io/v1/tokenreviews",
                       review.dump());
  if (!st) return tl::unexpected(st.error());
  std::optional<UserInfo> user;
  if (st->value("authenticated", false) && st->contains("user") && (*st)["user"].is_object()) {
    const json& u = (*st)["user"];
    UserInfo info;
    info.name = u.value("username", "");
    if (u.contains("groups") && u["groups"].is_array()) {
      for (const auto& g : u["groups"]) {
        if (g.is_string()) info.groups.push_back(g.get<std::string>());
      }
    }
    if (info.name.empty()) return base::Fail("TokenReview: authenticated without a username");
    user = info;
  }
  cache_.Put(key, user, now, ttl_);
  return user;
}

}  // namespace agent
