// The pure node-status code against the real kube-apiserver captures (k8s-samples 10 and 12):
// the registration body and the heartbeat patch must come out byte for byte like the kubelet's,
// apart from the version strings that name cubelet.
#include "agent/node_setters.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/agent/node_test_util.h"

using agent::NodeObservation;
using agent::NodeStatusConfig;
using nlohmann::json;
using namespace nodetest;

namespace {

json Parse(const std::string& s) { return json::parse(s); }

json FindCondition(const json& node, const std::string& type) {
  for (const auto& c : node["status"]["conditions"]) {
    if (c["type"] == type) return c;
  }
  return json();
}

std::vector<std::string> Reasons(const std::vector<agent::NodeEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.reason);
  return out;
}

}  // namespace

TEST_CASE("quantities are printed in resource.Quantity's canonical form") {
  CHECK(agent::FormatBinarySI(0) == "0");
  CHECK(agent::FormatBinarySI(1023) == "1023");
  CHECK(agent::FormatBinarySI(int64_t{16318064} * 1024) == "16318064Ki");
  CHECK(agent::FormatBinarySI(int64_t{4} << 30) == "4Gi");
  CHECK(agent::FormatBinarySI(100 * 1024 * 1024) == "100Mi");
  CHECK(agent::FormatBinarySI(56403987978) == "56403987978");
  CHECK(agent::FormatBinarySI(1536) == "1536");
  CHECK(agent::FormatDecimalSIMilli(0) == "0");
  CHECK(agent::FormatDecimalSIMilli(4000) == "4");
  CHECK(agent::FormatDecimalSIMilli(3900) == "3900m");
  CHECK(agent::FormatDecimalSIMilli(100) == "100m");
  CHECK(agent::FormatDecimalSIMilli(110000) == "110");
  CHECK(agent::FormatDecimalSIMilli(1000000) == "1k");
  CHECK(agent::FormatDecimalSIMilli(1500000) == "1500");
  CHECK(agent::FormatDecimalSIMilli(250000000) == "250k");
}

TEST_CASE("registration body equals the captured kubelet body of sample 10") {
  std::vector<agent::NodeEvent> events;
  std::string body = agent::BuildRegistrationNode(
      SampleConfig(), SampleObservation("2026-11-24T07:58:29Z"), &events);
  // Byte for byte: field order, sorted map keys, canonical quantities (the allocatable memory is
  // capacity - 100Mi and ephemeral-storage capacity - int64(capacity * float32(0.1))).
  CHECK(body == AsCubelet(kSample10Request));
  // The pressure setters record their first decision; Ready does not on a new node.
  CHECK(Reasons(events) == std::vector<std::string>{"NodeHasSufficientMemory",
                                                    "NodeHasNoDiskPressure",
                                                    "NodeHasSufficientPID"});
  CHECK(events[0].type == "Normal");
  CHECK(events[0].message == "Node sample-node status is now: NodeHasSufficientMemory");
}

TEST_CASE("registration body: labels, taints, reserved resources") {
  NodeStatusConfig c = SampleConfig();
  c.hostname = "host-a";
  c.node_labels = {{"node-role.kubernetes.io/worker", ""}, {"kubernetes.io/hostname", "over"}};
  c.register_with_taints = *agent::ParseTaints("dedicated=gpu:NoSchedule,spot:NoExecute");
  c.register_schedulable = false;
  c.system_reserved = *agent::ParseResourceAmounts("cpu=100m,memory=1Gi");
  c.kube_reserved = *agent::ParseResourceAmounts("cpu=150m,ephemeral-storage=1Gi");
  c.max_pods = 250;
  NodeObservation o = SampleObservation("2026-11-24T07:58:29Z");
  o.machine->hugepages["hugepages-2Mi"] = 64 * 2 * 1024 * 1024;  // 64 pages reserved
  json n = Parse(agent::BuildRegistrationNode(c, o, nullptr));

  CHECK(n["metadata"]["labels"]["kubernetes.io/hostname"] == "over");  // --node-labels win
  CHECK(n["metadata"]["labels"]["node-role.kubernetes.io/worker"] == "");
  CHECK(
      n["spec"].dump() ==
      R"({"taints":[{"effect":"NoSchedule","key":"dedicated","value":"gpu"},)"
      R"({"effect":"NoExecute","key":"spot"},)"
      R"({"effect":"NoSchedule","key":"node.kubernetes.io/unschedulable"}],"unschedulable":true})");
  CHECK(n["status"]["addresses"][1]["address"] == "host-a");
  const json& cap = n["status"]["capacity"];
  const json& alloc = n["status"]["allocatable"];
  CHECK(cap["hugepages-2Mi"] == "128Mi");
  CHECK(cap["pods"] == "250");
  CHECK(alloc["cpu"] == "3750m");
  // 16318064Ki - 1Gi - 100Mi (eviction) - 128Mi (hugepages)
  CHECK(alloc["memory"] == std::to_string(16318064 - 1048576 - 102400 - 131072) + "Ki");
  CHECK(alloc["ephemeral-storage"] == std::to_string(56403987978 - (int64_t{1} << 30)));
  CHECK(alloc["hugepages-2Mi"] == "128Mi");
}

