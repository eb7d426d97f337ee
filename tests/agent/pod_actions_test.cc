#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/pod_actions.h"

using namespace agent;

namespace {

Pod MakePod(std::string policy = "Always") {
  Pod p;
  p.ns = "default";
  p.name = "web";
  p.uid = "u1";
  p.restart_policy = policy;
  Container c;
  c.name = "main";
  c.image = "busybox";
  c.hash = "h1";
  p.containers.push_back(c);
  return p;
}

ObservedContainer Ctr(std::string name, uint32_t attempt, cri::ContainerState st, int exit = 0) {
  ObservedContainer c;
  c.id = name + "-" + std::to_string(attempt);
  c.name = name;
  c.attempt = attempt;
  c.state = st;
  c.exit_code = exit;
  c.hash = "h1";
  c.created_at = attempt + 1;
  return c;
}

PodRuntimeState WithSandbox(bool ready = true) {
  PodRuntimeState s;
  ObservedSandbox sb;
  sb.id = "sb1";
  sb.ready = ready;
  s.sandboxes.push_back(sb);
  return s;
}

BackoffCheck NoBackoff() {
  return [](const ObservedContainer&) { return std::optional<std::string>(); };
}

}  // namespace

TEST_CASE("a new pod gets a sandbox and all its containers") {
  Pod p = MakePod();
  PodActions a = ComputePodActions(p, PodRuntimeState{}, NoBackoff());
  CHECK(a.create_sandbox);
  CHECK(a.sandbox_attempt == 0);
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].name == "main");
  CHECK(a.start[0].attempt == 0);
}

TEST_CASE("a running container is left alone") {
  Pod p = MakePod();
  PodRuntimeState s = WithSandbox();
  s.containers.push_back(Ctr("main", 0, cri::ContainerState::kRunning));
  PodActions a = ComputePodActions(p, s, NoBackoff());
  CHECK_FALSE(a.create_sandbox);
  CHECK(a.sandbox_id == "sb1");
  CHECK(a.start.empty());
  CHECK(a.kill.empty());
}

TEST_CASE("restart policy decides about exited containers") {
  struct Row {
    std::string policy;
    int exit;
    bool restart;
  };
  for (const Row& r : {Row{"Always", 0, true}, Row{"Always", 1, true}, Row{"OnFailure", 0, false},
                       Row{"OnFailure", 2, true}, Row{"Never", 0, false}, Row{"Never", 1, false}}) {
    Pod p = MakePod(r.policy);
    PodRuntimeState s = WithSandbox();
    s.containers.push_back(Ctr("main", 3, cri::ContainerState::kExited, r.exit));
    PodActions a = ComputePodActions(p, s, NoBackoff());
    INFO(r.policy << " exit " << r.exit);
    CHECK((a.start.size() == 1) == r.restart);
    if (r.restart) CHECK(a.start[0].attempt == 4);
  }
}

TEST_CASE("crash loop back-off holds the restart and reports the message") {
  Pod p = MakePod();
  PodRuntimeState s = WithSandbox();
  s.containers.push_back(Ctr("main", 1, cri::ContainerState::kExited, 1));
  PodActions a = ComputePodActions(p, s, [](const ObservedContainer& c) {
    return std::optional<std::string>("back-off 20s restarting failed container=" + c.name);
  });
  CHECK(a.start.empty());
  REQUIRE(a.backoff.count("main") == 1);
  CHECK(a.backoff["main"] == "back-off 20s restarting failed container=main");
}

TEST_CASE("a changed container spec restarts the container") {
  Pod p = MakePod();
  p.containers[0].hash = "h2";
  PodRuntimeState s = WithSandbox();
  s.containers.push_back(Ctr("main", 0, cri::ContainerState::kRunning));
  PodActions a = ComputePodActions(p, s, NoBackoff());
  REQUIRE(a.kill.size() == 1);
  CHECK(a.kill[0].first == "main-0");
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].attempt == 1);
}

TEST_CASE("a dead sandbox is recreated and running containers are killed") {
  Pod p = MakePod();
  PodRuntimeState s = WithSandbox(false);
  s.containers.push_back(Ctr("main", 2, cri::ContainerState::kRunning));
  PodActions a = ComputePodActions(p, s, NoBackoff());
  CHECK(a.create_sandbox);
  CHECK(a.sandbox_attempt == 1);
  CHECK(a.kill_pod);
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].attempt == 3);
}

TEST_CASE("restartPolicy Never does not recreate a dead sandbox after containers ran") {
  Pod p = MakePod("Never");
  PodRuntimeState s = WithSandbox(false);
  s.containers.push_back(Ctr("main", 0, cri::ContainerState::kExited, 0));
  PodActions a = ComputePodActions(p, s, NoBackoff());
  CHECK_FALSE(a.create_sandbox);
  CHECK(a.start.empty());
}

TEST_CASE("init containers run one at a time before app containers") {
  Pod p = MakePod();
  Container i1, i2;
  i1.name = "init1";
  i2.name = "init2";
  p.init_containers = {i1, i2};

  PodRuntimeState s = WithSandbox();
  PodActions a = ComputePodActions(p, s, NoBackoff());
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].name == "init1");
  CHECK(a.start[0].init);

  s.containers.push_back(Ctr("init1", 0, cri::ContainerState::kRunning));
  a = ComputePodActions(p, s, NoBackoff());
  CHECK(a.start.empty());

  s.containers.back().state = cri::ContainerState::kExited;
  a = ComputePodActions(p, s, NoBackoff());
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].name == "init2");

  s.containers.push_back(Ctr("init2", 0, cri::ContainerState::kExited, 0));
  a = ComputePodActions(p, s, NoBackoff());
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].name == "main");
  CHECK_FALSE(a.start[0].init);
}

TEST_CASE("a failed init container fails a restartPolicy Never pod") {
  Pod p = MakePod("Never");
  Container i1;
  i1.name = "init1";
  p.init_containers = {i1};
  PodRuntimeState s = WithSandbox();
  s.containers.push_back(Ctr("init1", 0, cri::ContainerState::kExited, 1));
  PodActions a = ComputePodActions(p, s, NoBackoff());
  CHECK(a.pod_failed);
  CHECK(a.start.empty());
}

TEST_CASE("a created but never started container is replaced") {
  Pod p = MakePod();
  PodRuntimeState s = WithSandbox();
  s.containers.push_back(Ctr("main", 0, cri::ContainerState::kCreated));
  PodActions a = ComputePodActions(p, s, NoBackoff());
  REQUIRE(a.remove.size() == 1);
  REQUIRE(a.start.size() == 1);
  CHECK(a.start[0].attempt == 1);
}
