// NodeStatusManager against the FakeApiClient: the requests it sends (method, path,
// content type, body) for registration, the 409 path, retries and the status loop.
#include "agent/node_status.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/agent/fake_api_client.h"
#include "tests/agent/fake_event_recorder.h"
#include "tests/agent/node_test_util.h"

using namespace nodetest;
using nlohmann::json;
using testsupport::FakeApiClient;
using namespace std::chrono_literals;

namespace {

class FakeMachine : public agent::MachineInfoSource {
 public:
  base::Result<agent::MachineInfo> Info() override {
    std::lock_guard lk(mu);
    if (fail_info) return base::Fail("fake: no machine info");
    return machine;
  }
  agent::ResourceUsage Usage() override {
    std::lock_guard lk(mu);
    return usage;
  }
  std::mutex mu;
  agent::MachineInfo machine = SampleMachine();
  agent::ResourceUsage usage = SampleObservation("2026-11-24T07:58:29Z").usage;
  bool fail_info = false;
};

struct Runtime {
  std::mutex mu;
  cri::RuntimeStatus status;
  Runtime() {
    status.conditions = {{"RuntimeReady", true, "", ""}, {"NetworkReady", true, "", ""}};
  }
  void SetNetwork(bool ready, std::string reason, std::string message) {
    std::lock_guard lk(mu);
    status.conditions[1] = {"NetworkReady", ready, std::move(reason), std::move(message)};
  }
};

struct Fixture {
  std::shared_ptr<FakeApiClient> api = std::make_shared<FakeApiClient>();
  std::shared_ptr<FakeMachine> machine = std::make_shared<FakeMachine>();
  std::shared_ptr<testsupport::FakeEventRecorder> events =
      std::make_shared<testsupport::FakeEventRecorder>();
  std::shared_ptr<Runtime> runtime = std::make_shared<Runtime>();
  base::FakeClock clock{At("2026-11-24T07:58:29Z")};
  std::mutex mu;
  std::vector<std::string> pod_cidrs;
  std::vector<std::string> registered_uids;
  agent::NodeStatusOptions options;

  Fixture() {
    options.node = SampleConfig();
    options.register_backoff_initial = 1ms;
    options.register_backoff_max = 4ms;
  }

  std::unique_ptr<agent::NodeStatusManager> Make() {
    agent::NodeStatusHooks hooks;
    auto rt = runtime;
    hooks.runtime_status = [rt]() -> base::Result<cri::RuntimeStatus> {
      std::lock_guard lk(rt->mu);
      return rt->status;
    };
    hooks.list_images = []() -> base::Result<std::vector<cri::Image>> {
      return std::vector<cri::Image>{Busybox()};
    };
    hooks.on_pod_cidr = [this](const std::string& c) {
      std::lock_guard lk(mu);
      pod_cidrs.push_back(c);
    };
    hooks.on_registered = [this](const std::string& uid) {
      std::lock_guard lk(mu);
      registered_uids.push_back(uid);
    };
    return std::make_unique<agent::NodeStatusManager>(options, api, hooks, machine, events, &clock);
  }
};

const std::string kSample11Conflict =
    R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nodes \"sample-node\" already exists","reason":"AlreadyExists","details":{"name":"sample-node","kind":"nodes"},"code":409})";

json FindCondition(const json& conds, const std::string& type) {
  for (const auto& c : conds) {
    if (c["type"] == type) return c;
  }
  return json();
}

}  // namespace