TEST_CASE("heartbeat-only update is not a change and patches like sample 12") {
  std::string node = AsCubelet(kSample10Response);
  auto u = agent::UpdateNode(node, SampleConfig(), SampleObservation("2026-11-24T07:58:38Z"));
  REQUIRE(u);
  CHECK_FALSE(u->changed);
  CHECK(u->events.empty());
  CHECK(u->patch == kSample12Patch);
  // Transition times stay, heartbeats move.
  json n = Parse(u->node);
  CHECK(FindCondition(n, "Ready")["lastTransitionTime"] == "2026-11-24T07:58:29Z");
  CHECK(FindCondition(n, "Ready")["lastHeartbeatTime"] == "2026-11-24T07:58:38Z");
  // Fields the kubelet does not own survive (spec, uid, managedFields).
  CHECK(n["spec"]["taints"][0]["key"] == "node.kubernetes.io/not-ready");
  CHECK(n["metadata"]["uid"] == "99e5d469-02c8-46ad-b2f9-0020faf99cda");
}

TEST_CASE("Ready flips to False with the kubelet's message and a new transition time") {
  std::string node = AsCubelet(kSample10Response);
  agent::RuntimeReadiness rr;
  cri::RuntimeStatus st;
  st.conditions = {{"RuntimeReady", true, "", ""},
                   {"NetworkReady", false, "NoPodCIDR", "waiting for the node's pod CIDR"}};
  rr.Observe(st, At("2026-11-24T07:58:37Z"));
  NodeObservation o = SampleObservation("2026-11-24T07:58:38Z");
  o.readiness_errors = rr.Errors(o.now);
  auto u = agent::UpdateNode(node, SampleConfig(), o);
  REQUIRE(u);
  CHECK(u->changed);
  json ready = FindCondition(Parse(u->node), "Ready");
  CHECK(ready["status"] == "False");
  CHECK(ready["reason"] == "KubeletNotReady");
  CHECK(ready["message"] ==
        "container runtime network not ready: NetworkReady=false reason:NoPodCIDR "
        "message:waiting for the node's pod CIDR");
  CHECK(ready["lastTransitionTime"] == "2026-11-24T07:58:38Z");
  CHECK(Reasons(u->events) == std::vector<std::string>{"NodeNotReady"});
  // The patch carries only the changed fields of Ready plus every heartbeat.
  json p = Parse(u->patch);
  CHECK(p["status"]["conditions"][3] ==
        json::parse(R"({"lastHeartbeatTime":"2026-11-24T07:58:38Z",)"
                    R"("lastTransitionTime":"2026-11-24T07:58:38Z",)"
                    R"("message":")" +
                    ready["message"].get<std::string>() +
                    R"(",)"
                    R"("reason":"KubeletNotReady","status":"False","type":"Ready"})"));

  // Still not ready 10 s later: the transition time is kept, no new event, no change.
  o.now = At("2026-11-24T07:58:48Z");
  rr.Observe(st, o.now);
  o.readiness_errors = rr.Errors(o.now);
  auto u2 = agent::UpdateNode(u->node, SampleConfig(), o);
  REQUIRE(u2);
  CHECK_FALSE(u2->changed);
  CHECK(u2->events.empty());
  CHECK(FindCondition(Parse(u2->node), "Ready")["lastTransitionTime"] == "2026-11-24T07:58:38Z");

  // Ready again: NodeReady event, new transition.
  st.conditions[1].status = true;
  o.now = At("2026-11-24T07:58:58Z");
  rr.Observe(st, o.now);
  o.readiness_errors = rr.Errors(o.now);
  auto u3 = agent::UpdateNode(u2->node, SampleConfig(), o);
  REQUIRE(u3);
  CHECK(u3->changed);
  CHECK(Reasons(u3->events) == std::vector<std::string>{"NodeReady"});
  json r3 = FindCondition(Parse(u3->node), "Ready");
  CHECK(r3["message"] == "kubelet is posting ready status");
  CHECK(r3["lastTransitionTime"] == "2026-11-24T07:58:58Z");
}

