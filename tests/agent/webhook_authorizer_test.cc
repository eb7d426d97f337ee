// The kubelet API's webhook authorizer against a scripted API server: the SubjectAccessReview it
// sends, the answers' cache lifetimes, and that no answer is never an allow.
#include "agent/webhook_authorizer.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/agent/fake_api_client.h"

namespace {

using json = nlohmann::json;
using testsupport::FakeApiClient;
const char kSar[] = "/apis/authorization.k8s.io/v1/subjectaccessreviews";

agent::AuthorizationRequest Req(const std::string& user, const std::string& sub) {
  agent::AuthorizationRequest r;
  r.user.name = user;
  r.user.groups = {"devs"};
  r.verb = "create";
  r.subresource = sub;
  r.name = "node-a";
  r.path = "/exec/default/web/app";
  return r;
}

std::string Answer(bool allowed, const std::string& reason = "") {
  json st = {{"allowed", allowed}};
  if (!reason.empty()) st["reason"] = reason;
  return json{{"kind", "SubjectAccessReview"},
              {"apiVersion", "authorization.k8s.io/v1"},
              {"status", st}}
      .dump();
}

}  // namespace

TEST_CASE("webhook authorizer: the review the kubelet sends") {
  json sar = json::parse(agent::SubjectAccessReviewJson(Req("alice", "proxy")));
  CHECK(sar["apiVersion"] == "authorization.k8s.io/v1");
  CHECK(sar["kind"] == "SubjectAccessReview");
  CHECK(sar["spec"]["user"] == "alice");
  // The authenticator's system:authenticated is added once.
  CHECK(sar["spec"]["groups"] == json::array({"devs", "system:authenticated"}));
  CHECK(sar["spec"]["resourceAttributes"] ==
        json{{"verb", "create"}, {"resource", "nodes"}, {"subresource", "proxy"}, {"name", "node-a"}});
  auto r = Req("bob", "stats");
  r.user.groups = {"system:authenticated"};
  json again = json::parse(agent::SubjectAccessReviewJson(r));
  CHECK(again["spec"]["groups"] == json::array({"system:authenticated"}));
}

