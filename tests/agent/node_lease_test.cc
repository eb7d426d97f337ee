// NodeLeaseController against the FakeApiClient and the real captures (k8s-samples 20-23):
// create (GET 404 -> POST), renewal (PUT of the last lease, no GET), 409 -> re-GET, owner.
#include "agent/node_lease.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/agent/fake_api_client.h"
#include "tests/agent/node_test_util.h"

using namespace nodetest;
using nlohmann::json;
using testsupport::FakeApiClient;
using namespace std::chrono_literals;

namespace {

const std::string kLeasePath =
    "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/sample-node";
const std::string kLeasesPath = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
const std::string kNodeUid = "99e5d469-02c8-46ad-b2f9-0020faf99cda";

struct Fixture {
  std::shared_ptr<FakeApiClient> api = std::make_shared<FakeApiClient>();
  base::FakeClock clock{At("2026-11-24T07:58:52.416453Z")};
  std::string uid = kNodeUid;
  agent::NodeLeaseOptions options;
  Fixture() {
    options.node_name = "sample-node";
    options.node_uid = [this] { return uid; };
    options.backoff_initial = 1ms;
    options.backoff_max = 4ms;
  }
  std::unique_ptr<agent::NodeLeaseController> Make() {
    return std::make_unique<agent::NodeLeaseController>(options, api, &clock);
  }
};

std::string NotFound() {
  return FakeApiClient::StatusBody(404, "NotFound",
                                   "leases.coordination.k8s.io \\\"sample-node\\\" not found");
}

}  // namespace

TEST_CASE("lease: GET 404 -> POST the sample-20 body, then renew with a PUT of that lease") {
  Fixture f;
  f.api->Push("GET", kLeasePath, 404, NotFound());
  f.api->Push("POST", kLeasesPath, 201, kSample20LeaseCreated);
  auto c = f.Make();
  REQUIRE(c->Sync());
  auto reqs = f.api->Requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[0].path == kLeasePath);
  CHECK(reqs[1].method == "POST");
  CHECK(reqs[1].path == kLeasesPath);
  CHECK(reqs[1].content_type == "application/json");
  CHECK(reqs[1].body == kSample20LeaseCreate);  // byte for byte, renewTime included
  CHECK(c->LatestLease() == kSample20LeaseCreated);

  // The next tick: a PUT of the lease we got, new renewTime, managedFields left out. No GET.
  f.api->ClearRequests();
  f.clock.Advance(std::chrono::microseconds(15585351));  // -> 07:59:08.001804
  f.api->Push("PUT", kLeasePath, 200, kSample22LeasePutResponse);
  REQUIRE(c->Sync());
  reqs = f.api->Requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "PUT");
  CHECK(reqs[0].path == kLeasePath);
  CHECK(reqs[0].body == kSample22LeasePut);
  CHECK(c->LatestLease() == kSample22LeasePutResponse);

  // And the one after PUTs resourceVersion 31656, the version the last PUT returned.
  f.api->ClearRequests();
  f.clock.Advance(10s);
  f.api->Push("PUT", kLeasePath, 200, kSample22LeasePutResponse);
  REQUIRE(c->Sync());
  reqs = f.api->Requests();
  REQUIRE(reqs.size() == 1);
  json put = json::parse(reqs[0].body);
  CHECK(put["metadata"]["resourceVersion"] == "31656");
  CHECK(put["spec"]["renewTime"] == "2026-11-24T07:59:18.001804Z");
}

TEST_CASE("lease: a 409 re-GETs the lease and retries the PUT with its version") {
  Fixture f;
  f.api->Push("GET", kLeasePath, 200, kSample20LeaseCreated);
  f.api->Push("PUT", kLeasePath, 409, kSample23LeaseConflict);
  f.api->Push("GET", kLeasePath, 200, kSample22LeasePutResponse);  // someone renewed it
  f.api->Push("PUT", kLeasePath, 200, kSample22LeasePutResponse);
  auto c = f.Make();
  REQUIRE(c->Sync());
  auto reqs = f.api->Requests();
  REQUIRE(reqs.size() == 4);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[1].method == "PUT");
  CHECK(json::parse(reqs[1].body)["metadata"]["resourceVersion"] == "31652");
  CHECK(reqs[2].method == "GET");
  CHECK(reqs[3].method == "PUT");
  CHECK(json::parse(reqs[3].body)["metadata"]["resourceVersion"] == "31656");
  CHECK(f.api->Requests("POST", kLeasesPath).empty());
}

TEST_CASE("lease: at most 5 PUTs per attempt, then a fallback to GET") {
  Fixture f;
  f.api->SetDefault("GET", kLeasePath, 200, kSample20LeaseCreated);
  f.api->SetDefault("PUT", kLeasePath, 500,
                    FakeApiClient::StatusBody(500, "InternalError", "etcdserver: timeout"));
  auto c = f.Make();
  CHECK_FALSE(c->Sync());
  CHECK(f.api->Requests("GET", kLeasePath).size() == 1);
  CHECK(f.api->Requests("PUT", kLeasePath).size() == 5);
  // The next tick renews the last lease it has (5 PUTs), then falls back to ensure (GET + 5).
  f.api->ClearRequests();
  CHECK_FALSE(c->Sync());
  CHECK(f.api->Requests("PUT", kLeasePath).size() == 10);
  CHECK(f.api->Requests("GET", kLeasePath).size() == 1);
}

