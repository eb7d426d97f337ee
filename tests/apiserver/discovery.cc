// Discovery documents: /version, /api, /apis, /api/v1, /apis/<group>/<version>.
#include <set>

#include "tests/apiserver/discovery.h"
#include "tests/apiserver/internal.h"

namespace apiserver {

using internal::ResourceDef;
using internal::Resources;

Json VersionInfo() {
  return {{"major", "1"},
          {"minor", "32"},
          {"gitVersion", "v1.32.5"},
          {"gitCommit", "2e37d3b5e130bffd93407dedb2fa3f8a2219d8e1"},
          {"gitTreeState", "clean"},
          {"buildDate", "2026-11-24T06:56:57Z"},
          {"goVersion", "go1.23.5"},
          {"compiler", "gc"},
          {"platform", "linux/amd64"}};
}

Json ApiVersions(const std::string& advertise) {
  return {{"kind", "APIVersions"},
          {"versions", Json::array({"v1"})},
          {"serverAddressByClientCIDRs",
           Json::array({{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", advertise}}})}};
}

std::vector<std::string> ApiGroups() {
  std::vector<std::string> groups;
  for (const auto& d : Resources()) {
    if (d.group.empty()) continue;
    bool seen = false;
    for (const auto& g : groups) seen = seen || g == d.group;
    if (!seen) groups.push_back(d.group);
  }
  return groups;
}

Json ApiGroupList() {
  Json groups = Json::array();
  for (const auto& g : ApiGroups()) {
    Json gv = {{"groupVersion", g + "/v1"}, {"version", "v1"}};
    groups.push_back({{"name", g}, {"versions", Json::array({gv})}, {"preferredVersion", gv}});
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}};
}

std::optional<Json> ApiGroup(const std::string& group) {
  for (const auto& g : ApiGroups()) {
    if (g != group) continue;
    Json gv = {{"groupVersion", g + "/v1"}, {"version", "v1"}};
    return Json{{"kind", "APIGroup"},
                {"apiVersion", "v1"},
                {"name", g},
                {"versions", Json::array({gv})},
                {"preferredVersion", gv}};
  }
  return std::nullopt;
}

std::optional<Json> ApiResourceList(const std::string& group, const std::string& version) {
  Json resources = Json::array();
  bool any = false;
  for (const auto& d : Resources()) {
    if (d.group != group || d.version != version) continue;
    any = true;
    Json r = {{"name", d.resource},
              {"singularName", d.singular},
              {"namespaced", d.namespaced},
              {"kind", d.kind},
              {"verbs", d.verbs}};
    if (!d.short_names.empty()) r["shortNames"] = d.short_names;
    resources.push_back(r);
    for (const auto& sub : d.subresources) {
      Json s = {{"name", d.resource + "/" + sub}, {"singularName", ""},
                {"namespaced", d.namespaced}};
      if (sub == "status") {
        s["kind"] = d.kind;
        s["verbs"] = Json::array({"get", "patch", "update"});
      } else if (sub == "log") {
        s["kind"] = "Pod";
        s["verbs"] = Json::array({"get"});
      } else if (sub == "exec") {
        s["kind"] = "PodExecOptions";
        s["verbs"] = Json::array({"create", "get"});
      } else if (sub == "portforward") {
        s["kind"] = "PodPortForwardOptions";
        s["verbs"] = Json::array({"create", "get"});
      } else if (sub == "token") {
        s["group"] = "authentication.k8s.io";
        s["version"] = "v1";
        s["kind"] = "TokenRequest";
        s["verbs"] = Json::array({"create"});
      } else if (sub == "eviction") {
        s["group"] = "policy";
        s["version"] = "v1";
        s["kind"] = "Eviction";
        s["verbs"] = Json::array({"create"});
      } else if (sub == "binding") {
        s["kind"] = "Binding";
        s["verbs"] = Json::array({"create"});
      } else if (sub == "finalize") {
        s["kind"] = d.kind;
        s["verbs"] = Json::array({"update"});
      }
      resources.push_back(s);
    }
  }
  if (!any) return std::nullopt;
  std::string gv = group.empty() ? version : group + "/" + version;
  Json list = {{"kind", "APIResourceList"}};
  if (!group.empty()) list["apiVersion"] = "v1";
  list["groupVersion"] = gv;
  list["resources"] = resources;
  return list;
}

}  // namespace apiserver