TEST_CASE("webhook authorizer: decisions, reasons and cache lifetimes") {
  auto api = std::make_shared<FakeApiClient>();
  base::FakeClock clock(base::WallTime(std::chrono::seconds(1'700'000'000)));
  agent::WebhookAuthorizerOptions o;
  o.authorized_ttl = std::chrono::minutes(5);
  o.unauthorized_ttl = std::chrono::seconds(30);
  agent::WebhookAuthorizer authz(api, o, &clock);

  api->Push("POST", kSar, 201, Answer(true));
  std::string reason;
  auto a = authz.Authorize(Req("alice", "proxy"), &reason);
  REQUIRE(a);
  CHECK(*a);
  REQUIRE(api->Requests().size() == 1);
  CHECK(api->Requests()[0].body == agent::SubjectAccessReviewJson(Req("alice", "proxy")));

  api->Push("POST", kSar, 201, Answer(false, "no RBAC policy matched"));
  auto b = authz.Authorize(Req("mallory", "proxy"), &reason);
  REQUIRE(b);
  CHECK_FALSE(*b);
  CHECK(reason == "no RBAC policy matched");
  CHECK(api->Requests().size() == 2);

  // Cached: nothing is asked again within the lifetimes (no answer is scripted).
  clock.Advance(std::chrono::seconds(29));
  reason.clear();
  CHECK(*authz.Authorize(Req("alice", "proxy"), &reason));
  CHECK_FALSE(*authz.Authorize(Req("mallory", "proxy"), &reason));
  CHECK(reason == "no RBAC policy matched");
  CHECK(api->Requests().size() == 2);

  // A different subresource is a different question.
  api->Push("POST", kSar, 201, Answer(false));
  CHECK_FALSE(*authz.Authorize(Req("alice", "stats"), &reason));
  CHECK(api->Requests().size() == 3);

  // The denial expires after 30 s, the allow after 5 minutes.
  clock.Advance(std::chrono::seconds(2));
  api->Push("POST", kSar, 201, Answer(true));
  CHECK(*authz.Authorize(Req("mallory", "proxy"), &reason));
  CHECK(api->Requests().size() == 4);
  CHECK(*authz.Authorize(Req("alice", "proxy"), &reason));
  CHECK(api->Requests().size() == 4);
  clock.Advance(std::chrono::minutes(5));
  api->Push("POST", kSar, 201, Answer(false, "revoked"));
  CHECK_FALSE(*authz.Authorize(Req("alice", "proxy"), &reason));
  CHECK(reason == "revoked");
  CHECK(api->Requests().size() == 5);

  // "denied" wins over "allowed"; an evaluation error is part of the reason.
  api->Push("POST", kSar, 201,
            R"({"status":{"allowed":true,"denied":true,"reason":"deny rule","evaluationError":"x"}})");
  CHECK_FALSE(*authz.Authorize(Req("carol", "proxy"), &reason));
  CHECK(reason == "deny rule; x");
}

TEST_CASE("webhook authorizer: no answer is an error, not an allow, and is not cached") {
  auto api = std::make_shared<FakeApiClient>();
  base::FakeClock clock(base::WallTime(std::chrono::seconds(1'700'000'000)));
  agent::WebhookAuthorizer authz(api, {}, &clock);
  std::string reason;
  api->PushReply("POST", kSar, FakeApiClient::TransportError("connection refused"));
  auto a = authz.Authorize(Req("alice", "proxy"), &reason);
  REQUIRE_FALSE(a);
  CHECK(a.error().message.find("connection refused") != std::string::npos);
  api->Push("POST", kSar, 403,
            FakeApiClient::StatusBody(403, "Forbidden", "subjectaccessreviews is forbidden"));
  auto b = authz.Authorize(Req("alice", "proxy"), &reason);
  REQUIRE_FALSE(b);
  CHECK(b.error().message == "SubjectAccessReview: HTTP 403: subjectaccessreviews is forbidden");
  api->Push("POST", kSar, 201, "{}");
  auto c = authz.Authorize(Req("alice", "proxy"), &reason);
  REQUIRE_FALSE(c);
  CHECK(c.error().message == "SubjectAccessReview: the answer has no status");
  api->Push("POST", kSar, 201, Answer(true));
  auto d = authz.Authorize(Req("alice", "proxy"), &reason);
  REQUIRE(d);
  CHECK(*d);
  CHECK(api->Requests().size() == 4);
}

TEST_CASE("token webhook: the review, the user, and the cache (by hash, both answers)") {
  auto api = std::make_shared<FakeApiClient>();
  base::FakeClock clock(base::WallTime(std::chrono::seconds(1'700'000'000)));
  agent::WebhookTokenAuthenticator authn(api, std::chrono::minutes(2), &clock);
  const char kTr[] = "/apis/authentication.k8s.io/v1/tokenreviews";
  api->Push("POST", kTr, 201,
            R"({"kind":"TokenReview","status":{"authenticated":true,"user":{"username":)"
            R"("system:serviceaccount:kube-system:metrics-server","uid":"u1","groups":)"
            R"(["system:serviceaccounts","system:authenticated"]}}})");
  auto a = authn.Authenticate("tok-1");
  REQUIRE(a);
  REQUIRE(*a);
  CHECK((*a)->name == "system:serviceaccount:kube-system:metrics-server");
  CHECK((*a)->groups ==
        std::vector<std::string>{"system:serviceaccounts", "system:authenticated"});
  REQUIRE(api->Requests().size() == 1);
  json sent = json::parse(api->Requests()[0].body);
  CHECK(sent["apiVersion"] == "authentication.k8s.io/v1");
  CHECK(sent["kind"] == "TokenReview");
  CHECK(sent["spec"] == json{{"token", "tok-1"}});
  api->Push("POST", kTr, 201, R"({"status":{"authenticated":false,"error":"invalid token"}})");
  auto b = authn.Authenticate("tok-2");
  REQUIRE(b);
  CHECK_FALSE(*b);
  // Both answers are cached for the TTL; then asked again.
  clock.Advance(std::chrono::seconds(119));
  CHECK(*authn.Authenticate("tok-1"));
  CHECK_FALSE(*authn.Authenticate("tok-2"));
  CHECK(api->Requests().size() == 2);
  clock.Advance(std::chrono::seconds(2));
  api->Push("POST", kTr, 201, R"({"status":{"authenticated":false}})");
  CHECK_FALSE(*authn.Authenticate("tok-1"));
  CHECK(api->Requests().size() == 3);
  // No answer: an error, not cached.
  api->PushReply("POST", kTr, FakeApiClient::TransportError("connection refused"));
  REQUIRE_FALSE(authn.Authenticate("tok-3"));
  api->Push("POST", kTr, 201, R"({"status":{"authenticated":true,"user":{"username":"bob"}}})");
  auto c = authn.Authenticate("tok-3");
  REQUIRE(c);
  REQUIRE(*c);
  CHECK((*c)->name == "bob");
}
