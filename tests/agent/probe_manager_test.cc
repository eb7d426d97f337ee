// Probe workers over time: the worker state machine with a fake clock, the manager driven by
// RunDue() with a scripted prober, and the threaded manager (results flow, clean removal, no
// thread left behind).
#include <catch2/catch.hpp>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "agent/probe_manager.h"

using namespace agent;
using namespace std::chrono_literals;

namespace {

base::WallTime T0() { return base::FromUnixNanos(1700000000LL * 1000000000LL); }

Probe MakeProbe(int period = 10, int failure = 3, int success = 1, int delay = 0) {
  Probe p;
  p.exec = ExecAction{{"check"}};
  p.period_seconds = period;
  p.failure_threshold = failure;
  p.success_threshold = success;
  p.initial_delay_seconds = delay;
  return p;
}

ProbedContainer Running(const std::string& id, base::WallTime started) {
  ProbedContainer c;
  c.id = id;
  c.running = true;
  c.started_at = started;
  return c;
}

Pod MakePod(const std::string& uid = "u1") {
  Pod p;
  p.ns = "default";
  p.name = "pod-" + uid;
  p.uid = uid;
  Container c;
  c.name = "main";
  p.containers.push_back(c);
  return p;
}

PodRuntimeState State(const std::string& id, base::WallTime started, bool running = true,
                      const std::string& name = "main") {
  PodRuntimeState s;
  ObservedSandbox sb;
  sb.id = "sb";
  sb.ready = true;
  sb.ip = "10.244.0.9";
  s.sandboxes.push_back(sb);
  ObservedContainer c;
  c.id = id;
  c.name = name;
  c.state = running ? cri::ContainerState::kRunning : cri::ContainerState::kExited;
  c.started_at = base::ToUnixNanos(started);
  s.containers.push_back(c);
  return s;
}

// A scripted prober: results by probe kind (the exec command names it), calls counted.
struct Script {
  std::mutex mu;
  std::map<std::string, ProbeOutcome> next;  // by command[0]
  std::map<std::string, int> calls;
  std::vector<std::string> container_ids;

  ProbeManager::ProbeFn Fn() {
    return [this](const Probe& p, const ProbeTarget& t) {
      std::lock_guard lk(mu);
      std::string kind = p.exec->command.at(0);
      ++calls[kind];
      container_ids.push_back(t.container_id);
      auto it = next.find(kind);
      return it == next.end() ? ProbeOutcome{ProbeResult::kSuccess, "", ""} : it->second;
    };
  }
  void Set(const std::string& kind, ProbeResult r, const std::string& output = "") {
    std::lock_guard lk(mu);
    next[kind] = ProbeOutcome{r, output, ""};
  }
  void SetError(const std::string& kind, const std::string& error) {
    std::lock_guard lk(mu);
    next[kind] = ProbeOutcome{ProbeResult::kUnknown, "", error};
  }
  int Calls(const std::string& kind) {
    std::lock_guard lk(mu);
    return calls[kind];
  }
};

Probe Kind(const std::string& kind, Probe p) {
  p.exec = ExecAction{{kind}};
  return p;
}

struct Recorded {
  std::string type, reason, message, field;
};

struct Harness {
  base::FakeClock clock{T0()};
  Script script;
  ProbeManager mgr{script.Fn(), &clock, ProbeManager::Options{false, 4, 30000ms}};
  std::vector<std::string> changes;
  std::vector<Recorded> events;

  Harness() {
    mgr.SetOnChange([this](const std::string& uid) { changes.push_back(uid); });
    mgr.SetEventFn([this](const Pod&, const std::string& type, const std::string& reason, const std::string& msg,
                          const std::string& field) { events.push_back({type, reason, msg, field}); });
  }
  void Advance(std::chrono::seconds s) { clock.Advance(s); }
};

}  // namespace