TEST_CASE("registration POSTs the kubelet's Node body and learns the uid") {
  Fixture f;
  f.api->Push("POST", "/api/v1/nodes", 201, AsCubelet(kSample10Response));
  auto m = f.Make();
  auto r = m->TryRegister();
  REQUIRE(r);
  CHECK(*r);
  auto reqs = f.api->Requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].path == "/api/v1/nodes");
  CHECK(reqs[0].content_type == "application/json");
  CHECK(reqs[0].body == AsCubelet(kSample10Request));
  CHECK(m->Registered());
  CHECK(m->NodeUid() == "99e5d469-02c8-46ad-b2f9-0020faf99cda");
  CHECK(f.registered_uids == std::vector<std::string>{"99e5d469-02c8-46ad-b2f9-0020faf99cda"});
  CHECK(f.events->Reasons() == std::vector<std::string>{"NodeHasSufficientMemory",
                                                        "NodeHasNoDiskPressure",
                                                        "NodeHasSufficientPID"});
  auto ev = f.events->Events()[0];
  CHECK(ev.object.kind == "Node");
  CHECK(ev.object.name == "sample-node");
}

TEST_CASE("409 on registration: GET, reconcile with a status PATCH, never re-POST") {
  Fixture f;
  json existing = json::parse(AsCubelet(kSample10Response));
  existing["metadata"]["labels"]["kubernetes.io/hostname"] = "stale";
  existing["metadata"]["labels"]["team"] = "blue";
  f.api->Push("POST", "/api/v1/nodes", 409, kSample11Conflict);
  f.api->Push("GET", "/api/v1/nodes/sample-node", 200, existing.dump());
  f.api->Push("PATCH", "/api/v1/nodes/sample-node/status", 200, AsCubelet(kSample10Response));
  auto m = f.Make();
  REQUIRE(m->RegisterWithApiServer());
  auto reqs = f.api->Requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[1].method == "GET");
  CHECK(reqs[1].path == "/api/v1/nodes/sample-node");
  CHECK(reqs[2].method == "PATCH");
  CHECK(reqs[2].path == "/api/v1/nodes/sample-node/status");
  CHECK(reqs[2].content_type == "application/strategic-merge-patch+json");
  CHECK(reqs[2].body == R"({"metadata":{"labels":{"kubernetes.io/hostname":"sample-node"}}})");
  CHECK(m->Registered());
  CHECK(m->NodeUid() == "99e5d469-02c8-46ad-b2f9-0020faf99cda");
  CHECK(f.api->Requests("DELETE", "/api/v1/nodes/sample-node").empty());
}

TEST_CASE("409 with nothing to reconcile sends no PATCH") {
  Fixture f;
  f.api->Push("POST", "/api/v1/nodes", 409, kSample11Conflict);
  f.api->Push("GET", "/api/v1/nodes/sample-node", 200, AsCubelet(kSample10Response));
  auto m = f.Make();
  auto r = m->TryRegister();
  REQUIRE(r);
  CHECK(*r);
  CHECK(f.api->RequestCount() == 2);
  CHECK(f.api->Requests("PATCH", "/api/v1/nodes/sample-node/status").empty());
}

TEST_CASE("registration retries on transport errors and refusals") {
  Fixture f;
  f.api->PushReply("POST", "/api/v1/nodes", FakeApiClient::TransportError("connection refused"));
  f.api->Push("POST", "/api/v1/nodes", 403,
              FakeApiClient::StatusBody(403, "Forbidden", "nodes is forbidden"));
  f.api->Push("POST", "/api/v1/nodes", 500, FakeApiClient::StatusBody(500, "InternalError", "x"));
  f.api->Push("POST", "/api/v1/nodes", 201, AsCubelet(kSample10Response));
  auto m = f.Make();
  auto once = m->TryRegister();
  REQUIRE_FALSE(once);
  CHECK(once.error().message.find("connection refused") != std::string::npos);
  REQUIRE(m->RegisterWithApiServer());
  CHECK(f.api->Requests("POST", "/api/v1/nodes").size() == 4);
}

