// Node-pressure eviction logic (agent/eviction.h): thresholds as the kubelet parses them,
// which are met, the kubelet's ranking, its messages and admission under pressure.
#include "agent/eviction.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/pod_status.h"

using namespace agent;
using namespace agent::eviction;

namespace {

Candidate Pod_(std::string name, int32_t priority, int64_t usage, int64_t request) {
  Candidate c;
  c.uid = "uid-" + name;
  c.ns = "default";
  c.name = name;
  c.priority = priority;
  c.containers.push_back({"app", usage, request});
  return c;
}

std::vector<std::string> Names(const std::vector<const Candidate*>& v) {
  std::vector<std::string> out;
  for (const auto* c : v) out.push_back(c->name);
  return out;
}

constexpr int64_t Mi = 1024 * 1024;

}  // namespace

TEST_CASE("eviction thresholds parse as --eviction-hard and evictionHard") {
  auto t = ParseThresholds("memory.available<100Mi, nodefs.available<10%,pid.available<500");
  REQUIRE(t);
  REQUIRE(t->size() == 3);
  CHECK((*t)[0].signal == Signal::kMemoryAvailable);
  CHECK((*t)[0].quantity == 100 * Mi);
  CHECK((*t)[1].signal == Signal::kNodeFsAvailable);
  CHECK((*t)[1].percentage == Approx(0.10));
  CHECK(ThresholdValue((*t)[1], 1000) == 100);
  CHECK((*t)[2].quantity == 500);

  auto m = ParseThresholdMap({{"imagefs.available", "15%"}, {"memory.available", "1Gi"}});
  REQUIRE(m);
  CHECK(m->size() == 2);

  CHECK(DefaultThresholds().size() == 5);
  CHECK(!ParseThresholds("memory.free<1Gi"));
  CHECK(ParseThresholds("memory.free<1Gi").error().message.find("unsupported eviction signal memory.free") != std::string::npos);
  CHECK(!ParseThresholds("memory.available>1Gi"));
  CHECK(!ParseThresholds("nodefs.available<0%"));
  CHECK(!ParseThresholds("nodefs.available<101%"));
  CHECK(!ParseThresholds("memory.available<lots"));
  CHECK(!ParseThresholds("memory.available<1Gi,memory.available<2Gi"));
  CHECK(ParseThresholds("")->empty());
}

TEST_CASE("a threshold is met when the signal is below it") {
  auto t = *ParseThresholds("memory.available<100Mi,nodefs.available<10%");
  Observations obs;
  obs[Signal::kMemoryAvailable] = {200 * Mi, 1024 * Mi};
  obs[Signal::kNodeFsAvailable] = {50, 1000};
  auto met = ThresholdsMet(t, obs);
  REQUIRE(met.size() == 1);
  CHECK(met[0].signal == Signal::kNodeFsAvailable);
  obs[Signal::kMemoryAvailable].available = 100 * Mi;  // not below: not met
  CHECK(ThresholdsMet(t, obs).size() == 1);
  obs[Signal::kMemoryAvailable].available = 100 * Mi - 1;
  CHECK(ThresholdsMet(t, obs).size() == 2);
  CHECK(ThresholdsMet(t, {}).empty());  // nothing observed, nothing met
}

TEST_CASE("pods are ranked for memory as the kubelet does") {
  std::vector<Candidate> pods = {
      Pod_("guaranteed-big", 0, 500 * Mi, 600 * Mi),  // within its request
      Pod_("burstable-over", 0, 300 * Mi, 100 * Mi),  // 200Mi above
      Pod_("besteffort", 0, 50 * Mi, 0),              // 50Mi above
      Pod_("high-priority-over", 1000, 900 * Mi, 0),  // above, but more important
  };
  Candidate critical = Pod_("critical", 2000001000, 2000 * Mi, 0);
  critical.critical = true;
  pods.push_back(critical);
  CHECK(Names(Rank(Signal::kMemoryAvailable, pods)) ==
        std::vector<std::string>{"burstable-over", "besteffort", "high-priority-over",
                                 "guaranteed-big"});
  pods[0].containers[0].memory_bytes = 10;
  pods[1].pids = 3;
  pods[2].pids = 30;
  CHECK(Names(Rank(Signal::kPidAvailable, pods)) ==
        std::vector<std::string>{"besteffort", "burstable-over", "guaranteed-big",
                                 "high-priority-over"});
}

