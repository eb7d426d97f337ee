#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "agent/merge_patch.h"

using namespace agent;
using nlohmann::json;

TEST_CASE("keyed list elements are diffed field by field; removed fields become null") {
  MergeKeys keys = {{"items", "name"}};
  json old = json::parse(R"({"items":[{"name":"a","state":{"running":{"startedAt":"t1"}},"ready":true}]})");
  json neu = json::parse(R"({"items":[{"name":"a","state":{"terminated":{"exitCode":0}},"ready":false}]})");
  json p = CreateTwoWayMergePatch(old, neu, keys);
  json el = p["items"][0];
  CHECK(el["name"] == "a");
  CHECK(el["state"]["running"].is_null());
  CHECK(el["state"]["terminated"]["exitCode"] == 0);
  CHECK(el["ready"] == false);
  CHECK(ApplyStrategicMergePatch(old, p, keys) == neu);
}

TEST_CASE("containerStatuses is an atomic list in v1.PodStatus: sent whole") {
  json old = json::parse(R"({"containerStatuses":[{"name":"a","state":{"running":{"startedAt":"t1"}},"ready":true}]})");
  json neu = json::parse(R"({"containerStatuses":[{"name":"a","state":{"terminated":{"exitCode":0}},"ready":false}]})");
  json p = CreateTwoWayMergePatch(old, neu, PodStatusMergeKeys());
  CHECK(p == neu);
  CHECK_FALSE(p.contains("$setElementOrder/containerStatuses"));
}

TEST_CASE("removed list elements become $patch delete and order is preserved") {
  json old = json::parse(R"({"conditions":[{"type":"A","status":"True"},{"type":"B","status":"True"}]})");
  json neu = json::parse(R"({"conditions":[{"type":"B","status":"True"},{"type":"C","status":"False"}]})");
  json p = CreateTwoWayMergePatch(old, neu, PodStatusMergeKeys());
  CHECK(p["$setElementOrder/conditions"] == json::parse(R"([{"type":"B"},{"type":"C"}])"));
  bool deleted_a = false;
  for (const auto& e : p["conditions"]) {
    if (e["type"] == "A") deleted_a = e["$patch"] == "delete";
  }
  CHECK(deleted_a);
  CHECK(ApplyStrategicMergePatch(old, p, PodStatusMergeKeys()) == neu);
}

TEST_CASE("unkeyed lists and scalars are replaced; equal documents give an empty patch") {
  json old = json::parse(R"({"phase":"Pending","x":[1,2]})");
  json neu = json::parse(R"({"phase":"Running","x":[2]})");
  json p = CreateTwoWayMergePatch(old, neu, PodStatusMergeKeys());
  CHECK(p == json::parse(R"({"phase":"Running","x":[2]})"));
  CHECK(CreateTwoWayMergePatch(neu, neu, PodStatusMergeKeys()).empty());
}
