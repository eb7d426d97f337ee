#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "agent/pod_status.h"
#include "agent/status_manager.h"

using namespace agent;
using nlohmann::json;

namespace {

Pod MakePod(std::string policy = "Always") {
  Pod p;
  p.ns = "samples";
  p.name = "demo-pod";
  p.uid = "u1";
  p.restart_policy = policy;
  Container c;
  c.name = "main";
  c.image = "busybox";
  c.resources.requests.cpu_milli = 100;
  c.resources.limits.cpu_milli = 200;
  p.containers.push_back(c);
  return p;
}

base::WallTime T(int64_t s) { return base::FromUnixNanos(s * 1000000000LL); }

PodRuntimeState Running() {
  PodRuntimeState s;
  ObservedSandbox sb;
  sb.id = "sb";
  sb.ready = true;
  sb.ip = "10.244.9.6";
  s.sandboxes.push_back(sb);
  ObservedContainer c;
  c.id = "abc";
  c.name = "main";
  c.state = cri::ContainerState::kRunning;
  c.started_at = 1700000000LL * 1000000000LL;
  c.image_ref = "docker.io/library/busybox@sha256:2919";
  s.containers.push_back(c);
  return s;
}

}  // namespace

TEST_CASE("running pod status has what the kubelet reports") {
  Pod p = MakePod();
  PodRuntimeState rt = Running();
  StatusInputs in;
  in.pod = &p;
  in.runtime = &rt;
  in.host_ips = {"10.250.9.2"};
  in.sandbox_ready = true;
  in.now = T(1700000005);
  json st = GeneratePodStatus(in);
  CHECK(st["phase"] == "Running");
  CHECK(st["podIP"] == "10.244.9.6");
  CHECK(st["podIPs"] == json::parse(R"([{"ip":"10.244.9.6"}])"));
  CHECK(st["hostIP"] == "10.250.9.2");
  CHECK(st["qosClass"] == "Burstable");
  CHECK(st["startTime"] == "2023-11-14T22:13:25Z");
  const json& cs = st["containerStatuses"][0];
  CHECK(cs["name"] == "main");
  CHECK(cs["ready"] == true);
  CHECK(cs["started"] == true);
  CHECK(cs["restartCount"] == 0);
  CHECK(cs["containerID"] == "cubelet://abc");
  CHECK(cs["imageID"] == "docker.io/library/busybox@sha256:2919");
  CHECK(cs["state"]["running"]["startedAt"] == "2023-11-14T22:13:20Z");
  std::vector<std::string> types;
  for (const auto& c : st["conditions"]) {
    types.push_back(c["type"]);
    CHECK(c["status"] == "True");
  }
  CHECK(types == std::vector<std::string>{"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                          "PodScheduled"});
}

TEST_CASE("an exited container under Never makes the pod Failed with the exit code") {
  Pod p = MakePod("Never");
  PodRuntimeState rt = Running();
  rt.containers[0].state = cri::ContainerState::kExited;
  rt.containers[0].exit_code = 3;
  rt.containers[0].finished_at = 1700000002LL * 1000000000LL;
  StatusInputs in;
  in.pod = &p;
  in.runtime = &rt;
  in.sandbox_ready = true;
  in.now = T(1700000005);
  json st = GeneratePodStatus(in);
  CHECK(st["phase"] == "Failed");
  const json& t = st["containerStatuses"][0]["state"]["terminated"];
  CHECK(t["exitCode"] == 3);
  CHECK(t["reason"] == "Error");
  CHECK(t["finishedAt"] == "2023-11-14T22:13:22Z");
  CHECK(st["conditions"][2]["reason"] == "PodFailed");
}

TEST_CASE("a restarting container shows CrashLoopBackOff and its last termination") {
  Pod p = MakePod("Always");
  PodRuntimeState rt = Running();
  rt.containers[0].state = cri::ContainerState::kExited;
  rt.containers[0].exit_code = 1;
  rt.containers[0].attempt = 2;
  StatusInputs in;
  in.pod = &p;
  in.runtime = &rt;
  in.sandbox_ready = true;
  in.waiting["main"] = {"CrashLoopBackOff", "back-off 40s restarting failed container=main pod=demo-pod_samples(u1)"};
  in.now = T(1700000005);
  json st = GeneratePodStatus(in);
  const json& cs = st["containerStatuses"][0];
  CHECK(cs["state"]["waiting"]["reason"] == "CrashLoopBackOff");
  CHECK(cs["lastState"]["terminated"]["exitCode"] == 1);
  CHECK(cs["restartCount"] == 2);
  CHECK(st["phase"] == "Running");
  CHECK(st["conditions"][2]["status"] == "False");
  CHECK(st["conditions"][2]["message"] == "containers with unready status: [main]");
}

TEST_CASE("image pull errors are waiting reasons and the pod stays Pending") {
  Pod p = MakePod();
  PodRuntimeState rt;
  ObservedSandbox sb;
  sb.id = "sb";
  sb.ready = true;
  rt.sandboxes.push_back(sb);
  StatusInputs in;
  in.pod = &p;
  in.runtime = &rt;
  in.sandbox_ready = true;
  in.waiting["main"] = {"ErrImageNeverPull", "Container image \"busybox\" is not present with pull policy of Never"};
  in.now = T(1700000005);
  json st = GeneratePodStatus(in);
  CHECK(st["phase"] == "Pending");
  CHECK(st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ErrImageNeverPull");
}

TEST_CASE("transition times are kept while a condition does not flip") {
  Pod p = MakePod();
  PodRuntimeState rt = Running();
  json old = json::parse(R"({"conditions":[{"type":"Ready","status":"True","lastTransitionTime":"2020-01-01T00:00:00Z"},
                                          {"type":"example.com/gate","status":"True"}],
                             "startTime":"2020-01-01T00:00:00Z"})");
  StatusInputs in;
  in.pod = &p;
  in.runtime = &rt;
  in.old_status = &old;
  in.sandbox_ready = true;
  in.now = T(1700000005);
  json st = GeneratePodStatus(in);
  CHECK(st["conditions"][2]["type"] == "Ready");
  CHECK(st["conditions"][2]["lastTransitionTime"] == "2020-01-01T00:00:00Z");
  CHECK(st["conditions"][0]["lastTransitionTime"] == "2023-11-14T22:13:25Z");
  CHECK(st["conditions"].back()["type"] == "example.com/gate");  // not ours: kept
  CHECK(st["startTime"] == "2020-01-01T00:00:00Z");
}

TEST_CASE("status patch carries the uid precondition and only the changes") {
  json old = json::parse(R"({"phase":"Pending","qosClass":"Burstable",
      "conditions":[{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2020-01-01T00:00:00Z"}]})");
  json neu = json::parse(R"({"phase":"Running","qosClass":"Burstable",
      "conditions":[{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":"2020-01-01T00:00:01Z"},
                    {"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2020-01-01T00:00:00Z"}],
      "containerStatuses":[{"name":"main","state":{"running":{"startedAt":"x"}}}]})");
  json patch = StatusManager::BuildPatch("u1", old, neu);
  CHECK(patch["metadata"]["uid"] == "u1");
  CHECK(patch["status"]["phase"] == "Running");
  CHECK_FALSE(patch["status"].contains("qosClass"));
  CHECK(patch["status"]["$setElementOrder/conditions"] == json::parse(R"([{"type":"Ready"},{"type":"PodScheduled"}])"));
  REQUIRE(patch["status"]["conditions"].size() == 1);
  CHECK(patch["status"]["conditions"][0]["type"] == "Ready");
  CHECK(StatusManager::BuildPatch("u1", neu, neu).is_null());
}