TEST_CASE("ProbeWorkerState: readiness starts failed and follows the thresholds") {
  ProbeWorkerState w(ProbeType::kReadiness, MakeProbe(10, 3, 2));
  CHECK(w.result() == ProbeState::kFailure);
  auto c = Running("c1", T0());
  CHECK(w.Observe(c));  // bound to c1
  CHECK(w.container_id() == "c1");
  CHECK(w.Prepare(c, true, false, false, T0()).step == ProbeWorkerState::Step::kProbe);
  CHECK_FALSE(w.Record(ProbeState::kSuccess));  // 1 of successThreshold 2
  CHECK(w.result() == ProbeState::kFailure);
  CHECK(w.Record(ProbeState::kSuccess));
  CHECK(w.result() == ProbeState::kSuccess);
  CHECK_FALSE(w.Record(ProbeState::kFailure));
  CHECK_FALSE(w.Record(ProbeState::kFailure));
  CHECK(w.result() == ProbeState::kSuccess);
  CHECK(w.Record(ProbeState::kFailure));  // 3 of failureThreshold 3
  CHECK(w.result() == ProbeState::kFailure);
  CHECK_FALSE(w.on_hold());  // readiness never holds
  CHECK(w.Prepare(c, true, false, false, T0()).step == ProbeWorkerState::Step::kProbe);
  CHECK_FALSE(w.Record(ProbeState::kSuccess));
  CHECK(w.Record(ProbeState::kSuccess));
}

TEST_CASE("ProbeWorkerState: a success run is broken by a failure") {
  ProbeWorkerState w(ProbeType::kReadiness, MakeProbe(10, 3, 2));
  w.Observe(Running("c1", T0()));
  CHECK_FALSE(w.Record(ProbeState::kSuccess));
  CHECK_FALSE(w.Record(ProbeState::kFailure));
  CHECK_FALSE(w.Record(ProbeState::kSuccess));
  CHECK(w.result() == ProbeState::kFailure);
  CHECK(w.Record(ProbeState::kSuccess));
}

TEST_CASE("ProbeWorkerState: liveness failure holds until a new container") {
  ProbeWorkerState w(ProbeType::kLiveness, MakeProbe(10, 2));
  auto c1 = Running("c1", T0());
  w.Observe(c1);
  CHECK(w.result() == ProbeState::kSuccess);
  CHECK_FALSE(w.Record(ProbeState::kFailure));
  CHECK(w.Record(ProbeState::kFailure));
  CHECK(w.result() == ProbeState::kFailure);
  CHECK(w.on_hold());
  CHECK(w.result_run() == 0);
  CHECK(w.Prepare(c1, true, false, false, T0()).step == ProbeWorkerState::Step::kWait);
  // The restarted container gets a fresh result and is probed again.
  auto c2 = Running("c2", T0() + 20s);
  CHECK(w.Observe(c2));
  CHECK(w.result() == ProbeState::kSuccess);
  CHECK_FALSE(w.on_hold());
  CHECK(w.Prepare(c2, true, false, false, T0() + 20s).step == ProbeWorkerState::Step::kProbe);
}

TEST_CASE("ProbeWorkerState: initial delay, startup gating, non-running, deletion") {
  SECTION("initialDelaySeconds from the container's start") {
    ProbeWorkerState w(ProbeType::kReadiness, MakeProbe(10, 3, 1, 5));
    auto c = Running("c1", T0());
    auto d = w.Prepare(c, true, false, false, T0() + 4s);
    CHECK(d.step == ProbeWorkerState::Step::kWait);
    REQUIRE(d.not_before);
    CHECK(*d.not_before == T0() + 5s);
    CHECK(w.Prepare(c, true, false, false, T0() + 5s).step == ProbeWorkerState::Step::kProbe);
  }
  SECTION("startup gates the others; startup stops probing once started") {
    ProbeWorkerState ready(ProbeType::kReadiness, MakeProbe());
    ProbeWorkerState live(ProbeType::kLiveness, MakeProbe());
    ProbeWorkerState startup(ProbeType::kStartup, MakeProbe());
    auto c = Running("c1", T0());
    CHECK(ready.Prepare(c, false, false, false, T0()).step == ProbeWorkerState::Step::kWait);
    CHECK(live.Prepare(c, false, false, false, T0()).step == ProbeWorkerState::Step::kWait);
    CHECK(startup.Prepare(c, false, false, false, T0()).step == ProbeWorkerState::Step::kProbe);
    CHECK(startup.result() == ProbeState::kUnknown);
    CHECK(startup.Prepare(c, true, false, false, T0()).step == ProbeWorkerState::Step::kWait);
    CHECK(ready.Prepare(c, true, false, false, T0()).step == ProbeWorkerState::Step::kProbe);
  }
  SECTION("startup failure holds like liveness") {
    ProbeWorkerState startup(ProbeType::kStartup, MakeProbe(10, 1));
    startup.Observe(Running("c1", T0()));
    CHECK(startup.Record(ProbeState::kFailure));
    CHECK(startup.on_hold());
  }
  SECTION("a container that is not running reads as failed; Never + exited stops") {
    ProbeWorkerState w(ProbeType::kLiveness, MakeProbe());
    auto c = Running("c1", T0());
    w.Observe(c);
    c.running = false;
    c.exited = true;
    CHECK(w.Prepare(c, true, false, false, T0()).step == ProbeWorkerState::Step::kWait);
    CHECK(w.result() == ProbeState::kFailure);
    CHECK(w.Prepare(c, true, false, true, T0()).step == ProbeWorkerState::Step::kStop);
  }
  SECTION("deletion: liveness and startup report success and stop; readiness goes on") {
    auto c = Running("c1", T0());
    ProbeWorkerState live(ProbeType::kLiveness, MakeProbe(10, 1));
    live.Observe(c);
    live.Record(ProbeState::kFailure);
    ProbeWorkerState live2(ProbeType::kLiveness, MakeProbe(10, 1));
    CHECK(live2.Prepare(c, true, true, false, T0()).step == ProbeWorkerState::Step::kStop);
    CHECK(live2.result() == ProbeState::kSuccess);
    ProbeWorkerState ready(ProbeType::kReadiness, MakeProbe());
    CHECK(ready.Prepare(c, true, true, false, T0()).step == ProbeWorkerState::Step::kProbe);
  }
  SECTION("no container yet: wait") {
    ProbeWorkerState w(ProbeType::kReadiness, MakeProbe());
    CHECK(w.Prepare(ProbedContainer{}, true, false, false, T0()).step == ProbeWorkerState::Step::kWait);
    CHECK(w.container_id().empty());
  }
}