TEST_CASE("status is patched on change or when the report period passed, else only read") {
  Fixture f;
  f.api->Push("POST", "/api/v1/nodes", 201, AsCubelet(kSample10Response));
  f.api->SetDefault("GET", "/api/v1/nodes/sample-node", 200, AsCubelet(kSample10Response));
  f.api->SetDefault("PATCH", "/api/v1/nodes/sample-node/status", 200, AsCubelet(kSample10Response));
  auto m = f.Make();
  REQUIRE(m->RegisterWithApiServer());
  f.api->ClearRequests();

  // First update after registration: nothing reported yet, so it patches (heartbeats).
  f.clock.Advance(9s);
  auto p1 = m->TryUpdateNodeStatus(0);
  REQUIRE(p1);
  CHECK(*p1);
  auto reqs = f.api->Requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].method == "GET");
  CHECK(reqs[0].path == "/api/v1/nodes/sample-node?resourceVersion=0");
  CHECK(reqs[1].method == "PATCH");
  CHECK(reqs[1].content_type == "application/strategic-merge-patch+json");
  CHECK(reqs[1].body == kSample12Patch);

  // 10 s later nothing changed: read only.
  f.api->ClearRequests();
  f.clock.Advance(10s);
  REQUIRE(m->UpdateNodeStatus());
  CHECK(f.api->Requests("PATCH", "/api/v1/nodes/sample-node/status").empty());
  CHECK(f.api->Requests("GET", "/api/v1/nodes/sample-node").size() == 1);

  // Just before 5 min since the last report: still nothing; at 5 min: a heartbeat patch.
  f.clock.Advance(300s - 10s - 1s);
  REQUIRE(m->UpdateNodeStatus());
  CHECK(f.api->Requests("PATCH", "/api/v1/nodes/sample-node/status").empty());
  f.clock.Advance(1s);
  REQUIRE(m->UpdateNodeStatus());
  auto patches = f.api->Requests("PATCH", "/api/v1/nodes/sample-node/status");
  REQUIRE(patches.size() == 1);
  CHECK(json::parse(patches[0].body)["status"]["conditions"][0]["lastHeartbeatTime"] ==
        "2026-11-24T08:03:38Z");

  // A real change (network not ready) is patched at once, with the Ready transition.
  f.api->ClearRequests();
  f.events->Clear();
  f.clock.Advance(10s);
  f.runtime->SetNetwork(false, "NetworkPluginNotReady", "no pod CIDR yet");
  REQUIRE(m->UpdateNodeStatus());
  patches = f.api->Requests("PATCH", "/api/v1/nodes/sample-node/status");
  REQUIRE(patches.size() == 1);
  json ready = FindCondition(json::parse(patches[0].body)["status"]["conditions"], "Ready");
  CHECK(ready["status"] == "False");
  CHECK(ready["reason"] == "KubeletNotReady");
  CHECK(ready["message"] ==
        "container runtime network not ready: NetworkReady=false "
        "reason:NetworkPluginNotReady message:no pod CIDR yet");
  CHECK(ready["lastTransitionTime"] == "2026-11-24T08:03:48Z");
  CHECK(f.events->Reasons() == std::vector<std::string>{"NodeNotReady"});
}

TEST_CASE("status update retries: the first GET may use the cache, later ones do not") {
  Fixture f;
  f.api->Push("GET", "/api/v1/nodes/sample-node?resourceVersion=0", 500,
              FakeApiClient::StatusBody(500, "InternalError", "etcd timeout"));
  f.api->Push("PATCH", "/api/v1/nodes/sample-node/status", 409,
              FakeApiClient::StatusBody(409, "Conflict", "conflict"));
  f.api->SetDefault("GET", "/api/v1/nodes/sample-node", 200, AsCubelet(kSample10Response));
  f.api->SetDefault("PATCH", "/api/v1/nodes/sample-node/status", 200, AsCubelet(kSample10Response));
  auto m = f.Make();
  REQUIRE(m->UpdateNodeStatus());
  auto reqs = f.api->Requests();
  REQUIRE(reqs.size() == 5);
  CHECK(reqs[0].path == "/api/v1/nodes/sample-node?resourceVersion=0");
  CHECK(reqs[1].path == "/api/v1/nodes/sample-node");
  CHECK(reqs[2].method == "PATCH");  // 409
  CHECK(reqs[3].path == "/api/v1/nodes/sample-node");
  CHECK(reqs[4].method == "PATCH");  // 200

  // Five failures in a row: an error naming the node and the retry count.
  Fixture g;
  g.api->SetDefault("GET", "/api/v1/nodes/sample-node", 503,
                    FakeApiClient::StatusBody(503, "ServiceUnavailable", "down"));
  auto m2 = g.Make();
  auto r = m2->UpdateNodeStatus();
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "update node 'sample-node' status: exceeds retry count 5");
  CHECK(g.api->RequestCount() == 5);
}

