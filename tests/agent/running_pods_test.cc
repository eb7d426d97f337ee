// /runningpods/: the runtime's view of the pods, in the kubelet's shape.
#include "agent/running_pods.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/runtime_config.h"

namespace {

cri::PodSandbox Sandbox(const std::string& id, const std::string& name, const std::string& uid,
                        int64_t created) {
  cri::PodSandbox s;
  s.id = id;
  s.metadata = {name, uid, "default", 0};
  s.state = cri::PodSandboxState::kReady;
  s.created_at = created;
  return s;
}

cri::Container Ctr(const std::string& sandbox, const std::string& name, const std::string& image,
                   const std::string& pod_uid = "", const std::string& pod_name = "") {
  cri::Container c;
  c.id = sandbox + "-" + name;
  c.pod_sandbox_id = sandbox;
  c.metadata.name = name;
  c.image.image = image;
  c.state = cri::ContainerState::kRunning;
  if (!pod_uid.empty()) {
    c.labels[agent::kLabelPodUid] = pod_uid;
    c.labels[agent::kLabelPodName] = pod_name;
    c.labels[agent::kLabelPodNamespace] = "kube-system";
  }
  return c;
}

}  // namespace

TEST_CASE("runningpods: a v1 PodList of the runtime's pods, newest first, as Pod.ToAPIPod makes them") {
  auto j = nlohmann::json::parse(agent::RunningPodsJson(
      {Sandbox("sb-old", "web", "uid-web", 100), Sandbox("sb-new", "db", "uid-db", 200)},
      {Ctr("sb-old", "nginx", "docker.io/library/nginx:1.27", "uid-web", "web"),
       Ctr("sb-old", "sidecar", "busybox"),  // no labels: its sandbox names the pod
       Ctr("sb-gone", "orphan", "busybox", "uid-orphan", "orphan")}));
  CHECK(j["kind"] == "PodList");
  CHECK(j["apiVersion"] == "v1");
  CHECK(j["metadata"] == nlohmann::json::object());
  REQUIRE(j["items"].size() == 3);
  // Newest sandbox first; a pod known only from its running container's labels (its sandbox not
  // ready) has no creation time and comes last.
  const auto& db = j["items"][0];
  CHECK(db["metadata"] == nlohmann::json({{"name", "db"},
                                           {"namespace", "default"},
                                           {"uid", "uid-db"},
                                           {"creationTimestamp", nullptr}}));
  CHECK(db["spec"] == nlohmann::json::object());  // a ready sandbox without running containers
  CHECK(db["status"] == nlohmann::json::object());
  const auto& web = j["items"][1];
  CHECK(web["metadata"]["uid"] == "uid-web");
  REQUIRE(web["spec"]["containers"].size() == 2);
  CHECK(web["spec"]["containers"][0] == nlohmann::json({{"name", "nginx"},
                                                         {"image", "docker.io/library/nginx:1.27"},
                                                         {"resources", nlohmann::json::object()}}));
  CHECK(web["spec"]["containers"][1]["name"] == "sidecar");
  const auto& orphan = j["items"][2];
  CHECK(orphan["metadata"]["name"] == "orphan");
  CHECK(orphan["metadata"]["namespace"] == "kube-system");
  CHECK(orphan["spec"]["containers"][0]["name"] == "orphan");
  // Nothing running: an empty list, not null.
  auto empty = nlohmann::json::parse(agent::RunningPodsJson({}, {}));
  CHECK(empty["items"] == nlohmann::json::array());
}