TEST_CASE("ProbeManager: pods without probes hold nothing") {
  Harness h;
  Pod pod = MakePod();
  h.mgr.UpdatePod(pod, "10.244.0.9", State("c1", T0()));
  CHECK(h.mgr.WorkerCount() == 0);
  CHECK(h.mgr.Readiness("u1").empty());
  CHECK(h.mgr.Started("u1").empty());
}

TEST_CASE("ProbeManager: readiness becomes true after the probe passes, then follows it") {
  Harness h;
  Pod pod = MakePod();
  pod.containers[0].readiness_probe = Kind("ready", MakeProbe(10, 2));
  pod.containers[0].ports.push_back(ContainerPort{"http", 8080, 0, "", "TCP"});
  auto st = State("c1", T0());
  h.mgr.UpdatePod(pod, "10.244.0.9", st);
  CHECK(h.mgr.WorkerCount() == 1);
  CHECK(h.mgr.Readiness("u1") == std::map<std::string, bool>{{"main", false}});
  h.mgr.RunDue();
  CHECK(h.script.Calls("ready") == 1);
  CHECK(h.script.container_ids.back() == "c1");
  CHECK(h.mgr.Readiness("u1") == std::map<std::string, bool>{{"main", true}});
  CHECK(h.changes == std::vector<std::string>{"u1"});

  // Not again before periodSeconds.
  h.Advance(9s);
  h.mgr.RunDue();
  CHECK(h.script.Calls("ready") == 1);
  h.Advance(1s);
  h.script.Set("ready", ProbeResult::kFailure, "HTTP probe failed with statuscode: 500");
  h.mgr.RunDue();
  CHECK(h.script.Calls("ready") == 2);
  CHECK(h.mgr.Readiness("u1").at("main"));  // 1 of failureThreshold 2
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].type == "Warning");
  CHECK(h.events[0].reason == "Unhealthy");
  CHECK(h.events[0].message == "Readiness probe failed: HTTP probe failed with statuscode: 500");
  CHECK(h.events[0].field == "spec.containers{main}");
  h.Advance(10s);
  h.mgr.RunDue();
  CHECK_FALSE(h.mgr.Readiness("u1").at("main"));
  CHECK(h.changes.size() == 2);
  CHECK(h.events.size() == 2);
  // Readiness never asks for a kill.
  CHECK(h.mgr.ContainersToKill("u1", st).empty());
}

