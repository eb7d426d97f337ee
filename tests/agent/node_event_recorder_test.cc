// ApiEventRecorder: the core/v1 Event body (k8s-samples 39), fire-and-forget delivery on its own
// thread, count PATCHes for repeats, retries and the bounded queue.
#include <atomic>
#include <catch2/catch.hpp>
#include <future>
#include <nlohmann/json.hpp>

#include "agent/event_recorder.h"
#include "tests/agent/fake_api_client.h"
#include "tests/agent/node_test_util.h"

using namespace nodetest;
using nlohmann::json;
using testsupport::FakeApiClient;
using testsupport::RecordedRequest;
using namespace std::chrono_literals;

namespace {

agent::ApiEventRecorder::Options Opts() {
  agent::ApiEventRecorder::Options o;
  o.host = "sample-node";
  o.retry_delay = 1ms;
  return o;
}

agent::ObjectReference SamplePod() {
  agent::ObjectReference ref;
  ref.kind = "Pod";
  ref.namespace_ = "samples";
  ref.name = "sample-pod";
  ref.uid = "7d18e496-7af9-4b13-819c-c342914d44a0";
  ref.api_version = "v1";
  ref.resource_version = "31675";
  ref.field_path = "spec.containers{main}";
  return ref;
}

}  // namespace

TEST_CASE("event body matches the kubelet's (sample 39)") {
  std::string body = agent::ApiEventRecorder::BuildEventBody(
      SamplePod(), agent::kEventNormal, "Started", "Started container main",
      "sample-pod.187b0a3f2c1d4e5a", "kubelet", "sample-node", At("2026-11-24T07:59:58Z"));
  CHECK(body == kSample39EventCreate);
}

TEST_CASE("node events go to the default namespace with the kubelet's node reference") {
  auto api = std::make_shared<FakeApiClient>();
  api->SetDefault("POST", "/api/v1/namespaces/default/events", 201, "{}");
  base::FakeClock clock(At("2026-11-24T07:58:29.5Z"));
  agent::ApiEventRecorder rec(api, Opts(), &clock);
  rec.Start();
  rec.Event(agent::NodeReference("sample-node"), agent::kEventNormal, "NodeReady",
            "Node sample-node status is now: NodeReady");
  REQUIRE(rec.Flush(5s));
  auto reqs = api->Requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].path == "/api/v1/namespaces/default/events");
  CHECK(reqs[0].content_type == "application/json");
  json ev = json::parse(reqs[0].body);
  // Name: <object>.<unix nanos in hex>, as client-go.
  char expected_name[64];
  snprintf(expected_name, sizeof expected_name, "sample-node.%llx",
           static_cast<unsigned long long>(base::ToUnixNanos(clock.Now())));
  CHECK(ev["metadata"]["name"] == expected_name);
  CHECK(ev["metadata"]["namespace"] == "default");
  CHECK(ev["involvedObject"] == json::parse(R"({"kind":"Node","name":"sample-node",)"
                                            R"("uid":"sample-node"})"));
  CHECK(ev["firstTimestamp"] == "2026-11-24T07:58:29Z");
  CHECK(ev["count"] == 1);
  CHECK(ev["type"] == "Normal");
  CHECK(ev["reportingInstance"] == "sample-node");
  CHECK(ev["source"]["host"] == "sample-node");
}

TEST_CASE("Event() never waits for the API server") {
  auto api = std::make_shared<FakeApiClient>();
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  api->SetHandler([released](const RecordedRequest&) -> std::optional<FakeApiClient::Reply> {
    released.wait();  // the API server hangs
    return FakeApiClient::Response(201, "{}");
  });
  agent::ApiEventRecorder rec(api, Opts());
  rec.Start();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    rec.Event(SamplePod(), agent::kEventWarning, "BackOff", "Back-off " + std::to_string(i));
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  CHECK_FALSE(rec.Flush(50ms));
  release.set_value();
  REQUIRE(rec.Flush(5s));
  CHECK(api->Requests("POST", "/api/v1/namespaces/samples/events").size() == 50);
}