TEST_CASE("eviction messages and quantities as the kubelet writes them") {
  CHECK(FormatBinaryQuantity(100 * Mi) == "100Mi");
  CHECK(FormatBinaryQuantity(51200 * 1024) == "50Mi");
  CHECK(FormatBinaryQuantity(1536 * 1024) == "1536Ki");
  CHECK(FormatBinaryQuantity(1000) == "1000");
  CHECK(FormatBinaryQuantity(0) == "0");
  auto t = (*ParseThresholds("memory.available<100Mi"))[0];
  Candidate c = Pod_("web", 0, 12 * Mi, 0);
  c.containers.push_back({"sidecar", 1 * Mi, 2 * Mi});  // within its request: not named
  CHECK(EvictionMessage(t, {51200 * 1024, 8000 * Mi}, c) ==
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
        "Container app was using 12Mi, request is 0, has larger consumption of memory. ");
  auto p = (*ParseThresholds("pid.available<10%"))[0];
  CHECK(EvictionMessage(p, {900, 10000}, c) ==
        "The node was low on resource: pids. Threshold quantity: 1000, available: 900. ");
}

TEST_CASE("admission under pressure") {
  Pod be;
  be.name = "be";
  be.containers.push_back(Container{});
  Pod burstable = be;
  burstable.containers[0].resources.requests.memory_bytes = 10 * Mi;
  CHECK(!AdmissionRejection(be, false, {}));
  CHECK(AdmissionRejection(be, false, {"MemoryPressure"}) ==
        std::string("The node had condition: [MemoryPressure]. "));
  CHECK(!AdmissionRejection(be, true, {"MemoryPressure"}));  // tolerates the taint
  CHECK(!AdmissionRejection(burstable, false, {"MemoryPressure"}));
  CHECK(AdmissionRejection(burstable, false, {"MemoryPressure", "DiskPressure"}) ==
        std::string("The node had condition: [MemoryPressure DiskPressure]. "));
  Pod critical = be;
  critical.priority = 2000001000;
  CHECK(!AdmissionRejection(critical, false, {"DiskPressure"}));
}

TEST_CASE("the manager evicts one pod per cycle and keeps the condition for the transition period") {
  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  int64_t available = 50 * Mi;
  std::vector<Candidate> pods = {Pod_("a", 0, 10 * Mi, 0), Pod_("b", 0, 40 * Mi, 0)};
  std::vector<std::pair<std::string, std::string>> evicted;
  Manager::Deps d;
  d.observe = [&] {
    Observations o;
    o[Signal::kMemoryAvailable] = {available, 1024 * Mi};
    return o;
  };
  d.candidates = [&] { return pods; };
  d.evict = [&](const Candidate& c, const std::string& msg, int64_t grace) {
    CHECK(grace == 0);  // hard threshold: at once
    evicted.emplace_back(c.name, msg);
    pods.erase(std::remove_if(pods.begin(), pods.end(),
                              [&](const Candidate& p) { return p.uid == c.uid; }),
               pods.end());
  };
  d.now = [&] { return now; };
  Manager m(*ParseThresholds("memory.available<100Mi"), std::chrono::seconds(300), d);
  CHECK(m.Conditions().empty());
  CHECK(m.Synchronize() == std::string("uid-b"));
  CHECK(m.Conditions() == std::vector<std::string>{"MemoryPressure"});
  REQUIRE(evicted.size() == 1);
  CHECK(evicted[0].second.find("Container app was using 40Mi") != std::string::npos);
  CHECK(m.Synchronize() == std::string("uid-a"));
  CHECK(!m.Synchronize());  // nothing left to evict
  available = 500 * Mi;
  now += std::chrono::seconds(10);
  CHECK(!m.Synchronize());
  CHECK(m.Conditions() == std::vector<std::string>{"MemoryPressure"});  // within 5 min
  now += std::chrono::seconds(300);
  CHECK(m.Conditions().empty());
}

