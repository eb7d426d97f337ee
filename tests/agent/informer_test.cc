#include <catch2/catch.hpp>

#include "agent/informer.h"
#include "tests/agent/fake_api_client.h"

using namespace agent;

TEST_CASE("informer query strings") {
  InformerOptions o;
  o.field_selector = "spec.nodeName=node1";
  CHECK(Informer::BuildQuery(o, false, "0", 0) == "?fieldSelector=spec.nodeName%3Dnode1&resourceVersion=0");
  CHECK(Informer::BuildQuery(o, true, "42", 300) ==
        "?fieldSelector=spec.nodeName%3Dnode1&watch=true&allowWatchBookmarks=true&resourceVersion=42&timeoutSeconds=300");
  o.field_selector.clear();
  o.label_selector = "!service.kubernetes.io/headless";
  CHECK(Informer::BuildQuery(o, false, "", 0) == "?labelSelector=%21service.kubernetes.io%2Fheadless");
}

TEST_CASE("informer lists, watches, follows bookmarks and relists on 410") {
  auto api = std::make_shared<testsupport::FakeApiClient>();
  const std::string list1 = R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"10"},"items":[
      {"metadata":{"name":"a","namespace":"ns","uid":"1","resourceVersion":"9"}}]})";
  api->Push("GET", "/api/v1/pods?resourceVersion=0", 200, list1);
  api->PushStream("/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=10&timeoutSeconds=5", 200,
                  {R"({"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"b","namespace":"ns","uid":"2","resourceVersion":"11"}}})",
                   R"({"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"15","creationTimestamp":null},"spec":{"containers":null},"status":{}}})"});
  api->PushStream("/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=15&timeoutSeconds=5", 200,
                  {R"J({"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 15 (20)","reason":"Expired","code":410}})J"});
  // After the expiry: a consistent relist (resourceVersion unset) that no longer has "a".
  api->Push("GET", "/api/v1/pods", 200,
            R"({"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"30"},"items":[
               {"metadata":{"name":"b","namespace":"ns","uid":"2","resourceVersion":"11"}}]})");
  std::mutex mu;
  std::vector<std::string> events;
  InformerHandlers h;
  h.on_add = [&](const Json& o) { std::lock_guard l(mu); events.push_back("add " + Informer::KeyOf(o)); };
  h.on_update = [&](const Json&, const Json& o) { std::lock_guard l(mu); events.push_back("update " + Informer::KeyOf(o)); };
  h.on_delete = [&](const Json& o) { std::lock_guard l(mu); events.push_back("delete " + Informer::KeyOf(o)); };
  InformerOptions o;
  o.resource_path = "/api/v1/pods";
  o.watch_timeout_seconds = 5;
  Informer inf(api, o, h);
  inf.Start();
  REQUIRE(api->WaitFor([](const auto& reqs) {
    for (const auto& r : reqs) {
      if (r.path == "/api/v1/pods?watch=true&allowWatchBookmarks=true&resourceVersion=30&timeoutSeconds=5") return true;
    }
    return false;
  }, std::chrono::seconds(10)));
  inf.Stop();
  std::lock_guard l(mu);
  CHECK(events == std::vector<std::string>{"add ns/a", "add ns/b", "update ns/b", "delete ns/a"});
  CHECK(inf.LastResourceVersion() == "30");
  CHECK(inf.List().size() == 1);
}