TEST_CASE("a repeated event PATCHes count and lastTimestamp; an expired one is re-created") {
  auto api = std::make_shared<FakeApiClient>();
  api->SetDefault("POST", "/api/v1/namespaces/samples/events", 201, "{}");
  base::FakeClock clock(At("2026-11-24T08:00:00Z"));
  agent::ApiEventRecorder rec(api, Opts(), &clock);
  rec.Start();
  rec.Event(SamplePod(), agent::kEventWarning, "BackOff", "Back-off restarting failed container");
  REQUIRE(rec.Flush(5s));
  std::string name = json::parse(api->Requests()[0].body)["metadata"]["name"];
  std::string event_path = "/api/v1/namespaces/samples/events/" + name;
  api->Push("PATCH", event_path, 200, "{}");

  clock.Advance(30s);
  rec.Event(SamplePod(), agent::kEventWarning, "BackOff", "Back-off restarting failed container");
  REQUIRE(rec.Flush(5s));
  auto patches = api->Requests("PATCH", event_path);
  REQUIRE(patches.size() == 1);
  CHECK(patches[0].content_type == "application/strategic-merge-patch+json");
  CHECK(patches[0].body == R"({"count":2,"lastTimestamp":"2026-11-24T08:00:30Z"})");

  // A different message is a different event: a new POST.
  rec.Event(SamplePod(), agent::kEventWarning, "BackOff", "another message");
  REQUIRE(rec.Flush(5s));
  CHECK(api->Requests("POST", "/api/v1/namespaces/samples/events").size() == 2);

  // The first event expired in the API (404 on PATCH): created again with count 1.
  api->Push("PATCH", event_path, 404, FakeApiClient::StatusBody(404, "NotFound", "gone"));
  clock.Advance(2h);
  rec.Event(SamplePod(), agent::kEventWarning, "BackOff", "Back-off restarting failed container");
  REQUIRE(rec.Flush(5s));
  auto posts = api->Requests("POST", "/api/v1/namespaces/samples/events");
  REQUIRE(posts.size() == 3);
  json again = json::parse(posts[2].body);
  CHECK(again["count"] == 1);
  CHECK(again["metadata"]["name"] != name);
  CHECK(again["firstTimestamp"] == "2026-11-24T10:00:30Z");
}

TEST_CASE("events are retried on 5xx and transport errors, not on 4xx") {
  auto api = std::make_shared<FakeApiClient>();
  const std::string path = "/api/v1/namespaces/samples/events";
  api->PushReply("POST", path, FakeApiClient::TransportError("connection reset"));
  api->Push("POST", path, 503, FakeApiClient::StatusBody(503, "ServiceUnavailable", "x"));
  api->Push("POST", path, 201, "{}");
  api->Push("POST", path, 403, FakeApiClient::StatusBody(403, "Forbidden", "no"));
  agent::ApiEventRecorder rec(api, Opts());
  rec.Start();
  rec.Event(SamplePod(), agent::kEventNormal, "Pulled", "ok");
  REQUIRE(rec.Flush(5s));
  CHECK(api->Requests("POST", path).size() == 3);
  rec.Event(SamplePod(), agent::kEventNormal, "Created", "refused");
  REQUIRE(rec.Flush(5s));
  CHECK(api->Requests("POST", path).size() == 4);
}

TEST_CASE("a full queue drops new events instead of growing") {
  auto api = std::make_shared<FakeApiClient>();
  api->SetDefault("POST", "/api/v1/namespaces/samples/events", 201, "{}");
  auto o = Opts();
  o.max_queued = 3;
  agent::ApiEventRecorder rec(api, o);
  for (int i = 0; i < 10; ++i) {  // not started yet: everything waits in the queue
    rec.Event(SamplePod(), agent::kEventNormal, "R", std::to_string(i));
  }
  rec.Start();
  REQUIRE(rec.Flush(5s));
  auto posts = api->Requests("POST", "/api/v1/namespaces/samples/events");
  REQUIRE(posts.size() == 3);
  CHECK(json::parse(posts[2].body)["message"] == "2");
}