TEST_CASE("runtime readiness errors follow the kubelet's runtimeState") {
  agent::RuntimeReadiness rr;
  base::WallTime t0 = At("2026-11-24T08:00:00Z");
  CHECK(rr.Errors(t0) ==
        std::vector<std::string>{"container runtime status check may not have completed yet"});
  cri::RuntimeStatus ok;
  ok.conditions = {{"RuntimeReady", true, "", ""}, {"NetworkReady", true, "", ""}};
  rr.Observe(ok, t0);
  CHECK(rr.Errors(t0 + std::chrono::seconds(29)).empty());
  // Status() keeps failing: after 30 s without a sync the runtime is "down".
  rr.Observe(base::Fail("connection refused"), t0 + std::chrono::seconds(20));
  CHECK(rr.Errors(t0 + std::chrono::seconds(30)) ==
        std::vector<std::string>{"container runtime is down"});
  // Runtime and network both not ready (conditions missing count as not ready: "<nil>").
  cri::RuntimeStatus bad;
  bad.conditions = {{"RuntimeReady", false, "Starting", "restoring pods"}};
  rr.Observe(bad, t0 + std::chrono::seconds(40));
  auto errs = rr.Errors(t0 + std::chrono::seconds(40));
  REQUIRE(errs.size() == 3);
  CHECK(agent::AggregateErrors(errs) ==
        "[container runtime is down, container runtime not ready: RuntimeReady=false "
        "reason:Starting message:restoring pods, container runtime network not ready: <nil>]");
  CHECK(agent::AggregateErrors({"a"}) == "a");
  CHECK(agent::AggregateErrors({"a", "a"}) == "a");
  CHECK(agent::AggregateErrors({}) == "");
}

TEST_CASE("without machine info Ready is False for missing capacity") {
  NodeObservation o = SampleObservation("2026-11-24T07:58:29Z");
  o.machine.reset();
  json n = Parse(agent::BuildRegistrationNode(SampleConfig(), o, nullptr));
  json ready = FindCondition(n, "Ready");
  CHECK(ready["status"] == "False");
  CHECK(ready["message"] ==
        "missing node capacity for resources: cpu, memory, pods, ephemeral-storage");
  CHECK_FALSE(n["status"].contains("capacity"));
}

TEST_CASE("pressure conditions follow the readings") {
  std::string node = AsCubelet(kSample10Response);
  NodeObservation o = SampleObservation("2026-11-24T07:59:00Z");
  o.usage.memory_available_bytes = 50 * 1024 * 1024;  // < 100Mi
  o.usage.fs_available_bytes = 5LL << 30;             // < 10% of 60Gi
  o.usage.pids_used = 30000;                          // > 90% of 32768
  auto u = agent::UpdateNode(node, SampleConfig(), o);
  REQUIRE(u);
  CHECK(u->changed);
  json n = Parse(u->node);
  json mem = FindCondition(n, "MemoryPressure");
  CHECK(mem["status"] == "True");
  CHECK(mem["reason"] == "KubeletHasInsufficientMemory");
  CHECK(mem["message"] == "kubelet has insufficient memory available");
  CHECK(mem["lastTransitionTime"] == "2026-11-24T07:59:00Z");
  CHECK(FindCondition(n, "DiskPressure")["reason"] == "KubeletHasDiskPressure");
  CHECK(FindCondition(n, "PIDPressure")["message"] == "kubelet has insufficient PID available");
  CHECK(Reasons(u->events) == std::vector<std::string>{"NodeHasInsufficientMemory",
                                                       "NodeHasDiskPressure",
                                                       "NodeHasInsufficientPID"});
  // Unknown readings never signal pressure.
  NodeObservation unknown = SampleObservation("2026-11-24T07:59:00Z");
  unknown.usage = agent::ResourceUsage{};
  auto u2 = agent::UpdateNode(node, SampleConfig(), unknown);
  REQUIRE(u2);
  CHECK_FALSE(u2->changed);
}