TEST_CASE("pod CIDR: --pod-cidr first, then the API's spec.podCIDRs, each change once") {
  Fixture f;
  f.options.pod_cidr = "10.99.0.0/24";
  f.options.update_frequency = 1h;  // only the first update runs during the test
  json node = json::parse(AsCubelet(kSample10Response));
  node["spec"]["podCIDR"] = "10.244.3.0/24";
  node["spec"]["podCIDRs"] = json::array({"10.244.3.0/24"});
  f.api->Push("POST", "/api/v1/nodes", 201, AsCubelet(kSample10Response));
  f.api->SetDefault("GET", "/api/v1/nodes/sample-node", 200, node.dump());
  f.api->SetDefault("PATCH", "/api/v1/nodes/sample-node/status", 200, node.dump());
  auto m = f.Make();
  m->Start();
  REQUIRE(f.api->WaitFor(
      [](const auto& reqs) {
        for (const auto& r : reqs) {
          if (r.method == "PATCH") return true;
        }
        return false;
      },
      5s));
  auto t0 = std::chrono::steady_clock::now();
  m->Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);  // no sleeping through shutdown
  {
    std::lock_guard lk(f.mu);
    CHECK(f.pod_cidrs == std::vector<std::string>{"10.99.0.0/24", "10.244.3.0/24"});
  }
  CHECK(m->PodCidrs() == "10.244.3.0/24");
  CHECK(f.events->Reasons().front() == "Starting");

  // The same CIDR again is not a change; a pod-CIDR change alone forces a patch.
  Fixture g;
  g.api->SetDefault("GET", "/api/v1/nodes/sample-node", 200, node.dump());
  g.api->SetDefault("PATCH", "/api/v1/nodes/sample-node/status", 200, node.dump());
  auto m2 = g.Make();
  REQUIRE(m2->TryUpdateNodeStatus(0));
  g.clock.Advance(10s);
  auto again = m2->TryUpdateNodeStatus(0);
  REQUIRE(again);
  CHECK_FALSE(*again);
  CHECK(g.pod_cidrs.size() == 1);
}

TEST_CASE("a stopped manager returns from registration back-off at once") {
  Fixture f;
  f.options.register_backoff_initial = 10s;
  f.options.register_backoff_max = 10s;
  f.api->SetDefault("POST", "/api/v1/nodes", 500,
                    FakeApiClient::StatusBody(500, "InternalError", "x"));
  auto m = f.Make();
  m->Start();
  REQUIRE(f.api->WaitForRequests(1, 5s));
  auto t0 = std::chrono::steady_clock::now();
  m->Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < 1s);
  CHECK_FALSE(m->Registered());
  CHECK(f.api->Requests("POST", "/api/v1/nodes").size() == 1);
}

TEST_CASE("without machine info the node registers NotReady for missing capacity") {
  Fixture f;
  f.machine->fail_info = true;
  f.api->Push("POST", "/api/v1/nodes", 201, AsCubelet(kSample10Response));
  auto m = f.Make();
  REQUIRE(m->TryRegister());
  json body = json::parse(f.api->Requests()[0].body);
  json ready = FindCondition(body["status"]["conditions"], "Ready");
  CHECK(ready["status"] == "False");
  CHECK(ready["message"] ==
        "missing node capacity for resources: cpu, memory, pods, ephemeral-storage");
}