TEST_CASE("ProbeManager: liveness failures ask for a kill; the new container starts afresh") {
  Harness h;
  Pod pod = MakePod();
  pod.containers[0].liveness_probe = Kind("live", MakeProbe(5, 3));
  auto st1 = State("c1", T0());
  h.mgr.UpdatePod(pod, "10.244.0.9", st1);
  h.script.Set("live", ProbeResult::kFailure, "cat: can't open '/tmp/healthy': No such file or directory");
  for (int i = 0; i < 3; ++i) {
    CHECK(h.mgr.ContainersToKill("u1", st1).empty());
    h.mgr.RunDue();
    h.Advance(5s);
  }
  CHECK(h.script.Calls("live") == 3);
  CHECK(h.events.size() == 3);
  CHECK(h.events[0].message == "Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory");
  CHECK(h.changes == std::vector<std::string>{"u1"});
  auto kill = h.mgr.ContainersToKill("u1", st1);
  REQUIRE(kill.size() == 1);
  CHECK(kill[0].first == "c1");
  CHECK(kill[0].second == "Container main failed liveness probe, will be restarted");
  // On hold: no more probes of c1.
  h.Advance(30s);
  h.mgr.RunDue();
  CHECK(h.script.Calls("live") == 3);
  // Killed: no longer running, nothing to kill.
  auto exited = State("c1", T0(), false);
  h.mgr.UpdatePod(pod, "10.244.0.9", exited);
  CHECK(h.mgr.ContainersToKill("u1", exited).empty());
  // Restarted: c2 is probed, c1's failure is forgotten.
  h.script.Set("live", ProbeResult::kSuccess);
  auto st2 = State("c2", T0() + 40s);
  h.mgr.UpdatePod(pod, "10.244.0.9", st2);
  CHECK(h.mgr.ContainersToKill("u1", st2).empty());
  h.mgr.RunDue();
  CHECK(h.script.Calls("live") == 4);
  CHECK(h.script.container_ids.back() == "c2");
  CHECK(h.mgr.ContainersToKill("u1", st2).empty());

  SECTION("restartPolicy Never: killed without restart") {
    pod.restart_policy = "Never";
    h.script.Set("live", ProbeResult::kFailure, "x");
    for (int i = 0; i < 3; ++i) {
      h.Advance(5s);
      h.mgr.UpdatePod(pod, "10.244.0.9", st2);
      h.mgr.RunDue();
    }
    auto k = h.mgr.ContainersToKill("u1", st2);
    REQUIRE(k.size() == 1);
    CHECK(k[0].second == "Container main failed liveness probe");
  }
}

TEST_CASE("ProbeManager: the startup probe gates readiness and liveness") {
  Harness h;
  Pod pod = MakePod();
  pod.containers[0].startup_probe = Kind("startup", MakeProbe(2, 30));
  pod.containers[0].readiness_probe = Kind("ready", MakeProbe(10));
  pod.containers[0].liveness_probe = Kind("live", MakeProbe(10));
  auto st = State("c1", T0());
  h.mgr.UpdatePod(pod, "10.244.0.9", st);
  CHECK(h.mgr.WorkerCount() == 3);
  h.script.Set("startup", ProbeResult::kFailure, "not yet");
  h.mgr.RunDue();
  CHECK(h.script.Calls("startup") == 1);
  CHECK(h.script.Calls("ready") == 0);
  CHECK(h.script.Calls("live") == 0);
  CHECK(h.mgr.Started("u1") == std::map<std::string, bool>{{"main", false}});
  CHECK_FALSE(h.mgr.Readiness("u1").at("main"));
  h.Advance(2s);
  h.script.Set("startup", ProbeResult::kSuccess);
  h.mgr.RunDue();
  // Started: readiness and liveness run at once, in the same round.
  CHECK(h.mgr.Started("u1").at("main"));
  CHECK(h.script.Calls("ready") == 1);
  CHECK(h.script.Calls("live") == 1);
  CHECK(h.mgr.Readiness("u1").at("main"));
  // The startup probe does not run again for this container.
  h.Advance(20s);
  h.mgr.RunDue();
  CHECK(h.script.Calls("startup") == 2);
  CHECK(h.script.Calls("ready") == 2);

  SECTION("a restarted container must start again") {
    auto st2 = State("c2", T0() + 30s);
    h.mgr.UpdatePod(pod, "10.244.0.9", st2);
    CHECK_FALSE(h.mgr.Started("u1").at("main"));
    CHECK_FALSE(h.mgr.Readiness("u1").at("main"));
  }
  SECTION("startup failing failureThreshold times asks for a kill") {
    Harness h2;
    Pod p2 = MakePod("u2");
    p2.containers[0].startup_probe = Kind("startup", MakeProbe(1, 2));
    auto s2 = State("x1", T0());
    h2.mgr.UpdatePod(p2, "10.244.0.8", s2);
    h2.script.Set("startup", ProbeResult::kFailure, "no");
    h2.mgr.RunDue();
    h2.Advance(1s);
    h2.mgr.RunDue();
    auto k = h2.mgr.ContainersToKill("u2", s2);
    REQUIRE(k.size() == 1);
    CHECK(k[0].second == "Container main failed startup probe, will be restarted");
  }
}

