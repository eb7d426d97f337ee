// Static pod manifests (agent/static_pods.h): the defaults the kubelet applies, and the
// directory source's add/change/remove reports.
#include "agent/static_pods.h"

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>

using agent::DecodeStaticPod;
using nlohmann::json;

namespace {

const char* kManifest = R"(apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: "1"}
spec:
  containers:
  - name: app
    image: busybox
    command: ["sleep", "1000"]
    ports: [{containerPort: 8080}]
)";

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

}  // namespace

TEST_CASE("static pods: the kubelet's defaults") {
  auto p = DecodeStaticPod(kManifest, "/etc/m/web.yaml", "node-a", "2026-11-24T20:00:00.0Z");
  REQUIRE(p);
  const json& md = (*p)["metadata"];
  CHECK(md["name"] == "web-node-a");
  CHECK(md["namespace"] == "default");
  std::string uid = md["uid"];
  CHECK(uid.size() == 32);
  CHECK(md["annotations"]["kubernetes.io/config.hash"] == uid);
  CHECK(md["annotations"]["kubernetes.io/config.source"] == "file");
  CHECK(md["annotations"]["kubernetes.io/config.seen"] == "2026-11-24T20:00:00.0Z");
  CHECK(md["labels"]["tier"] == "1");  // quoted: stays a string
  CHECK((*p)["spec"]["nodeName"] == "node-a");
  CHECK((*p)["spec"]["containers"][0]["ports"][0]["containerPort"] == 8080);
  CHECK((*p)["spec"]["tolerations"].back() == json({{"operator", "Exists"}, {"effect", "NoExecute"}}));
  // The UID is the manifest's identity: same text, node and file -> same UID; any change -> new.
  auto same = DecodeStaticPod(kManifest, "/etc/m/web.yaml", "node-a", "later");
  CHECK((*same)["metadata"]["uid"] == uid);
  CHECK((*DecodeStaticPod(kManifest, "/etc/m/web.yaml", "node-b", ""))["metadata"]["uid"] != uid);
  CHECK((*DecodeStaticPod(kManifest, "/etc/m/other.yaml", "node-a", ""))["metadata"]["uid"] != uid);
  std::string changed = kManifest;
  changed.replace(changed.find("1000"), 4, "2000");
  CHECK((*DecodeStaticPod(changed, "/etc/m/web.yaml", "node-a", ""))["metadata"]["uid"] != uid);
  // JSON is YAML too.
  auto j = DecodeStaticPod(R"({"kind":"Pod","metadata":{"name":"j","namespace":"kube-system"},
      "spec":{"containers":[{"name":"c","image":"busybox"}]}})", "/m/j.json", "n", "");
  REQUIRE(j);
  CHECK((*j)["metadata"]["namespace"] == "kube-system");
}

TEST_CASE("static pods: errors name the file") {
  auto e = DecodeStaticPod("kind: Deployment\nmetadata: {name: x}\n", "/m/d.yaml", "n", "");
  REQUIRE(!e);
  CHECK(e.error().message == "static pod /m/d.yaml: kind is \"Deployment\", not Pod");
  CHECK(!DecodeStaticPod("kind: Pod\nmetadata: {name: x}\nspec: {}\n", "/m/x.yaml", "n", ""));
  CHECK(!DecodeStaticPod("kind: Pod\nspec: {containers: [{name: c}]}\n", "/m/x.yaml", "n", ""));
  CHECK(!DecodeStaticPod("kind: [unclosed\n", "/m/x.yaml", "n", ""));
}

TEST_CASE("static pods: the directory source reports additions, changes and removals") {
  char tmpl[] = "/tmp/static-pods-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<std::string> log;
  std::mutex mu;  // the watch thread reports too
  agent::StaticPodSource::Handlers h;
  h.upsert = [&](const json& p) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back("+" + p["metadata"]["name"].get<std::string>());
  };
  h.remove = [&](const json& p) {
    std::lock_guard<std::mutex> l(mu);
    log.push_back("-" + p["metadata"]["name"].get<std::string>());
  };
  agent::StaticPodSource src(dir, "n1", h);
  src.Scan();
  CHECK(log.empty());
  Write(dir + "/web.yaml", kManifest);
  Write(dir + "/.hidden.yaml", kManifest);  // dot files are not read
  Write(dir + "/broken.yaml", "kind: Pod\n");
  src.Scan();
  CHECK(log == std::vector<std::string>{"+web-n1"});
  src.Scan();
  CHECK(log.size() == 1);  // nothing changed
  std::string changed = kManifest;
  changed.replace(changed.find("1000"), 4, "2000");
  Write(dir + "/web.yaml", changed);
  src.Scan();
  CHECK(log == std::vector<std::string>{"+web-n1", "-web-n1", "+web-n1"});
  unlink((dir + "/web.yaml").c_str());
  src.Scan();
  CHECK(log.back() == "-web-n1");
  // With the watch, a new file is seen at once (not after the 20 s period).
  src.Start(std::chrono::seconds(20));
  usleep(100000);
  Write(dir + "/web.yaml", kManifest);
  auto last = [&] {
    std::lock_guard<std::mutex> l(mu);
    return log.back();
  };
  for (int i = 0; i < 100 && last() != "+web-n1"; ++i) usleep(20000);
  src.Stop();
  CHECK(last() == "+web-n1");
  (void)!system(("rm -rf '" + dir + "'").c_str());
}