TEST_CASE("a changed address list is sent whole with $patch replace") {
  std::string node = AsCubelet(kSample10Response);
  NodeStatusConfig c = SampleConfig();
  c.node_ips = {"10.250.9.3"};
  auto u = agent::UpdateNode(node, c, SampleObservation("2026-11-24T07:58:38Z"));
  REQUIRE(u);
  CHECK(u->changed);
  json p = Parse(u->patch);
  CHECK(p["status"]["addresses"].dump() ==
        R"([{"address":"10.250.9.3","type":"InternalIP"},)"
        R"({"address":"sample-node","type":"Hostname"},{"$patch":"replace"}])");
}

TEST_CASE("conditions and resources owned by others are kept") {
  json n = json::parse(AsCubelet(kSample10Response));
  n["status"]["conditions"].insert(
      n["status"]["conditions"].begin(),
      json::parse(R"({"type":"NetworkUnavailable","status":"False",)"
                  R"("lastHeartbeatTime":"2026-11-24T07:58:20Z",)"
                  R"("lastTransitionTime":"2026-11-24T07:58:20Z","reason":"RouteCreated",)"
                  R"("message":"routes created"})"));
  n["status"]["capacity"]["example.com/dongle"] = "4";
  n["status"]["volumesInUse"] = json::array({"kubernetes.io/csi/x"});
  auto u = agent::UpdateNode(n.dump(), SampleConfig(), SampleObservation("2026-11-24T07:58:38Z"));
  REQUIRE(u);
  json out = Parse(u->node);
  CHECK(out["status"]["conditions"].size() == 5);
  CHECK(FindCondition(out, "NetworkUnavailable")["lastHeartbeatTime"] == "2026-11-24T07:58:20Z");
  CHECK(out["status"]["capacity"]["example.com/dongle"] == "4");
  CHECK(out["status"]["allocatable"]["example.com/dongle"] == "4");
  CHECK(out["status"]["volumesInUse"].size() == 1);
  json p = Parse(u->patch);
  // The operator's resource appears in allocatable (new), nothing else beyond heartbeats.
  CHECK(p["status"]["allocatable"].dump() == R"({"example.com/dongle":"4"})");
  CHECK(p["status"]["$setElementOrder/conditions"][0]["type"] == "NetworkUnavailable");
  CHECK(p["status"]["conditions"].size() == 4);
}

TEST_CASE("a missing os/arch label is restored and counts as a change") {
  json n = json::parse(AsCubelet(kSample10Response));
  n["metadata"]["labels"].erase("kubernetes.io/os");
  auto u = agent::UpdateNode(n.dump(), SampleConfig(), SampleObservation("2026-11-24T07:58:38Z"));
  REQUIRE(u);
  CHECK(u->changed);
  CHECK(Parse(u->patch)["metadata"].dump() == R"({"labels":{"kubernetes.io/os":"linux"}})");
}

TEST_CASE("a new boot id is recorded as Rebooted") {
  NodeObservation o = SampleObservation("2026-11-24T07:58:38Z");
  o.machine->boot_id = "new-boot";
  auto u = agent::UpdateNode(AsCubelet(kSample10Response), SampleConfig(), o);
  REQUIRE(u);
  CHECK(u->changed);
  REQUIRE(u->events.size() == 1);
  CHECK(u->events[0].type == "Warning");
  CHECK(u->events[0].message == "Node sample-node has been rebooted, boot id: new-boot");
}

TEST_CASE("images: largest first, at most max_images, five names each") {
  std::vector<cri::Image> imgs;
  for (int i = 0; i < 4; ++i) {
    cri::Image img;
    img.size = 100 + i;
    img.repo_tags = {"t" + std::to_string(i)};
    if (i == 3) img.repo_tags = {"a", "b", "c", "d", "e", "f"};
    imgs.push_back(img);
  }
  imgs.push_back(cri::Image{});  // no names: not reported
  NodeStatusConfig c = SampleConfig();
  c.max_images = 2;
  NodeObservation o = SampleObservation("2026-11-24T07:58:29Z");
  o.images = imgs;
  json n = Parse(agent::BuildRegistrationNode(c, o, nullptr));
  CHECK(n["status"]["images"].dump() ==
        R"([{"names":["a","b","c","d","e"],"sizeBytes":103},{"names":["t2"],"sizeBytes":102}])");
  o.images = std::vector<cri::Image>{};
  CHECK_FALSE(Parse(agent::BuildRegistrationNode(c, o, nullptr))["status"].contains("images"));
}