TEST_CASE("ProbeManager: initialDelaySeconds, errors, deletion, terminal pods, removal") {
  Harness h;
  Pod pod = MakePod();
  pod.containers[0].readiness_probe = Kind("ready", MakeProbe(10, 3, 1, 15));
  pod.containers[0].liveness_probe = Kind("live", MakeProbe(10, 1));
  auto st = State("c1", T0());
  h.mgr.UpdatePod(pod, "10.244.0.9", st);
  h.mgr.RunDue();
  CHECK(h.script.Calls("ready") == 0);
  CHECK(h.script.Calls("live") == 1);
  h.Advance(14s);
  h.mgr.RunDue();
  CHECK(h.script.Calls("ready") == 0);
  h.Advance(1s);
  h.mgr.RunDue();
  CHECK(h.script.Calls("ready") == 1);
  CHECK(h.mgr.Readiness("u1").at("main"));

  SECTION("a prober error is reported and changes nothing") {
    h.script.SetError("live", "strconv.Atoi: parsing \"web\": invalid syntax");
    h.Advance(10s);
    h.mgr.RunDue();
    CHECK(h.mgr.ContainersToKill("u1", st).empty());
    bool found = false;
    for (const auto& e : h.events) found |= e.message == "Liveness probe errored: strconv.Atoi: parsing \"web\": invalid syntax";
    CHECK(found);
  }
  SECTION("deletion: liveness stops quietly, readiness keeps probing") {
    int live_before = h.script.Calls("live");
    pod.deletion_timestamp = "2024-01-01T00:00:00Z";
    h.mgr.UpdatePod(pod, "10.244.0.9", st);
    h.script.Set("live", ProbeResult::kFailure, "dead");
    h.Advance(10s);
    h.mgr.RunDue();
    CHECK(h.script.Calls("live") == live_before);
    CHECK(h.script.Calls("ready") == 2);
    CHECK(h.mgr.ContainersToKill("u1", st).empty());
    CHECK(h.mgr.WorkerCount() == 1);
  }
  SECTION("a terminal pod stops its workers") {
    pod.phase = "Succeeded";
    h.mgr.UpdatePod(pod, "10.244.0.9", st);
    CHECK(h.mgr.WorkerCount() == 0);
    h.Advance(10s);
    h.mgr.RunDue();
    CHECK(h.script.Calls("ready") == 1);
  }
  SECTION("RemovePod drops everything") {
    h.mgr.RemovePod("u1");
    CHECK(h.mgr.WorkerCount() == 0);
    CHECK(h.mgr.Readiness("u1").empty());
    h.Advance(60s);
    h.mgr.RunDue();
    CHECK(h.script.Calls("ready") == 1);
  }
}

TEST_CASE("ProbeManager: sidecar init containers are probed, plain init containers are not") {
  Harness h;
  Pod pod = MakePod();
  Container sidecar;
  sidecar.name = "proxy";
  sidecar.restart_policy = "Always";
  sidecar.readiness_probe = Kind("ready", MakeProbe());
  Container init;
  init.name = "setup";
  init.readiness_probe = Kind("ready", MakeProbe());
  pod.init_containers = {init, sidecar};
  h.mgr.UpdatePod(pod, "10.244.0.9", State("s1", T0(), true, "proxy"));
  CHECK(h.mgr.WorkerCount() == 1);
  h.script.Set("ready", ProbeResult::kFailure, "no");
  h.mgr.RunDue();
  REQUIRE(h.events.size() == 1);
  CHECK(h.events[0].field == "spec.initContainers{proxy}");
}

// ---- with threads ---------------------------------------------------------------------------