TEST_CASE("lease: no create while the Node's uid is unknown; GETs the Node for it") {
  Fixture f;
  f.uid = "";
  f.api->SetDefault("GET", kLeasePath, 404, NotFound());
  f.api->Push("GET", "/api/v1/nodes/sample-node", 404,
              FakeApiClient::StatusBody(404, "NotFound", "nodes \\\"sample-node\\\" not found"));
  auto c = f.Make();
  CHECK_FALSE(c->Sync());
  CHECK(f.api->Requests("POST", kLeasesPath).empty());
  CHECK(c->LatestLease().empty());

  // The Node appears (GET works): the lease is created, owned by it.
  f.api->Push("GET", "/api/v1/nodes/sample-node", 200, AsCubelet(kSample10Response));
  f.api->Push("POST", kLeasesPath, 201, kSample20LeaseCreated);
  REQUIRE(c->Sync());
  auto posts = f.api->Requests("POST", kLeasesPath);
  REQUIRE(posts.size() == 1);
  json lease = json::parse(posts[0].body);
  CHECK(lease["metadata"]["ownerReferences"] ==
        json::parse(R"([{"apiVersion":"v1","kind":"Node","name":"sample-node","uid":")" + kNodeUid +
                    R"("}])"));
}

TEST_CASE("lease: the owner is added on renewal when the lease has none") {
  Fixture f;
  json lease = json::parse(kSample20LeaseCreated);
  lease["metadata"].erase("ownerReferences");
  f.api->Push("GET", kLeasePath, 200, lease.dump());
  f.api->Push("PUT", kLeasePath, 200, kSample22LeasePutResponse);
  auto c = f.Make();
  REQUIRE(c->Sync());
  auto puts = f.api->Requests("PUT", kLeasePath);
  REQUIRE(puts.size() == 1);
  json put = json::parse(puts[0].body);
  CHECK(put["metadata"]["ownerReferences"][0]["uid"] == kNodeUid);
  CHECK(put["metadata"]["ownerReferences"][0]["kind"] == "Node");
  CHECK_FALSE(put["metadata"].contains("managedFields"));
}

TEST_CASE("lease: renewTime always has six fractional digits") {
  Fixture f;
  f.clock = base::FakeClock(At("2026-11-24T08:00:00Z") + std::chrono::microseconds(100));
  f.api->Push("GET", kLeasePath, 404, NotFound());
  f.api->Push("POST", kLeasesPath, 201, kSample20LeaseCreated);
  auto c = f.Make();
  REQUIRE(c->Sync());
  CHECK(json::parse(f.api->Requests("POST", kLeasesPath)[0].body)["spec"]["renewTime"] ==
        "2026-11-24T08:00:00.000100Z");
}

TEST_CASE("lease: GET failures back off and retry; Stop() ends the thread promptly") {
  Fixture f;
  f.options.renew_interval = 20ms;
  f.api->PushReply("GET", kLeasePath, FakeApiClient::TransportError("connection refused"));
  f.api->Push("GET", kLeasePath, 503, FakeApiClient::StatusBody(503, "ServiceUnavailable", ""));
  f.api->Push("GET", kLeasePath, 200, kSample20LeaseCreated);
  f.api->SetDefault("PUT", kLeasePath, 200, kSample22LeasePutResponse);
  auto c = f.Make();
  c->Start();
  // Heartbeats keep coming: several PUTs at the (shortened) renew interval.
  REQUIRE(f.api->WaitFor(
      [](const auto& reqs) {
        int puts = 0;
        for (const auto& r : reqs) puts += r.method == "PUT";
        return puts >= 3;
      },
      5s));
  auto t0 = std::chrono::steady_clock::now();
  c->Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  CHECK(f.api->Requests("GET", kLeasePath).size() == 3);  // only until the first success

  // A controller stuck in a long back-off stops at once too.
  Fixture g;
  g.options.backoff_initial = 5s;
  g.options.backoff_max = 10s;
  g.api->SetDefault("GET", kLeasePath, 500, FakeApiClient::StatusBody(500, "InternalError", ""));
  auto c2 = g.Make();
  c2->Start();
  REQUIRE(g.api->WaitForRequests(1, 5s));
  t0 = std::chrono::steady_clock::now();
  c2->Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
}

TEST_CASE("lease: RequestSync() runs the next heartbeat without waiting the interval") {
  Fixture f;
  f.options.renew_interval = 1h;
  f.api->Push("GET", kLeasePath, 200, kSample20LeaseCreated);
  f.api->SetDefault("PUT", kLeasePath, 200, kSample22LeasePutResponse);
  auto c = f.Make();
  c->Start();
  REQUIRE(f.api->WaitForRequests(2, 5s));  // GET + PUT of the first sync
  c->RequestSync();
  REQUIRE(f.api->WaitForRequests(3, 5s));
  CHECK(f.api->Requests("PUT", kLeasePath).size() == 2);
  c->Stop();
}