TEST_CASE("soft thresholds: parsed with their grace periods; evict only after it, gently") {
  auto t = ParseSoftThresholds("memory.available<1Gi,pid.available<100",
                               "memory.available=1m30s, pid.available=10s");
  REQUIRE(t);
  REQUIRE(t->size() == 2);
  CHECK((*t)[0].soft);
  CHECK((*t)[0].grace_period == std::chrono::seconds(90));
  CHECK((*t)[1].grace_period == std::chrono::seconds(10));
  auto missing = ParseSoftThresholds("memory.available<1Gi", "pid.available=10s");
  REQUIRE(!missing);
  CHECK(missing.error().message ==
        "grace period must be specified for the soft eviction threshold memory.available");
  CHECK(!ParseSoftThresholds("memory.available<1Gi", "memory.available=soon"));

  auto now = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  int64_t available = 500 * Mi;
  std::vector<Candidate> pods = {Pod_("a", 0, 10 * Mi, 0)};
  pods[0].termination_grace_seconds = 45;
  std::vector<int64_t> graces;
  Manager::Deps d;
  d.observe = [&] {
    Observations o;
    o[Signal::kMemoryAvailable] = {available, 4096 * Mi};
    return o;
  };
  d.candidates = [&] { return pods; };
  d.evict = [&](const Candidate&, const std::string&, int64_t grace) { graces.push_back(grace); };
  d.now = [&] { return now; };
  Manager m(*t, std::chrono::seconds(300), d, 30);
  CHECK(!m.Synchronize());  // 500Mi < 1Gi: met, but not yet for 90 s
  CHECK(m.Conditions() == std::vector<std::string>{"MemoryPressure"});  // reported at once
  now += std::chrono::seconds(60);
  CHECK(!m.Synchronize());
  available = 2048 * Mi;  // recovers: the clock starts again
  now += std::chrono::seconds(10);
  CHECK(!m.Synchronize());
  available = 500 * Mi;
  now += std::chrono::seconds(10);
  CHECK(!m.Synchronize());
  now += std::chrono::seconds(89);
  CHECK(!m.Synchronize());
  now += std::chrono::seconds(1);
  CHECK(m.Synchronize() == std::string("uid-a"));
  CHECK(graces == std::vector<int64_t>{30});  // min(max pod grace 30, the pod's 45)
}

TEST_CASE("an evicted pod's status: Failed, Evicted, DisruptionTarget, kept on later syncs") {
  Pod pod;
  pod.ns = "default";
  pod.name = "web";
  pod.uid = "u1";
  Container c;
  c.name = "app";
  pod.containers.push_back(c);
  PodRuntimeState state;
  StatusInputs in;
  in.pod = &pod;
  nlohmann::json old = nlohmann::json::object();
  in.old_status = &old;
  in.runtime = &state;
  in.pod_failed = true;
  in.pod_reason = "Evicted";
  in.pod_message = "The node was low on resource: memory. ";
  in.disruption_message = in.pod_message;
  in.now = base::FromUnixNanos(1700000000LL * 1000000000LL);
  auto st = GeneratePodStatus(in);
  CHECK(st["phase"] == "Failed");
  CHECK(st["reason"] == "Evicted");
  CHECK(st["message"] == "The node was low on resource: memory. ");
  bool found = false;
  for (const auto& cond : st["conditions"]) {
    if (cond["type"] == "DisruptionTarget") {
      found = true;
      CHECK(cond["status"] == "True");
      CHECK(cond["reason"] == "TerminationByKubelet");
      CHECK(cond["message"] == "The node was low on resource: memory. ");
    }
  }
  CHECK(found);
  // A later sync of the terminal pod (no reason given) keeps them.
  StatusInputs again;
  again.pod = &pod;
  again.old_status = &st;
  again.runtime = &state;
  again.now = in.now;
  auto st2 = GeneratePodStatus(again);
  CHECK(st2["phase"] == "Failed");
  CHECK(st2["reason"] == "Evicted");
  int disruption = 0;
  for (const auto& cond : st2["conditions"]) disruption += cond["type"] == "DisruptionTarget";
  CHECK(disruption == 1);
}