namespace {

// Waits up to `limit` for `pred`.
template <class F>
bool Eventually(F pred, std::chrono::milliseconds limit = 5000ms) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("ProbeManager threads: results flow, removal stops probing, idle threads exit") {
  base::RealClock clock;
  std::atomic<int> calls{0}, running{0}, max_running{0};
  std::atomic<bool> pass{true};
  ProbeManager mgr(
      [&](const Probe&, const ProbeTarget&) {
        int now = ++running;
        int seen = max_running.load();
        while (now > seen && !max_running.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(50ms);
        --running;
        ++calls;
        return ProbeOutcome{pass ? ProbeResult::kSuccess : ProbeResult::kFailure, "x", ""};
      },
      &clock, ProbeManager::Options{true, 4, 200ms});
  std::mutex mu;
  std::set<std::string> changed;
  mgr.SetOnChange([&](const std::string& uid) {
    std::lock_guard lk(mu);
    changed.insert(uid);
  });
  auto changed_has = [&](const std::string& uid) {
    std::lock_guard lk(mu);
    return changed.count(uid) > 0;
  };

  // 20 pods with a readiness probe each: all become ready, at most 4 probes at a time.
  std::vector<std::string> uids;
  for (int i = 0; i < 20; ++i) {
    Pod pod = MakePod("p" + std::to_string(i));
    pod.containers[0].readiness_probe = MakeProbe(1, 1);
    mgr.UpdatePod(pod, "10.244.0.9", State("c" + std::to_string(i), clock.Now()));
    uids.push_back(pod.uid);
  }
  CHECK(mgr.WorkerCount() == 20);
  for (const auto& uid : uids) {
    CHECK(Eventually([&] { return changed_has(uid); }));
    CHECK(mgr.Readiness(uid).at("main"));
  }
  CHECK(max_running.load() <= 4);
  CHECK(max_running.load() >= 2);
  CHECK(mgr.ProbeThreads() <= 4);

  // Periodic: failing probes turn readiness off within a period or two.
  pass = false;
  CHECK(Eventually([&] { return !mgr.Readiness(uids[0]).at("main"); }, 3000ms));

  // Pods go away: probing stops and the pool drains to no thread.
  for (const auto& uid : uids) mgr.RemovePod(uid);
  CHECK(mgr.WorkerCount() == 0);
  std::this_thread::sleep_for(200ms);  // a probe in flight finishes
  int after = calls.load();
  std::this_thread::sleep_for(1500ms);
  CHECK(calls.load() == after);
  CHECK(Eventually([&] { return mgr.ProbeThreads() == 0; }, 3000ms));
  mgr.Stop();
  CHECK(mgr.ProbeThreads() == 0);
}

TEST_CASE("ProbeManager threads: a result for a replaced container is dropped") {
  base::RealClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> started{0};
  ProbeManager mgr(
      [&](const Probe&, const ProbeTarget&) {
        ++started;
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return release; });
        return ProbeOutcome{ProbeResult::kSuccess, "", ""};
      },
      &clock, ProbeManager::Options{true, 2, 1000ms});
  Pod pod = MakePod();
  pod.containers[0].readiness_probe = MakeProbe(60, 1);
  mgr.UpdatePod(pod, "10.244.0.9", State("old", clock.Now()));
  REQUIRE(Eventually([&] { return started.load() == 1; }));
  // The container is replaced while its probe runs.
  mgr.UpdatePod(pod, "10.244.0.9", State("new", clock.Now()));
  {
    std::lock_guard lk(mu);
    release = true;
  }
  cv.notify_all();
  // The in-flight success for "old" does not make "new" ready; "new" gets its own probe.
  REQUIRE(Eventually([&] { return started.load() == 2; }));
  CHECK(Eventually([&] { return mgr.Readiness("u1").at("main"); }));
  mgr.Stop();
}

TEST_CASE("ProbeManager threads: Stop joins everything while probes are pending") {
  base::RealClock clock;
  ProbeManager mgr(
      [&](const Probe&, const ProbeTarget&) {
        std::this_thread::sleep_for(100ms);
        return ProbeOutcome{ProbeResult::kSuccess, "", ""};
      },
      &clock, ProbeManager::Options{true, 2, 1000ms});
  for (int i = 0; i < 10; ++i) {
    Pod pod = MakePod("s" + std::to_string(i));
    pod.containers[0].liveness_probe = MakeProbe(1, 1);
    mgr.UpdatePod(pod, "10.244.0.9", State("c", clock.Now()));
  }
  std::this_thread::sleep_for(50ms);
  auto start = std::chrono::steady_clock::now();
  mgr.Stop();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(mgr.ProbeThreads() == 0);
}