TEST_CASE("409 reconcile touches only kubelet-owned labels and the annotation") {
  std::string initial = agent::BuildRegistrationNode(
      SampleConfig(), SampleObservation("2026-11-24T07:58:29Z"), nullptr);
  // Identical existing node: nothing to do.
  auto none = agent::ReconcileExistingNode(AsCubelet(kSample10Response), initial);
  REQUIRE(none);
  CHECK_FALSE(none->has_value());

  json existing = json::parse(AsCubelet(kSample10Response));
  existing["metadata"]["labels"]["kubernetes.io/hostname"] = "old-host";
  existing["metadata"]["labels"]["team"] = "blue";  // someone else's: kept
  existing["metadata"]["labels"].erase("beta.kubernetes.io/os");
  existing["metadata"].erase("annotations");
  auto patch = agent::ReconcileExistingNode(existing.dump(), initial);
  REQUIRE(patch);
  REQUIRE(patch->has_value());
  CHECK(
      **patch ==
      R"({"metadata":{"annotations":{"volumes.kubernetes.io/controller-managed-attach-detach":"true"},)"
      R"("labels":{"beta.kubernetes.io/os":"linux","kubernetes.io/hostname":"sample-node"}}})");
}

TEST_CASE("node patch: removed fields become null, merge-list deletes are explicit") {
  auto p = agent::CreateNodePatch(
      R"({"metadata":{"labels":{"a":"1","b":"2"}},"spec":{"x":1},"status":{"conditions":[)"
      R"({"type":"A","status":"True"},{"type":"B","status":"True"}]}})",
      R"({"metadata":{"labels":{"a":"1"}},"spec":{"x":2},"status":{"conditions":[)"
      R"({"type":"A","status":"True"}]}})");
  REQUIRE(p);
  CHECK(*p == R"({"metadata":{"labels":{"b":null}},"status":{"$setElementOrder/conditions":)"
              R"([{"type":"A"}],"conditions":[{"$patch":"delete","type":"B"}]}})");
  auto same = agent::CreateNodePatch(R"({"status":{"a":1}})", R"({"status":{"a":1}})");
  REQUIRE(same);
  CHECK(*same == "{}");
  CHECK_FALSE(agent::CreateNodePatch("not json", "{}"));
}

TEST_CASE("flag parsers") {
  auto r = agent::ParseResourceAmounts("cpu=250m, memory=512Mi,ephemeral-storage=2Gi,pid=1000");
  REQUIRE(r);
  CHECK(r->cpu_milli == 250);
  CHECK(r->memory_bytes == 512 * 1024 * 1024);
  CHECK(r->ephemeral_storage_bytes == int64_t{2} << 30);
  CHECK(r->pids == 1000);
  CHECK_FALSE(agent::ParseResourceAmounts("gpu=1"));
  CHECK_FALSE(agent::ParseResourceAmounts("cpu"));
  CHECK_FALSE(agent::ParseTaints("a=b:Sometimes"));
  CHECK_FALSE(agent::ParseTaints("nocolon"));
  auto t = agent::ParseTaints("k=v:NoExecute");
  REQUIRE(t);
  CHECK(t->at(0).key == "k");
  CHECK(t->at(0).value == "v");
  CHECK(t->at(0).effect == "NoExecute");
}

TEST_CASE("node meta: uid and pod CIDRs") {
  auto m = agent::ParseNodeMeta(
      R"({"metadata":{"name":"n","uid":"u1","resourceVersion":"7"},)"
      R"("spec":{"podCIDR":"10.244.3.0/24","podCIDRs":["10.244.3.0/24","fd00::/64"]}})");
  REQUIRE(m);
  CHECK(m->uid == "u1");
  CHECK(m->resource_version == "7");
  CHECK(m->pod_cidrs == "10.244.3.0/24,fd00::/64");
  auto m2 = agent::ParseNodeMeta(R"({"metadata":{"name":"n"},"spec":{"podCIDR":"10.1.0.0/24"}})");
  REQUIRE(m2);
  CHECK(m2->pod_cidrs == "10.1.0.0/24");
}
