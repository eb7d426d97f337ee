#pragma once
#include <optional>
#include <string>
#include <vector>

#include "tests/apiserver/json.h"

namespace apiserver {

Json VersionInfo();
Json ApiVersions(const std::string& advertise);
Json ApiGroupList();
std::optional<Json> ApiGroup(const std::string& group);
std::optional<Json> ApiResourceList(const std::string& group, const std::string& version);

}  // namespace apiserver
